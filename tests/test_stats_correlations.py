"""Correlations with bootstrap CIs and paired comparisons (harness/stats.py; ranks: tests/test_ranks.py),
checked against scipy and against naive loops on random and adversarial inputs."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats

from harness import stats
from harness.stats import (
    correlation,
    correlation_with_ci,
    linear_fit,
    paired_better_matrix,
    paired_difference_interval,
    weighted_average_ranks,
    weighted_kendall,
    weighted_pearson,
    weighted_spearman,
)

SCIPY = {
    "pearson": lambda x, y: scipy.stats.pearsonr(x, y)[0],
    "spearman": lambda x, y: scipy.stats.spearmanr(x, y)[0],
    "kendall": lambda x, y: scipy.stats.kendalltau(x, y)[0],
}


def samples(rng: np.random.Generator, n: int, kind: str) -> tuple[np.ndarray, np.ndarray]:
    if kind == "normal":
        x = rng.normal(size=n)
        return x, 0.6 * x + rng.normal(size=n)
    if kind == "ties":  # few distinct values: many ties in both variables
        x = rng.integers(0, 4, size=n).astype(float)
        return x, x + rng.integers(0, 3, size=n)
    if kind == "heavy":  # outliers move Pearson, not the rank correlations
        x = rng.standard_cauchy(size=n)
        return x, np.exp(np.clip(x, -5, 5)) + rng.normal(scale=0.1, size=n)
    if kind == "anti":
        x = rng.normal(size=n)
        return x, -(x**3)
    raise ValueError(kind)


@pytest.mark.parametrize("method", stats.CORRELATION_METHODS)
@pytest.mark.parametrize("kind", ["normal", "ties", "heavy", "anti"])
@pytest.mark.parametrize("n", [3, 7, 50, 301])
def test_coefficients_equal_scipy(method: str, kind: str, n: int) -> None:
    rng = np.random.default_rng(n * 31 + len(kind))
    x, y = samples(rng, n, kind)
    expected = SCIPY[method](x, y)
    assert correlation(x, y, method) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("method", stats.CORRELATION_METHODS)
def test_two_points_and_perfect_monotone_relations(method: str) -> None:
    assert correlation(np.array([1.0, 2.0]), np.array([3.0, 5.0]), method) == pytest.approx(1.0)
    x = np.arange(10.0)
    assert correlation(x, -np.exp(x), method) == pytest.approx(SCIPY[method](x, -np.exp(x)))


@pytest.mark.parametrize("method", stats.CORRELATION_METHODS)
def test_undefined_correlations_are_nan(method: str) -> None:
    assert np.isnan(correlation(np.ones(5), np.arange(5.0), method))  # scipy: nan (with a warning)
    assert np.isnan(correlation(np.array([1.0]), np.array([2.0]), method))
    result = correlation_with_ci(np.ones(5), np.arange(5.0), method)
    assert np.isnan(result.estimate) and np.isnan(result.ci_low)


def test_bad_inputs_are_rejected_with_a_clear_message() -> None:
    with pytest.raises(ValueError, match="equal length"):
        correlation(np.arange(3.0), np.arange(4.0), "pearson")
    with pytest.raises(ValueError, match="finite"):
        correlation(np.array([1.0, np.nan, 2.0]), np.arange(3.0), "pearson")
    with pytest.raises(ValueError, match="unknown correlation method"):
        correlation(np.arange(3.0), np.arange(3.0), "distance")


@pytest.mark.parametrize("kind", ["normal", "ties", "heavy"])
def test_weighted_coefficients_equal_scipy_on_the_repeated_pairs(kind: str) -> None:
    """A bootstrap resample is a multiplicity per pair: each coefficient equals scipy on np.repeat."""
    rng = np.random.default_rng(5)
    x, y = samples(rng, 40, kind)
    weights = rng.multinomial(40, np.full(40, 1 / 40), size=6).astype(float)
    for function, method in ((weighted_pearson, "pearson"), (weighted_spearman, "spearman"), (weighted_kendall, "kendall")):  # fmt: skip
        got = function(x, y, weights)
        for row, value in zip(weights.astype(int), got, strict=True):
            assert value == pytest.approx(SCIPY[method](np.repeat(x, row), np.repeat(y, row)), abs=1e-10)


def test_weighted_average_ranks_equal_scipy_rankdata() -> None:
    rng = np.random.default_rng(2)
    values = rng.integers(0, 6, size=30).astype(float)
    assert np.allclose(weighted_average_ranks(values, np.ones((1, 30)))[0], scipy.stats.rankdata(values))
    counts = rng.integers(0, 3, size=30)
    repeated = scipy.stats.rankdata(np.repeat(values, counts))
    ranks = weighted_average_ranks(values, counts[None, :].astype(float))[0]
    assert np.allclose(np.repeat(ranks, counts), repeated)


@pytest.mark.parametrize("method", stats.CORRELATION_METHODS)
def test_bootstrap_interval_is_seeded_and_matches_a_naive_loop(method: str) -> None:
    rng = np.random.default_rng(11)
    x, y = samples(rng, 30, "ties")
    result = correlation_with_ci(x, y, method, n_resamples=300, seed=4)
    assert result == correlation_with_ci(x, y, method, n_resamples=300, seed=4)
    assert result.ci_low <= result.estimate <= result.ci_high and result.n == 30
    # The same draws as stratified_resamples, coefficient by scipy on each resample.
    naive = []
    for (rows,) in stats.stratified_resamples([30], 300, 4):
        value = SCIPY[method](x[rows], y[rows])
        if np.isfinite(value):
            naive.append(value)
    low, high = np.percentile(naive, [2.5, 97.5])
    assert (result.ci_low, result.ci_high) == pytest.approx((low, high), abs=1e-10)


def test_bootstrap_intervals_cover_the_true_correlation() -> None:
    rng = np.random.default_rng(0)
    covered = 0
    for trial in range(60):
        x = rng.normal(size=150)
        y = 0.5 * x + np.sqrt(0.75) * rng.normal(size=150)  # Pearson rho = 0.5
        result = correlation_with_ci(x, y, "pearson", n_resamples=400, seed=trial)
        covered += result.ci_low <= 0.5 <= result.ci_high
    assert covered / 60 >= 0.85  # nominal 95%


def test_rank_intervals_above_the_bootstrap_limit_are_fisher_z(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stats, "RANK_BOOTSTRAP_MAX_N", 10)
    rng = np.random.default_rng(3)
    x = rng.normal(size=40)
    y = x + rng.normal(size=40)
    for method in ("spearman", "kendall"):
        result = correlation_with_ci(x, y, method)
        assert result.ci_method == "fisher-z" and result.n_resamples == 0
        assert (result.ci_low, result.ci_high) == stats.fisher_z_interval(result.estimate, 40, method)
    assert correlation_with_ci(x, y, "pearson").ci_method == "percentile-bootstrap"  # cheap at any n


@pytest.mark.parametrize("method", ["spearman", "kendall"])
def test_the_fisher_z_interval_agrees_with_a_scipy_bootstrap_and_covers(method: str) -> None:
    """Above the limit the rank intervals are analytic: close to a percentile bootstrap of scipy's own
    coefficient at n = 2,500, and covering the population value at the nominal rate."""
    function = scipy.stats.spearmanr if method == "spearman" else scipy.stats.kendalltau
    rng = np.random.default_rng(11)
    n, rho = 2500, 0.5
    x = rng.normal(size=n)
    y = rho * x + np.sqrt(1 - rho**2) * rng.normal(size=n)
    estimate = float(function(x, y).statistic)
    low, high = stats.fisher_z_interval(estimate, n, method)
    resamples = [rng.integers(0, n, size=n) for _ in range(300)]
    boot = np.array([function(x[i], y[i]).statistic for i in resamples])
    assert low == pytest.approx(np.quantile(boot, 0.025), abs=0.006)
    assert high == pytest.approx(np.quantile(boot, 0.975), abs=0.006)
    # Coverage of the population coefficient of a bivariate normal (Greiner / Pearson's relations).
    truth = 6 / np.pi * np.arcsin(rho / 2) if method == "spearman" else 2 / np.pi * np.arcsin(rho)
    covered = 0
    for _ in range(200):
        x = rng.normal(size=n)
        y = rho * x + np.sqrt(1 - rho**2) * rng.normal(size=n)
        low, high = stats.fisher_z_interval(float(function(x, y).statistic), n, method)
        covered += low <= truth <= high
    assert covered / 200 >= 0.9  # nominal 0.95
    assert np.isnan(stats.fisher_z_interval(float("nan"), n, method)[0])
    with pytest.raises(ValueError, match="spearman or kendall"):
        stats.fisher_z_interval(0.5, n, "pearson")


def test_linear_fit_equals_scipy_linregress() -> None:
    rng = np.random.default_rng(8)
    x = rng.normal(size=25)
    y = 2.0 * x - 1.0 + rng.normal(size=25)
    fit = scipy.stats.linregress(x, y)
    assert linear_fit(x, y) == pytest.approx((fit.slope, fit.intercept))
    assert np.isnan(linear_fit(np.ones(4), np.arange(4.0))[0])


# --------------------------------------------------------------------------- paired comparisons and ranks


def test_paired_difference_interval_is_the_percentile_interval_of_the_differences() -> None:
    rng = np.random.default_rng(1)
    common = rng.normal(size=1000)
    a = 0.80 + 0.05 * common + 0.002 * rng.normal(size=1000)
    b = 0.79 + 0.05 * common + 0.002 * rng.normal(size=1000)
    low, high = paired_difference_interval(a, b)
    assert (low, high) == pytest.approx(tuple(np.percentile(a - b, [2.5, 97.5])))
    assert low > 0  # paired: significant, although the marginal intervals overlap widely
    assert np.percentile(a, 2.5) < np.percentile(b, 97.5)
    with pytest.raises(ValueError, match="equal non-zero length"):
        paired_difference_interval(a, b[:-1])


def naive_better(distributions: np.ndarray, confidence: float) -> np.ndarray:
    tail = (1 - confidence) / 2 * 100
    k = len(distributions)
    return np.array(
        [[j != i and np.percentile(distributions[j] - distributions[i], tail) > 0 for i in range(k)] for j in range(k)]
    )


@pytest.mark.parametrize("n_resamples", [1, 2, 40, 999, 1000])
@pytest.mark.parametrize("confidence", [0.95, 0.9, 0.5])
def test_paired_better_matrix_equals_percentile_intervals(n_resamples: int, confidence: float) -> None:
    rng = np.random.default_rng(n_resamples)
    common = rng.normal(size=n_resamples)
    # Rounded values: many exact ties between differences and 0 (the edge cases of the shortcut).
    distributions = np.round(
        np.arange(12)[:, None] * 0.02 + 0.1 * common + 0.05 * rng.normal(size=(12, n_resamples)), 2
    )
    got = paired_better_matrix(distributions, confidence)
    assert np.array_equal(got, naive_better(distributions, confidence))
    assert not got.diagonal().any()
    assert not (got & got.T).any()  # never both better than each other


# significance_ranks (family-wise error control) is tested in tests/test_ranks.py.
