"""All bootstrap resamples of the calibration metrics at once (`resampled_calibration`) against the metrics
computed on each resample's drawn rows (`calibration_summary`, `debiased_squared_ece` and its standard error, the
scaled ece and nll),
on random and adversarial inputs: ties across samples, saturated confidences, fewer samples than bins, one
class, all correct. Also `Bootstrap.count_chunks` against the index resamples it counts."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.metrics import calibration as cal
from harness.stats import Bootstrap

NAMES = (
    "accuracy",
    "ece",
    "ece_em",
    "mce",
    "classwise_ece",
    "brier",
    "nll",
    "aurc",
    "ece_sq_debiased",
    "ece_sq_debiased_se",
)


def per_resample(logits: np.ndarray, labels: np.ndarray, bootstrap: Bootstrap, n_bins: int) -> dict[str, np.ndarray]:
    """The reference: every metric on the drawn rows, one resample at a time."""
    confidence, prediction = cal.top_label(cal.softmax(logits))
    correct = (prediction == labels).astype(np.float64)
    out: dict[str, list[float]] = {name: [] for name in NAMES}
    for chunk in bootstrap.chunks():
        for rows in chunk:
            values = cal.calibration_summary(logits[rows], labels[rows], n_bins)
            values["ece_sq_debiased"] = cal.debiased_squared_ece(confidence[rows], correct[rows], n_bins)
            values["ece_sq_debiased_se"] = cal.debiased_squared_ece_stderr(confidence[rows], correct[rows], n_bins)
            for name in NAMES:
                out[name].append(values[name])
    return {name: np.asarray(values) for name, values in out.items()}


def all_at_once(logits: np.ndarray, labels: np.ndarray, bootstrap: Bootstrap, n_bins: int) -> dict[str, np.ndarray]:
    terms = cal.SampleTerms.of(logits, labels)
    chunks = [cal.resampled_calibration(weights, terms, n_bins) for weights in bootstrap.count_chunks()]
    return {name: np.concatenate([chunk[name] for chunk in chunks]) for name in NAMES}


def assert_same(logits: np.ndarray, labels: np.ndarray, n_resamples: int = 60, n_bins: int = 15) -> None:
    bootstrap = Bootstrap(n=len(labels), n_resamples=n_resamples, seed=7)
    expected, got = per_resample(logits, labels, bootstrap, n_bins), all_at_once(logits, labels, bootstrap, n_bins)
    for name in NAMES:
        # a standard error is a square root: compared squared, so rounding of a variance near 0 is not magnified
        power = 2 if name.endswith("_se") else 1
        np.testing.assert_allclose(got[name] ** power, expected[name] ** power, rtol=1e-9, atol=1e-12, err_msg=name)


@pytest.mark.parametrize(("n", "k", "scale"), [(1, 2, 1.0), (5, 3, 2.0), (14, 10, 0.5), (271, 10, 4.0), (600, 4, 1.0)])
def test_random_logits(n: int, k: int, scale: float) -> None:
    rng = np.random.default_rng(n * 31 + k)
    assert_same(rng.normal(size=(n, k)) * scale, rng.integers(0, k, n))


def test_ties_across_samples_share_their_mean_correctness() -> None:
    # integer logits: many samples share a confidence, with mixed correctness (ece_em boundaries and aurc)
    rng = np.random.default_rng(3)
    logits = rng.integers(-2, 3, size=(200, 4)).astype(np.float64)
    logits[::4] = logits[0]
    assert_same(logits, rng.integers(0, 4, 200), n_resamples=120)


def test_saturated_confidence_all_correct_one_class_and_few_samples() -> None:
    rng = np.random.default_rng(5)
    saturated = rng.normal(size=(50, 3)) * 400.0  # confidence exactly 1.0 for most rows
    assert_same(saturated, rng.integers(0, 3, 50))
    sure = np.eye(4)[rng.integers(0, 4, 30)] * 9.0
    assert_same(sure, sure.argmax(axis=1))  # all correct: aurc 0 in every resample
    assert_same(np.zeros((20, 1)), np.zeros(20, dtype=np.int64))  # one class
    assert_same(rng.normal(size=(7, 5)), rng.integers(0, 5, 7), n_bins=15)  # fewer samples than bins


def test_the_degenerate_resamples_stay_exact() -> None:
    # bootstrap_metric recognises a degenerate distribution by exact equality with 0 or 1
    logits = np.eye(3)[[0, 1, 2, 0, 1]] * 5.0
    terms = cal.SampleTerms.of(logits, np.array([0, 1, 2, 0, 1]))
    for weights in Bootstrap(n=5, n_resamples=40, seed=1).count_chunks():
        values = cal.resampled_calibration(weights, terms)
        assert np.all(values["accuracy"] == 1.0) and np.all(values["aurc"] == 0.0)


@settings(max_examples=40, deadline=None)
@given(
    st.integers(1, 40),
    st.integers(1, 6),
    st.integers(0, 2**16),
    st.sampled_from([1, 3, 15]),
    st.booleans(),
)
def test_property_any_small_input(n: int, k: int, seed: int, n_bins: int, rounded: bool) -> None:
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, k)) * 3.0
    if rounded:
        logits = np.round(logits)
    assert_same(logits, rng.integers(0, k, n), n_resamples=25, n_bins=n_bins)


def test_only_limits_the_names() -> None:
    rng = np.random.default_rng(0)
    terms = cal.SampleTerms.of(rng.normal(size=(30, 3)), rng.integers(0, 3, 30))
    weights = next(Bootstrap(n=30, n_resamples=10).count_chunks())
    assert set(cal.resampled_calibration(weights, terms, only=("ece", "nll"))) == {"ece", "nll"}


@pytest.mark.parametrize(("n", "n_resamples"), [(1, 5), (17, 300), (5000, 1000)])
def test_count_chunks_count_the_index_resamples(n: int, n_resamples: int) -> None:
    bootstrap = Bootstrap(n=n, n_resamples=n_resamples, seed=11)
    counts = np.concatenate(list(bootstrap.count_chunks()))
    rows = np.concatenate(list(bootstrap.chunks()))
    assert counts.shape == (n_resamples, n)
    expected = np.stack([np.bincount(row, minlength=n) for row in rows]).astype(np.float64)
    np.testing.assert_array_equal(counts, expected)


def test_classwise_sums_in_blocks_of_resamples_give_the_same_values(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(12)
    logits, labels = rng.normal(size=(40, 6)) * 2.0, rng.integers(0, 6, 40)
    monkeypatch.setattr(cal, "_CLASSWISE_CELLS", 6 * 15 * 7)  # 7 resamples per block, a partial last one
    assert_same(logits, labels, n_resamples=30)
