"""Interval methods (harness/intervals.py) against scipy and a reference written from the definitions."""

from __future__ import annotations

import math
import sys
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import binomtest, chi2, norm

from harness.intervals import (
    bias_corrected_interval,
    bias_corrected_range,
    debiased_interval,
    debiased_range,
    median_interval,
    wilson_interval,
)
from harness.stats import percentile_interval


def modified_wilson_reference(k: int, n: int, confidence: float) -> tuple[float, float]:
    """Brown, Cai & DasGupta's modified Wilson interval (2001, 4.1.1) from scipy: Wilson's, with the
    one-sided Poisson bound chi2.ppf(alpha, 2x) / 2n for x = 1..x* successes (or failures)."""
    wilson = binomtest(k, n).proportion_ci(confidence_level=confidence, method="wilson")
    low, high = wilson.low, wilson.high
    edge, alpha = (2 if n <= 50 else 3), 1 - confidence
    if 1 <= k <= edge:
        low = min(low, chi2.ppf(alpha, 2 * k) / (2 * n))
    if 1 <= n - k <= edge:
        high = max(high, 1 - chi2.ppf(alpha, 2 * (n - k)) / (2 * n))
    return low, high


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 5000), st.floats(0.0, 1.0), st.sampled_from([0.8, 0.9, 0.95, 0.99]))
def test_wilson_matches_scipy(n: int, share: float, confidence: float) -> None:
    k = round(share * n)
    expected = modified_wilson_reference(k, n, confidence)
    low, high = wilson_interval(k, n, confidence)
    assert low == pytest.approx(expected[0], abs=1e-12) and high == pytest.approx(expected[1], abs=1e-12)


@pytest.mark.parametrize("n", [10, 50, 51, 100, 1000])
@pytest.mark.parametrize("k", [0, 1, 2, 3, 4])
def test_wilson_edges_take_the_poisson_bound(n: int, k: int) -> None:
    """Near the edges the interval is Brown-Cai-DasGupta's (never narrower than Wilson's); elsewhere Wilson's."""
    for successes in (k, n - k):
        expected = modified_wilson_reference(successes, n, 0.95)
        plain = binomtest(successes, n).proportion_ci(confidence_level=0.95, method="wilson")
        low, high = wilson_interval(successes, n)
        assert (low, high) == pytest.approx(expected, abs=1e-12)
        assert low <= plain.low + 1e-12 and high >= plain.high - 1e-12
    # 98 of 100 right: Wilson's upper bound 0.9945 misses p = 0.995; the Poisson bound does not
    assert wilson_interval(98, 100)[1] > 0.995 > binomtest(98, 100).proportion_ci(method="wilson").high


def test_wilson_coverage_has_no_deep_dips() -> None:
    """Exact coverage over p in (0.5, 1) for n = 100: Wilson's dips to 0.85; the modified one stays >= 0.92."""
    from scipy.stats import binom

    n, ks = 100, np.arange(101)
    bounds = np.array([wilson_interval(int(k), n) for k in ks])
    coverages = []
    for p in np.linspace(0.5, 0.9999, 600):
        covered = (bounds[:, 0] <= p) & (p <= bounds[:, 1])
        coverages.append(float(binom.pmf(ks, n, p)[covered].sum()))
    assert min(coverages) >= 0.92 and 0.945 <= float(np.mean(coverages)) <= 0.96


def bc_reference(point: float, distribution: list[float], confidence: float) -> tuple[float, float]:
    """Efron's bias-corrected percentile interval, written from the definition with scipy's normal."""
    b = len(distribution)
    below = sum(1 for d in distribution if d < point) + 0.5 * sum(1 for d in distribution if d == point)
    share = min(max(below / b, 0.5 / b), 1 - 0.5 / b)
    z0, z = norm.ppf(share), norm.ppf(0.5 + confidence / 2)
    ordered = sorted(distribution)

    def quantile(q: float) -> float:  # linear interpolation between order statistics (numpy's default)
        position = q * (b - 1)
        lower = math.floor(position)
        upper = min(lower + 1, b - 1)
        return ordered[lower] + (position - lower) * (ordered[upper] - ordered[lower])

    return min(quantile(norm.cdf(2 * z0 - z)), point), max(quantile(norm.cdf(2 * z0 + z)), point)


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 400), st.integers(0, 2**31), st.floats(-3, 3), st.sampled_from([0.9, 0.95]))
def test_bias_corrected_matches_the_definition(b: int, seed: int, shift: float, confidence: float) -> None:
    rng = np.random.default_rng(seed)
    distribution = np.round(rng.normal(size=b), 2)  # ties included
    point = float(np.round(shift * rng.random(), 2))
    got = bias_corrected_interval(point, distribution, confidence)
    expected = bc_reference(point, distribution.tolist(), confidence)
    assert got == pytest.approx(expected, abs=1e-9)


