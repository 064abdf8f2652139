"""The offline model zoo: real checkpoints trained (or compressed) here on the CPU.

`harness zoo build [--dir zoo/] [--family digits] [--profile full|tiny]` writes one folder per
model, in the same format a user's checkpoint would have, with a card that records the recipe.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from harness.errors import HarnessError
from harness.registry import Registry
from harness.schema import ModelCard

#: zoo families: name -> build(out_dir, profile, progress_callback) -> list of model folders
FAMILIES: Registry[object] = Registry("zoo family")
FAMILIES.add("digits", "harness.zoo.digits:build")
FAMILIES.add("minilm", "harness.zoo.minilm:build")
FAMILIES.add("lm", "harness.zoo.lm:build")

#: full: every model; demo: what `harness demo` builds within its time budget; tiny: seconds, for tests
PROFILES = ("full", "demo", "tiny")


def save_checkpoint(
    folder: Path, files: dict[str, bytes], card: ModelCard, write: Callable[[Path], None] | None = None
) -> Path:
    """Write a checkpoint folder atomically (a temporary folder renamed into place).

    `files` are written by name; `write(tmp_folder)`, when given, writes the rest (for example
    `save_pretrained`). A crash leaves only a dot-named temporary folder, which `zoo_models` ignores.
    """
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        for name, payload in files.items():
            (tmp / name).write_bytes(payload)
        if write is not None:
            write(tmp)
        (tmp / "card.json").write_text(card.model_dump_json(indent=2) + "\n")
        if folder.exists():
            shutil.rmtree(folder)
        tmp.rename(folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


def zoo_models(folder: Path) -> list[Path]:
    """Checkpoint folders of a built zoo (those with a card.json), sorted by name."""
    # Folders starting with "." are checkpoints still being written (see save_checkpoint).
    return sorted(p.parent for p in folder.glob("*/card.json") if not p.parent.name.startswith("."))


def check_profile(profile: str) -> None:
    if profile not in PROFILES:
        raise HarnessError(f"unknown zoo profile {profile!r}", fix="use one of " + ", ".join(PROFILES))
