"""ece_em, mce, classwise ECE, AURC, temperature scaling and the fused calibration_summary.

References: torchmetrics (MCE) and brute-force re-implementations in plain Python (sorted lists,
loops) written from the documented definitions, on random and adversarial inputs.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torchmetrics.functional.classification import multiclass_calibration_error

from harness.metrics import calibration as cal
from harness.tasks.base import Samples

# ---------------------------------------------------------------------------------------------------------
# Brute-force references (plain Python)


def top_label(probs: np.ndarray, labels: np.ndarray) -> tuple[list[float], list[int]]:
    confidence, correct = [], []
    for row, label in zip(probs.tolist(), labels.tolist(), strict=True):
        best = max(range(len(row)), key=lambda c: (row[c], -c))  # first index of the maximum
        confidence.append(row[best])
        correct.append(int(best == label))
    return confidence, correct


def tie_averaged_pairs(confidence: list[float], correct: list[int]) -> list[tuple[float, float]]:
    """(confidence, mean correctness of all samples with that confidence), sorted ascending."""
    groups: dict[float, list[int]] = {}
    for c, ok in zip(confidence, correct, strict=True):
        groups.setdefault(c, []).append(ok)
    return [(c, sum(groups[c]) / len(groups[c])) for c in sorted(confidence)]


def ece_em_reference(probs: np.ndarray, labels: np.ndarray, n_bins: int) -> float:
    pairs = tie_averaged_pairs(*top_label(probs, labels))
    n = len(pairs)
    total, start = 0.0, 0
    for b in range(n_bins):
        size = n // n_bins + (1 if b < n % n_bins else 0)
        chunk = pairs[start : start + size]
        start += size
        total += abs(sum(ok - c for c, ok in chunk))
    return total / n


def aurc_reference(probs: np.ndarray, labels: np.ndarray) -> float:
    pairs = tie_averaged_pairs(*top_label(probs, labels))[::-1]  # most confident first
    errors, area = 0.0, 0.0
    for k, (_, ok) in enumerate(pairs, start=1):
        errors += 1.0 - ok
        area += errors / k
    return area / len(pairs)


def width_bin(p: float, n_bins: int) -> int:
    return min(max(math.ceil(min(max(p, 0.0), 1.0) * n_bins) - 1, 0), n_bins - 1)


def classwise_reference(probs: np.ndarray, labels: np.ndarray, n_bins: int) -> float:
    n, k = probs.shape
    total = 0.0
    for c in range(k):
        gaps = [0.0] * n_bins
        for i in range(n):
            p = float(probs[i, c])
            gaps[width_bin(p, n_bins)] += (1.0 if labels[i] == c else 0.0) - p
        total += sum(abs(g) for g in gaps) / n
    return total / k


def random_case(seed: int, n: int, k: int, scale: float) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, k)) * scale, rng.integers(0, k, size=n)


def tied_case(seed: int, n: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Integer logits in a tiny range: many equal confidences and tied argmaxes."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 3, size=(n, k)).astype(np.float64), rng.integers(0, k, size=n)


def duplicated_case(seed: int, n: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """A few distinct rows repeated: exact ties in confidence however the softmax sum is rounded."""
    rng = np.random.default_rng(seed)
    rows = rng.normal(size=(3, k)) * 2.0
    return rows[rng.integers(0, 3, size=n)], rng.integers(0, k, size=n)


CASES = [(50, 2, 1.0), (301, 10, 3.0), (7, 3, 8.0), (1, 4, 1.0), (16, 1, 1.0), (200, 5, 0.01)]


# ---------------------------------------------------------------------------------------------------------
# Against references


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize(("n", "k", "scale"), CASES)
def test_new_metrics_match_brute_force(seed: int, n: int, k: int, scale: float) -> None:
    for logits, labels in (random_case(seed, n, k, scale), tied_case(seed, n, k)):
        probs = cal.softmax(logits)
        for n_bins in (15, 4):
            assert cal.equal_mass_calibration_error(probs, labels, n_bins) == pytest.approx(
                ece_em_reference(probs, labels, n_bins), abs=1e-12
            )
            assert cal.classwise_calibration_error(probs, labels, n_bins) == pytest.approx(
                classwise_reference(probs, labels, n_bins), abs=1e-12
            )
        assert cal.area_under_risk_coverage(probs, labels) == pytest.approx(aurc_reference(probs, labels), abs=1e-12)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize(("n", "k", "scale"), [(50, 2, 1.0), (500, 10, 3.0), (2000, 5, 0.3), (7, 3, 2.0)])
def test_mce_matches_torchmetrics(seed: int, n: int, k: int, scale: float) -> None:
    logits, labels = random_case(seed, n, k, scale)
    probs = cal.softmax(logits)
    # torchmetrics bins are [a, b) with a separate bin for confidence 1.0; ours are (a, b]. They agree
    # unless a confidence sits exactly on an edge, which these (non-saturated) inputs avoid.
    edges = np.arange(16) / 15
    assert np.abs(probs.max(axis=1)[:, None] - edges).min() > 1e-9
    expected = multiclass_calibration_error(
        torch.as_tensor(probs), torch.as_tensor(labels), num_classes=k, n_bins=15, norm="max"
    ).item()
    assert cal.max_calibration_error(probs, labels) == pytest.approx(expected, abs=1e-6)  # torchmetrics: float32


def summary_by_parts(logits: np.ndarray, labels: np.ndarray, n_bins: int) -> dict[str, float]:
    probs = cal.softmax(logits)
    return {
        "accuracy": cal.accuracy(probs, labels),
        "ece": cal.expected_calibration_error(probs, labels, n_bins),
        "ece_em": cal.equal_mass_calibration_error(probs, labels, n_bins),
        "mce": cal.max_calibration_error(probs, labels, n_bins),
        "classwise_ece": cal.classwise_calibration_error(probs, labels, n_bins),
        "brier": cal.brier_score(probs, labels),
        "nll": cal.negative_log_likelihood(logits, labels),
        "aurc": cal.area_under_risk_coverage(probs, labels),
    }


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize(("n", "k", "scale"), [*CASES, (3000, 7, 2.0), (40, 300, 2.0)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_summary_agrees_with_per_metric_functions(
    seed: int, n: int, k: int, scale: float, dtype: type[np.floating]
) -> None:
    # Ties come from repeated rows here: integer logits can tie in one softmax and not in the other, as
    # the two sum the exponentials in different orders (1-ulp differences in confidence).
    for logits, labels in (random_case(seed, n, k, scale), duplicated_case(seed, n, k)):
        logits = logits.astype(dtype)
        summary = cal.calibration_summary(logits, labels)
        assert list(summary) == ["accuracy", "ece", "ece_em", "mce", "classwise_ece", "brier", "nll", "aurc"]
        assert summary == pytest.approx(summary_by_parts(logits.astype(np.float64), labels, 15), abs=1e-12)


def test_summary_over_many_chunks_with_a_partial_last_one(monkeypatch: pytest.MonkeyPatch) -> None:
    logits, labels = random_case(5, 1003, 6, 2.0)
    expected = summary_by_parts(logits, labels, 10)
    monkeypatch.setattr(cal, "_CHUNK_CELLS", 6 * 64)  # 64 rows per chunk: 15 full chunks + 43 rows
    assert cal.calibration_summary(logits, labels, n_bins=10) == pytest.approx(expected, abs=1e-12)


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 5).flatmap(
        lambda k: st.tuples(
            st.lists(st.lists(st.integers(-3, 3), min_size=k, max_size=k), min_size=1, max_size=40),
            st.lists(st.integers(0, k - 1), min_size=40, max_size=40),
        )
    )
)
def test_summary_property_integer_logits(case: tuple[list[list[int]], list[int]]) -> None:
    rows, all_labels = case
    # Rows are sorted so that equal multisets of logits are equal rows: then both softmaxes tie the same
    # samples (a permuted row can differ by one ulp between the two summation orders).
    logits = np.sort(np.array(rows, dtype=np.float64), axis=1)
    labels = np.array(all_labels[: len(rows)])
    summary = cal.calibration_summary(logits, labels, n_bins=7)
    assert summary == pytest.approx(summary_by_parts(logits, labels, 7), abs=1e-12)
    for name in ("accuracy", "ece", "ece_em", "mce", "classwise_ece", "aurc"):
        assert 0.0 <= summary[name] <= 1.0


# ---------------------------------------------------------------------------------------------------------
# Known values, ties, invariances


def test_known_values() -> None:
    # Equal mass, 2 bins: confidences .6 (correct) and .9 (wrong) -> (.4 + .9) / 2.
    probs = np.array([[0.6, 0.4], [0.1, 0.9]])
    labels = np.array([0, 0])
    assert cal.equal_mass_calibration_error(probs, labels, n_bins=2) == pytest.approx(0.65)
    # One bin: equal mass = equal width = |accuracy - mean confidence| = |.5 - .75|.
    assert cal.equal_mass_calibration_error(probs, labels, n_bins=1) == pytest.approx(0.25)
    # AURC: the most confident (.9) is wrong -> risks 1/1 and 1/2 -> 0.75.
    assert cal.area_under_risk_coverage(probs, labels) == pytest.approx(0.75)
    # MCE: .95 correct and .55 wrong in separate bins -> max(.05, .55).
    probs = np.array([[0.95, 0.05], [0.55, 0.45]])
    assert cal.max_calibration_error(probs, np.array([0, 1])) == pytest.approx(0.55)
    # Classwise: one sample [.8, .2], label 0 -> (|1 - .8| + |0 - .2|) / 2.
    assert cal.classwise_calibration_error(np.array([[0.8, 0.2]]), np.array([0])) == pytest.approx(0.2)
    # Summary of logits [0, 0], label 1: argmax tie -> class 0 (wrong).
    summary = cal.calibration_summary(np.array([[0.0, 0.0]]), np.array([1]))
    assert summary == pytest.approx(
        {
            "accuracy": 0.0,
            "ece": 0.5,
            "ece_em": 0.5,
            "mce": 0.5,
            "classwise_ece": 0.5,
            "brier": 0.5,
            "nll": math.log(2),
            "aurc": 1.0,
        }
    )


def test_perfect_and_single_class_models() -> None:
    probs = np.eye(4)[[0, 1, 2, 3, 0]]
    labels = np.array([0, 1, 2, 3, 0])
    for fn in (
        cal.equal_mass_calibration_error,
        cal.max_calibration_error,
        cal.classwise_calibration_error,
        cal.area_under_risk_coverage,
    ):
        assert fn(probs, labels) == 0.0
    summary = cal.calibration_summary(np.zeros((3, 1)), np.zeros(3, dtype=int))
    assert summary["accuracy"] == 1.0 and summary["aurc"] == 0.0 and summary["nll"] == 0.0


def test_ties_do_not_depend_on_sample_order() -> None:
    # Four samples share one confidence; the tie straddles the 2-bin boundary and the AURC coverage steps.
    probs = np.array([[0.7, 0.3]] * 4 + [[0.9, 0.1]] * 2)
    labels = np.array([0, 0, 0, 1, 0, 1])
    rng = np.random.default_rng(0)
    values = set()
    for _ in range(10):
        order = rng.permutation(6)
        values.add(
            (
                round(cal.equal_mass_calibration_error(probs[order], labels[order], n_bins=2), 12),
                round(cal.area_under_risk_coverage(probs[order], labels[order]), 12),
            )
        )
    assert len(values) == 1
    # Hand computation: bins {.7, .7, .7} and {.7, .9, .9}; tied .7s count accuracy 3/4, tied .9s 1/2.
    # Bin 1: |2.25 - 2.1| = .15; bin 2: |(.75 + .5 + .5) - 2.5| = .75 -> .9 / 6.
    ece_em, aurc = values.pop()
    assert ece_em == pytest.approx(0.9 / 6)
    # Descending: two .9s with error 1/2 each, then four .7s with error 1/4 each.
    errors = np.cumsum([0.5, 0.5, 0.25, 0.25, 0.25, 0.25])
    assert aurc == pytest.approx(float(np.mean(errors / np.arange(1, 7))))


def test_n_smaller_than_bins_and_confidence_zero() -> None:
    probs = np.array([[0.5, 0.5], [1.0, 0.0]])
    labels = np.array([1, 0])
    assert cal.equal_mass_calibration_error(probs, labels, n_bins=15) == pytest.approx(
        ece_em_reference(probs, labels, 15)
    )
    # p_c = 0 goes to the first bin of class c (classwise), exactly as equal_width_bin does.
    assert cal.classwise_calibration_error(probs, labels) == pytest.approx(classwise_reference(probs, labels, 15))


def test_summary_accepts_float32_without_copying_inputs() -> None:
    logits, labels = random_case(1, 500, 10, 3.0)
    logits32 = logits.astype(np.float32)
    before = logits32.copy()
    summary = cal.calibration_summary(logits32, labels.astype(np.int32))
    assert np.array_equal(logits32, before)
    assert summary == pytest.approx(summary_by_parts(logits32.astype(np.float64), labels, 15), abs=1e-12)


@pytest.mark.parametrize(
    ("logits", "labels", "message"),
    [
        (np.zeros((0, 3)), np.zeros(0, dtype=int), "no samples"),
        (np.array([[0.5, np.nan]]), np.array([0]), "NaN or inf"),
        (np.array([[0.5, -np.inf]]), np.array([0]), "NaN or inf"),
        (np.array([[0.5, np.inf]]), np.array([0]), "NaN or inf"),
        (np.array([[0.5, 0.5]]), np.array([2]), "labels must lie"),
        (np.array([0.5, 0.5]), np.array([0]), "2-D"),
        (np.array([["a", "b"]]), np.array([0]), "real-valued"),
    ],
)
def test_summary_bad_inputs(logits: np.ndarray, labels: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        cal.calibration_summary(logits, labels)


def test_bad_bin_count() -> None:
    with pytest.raises(ValueError, match="n_bins"):
        cal.equal_mass_calibration_error(np.array([[1.0]]), np.array([0]), n_bins=0)
    with pytest.raises(ValueError, match="n_bins"):
        cal.calibration_summary(np.array([[1.0]]), np.array([0]), n_bins=2.5)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------------------
# Temperature scaling


def calibrated_logits(seed: int, n: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Logits whose softmax is the true label distribution: labels are drawn from it."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, k)) * 2.0
    probs = cal.softmax(logits)
    labels = (rng.random(n)[:, None] > np.cumsum(probs, axis=1)).sum(axis=1)
    return logits, np.minimum(labels, k - 1)


def mean_nll(logits: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    return cal.negative_log_likelihood(logits, labels, temperature)


@pytest.mark.parametrize("factor", [1 / 3, 1.0, 3.0])
def test_fitted_temperature_recovers_a_known_scaling(factor: float) -> None:
    logits, labels = calibrated_logits(0, 20_000, 5)
    fitted = cal.fit_temperature(logits * factor, labels)
    assert fitted == pytest.approx(factor, rel=0.05)


def test_fitted_temperature_minimises_nll() -> None:
    logits, labels = random_case(2, 2000, 6, 4.0)  # random labels: very over-confident, T >> 1
    fitted = cal.fit_temperature(logits, labels)
    best = mean_nll(logits, labels, fitted)
    assert best < mean_nll(logits, labels, 1.0)
    low, high = cal.TEMPERATURE_BOUNDS
    for t in np.exp(np.linspace(np.log(low), np.log(high), 81)):
        assert best <= mean_nll(logits, labels, float(t)) + 1e-9
    # Deterministic.
    assert cal.fit_temperature(logits, labels) == fitted


def test_a_perfectly_classified_calibration_split_puts_t_at_the_lower_bound() -> None:
    logits = np.array([[5.0, 0.0, 0.0], [0.0, 4.0, 1.0], [1.0, 0.0, 3.0]])
    labels = np.array([0, 1, 2])  # every prediction correct: the NLL keeps falling as T -> 0
    # The NLL reaches 0 in float64 just above the bound: T stops where it stops changing.
    assert cal.fit_temperature(logits, labels) < 1.2 * cal.TEMPERATURE_BOUNDS[0]


def test_temperature_scaled_metrics_use_the_calibration_split() -> None:
    logits, labels = calibrated_logits(1, 4000, 4)
    calib, test = slice(0, 2000), slice(2000, 4000)
    out = cal.temperature_scaled_metrics(logits[calib] * 2, labels[calib], logits[test] * 2, labels[test])
    t = cal.fit_temperature(logits[calib] * 2, labels[calib])
    assert out["temperature"] == t
    assert out["ece_ts"] == cal.expected_calibration_error(cal.softmax(logits[test] * 2, t), labels[test])
    assert out["nll_ts"] == cal.negative_log_likelihood(logits[test] * 2, labels[test], t)
    # Scaling repairs the over-confidence introduced by the factor 2.
    assert out["ece_ts"] < cal.expected_calibration_error(cal.softmax(logits[test] * 2), labels[test])


def test_metric_infos() -> None:
    for info, name in [
        (cal.ECE_EM, "ece_em"),
        (cal.MCE, "mce"),
        (cal.CLASSWISE_ECE, "classwise_ece"),
        (cal.AURC, "aurc"),
        (cal.TEMPERATURE, "temperature"),
        (cal.ECE_TS, "ece_ts"),
        (cal.NLL_TS, "nll_ts"),
    ]:
        assert info.name == name and info.higher_is_better is False
    assert "direction does not apply" in cal.TEMPERATURE.convention


@pytest.mark.parametrize(("n", "k"), [(1, 1), (1000, 3), (70_000, 10), (300, 200)])
def test_top_label_is_exactly_numpy_max_and_argmax(n: int, k: int) -> None:
    rng = np.random.default_rng(0)
    probs = rng.integers(0, 4, size=(n, k)).astype(np.float64)  # many tied maxima: the first must win
    confidence, prediction = cal.top_label(probs)
    np.testing.assert_array_equal(confidence, probs.max(axis=1))
    np.testing.assert_array_equal(prediction, probs.argmax(axis=1))


def test_probs_without_classes_are_rejected() -> None:
    with pytest.raises(ValueError, match="no classes"):
        cal.expected_calibration_error(np.zeros((3, 0)), np.zeros(3, dtype=int))


# ---------------------------------------------------------------------------------------------------------
# The ece's bias and noise: Kumar et al.'s debiased squared error, the consistency-resampling floor


def debiased_squared_reference(confidence: list[float], correct: list[int], n_bins: int) -> float:
    """Kumar, Liang & Ma (2019), written from the paper with lists and loops."""
    bins: dict[int, list[tuple[float, int]]] = {}
    for c, y in zip(confidence, correct, strict=True):
        index = min(max(math.ceil(min(max(c, 0.0), 1.0) * n_bins) - 1, 0), n_bins - 1)
        bins.setdefault(index, []).append((c, y))
    total = 0.0
    for members in bins.values():
        size = len(members)
        accuracy = sum(y for _, y in members) / size
        mean_confidence = sum(c for c, _ in members) / size
        term = (accuracy - mean_confidence) ** 2
        if size > 1:
            term -= accuracy * (1 - accuracy) / (size - 1)
        total += size / len(confidence) * term
    return total


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 300), st.integers(1, 20), st.integers(0, 2**31))
def test_debiased_squared_ece_matches_the_paper(n: int, n_bins: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    confidence = [rng.random(n), np.round(rng.random(n), 1), np.full(n, 1.0)][seed % 3]
    correct = (rng.random(n) < 0.7).astype(np.float64)
    got = cal.debiased_squared_ece(confidence, correct, n_bins)
    assert got == pytest.approx(
        debiased_squared_reference(confidence.tolist(), correct.astype(int).tolist(), n_bins), abs=1e-12
    )


def test_debiased_squared_ece_is_unbiased_where_the_plug_in_is_not() -> None:
    """Calibrated data (labels ~ Bernoulli(confidence)): the debiased estimator averages ~0 over many
    draws, the plug-in squared error does not (it is inflated by the bins' sampling variance)."""
    rng = np.random.default_rng(0)
    debiased, plug_in = [], []
    for _ in range(400):
        confidence = rng.uniform(0.5, 1.0, 271)
        correct = (rng.random(271) < confidence).astype(np.float64)
        debiased.append(cal.debiased_squared_ece(confidence, correct, 15))
        bins = cal.equal_width_bin(confidence, 15)
        count = np.bincount(bins, minlength=15)
        gap = np.bincount(bins, correct - confidence, minlength=15) / np.maximum(count, 1)
        plug_in.append(float(np.sum(count * gap**2) / 271))
    se = np.std(debiased) / np.sqrt(len(debiased))
    # The binned squared error of calibrated data is not exactly 0 within a bin (confidences vary), but
    # far below the plug-in's bias.
    assert abs(np.mean(debiased)) < 3 * se + 2e-4
    assert np.mean(plug_in) > 10 * abs(np.mean(debiased))


def debiased_squared_stderr_reference(confidence: list[float], correct: list[int], n_bins: int) -> float:
    """The delta-method standard error of the debiased squared error, with lists and loops: per bin the
    squared normal's spread 2 v^2, the linear spread 4 h v (summed, then clipped at 0) and the spread of the
    bins' sample counts, with v = a (1 - a) / (n_b - 1) and h = (a - c)^2 - v."""
    bins: dict[int, list[tuple[float, int]]] = {}
    for c, y in zip(confidence, correct, strict=True):
        index = min(max(math.ceil(min(max(c, 0.0), 1.0) * n_bins) - 1, 0), n_bins - 1)
        bins.setdefault(index, []).append((c, y))
    n = len(confidence)
    null, linear, mean, square = 0.0, 0.0, 0.0, 0.0
    for members in bins.values():
        size = len(members)
        accuracy = sum(y for _, y in members) / size
        gap = accuracy - sum(c for c, _ in members) / size
        v = accuracy * (1 - accuracy) / (size - 1) if size > 1 else 0.0
        h = gap * gap - v
        share = size / n
        null += share * share * 2 * v * v
        linear += share * share * h * v
        mean += share * max(h, 0.0)
        square += share * max(h, 0.0) ** 2
    return math.sqrt(null + 4 * max(linear, 0.0) + max(square - mean * mean, 0.0) / n)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 300), st.integers(1, 20), st.integers(0, 2**31))
