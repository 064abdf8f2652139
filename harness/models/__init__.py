"""Model loaders: a checkpoint PATH becomes a ModelHandle.

`load_model` detects the kind from the files present, trying every registered loader
(harness.registry.MODEL_LOADERS) in order. Untrusted checkpoints never execute code: weights
are read from safetensors; pickle-based files (.bin, .pt, .pth, .pkl, .ckpt) are refused unless
the caller passes allow_pickle (and even then torch.load runs with weights_only=True).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from harness.errors import HarnessError
from harness.models.base import LoadOptions, ModelHandle, ModelLoader
from harness.registry import MODEL_LOADERS
from harness.schema import ModelCard

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")
WEIGHT_SUFFIXES = (".safetensors", *PICKLE_SUFFIXES)


def weight_files(path: Path) -> list[Path]:
    """Weight files of a checkpoint folder (or the file itself), sorted by relative name."""
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in WEIGHT_SUFFIXES)


def checkpoint_hash(files: list[Path], root: Path) -> str:
    """sha256 over (relative name, content) of each weight file, in sorted order."""
    digest = hashlib.sha256()
    for file in files:
        relative = file.name if root.is_file() else file.relative_to(root).as_posix()
        digest.update(relative.encode() + b"\x00")
        with file.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def refuse_pickle(path: Path, allow_pickle: bool) -> None:
    """Raise unless pickle weights are explicitly allowed, when the checkpoint has any."""
    pickles = [p for p in weight_files(path) if p.suffix in PICKLE_SUFFIXES]
    if pickles and not allow_pickle:
        raise HarnessError(
            f"checkpoint has pickle weight files ({', '.join(p.name for p in pickles[:3])}), "
            "which can execute code when loaded",
            where=str(path),
            fix="convert the weights to safetensors, or pass --allow-pickle if you trust this checkpoint",
        )


def detect_loader(path: Path) -> ModelLoader:
    """The loader whose kind matches the files at `path`."""
    if not path.exists():
        raise HarnessError("model path does not exist", where=str(path), fix="check the --model path")
    for kind in MODEL_LOADERS.names():
        loader: ModelLoader = MODEL_LOADERS.get(kind)
        if loader.detect(path):
            return loader
    expected = "; ".join(f"{k}: {MODEL_LOADERS.get(k).expects}" for k in MODEL_LOADERS.names())
    present = ", ".join(sorted(p.name for p in path.iterdir())[:8]) if path.is_dir() else path.name
    raise HarnessError(
        f"not a checkpoint Harness can load (found: {present or 'an empty folder'})",
        where=str(path),
        fix=f"expected one of: {expected}",
    )


def load_model(path: str | Path, options: LoadOptions | None = None) -> ModelHandle:
    """Detect the kind of checkpoint at `path` and load it."""
    path = Path(path)
    loader = detect_loader(path)
    return loader.load(path, options or LoadOptions())


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise HarnessError(f"invalid JSON: {error}", where=str(path), fix="repair or re-export the file") from None


def read_card(folder: Path, kind: str) -> ModelCard:
    """card.json if present (validated), else a minimal card named after the folder."""
    card_path = folder / "card.json"
    if not card_path.exists():
        return ModelCard(name=folder.name, kind=kind)
    try:
        return ModelCard.model_validate(read_json(card_path))
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise HarnessError(f"invalid model card field {field!r}: {first['msg']}", where=str(card_path)) from None


def with_model_facts(card: ModelCard, model: Any) -> ModelCard:
    """Fill what a card leaves out but the loaded model knows: parameter count, family (model type)."""
    updates: dict[str, Any] = {}
    if card.n_parameters is None:
        updates["n_parameters"] = sum(p.numel() for p in model.parameters())
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    if card.family == "unknown" and model_type:
        updates["family"] = str(model_type)
    return card.model_copy(update=updates) if updates else card
