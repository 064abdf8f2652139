"""Bootstrap confidence intervals, paired comparisons, ranks with family-wise error control, correlations.

Convention: percentile bootstrap. `n_resamples` resamples of the n evaluation samples with
replacement, drawn from numpy's PCG64 seeded with `seed`, so an interval is reproducible from
the seed recorded with the run. Metrics of one run share the same resamples (paired).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
from numpy.typing import NDArray

# Bound on resample-matrix entries held at once (int64: 8 bytes each -> 32 MB).
_MAX_CELLS = 4_000_000


@dataclass(frozen=True)
class Bootstrap:
    """Seeded resamples of n samples, generated in chunks of bounded memory."""

    n: int
    n_resamples: int = 1000
    seed: int = 0

    def chunks(self) -> Iterator[NDArray[np.int64]]:
        """Index matrices of shape (b, n) whose rows are resamples; the same for every call."""
        rng = np.random.default_rng(self.seed)
        rows_per_chunk = max(1, _MAX_CELLS // max(self.n, 1))
        done = 0
        while done < self.n_resamples:
            b = min(rows_per_chunk, self.n_resamples - done)
            yield rng.integers(0, self.n, size=(b, self.n))
            done += b

    def count_chunks(self) -> Iterator[NDArray[np.float64]]:
        """The resamples of `chunks` as multiplicities: (b, n) matrices whose row r, column i says how
        often sample i occurs in resample r. Metrics that are weighted sums evaluate a chunk at once."""
        for rows in self.chunks():
            b = rows.shape[0]
            flat = (rows + (np.arange(b, dtype=np.int64) * self.n)[:, None]).ravel()
            yield np.bincount(flat, minlength=b * self.n).reshape(b, self.n).astype(np.float64)

    def distribution(self, statistic: Callable[[NDArray[np.int64]], NDArray[np.float64]]) -> NDArray[np.float64]:
        """The statistic on every resample; `statistic` maps an index matrix (b, n) to (b,) values."""
        return np.concatenate([np.asarray(statistic(rows), dtype=np.float64) for rows in self.chunks()])

    def mean_distribution(self, values: NDArray[np.float64]) -> NDArray[np.float64]:
        """Resampled means of per-sample `values`."""
        values = np.asarray(values, dtype=np.float64)
        return self.distribution(lambda rows: values[rows].mean(axis=1))


def stratified_resamples(
    sizes: Sequence[int], n_resamples: int = 1000, seed: int = 0
) -> Iterator[list[NDArray[np.int64]]]:
    """Seeded resamples that keep group sizes: each yield holds one index array per group.

    Used where groups must stay fixed, e.g. ID and OOD samples (AUROC needs both) or the classes
    of a balanced test set (per-class accuracies need every class).
    """
    rng = np.random.default_rng(seed)
    for _ in range(n_resamples):
        yield [rng.integers(0, size, size=size) for size in sizes]


def stratified_counts(sizes: Sequence[int], n_resamples: int = 1000, seed: int = 0) -> list[NDArray[np.float64]]:
    """The resamples of `stratified_resamples` as multiplicities: one (n_resamples, size) matrix per group.

    Row b, column i says how often sample i occurs in resample b (the same draws, in the same order).
    Metrics that take per-sample weights evaluate every resample at once from these.
    """
    counts = [np.zeros((n_resamples, size)) for size in sizes]
    for b, rows in enumerate(stratified_resamples(sizes, n_resamples, seed)):
        for matrix, drawn, size in zip(counts, rows, sizes, strict=True):
            matrix[b] = np.bincount(drawn, minlength=size)
    return counts


def percentile_interval(distribution: NDArray[np.float64], confidence: float = 0.95) -> tuple[float, float]:
    """The central `confidence` interval of a bootstrap distribution."""
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = np.percentile(distribution, [tail, 100.0 - tail])
    return float(low), float(high)


# --------------------------------------------------------------------------- paired comparisons and ranks


def paired_difference_interval(
    a: NDArray[np.float64], b: NDArray[np.float64], confidence: float = 0.95
) -> tuple[float, float]:
    """Percentile interval of the paired bootstrap distribution of a - b (elementwise).

    `a` and `b` must be bootstrap distributions of two models' metric on the *same* resamples
    (same samples, same seed): then a[k] - b[k] is the difference on resample k and the interval
    is a paired-bootstrap CI of the difference. The difference is significant at `confidence`
    when the interval excludes 0. Example: a = [1, 2, 3], b = [0, 1, 2] -> (1.0, 1.0).
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or a.size == 0:
        raise ValueError(f"paired distributions must be 1-d and of equal non-zero length, got {a.shape} and {b.shape}")
    return percentile_interval(a - b, confidence)