def test_bias_corrected_is_the_percentile_interval_at_the_median_and_leans_towards_a_biased_point() -> None:
    distribution = np.random.default_rng(0).normal(size=1001)
    median = float(np.median(distribution))
    assert bias_corrected_interval(median, distribution) == pytest.approx(percentile_interval(distribution), abs=1e-12)
    # A point below most resamples (an upward-biased estimator such as the plug-in ECE): the interval
    # moves down towards it, below the percentile interval.
    biased = float(np.quantile(distribution, 0.1))
    low, high = bias_corrected_interval(biased, distribution)
    p_low, p_high = percentile_interval(distribution)
    assert low < p_low and high < p_high and low <= biased <= high
    assert bias_corrected_interval(2.0, np.full(50, 2.0)) == (2.0, 2.0)


def test_bias_corrected_interval_always_contains_its_point() -> None:
    distribution = np.linspace(0.012, 0.03, 1000)  # every resample above the estimate (plug-in ECE)
    low, high = bias_corrected_interval(0.0113, distribution)
    assert low == 0.0113 and high > 0.012
    low, high = bias_corrected_interval(0.5, np.linspace(0.1, 0.2, 100))
    assert high == 0.5


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 400), seed=st.integers(0, 2**31), ties=st.booleans())
def test_median_interval_matches_scipys_quantile_test(n: int, seed: int, ties: bool) -> None:
    """The order-statistic interval of a median equals scipy's exact (binomial) quantile-test interval,
    on continuous and on heavily tied values (first divergent positions are small integers)."""
    from scipy.stats import quantile_test

    rng = np.random.default_rng(seed)
    values = rng.integers(0, 5, n).astype(float) if ties else rng.normal(size=n)
    ours = median_interval(values)
    assert ours[0] <= np.median(values) <= ours[1]
    if n >= 6:  # below 6 values no order-statistic interval reaches 95%: ours is the range, scipy's unbounded
        theirs = quantile_test(values, q=float(np.median(values)), p=0.5).confidence_interval(0.95)
        assert ours == (pytest.approx(theirs.low), pytest.approx(theirs.high))
    else:
        assert ours == (values.min(), values.max())


def test_median_interval_covers_by_simulation() -> None:
    """Coverage of the true median of an exponential distribution is at least 95% (exact for continuous
    data), and not far above: 2,000 draws of n = 50."""
    rng = np.random.default_rng(3)
    truth = np.log(2.0)
    hits = [lo <= truth <= hi for lo, hi in (median_interval(rng.exponential(size=50)) for _ in range(2000))]
    assert 0.945 <= np.mean(hits) <= 0.985


def test_debiased_interval_shifts_by_the_bootstrap_bias_and_respects_the_bounds() -> None:
    rng = np.random.default_rng(0)
    point = 0.05
    resamples = 0.07 + 0.01 * rng.standard_normal(2000)  # bias 0.02 upwards
    low, high = debiased_interval(point, resamples)
    bias = resamples.mean() - point
    expect = bias_corrected_interval(point - bias, resamples - 2 * bias)
    assert low == pytest.approx(max(0.0, min(expect[0], point)))
    assert high == pytest.approx(max(expect[1], point))
    assert low < point - bias < high  # centred on the debiased estimate, below the biased point
    assert low <= point <= high  # and never excluding its own point
    # A large bias: clipped at 0, never negative; a plausible zero reaches 0.
    low, high = debiased_interval(0.01, 0.2 + 0.01 * rng.standard_normal(500))
    assert low == 0.0 and high >= 0.01
    assert debiased_interval(point, resamples, zero_plausible=True)[0] == 0.0


