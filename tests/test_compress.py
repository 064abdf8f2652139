"""Compression operators: pruning and simulated quantization on Linear and GPT-2 Conv1D weights."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from transformers import GPT2Config, GPT2LMHeadModel
from transformers.pytorch_utils import Conv1D

from harness.compress import (
    CompressionSpec,
    components,
    compress,
    describe,
    magnitude_prune,
    quantize,
    quantize_tensor,
)
from harness.schema import ModelCard

GPT2_COMPONENTS = ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")


def tiny_gpt2(seed: int = 0, n_layer: int = 2) -> GPT2LMHeadModel:
    torch.manual_seed(seed)
    config = GPT2Config(
        vocab_size=50, n_positions=32, n_embd=16, n_layer=n_layer, n_head=2, bos_token_id=0, eos_token_id=0
    )
    model = GPT2LMHeadModel(config)
    # Random init gives every matrix the same scale; make them differ as they do after training.
    with torch.no_grad():
        for i, name in enumerate(components(model)):
            model.get_submodule(name).weight.mul_(0.5 + i)
    return model.eval()


class TwoLayers(nn.Module):
    """Two Linear layers of very different scales, plus an embedding that must be left alone."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.embed = nn.Embedding(10, 8)
        self.small = nn.Linear(8, 4)  # 32 weights: fewer than half of all 96
        self.large = nn.Linear(8, 8)
        with torch.no_grad():
            self.small.weight.mul_(0.01)
            self.large.weight.mul_(10.0)


def weights(model: nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in model.named_parameters()}


# --------------------------------------------------------------------------- components


def test_gpt2_components_are_the_four_projections_of_each_layer() -> None:
    model = tiny_gpt2()
    expected = [f"transformer.h.{i}.{c}" for i in range(2) for c in GPT2_COMPONENTS]
    assert components(model) == expected
    with_embeddings = components(model, include_embeddings=True)
    # The LM head is tied to wte: one matrix, listed once under the embedding's name.
    assert with_embeddings == ["transformer.wte", "transformer.wpe", *expected]


def test_plain_module_components_exclude_embeddings_by_default() -> None:
    model = TwoLayers()
    assert components(model) == ["small", "large"]
    assert components(model, include_embeddings=True) == ["embed", "small", "large"]
    assert components(nn.Linear(3, 2)) == [""]


def test_untied_output_head_is_excluded_by_default() -> None:
    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=50,
        n_positions=32,
        n_embd=16,
        n_layer=1,
        n_head=2,
        bos_token_id=0,
        eos_token_id=0,
        tie_word_embeddings=False,
    )
    model = GPT2LMHeadModel(config)
    assert "lm_head" not in components(model)
    assert "lm_head" in components(model, include_embeddings=True)


# --------------------------------------------------------------------------- pruning


@pytest.mark.parametrize("sparsity", [0.0, 0.1, 0.33, 0.5, 0.77, 0.9, 1.0])
@pytest.mark.parametrize("scope", ["global", "per_component"])
def test_achieved_sparsity_matches_the_request(sparsity: float, scope: str) -> None:
    model = tiny_gpt2()
    stats = magnitude_prune(model, sparsity, scope=scope)  # type: ignore[arg-type]
    names = components(model)
    total = sum(model.get_submodule(n).weight.numel() for n in names)
    zeros = sum(int((model.get_submodule(n).weight == 0).sum()) for n in names)
    # Within one weight per matrix (rounding happens once globally, once per matrix otherwise).
    assert abs(zeros - sparsity * total) <= (1 if scope == "global" else len(names))
    assert stats["sparsity"] == pytest.approx(zeros / total)
    if scope == "per_component":
        for name in names:
            weight = model.get_submodule(name).weight
            assert abs(int((weight == 0).sum()) - sparsity * weight.numel()) <= 1
            assert stats[f"sparsity/{name}"] == pytest.approx(float((weight == 0).float().mean()))


def test_pruning_removes_the_smallest_magnitudes() -> None:
    model = tiny_gpt2()
    before = {n: model.get_submodule(n).weight.detach().clone() for n in components(model)}
    magnitude_prune(model, 0.4, scope="global")
    pruned = torch.cat([before[n][model.get_submodule(n).weight == 0].abs() for n in before])
    kept = torch.cat([before[n][model.get_submodule(n).weight != 0].abs() for n in before])
    assert pruned.max() <= kept.min()
    for name, weight in before.items():  # surviving weights are unchanged
        after = model.get_submodule(name).weight
        assert torch.equal(after[after != 0], weight[after != 0])


