"""Reference implementations of the ranking procedure (harness.stats.significance_ranks), written
the slow, obvious way: one p-value per pair in a double loop with scipy's normal distribution,
Holm's procedure as the textbook loop over sorted p-values, and the monotone bounds by scanning
every model. Used by tests/test_ranks.py and tests/test_app.py."""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.stats

Groups = list[tuple[np.ndarray, np.ndarray]]


def holm_reference(p_values: np.ndarray, alpha: float) -> np.ndarray:
    """Holm (1979) as written in textbooks: walk the sorted p-values, stop at the first failure."""
    p = np.asarray(p_values, dtype=float)
    m = p.size
    reject = np.zeros(m, dtype=bool)
    for step, index in enumerate(np.argsort(p, kind="stable")):
        if not p[index] <= alpha / (m - step):
            break
        reject[index] = True
    return reject


def paired_p_reference(
    value_j: float, value_i: float, dist_j: np.ndarray, dist_i: np.ndarray, n: int | None = None
) -> float:
    diff = dist_j - dist_i
    observed = value_j - value_i
    if observed == 0:
        return 1.0
    wrong_side = np.mean(diff <= 0) if observed > 0 else np.mean(diff >= 0)
    se = np.std(diff, ddof=1)
    if se == 0:
        studentized = 0.0
    elif n is None:
        studentized = 2 * scipy.stats.norm.sf(abs(observed) / se)
    else:  # the paired t-test's standard error s / sqrt(n) from the bootstrap's s sqrt(n - 1) / n
        studentized = 2 * scipy.stats.t(df=n - 1).sf(abs(observed) / (se * np.sqrt(n / (n - 1))))
    return float(max(studentized, min(1.0, 2 * wrong_side)))


def interval_p_reference(v_j: float, low_j: float, v_i: float, high_i: float, level: float = 0.95) -> float:
    """p of "j equals i" for v_j >= v_i (higher is better) from the half-widths that face each other."""
    if v_j == v_i:
        return 1.0
    z = scipy.stats.norm.ppf(0.5 + level / 2)
    se = (max(v_j - low_j, 0.0) + max(high_i - v_i, 0.0)) / z
    return 0.0 if se == 0 else float(2 * scipy.stats.norm.sf((v_j - v_i) / se))


def ranks_reference(
    values: np.ndarray,
    low: np.ndarray,
    high: np.ndarray,
    higher: bool,
    groups: Groups,
    alpha: float = 0.05,
    n_samples: np.ndarray | None = None,
) -> dict[str, Any]:
    """rank, rank_worst, n_better, n_worse and the significant-pair count, pair by pair."""
    values = np.asarray(values, dtype=float)
    low = np.where(np.isnan(low), values, low)
    high = np.where(np.isnan(high), values, high)
    if not higher:
        values, low, high = -values, -high, -low
    k = values.size
    group_of: dict[int, tuple[dict[int, int], np.ndarray, int | None]] = {}
    for indices, dist in groups:
        if len(indices) < 2:
            continue
        oriented = np.asarray(dist, dtype=float) * (1 if higher else -1)
        row = {int(model): r for r, model in enumerate(indices)}
        counts = [] if n_samples is None else [c for c in n_samples[indices] if np.isfinite(c) and c >= 2]
        n = int(min(counts)) if counts else None
        for model in indices:
            group_of[int(model)] = (row, oriented, n)
    pairs, p_values = [], []
    for a in range(k):
        for b in range(a + 1, k):
            j, i = (a, b) if values[a] >= values[b] else (b, a)  # j: the better point value
            if j in group_of and i in group_of and group_of[j][0] is group_of[i][0]:
                row, dist, n = group_of[j]
                p = paired_p_reference(values[j], values[i], dist[row[j]], dist[row[i]], n)
            else:
                p = interval_p_reference(values[j], low[j], values[i], high[i])
            pairs.append((j, i))
            p_values.append(p)
    reject = holm_reference(np.asarray(p_values), alpha) if pairs else np.zeros(0, dtype=bool)
    n_better = np.zeros(k, dtype=int)
    n_worse = np.zeros(k, dtype=int)
    for (j, i), significant in zip(pairs, reject, strict=True):
        if significant and values[j] > values[i]:
            n_better[i] += 1
            n_worse[j] += 1
    rank = [min(1 + n_better[o] for o in range(k) if values[o] <= values[i]) for i in range(k)]
    rank_worst = [max(k - n_worse[o] for o in range(k) if values[o] >= values[i]) for i in range(k)]
    return {
        "rank": rank,
        "rank_worst": rank_worst,
        "n_better": n_better.tolist(),
        "n_worse": n_worse.tolist(),
        "significant_pairs": int(reject.sum()),
    }