def paired_better_matrix(distributions: NDArray[np.float64], confidence: float = 0.95) -> NDArray[np.bool_]:
    """better[j, i]: model j is significantly better than model i by a paired bootstrap test.

    One test per pair, uncorrected: the rule ranks used before `significance_ranks` controlled the
    family-wise error (kept for comparisons such as bench/uncertainty.py; do not rank boards by it).

    `distributions` is (k, B): row j is model j's bootstrap distribution, oriented so that higher
    is better (negate lower-is-better metrics first), all on the same B resamples. j is better
    than i when the lower end of the `confidence` percentile interval of D[j] - D[i] is above 0,
    exactly as `paired_difference_interval` computes it (numpy's linear interpolation).

    The lower percentile sits at position p = (1 - confidence) / 2 * (B - 1) of the sorted
    differences; with c = #(d <= 0) and f = floor(p): c <= f means it is positive, c >= f + 2
    (or c >= f + 1 when p is whole) means it is not, and only c == f + 1 needs the two order
    statistics around p (the largest non-positive and the smallest positive difference).
    This avoids a sort per pair: O(k^2 B) comparisons.
    """
    values = np.asarray(distributions, dtype=np.float64)
    if values.ndim != 2 or values.shape[1] == 0:
        raise ValueError(f"distributions must be a (models, resamples) matrix, got shape {values.shape}")
    k, n_resamples = values.shape
    position = (1.0 - confidence) / 2.0 * (n_resamples - 1)
    floor = int(np.floor(position))
    fraction = position - floor
    better = np.zeros((k, k), dtype=bool)
    for j in range(k):
        diff = values[j][None, :] - values  # row i: D[j] - D[i]
        non_positive = diff <= 0
        count = non_positive.sum(axis=1)
        row = count <= floor
        if fraction > 0:
            edge = np.flatnonzero(count == floor + 1)
            if edge.size:
                sub = diff[edge]
                below = np.where(sub <= 0, sub, -np.inf).max(axis=1)
                above = np.where(sub > 0, sub, np.inf).min(axis=1)
                row[edge] = below + fraction * (above - below) > 0
        row[j] = False
        better[j] = row
    return better


# --------------------------------------------------------------------------- multiple testing and ranks


