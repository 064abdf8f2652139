"""MiniLM encoders: the packaged all-MiniLM-L6-v2 and compressed variants of it, for retrieval.

Every member is a normal sentence-transformers folder (safetensors weights, the base's tokenizer,
pooling and normalisation modules) with a card.json whose `reference` names the base model
(sentence-transformers/all-MiniLM-L6-v2) and whose `compression` says what was done:
- minilm-l6: a byte-for-byte copy of the packaged folder (same checkpoint hash, so it shares cached
  embeddings with `--model <packaged folder>`); compression {"method": "none"}.
- minilm-l3: the first 3 of the 6 transformer layers (embeddings, pooling unchanged; no
  retraining); {"method": "layer-drop", "layers": 3}.
- minilm-l6-int8: every Linear weight quantised and dequantised with a symmetric per-output-channel
  int8 scale (scale = max |w| over the row / 127, round to nearest, clamp to [-127, 127]); biases,
  embeddings and LayerNorms stay float32; saved as float32 ("simulated" int8);
  {"method": "int8-fake-quant", "bits": 8}.
- minilm-l6-pruned50: unstructured magnitude pruning of every Linear weight matrix: the 50% of
  entries with the smallest |w| in each matrix are set to zero (ties broken by position, so it is
  deterministic); {"method": "magnitude-pruning", "sparsity": 0.5, "scope": "per-matrix"}.
Profile "full" builds all four (a few seconds each; nothing is trained); "demo" the base copy and
minilm-l3 (encoding dominates the demo's time); profile "tiny" builds only
minilm-l3, the cheapest to evaluate, so tests that run the demo stay short.

Cards leave `trained_on` unset: MiniLM was trained on sentence pairs, not on a Harness suite, and the
retrieval task is already restricted to encoders by its capability (embeddings), so its spec needs
no `models_trained_on`.
"""

from __future__ import annotations

import copy
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from harness.errors import HarnessError
from harness.models import PICKLE_SUFFIXES, weight_files
from harness.models.sentence_encoder import (
    KIND,
    PACKAGED_NAME,
    PACKAGED_ORG,
    load_sentence_transformer,
    packaged_minilm_path,
    quiet_transformers,
)
from harness.schema import ModelCard, Scalar
from harness.zoo import check_profile

BASE = f"{PACKAGED_ORG}/{PACKAGED_NAME}"
FAMILY = "minilm"


@torch.no_grad()
def keep_first_layers(model: Any, n_layers: int) -> None:
    """Keep the first `n_layers` transformer layers of a sentence-transformers BERT-style model."""
    encoder = model[0].auto_model
    layers = encoder.encoder.layer
    if not 1 <= n_layers <= len(layers):
        raise ValueError(f"cannot keep {n_layers} of {len(layers)} layers")
    encoder.encoder.layer = torch.nn.ModuleList(list(layers)[:n_layers])
    encoder.config.num_hidden_layers = n_layers


def linear_layers(model: torch.nn.Module) -> list[torch.nn.Linear]:
    return [module for module in model.modules() if isinstance(module, torch.nn.Linear)]


@torch.no_grad()
def fake_quantize_int8(weight: torch.Tensor) -> torch.Tensor:
    """Symmetric per-output-channel int8 quantise-dequantise of a (out, in) weight matrix.

    Example: a row [1.0, -0.5, 0.001] has scale 1/127 and becomes [1.0, -0.5039, 0.0].
    """
    scale = weight.abs().amax(dim=1, keepdim=True) / 127.0
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    return torch.clamp(torch.round(weight / scale), -127, 127) * scale


@torch.no_grad()
def magnitude_prune(weight: torch.Tensor, sparsity: float) -> torch.Tensor:
    """`weight` with the floor(sparsity * size) entries of smallest |w| set to zero (ties: lower position first)."""
    values = weight.detach().cpu().numpy()
    n_zero = int(np.floor(sparsity * values.size))
    order = np.argsort(np.abs(values).ravel(), kind="stable")[:n_zero]
    pruned = values.ravel().copy()
    pruned[order] = 0.0
    return torch.from_numpy(pruned.reshape(values.shape)).to(weight.dtype)


@torch.no_grad()
def _quantize(model: Any) -> None:
    for layer in linear_layers(model):
        layer.weight.copy_(fake_quantize_int8(layer.weight))


def _prune(sparsity: float) -> Callable[[Any], None]:
    @torch.no_grad()
    def apply(model: Any) -> None:
        for layer in linear_layers(model):
            layer.weight.copy_(magnitude_prune(layer.weight, sparsity))

    return apply


