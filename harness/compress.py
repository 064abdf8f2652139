"""Compression operators on any torch module: unstructured magnitude pruning and simulated quantization.

Every operator works in place on the weight matrices of a model, addressed by name (`components`), and
returns statistics of what it changed, so a compressed checkpoint can be saved as a normal checkpoint and
described on its model card (`describe`).

Conventions
- A component is the weight matrix of an `nn.Linear` or of a transformers `Conv1D` (GPT-2's projections),
  named by its module path, e.g. "transformer.h.0.attn.c_attn". Biases, LayerNorms and other parameters
  are never touched. Embeddings (`nn.Embedding`) and the output head (`model.get_output_embeddings()`,
  tied to the input embedding in GPT-2) are excluded unless `include_embeddings=True`: they are lookup
  tables rather than projections, and pruning or quantizing them changes every token's representation at
  once (the usual practice in LLM pruning and weight-only quantization papers is to leave them dense).
  A matrix shared by several modules (tied weights) is one component, named after the first module that
  holds it in `named_modules()` order.
- Output channels: an `nn.Linear` weight is (out_features, in_features), so an output channel is a row;
  a `Conv1D` weight is (in_features, out_features), so an output channel is a column; an `nn.Embedding`
  weight is (num_embeddings, dim) and a channel is one token's row (for a tied output head that row is
  also the head's output channel).
- Magnitude pruning is unstructured: the k weights of smallest |w| are set to 0 with k = round(sparsity *
  n) (Python's round, half to even). Ties in |w| are broken by position (flattened index, lower first),
  so the result is deterministic. "global" ranks all targeted weights together (one threshold; matrices
  with smaller weights lose more); "per_component" prunes each matrix to the same sparsity. Weights that
  are already 0 count as pruned first (their |w| is the smallest), so pruning a pruned model again to the
  same sparsity changes nothing.
- Quantization is simulated (quantize-dequantize, weights stay float32): symmetric, round to nearest
  (ties to even, as torch.round), q = clamp(round(w / s), -Q, Q) with Q = 2**(bits - 1) - 1 and
  s = max|w| / Q per output channel ("per_channel") or over the whole matrix ("per_tensor"); w' = q * s.
  So |w' - w| <= s / 2 for every weight, a channel holds at most 2Q + 1 = 2**bits - 1 distinct values,
  and a channel of zeros (s = 0) stays zero. `bits` lies in 2..8.

Example:
    >>> layer = torch.nn.Linear(4, 2, bias=False)
    >>> stats = magnitude_prune(layer, 0.5)  # a bare Linear is its own component, named ""
    >>> stats["sparsity"]
    0.5
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

Scope = Literal["global", "per_component"]
Granularity = Literal["per_channel", "per_tensor"]
Method = Literal["prune", "quantize"]

MIN_BITS = 2
MAX_BITS = 8


# --------------------------------------------------------------------------- components


def _conv1d_type() -> type[nn.Module] | None:
    try:
        from transformers.pytorch_utils import Conv1D
    except ImportError:  # transformers is optional for plain torch models
        return None
    return Conv1D


def _output_head(model: nn.Module) -> nn.Module | None:
    getter = getattr(model, "get_output_embeddings", None)
    if not callable(getter):
        return None
    try:
        head = getter()
    except (NotImplementedError, AttributeError):
        return None
    return head if isinstance(head, nn.Module) else None


def _component_modules(model: nn.Module, include_embeddings: bool) -> dict[str, nn.Module]:
    conv1d = _conv1d_type()
    matrix_types: tuple[type[nn.Module], ...] = (nn.Linear,) if conv1d is None else (nn.Linear, conv1d)
    head = _output_head(model)
    excluded: set[int] = set()
    if not include_embeddings:
        excluded = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
        if head is not None and isinstance(getattr(head, "weight", None), torch.Tensor):
            excluded.add(id(head.weight))
    found: dict[str, nn.Module] = {}
    seen: set[int] = set()
    for name, module in model.named_modules():
        is_matrix = isinstance(module, matrix_types) or (include_embeddings and isinstance(module, nn.Embedding))
        weight = getattr(module, "weight", None)
        if not is_matrix or not isinstance(weight, torch.Tensor) or weight.ndim != 2:
            continue
        if id(weight) in excluded or id(weight) in seen:
            continue
        seen.add(id(weight))
        found[name] = module
    return found


def components(model: nn.Module, include_embeddings: bool = False) -> list[str]:
    """Names of the weight matrices a compression can target, in `named_modules()` order.

    Every `nn.Linear` and transformers `Conv1D` weight; with `include_embeddings`, also `nn.Embedding`
    weights and the output head (a tied head is listed once, under the embedding's name). For GPT-2:
    transformer.h.{i}.attn.c_attn, transformer.h.{i}.attn.c_proj, transformer.h.{i}.mlp.c_fc and
    transformer.h.{i}.mlp.c_proj for each layer i. A bare `nn.Linear` passed as the model is named "".
    """
    return list(_component_modules(model, include_embeddings))


def _select(model: nn.Module, targets: Sequence[str] | None, include_embeddings: bool) -> dict[str, nn.Module]:
    available = _component_modules(model, include_embeddings=True if targets is not None else include_embeddings)
    if targets is None:
        return available
    if isinstance(targets, str):
        raise TypeError(f"targets must be a list of component names, not the string {targets!r}")
    unknown = [t for t in targets if t not in available]
    if unknown:
        raise ValueError(f"unknown components {unknown}; compressible components are: {', '.join(available) or 'none'}")
    if len(set(targets)) != len(targets):
        raise ValueError(f"targets name a component twice: {list(targets)}")
    return {name: available[name] for name in targets}


def _output_channel_axis(module: nn.Module) -> int:
    """The axis of `module.weight` that indexes output channels (the other axis is reduced over)."""
    conv1d = _conv1d_type()
    return 1 if conv1d is not None and isinstance(module, conv1d) else 0


def _weight(module: nn.Module) -> torch.Tensor:
    weight = module.weight
    assert isinstance(weight, torch.Tensor)
    return weight


# --------------------------------------------------------------------------- pruning


def _prune_mask(magnitudes: torch.Tensor, n_prune: int) -> torch.Tensor:
    """Boolean mask of the n_prune smallest entries of a 1-D tensor; ties go to the lower index."""
    keep = torch.ones(magnitudes.numel(), dtype=torch.bool)
    if n_prune <= 0:
        return keep
    # A stable sort orders equal magnitudes by index, which makes tie handling deterministic.
    order = torch.sort(magnitudes, stable=True).indices
    keep[order[:n_prune]] = False
    return keep


@torch.no_grad()
def magnitude_prune(
    model: nn.Module,
    sparsity: float,
    scope: Scope = "global",
    targets: Sequence[str] | None = None,
    include_embeddings: bool = False,
) -> dict[str, float]:
    """Zero the smallest-magnitude weights of the targeted matrices, in place; return achieved sparsities.

    `sparsity` in [0, 1] is the share of zeros asked for. scope "global": the round(sparsity * n) weights
    of smallest |w| over all targeted matrices together (n = their total size); "per_component": each
    matrix separately, round(sparsity * n_matrix) of its own. `targets` (names from `components`;
    embeddings may be named explicitly) restricts the operation to those matrices; None means every
    component (embeddings only with `include_embeddings`). Ties and rounding are described in the module
    docstring. Returns {"sparsity": overall share of zeros in the targeted matrices,
    "sparsity/<name>": share of zeros of each matrix}.
    """
    if not 0.0 <= sparsity <= 1.0:
        raise ValueError(f"sparsity must lie in [0, 1], got {sparsity}")
    if scope not in ("global", "per_component"):
        raise ValueError(f"scope must be 'global' or 'per_component', got {scope!r}")
    selected = _select(model, targets, include_embeddings)
    if not selected:
        raise ValueError("the model has no compressible components (nn.Linear or Conv1D weights)")
    weights = {name: _weight(module) for name, module in selected.items()}
    if scope == "global":
        flat = torch.cat([w.detach().abs().reshape(-1).float().cpu() for w in weights.values()])
        keep = _prune_mask(flat, round(sparsity * flat.numel()))
        offset = 0
        for weight in weights.values():
            part = keep[offset : offset + weight.numel()].reshape(weight.shape).to(weight.device)
            weight.masked_fill_(~part, 0.0)
            offset += weight.numel()
    else:
        for weight in weights.values():
            flat = weight.detach().abs().reshape(-1).float().cpu()
            keep = _prune_mask(flat, round(sparsity * flat.numel()))
            weight.masked_fill_(~keep.reshape(weight.shape).to(weight.device), 0.0)
    return _sparsity_stats(weights)


def _sparsity_stats(weights: dict[str, torch.Tensor]) -> dict[str, float]:
    zeros = {name: int((w == 0).sum()) for name, w in weights.items()}
    total = sum(w.numel() for w in weights.values())
    stats = {"sparsity": sum(zeros.values()) / total}
    stats.update({f"sparsity/{name}": zeros[name] / w.numel() for name, w in weights.items()})
    return stats


# --------------------------------------------------------------------------- quantization


def quantize_tensor(weight: torch.Tensor, bits: int, channel_axis: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric round-to-nearest quantize-dequantize of a 2-D tensor; returns (dequantized, scale).

    `channel_axis` is the output-channel axis (one scale per channel) or None (one scale for the tensor).
    scale = max|w| / (2**(bits-1) - 1), computed in float32; where it is 0 the weights stay 0. The scale
    is returned with the tensor's number of dimensions so it broadcasts against `weight`.
    """
    if not MIN_BITS <= bits <= MAX_BITS or isinstance(bits, bool):
        raise ValueError(f"bits must be an integer in {MIN_BITS}..{MAX_BITS}, got {bits!r}")
    if weight.ndim != 2:
        raise ValueError(f"quantize_tensor expects a 2-D weight, got shape {tuple(weight.shape)}")
    levels = 2 ** (bits - 1) - 1
    w = weight.detach().float()
    max_abs = w.abs().amax().reshape(1, 1) if channel_axis is None else w.abs().amax(dim=1 - channel_axis, keepdim=True)
    scale = max_abs / levels
    safe = torch.where(scale > 0, scale, torch.ones_like(scale))
    q = torch.clamp(torch.round(w / safe), -levels, levels)
    dequantized = torch.where(scale > 0, q * scale, torch.zeros_like(w))
    return dequantized.to(weight.dtype), scale


@torch.no_grad()
def quantize(
    model: nn.Module,
    bits: int,
    targets: Sequence[str] | None = None,
    granularity: Granularity = "per_channel",
    include_embeddings: bool = False,
) -> dict[str, float]:
    """Simulated symmetric weight quantization to `bits` (2..8), in place, per output channel by default.

    See the module docstring for the formula and the output-channel axis of each module type. `targets`
    restricts the operation to the named components, as in `magnitude_prune`. Returns {"bits", "max_abs_error": the largest
    |w' - w| over the targeted weights, "mean_abs_error", "relative_error": ||w' - w|| / ||w|| over all
    targeted weights together}.
    """
    if granularity not in ("per_channel", "per_tensor"):
        raise ValueError(f"granularity must be 'per_channel' or 'per_tensor', got {granularity!r}")
    selected = _select(model, targets, include_embeddings)
    if not selected:
        raise ValueError("the model has no compressible components (nn.Linear or Conv1D weights)")
    max_error = 0.0
    error_sum = 0.0
    squared_error = 0.0
    squared_norm = 0.0
    count = 0
    for module in selected.values():
        weight = _weight(module)
        axis = _output_channel_axis(module) if granularity == "per_channel" else None
        dequantized, _ = quantize_tensor(weight, bits, axis)
        error = (dequantized.float() - weight.detach().float()).abs()
        max_error = max(max_error, float(error.max()))
        error_sum += float(error.sum())
        squared_error += float((error**2).sum())
        squared_norm += float((weight.detach().float() ** 2).sum())
        count += weight.numel()
        weight.copy_(dequantized)
    return {
        "bits": float(bits),
        "max_abs_error": max_error,
        "mean_abs_error": error_sum / count,
        "relative_error": (squared_error / squared_norm) ** 0.5 if squared_norm > 0 else 0.0,
    }


# --------------------------------------------------------------------------- specs


@dataclass(frozen=True)
class CompressionSpec:
    """What to do to a reference model: `method` "prune" (with `sparsity`, `scope`) or "quantize" (with
    `bits`, `granularity`), restricted to `targets` (component names) when given.

    Checked at construction, so a spec read from a card or a command line fails early with a clear message.
    """

    method: Method
    sparsity: float | None = None
    bits: int | None = None
    scope: Scope = "global"
    granularity: Granularity = "per_channel"
    targets: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.method == "prune":
            if self.sparsity is None or not 0.0 <= self.sparsity <= 1.0:
                raise ValueError(f"a prune spec needs a sparsity in [0, 1], got {self.sparsity!r}")
            if self.bits is not None:
                raise ValueError("a prune spec takes no bits")
            if self.scope not in ("global", "per_component"):
                raise ValueError(f"scope must be 'global' or 'per_component', got {self.scope!r}")
        elif self.method == "quantize":
            if self.bits is None or isinstance(self.bits, bool) or not MIN_BITS <= self.bits <= MAX_BITS:
                raise ValueError(f"a quantize spec needs bits in {MIN_BITS}..{MAX_BITS}, got {self.bits!r}")
            if self.sparsity is not None:
                raise ValueError("a quantize spec takes no sparsity")
            if self.granularity not in ("per_channel", "per_tensor"):
                raise ValueError(f"granularity must be 'per_channel' or 'per_tensor', got {self.granularity!r}")
        else:
            raise ValueError(f"method must be 'prune' or 'quantize', got {self.method!r}")
        if self.targets is not None:
            object.__setattr__(self, "targets", tuple(self.targets))
            if not self.targets:
                raise ValueError("targets must name at least one component (None means all)")


def compress(model: nn.Module, spec: CompressionSpec) -> dict[str, float]:
    """Apply `spec` to `model` in place and return the operator's statistics."""
    if spec.method == "prune":
        assert spec.sparsity is not None
        return magnitude_prune(model, spec.sparsity, scope=spec.scope, targets=spec.targets)
    assert spec.bits is not None
    return quantize(model, spec.bits, targets=spec.targets, granularity=spec.granularity)


def describe(spec: CompressionSpec) -> dict[str, str | int | float | bool | None]:
    """A flat dict of scalars for `ModelCard.compression`.

    Keys: "method"; for pruning "sparsity", "scope", "criterion" ("magnitude"), "structure"
    ("unstructured"); for quantization "bits", "granularity", "scheme" ("symmetric"), "rounding"
    ("nearest"), "simulated" (True: weights are stored dequantized in float32); "targets": "all" or the
    component names joined by ",".
    """
    out: dict[str, str | int | float | bool | None] = {"method": spec.method}
    if spec.method == "prune":
        out.update(sparsity=spec.sparsity, scope=spec.scope, criterion="magnitude", structure="unstructured")
    else:
        out.update(bits=spec.bits, granularity=spec.granularity, scheme="symmetric", rounding="nearest", simulated=True)
    out["targets"] = "all" if spec.targets is None else ",".join(spec.targets)
    return out