def holm_level(count_at: Callable[[float], int], m: int, alpha: float = 0.05) -> float:
    """The per-test level of Holm's step-down procedure over m tests: reject exactly the p <= level.

    Holm (1979): with p_(1) <= ... <= p_(m), reject p_(1..R) where R is the largest r such that
    p_(h) <= alpha / (m - h + 1) for every h <= r. This controls the family-wise error rate (the
    probability of rejecting any true hypothesis) at alpha under any dependence between the tests.
    `count_at(t)` must return #{p <= t}; the p-values themselves are never listed, so a board of
    10,000 models (50 million pairs) can count them by sorting intervals. The rejected set is
    {p <= alpha / (m - R)}: starting from R = 0, R <- count_at(alpha / (m - R)) until it stops
    growing; every step only adds p-values below their own Holm threshold, and at the fixed point
    p_(R+1) > alpha / (m - R), where Holm stops. Returns alpha / max(m - R, 1).
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    rejected = 0
    while rejected < m:
        found = count_at(alpha / (m - rejected))
        if found <= rejected:
            break
        rejected = found
    return alpha / max(m - rejected, 1)


def holm_rejections(p_values: NDArray[np.float64], alpha: float = 0.05) -> NDArray[np.bool_]:
    """Which of the p-values Holm's step-down procedure rejects at family-wise level `alpha`.

    The same decisions as statsmodels' `multipletests(p, alpha, method="holm")[0]`. NaN p-values
    are never rejected but count as tests. Example: [0.01, 0.04, 0.03, 0.005] at 0.05 -> only
    0.005 (<= 0.05 / 4) and 0.01 (<= 0.05 / 3) are rejected; 0.03 > 0.05 / 2 stops the procedure.
    """
    p = np.asarray(p_values, dtype=np.float64).ravel()
    ordered = np.sort(p[~np.isnan(p)])
    level = holm_level(lambda t: int(np.searchsorted(ordered, t, side="right")), p.size, alpha)
    return np.asarray(p <= level, dtype=bool).reshape(np.shape(p_values))


def paired_difference_p_values(
    values: NDArray[np.float64], distributions: NDArray[np.float64], n_samples: int | None = None
) -> NDArray[np.float64]:
    """Two-sided p-values of every paired difference: p[j, i] = p[i, j] tests "models i and j are equal".

    `values` are the k models' point values, `distributions` (k, B) their bootstrap distributions
    on the same B resamples (see `paired_difference_interval`), so D[j] - D[i] is the bootstrap
    distribution of the difference. With d the observed difference values[j] - values[i] and se
    the standard deviation of D[j] - D[i] (ddof 1), p is the larger of

    - the studentized p-value, which resolves the small levels a multiple-testing correction asks
      for (1,000 resamples cannot show a p-value below 0.001): with `n_samples` = n (the
      independent units resampled), t = |d| / (se sqrt(n / (n - 1))) against Student's t with
      n - 1 degrees of freedom, which is the paired t-test when the metric is a mean (the
      bootstrap variance of a mean is s^2 (n - 1) / n^2); an estimated se has heavier tails than
      the normal, which matters at Holm's small levels (at n = 64 and 300 pairs the normal
      would under-state the first threshold's p-value about 2-fold). Without n: 2 Phi(-|d| / se).
    - the percentile-bootstrap p-value 2 #{resamples where D[j] - D[i] is 0 or on the other side
      of 0 than d} / B (capped at 1): the smallest level at which the percentile interval of the
      difference excludes 0; it guards against a skewed difference that the normal
      approximation would over-state.

    d = 0 gives p = 1; se = 0 with d != 0 gives the percentile p-value alone; a non-finite
    distribution gives p = 1. The diagonal is 1. Example: values [0.9, 0.8] with
    distributions [[0.91, 0.90, 0.89], [0.80, 0.80, 0.80]] -> p = 2 Phi(-0.1 / 0.01) ~ 1.5e-23.
    """
    from scipy.special import ndtr, stdtr  # here: importing scipy costs a quarter second

    if n_samples is not None and n_samples < 2:
        raise ValueError(f"n_samples must be at least 2 (or None), got {n_samples}")
    values = np.asarray(values, dtype=np.float64)
    dist = np.asarray(distributions, dtype=np.float64)
    if dist.ndim != 2 or dist.shape[0] != values.shape[0] or dist.shape[1] < 2:
        raise ValueError(
            f"distributions must be a (models, resamples >= 2) matrix with one row per value, got {dist.shape} "
            f"for {values.shape[0]} values"
        )
    k, n_resamples = dist.shape
    p = np.ones((k, k), dtype=np.float64)
    for j in range(k):
        diff = dist[j][None, :] - dist  # row i: D[j] - D[i]
        observed = values[j] - values
        side = np.sign(observed)
        crossing = (side[:, None] * diff <= 0).sum(axis=1)
        percentile = np.minimum(1.0, 2.0 * crossing / n_resamples)
        se = diff.std(axis=1, ddof=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            if n_samples is None:
                studentized = 2.0 * ndtr(-np.abs(observed) / se)  # se = 0: -inf -> 0; NaN stays NaN
            else:
                t = np.abs(observed) / (se * np.sqrt(n_samples / (n_samples - 1.0)))
                studentized = 2.0 * stdtr(n_samples - 1.0, -t)
        row = np.maximum(np.where(observed == 0, 1.0, studentized), percentile)
        p[j] = np.where(np.isfinite(row), row, 1.0)
    np.fill_diagonal(p, 1.0)
    return p


@dataclass(frozen=True)
class SignificanceRanks:
    """Ranks with family-wise error control over a board (see `significance_ranks`).

    rank[i]: the displayed rank, a lower confidence bound on model i's true rank, monotone in the
    point values; rank_worst[i]: the upper bound, so [rank, rank_worst] is a simultaneous 95%
    confidence interval of each true rank. n_better[i] (n_worse[i]): how many models were found
    significantly better (worse) than model i; rank <= 1 + n_better <= k - n_worse <= rank_worst.
    paired[i]: whether model i was compared by a paired bootstrap with the other members of its
    group (else by intervals only). pairs: k (k - 1) / 2 tests; significant_pairs: how many Holm
    rejected; pair_level: the per-pair level Holm arrived at (a pair is significant when its
    p-value is at most pair_level).
    """

    rank: NDArray[np.int64]
    rank_worst: NDArray[np.int64]
    n_better: NDArray[np.int64]
    n_worse: NDArray[np.int64]
    paired: NDArray[np.bool_]
    pairs: int
    significant_pairs: int
    pair_level: float


def _interval_counts(
    values: NDArray[np.float64], down: NDArray[np.float64], up: NDArray[np.float64], critical: float
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """(#{j : low_j > high_i}, #{j : low_i > high_j}) for the intervals value -/+ critical * (down, up)."""
    low = values - critical * down
    high = values + critical * up
    better = values.size - np.searchsorted(np.sort(low), high, side="right")
    worse = np.searchsorted(np.sort(high), low, side="left")
    return better.astype(np.int64), worse.astype(np.int64)


def significance_ranks(
    values: NDArray[np.float64],
    ci_low: NDArray[np.float64],
    ci_high: NDArray[np.float64],
    *,
    higher_is_better: bool,
    paired_groups: Sequence[tuple[NDArray[np.int64], NDArray[np.float64]]] = (),
    confidence: float = 0.95,
    interval_confidence: float = 0.95,
    n_samples: NDArray[np.float64] | None = None,
) -> SignificanceRanks:
    """Ranks whose every claim holds together with probability >= `confidence` (family-wise).

    1. Every pair of the k models is one test of "equal" (m = k (k - 1) / 2 tests), with a
       two-sided p-value:
       - paired, when both models belong to the same entry of `paired_groups` = [(indices,
         distributions (len(indices), B)), ...] whose distributions share resamples (same
         samples, seed and resample count): `paired_difference_p_values` (the larger of the
         studentized and the percentile-bootstrap p-value of the paired difference; Student's t
         with n - 1 degrees of freedom where `n_samples`, the per-model sample counts, give the
         group's n: its smallest finite count of at least 2);
       - otherwise from the intervals, conservatively: the interval [ci_low, ci_high] (at level
         `interval_confidence`) gives model i a standard error on each side, s = half-width / z
         (z = 1.96 for 95%), and for d = value_j - value_i > 0 the test is
         2 Phi(-d / (s_j below + s_i above)). Since sd(X - Y) <= sd(X) + sd(Y) whatever the
         correlation of the two estimates, this never overstates significance; at a single
         pair and 95% it is exactly "the intervals do not overlap". Asymmetric intervals use
         the half-widths that face each other. A missing (NaN) interval end is the value
         itself (no uncertainty): such models are compared by value (equal values tie).
    2. Holm's step-down procedure over all m p-values at alpha = 1 - `confidence`
       (`holm_level`): a rejected pair is a claim "the model with the better point value is
       better". With probability >= `confidence` no claim on the board is false (with the
       interval test as conservative as above, and the studentized paired test approximately).
    3. n_better[i] = #{j claimed better than i}; 1 + n_better[i] is a lower bound of i's true
       rank (1 + #{j truly better}) on that event, and k - n_worse[i] an upper bound.
    4. Monotone in the point values: rank[i] = min of 1 + n_better[l] over the models l whose
       value is not better than i's, rank_worst[i] = max of k - n_worse[l] over the models l whose
       value is not worse. Both only widen the bounds, so the guarantee holds for them: with
       probability >= `confidence`, simultaneously for every model, its true rank lies in
       [rank, rank_worst]. A better point value never gets a worse rank; equal values share one.

    The procedure replaces "1 + #{j whose 95% CI beats i}" (one test per pair at 2.5%, no
    correction), under which 15 models of equal true accuracy showed a spurious "better" verdict
    on most boards. Costs O(g^2 B) for paired groups of size g and O(k log k) per Holm step for
    the rest. Example: values [0.9, 0.8, 0.5] with intervals [0.85, 0.95], [0.75, 0.88],
    [0.45, 0.55] (higher is better): p = 1.3e-1 (0.9 vs 0.8), 4.5e-15, 4.1e-9; Holm rejects the
    last two -> rank [1, 1, 3], rank_worst [2, 2, 3].
    """
    from scipy.special import ndtri

    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1 or not np.isfinite(values).all():
        raise ValueError(f"values must be a 1-d array of finite numbers, got shape {values.shape}")
    low = np.where(np.isnan(ci_low), values, np.asarray(ci_low, dtype=np.float64))
    high = np.where(np.isnan(ci_high), values, np.asarray(ci_high, dtype=np.float64))
    low, high = np.minimum(low, high), np.maximum(low, high)
    if not higher_is_better:
        values, low, high = -values, -high, -low
    # Rounded so that 1 - 0.95 is 0.05: at a single pair, Holm's level then meets the intervals' own.
    alpha = round(1.0 - confidence, 12)
    z_interval = float(-ndtri(round(1.0 - interval_confidence, 12) / 2.0))
    down = np.maximum(values - low, 0.0) / z_interval
    up = np.maximum(high - values, 0.0) / z_interval
    k = values.shape[0]
    paired = np.zeros(k, dtype=bool)
    groups: list[tuple[NDArray[np.int64], NDArray[np.float64]]] = []  # (indices, p-value matrix)
    for indices, distributions in paired_groups:
        indices = np.asarray(indices, dtype=np.int64)
        dist = np.asarray(distributions, dtype=np.float64)
        if dist.ndim != 2 or dist.shape[0] != indices.size:
            raise ValueError(f"a paired group needs one distribution per index, got {dist.shape} for {indices.size}")
        if indices.size < 2 or dist.shape[1] < 2:
            continue
        if paired[indices].any() or np.unique(indices).size != indices.size:
            raise ValueError("paired groups must not share models")
        oriented = dist if higher_is_better else -dist
        counts = np.asarray(n_samples, dtype=np.float64)[indices] if n_samples is not None else np.empty(0)
        counts = counts[np.isfinite(counts) & (counts >= 2)]
        n_group = int(counts.min()) if counts.size else None
        groups.append((indices, paired_difference_p_values(values[indices], oriented, n_group)))
        paired[indices] = True
    paired_p = np.sort(np.concatenate([p[np.triu_indices(p.shape[0], 1)] for _, p in groups] + [np.empty(0)]))

    def critical(level: float) -> float:
        return float(-ndtri(level / 2.0))  # |z| at or above this: two-sided p <= level

    def count_at(level: float) -> int:
        c = critical(level)
        count = int(_interval_counts(values, down, up, c)[0].sum())
        for indices, _ in groups:  # their interval tests are replaced by the paired ones
            count -= int(_interval_counts(values[indices], down[indices], up[indices], c)[0].sum())
        return count + int(np.searchsorted(paired_p, level, side="right"))

    pairs = k * (k - 1) // 2
    level = holm_level(count_at, pairs, alpha)
    n_better, n_worse = _interval_counts(values, down, up, critical(level))
    for indices, p in groups:
        within_better, within_worse = _interval_counts(values[indices], down[indices], up[indices], critical(level))
        sub = values[indices]
        better = (p <= level) & (sub[:, None] > sub[None, :])  # better[j, i]: j significantly better than i
        n_better[indices] += better.sum(axis=0) - within_better
        n_worse[indices] += better.sum(axis=1) - within_worse
    # Monotone along the point values: the best bound among the models valued no better (rank),
    # the worst among those valued no worse (rank_worst).
    distinct, position = np.unique(values, return_inverse=True)
    best = np.full(distinct.size, k, dtype=np.int64)
    np.minimum.at(best, position, 1 + n_better)
    worst = np.ones(distinct.size, dtype=np.int64)
    np.maximum.at(worst, position, k - n_worse)
    rank = np.minimum.accumulate(best)[position]
    rank_worst = np.maximum.accumulate(worst[::-1])[::-1][position]
    return SignificanceRanks(
        rank=rank.astype(np.int64),
        rank_worst=rank_worst.astype(np.int64),
        n_better=n_better,
        n_worse=n_worse,
        paired=paired,
        pairs=pairs,
        significant_pairs=int(n_better.sum()),
        pair_level=level,
    )


# --------------------------------------------------------------------------- correlations


@dataclass(frozen=True)
class Correlation:
    """A correlation coefficient with its interval: a percentile bootstrap over the (x, y) pairs
    (`ci_method` "percentile-bootstrap"), or for a rank coefficient above RANK_BOOTSTRAP_MAX_N pairs the
    Fisher-z interval ("fisher-z", `n_resamples` 0; see `fisher_z_interval`)."""

    method: str
    estimate: float
    ci_low: float
    ci_high: float
    n: int
    n_resamples: int
    ci_method: str = "percentile-bootstrap"


CORRELATION_METHODS = ("pearson", "spearman", "kendall")


def _pairs(x: NDArray[np.float64], y: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"x and y must be 1-d arrays of equal length, got {x.shape} and {y.shape}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("x and y must be finite (drop missing pairs first)")
    return x, y


def weighted_pearson(
    x: NDArray[np.float64], y: NDArray[np.float64], weights: NDArray[np.float64]
) -> NDArray[np.float64]:
    """Pearson's r of x and y with each pair i repeated weights[b, i] times, for every row b.

    With integer weights this equals `scipy.stats.pearsonr(np.repeat(x, w), np.repeat(y, w))`;
    a row where x or y is constant gives NaN. `weights` is (B, n); returns (B,). Computed from
    weighted moments (matrix-vector products, no (B, n) temporaries) of x and y centred on their
    plain means first, so the moments do not cancel for values far from 0.
    """
    w = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    x0 = x - x.mean()
    y0 = y - y.mean()
    total = w.sum(axis=1)
    sum_x = w @ x0
    sum_y = w @ y0
    with np.errstate(invalid="ignore", divide="ignore"):
        var_x = w @ (x0 * x0) - sum_x * sum_x / total
        var_y = w @ (y0 * y0) - sum_y * sum_y / total
        cov = w @ (x0 * y0) - sum_x * sum_y / total
        r = cov / np.sqrt(var_x * var_y)
    scale = np.maximum(np.abs(x).max(initial=0.0), np.abs(y).max(initial=0.0)) or 1.0
    # A constant variable (up to rounding) has no correlation.
    degenerate = (var_x <= (1e-12 * scale) ** 2 * total) | (var_y <= (1e-12 * scale) ** 2 * total)
    return np.where(degenerate, np.nan, np.clip(r, -1.0, 1.0))


def _sorted_ranks(
    values: NDArray[np.float64], w: NDArray[np.float64]
) -> tuple[NDArray[np.int64], NDArray[np.float64], NDArray[np.float64]]:
    """(order, weights in that order, average ranks in that order): `values` sorted (stably), and per
    row b the rank of each copy: the copies of smaller values + (copies of equal values + 1) / 2."""
    order = np.argsort(values, kind="stable")
    sorted_values = values[order]
    weights = w[:, order]
    new_group = np.r_[True, sorted_values[1:] != sorted_values[:-1]]
    if new_group.all():  # no ties: each value is its own group
        ranks = np.cumsum(weights, axis=1)
        ranks -= 0.5 * weights
        ranks += 0.5
        return order, weights, ranks
    starts = np.flatnonzero(new_group)
    per_group = np.add.reduceat(weights, starts, axis=1)  # copies of each distinct value
    rank_of_group = np.cumsum(per_group, axis=1)
    rank_of_group -= 0.5 * per_group
    rank_of_group += 0.5
    return order, weights, np.repeat(rank_of_group, np.diff(np.r_[starts, values.size]), axis=1)


def weighted_average_ranks(values: NDArray[np.float64], weights: NDArray[np.float64]) -> NDArray[np.float64]:
    """Average ranks (1-based, ties share their mean rank) of `values` repeated weights[b, i] times.

    Row b gives the rank every copy of values[i] gets in the sample that holds weights[b, i]
    copies of each value: the copies of all smaller values, plus (copies of equal values + 1) / 2.
    With weights 1 this equals `scipy.stats.rankdata(values)` (method "average").
    """
    w = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    values = np.asarray(values, dtype=np.float64)
    order, _, ranks = _sorted_ranks(values, w)
    back = np.empty_like(order)
    back[order] = np.arange(order.size)
    result: NDArray[np.float64] = ranks[:, back]
    return result


def weighted_spearman(
    x: NDArray[np.float64], y: NDArray[np.float64], weights: NDArray[np.float64]
) -> NDArray[np.float64]:
    """Spearman's rho (Pearson's r of average ranks) with pair i repeated weights[b, i] times.

    Average ranks of N copies have mean (N + 1) / 2 whatever the ties, so the moments need no
    centring pass; the sums run in x's sorted order (y's ranks brought into it with one gather).
    A row where x or y is constant (all ranks equal) gives NaN.
    """
    w = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    order_x, weights_x, rank_x = _sorted_ranks(np.asarray(x, dtype=np.float64), w)
    order_y, weights_y, rank_y = _sorted_ranks(np.asarray(y, dtype=np.float64), w)
    position_y = np.empty_like(order_y)
    position_y[order_y] = np.arange(order_y.size)
    rank_y_by_x = rank_y[:, position_y[order_x]]
    total = w.sum(axis=1)
    mean = (total + 1.0) / 2.0
    centre = total * mean * mean
    weighted_x = weights_x * rank_x
    cov = np.einsum("bn,bn->b", weighted_x, rank_y_by_x) - centre
    var_x = np.einsum("bn,bn->b", weighted_x, rank_x) - centre
    var_y = np.einsum("bn,bn->b", weights_y * rank_y, rank_y) - centre
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = cov / np.sqrt(var_x * var_y)
    # Not constant: at least N (N - 1) / 4 (one copy apart from the rest); rounding leaves far less than this.
    degenerate = (var_x <= 1e-9 * total**3) | (var_y <= 1e-9 * total**3)
    return np.where(degenerate, np.nan, np.clip(rho, -1.0, 1.0))


def weighted_kendall(
    x: NDArray[np.float64], y: NDArray[np.float64], weights: NDArray[np.float64]
) -> NDArray[np.float64]:
    """Kendall's tau-b with pair i repeated weights[b, i] times (copies of one pair tie in x and y).

    tau_b = (P - Q) / sqrt((n0 - n1) (n0 - n2)) over the N = sum(w) copies: P - Q is half of
    w^T S w with S[i, j] = sign(x_i - x_j) sign(y_i - y_j); n0 = N (N - 1) / 2; n1 (n2) counts
    the pairs of copies tied in x (y), (w^T T w - N) / 2 with T[i, j] = [x_i == x_j]. Costs
    O(n^2) memory and O(B n^2) time (matrix products). With weights 1 it equals
    `scipy.stats.kendalltau` (variant "b").
    """
    w = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    sign_x = np.sign(x[:, None] - x[None, :])
    sign_y = np.sign(y[:, None] - y[None, :])
    concordance = sign_x * sign_y
    tied_x = (sign_x == 0).astype(np.float64)
    tied_y = (sign_y == 0).astype(np.float64)
    total = w.sum(axis=1)
    n0 = total * (total - 1.0) / 2.0
    p_minus_q = ((w @ concordance) * w).sum(axis=1) / 2.0
    n1 = (((w @ tied_x) * w).sum(axis=1) - total) / 2.0
    n2 = (((w @ tied_y) * w).sum(axis=1) - total) / 2.0
    denominator = np.sqrt((n0 - n1) * (n0 - n2))
    with np.errstate(invalid="ignore", divide="ignore"):
        tau = p_minus_q / denominator
    return np.where(denominator > 0, np.clip(tau, -1.0, 1.0), np.nan)


_CORRELATIONS: dict[
    str, Callable[[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]], NDArray[np.float64]]
] = {
    "pearson": weighted_pearson,
    "spearman": weighted_spearman,
    "kendall": weighted_kendall,
}

#: above this many pairs Spearman's and Kendall's intervals come from `fisher_z_interval`, not a bootstrap
#: (Kendall's resamples cost O(n^2); Spearman's re-rank every resample: 1.5 s at 10,000 pairs)
RANK_BOOTSTRAP_MAX_N = 2000
KENDALL_BOOTSTRAP_MAX_N = RANK_BOOTSTRAP_MAX_N  # the estimate switches to `kendall_tau_b` above it


def fisher_z_interval(estimate: float, n: int, method: str, confidence: float = 0.95) -> tuple[float, float]:
    """The large-sample interval of a rank correlation: tanh(atanh(r) -+ z * se) with
    se = sqrt((1 + r^2 / 2) / (n - 3)) for Spearman's rho (Bonett & Wright, Psychometrika 2000) and
    se = sqrt(0.437 / (n - 4)) for Kendall's tau (Fieller, Hartley & Pearson, Biometrika 1957).
    Accurate for the sample sizes it is used at (thousands of pairs); NaN when undefined.

    Example: fisher_z_interval(0.5, 2500, "spearman") -> about (0.469, 0.529).
    """
    if method not in ("spearman", "kendall"):
        raise ValueError(f"the Fisher-z interval here is for spearman or kendall, not {method!r}")
    if not (np.isfinite(estimate) and n > 4):
        return float("nan"), float("nan")
    se = math.sqrt((1.0 + estimate**2 / 2.0) / (n - 3)) if method == "spearman" else math.sqrt(0.437 / (n - 4))
    z = NormalDist().inv_cdf(0.5 + confidence / 2.0)
    centre = math.atanh(min(max(estimate, -1.0 + 1e-15), 1.0 - 1e-15))
    return math.tanh(centre - z * se), math.tanh(centre + z * se)


def correlation(x: NDArray[np.float64], y: NDArray[np.float64], method: str) -> float:
    """Pearson's r, Spearman's rho or Kendall's tau-b of the pairs (x_i, y_i); NaN when undefined.

    Undefined: fewer than 2 pairs, or x or y constant. Equals scipy.stats.pearsonr, spearmanr
    and kendalltau (tau-b) statistics. Kendall above KENDALL_BOOTSTRAP_MAX_N pairs is computed by
    `kendall_tau_b` in O(n log^2 n) (the pair-matrix form needs O(n^2) memory: 800 MB per matrix at
    10,000 pairs).
    """
    x, y = _pairs(x, y)
    if method not in _CORRELATIONS:
        raise ValueError(f"unknown correlation method {method!r}; use one of {CORRELATION_METHODS}")
    if x.size < 2:
        return float("nan")
    if method == "kendall" and x.size > KENDALL_BOOTSTRAP_MAX_N:
        return kendall_tau_b(x, y)
    return float(_CORRELATIONS[method](x, y, np.ones((1, x.size)))[0])


def _tied_pairs(*columns: NDArray[np.float64]) -> int:
    """Pairs of rows equal in every one of `columns`."""
    _, counts = np.unique(np.stack(columns, axis=1), axis=0, return_counts=True)
    return int((counts * (counts - 1) // 2).sum())


def _inversions(ranks: NDArray[np.int64]) -> int:
    """Pairs i < j with ranks[i] > ranks[j], by a bottom-up merge sort whose merges are counted with
    searchsorted (O(n log^2 n), no Python loop over elements)."""
    values = ranks.astype(np.int64)
    n = values.size
    scale = int(values.max(initial=0)) + 1
    position = np.arange(n)
    total = 0
    width = 1
    while width < n:
        block = position // (2 * width)
        right = (position // width) % 2 == 1
        left_keys = block[~right] * scale + values[~right]  # sorted: blocks in order, each block sorted
        right_block, right_values = block[right], values[right]
        greater = np.searchsorted(left_keys, (right_block + 1) * scale, side="left") - np.searchsorted(
            left_keys, right_block * scale + right_values, side="right"
        )
        total += int(greater.sum())
        values = np.sort(block * scale + values) - block * scale  # merge each pair of blocks
        width *= 2
    return total


def kendall_tau_b(x: NDArray[np.float64], y: NDArray[np.float64]) -> float:
    """Kendall's tau-b in O(n log^2 n) (Knight's method): (C - D) / sqrt((n0 - n1)(n0 - n2)) with
    C - D = n0 - n1 - n2 + n3 - 2 D, D the inversions of y once pairs are sorted by x then y, n1, n2
    and n3 the pairs tied in x, in y and in both. Equals scipy.stats.kendalltau (variant "b");
    NaN when x or y is constant or n < 2."""
    x, y = _pairs(x, y)
    n = x.size
    n0 = n * (n - 1) // 2
    n1, n2, n3 = _tied_pairs(x), _tied_pairs(y), _tied_pairs(x, y)
    if n < 2 or n1 == n0 or n2 == n0:
        return float("nan")
    order = np.lexsort((y, x))
    y_ranks = np.unique(y, return_inverse=True)[1].reshape(-1)[order]
    discordant = _inversions(y_ranks)
    return float((n0 - n1 - n2 + n3 - 2 * discordant) / np.sqrt(float(n0 - n1) * float(n0 - n2)))


def correlation_with_ci(
    x: NDArray[np.float64],
    y: NDArray[np.float64],
    method: str,
    *,
    n_resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> Correlation:
    """A correlation coefficient and its percentile-bootstrap CI over the n (x, y) pairs.

    Resamples draw n pairs with replacement (`stratified_counts` with one group, seeded), and
    the coefficient of each resample is computed from the pair multiplicities, so a resample
    is exactly the coefficient of the repeated pairs. Resamples where the coefficient is
    undefined (x or y constant) are dropped; the interval is NaN when fewer than half remain or
    when n < 3. Spearman and Kendall above RANK_BOOTSTRAP_MAX_N pairs: `fisher_z_interval`.
    """
    (result,) = correlations_with_ci(x, y, (method,), n_resamples=n_resamples, seed=seed, confidence=confidence)
    return result


def correlations_with_ci(
    x: NDArray[np.float64],
    y: NDArray[np.float64],
    methods: Sequence[str] = CORRELATION_METHODS,
    *,
    n_resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> list[Correlation]:
    """`correlation_with_ci` for several methods on the same resamples, drawn once (the same
    results as one call per method, at a fraction of the cost for large n)."""
    x, y = _pairs(x, y)
    n = int(x.size)
    nan = float("nan")
    results: list[Correlation] = []
    counts: NDArray[np.float64] | None = None
    for method in methods:
        estimate = correlation(x, y, method)
        if n < 3 or not np.isfinite(estimate):
            results.append(Correlation(method, estimate, nan, nan, n, 0))
            continue
        if method != "pearson" and n > RANK_BOOTSTRAP_MAX_N:
            low, high = fisher_z_interval(estimate, n, method, confidence)
            results.append(Correlation(method, estimate, low, high, n, 0, "fisher-z"))
            continue
        if counts is None:
            (counts,) = stratified_counts([n], n_resamples, seed)
        function = _CORRELATIONS[method]
        chunk = max(1, 4_000_000 // n)  # resamples per block: (chunk, n) intermediates of bounded size
        distribution = np.concatenate(
            [function(x, y, counts[start : start + chunk]) for start in range(0, n_resamples, chunk)]
        )
        finite = distribution[np.isfinite(distribution)]
        if finite.size < n_resamples / 2:
            results.append(Correlation(method, estimate, nan, nan, n, n_resamples))
            continue
        low, high = percentile_interval(finite, confidence)
        results.append(Correlation(method, estimate, low, high, n, n_resamples))
    return results


def linear_fit(x: NDArray[np.float64], y: NDArray[np.float64]) -> tuple[float, float]:
    """Least-squares line y = intercept + slope * x; returns (slope, intercept); NaN when x is constant."""
    x, y = _pairs(x, y)
    if x.size < 2 or np.ptp(x) == 0:
        return float("nan"), float("nan")
    slope, intercept = np.polyfit(x, y, 1)
    return float(slope), float(intercept)


# --------------------------------------------------------------------------- partial correlation

PARTIAL_CORRELATION_METHODS = ("pearson", "spearman")


def _controls(z: NDArray[np.float64], n: int) -> NDArray[np.float64]:
    """The control variables as an (n, k) matrix (a 1-d z is one control)."""
    z = np.asarray(z, dtype=np.float64)
    if z.ndim == 1:
        z = z[:, None]
    if z.ndim != 2 or z.shape[0] != n or z.shape[1] == 0:
        raise ValueError(f"z must hold n = {n} values per control, as (n,) or (n, k); got shape {z.shape}")
    if not np.isfinite(z).all():
        raise ValueError("z must be finite (drop missing rows first)")
    return z


def weighted_partial_correlation(
    x: NDArray[np.float64], y: NDArray[np.float64], z: NDArray[np.float64], weights: NDArray[np.float64]
) -> NDArray[np.float64]:
    """Partial Pearson correlation of x and y given the controls z, with row i repeated weights[b, i]
    times, for every row b of `weights` (B, n); x, y are (n,) or (B, n) (e.g. per-resample ranks),
    z is (n, k) or (B, n, k).

    Per row: x and y are regressed on [1, z] by weighted least squares and the result is the weighted
    Pearson correlation of the two residuals. A residual with no variance left (x or y a linear
    function of z, or constant) gives NaN. A control that is constant in a row only adds to the
    intercept there (the pseudo-inverse's minimum-norm solution), so it is controlled for as a constant.
    """
    w = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    b, n = w.shape
    xs = np.broadcast_to(np.asarray(x, dtype=np.float64), (b, n))
    ys = np.broadcast_to(np.asarray(y, dtype=np.float64), (b, n))
    zs = np.asarray(z, dtype=np.float64)
    zs = np.broadcast_to(zs, (b, *zs.shape)) if zs.ndim == 2 else zs
    # One affine map per variable (the coefficient is invariant to it) keeps the normal equations well
    # conditioned for values far from 0 (e.g. losses around 3.1 that differ in the third decimal).
    xs, ys = _standardised(xs), _standardised(ys)
    zs = np.stack([_standardised(zs[:, :, j]) for j in range(zs.shape[2])], axis=2)
    design = np.concatenate([np.ones((b, n, 1)), zs], axis=2)  # (B, n, p)
    weighted = design * w[:, :, None]
    gram = np.einsum("bni,bnj->bij", weighted, design)
    inverse = np.linalg.pinv(gram, hermitian=True)

    def residual(values: NDArray[np.float64]) -> NDArray[np.float64]:
        beta = np.einsum("bij,bj->bi", inverse, np.einsum("bni,bn->bi", weighted, values))
        fitted: NDArray[np.float64] = np.einsum("bni,bi->bn", design, beta)
        return values - fitted

    rx, ry = residual(xs), residual(ys)
    total = w.sum(axis=1)
    # Residuals of a weighted fit with an intercept have weighted mean 0 (up to rounding): centre anyway.
    rx = rx - ((w * rx).sum(axis=1) / total)[:, None]
    ry = ry - ((w * ry).sum(axis=1) / total)[:, None]
    cov = (w * rx * ry).sum(axis=1)
    var_x = (w * rx * rx).sum(axis=1)
    var_y = (w * ry * ry).sum(axis=1)
    spread_x = (w * (xs - ((w * xs).sum(axis=1) / total)[:, None]) ** 2).sum(axis=1)
    spread_y = (w * (ys - ((w * ys).sum(axis=1) / total)[:, None]) ** 2).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = cov / np.sqrt(var_x * var_y)
    # Nothing left to correlate once z is regressed out (relative to the variable's own spread).
    degenerate = (var_x <= 1e-10 * spread_x) | (var_y <= 1e-10 * spread_y) | (spread_x <= 0) | (spread_y <= 0)
    return np.where(degenerate, np.nan, np.clip(r, -1.0, 1.0))


def _standardised(values: NDArray[np.float64]) -> NDArray[np.float64]:
    centred: NDArray[np.float64] = values - values.mean()
    scale = float(np.abs(centred).max(initial=0.0))
    return centred / scale if scale > 0 else centred


def _partial(
    x: NDArray[np.float64], y: NDArray[np.float64], z: NDArray[np.float64], weights: NDArray[np.float64], method: str
) -> NDArray[np.float64]:
    if method == "pearson":
        return weighted_partial_correlation(x, y, z, weights)
    # Spearman: the Pearson partial correlation of the (average, per-resample) ranks of every variable.
    rank_z = np.stack([weighted_average_ranks(z[:, j], weights) for j in range(z.shape[1])], axis=2)
    return weighted_partial_correlation(
        weighted_average_ranks(x, weights), weighted_average_ranks(y, weights), rank_z, weights
    )


def partial_correlation(
    x: NDArray[np.float64], y: NDArray[np.float64], z: NDArray[np.float64], method: str = "pearson"
) -> float:
    """The partial correlation of x and y given z: how x and y co-vary once what z explains of each is
    removed (e.g. downstream accuracy and flatness among checkpoints, given their held-out loss).

    "pearson": the correlation of the residuals of x and of y after a least-squares fit on [1, z]
    (for one control, equal to (r_xy - r_xz r_yz) / sqrt((1 - r_xz^2)(1 - r_yz^2))); "spearman": the
    same on the average ranks of x, y and each control (rank ties share their mean rank).
    z is (n,) for one control or (n, k). NaN when undefined: n < k + 3 (the residuals need a degree
    of freedom beyond the fit), or x or y an exact linear function of the controls (after ranking,
    for Spearman). Example: x = z + e1, y = z + e2 with independent noise: r_xy is large, the
    partial correlation near 0.
    """
    x, y = _pairs(x, y)
    controls = _controls(z, x.size)
    if method not in PARTIAL_CORRELATION_METHODS:
        raise ValueError(f"unknown partial correlation method {method!r}; use one of {PARTIAL_CORRELATION_METHODS}")
    if x.size < controls.shape[1] + 3:
        return float("nan")
    return float(_partial(x, y, controls, np.ones((1, x.size)), method)[0])


def partial_correlation_with_ci(
    x: NDArray[np.float64],
    y: NDArray[np.float64],
    z: NDArray[np.float64],
    method: str = "pearson",
    *,
    n_resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> Correlation:
    """`partial_correlation` with a percentile-bootstrap CI over the n (x, y, z) rows.

    Resamples are those of `correlation_with_ci` (n rows drawn with replacement, `stratified_counts`
    with one group, seeded); each resample's coefficient is computed from the row multiplicities, so it
    is exactly the coefficient of the repeated rows. Resamples where it is undefined are dropped; the
    interval is NaN when fewer than half remain or n < k + 4.
    """
    x, y = _pairs(x, y)
    controls = _controls(z, x.size)
    estimate = partial_correlation(x, y, controls, method)
    n = int(x.size)
    nan = float("nan")
    if n < controls.shape[1] + 4 or not np.isfinite(estimate):
        return Correlation(method, estimate, nan, nan, n, 0)
    (counts,) = stratified_counts([n], n_resamples, seed)
    chunk = max(1, 2_000_000 // (n * (controls.shape[1] + 1)))
    distribution = np.concatenate(
        [_partial(x, y, controls, counts[start : start + chunk], method) for start in range(0, n_resamples, chunk)]
    )
    finite = distribution[np.isfinite(distribution)]
    if finite.size < n_resamples / 2:
        return Correlation(method, estimate, nan, nan, n, n_resamples)
    low, high = percentile_interval(finite, confidence)
    return Correlation(method, estimate, low, high, n, n_resamples)
