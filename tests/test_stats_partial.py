"""Partial correlation with bootstrap CIs (harness/stats.py), checked against independent computations:
residuals of a least-squares fit (numpy's lstsq) correlated by scipy.stats.pearsonr, the inverse of the
correlation matrix, the one-control closed form, and a naive bootstrap loop over the same resamples.
No pingouin or statsmodels needed."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats
from numpy.typing import NDArray

from harness.stats import (
    partial_correlation,
    partial_correlation_with_ci,
    percentile_interval,
    stratified_counts,
    weighted_partial_correlation,
)


def residual_reference(x: NDArray[np.float64], y: NDArray[np.float64], z: NDArray[np.float64]) -> float:
    """Regress x and y on [1, z] (numpy lstsq), correlate the residuals (scipy's pearsonr)."""
    design = np.column_stack([np.ones(len(x)), z.reshape(len(x), -1)])
    rx = x - design @ np.linalg.lstsq(design, x, rcond=None)[0]
    ry = y - design @ np.linalg.lstsq(design, y, rcond=None)[0]
    return float(scipy.stats.pearsonr(rx, ry)[0])


def precision_reference(x: NDArray[np.float64], y: NDArray[np.float64], z: NDArray[np.float64]) -> float:
    """-P_xy / sqrt(P_xx P_yy) with P the inverse of the correlation matrix of (x, y, z...)."""
    precision = np.linalg.inv(np.corrcoef(np.column_stack([x, y, z.reshape(len(x), -1)]), rowvar=False))
    return float(-precision[0, 1] / np.sqrt(precision[0, 0] * precision[1, 1]))


def closed_form(x: NDArray[np.float64], y: NDArray[np.float64], z: NDArray[np.float64]) -> float:
    r_xy, r_xz, r_yz = (scipy.stats.pearsonr(a, b)[0] for a, b in ((x, y), (x, z), (y, z)))
    return float((r_xy - r_xz * r_yz) / np.sqrt((1 - r_xz**2) * (1 - r_yz**2)))


def ranks(values: NDArray[np.float64]) -> NDArray[np.float64]:
    out: NDArray[np.float64] = scipy.stats.rankdata(values, axis=0)
    return out


def triples(rng: np.random.Generator, n: int, kind: str) -> tuple[NDArray[np.float64], ...]:
    z = rng.normal(size=n)
    x = z + rng.normal(size=n)
    y = 0.8 * z - 0.5 * x + rng.normal(size=n)
    if kind == "offset":  # losses around 3.1 that differ in the third decimal
        return 3.1 + 1e-3 * x, y, 3.1 + 1e-3 * z
    if kind == "ties":  # few distinct values: rank ties everywhere
        return np.round(x), np.round(y), np.round(z)
    if kind == "heavy":  # outliers
        return x + 10 * (rng.random(n) < 0.1), y, z
    if kind == "independent":  # x, y related only through z
        return z + rng.normal(size=n), z + rng.normal(size=n), z
    return x, y, z


KINDS = ("normal", "offset", "ties", "heavy", "independent")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("n", [5, 12, 60, 400])
def test_pearson_partial_matches_residual_regression_precision_matrix_and_closed_form(kind: str, n: int) -> None:
    rng = np.random.default_rng(n * 31 + len(kind))
    x, y, z = triples(rng, n, kind)
    ours = partial_correlation(x, y, z)
    assert ours == pytest.approx(residual_reference(x, y, z), abs=1e-9)
    assert ours == pytest.approx(precision_reference(x, y, z), abs=1e-9)
    assert ours == pytest.approx(closed_form(x, y, z), abs=1e-9)


@pytest.mark.parametrize("kind", KINDS)
def test_spearman_partial_is_the_pearson_partial_of_average_ranks(kind: str) -> None:
    rng = np.random.default_rng(len(kind))
    x, y, z = triples(rng, 50, kind)
    expected = residual_reference(ranks(x), ranks(y), ranks(z))
    assert partial_correlation(x, y, z, "spearman") == pytest.approx(expected, abs=1e-9)
    # Invariant to monotone transforms of every variable, unlike Pearson's.
    assert partial_correlation(np.exp(x), y**3, np.exp(z), "spearman") == pytest.approx(expected, abs=1e-9)


def test_several_controls() -> None:
    rng = np.random.default_rng(7)
    z = rng.normal(size=(80, 3))
    x = z @ [1.0, -0.5, 0.2] + rng.normal(size=80)
    y = z @ [0.3, 0.9, -1.0] + 0.4 * x + rng.normal(size=80)
    assert partial_correlation(x, y, z) == pytest.approx(residual_reference(x, y, z), abs=1e-9)
    assert partial_correlation(x, y, z) == pytest.approx(precision_reference(x, y, z), abs=1e-9)
    assert partial_correlation(x, y, z, "spearman") == pytest.approx(
        residual_reference(ranks(x), ranks(y), ranks(z)), abs=1e-9
    )


def test_controlling_removes_a_shared_cause() -> None:
    rng = np.random.default_rng(3)
    z = rng.normal(size=2000)
    x, y = z + 0.3 * rng.normal(size=2000), z + 0.3 * rng.normal(size=2000)
    assert scipy.stats.pearsonr(x, y)[0] > 0.8
    assert abs(partial_correlation(x, y, z)) < 0.06


def test_undefined_partial_correlations_are_nan() -> None:
    z = np.arange(6.0)
    y = np.array([1.0, 3.0, 2.0, 5.0, 4.0, 6.0])
    assert np.isnan(partial_correlation(2 * z + 1, y, z))  # x is a linear function of z: nothing left
    assert np.isnan(partial_correlation(np.ones(6), y, z))  # constant x
    assert np.isnan(partial_correlation(y[:3], y[:3], z[:3]))  # n < k + 3
    result = partial_correlation_with_ci(2 * z + 1, y, z)
    assert np.isnan(result.estimate) and np.isnan(result.ci_low) and np.isnan(result.ci_high)
    small = partial_correlation_with_ci(y[:4], z[:4] ** 2, z[:4])  # n = 4: an estimate, no interval
    assert np.isfinite(small.estimate) and np.isnan(small.ci_low)


def test_bad_input_is_an_error_that_says_what_is_wrong() -> None:
    with pytest.raises(ValueError, match="equal length"):
        partial_correlation(np.arange(4.0), np.arange(5.0), np.arange(4.0))
    with pytest.raises(ValueError, match="n = 4 values per control"):
        partial_correlation(np.arange(4.0), np.arange(4.0), np.arange(5.0))
    with pytest.raises(ValueError, match="finite"):
        partial_correlation(np.arange(4.0), np.arange(4.0), np.array([0.0, np.nan, 1.0, 2.0]))
    with pytest.raises(ValueError, match="unknown partial correlation method"):
        partial_correlation(np.arange(5.0), np.arange(5.0), np.arange(5.0), "kendall")


@pytest.mark.parametrize("method", ["pearson", "spearman"])
def test_bootstrap_interval_equals_a_naive_loop_over_the_same_resamples(method: str) -> None:
    rng = np.random.default_rng(11)
    x, y, z = triples(rng, 25, "ties" if method == "spearman" else "normal")
    result = partial_correlation_with_ci(x, y, z, method, n_resamples=300, seed=5)
    (counts,) = stratified_counts([25], 300, 5)
    naive = []
    for row in counts:
        index = np.repeat(np.arange(25), row.astype(int))
        xs, ys, zs = x[index], y[index], z[index]
        if method == "spearman":
            xs, ys, zs = ranks(xs), ranks(ys), ranks(zs)
        if np.ptp(zs) == 0 or np.ptp(xs) == 0 or np.ptp(ys) == 0:
            continue
        naive.append(residual_reference(xs, ys, zs))
    low, high = percentile_interval(np.asarray(naive))
    assert (result.ci_low, result.ci_high) == pytest.approx((low, high), abs=1e-9)
    assert result.n == 25 and result.n_resamples == 300
    assert result == partial_correlation_with_ci(x, y, z, method, n_resamples=300, seed=5)  # seeded


def test_weighted_rows_equal_repeated_rows() -> None:
    rng = np.random.default_rng(2)
    x, y, z = triples(rng, 10, "normal")
    weights = rng.integers(0, 4, size=(5, 10)).astype(float)
    weights[:, :4] += 1  # at least 4 distinct rows in every resample
    got = weighted_partial_correlation(x, y, z[:, None], weights)
    for row, value in zip(weights, got, strict=True):
        index = np.repeat(np.arange(10), row.astype(int))
        assert value == pytest.approx(residual_reference(x[index], y[index], z[index]), abs=1e-9)


def test_intervals_cover_the_true_partial_correlation() -> None:
    """Gaussian (x, y, z) with partial correlation 0.5 given z: the 95% interval covers it in most trials."""
    covered = 0
    trials = 40
    for trial in range(trials):
        rng = np.random.default_rng(100 + trial)
        z = rng.normal(size=60)
        e1, e2 = rng.multivariate_normal([0, 0], [[1, 0.5], [0.5, 1]], size=60).T
        result = partial_correlation_with_ci(z + e1, 2 * z + e2, z, n_resamples=300, seed=trial)
        covered += result.ci_low <= 0.5 <= result.ci_high
    assert covered >= 0.8 * trials


def test_large_samples_stay_cheap_and_exact() -> None:
    """Kendall above the bootstrap limit is scipy's O(n log n) estimate (no O(n^2) matrices; a Fisher-z interval);
    the moment form of the weighted Pearson keeps full precision for values far from 0."""
    from harness.stats import KENDALL_BOOTSTRAP_MAX_N, correlation, correlation_with_ci, weighted_pearson

    rng = np.random.default_rng(8)
    n = KENDALL_BOOTSTRAP_MAX_N * 3
    x = np.round(rng.normal(size=n), 2)  # ties too
    y = x + rng.normal(size=n)
    assert correlation(x, y, "kendall") == pytest.approx(scipy.stats.kendalltau(x, y).statistic, abs=1e-12)
    result = correlation_with_ci(x, y, "kendall")
    assert result.ci_method == "fisher-z" and result.n_resamples == 0 and result.ci_low < result.estimate
    assert np.isnan(correlation(np.ones(n), y, "kendall"))
    offset = 3.1 + 1e-6 * x  # losses that differ in the sixth decimal
    weights = rng.integers(0, 3, size=(4, n)).astype(float)
    for row, value in zip(weights, weighted_pearson(offset, y, weights), strict=True):
        index = np.repeat(np.arange(n), row.astype(int))
        assert value == pytest.approx(scipy.stats.pearsonr(offset[index], y[index])[0], abs=1e-9)


@pytest.mark.parametrize("kind", ["normal", "ties", "few values"])
def test_kendall_tau_b_in_n_log_n_equals_scipy(kind: str) -> None:
    from harness.stats import kendall_tau_b

    rng = np.random.default_rng(len(kind))
    for n in (2, 3, 7, 64, 513, 3001):
        x = rng.normal(size=n)
        y = x + rng.normal(size=n)
        if kind == "ties":
            x, y = np.round(x), np.round(y, 1)
        elif kind == "few values":
            x, y = rng.integers(0, 3, n).astype(float), rng.integers(0, 2, n).astype(float)
        expected = scipy.stats.kendalltau(x, y).statistic
        got = kendall_tau_b(x, y)
        assert (np.isnan(got) and np.isnan(expected)) or got == pytest.approx(expected, abs=1e-12), (n, kind)
    assert np.isnan(kendall_tau_b(np.ones(10), np.arange(10.0)))


def test_several_coefficients_on_shared_resamples_equal_one_call_each() -> None:
    from harness.stats import CORRELATION_METHODS, correlation_with_ci, correlations_with_ci

    rng = np.random.default_rng(9)
    x = rng.normal(size=50)
    y = np.round(x + rng.normal(size=50), 1)
    together = correlations_with_ci(x, y, CORRELATION_METHODS, n_resamples=200, seed=3)
    assert together == [correlation_with_ci(x, y, m, n_resamples=200, seed=3) for m in CORRELATION_METHODS]