@dataclass(frozen=True)
class Variant:
    name: str
    description: str
    compression: dict[str, Scalar]
    #: changes a loaded copy of the base in place; None: copy the packaged folder byte for byte
    apply: Callable[[Any], None] | None
    recipe: dict[str, Scalar | list[Scalar]]


VARIANTS = (
    Variant(
        "minilm-l6",
        "exact copy of the packaged all-MiniLM-L6-v2 (6 layers, 384-d, mean pooling, normalised)",
        {"method": "none"},
        None,
        {"base": BASE},
    ),
    Variant(
        "minilm-l3",
        "all-MiniLM-L6-v2 with only its first 3 of 6 transformer layers (no retraining)",
        {"method": "layer-drop", "layers": 3},
        lambda model: keep_first_layers(model, 3),
        {"base": BASE, "layers_kept": [0, 1, 2]},
    ),
    Variant(
        "minilm-l6-int8",
        "all-MiniLM-L6-v2 with every Linear weight int8 quantised-dequantised (symmetric, per output channel)",
        {"method": "int8-fake-quant", "bits": 8, "granularity": "per-output-channel"},
        _quantize,
        {"base": BASE, "applies_to": "Linear weights"},
    ),
    Variant(
        "minilm-l6-pruned50",
        "all-MiniLM-L6-v2 with 50% of each Linear weight matrix pruned by magnitude (unstructured)",
        {"method": "magnitude-pruning", "sparsity": 0.5, "scope": "per-matrix"},
        _prune(0.5),
        {"base": BASE, "applies_to": "Linear weights"},
    ),
)
TINY = ("minilm-l3",)
DEMO = ("minilm-l6", "minilm-l3")


def build(out: Path, profile: str = "full", on_model: Callable[[str], None] = lambda name: None) -> list[Path]:
    """Write the MiniLM variants of `profile` into out/<name>/ (see the module docstring)."""
    check_profile(profile)
    keep = {"tiny": TINY, "demo": DEMO}.get(profile)
    variants = [v for v in VARIANTS if keep is None or v.name in keep]
    base_path = packaged_minilm_path()
    base: Any = None
    folders = []
    for variant in variants:
        if variant.apply is not None and base is None:
            base = load_sentence_transformer(base_path)
        folders.append(_write_variant(out, variant, base_path, base))
        on_model(variant.name)
    return folders


def _write_variant(out: Path, variant: Variant, base_path: Path, base: Any) -> Path:
    """Save one variant into a temporary folder, check it, then rename it into place."""
    folder = out / variant.name
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{variant.name}.", dir=out))
    try:
        target = tmp / "model"
        if variant.apply is None:
            shutil.copytree(base_path, target)
            n_parameters = int(base_parameters(base_path))
        else:
            model = copy.deepcopy(base)
            variant.apply(model)
            with quiet_transformers():
                model.save(str(target), safe_serialization=True, create_model_card=False)
            n_parameters = sum(int(p.numel()) for p in model.parameters())
        _check_folder(target)
        card = ModelCard(
            name=variant.name,
            org="harness-zoo",
            family=FAMILY,
            kind=KIND,
            n_parameters=n_parameters,
            recipe=variant.recipe,
            reference=BASE,
            compression=variant.compression,
            tags=["zoo", FAMILY, "retrieval"],
            description=variant.description,
        )
        (target / "card.json").write_text(card.model_dump_json(indent=2) + "\n")
        if folder.exists():
            shutil.rmtree(folder)
        target.rename(folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def base_parameters(path: Path) -> int:
    """Floating-point parameters in the safetensors files of a folder (from their headers; integer buffers
    such as position ids are not parameters)."""
    from safetensors import safe_open

    total = 0
    for file in weight_files(path):
        with safe_open(str(file), framework="pt") as handle:
            for key in handle.keys():  # noqa: SIM118 (safe_open is not a dict)
                tensor = handle.get_slice(key)
                if tensor.get_dtype().startswith(("F", "BF")):
                    total += int(np.prod(tensor.get_shape()))
    return total


def _check_folder(folder: Path) -> None:
    files = weight_files(folder)
    pickles = [f.name for f in files if f.suffix in PICKLE_SUFFIXES]
    if pickles or not any(f.suffix == ".safetensors" for f in files):
        raise HarnessError(
            f"the saved encoder has pickle weights {pickles} or no safetensors file",
            where=str(folder),
            fix="upgrade sentence-transformers (safe_serialization must write model.safetensors)",
        )
