"""Calibration metrics against independent implementations (torchmetrics, scikit-learn)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, brier_score_loss, log_loss
from torchmetrics.functional.classification import multiclass_calibration_error

from harness.metrics import calibration as cal


def random_case(seed: int, n: int, k: int, scale: float) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, k)) * scale
    labels = rng.integers(0, k, size=n)
    return logits, labels


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize(("n", "k", "scale"), [(50, 2, 1.0), (500, 10, 3.0), (2000, 5, 0.3), (7, 3, 8.0)])
def test_ece_matches_torchmetrics(seed: int, n: int, k: int, scale: float) -> None:
    logits, labels = random_case(seed, n, k, scale)
    probs = cal.softmax(logits)
    expected = multiclass_calibration_error(
        torch.as_tensor(probs), torch.as_tensor(labels), num_classes=k, n_bins=15, norm="l1"
    ).item()
    assert cal.expected_calibration_error(probs, labels, n_bins=15) == pytest.approx(
        expected, abs=1e-6
    )  # torchmetrics works in float32


@pytest.mark.parametrize("seed", range(8))
def test_nll_brier_accuracy_match_sklearn(seed: int) -> None:
    logits, labels = random_case(seed, 300, 6, 4.0)
    probs = cal.softmax(logits)
    assert cal.negative_log_likelihood(logits, labels) == pytest.approx(
        log_loss(labels, probs, labels=range(6)), rel=1e-9
    )
    assert cal.brier_score(probs, labels) == pytest.approx(
        brier_score_loss(labels, probs, labels=list(range(6)), scale_by_half=False), rel=1e-9
    )
    assert cal.accuracy(probs, labels) == accuracy_score(labels, probs.argmax(axis=1))


def test_known_values() -> None:
    # One sample, confidence 0.8, correct: ECE = |1 - 0.8|.
    assert cal.expected_calibration_error(np.array([[0.8, 0.2]]), np.array([0])) == pytest.approx(0.2)
    # Logits [0, 0], label 1: NLL = ln 2. Brier of a confident miss = 2.
    assert cal.negative_log_likelihood(np.array([[0.0, 0.0]]), np.array([1])) == pytest.approx(np.log(2))
    assert cal.brier_score(np.array([[1.0, 0.0]]), np.array([1])) == pytest.approx(2.0)
    # Two bins hand-computed: conf .95 correct + conf .55 wrong (15 bins) -> (.05 + .55) / 2.
    probs = np.array([[0.95, 0.05], [0.55, 0.45]])
    assert cal.expected_calibration_error(probs, np.array([0, 1])) == pytest.approx(0.30)


def test_bin_edges_follow_the_a_b_closed_convention() -> None:
    # With 10 bins, confidence 0.5 belongs to bin (0.4, 0.5] and 0.5000001 to (0.5, 0.6].
    edges = cal.equal_width_bin(np.array([0.0, 0.1, 0.5, 0.5000001, 1.0]), 10)
    assert edges.tolist() == [0, 0, 4, 5, 9]


def test_edge_cases_single_class_all_correct_ties() -> None:
    # Single class: confidence 1, always correct -> perfectly calibrated.
    probs = np.ones((5, 1))
    labels = np.zeros(5, dtype=int)
    assert cal.expected_calibration_error(probs, labels) == 0.0
    assert cal.accuracy(probs, labels) == 1.0
    assert cal.brier_score(probs, labels) == 0.0
    # Ties: argmax takes the lowest index.
    tied = np.array([[0.5, 0.5], [0.5, 0.5]])
    assert cal.accuracy(tied, np.array([0, 1])) == 0.5
    assert cal.expected_calibration_error(tied, np.array([0, 1])) == pytest.approx(0.0)
    # Extreme logits stay finite in NLL.
    assert np.isfinite(cal.negative_log_likelihood(np.array([[1e4, -1e4]]), np.array([1])))


def test_reliability_bins_reproduce_ece() -> None:
    logits, labels = random_case(3, 400, 4, 2.0)
    probs = cal.softmax(logits)
    bins = cal.reliability_bins(probs, labels)
    count = np.array(bins["count"])
    gap = np.abs(np.array(bins["accuracy"]) - np.array(bins["confidence"]))
    assert count.sum() == 400
    assert (count * gap).sum() / 400 == pytest.approx(cal.expected_calibration_error(probs, labels))


@pytest.mark.parametrize(
    ("probs", "labels", "message"),
    [
        (np.zeros((0, 3)), np.zeros(0, dtype=int), "no samples"),
        (np.array([[0.5, np.nan]]), np.array([0]), "NaN or inf"),
        (np.array([[0.5, 0.5]]), np.array([2]), "labels must lie"),
        (np.array([0.5, 0.5]), np.array([0]), "2-D"),
    ],
)
def test_bad_inputs_raise_clear_errors(probs: np.ndarray, labels: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        cal.expected_calibration_error(probs, labels)
