"""Ranks with family-wise error control (harness.stats: holm_level, holm_rejections,
paired_difference_p_values, significance_ranks): against the slow reference in rank_reference.py
(statsmodels is not installed, so Holm is checked against the textbook loop and hand-worked
examples), properties on random and adversarial boards, and the error rate by simulation."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st
from rank_reference import holm_reference, paired_p_reference, ranks_reference

from harness.stats import (
    Bootstrap,
    holm_level,
    holm_rejections,
    paired_better_matrix,
    paired_difference_p_values,
    significance_ranks,
)

# --------------------------------------------------------------------------- Holm


def test_holm_hand_worked_examples() -> None:
    # m = 4: 0.005 <= 0.05/4, 0.01 <= 0.05/3, then 0.03 > 0.05/2 stops (0.04 is not reached).
    assert holm_rejections(np.array([0.01, 0.04, 0.03, 0.005])).tolist() == [True, False, False, True]
    # Step-down rejects more than Bonferroni: 0.01 <= 0.05/3, 0.02 <= 0.05/2, 0.025 <= 0.05/1.
    assert holm_rejections(np.array([0.025, 0.01, 0.02])).all()
    assert (np.array([0.025, 0.01, 0.02]) <= 0.05 / 3).tolist() == [False, True, False]
    # Nothing below alpha / m: nothing rejected, even p-values below alpha.
    assert not holm_rejections(np.array([0.02, 0.03, 0.04])).any()
    # Ties at the threshold are rejected together; an empty family is fine.
    assert holm_rejections(np.array([0.025, 0.025]), 0.05).tolist() == [True, True]
    assert holm_rejections(np.array([]), 0.05).tolist() == []
    # NaN is a test that is never rejected.
    assert holm_rejections(np.array([0.001, np.nan]), 0.05).tolist() == [True, False]


@pytest.mark.parametrize("seed", range(40))
def test_holm_equals_the_textbook_loop(seed: int) -> None:
    rng = np.random.default_rng(seed)
    m = int(rng.integers(1, 300))
    kind = seed % 4
    if kind == 0:
        p = rng.uniform(size=m)  # all null
    elif kind == 1:
        p = np.concatenate([rng.uniform(0, 1e-3, size=m // 2), rng.uniform(size=m - m // 2)])
    elif kind == 2:
        p = np.round(rng.uniform(0, 0.01, size=m), 4)  # many ties, many near the thresholds
    else:
        p = rng.choice([0.0, 1.0, 0.05 / m, 0.05 / (m - 1 or 1), 0.05], size=m)  # exact threshold values
    alpha = float(rng.choice([0.01, 0.05, 0.2]))
    assert holm_rejections(p, alpha).tolist() == holm_reference(p, alpha).tolist()


def test_holm_level_counts_without_listing_the_p_values() -> None:
    rng = np.random.default_rng(0)
    p = np.sort(np.concatenate([rng.uniform(0, 1e-4, 50), rng.uniform(size=950)]))
    calls: list[float] = []

    def count_at(t: float) -> int:
        calls.append(t)
        return int(np.searchsorted(p, t, side="right"))

    level = holm_level(count_at, p.size, 0.05)
    assert (p <= level).tolist() == holm_reference(p, 0.05).tolist()
    assert calls[0] == pytest.approx(0.05 / 1000) and len(calls) < 10
    with pytest.raises(ValueError, match="alpha"):
        holm_level(count_at, 3, 1.5)


# --------------------------------------------------------------------------- paired p-values


def test_paired_p_values_equal_a_pairwise_loop_and_the_docstring_example() -> None:
    rng = np.random.default_rng(1)
    k, b = 9, 300
    common = rng.normal(size=b)
    dist = np.arange(k)[:, None] * 0.01 + 0.05 * common + 0.02 * rng.normal(size=(k, b))
    values = dist.mean(axis=1) + rng.normal(scale=0.005, size=k)
    values[3] = values[4]  # an observed tie: p = 1
    dist[7] = dist[6]  # identical distributions with different values: no resample shows a difference
    dist[8] = dist[6] + 0.05  # a constant difference: se = 0 (up to rounding), no resample crosses 0
    values[8] = values[6] + 0.05
    got = paired_difference_p_values(values, dist)
    with_t = paired_difference_p_values(values, dist, n_samples=12)
    for j in range(k):
        for i in range(k):
            expected = 1.0 if i == j else paired_p_reference(values[j], values[i], dist[j], dist[i])
            assert got[j, i] == pytest.approx(expected, rel=1e-9, abs=1e-300), (j, i)
            expected = 1.0 if i == j else paired_p_reference(values[j], values[i], dist[j], dist[i], 12)
            assert with_t[j, i] == pytest.approx(expected, rel=1e-9, abs=1e-300), (j, i)
    assert (with_t >= got).all()  # Student's tails are heavier
    assert np.array_equal(got, got.T) and got[3, 4] == 1.0 and got[6, 7] == 1.0 and got[6, 8] == 0.0
    example = paired_difference_p_values(np.array([0.9, 0.8]), np.array([[0.91, 0.90, 0.89], [0.8, 0.8, 0.8]]))
    assert example[0, 1] == pytest.approx(2 * scipy.stats.norm.sf(10.0))
    # A skewed difference: the normal approximation says 3e-5, but 5% of the resamples cross 0.
    skewed = np.r_[np.full(95, 0.1), np.full(5, -0.01)]
    p = paired_difference_p_values(np.array([0.1, 0.0]), np.vstack([skewed, np.zeros(100)]))
    assert 2 * scipy.stats.norm.sf(0.1 / skewed.std(ddof=1)) < 1e-4
    assert p[0, 1] == pytest.approx(0.1)
    with pytest.raises(ValueError, match="resamples >= 2"):
        paired_difference_p_values(np.zeros(2), np.zeros((2, 1)))
    with pytest.raises(ValueError, match="n_samples"):
        paired_difference_p_values(np.zeros(2), np.zeros((2, 3)), n_samples=1)


@pytest.mark.parametrize("seed", range(6))
def test_with_the_sample_count_a_mean_gets_the_paired_t_test(seed: int) -> None:
    """For a mean metric, the bootstrap's studentized p-value with n is scipy's paired t-test
    (up to the bootstrap's own noise in the standard error: 40,000 resamples, about 0.4%)."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(8, 40))
    x = rng.normal(size=n)
    y = x + rng.normal(loc=0.8, scale=1.0, size=n) * rng.uniform(0.5, 1.5)
    boot = Bootstrap(n, 40_000, seed)
    dist = np.vstack([boot.mean_distribution(y), boot.mean_distribution(x)])
    p = paired_difference_p_values(np.array([y.mean(), x.mean()]), dist, n_samples=n)[0, 1]
    expected = scipy.stats.ttest_rel(y, x).pvalue
    assert -np.log10(p) == pytest.approx(-np.log10(expected), rel=0.05)


# --------------------------------------------------------------------------- ranks against the reference


def random_board(seed: int, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[tuple[np.ndarray, np.ndarray]]]:
    rng = np.random.default_rng(seed)
    values = np.round(rng.normal(scale=0.2, size=k), 2)  # rounded: ties in value
    below = rng.uniform(0.0, 0.15, size=k) * rng.choice([0.0, 1.0], p=[0.1, 0.9], size=k)
    above = rng.uniform(0.0, 0.15, size=k)
    low, high = values - below, values + above  # asymmetric, some of zero width
    missing = rng.choice(k, size=max(1, k // 8), replace=False)
    low[missing] = np.nan
    high[missing] = np.nan
    members = rng.choice(k, size=k // 2, replace=False)
    b = 200
    common = rng.normal(size=b)
    dist = (
        values[members][:, None]
        + 0.1 * common
        + rng.uniform(0.01, 0.1, size=(len(members), 1)) * rng.normal(size=(len(members), b))
    )
    others = np.setdiff1d(np.arange(k), members)[:3]
    groups = [(members, dist), (others, values[others][:, None] + 0.05 * rng.normal(size=(len(others), b)))]
    return values, low, high, groups


@pytest.mark.parametrize("seed", range(12))
def test_significance_ranks_equal_the_pairwise_reference(seed: int) -> None:
    k = [2, 3, 7, 20, 45][seed % 5]
    values, low, high, groups = random_board(seed, k)
    higher = seed % 2 == 0
    n_samples = np.random.default_rng(seed).choice([np.nan, 1.0, 10.0, 30.0, 271.0], size=k) if seed % 3 else None
    got = significance_ranks(values, low, high, higher_is_better=higher, paired_groups=groups, n_samples=n_samples)
    expected = ranks_reference(values, low, high, higher, groups, n_samples=n_samples)
    assert got.rank.tolist() == expected["rank"]
    assert got.rank_worst.tolist() == expected["rank_worst"]
    assert got.n_better.tolist() == expected["n_better"]
    assert got.n_worse.tolist() == expected["n_worse"]
    assert got.significant_pairs == expected["significant_pairs"]
    assert got.pairs == k * (k - 1) // 2
    assert got.paired.sum() == sum(len(g[0]) for g in groups if len(g[0]) >= 2)


def test_docstring_example_and_plain_competition_ranks_without_intervals() -> None:
    ranks = significance_ranks(
        np.array([0.9, 0.8, 0.5]), np.array([0.85, 0.75, 0.45]), np.array([0.95, 0.88, 0.55]), higher_is_better=True
    )
    assert ranks.rank.tolist() == [1, 1, 3] and ranks.rank_worst.tolist() == [2, 2, 3]
    values = np.array([0.3, 0.1, 0.1, 0.5])
    nan = np.full(4, np.nan)
    plain = significance_ranks(values, nan, nan, higher_is_better=False)
    assert plain.rank.tolist() == scipy.stats.rankdata(values, method="min").astype(int).tolist()
    assert plain.rank_worst.tolist() == scipy.stats.rankdata(values, method="max").astype(int).tolist()


def test_one_pair_from_intervals_is_exactly_the_non_overlap_rule() -> None:
    rng = np.random.default_rng(5)
    for _ in range(2000):
        values = rng.uniform(size=2)
        low = values - rng.uniform(0, 0.3, size=2)
        high = values + rng.uniform(0, 0.3, size=2)
        ranks = significance_ranks(values, low, high, higher_is_better=True)
        j, i = np.argsort(-values)
        assert (ranks.rank[i] == 2) == (low[j] > high[i])


def test_the_monotone_construction_fixes_a_non_transitive_board() -> None:
    # a beats c (both narrow) but nobody beats b (wide): the raw ranks 1 + n_better would list c (0.6)
    # at rank 2 below b (0.5) at rank 1. c is valued above b, so it gets b's rank.
    values = np.array([0.9, 0.5, 0.6])  # a, b, c
    low = np.array([0.89, 0.0, 0.595])
    high = np.array([0.91, 1.0, 0.605])
    ranks = significance_ranks(values, low, high, higher_is_better=True)
    assert ranks.n_better.tolist() == [0, 0, 1]  # only "a is better than c" is significant
    assert ranks.rank.tolist() == [1, 1, 1]
    assert ranks.rank_worst.tolist() == [2, 3, 3]


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="finite"):
        significance_ranks(np.array([0.1, np.nan]), np.zeros(2), np.ones(2), higher_is_better=True)
    with pytest.raises(ValueError, match="share models"):
        d = np.zeros((2, 5))
        significance_ranks(
            np.zeros(3), np.zeros(3), np.ones(3), higher_is_better=True,
            paired_groups=[(np.array([0, 1]), d), (np.array([1, 2]), d)],
        )  # fmt: skip
    with pytest.raises(ValueError, match="one distribution per index"):
        significance_ranks(
            np.zeros(3),
            np.zeros(3),
            np.ones(3),
            higher_is_better=True,
            paired_groups=[(np.array([0, 1]), np.zeros((3, 5)))],
        )


# --------------------------------------------------------------------------- properties on random boards

finite = st.floats(min_value=-1.0, max_value=1.0, allow_nan=False).map(lambda x: round(x, 2))


@st.composite
def boards(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool, list[tuple[np.ndarray, np.ndarray]]]:
    k = draw(st.integers(1, 14))
    values = np.array(draw(st.lists(finite, min_size=k, max_size=k)))
    # Widths off the values' 0.01 grid, so that no two intervals exactly touch (a tie decided by rounding).
    widths = st.one_of(st.just(0.0), st.just(float("nan")), st.integers(0, 50).map(lambda n: 0.003 + 0.01 * n))
    below = np.array(draw(st.lists(widths, min_size=k, max_size=k)))
    above = np.array(draw(st.lists(widths, min_size=k, max_size=k)))
    members = np.array(draw(st.lists(st.integers(0, k - 1), unique=True, max_size=k)), dtype=np.int64)
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    scale = draw(st.sampled_from([0.0, 0.01, 0.3]))
    dist = values[members][:, None] + scale * rng.normal(size=(len(members), 50))
    return values, values - below, values + above, draw(st.booleans()), [(members, dist)]


@settings(max_examples=300, deadline=None)
@given(boards())
def test_ranks_are_monotone_in_value_and_bounds_are_ordered(board) -> None:  # type: ignore[no-untyped-def]
    values, low, high, higher, groups = board
    got = significance_ranks(values, low, high, higher_is_better=higher, paired_groups=groups)
    k = values.size
    oriented = values if higher else -values
    for a in range(k):
        for b in range(k):
            if oriented[a] > oriented[b]:
                assert got.rank[a] <= got.rank[b] and got.rank_worst[a] <= got.rank_worst[b]
            elif oriented[a] == oriented[b]:
                assert got.rank[a] == got.rank[b] and got.rank_worst[a] == got.rank_worst[b]
    assert (got.rank >= 1).all() and (got.rank_worst <= k).all()
    assert (got.rank <= 1 + got.n_better).all() and (1 + got.n_better <= k - got.n_worse).all()
    assert (k - got.n_worse <= got.rank_worst).all()
    assert got.n_better.sum() == got.n_worse.sum() == got.significant_pairs <= got.pairs
    if k and not (values == values[0]).all():
        assert got.rank.min() == 1
    expected = ranks_reference(values, low, high, higher, groups)
    assert got.rank.tolist() == expected["rank"] and got.rank_worst.tolist() == expected["rank_worst"]


@settings(max_examples=200, deadline=None)
@given(boards())
def test_interval_decisions_are_never_bolder_than_non_overlapping_intervals(board) -> None:  # type: ignore[no-untyped-def]
    values, low, high, higher, _ = board
    got = significance_ranks(values, low, high, higher_is_better=higher)
    low_f = np.where(np.isnan(low), values, low)
    high_f = np.where(np.isnan(high), values, high)
    # old[i]: #{j whose interval lies entirely on the better side of i's}
    better_side = low_f[None, :] > high_f[:, None] if higher else high_f[None, :] < low_f[:, None]
    old = better_side.sum(axis=1)
    assert (got.n_better <= old).all()


# --------------------------------------------------------------------------- error rate and power by simulation

N_SAMPLES, P_CORRECT, N_RESAMPLES = 271, 0.8, 1000


def simulated_board(rng: np.random.Generator, accuracies: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-model accuracy and bootstrap distribution on shared resamples, as the store pairs them."""
    correct = (rng.random((accuracies.size, N_SAMPLES)) < accuracies[:, None]).astype(np.int64)
    (rows,) = Bootstrap(N_SAMPLES, N_RESAMPLES, seed).chunks()
    offsets = N_SAMPLES * np.arange(N_RESAMPLES)[:, None]
    counts = np.bincount((rows + offsets).ravel(), minlength=N_RESAMPLES * N_SAMPLES).reshape(N_RESAMPLES, -1)
    # Integer products are exact and, here, faster than BLAS on a busy machine.
    return correct.mean(axis=1), (counts @ correct.T).T / N_SAMPLES


def test_family_wise_error_among_equal_models_is_at_most_5_percent() -> None:
    rng = np.random.default_rng(2024)
    boards, k = 200, 10
    new_errors = old_errors = 0
    for b in range(boards):
        values, dist = simulated_board(rng, np.full(k, P_CORRECT), seed=b)
        low, high = np.percentile(dist, [2.5, 97.5], axis=1)
        ranks = significance_ranks(
            values, low, high, higher_is_better=True, paired_groups=[(np.arange(k), dist)], n_samples=np.full(k, 271)
        )
        new_errors += ranks.significant_pairs > 0
        old_errors += paired_better_matrix(dist).any()  # the previous rule: one uncorrected test per pair
    se = np.sqrt(0.05 * 0.95 / boards)
    assert new_errors / boards <= 0.05 + 3 * se
    assert old_errors / boards > 0.05 + 3 * se  # the check has teeth: the uncorrected rule fails it


def test_clear_differences_are_still_found() -> None:
    rng = np.random.default_rng(7)
    k, found, truly_better = 10, 0, 0
    accuracies = np.r_[np.full(k // 2, 0.95), np.full(k // 2, 0.8)]
    for b in range(20):
        values, dist = simulated_board(rng, accuracies, seed=b)
        low, high = np.percentile(dist, [2.5, 97.5], axis=1)
        ranks = significance_ranks(values, low, high, higher_is_better=True, paired_groups=[(np.arange(k), dist)])
        found += int(ranks.n_better[k // 2 :].sum())
        truly_better += (k // 2) ** 2
        assert (ranks.rank[: k // 2] == 1).all()  # the good ones are never shown below anyone
    assert found / truly_better > 0.9