def test_plug_in_ece_of_a_calibrated_model_is_covered_when_calibration_is_plausible() -> None:
    """The issue's case: a calibrated model's plug-in ece lies above 0, and its bootstrap even more; the
    calibration adapter's interval reaches 0 when the noise-floor test does not reject calibration
    (bench/uncertainty.py measures 0.94-0.96 coverage of 0)."""
    from harness.tasks import load_specs
    from harness.tasks.base import Samples
    from harness.tasks.calibration import ADAPTER

    rng = np.random.default_rng(7)
    n, classes = 600, 10
    confidence = 1.0 - 0.85 * rng.beta(1.2, 4.0, n)
    probs = np.repeat(((1.0 - confidence) / (classes - 1))[:, None], classes, axis=1)
    probs[:, 0] = confidence
    labels = np.where(rng.random(n) < confidence, 0, rng.integers(1, classes, n))
    logits = np.log(probs)
    block = {
        split: Samples(split=split, ids=[f"{split}{i}" for i in range(n)], labels=labels, values=logits, fields=[])
        for split in ("calib", "test")
    }
    spec = load_specs().get("calib")
    metrics = {m.name: m for m in ADAPTER.score(spec, block, seed=0).metrics}
    ece, p = metrics["ece"], metrics["ece_calibrated_p"].value
    assert ece.ci_method == "debiased-bootstrap" and ece.value > 0
    assert ece.ci_low is not None and ece.ci_high is not None
    assert ece.ci_low <= ece.value <= ece.ci_high
    assert (ece.ci_low == 0.0) == (p > 0.05)


def test_a_degenerate_bootstrap_at_a_bound_gets_wilsons_interval_of_its_units() -> None:
    """Perfect separation: every resample's AUROC is 1. With the units behind it the interval is Wilson's
    (scipy's binomtest), not [1, 1]; without units (AUPR) it stays at the point; a constant inside (0, 1)
    is never widened."""
    from harness.tasks.base import bootstrap_metric
    from harness.tasks.ood import _units_at_bound

    ones = np.ones(1000)
    metric = bootstrap_metric("auroc.msp.far", 1.0, ones, 500, "ID + OOD samples", units_at_bound=200)
    expect = binomtest(200, 200).proportion_ci(0.95, method="wilson")
    assert metric.ci_method == "wilson"
    assert (metric.ci_low, metric.ci_high) == (pytest.approx(expect.low), pytest.approx(expect.high))
    zero = bootstrap_metric("fpr95.msp.far", 0.0, np.zeros(1000), 500, "ID + OOD samples", units_at_bound=300)
    assert zero.ci_low == 0.0 and zero.ci_high == pytest.approx(binomtest(0, 300).proportion_ci(0.95, "wilson").high)
    # 2% of resamples lift an FPR@95 of 0 (its threshold moves with the ID resample): the bias-corrected
    # quantiles both sit at 0, yet the data vary, so the interval is Wilson's too, never [0, 0]
    mostly_zero = np.r_[np.zeros(980), np.full(20, 0.01)]
    lifted = bootstrap_metric("fpr95.msp.far", 0.0, mostly_zero, 500, "ID + OOD samples", units_at_bound=300)
    assert lifted.ci_method == "wilson" and lifted.ci_low == 0.0 and lifted.ci_high == zero.ci_high
    # with more resamples above 0 the bias-corrected interval has width and stays
    spread = bootstrap_metric("fpr95.msp.far", 0.0, np.r_[np.zeros(900), np.full(100, 0.01)], 500, units_at_bound=300)
    assert spread.ci_method == "bc-bootstrap" and spread.ci_high == 0.01
    assert bootstrap_metric("aupr_in.msp.far", 1.0, ones, 500, units_at_bound=None).ci_low == 1.0
    inside = bootstrap_metric("auroc.msp.far", 0.75, np.full(10, 0.75), 500, units_at_bound=200)
    assert (inside.ci_low, inside.ci_high, inside.ci_method) == (0.75, 0.75, "bc-bootstrap")
    # AUROC: disjoint (ID, OOD) pairs, the smallest set's for an average; FPR@95: OOD samples; AUPR: none
    assert _units_at_bound("auroc", 300, [200, 500]) == 200
    assert _units_at_bound("auroc", 100, [200, 500]) == 100
    assert _units_at_bound("fpr95", 100, [200, 500]) == 200
    assert _units_at_bound("aupr_in", 100, [200]) is None