def test_global_and_per_component_differ_on_matrices_of_different_scales() -> None:
    global_model, local_model = TwoLayers(), TwoLayers()
    global_stats = magnitude_prune(global_model, 0.5, scope="global")
    local_stats = magnitude_prune(local_model, 0.5, scope="per_component")
    # One global threshold removes the whole small-scale matrix first.
    assert global_stats["sparsity/small"] == 1.0
    assert global_stats["sparsity/large"] == 0.25
    assert local_stats["sparsity/small"] == 0.5
    assert local_stats["sparsity/large"] == 0.5
    assert global_stats["sparsity"] == local_stats["sparsity"] == 0.5
    assert not torch.equal(global_model.small.weight, local_model.small.weight)


def test_ties_are_broken_by_position_deterministically() -> None:
    layer = nn.Linear(4, 2, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1.0, -1.0, 1.0, 2.0], [-1.0, 1.0, 3.0, 1.0]]))
    magnitude_prune(layer, 0.5)
    expected = torch.tensor([[0.0, 0.0, 0.0, 2.0], [0.0, 1.0, 3.0, 1.0]])
    assert torch.equal(layer.weight, expected)
    magnitude_prune(layer, 0.5)  # already at the requested sparsity: nothing more changes
    assert torch.equal(layer.weight, expected)


def test_pruning_leaves_biases_layernorms_and_embeddings_alone() -> None:
    model = tiny_gpt2()
    before = weights(model)
    magnitude_prune(model, 0.7)
    after = weights(model)
    target_weights = {f"{n}.weight" for n in components(model)}
    for name, tensor in before.items():
        if name not in target_weights:
            assert torch.equal(after[name], tensor), name


def test_bad_pruning_arguments_fail_clearly() -> None:
    model = tiny_gpt2()
    with pytest.raises(ValueError, match="sparsity"):
        magnitude_prune(model, 1.5)
    with pytest.raises(ValueError, match="scope"):
        magnitude_prune(model, 0.5, scope="layer")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown components"):
        magnitude_prune(model, 0.5, targets=["transformer.h.9.attn.c_attn"])
    with pytest.raises(TypeError, match="list of component names"):
        magnitude_prune(model, 0.5, targets="transformer.h.0.attn.c_attn")


# --------------------------------------------------------------------------- quantization


def _scales(weight: torch.Tensor, bits: int, channel_axis: int) -> torch.Tensor:
    return weight.abs().amax(dim=1 - channel_axis, keepdim=True) / (2 ** (bits - 1) - 1)


@pytest.mark.parametrize("bits", [2, 3, 4, 8])
def test_quantization_error_and_distinct_values_per_channel(bits: int) -> None:
    model = tiny_gpt2()
    before = {n: model.get_submodule(n).weight.detach().clone() for n in components(model)}
    stats = quantize(model, bits)
    for name, original in before.items():
        after = model.get_submodule(name).weight.detach()
        scale = _scales(original, bits, channel_axis=1)  # Conv1D: output channels are columns
        assert ((after - original).abs() <= scale / 2 + 1e-7).all()
        for column in range(after.shape[1]):
            assert after[:, column].unique().numel() <= 2**bits - 1
            # Dequantized values are integer multiples of the channel's scale.
            ratio = after[:, column] / scale[0, column]
            assert torch.allclose(ratio, ratio.round(), atol=1e-4)
    assert stats["bits"] == bits
    assert stats["max_abs_error"] > 0


def test_zero_channels_stay_zero_and_per_tensor_uses_one_scale() -> None:
    weight = torch.randn(4, 6)
    weight[2] = 0.0
    out, scale = quantize_tensor(weight, 4, channel_axis=0)
    assert torch.equal(out[2], torch.zeros(6))
    assert scale.shape == (4, 1)
    out, scale = quantize_tensor(weight, 4, channel_axis=None)
    assert scale.numel() == 1
    assert out.unique().numel() <= 15
    assert ((out - weight).abs() <= scale / 2 + 1e-7).all()


def test_conv1d_is_quantized_like_a_linear_with_the_transposed_weight() -> None:
    torch.manual_seed(3)
    conv = Conv1D(nf=5, nx=7)  # weight (in=7, out=5)
    with torch.no_grad():
        conv.weight.normal_()
        conv.weight[:, 1] *= 100.0  # one output channel with a much larger scale
        conv.bias.normal_()
    linear = nn.Linear(7, 5)
    with torch.no_grad():
        linear.weight.copy_(conv.weight.t())
        linear.bias.copy_(conv.bias)
    x = torch.randn(3, 7)
    assert torch.allclose(conv(x), linear(x), atol=1e-4)
    for bits in (2, 4, 8):
        c, lin = copy.deepcopy(conv), copy.deepcopy(linear)
        quantize(c, bits)
        quantize(lin, bits)
        assert torch.equal(c.weight.t(), lin.weight)
        assert torch.allclose(c(x), lin(x), atol=1e-3)
    # The channel with the large scale keeps its own scale: small channels are not wiped out by it.
    quantize(conv, 4)
    assert (conv.weight[:, 0] != 0).any()