def test_debiased_squared_ece_stderr_matches_its_formula(n: int, n_bins: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    confidence = [rng.random(n), np.round(rng.random(n), 1), np.full(n, 1.0)][seed % 3]
    correct = (rng.random(n) < [0.7, 0.97, 1.0][seed % 3]).astype(np.float64)
    got = cal.debiased_squared_ece_stderr(confidence, correct, n_bins)
    expected = debiased_squared_stderr_reference(confidence.tolist(), correct.astype(int).tolist(), n_bins)
    assert got**2 == pytest.approx(expected**2, rel=1e-9, abs=1e-16)  # squared: no sqrt of rounding near 0


@pytest.mark.parametrize("shape", ["calibrated", "over-confident", "mixed"])
def test_debiased_squared_ece_stderr_is_the_estimators_spread(shape: str) -> None:
    """Over 1,000 draws of 500 samples, the standard error's root mean square is the debiased estimator's
    standard deviation (within 10%) for a uniform gap and for gaps that differ between bins (the bins'
    sample counts then matter), and up to 25% above it for calibrated data. With the plug-in squared gap in place of its unbiased estimate
    it is far too large for calibrated data, the failure the estimate avoids."""
    rng = np.random.default_rng(["calibrated", "over-confident", "mixed"].index(shape))
    values, errors, plug_in_errors = [], [], []
    for _ in range(1000):
        confidence = rng.uniform(0.3, 1.0, 500)
        gap = {"calibrated": 0.0, "over-confident": 0.06, "mixed": 0.15 * np.sin(9.0 * confidence)}[shape]
        correct = (rng.random(500) < np.clip(confidence - gap, 0.0, 1.0)).astype(np.float64)
        values.append(cal.debiased_squared_ece(confidence, correct))
        errors.append(cal.debiased_squared_ece_stderr(confidence, correct))
        bins = cal.equal_width_bin(confidence, 15)
        count = np.bincount(bins, minlength=15).astype(np.float64)
        accuracy = np.bincount(bins, correct, minlength=15) / np.maximum(count, 1)
        plug = (accuracy - np.bincount(bins, confidence, minlength=15) / np.maximum(count, 1)) ** 2
        v = np.where(count > 1, accuracy * (1 - accuracy) / np.maximum(count - 1, 1), 0.0)
        share = count / 500
        plug_in_errors.append(np.sqrt(np.sum(share**2 * (4 * plug * v + 2 * v**2))))
    ratio = float(np.sqrt(np.mean(np.square(errors))) / np.std(values))
    # At a true gap of 0 the clips at 0 keep a little of the plug-in's excess (1.16 here): conservative
    low, high = (1.0, 1.25) if shape == "calibrated" else (0.9, 1.1)
    assert low < ratio < high, ratio
    if shape == "calibrated":
        assert float(np.sqrt(np.mean(np.square(plug_in_errors))) / np.std(values)) > 1.4


@pytest.mark.parametrize(("c", "n"), [(0.8, 50), (0.95, 271), (0.6, 1000)])
def test_noise_floor_matches_the_binomial_expectation(c: float, n: int) -> None:
    """With one confidence c for all n samples, a calibrated model's ece is |k/n - c| with
    k ~ Binomial(n, c): its mean is computed exactly with scipy and compared."""
    from scipy.stats import binom

    k = np.arange(n + 1)
    exact = float(np.sum(binom.pmf(k, n, c) * np.abs(k / n - c)))
    floor, _ = cal.ece_noise_floor(np.full(n, c), observed=0.0, n_resamples=4000, seed=1)
    sd = float(np.sqrt(np.sum(binom.pmf(k, n, c) * (np.abs(k / n - c) - exact) ** 2)))
    assert floor == pytest.approx(exact, abs=4 * sd / np.sqrt(4000))


def test_calibration_p_value_separates_calibrated_from_miscalibrated() -> None:
    rng = np.random.default_rng(3)
    confidence = rng.uniform(0.6, 1.0, 271)
    calibrated = (rng.random(271) < confidence).astype(np.float64)
    overconfident = (rng.random(271) < confidence - 0.25).astype(np.float64)

    def ece(correct: np.ndarray) -> float:
        return cal.binned_calibration_gap(confidence, correct, cal.equal_width_bin(confidence, 15), 15)

    _, p_calibrated = cal.ece_noise_floor(confidence, ece(calibrated), n_resamples=999, seed=0)
    floor, p_over = cal.ece_noise_floor(confidence, ece(overconfident), n_resamples=999, seed=0)
    assert p_calibrated > 0.05 and p_over == pytest.approx(1 / 1000)
    assert ece(calibrated) < 2 * floor  # a calibrated model's ece sits at the noise floor
    # p-values of calibrated data are roughly uniform: P(p <= 0.1) close to 0.1 over many draws
    ps = []
    for seed in range(200):
        draw = np.random.default_rng(100 + seed)
        conf = draw.uniform(0.6, 1.0, 150)
        correct = (draw.random(150) < conf).astype(np.float64)
        observed = cal.binned_calibration_gap(conf, correct, cal.equal_width_bin(conf, 15), 15)
        ps.append(cal.ece_noise_floor(conf, observed, n_resamples=199, seed=seed)[1])
    assert 0.03 <= np.mean(np.asarray(ps) <= 0.1) <= 0.2


def noise_floor_reference(
    confidence: np.ndarray, observed: float, n_bins: int, n_resamples: int, seed: int
) -> tuple[float, float]:
    """The consistency resampling written resample by resample in plain Python (bins and sums by hand)."""
    rng = np.random.default_rng(seed)
    n, eces = len(confidence), []
    for _ in range(n_resamples):
        drawn = confidence[rng.integers(0, n, size=n)]
        uniform = rng.random(n)
        gaps = [0.0] * n_bins
        for value, u in zip(drawn.tolist(), uniform.tolist(), strict=True):
            cell = min(max(math.ceil(min(max(value, 0.0), 1.0) * n_bins) - 1, 0), n_bins - 1)
            gaps[cell] += float(u < value) - value
        eces.append(sum(abs(g) for g in gaps) / n)
    above = sum(e >= observed - 1e-12 for e in eces)
    return sum(eces) / n_resamples, (1 + above) / (1 + n_resamples)


@pytest.mark.parametrize("n", [1, 3, 40, 271])
def test_noise_floor_equals_a_per_resample_reference(n: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """The blocked computation draws what one resample at a time draws (the p-value counts agree exactly,
    the floor to summation order), with blocks that split the resamples unevenly too."""
    rng = np.random.default_rng(n)
    confidence = np.r_[rng.uniform(0.05, 1.0, n)][:n]
    confidence[0] = 1.0  # the edges of the bins
    monkeypatch.setattr(cal, "_NOISE_FLOOR_CELLS", 7 * max(n, 1))  # blocks of 7 resamples: 300 = 42 x 7 + 6
    floor, p_value = cal.ece_noise_floor(confidence, 0.04, 15, 300, seed=5)
    expected_floor, expected_p = noise_floor_reference(confidence, 0.04, 15, 300, 5)
    assert p_value == expected_p and floor == pytest.approx(expected_floor, rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("seed", range(4))
def test_normal_debiased_ece_is_the_plug_in_minus_the_folded_normal_bias_of_each_bin(seed: int) -> None:
    """Written from the definition with scipy's folded normal (E|N(m, v)| = foldnorm mean): per resample and
    equal-width bin, S and V are the weighted sums of (correct - confidence) and its square."""
    from scipy.stats import foldnorm

    from harness.metrics.calibration import equal_width_bin, normal_debiased_ece

    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 80))
    confidence = rng.uniform(0.1, 1.0, n)
    confidence[: n // 5] = 1.0  # a bin whose samples are right with confidence 1: V = 0
    correct = (rng.random(n) < confidence - 0.1).astype(np.float64)
    correct[: n // 5] = 1.0
    weights = rng.multinomial(n, np.full(n, 1.0 / n), size=7).astype(np.float64)
    expected = []
    for row in weights:
        bins = equal_width_bin(confidence, 15)
        total = np.bincount(bins, row * (correct - confidence), minlength=15)
        variance = np.bincount(bins, row * (correct - confidence) ** 2, minlength=15)
        value = 0.0
        for s, v in zip(total, variance, strict=True):
            mean_abs = foldnorm.mean(abs(s) / np.sqrt(v), scale=np.sqrt(v)) if v > 0 else abs(s)
            value += abs(s) - (mean_abs - abs(s))
        expected.append(value / n)
    assert normal_debiased_ece(weights, confidence, correct, 15) == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_ece_spread_is_the_ratio_of_standard_deviations_and_never_below_1() -> None:
    from harness.metrics.calibration import ece_spread

    rng = np.random.default_rng(0)
    plug_in = rng.normal(0.1, 0.01, 500)
    assert ece_spread(plug_in, 0.09 + 1.2 * (plug_in - 0.1)) == pytest.approx(1.2)
    assert ece_spread(plug_in, 0.09 + 0.5 * (plug_in - 0.1)) == 1.0
    assert ece_spread(np.full(10, 0.1), rng.normal(size=10)) == 1.0


def over_confident_block(
    seed: int, n: int, gap: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, Samples]]:
    """(confidence, labels, logits, a test block) of a 10-class model with top-label confidence
    c = 1 - 0.85 Beta(1.2, 4) on class 0, right with probability c - gap (bench/uncertainty.py's model)."""
    rng = np.random.default_rng(seed)
    classes = 10
    confidence = 1.0 - 0.85 * rng.beta(1.2, 4.0, n)
    probs = np.repeat(((1.0 - confidence) / (classes - 1))[:, None], classes, axis=1)
    probs[:, 0] = confidence
    labels = np.where(rng.random(n) < confidence - gap, 0, rng.integers(1, classes, n))
    logits = np.log(probs)
    block = {"test": Samples(split="test", ids=[str(i) for i in range(n)], labels=labels, values=logits, fields=[])}
    return confidence, labels, logits, block


def test_the_spread_widens_the_ece_interval_of_a_miscalibrated_model() -> None:
    """An over-confident model (accuracy = confidence - 0.1): a debiased ece varies more than the plug-in
    (the spread is above 1), and the adapter's interval is the debiased interval scaled by it."""
    from harness.intervals import debiased_interval
    from harness.metrics.calibration import ece_spread, normal_debiased_ece, resampled_calibration
    from harness.stats import Bootstrap
    from harness.tasks import load_specs
    from harness.tasks.calibration import ADAPTER

    n = 300
    _, labels, logits, block = over_confident_block(11, n, gap=0.1)
    ece = next(m for m in ADAPTER.score(load_specs().get("calib"), block, seed=0).metrics if m.name == "ece")
    terms = cal.SampleTerms.of(logits, labels)
    weights = np.concatenate(list(Bootstrap(n=n, n_resamples=1000, seed=0).count_chunks()))
    plug_in = resampled_calibration(weights, terms, 15, only=("ece",))["ece"]
    spread = ece_spread(plug_in, normal_debiased_ece(weights, terms.confidence, terms.correct, 15))
    assert spread > 1.05
    widened, plain = debiased_interval(ece.value, plug_in, spread=spread), debiased_interval(ece.value, plug_in)
    assert (ece.ci_low, ece.ci_high) == (pytest.approx(widened[0]), pytest.approx(widened[1]))
    assert widened[1] - widened[0] > plain[1] - plain[0]


def test_the_squared_ece_interval_is_the_bootstrap_t_of_the_drawn_rows() -> None:
    """The adapter's ece_sq_debiased interval rebuilt from each resample's drawn rows with the loop references
    (value and standard error), t about the sample's plug-in squared gap, and numpy's quantiles: the same
    bounds, method "studentized", the point inside, and narrower than the bias-corrected interval of the
    shifted resamples that over-covered (bench/uncertainty.py)."""
    from harness.intervals import bias_corrected_interval
    from harness.stats import Bootstrap
    from harness.tasks import load_specs
    from harness.tasks.calibration import ADAPTER

    n = 300
    confidence, labels, _, block = over_confident_block(12, n, gap=0.05)
    metric = next(
        m for m in ADAPTER.score(load_specs().get("calib"), block, seed=0).metrics if m.name == "ece_sq_debiased"
    )

    conf, correct = confidence.tolist(), (labels == 0).astype(int).tolist()
    point = debiased_squared_reference(conf, correct, 15)
    stderr = debiased_squared_stderr_reference(conf, correct, 15)
    bins = cal.equal_width_bin(confidence, 15)
    count = np.bincount(bins, minlength=15)
    gap = np.bincount(bins, (labels == 0) - confidence, minlength=15) / np.maximum(count, 1)
    plug_in = float(np.sum(count * gap**2) / n)
    values, errors = [], []
    for rows in np.concatenate(list(Bootstrap(n=n, n_resamples=1000, seed=0).chunks())):
        drawn_conf, drawn_correct = [conf[i] for i in rows], [correct[i] for i in rows]
        values.append(debiased_squared_reference(drawn_conf, drawn_correct, 15))
        errors.append(debiased_squared_stderr_reference(drawn_conf, drawn_correct, 15))
    t_low, t_high = np.quantile((np.asarray(values) - plug_in) / np.asarray(errors), [0.025, 0.975])
    low, high = min(point - t_high * stderr, point), max(point - t_low * stderr, point)
    assert metric.ci_method == "studentized" and metric.value == pytest.approx(point, abs=1e-12)
    assert (metric.ci_low, metric.ci_high) == (pytest.approx(low, abs=1e-10), pytest.approx(high, abs=1e-10))
    old_low, old_high = bias_corrected_interval(point, np.asarray(values) + point - plug_in)
    assert high - low < old_high - old_low


def test_the_squared_ece_interval_falls_back_to_the_bias_corrected_one_without_a_standard_error() -> None:
    """Every sample alike and right: one bin, accuracy 1, no variance, and no resample has a standard
    error to studentize by; the interval is the bias-corrected one, at the point. (All right with
    confidences that differ is not such a case: the bins' sample counts then vary the estimate.)"""
    from harness.tasks import load_specs
    from harness.tasks.calibration import ADAPTER, squared_ece_interval

    rng = np.random.default_rng(2)
    n = 200
    logits = np.repeat(rng.normal(size=(1, 5)), n, axis=0)
    labels = logits.argmax(axis=1)
    block = {"test": Samples(split="test", ids=[str(i) for i in range(n)], labels=labels, values=logits, fields=[])}
    metric = next(
        m for m in ADAPTER.score(load_specs().get("calib"), block, seed=0).metrics if m.name == "ece_sq_debiased"
    )
    assert metric.ci_method == "bc-bootstrap"
    assert metric.ci_low is not None and metric.ci_high is not None
    assert metric.ci_low <= metric.value <= metric.ci_high and metric.ci_high - metric.ci_low < 1e-12
    resampled = np.array([0.01, 0.02, 0.03])
    assert squared_ece_interval(0.02, 0.02, 0.0, resampled, np.full(3, 0.01)) is None
    # one resample of three without spread: its t is infinite, and so is a bound: the fallback again
    assert squared_ece_interval(0.02, 0.02, 0.01, resampled, np.array([0.01, 0.01, 0.0])) is None
    # one of a thousand: the 2.5% and 97.5% quantiles of t stay finite
    many = np.linspace(0.0, 0.04, 1000)
    errors = np.full(1000, 0.01)
    errors[0] = 0.0
    low, high, method = squared_ece_interval(0.02, 0.02, 0.01, many, errors) or (0.0, 0.0, "none")
    assert method == "studentized" and math.isfinite(low) and math.isfinite(high) and low < 0.02 < high
    low, high, method = squared_ece_interval(0.02, 0.02, 0.01, resampled, np.full(3, 0.01)) or (0.0, 0.0, "none")
    assert method == "studentized" and low <= 0.02 <= high