def ulp_jitter(values: np.ndarray, seed: int) -> np.ndarray:
    """Each value moved by up to 4 ulps up or down: another machine's rounding of the same resamples."""
    steps = np.random.default_rng(seed).integers(-4, 5, size=values.shape)
    out = values.copy()
    for _ in range(4):
        out = np.where(steps > 0, np.nextafter(out, np.inf), np.where(steps < 0, np.nextafter(out, -np.inf), out))
        steps = steps - np.sign(steps)
    return out


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 400), st.integers(0, 2**31), st.integers(0, 60))
def test_the_range_holds_every_interval_that_rounding_of_tied_resamples_gives(b: int, seed: int, tied: int) -> None:
    rng = np.random.default_rng(seed)
    point = 0.25
    distribution = rng.normal(point, 0.1, size=b)
    distribution[: min(tied, b)] = point  # resamples that reproduce the point exactly (a discrete statistic)
    low_min, low_max, high_min, high_max = bias_corrected_range(point, distribution)
    for jitter_seed in range(5):
        low, high = bias_corrected_interval(point, ulp_jitter(distribution, jitter_seed))
        assert low_min - 1e-12 <= low <= low_max + 1e-12 and high_min - 1e-12 <= high <= high_max + 1e-12
    d_low_min, d_low_max, d_high_min, d_high_max = debiased_range(point, np.abs(distribution))
    low, high = debiased_interval(point, np.abs(ulp_jitter(distribution, 9)))
    assert d_low_min - 1e-12 <= low <= d_low_max + 1e-12 and d_high_min - 1e-12 <= high <= d_high_max + 1e-12


def test_without_near_ties_the_range_is_the_interval() -> None:
    distribution = np.random.default_rng(4).normal(size=1000)
    low, high = bias_corrected_interval(0.1, distribution)
    assert bias_corrected_range(0.1, distribution) == (low, low, high, high)
    low, high = debiased_interval(0.3, np.abs(distribution), zero_plausible=False)
    assert debiased_range(0.3, np.abs(distribution)) == (low, low, high, high)


def test_tied_resamples_widen_the_range_by_a_quantile_step_not_an_ulp() -> None:
    distribution = np.round(np.random.default_rng(2).normal(size=1000), 1)  # ~40 resamples tie 0.1 exactly
    low_min, low_max, high_min, high_max = bias_corrected_range(0.1, distribution)
    assert low_min < low_max and high_min < high_max
    assert low_min <= bias_corrected_interval(0.1, distribution)[0] <= low_max


def _near_one_auroc(seed: int, n: int = 300) -> tuple[float, float, np.ndarray, np.ndarray, int]:
    """A sample with AUROC near 1 (Gaussians 4.65 sd apart) and not separated perfectly, as the OOD adapter
    resamples it: point, DeLong standard error, resampled AUROCs and standard errors, pairs."""
    from harness.metrics.ood import auroc_variance, ood_summary, ood_summary_resampled
    from harness.stats import stratified_counts

    rng = np.random.default_rng(seed)
    while True:
        id_scores, ood_scores = rng.normal(4.65, 1.0, n), rng.normal(0.0, 1.0, n)
        point = ood_summary(id_scores, ood_scores)["auroc"]
        if point < 1.0:
            break
    id_counts, ood_counts = stratified_counts([n, n], 400, seed)
    distribution = ood_summary_resampled(id_scores, ood_scores, id_counts, ood_counts)["auroc"]
    stderr = float(np.sqrt(auroc_variance(id_scores, [ood_scores], [1.0])[0]))
    stderrs = np.sqrt(auroc_variance(id_scores, [ood_scores], [1.0], id_counts, [ood_counts]))
    return point, stderr, distribution, stderrs, n * n


@pytest.mark.parametrize("seed", range(4))
def test_studentized_auroc_interval_ends_at_the_bootstrap_t_towards_1_and_holds_the_bias_corrected_low(
    seed: int,
) -> None:
    from harness.intervals import studentized_auroc_interval, studentized_auroc_tail

    point, stderr, distribution, stderrs, pairs = _near_one_auroc(seed)
    (low, high), ci_range = studentized_auroc_interval(point, stderr, distribution, stderrs, pairs)
    bc_low = bias_corrected_interval(point, distribution)[0]
    t_low, t_high = studentized_auroc_tail(point, stderr, distribution, stderrs, pairs, 0.95)
    assert low == min(bc_low, t_low) and high == t_high
    assert low <= bc_low <= point <= high <= 1.0 and low <= t_low
    # the skew: a few extreme samples make all discordant pairs, and the studentized part sees it
    assert point - low > point - bc_low
    lowest_low, highest_low, lowest_high, highest_high = ci_range
    assert lowest_low <= low <= highest_low and lowest_high == high == highest_high


