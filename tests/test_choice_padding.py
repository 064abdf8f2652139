"""Multiple-choice items with different numbers of choices (ARC: 3 to 5): the language model pads the
missing choices' log-likelihoods with -inf; `logit_samples` makes them finite with a probability of
exactly 0, and every calibration metric then equals the one computed over each item's own choices
(references: scipy's softmax per item, torchmetrics' ECE, scipy's minimiser for the temperature)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax, softmax
from torchmetrics.functional.classification import multiclass_calibration_error

from harness.errors import HarnessError
from harness.metrics.calibration import TEMPERATURE_BOUNDS
from harness.schema import DatasetSource, TaskSpec
from harness.tasks.base import PADDED_LOGIT_GAP, SplitOutputs, logit_samples
from harness.tasks.calibration import ADAPTER


@dataclass
class Items:
    name: str
    y: np.ndarray
    ids: list[str]


def padded_items(rng: np.random.Generator, n: int, scale: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(logits with -inf padding, labels, widths) of n items with 2 to 5 choices."""
    widths = rng.integers(2, 6, n)
    logits = np.full((n, 5), -np.inf)
    labels = np.empty(n, dtype=np.int64)
    for i, width in enumerate(widths):
        labels[i] = rng.integers(0, width)
        logits[i, :width] = rng.normal(0.0, scale, width)
        logits[i, labels[i]] += rng.normal(1.0, 1.0)  # better than chance
    return logits, labels, widths


def own_choice_probs(logits: np.ndarray, widths: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    probs = np.zeros_like(logits)
    for i, width in enumerate(widths):
        probs[i, :width] = softmax(logits[i, :width] / temperature)
    return probs


def samples(name: str, logits: np.ndarray, labels: np.ndarray) -> object:
    ids = [f"{name}-{i}" for i in range(len(labels))]
    return logit_samples(name, SplitOutputs(Items(name, labels, ids), {"logits": logits}))


def test_padding_has_probability_zero_at_every_allowed_temperature() -> None:
    assert math.exp(-PADDED_LOGIT_GAP / TEMPERATURE_BOUNDS[1]) == 0.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_calibration_over_items_with_different_numbers_of_choices(seed: int) -> None:
    rng = np.random.default_rng(seed)
    calib_logits, calib_labels, calib_widths = padded_items(rng, 150, 2.0)
    test_logits, test_labels, test_widths = padded_items(rng, 400, 2.0)
    calib, test = samples("calib", calib_logits, calib_labels), samples("test", test_logits, test_labels)
    assert np.isfinite(test.values).all()
    padded = np.isneginf(test_logits)
    assert np.array_equal(test.values[~padded], test_logits[~padded])  # real choices unchanged

    spec = TaskSpec(
        name="calib-mc", version=1, adapter="calibration", description="", main_metric="ece",
        dataset=DatasetSource(name="synthlang-mc"), parameters={"n_bins": 15, "n_resamples": 200},
    )  # fmt: skip
    metrics = {m.name: m for m in ADAPTER.score(spec, {"calib": calib, "test": test}, seed=0).metrics}

    probs = own_choice_probs(test_logits, test_widths)
    assert metrics["accuracy"].value == pytest.approx(float(np.mean(probs.argmax(1) == test_labels)), abs=1e-12)
    expected_ece = multiclass_calibration_error(
        torch.from_numpy(probs), torch.from_numpy(test_labels), num_classes=5, n_bins=15, norm="l1"
    )
    assert metrics["ece"].value == pytest.approx(float(expected_ece), abs=1e-6)  # torchmetrics: float32
    nll = -np.mean([log_softmax(test_logits[i, :w])[test_labels[i]] for i, w in enumerate(test_widths)])
    assert metrics["nll"].value == pytest.approx(float(nll), rel=1e-10)
    onehot = np.eye(5)[test_labels]
    assert metrics["brier"].value == pytest.approx(float(np.mean(((probs - onehot) ** 2).sum(1))), rel=1e-10)

    def calib_nll(temperature: float) -> float:
        return -float(
            np.mean(
                [log_softmax(calib_logits[i, :w] / temperature)[calib_labels[i]] for i, w in enumerate(calib_widths)]
            )
        )

    best = minimize_scalar(calib_nll, bounds=TEMPERATURE_BOUNDS, method="bounded", options={"xatol": 1e-10})
    assert metrics["temperature"].value == pytest.approx(best.x, rel=1e-5)
    scaled = own_choice_probs(test_logits, test_widths, metrics["temperature"].value)
    expected_ts = multiclass_calibration_error(
        torch.from_numpy(scaled), torch.from_numpy(test_labels), num_classes=5, n_bins=15, norm="l1"
    )
    assert metrics["ece_ts"].value == pytest.approx(float(expected_ts), abs=1e-6)
    for metric in metrics.values():
        assert metric.ci_low is None or math.isfinite(metric.ci_low)


def test_bad_padding_is_refused() -> None:
    logits = np.array([[0.5, -np.inf, 1.0], [-np.inf, -np.inf, -np.inf]])
    with pytest.raises(HarnessError, match="no finite logit"):
        samples("test", logits, np.array([0, 0]))
    with pytest.raises(HarnessError, match="does not have"):
        samples("test", np.array([[0.5, -np.inf, 1.0]]), np.array([1]))
    with pytest.raises(HarnessError, match="NaN or inf"):
        samples("test", np.array([[0.5, np.nan, 1.0]]), np.array([0]))
    with pytest.raises(HarnessError, match="NaN or inf"):
        samples("test", np.array([[0.5, np.inf, 1.0]]), np.array([0]))
