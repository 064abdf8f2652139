"""Bootstrap confidence intervals (and, later, paired comparisons and correlations).

Convention: percentile bootstrap. `n_resamples` resamples of the n evaluation samples with
replacement, drawn from numpy's PCG64 seeded with `seed`, so an interval is reproducible from
the seed recorded with the run. Metrics of one run share the same resamples (paired).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

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


@dataclass(frozen=True)
class SignificanceRanks:
    """Ranks that tie where a difference is not significant.

    rank[i] = 1 + the number of models significantly better than model i, so models that no
    other model beats significantly share rank 1. `n_better[i]` is that number; `paired[i]` says
    whether model i was compared by a paired bootstrap (with the other members of its group) or
    only by confidence intervals.
    """

    rank: NDArray[np.int64]
    n_better: NDArray[np.int64]
    paired: NDArray[np.bool_]


def significance_ranks(
    values: NDArray[np.float64],
    ci_low: NDArray[np.float64],
    ci_high: NDArray[np.float64],
    *,
    higher_is_better: bool,
    paired_groups: Sequence[tuple[NDArray[np.int64], NDArray[np.float64]]] = (),
    confidence: float = 0.95,
) -> SignificanceRanks:
    """Significance-aware competition ranks: rank_i = 1 + #{j significantly better than i}.

    Two models are compared by a paired bootstrap when both belong to the same entry of
    `paired_groups` = [(indices, distributions (len(indices), B)), ...] (their distributions
    share resamples: same samples, seed and resample count); j is then better than i when the
    `confidence` CI of the paired difference lies above 0 (`paired_better_matrix`). Every other
    pair is compared by its intervals: j is better than i when they do not overlap, i.e.
    ci_low_j > ci_high_i (higher is better; mirrored otherwise). A missing (NaN) interval end is
    the value itself, so models without intervals are ranked by value (equal values tie).

    The interval comparison is conservative (non-overlapping 95% intervals imply a difference
    significant at a much stricter level), so paired comparisons tie fewer models. Ties are not
    transitive: A can beat C while B ties with both; the rank counts only who beats a model.
    Example: values [0.9, 0.8, 0.5] with intervals [0.85, 0.95], [0.75, 0.88], [0.45, 0.55]
    (higher is better) -> ranks [1, 1, 3].
    """
    values = np.asarray(values, dtype=np.float64)
    low = np.where(np.isnan(ci_low), values, np.asarray(ci_low, dtype=np.float64))
    high = np.where(np.isnan(ci_high), values, np.asarray(ci_high, dtype=np.float64))
    low, high = np.minimum(low, high), np.maximum(low, high)
    if not higher_is_better:
        values, low, high = -values, -high, -low
    n = values.shape[0]
    # Interval comparisons for every pair at once: #{j : low_j > high_i}, by sorting.
    sorted_low = np.sort(low)
    n_better = n - np.searchsorted(sorted_low, high, side="right")
    paired = np.zeros(n, dtype=bool)
    for indices, distributions in paired_groups:
        indices = np.asarray(indices, dtype=np.int64)
        if indices.size < 2:
            continue
        oriented = np.asarray(distributions, dtype=np.float64) * (1.0 if higher_is_better else -1.0)
        # Within the group, replace the interval comparisons by paired ones.
        group_low = np.sort(low[indices])
        within = indices.size - np.searchsorted(group_low, high[indices], side="right")
        better = paired_better_matrix(oriented, confidence)
        n_better[indices] += better.sum(axis=0) - within
        paired[indices] = True
    n_better = n_better.astype(np.int64)
    return SignificanceRanks(rank=1 + n_better, n_better=n_better, paired=paired)


# --------------------------------------------------------------------------- correlations


@dataclass(frozen=True)
class Correlation:
    """A correlation coefficient with a percentile-bootstrap interval over the (x, y) pairs."""

    method: str
    estimate: float
    ci_low: float
    ci_high: float
    n: int
    n_resamples: int


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
    a row where x or y is constant gives NaN. `weights` is (B, n); returns (B,).
    """
    w = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    total = w.sum(axis=1)
    mean_x = w @ x / total
    mean_y = w @ y / total
    dx = x[None, :] - mean_x[:, None]
    dy = y[None, :] - mean_y[:, None]
    cov = (w * dx * dy).sum(axis=1)
    var_x = (w * dx * dx).sum(axis=1)
    var_y = (w * dy * dy).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = cov / np.sqrt(var_x * var_y)
    scale = np.maximum(np.abs(x).max(initial=0.0), np.abs(y).max(initial=0.0)) or 1.0
    # A constant variable (up to rounding) has no correlation.
    degenerate = (var_x <= (1e-12 * scale) ** 2 * total) | (var_y <= (1e-12 * scale) ** 2 * total)
    return np.where(degenerate, np.nan, np.clip(r, -1.0, 1.0))


