"""The GPU path, tested on the CPU: out-of-memory backoff (with a fake that raises
torch.cuda.OutOfMemoryError), automatic batches, and --dtype for every model kind."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from harness.errors import HarnessError
from harness.models import load_model
from harness.models.base import InferenceOptions, LoadOptions
from harness.models.batching import CUDA_START_BATCH, automatic_backoff, run_batches, run_item_batches


class FakeDevice:
    """A forward pass that runs out of memory above `capacity` samples, like a GPU would."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.tried: list[int] = []

    def __call__(self, start: int, stop: int) -> list[int]:
        self.tried.append(stop - start)
        if stop - start > self.capacity:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (fake)")
        return list(range(start, stop))


def test_out_of_memory_halves_the_batch_and_keeps_the_smaller_size() -> None:
    device = FakeDevice(capacity=300)
    batches = list(run_batches(1000, 1024, device, backoff=True))
    assert device.tried[:3] == [1000, 500, 250]  # the whole split, then halved until it fits
    assert [stop - start for start, stop, _ in batches] == [250, 250, 250, 250]  # never grown back
    assert [i for _, _, out in batches for i in out] == list(range(1000))  # every sample once, in order


def test_out_of_memory_without_backoff_or_at_one_sample_says_what_to_change() -> None:
    with pytest.raises(HarnessError, match="out of GPU memory at a batch of 64") as error:
        list(run_batches(100, 64, FakeDevice(capacity=10), backoff=False))
    assert "--batch-size" in error.value.one_line()
    with pytest.raises(HarnessError, match="out of GPU memory at a batch of 1"):
        list(run_batches(10, 8, FakeDevice(capacity=0), backoff=True))


def test_item_batches_size_each_batch_by_its_first_item() -> None:
    items = [5, 5, 3, 3, 3, 1, 1, 1, 1]
    seen: list[Sequence[int]] = []
    out = list(run_item_batches(items, lambda first: 6 // first, lambda b: seen.append(b) or len(b), backoff=False))
    assert [list(batch) for batch, _ in out] == [[5], [5], [3, 3], [3, 1], [1, 1, 1]]


def test_automatic_backoff_is_for_automatic_batches_on_cuda() -> None:
    assert automatic_backoff("cuda", None) and automatic_backoff("cuda:1", None)
    assert not automatic_backoff("cuda", 32) and not automatic_backoff("cpu", None)


def test_a_classifier_backs_off_from_the_cuda_start_batch(tiny_zoo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import harness.models.torch_classifier as module
    from harness.data.digits import digits_suite

    handle: Any = load_model(tiny_zoo / "digits-mlp-wide")
    split = digits_suite().split("test")
    expected = handle.classify(split, InferenceOptions())
    monkeypatch.setattr(module, "automatic_backoff", lambda device, size: size is None)  # as on CUDA
    forward, sizes = handle.module.forward_with_features, []

    def small_device(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        sizes.append(x.shape[0])
        if x.shape[0] > 100:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (fake)")
        return forward(x)  # type: ignore[no-any-return]

    monkeypatch.setattr(handle.module, "forward_with_features", small_device)
    got = handle.classify(split, InferenceOptions())
    assert sizes[0] == min(CUDA_START_BATCH, len(split)) and max(sizes[-3:]) <= 100
    for name in expected:
        np.testing.assert_allclose(got[name], expected[name], rtol=1e-5, atol=1e-6)
    with pytest.raises(HarnessError, match="out of GPU memory"):
        handle.classify(split, InferenceOptions(batch_size=512))  # a size the user chose is not changed


@pytest.mark.slow
def test_a_language_model_backs_off_and_scores_the_same(lm_zoo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import harness.models.causal_lm as module
    from harness.data import get_split, load_suite
    from harness.tasks import load_specs

    path = next(p for p in sorted(lm_zoo.iterdir()) if (p / "config.json").exists())
    handle: Any = load_model(path)
    texts = [d.text for d in get_split(load_suite(load_specs().get("lm_loss").dataset), "heldout")][:40]
    expected = handle.rolling_nll(texts, InferenceOptions())
    monkeypatch.setattr(module, "automatic_backoff", lambda device, size: size is None)
    device_logprobs, sizes = handle._device_logprobs, []

    def small_device(inputs: Sequence[Sequence[int]]) -> torch.Tensor:
        sizes.append(len(inputs))
        if len(inputs) > 4:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (fake)")
        return device_logprobs(inputs)  # type: ignore[no-any-return]

    monkeypatch.setattr(handle, "_device_logprobs", small_device)
    got = handle.rolling_nll(texts, InferenceOptions())
    first_fit = next(i for i, size in enumerate(sizes) if size <= 4)
    assert sizes[0] > 4 and all(size <= 4 for size in sizes[first_fit:])  # halved, then kept small
    np.testing.assert_allclose(got["nll_sum"], expected["nll_sum"], rtol=1e-6)
    assert np.array_equal(got["n_tokens"], expected["n_tokens"])


def _vit(folder: Path) -> Path:
    from transformers import ViTConfig, ViTForImageClassification

    torch.manual_seed(0)
    config = ViTConfig(
        image_size=8, patch_size=4, num_channels=1, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, num_labels=10,
    )  # fmt: skip
    ViTForImageClassification(config).save_pretrained(folder)
    return folder


@pytest.mark.slow
@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_every_model_kind_runs_in_half_precision(
    dtype: str, tiny_zoo: Path, lm_zoo: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Each kind honours --dtype: weights in that dtype, float32 outputs close to the float32 run's."""
    from harness.data.digits import digits_suite
    from harness.models.sentence_encoder import packaged_minilm_path

    split = digits_suite().split("test").head(64)
    lm = next(p for p in sorted(lm_zoo.iterdir()) if (p / "config.json").exists())
    vit = tmp_path_factory.mktemp("vit")
    texts = ["def parse(path): read a file", "the quick brown fox", "sum of squares"]
    runs = {
        tiny_zoo / "digits-mlp-wide": lambda h: h.classify(split, InferenceOptions())["logits"],
        _vit(vit): lambda h: h.classify(split, InferenceOptions())["logits"],
        packaged_minilm_path(): lambda h: h.encode(texts, InferenceOptions())["embeddings"],
        lm: lambda h: h.rolling_nll(texts, InferenceOptions())["nll_sum"],
    }
    for path, run in runs.items():
        full: Any = load_model(path, LoadOptions(dtype="float32"))
        half: Any = load_model(path, LoadOptions(dtype=dtype))
        assert half.settings["dtype"] == dtype and half.identity != full.identity  # never shares a cache entry
        weights = next(getattr(half, "module", None) or half.model for _ in [0]).parameters()
        assert next(iter(weights)).dtype == getattr(torch, dtype), path
        a, b = run(full), run(half)
        assert b.dtype in (np.float32, np.float64) and np.isfinite(b).all()
        scale = max(1.0, float(np.abs(a).max()))
        assert float(np.abs(a - b).max()) <= 0.05 * scale, (path, float(np.abs(a - b).max()))


def test_predictions_files_refuse_half_precision_in_one_line(tmp_path: Path) -> None:
    from harness.models import check_dtype, detect_loader

    file = tmp_path / "predictions.npz"
    np.savez(file, **{"test.ids": np.array(["a"]), "test.logits": np.zeros((1, 2), dtype=np.float32)})
    with pytest.raises(HarnessError) as error:
        check_dtype("bfloat16", detect_loader(tmp_path), tmp_path)
    assert "cannot run in bfloat16" in error.value.one_line() and "\n" not in error.value.one_line()