def test_conv1d_is_pruned_like_a_linear_with_the_transposed_weight() -> None:
    torch.manual_seed(4)
    conv = Conv1D(nf=6, nx=4)
    with torch.no_grad():
        conv.weight.normal_()
    linear = nn.Linear(4, 6, bias=False)
    with torch.no_grad():
        linear.weight.copy_(conv.weight.t())
    magnitude_prune(conv, 0.5)
    magnitude_prune(linear, 0.5)
    assert torch.equal(conv.weight.t() == 0, linear.weight == 0)


@torch.no_grad()
def test_int8_keeps_logits_close_and_int2_does_not() -> None:
    model = tiny_gpt2()
    tokens = torch.randint(0, 50, (4, 24), generator=torch.Generator().manual_seed(0))
    reference = model(input_ids=tokens).logits

    def change(bits: int) -> tuple[float, float]:
        """Mean |logit change| in units of the logits' spread, and top-1 agreement with the original."""
        candidate = copy.deepcopy(model)
        quantize(candidate, bits)
        logits = candidate(input_ids=tokens).logits
        drift = float((logits - reference).abs().mean() / reference.std())
        return drift, float((logits.argmax(-1) == reference.argmax(-1)).float().mean())

    drift8, agreement8 = change(8)
    drift2, agreement2 = change(2)
    assert drift8 < 0.02
    assert agreement8 > 0.95
    assert drift2 > 0.3
    assert agreement2 < 0.5


def test_bad_bits_fail_clearly() -> None:
    with pytest.raises(ValueError, match="bits"):
        quantize(tiny_gpt2(), 1)
    with pytest.raises(ValueError, match="bits"):
        quantize(tiny_gpt2(), 16)


# --------------------------------------------------------------------------- targets and specs


@pytest.mark.parametrize(
    "spec",
    [
        CompressionSpec("prune", sparsity=0.6, targets=("transformer.h.1.mlp.c_fc",)),
        CompressionSpec("prune", sparsity=0.6, scope="per_component", targets=("transformer.h.0.attn.c_attn",)),
        CompressionSpec("quantize", bits=2, targets=("transformer.h.0.attn.c_proj",)),
    ],
)
def test_targets_change_the_named_component_only(spec: CompressionSpec) -> None:
    model = tiny_gpt2()
    before = weights(model)
    compress(model, spec)
    after = weights(model)
    assert spec.targets is not None
    changed = {name for name in before if not torch.equal(before[name], after[name])}
    assert changed == {f"{spec.targets[0]}.weight"}


def test_every_component_can_be_targeted_alone() -> None:
    reference = tiny_gpt2()
    for name in components(reference):
        model = copy.deepcopy(reference)
        stats = magnitude_prune(model, 0.5, targets=[name])
        assert set(stats) == {"sparsity", f"sparsity/{name}"}
        assert stats["sparsity"] == pytest.approx(0.5, abs=1 / model.get_submodule(name).weight.numel())


def test_compress_dispatches_and_describe_fits_a_model_card() -> None:
    model = tiny_gpt2()
    stats = compress(model, CompressionSpec("prune", sparsity=0.5, scope="per_component"))
    assert stats["sparsity"] == pytest.approx(0.5, abs=1e-3)
    stats = compress(model, CompressionSpec("quantize", bits=4))
    assert stats["bits"] == 4
    for spec in (
        CompressionSpec("prune", sparsity=0.5),
        CompressionSpec("quantize", bits=8, targets=("transformer.h.0.mlp.c_fc", "transformer.h.1.mlp.c_fc")),
    ):
        described = describe(spec)
        assert all(isinstance(v, str | int | float | bool) for v in described.values())
        card = ModelCard(name="x", reference="harness-zoo/base", compression=described)
        assert card.compression == described
    assert describe(CompressionSpec("quantize", bits=4))["bits"] == 4
    assert describe(CompressionSpec("prune", sparsity=0.3, targets=("a", "b")))["targets"] == "a,b"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"method": "prune"}, "sparsity"),
        ({"method": "prune", "sparsity": 0.5, "bits": 4}, "no bits"),
        ({"method": "quantize", "bits": 1}, "bits"),
        ({"method": "quantize", "bits": 4, "sparsity": 0.5}, "no sparsity"),
        ({"method": "distill"}, "method"),
        ({"method": "prune", "sparsity": 0.5, "targets": ()}, "at least one"),
    ],
)
def test_bad_specs_fail_at_construction(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        CompressionSpec(**kwargs)  # type: ignore[arg-type]