def weighted_average_ranks(values: NDArray[np.float64], weights: NDArray[np.float64]) -> NDArray[np.float64]:
    """Average ranks (1-based, ties share their mean rank) of `values` repeated weights[b, i] times.

    Row b gives the rank every copy of values[i] gets in the sample that holds weights[b, i]
    copies of each value: the copies of all smaller values, plus (copies of equal values + 1) / 2.
    With weights 1 this equals `scipy.stats.rankdata(values)` (method "average").
    """
    w = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    values = np.asarray(values, dtype=np.float64)
    order = np.argsort(values, kind="stable")
    sorted_values = values[order]
    starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])
    group = np.empty(values.size, dtype=np.int64)
    group[order] = np.cumsum(np.r_[True, sorted_values[1:] != sorted_values[:-1]]) - 1
    per_group = np.add.reduceat(w[:, order], starts, axis=1)  # copies of each distinct value
    smaller = np.cumsum(per_group, axis=1) - per_group
    ranks: NDArray[np.float64] = smaller[:, group] + (per_group[:, group] + 1.0) / 2.0
    return ranks


def weighted_spearman(
    x: NDArray[np.float64], y: NDArray[np.float64], weights: NDArray[np.float64]
) -> NDArray[np.float64]:
    """Spearman's rho (Pearson's r of average ranks) with pair i repeated weights[b, i] times."""
    w = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    rank_x = weighted_average_ranks(x, w)
    rank_y = weighted_average_ranks(y, w)
    total = w.sum(axis=1)
    mean_x = (w * rank_x).sum(axis=1) / total
    mean_y = (w * rank_y).sum(axis=1) / total
    dx = rank_x - mean_x[:, None]
    dy = rank_y - mean_y[:, None]
    cov = (w * dx * dy).sum(axis=1)
    var_x = (w * dx * dx).sum(axis=1)
    var_y = (w * dy * dy).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = cov / np.sqrt(var_x * var_y)
    return np.where((var_x <= 1e-12) | (var_y <= 1e-12), np.nan, np.clip(rho, -1.0, 1.0))


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

#: above this many pairs Kendall's bootstrap is skipped (its cost grows with n^2)
KENDALL_BOOTSTRAP_MAX_N = 2000


def correlation(x: NDArray[np.float64], y: NDArray[np.float64], method: str) -> float:
    """Pearson's r, Spearman's rho or Kendall's tau-b of the pairs (x_i, y_i); NaN when undefined.

    Undefined: fewer than 2 pairs, or x or y constant. Equals scipy.stats.pearsonr, spearmanr
    and kendalltau (tau-b) statistics.
    """
    x, y = _pairs(x, y)
    if method not in _CORRELATIONS:
        raise ValueError(f"unknown correlation method {method!r}; use one of {CORRELATION_METHODS}")
    if x.size < 2:
        return float("nan")
    return float(_CORRELATIONS[method](x, y, np.ones((1, x.size)))[0])


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
    undefined (x or y constant) are dropped; the interval is NaN when fewer than half remain,
    when n < 3, or for Kendall above KENDALL_BOOTSTRAP_MAX_N pairs.
    """
    x, y = _pairs(x, y)
    estimate = correlation(x, y, method)
    n = int(x.size)
    nan = float("nan")
    if n < 3 or not np.isfinite(estimate) or (method == "kendall" and n > KENDALL_BOOTSTRAP_MAX_N):
        return Correlation(method, estimate, nan, nan, n, 0)
    function = _CORRELATIONS[method]
    (counts,) = stratified_counts([n], n_resamples, seed)
    chunk = max(1, 4_000_000 // n)  # resamples per block: (chunk, n) intermediates of bounded size
    distribution = np.concatenate(
        [function(x, y, counts[start : start + chunk]) for start in range(0, n_resamples, chunk)]
    )
    finite = distribution[np.isfinite(distribution)]
    if finite.size < n_resamples / 2:
        return Correlation(method, estimate, nan, nan, n, n_resamples)
    low, high = percentile_interval(finite, confidence)
    return Correlation(method, estimate, low, high, n, n_resamples)


def linear_fit(x: NDArray[np.float64], y: NDArray[np.float64]) -> tuple[float, float]:
    """Least-squares line y = intercept + slope * x; returns (slope, intercept); NaN when x is constant."""
    x, y = _pairs(x, y)
    if x.size < 2 or np.ptp(x) == 0:
        return float("nan"), float("nan")
    slope, intercept = np.polyfit(x, y, 1)
    return float(slope), float(intercept)