def test_studentized_auroc_interval_mirrors_below_one_half() -> None:
    """Negated scores turn AUROC A into 1 - A: the interval mirrors (the distance is to 0 instead of 1)."""
    from harness.intervals import studentized_auroc_interval

    point, stderr, distribution, stderrs, pairs = _near_one_auroc(7)
    low, high = studentized_auroc_interval(point, stderr, distribution, stderrs, pairs)[0]
    mirror_low, mirror_high = studentized_auroc_interval(1.0 - point, stderr, 1.0 - distribution, stderrs, pairs)[0]
    assert mirror_low == pytest.approx(1.0 - high, abs=1e-12) and mirror_high == pytest.approx(1.0 - low, abs=1e-12)


def test_studentized_auroc_interval_keeps_separated_resamples_finite_and_checks_its_inputs() -> None:
    from harness.intervals import studentized_auroc_interval

    # half the resamples separate perfectly (standard error 0): the offset of half a pair keeps t finite
    distribution = np.r_[np.ones(50), np.full(50, 0.995)]
    stderrs = np.r_[np.zeros(50), np.full(50, 0.003)]
    low, high = studentized_auroc_interval(0.998, 0.002, distribution, stderrs, 10_000)[0]
    assert 0.0 < low < 0.998 < high <= 1.0 and math.isfinite(low)
    with pytest.raises(ValueError, match="one standard error per resample"):
        studentized_auroc_interval(0.9, 0.01, distribution, stderrs[:10], 100)
    with pytest.raises(ValueError, match="at least one"):
        studentized_auroc_interval(0.9, 0.01, distribution, stderrs, 0)


@settings(max_examples=40, deadline=None)
@given(st.integers(2, 400), st.integers(0, 2**31), st.floats(0.5, 0.99), st.booleans())
def test_studentized_interval_matches_the_bootstrap_t_definition(
    b: int, seed: int, confidence: float, centred: bool
) -> None:
    """(point - t_(1-a/2) se, point - t_(a/2) se) with t_r = (x*_r - center) / se*_r, written with sorted
    t values and linear interpolation between order statistics (numpy's default quantile)."""
    from harness.intervals import studentized_interval

    rng = np.random.default_rng(seed)
    point, stderr = float(rng.normal()), float(rng.uniform(0.1, 2.0))
    values, errors = rng.normal(point, 1.0, b), rng.uniform(0.1, 2.0, b)
    center = point if centred else float(rng.normal())
    t = sorted(((x - center) / e for x, e in zip(values.tolist(), errors.tolist(), strict=True)))

    def quantile(q: float) -> float:
        position = q * (b - 1)
        below = math.floor(position)
        above = min(below + 1, b - 1)
        return t[below] + (position - below) * (t[above] - t[below])

    tail = (1.0 - confidence) / 2.0
    expected = (point - quantile(1.0 - tail) * stderr, point - quantile(tail) * stderr)
    got = studentized_interval(point, stderr, values, errors, center=None if centred else center, confidence=confidence)
    assert got == (pytest.approx(expected[0], abs=1e-9), pytest.approx(expected[1], abs=1e-9))


def test_studentized_interval_checks_its_inputs() -> None:
    from harness.intervals import studentized_interval

    values, errors = np.array([0.1, 0.2]), np.array([0.1, 0.1])
    with pytest.raises(ValueError, match="one standard error per resample"):
        studentized_interval(0.1, 0.1, values, errors[:1])
    with pytest.raises(ValueError, match="positive standard error"):
        studentized_interval(0.1, 0.0, values, errors)
    with pytest.raises(ValueError, match="no negative one"):
        studentized_interval(0.1, 0.1, values, np.array([0.1, -0.1]))
    # resamples without spread: t = +inf above the center; one in a hundred leaves both quantiles finite,
    # ten in a hundred make the upper one (and so the lower bound) infinite
    many, errors = np.linspace(0.0, 0.2, 100), np.full(100, 0.1)
    errors[-1] = 0.0
    assert all(math.isfinite(bound) for bound in studentized_interval(0.1, 0.1, many, errors))
    errors[-10:] = 0.0
    low, high = studentized_interval(0.1, 0.1, many, errors)
    assert math.isfinite(high) and not math.isfinite(low)


def test_debiased_interval_spread_scales_the_shifted_resamples_about_the_debiased_estimate() -> None:
    rng = np.random.default_rng(5)
    point = 0.12
    resamples = 0.13 + 0.02 * rng.standard_normal(2000)
    bias = resamples.mean() - point
    centre = point - bias
    low, high = debiased_interval(point, resamples, spread=1.3)
    expect = bias_corrected_interval(centre, centre + 1.3 * (resamples - 2 * bias - centre))
    assert low == pytest.approx(max(0.0, min(expect[0], point))) and high == pytest.approx(max(expect[1], point))
    plain = debiased_interval(point, resamples)
    assert low < plain[0] and high > plain[1]
    assert debiased_range(point, resamples, spread=1.3)[0] == pytest.approx(low)
    with pytest.raises(ValueError, match="spread must be at least 1"):
        debiased_interval(point, resamples, spread=0.9)


