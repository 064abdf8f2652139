"""Model loaders: a checkpoint PATH becomes a ModelHandle.

`load_model` detects the kind from the files present, trying every registered loader
(harness.registry.MODEL_LOADERS) in order. Untrusted checkpoints never execute code: weights
are read from safetensors; pickle-based files (.bin, .pt, .pth, .pkl, .ckpt) are refused unless
the caller passes allow_pickle (and even then torch.load runs with weights_only=True).
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from harness.errors import HarnessError
from harness.models.base import LoadOptions, ModelHandle, ModelLoader
from harness.registry import MODEL_LOADERS
from harness.schema import ModelCard
from harness.untrusted import check_json_file
from harness.untrusted import read_json as read_json  # checkpoints' card.json, config.json

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")
WEIGHT_SUFFIXES = (".safetensors", *PICKLE_SUFFIXES)


def weight_files(path: Path) -> list[Path]:
    """Weight files of a checkpoint folder (or the file itself), sorted by relative name."""
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in WEIGHT_SUFFIXES)


#: files beside the weights that change a model's outputs: configs, tokenizers, processors, adapters
DEFINITION_SUFFIXES = (".json", ".txt", ".model", ".tiktoken", ".spm")
#: files with those suffixes that describe a model without changing its outputs
NOT_DEFINITION = ("card.json", "trainer_state.json", "all_results.json", "train_results.json", "eval_results.json")
NOT_DEFINITION_PREFIXES = ("readme", "license", "notice", "changelog")


def model_files(path: Path) -> list[Path]:
    """Every file that defines a checkpoint, sorted by relative name: the weight files, and the config,
    tokenizer, processor and adapter files (`DEFINITION_SUFFIXES`). Not part of it: the model card,
    docs, training logs and hidden files, which never change outputs."""
    if path.is_file():
        return [path]
    out = []
    for file in sorted(path.rglob("*")):
        relative = file.relative_to(path)
        if not file.is_file() or any(part.startswith(".") for part in relative.parts):
            continue
        name = file.name.lower()
        definition = (
            file.suffix in DEFINITION_SUFFIXES
            and file.name not in NOT_DEFINITION
            and not name.startswith(NOT_DEFINITION_PREFIXES)
        )
        if file.suffix in WEIGHT_SUFFIXES or definition:
            out.append(file)
    return out


def checkpoint_hash(files: list[Path], root: Path) -> str:
    """sha256 over (relative name, content) of each file, in sorted order (pass `model_files(root)`)."""
    digest = hashlib.sha256()
    for file in files:
        relative = file.name if root.is_file() else file.relative_to(root).as_posix()
        digest.update(relative.encode() + b"\x00")
        with file.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def unreadable_weights(file: Path, error: Exception) -> HarnessError:
    """The error for a safetensors file that cannot be read."""
    return HarnessError(
        f"cannot read safetensors weights ({error}); the file is truncated or corrupt",
        where=str(file),
        fix="re-download or re-export the checkpoint",
    )


def safetensors_parameter_count(files: list[Path]) -> int | None:
    """Number of values in the safetensors files (from their headers; None when any file is not
    safetensors). A truncated or corrupt file is a HarnessError."""
    from safetensors import SafetensorError, safe_open

    if any(file.suffix != ".safetensors" for file in files):
        return None
    total = 0
    for file in files:
        try:
            with safe_open(str(file), framework="numpy") as opened:
                for name in opened.keys():  # noqa: SIM118  (safe_open has no __iter__)
                    total += math.prod(opened.get_slice(name).get_shape())
        except (SafetensorError, OSError, ValueError) as error:
            raise unreadable_weights(file, error) from None
    return total


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


def is_checkpoint(path: Path) -> bool:
    """Whether a registered loader recognises the files at `path` (nothing is loaded)."""
    return path.exists() and any(MODEL_LOADERS.get(kind).detect(path) for kind in MODEL_LOADERS.names())


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


#: weight dtypes Harness can run a model in (`--dtype`); loaders list the ones they honour
DTYPES = ("float32", "bfloat16", "float16")


def torch_dtype(dtype: str) -> Any:
    """The torch dtype of a `DTYPES` name."""
    import torch

    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]


def check_dtype(dtype: str, loader: ModelLoader, path: Path) -> None:
    """Refuse a dtype that is unknown, or that this kind of checkpoint cannot run in."""
    if dtype not in DTYPES:
        raise HarnessError(f"unknown dtype {dtype!r}", fix="use one of " + ", ".join(DTYPES))
    if dtype not in loader.dtypes:
        raise HarnessError(
            f"a {loader.kind} checkpoint cannot run in {dtype}",
            where=str(path),
            fix="use --dtype " + " or ".join(loader.dtypes),
        )


def load_model(path: str | Path, options: LoadOptions | None = None) -> ModelHandle:
    """Detect the kind of checkpoint at `path` and load it; the handle's `settings` record the dtype
    and the device kind beside what the loader adds (see ModelHandle.settings)."""
    path = Path(path)
    options = options or LoadOptions()
    loader = detect_loader(path)
    check_dtype(options.dtype, loader, path)
    if path.is_dir():  # transformers and sentence-transformers parse these with recursive parsers
        for file in sorted([*path.glob("*.json"), *path.glob("*/*.json")]):
            check_json_file(file)
    handle = loader.load(path, options)
    device_kind = "cuda" if str(options.device).startswith("cuda") else "cpu"
    handle.settings = {"dtype": options.dtype, "device": device_kind, **handle.settings}
    return handle


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