@pytest.fixture
def bench_uncertainty(monkeypatch: pytest.MonkeyPatch) -> Any:
    """bench/uncertainty.py as a module."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "bench" / "uncertainty.py"
    spec = importlib.util.spec_from_file_location("bench_uncertainty", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_the_bench_knows_when_a_coverage_target_is_unattainable_for_a_count(bench_uncertainty: Any) -> None:
    """bench/uncertainty.py's attainable_coverage against every contiguous range of success counts written
    with loops: at p = 0.995, n = 100 no interval rule covers with probability in [0.93, 0.97] (the ranges
    give 0.910 or 0.986), at p = 0.8 one does."""
    from scipy.stats import binom

    module = bench_uncertainty
    for n, p in ((100, 0.995), (100, 0.8), (30, 0.995), (12, 0.6)):
        probabilities = binom.pmf(np.arange(n + 1), n, p)
        sums = [float(sum(probabilities[i:j])) for i in range(n + 1) for j in range(i + 1, n + 2)]
        in_band = any(0.93 <= value <= 0.97 for value in sums)
        smallest = min(value for value in sums if value >= 0.93)
        got = module.attainable_coverage(probabilities, 0.93, 0.97)
        assert got[0] == in_band and got[1] == pytest.approx(smallest, abs=1e-12)
    assert module.attainable_coverage(binom.pmf(np.arange(101), 100, 0.995), 0.93, 0.97)[0] is False
    assert module.attainable_coverage(binom.pmf(np.arange(101), 100, 0.8), 0.93, 0.97)[0] is True


@pytest.mark.parametrize("seed", range(3))
def test_the_bench_bca_contrast_takes_the_jackknife_acceleration_of_an_auroc(bench_uncertainty: Any, seed: int) -> None:
    """The BCa contrast of bench/uncertainty.py: its acceleration against Efron's jackknife formula with
    leave-one-out AUROCs from scikit-learn (equal set sizes, tied scores included, where the two agree
    exactly); harness.intervals.bias_corrected_interval with that acceleration is BCa, and with 0 the
    bias-corrected interval as before."""
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(seed)
    n = 40
    id_scores = np.round(rng.normal(1.5, 1.0, n) + rng.exponential(0.5, n) * (seed - 1), 1)
    ood_scores = np.round(rng.normal(0.0, 1.0, n), 1)
    labels = np.r_[np.ones(n), np.zeros(n)]
    scores = np.r_[id_scores, ood_scores]
    point = roc_auc_score(labels, scores)
    leave_one_out = np.array([roc_auc_score(np.delete(labels, i), np.delete(scores, i)) for i in range(2 * n)])
    deviation = leave_one_out.mean() - leave_one_out
    jackknife = float(np.sum(deviation**3) / (6.0 * np.sum(deviation**2) ** 1.5))
    got = bench_uncertainty.auroc_acceleration(point, id_scores, ood_scores)
    assert got == pytest.approx(jackknife, rel=1e-9, abs=1e-15) and abs(got) > 1e-4
    distribution = rng.normal(point - 0.01, 0.03, 1000)
    assert bias_corrected_interval(point, distribution, acceleration=0.0) == pytest.approx(
        bias_corrected_interval(point, distribution), abs=1e-12
    )
    assert (
        bias_corrected_interval(point, distribution, acceleration=0.1)[1]
        > bias_corrected_interval(point, distribution)[1]
    )
    # BCa's quantiles written out: Phi(z0 + (z0 + z) / (1 - a (z0 + z)))
    z0 = norm.ppf(np.mean(distribution < point) + np.mean(distribution == point) / 2.0)
    q = [norm.cdf(z0 + (z0 + zq) / (1.0 - 0.1 * (z0 + zq))) for zq in (norm.ppf(0.025), norm.ppf(0.975))]
    expected = np.percentile(distribution, [100.0 * v for v in q])
    got_bca = bias_corrected_interval(point, distribution, acceleration=0.1)
    assert got_bca[0] == pytest.approx(min(expected[0], point), abs=1e-12)
    assert got_bca[1] == pytest.approx(max(expected[1], point), abs=1e-12)
