"""Out-of-distribution (OOD) detection: threshold-free metrics of detection scores, and the scores.

Conventions (shared by every function here):
- Scores: higher = more in-distribution (ID). Every score function below returns scores with that
  direction; negate a "higher = more OOD" score before using the metrics.
- AUROC and AUPR-In treat ID samples as the positive class. AUPR-Out treats OOD samples as the positive
  class and ranks by the negated scores. AUROC counts a tied (ID, OOD) pair as 1/2 and equals
  `sklearn.metrics.roc_auc_score`; AUPR-In/Out equal `sklearn.metrics.average_precision_score`: the
  step-wise sum over distinct thresholds of (recall increase) x precision, without interpolation.
- FPR@95TPR (`fpr95`): the share of OOD samples accepted (score >= t) at the threshold t that keeps 95%
  of the ID samples. Precisely, t is the largest threshold with #{ID score >= t} >= m, where
  m = ceil(0.95 * n_id) is the smallest ID count that reaches the rate; t is then the m-th largest ID
  score. Tied scores sit on the same side of every threshold, so ties need no order. Lower is better.
- Empty ID or OOD sets and NaN or inf scores raise ValueError. Constant scores give AUROC 0.5.
- All four metrics come from one sorted pass over both score sets (`ood_summary`): each set is sorted
  and the two sorted runs are merged by one stable sort of their concatenation (a linear merge), then the
  ID and OOD counts at every distinct threshold give every metric. The single-metric functions share it.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from harness.metrics import MetricInfo

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

AUROC = MetricInfo(
    "auroc",
    True,
    "area under the ROC curve, ID samples positive, scores higher = more ID; ties count 1/2 (sklearn roc_auc_score)",
)
AUPR_IN = MetricInfo(
    "aupr_in",
    True,
    "average precision with ID samples positive, scores higher = more ID (sklearn average_precision_score)",
)
AUPR_OUT = MetricInfo(
    "aupr_out",
    True,
    "average precision with OOD samples positive, ranked by negated scores (sklearn average_precision_score)",
)
FPR95 = MetricInfo(
    "fpr95",
    False,
    "FPR@95TPR: share of OOD samples accepted at the threshold that keeps 95% of ID samples; lower is better "
    "(accepted: score >= t, t = the ceil(0.95 n_id)-th largest ID score; scores higher = more ID)",
)


def check_scores(id_scores: NDArray[Any], ood_scores: NDArray[Any]) -> tuple[FloatArray, FloatArray]:
    """Validate and convert both score sets once (1-D, non-empty, finite); raises ValueError with what is wrong."""
    out = []
    for name, scores in (("id_scores", id_scores), ("ood_scores", ood_scores)):
        array = np.asarray(scores, dtype=np.float64)
        if array.ndim != 1:
            raise ValueError(f"{name} must be 1-D (one score per sample), got shape {array.shape}")
        if array.size == 0:
            raise ValueError(f"{name} is empty: OOD metrics need at least one ID and one OOD sample")
        if not np.isfinite(array).all():
            raise ValueError(f"{name} contain NaN or inf; scores must be finite (higher = more in-distribution)")
        out.append(array)
    return out[0], out[1]


class RunCounts(NamedTuple):
    """ID and OOD counts per run of equal scores, runs in ascending score order (int64 arrays)."""

    id_in: IntArray  # ID samples with exactly this score
    ood_in: IntArray  # OOD samples with exactly this score
    id_at_or_below: IntArray  # ID samples with score <= this score
    ood_at_or_below: IntArray  # OOD samples with score <= this score


def run_counts(id_scores: FloatArray, ood_scores: FloatArray) -> RunCounts:
    """The shared pass behind every metric here: counts per distinct score, from one merge of the two sets.

    Both sets are sorted (vectorised value sorts), the two sorted runs are merged by one stable sort of
    their concatenation (timsort merges two runs in linear time), and the ID count is accumulated along
    the merged order and read at the end of each run of equal scores.
    """
    n_id = id_scores.size
    merged = np.concatenate((np.sort(id_scores), np.sort(ood_scores)))
    order = np.argsort(merged, kind="stable")
    id_at_or_below = np.cumsum(order < n_id, dtype=np.int64)
    values = merged[order]
    new_run = values[1:] != values[:-1]
    if new_run.all():  # no ties: every sample is its own run
        at_or_below = np.arange(1, values.size + 1, dtype=np.int64)
    else:
        ends = np.append(np.flatnonzero(new_run), values.size - 1)
        id_at_or_below, at_or_below = id_at_or_below[ends], ends + 1
    id_in = np.diff(id_at_or_below, prepend=0)
    ood_at_or_below = at_or_below - id_at_or_below
    return RunCounts(id_in, np.diff(at_or_below, prepend=0) - id_in, id_at_or_below, ood_at_or_below)


def _auroc(runs: RunCounts) -> float:
    # Pairs (OOD below ID) + 1/2 tied pairs, doubled to stay in exact integers: per run, id_in * (ood_lt + ood_le).
    twice_pairs = int((runs.id_in * (2 * runs.ood_at_or_below - runs.ood_in)).sum())
    return twice_pairs / (2.0 * int(runs.id_at_or_below[-1]) * int(runs.ood_at_or_below[-1]))


def _aupr_in(runs: RunCounts) -> float:
    # ID positive, descending thresholds: at run g, recall rises by id_in / n_id at precision ID>=t / all>=t.
    n_id, n = int(runs.id_at_or_below[-1]), int(runs.id_at_or_below[-1] + runs.ood_at_or_below[-1])
    id_at_or_above = n_id - runs.id_at_or_below + runs.id_in
    at_or_above = n - runs.id_at_or_below - runs.ood_at_or_below + runs.id_in + runs.ood_in
    return float((runs.id_in * (id_at_or_above / at_or_above)).sum() / n_id)


def _aupr_out(runs: RunCounts) -> float:
    # OOD positive on negated scores: at run g, recall rises by ood_in / n_ood at precision OOD<=t / all<=t.
    at_or_below = runs.id_at_or_below + runs.ood_at_or_below
    return float((runs.ood_in * (runs.ood_at_or_below / at_or_below)).sum() / runs.ood_at_or_below[-1])


def _fpr_at_tpr(runs: RunCounts, tpr: float) -> float:
    n_id, n_ood = int(runs.id_at_or_below[-1]), int(runs.ood_at_or_below[-1])
    # The smallest ID count m with m / n_id >= tpr; the relative slack absorbs float noise (0.95 * 20 -> 19).
    needed = max(1, math.ceil(tpr * n_id * (1.0 - 1e-12)))
    # The highest run whose score still has >= m ID scores at or above it: ID strictly below <= n_id - m.
    id_below = runs.id_at_or_below - runs.id_in
    g = int(np.searchsorted(id_below, n_id - needed, side="right")) - 1
    return (n_ood - int(runs.ood_at_or_below[g]) + int(runs.ood_in[g])) / n_ood


def _check_tpr(tpr: float) -> None:
    if not 0.0 < tpr <= 1.0:
        raise ValueError(f"tpr must lie in (0, 1], got {tpr!r}")


def auroc(id_scores: NDArray[Any], ood_scores: NDArray[Any]) -> float:
    """AUROC with ID samples positive: the probability that a random ID sample outscores a random OOD one.

    Scores: higher = more in-distribution. A tied (ID, OOD) pair counts 1/2, so constant scores give 0.5;
    equals sklearn's roc_auc_score(y = 1 for ID, scores). Example: ID [2, 3], OOD [1, 2] -> (1 + .5 + 1 + 1) / 4
    = 0.875.
    """
    runs = run_counts(*check_scores(id_scores, ood_scores))
    return _auroc(runs)


def aupr_in(id_scores: NDArray[Any], ood_scores: NDArray[Any]) -> float:
    """AUPR-In: average precision with ID samples positive, ranking by score (higher = more in-distribution).

    sum over distinct thresholds t (descending) of (recall(t) - recall(previous t)) * precision(t), no
    interpolation (sklearn's average_precision_score). Example: ID [3, 1], OOD [2] -> .5 * 1 + .5 * 2/3 = 5/6.
    """
    runs = run_counts(*check_scores(id_scores, ood_scores))
    return _aupr_in(runs)


def aupr_out(id_scores: NDArray[Any], ood_scores: NDArray[Any]) -> float:
    """AUPR-Out: average precision with OOD samples positive, ranking by the negated scores.

    Scores: higher = more in-distribution, so the lowest scores are the most confidently OOD. Same step-wise
    sum as `aupr_in` (sklearn's average_precision_score(y = 1 for OOD, -scores)).
    Example: ID [3, 1], OOD [2] -> the OOD sample ranks second behind ID score 1 -> 1/2.
    """
    runs = run_counts(*check_scores(id_scores, ood_scores))
    return _aupr_out(runs)


def fpr_at_tpr(id_scores: NDArray[Any], ood_scores: NDArray[Any], tpr: float = 0.95) -> float:
    """FPR@TPR: share of OOD samples accepted (score >= t) at the threshold that keeps `tpr` of the ID samples.

    Scores: higher = more in-distribution. t is the largest threshold with #{ID >= t} >= m, where
    m = ceil(tpr * n_id) (with 1e-12 relative slack for float noise), i.e. the m-th largest ID score; ties at
    t are all accepted. Lower is better; all ID above all OOD -> 0. Example: ID [1..20], OOD [0.5, 2.5],
    tpr .95 -> m = 19, t = 2, accepted OOD {2.5} -> 0.5.
    """
    _check_tpr(tpr)
    runs = run_counts(*check_scores(id_scores, ood_scores))
    return _fpr_at_tpr(runs, tpr)


def ood_summary(id_scores: NDArray[Any], ood_scores: NDArray[Any], tpr: float = 0.95) -> dict[str, float]:
    """{"auroc", "aupr_in", "aupr_out", "fpr95"} from one shared sorted pass (see the module conventions).

    Scores: higher = more in-distribution. The FPR key is f"fpr{100 * tpr:g}" ("fpr95" for the default).
    Equal to calling `auroc`, `aupr_in`, `aupr_out` and `fpr_at_tpr` separately, at the cost of about one.
    """
    _check_tpr(tpr)
    runs = run_counts(*check_scores(id_scores, ood_scores))
    return {
        "auroc": _auroc(runs),
        "aupr_in": _aupr_in(runs),
        "aupr_out": _aupr_out(runs),
        f"fpr{100 * tpr:g}": _fpr_at_tpr(runs, tpr),
    }


def ood_summary_resampled(
    id_scores: NDArray[Any],
    ood_scores: NDArray[Any],
    id_counts: NDArray[Any],
    ood_counts: NDArray[Any],
    tpr: float = 0.95,
) -> dict[str, FloatArray]:
    """`ood_summary` of many resamples at once, each resample given by sample multiplicities.

    `id_counts` (B, n_id) and `ood_counts` (B, n_ood) say how often each sample occurs in each of B
    resamples (e.g. bootstrap draws as counts; each row sums to n_id and n_ood). Row b of every
    returned array equals `ood_summary` of the resampled scores: the scores are merged and split into
    runs of equal value once, then every metric is a weighted sum over those runs, for all rows at once.
    """
    _check_tpr(tpr)
    id_scores, ood_scores = check_scores(id_scores, ood_scores)
    id_counts = np.asarray(id_counts, dtype=np.float64)
    ood_counts = np.asarray(ood_counts, dtype=np.float64)
    if (
        id_counts.ndim != 2
        or id_counts.shape[1] != id_scores.size
        or ood_counts.shape != (id_counts.shape[0], ood_scores.size)
    ):
        raise ValueError(
            f"counts must have shapes (B, {id_scores.size}) and (B, {ood_scores.size}), got {id_counts.shape}, {ood_counts.shape}"
        )
    n_id, n_ood = id_counts.sum(axis=1), ood_counts.sum(axis=1)
    if (n_id == 0).any() or (n_ood == 0).any():
        raise ValueError("every resample needs at least one ID and one OOD sample")
    values = np.concatenate((id_scores, ood_scores))
    order = np.argsort(values, kind="stable")
    is_id = order < id_scores.size
    sorted_values = values[order]
    starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])  # runs of equal score, ascending
    weights = np.concatenate((id_counts, ood_counts), axis=1)[:, order]
    id_in, ood_in = weights * is_id, weights * ~is_id
    if starts.size < values.size:  # ties: sum the weights within each run of equal scores
        id_in, ood_in = np.add.reduceat(id_in, starts, axis=1), np.add.reduceat(ood_in, starts, axis=1)
    id_le, ood_le = np.cumsum(id_in, axis=1), np.cumsum(ood_in, axis=1)
    auroc = (id_in * (2 * ood_le - ood_in)).sum(axis=1) / (2 * n_id * n_ood)
    id_ge = n_id[:, None] - id_le + id_in
    all_ge = (n_id + n_ood)[:, None] - id_le - ood_le + id_in + ood_in
    aupr_in = (id_in * np.divide(id_ge, all_ge, out=np.zeros_like(id_ge), where=all_ge > 0)).sum(axis=1) / n_id
    all_le = id_le + ood_le
    aupr_out = (ood_in * np.divide(ood_le, all_le, out=np.zeros_like(ood_le), where=all_le > 0)).sum(axis=1) / n_ood
    needed = np.maximum(1.0, np.ceil(tpr * n_id * (1.0 - 1e-12)))
    # Highest run whose score keeps >= needed ID samples at or above it (ID strictly below <= n_id - needed).
    keeps = (id_le - id_in) <= (n_id - needed)[:, None]
    g = keeps.shape[1] - 1 - np.argmax(keeps[:, ::-1], axis=1)
    rows = np.arange(keeps.shape[0])
    fpr = (n_ood - ood_le[rows, g] + ood_in[rows, g]) / n_ood
    return {"auroc": auroc, "aupr_in": aupr_in, "aupr_out": aupr_out, f"fpr{100 * tpr:g}": fpr}


#: cells of a (resamples x samples) matrix held at once by `auroc_variance` (float64: 32 MB)
_VARIANCE_CELLS = 1 << 22


def auroc_variance(
    id_scores: NDArray[Any],
    ood_sets: list[NDArray[Any]],
    set_weights: list[float],
    id_counts: NDArray[Any] | None = None,
    ood_counts: list[NDArray[Any]] | None = None,
) -> FloatArray:
    """DeLong's variance of sum_k w_k AUROC(ID, OOD set k), for the sample or for every resample at once.

    DeLong, DeLong & Clarke-Pearson (Biometrics 1988): each ID sample's placement is the share of OOD
    samples below it (ties 1/2), each OOD sample's the share of ID samples above it; AUROC is the mean of
    either, and its variance S10 / n_id + S01 / n_ood with S the sample variances (ddof 1) of the
    placements. For a weighted sum over sets sharing the ID samples, an ID sample's component is the
    weighted sum of its placements, and the OOD terms add with weight w_k^2. `id_counts` (B, n_id) and
    `ood_counts` (one (B, n_k) per set) give sample multiplicities as in `ood_summary_resampled`: row b
    is DeLong's variance of the resampled data. Without counts: the sample's own, shape (1,).
    """
    id_scores = np.asarray(id_scores, dtype=np.float64)
    sets = [np.asarray(s, dtype=np.float64) for s in ood_sets]
    if len(sets) != len(set_weights) or not sets:
        raise ValueError("one weight per OOD set, and at least one set")
    if id_counts is None or ood_counts is None:
        id_counts, ood_counts = np.ones((1, id_scores.size)), [np.ones((1, s.size)) for s in sets]
    id_counts = np.asarray(id_counts, dtype=np.float64)
    ood_counts = [np.asarray(c, dtype=np.float64) for c in ood_counts]
    id_order = np.argsort(id_scores, kind="stable")
    id_sorted = id_scores[id_order]
    # per set: where each ID score falls among the sorted OOD scores and each OOD score among the ID scores
    layout = []
    for scores in sets:
        order = np.argsort(scores, kind="stable")
        ordered = scores[order]
        layout.append((
            order,
            np.searchsorted(ordered, id_scores, "left"), np.searchsorted(ordered, id_scores, "right"),
            np.searchsorted(id_sorted, scores, "left"), np.searchsorted(id_sorted, scores, "right"),
        ))  # fmt: skip
    rows = id_counts.shape[0]
    step = max(1, _VARIANCE_CELLS // (id_scores.size + max(s.size for s in sets)))
    out = np.empty(rows, dtype=np.float64)
    for start in range(0, rows, step):
        block = slice(start, min(start + step, rows))
        id_w = id_counts[block]
        n_id = id_w.sum(axis=1)
        id_cum = _leading_zero_cumsum(id_w[:, id_order])
        component = np.zeros_like(id_w)
        ood_term = np.zeros(id_w.shape[0])
        for weight, counts, (order, id_lo, id_hi, ood_lo, ood_hi) in zip(set_weights, ood_counts, layout, strict=True):
            ood_w = counts[block]
            n_ood = ood_w.sum(axis=1)
            ood_cum = _leading_zero_cumsum(ood_w[:, order])
            component += weight * (ood_cum[:, id_lo] + ood_cum[:, id_hi]) / (2.0 * n_ood[:, None])
            above = 1.0 - (id_cum[:, ood_lo] + id_cum[:, ood_hi]) / (2.0 * n_id[:, None])
            ood_term += weight**2 * _weighted_variance(above, ood_w) / n_ood
        out[block] = _weighted_variance(component, id_w) / n_id + ood_term
    return out


def _leading_zero_cumsum(weights: FloatArray) -> FloatArray:
    """Cumulative sums along the rows with a 0 in front: column i is the weight of the first i entries."""
    return np.concatenate((np.zeros((weights.shape[0], 1)), np.cumsum(weights, axis=1)), axis=1)


def _weighted_variance(values: FloatArray, weights: FloatArray) -> FloatArray:
    """Per row: the sample variance (ddof 1) of values repeated by their integer weights (0 for one sample)."""
    total = weights.sum(axis=1)
    mean = (weights * values).sum(axis=1) / total
    spread: FloatArray = (weights * (values - mean[:, None]) ** 2).sum(axis=1) / np.maximum(total - 1.0, 1.0)
    return spread


# ----------------------------------------------------------------------------------------------------------
# Scores (higher = more in-distribution)


def _check_logits(logits: NDArray[Any]) -> FloatArray:
    array = np.asarray(logits, dtype=np.float64)
    if array.ndim != 2 or array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"logits must be a non-empty 2-D array (n_samples, n_classes), got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError("logits contain NaN or inf")
    return array


def msp(logits: NDArray[Any]) -> FloatArray:
    """Maximum softmax probability per sample (higher = more in-distribution), in [1/k, 1].

    Example: logits [[0, 0]] -> [0.5].
    """
    z = _check_logits(logits)
    z = z - z.max(axis=1, keepdims=True)
    out: FloatArray = 1.0 / np.exp(z).sum(axis=1)  # the top class has exp(0) = 1
    return out


def max_logit(logits: NDArray[Any]) -> FloatArray:
    """Largest logit per sample (MaxLogit; higher = more in-distribution). Example: [[1, 3]] -> [3]."""
    out: FloatArray = _check_logits(logits).max(axis=1)
    return out


def energy(logits: NDArray[Any], temperature: float = 1.0) -> FloatArray:
    """Energy score T * logsumexp(logits / T) per sample: the negative free energy (higher = more ID).

    Computed stably (max subtracted before exp). Example: logits [[0, 0]], T = 1 -> [ln 2].
    """
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature!r}")
    z = _check_logits(logits) / temperature
    top = z.max(axis=1)
    out: FloatArray = temperature * (top + np.log(np.exp(z - top[:, None]).sum(axis=1)))
    return out


# Bound on cells of a (query block x train or classes) matrix held at once (float64: 32 MB).
_BLOCK_CELLS = 1 << 22


def _check_features(features: NDArray[Any], name: str) -> FloatArray:
    array = np.asarray(features, dtype=np.float64)
    if array.ndim != 2 or array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"{name} must be a non-empty 2-D array (n_samples, n_features), got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} contain NaN or inf")
    return array


def mahalanobis_fit(train_features: NDArray[Any], train_labels: NDArray[Any]) -> tuple[FloatArray, FloatArray]:
    """Class means and the shared (tied) precision matrix for `mahalanobis`, from training features.

    Returns (class_means, precision): class_means has one row per class present in `train_labels`, in
    increasing label order; the covariance is the maximum-likelihood within-class covariance pooled over
    all classes, (1/n) sum_i (x_i - mu_{y_i})(x_i - mu_{y_i})^T, and precision is its Moore-Penrose
    pseudo-inverse (eigenvalues below 1e-10 x the largest are treated as 0), so a singular covariance
    (fewer samples than features, constant features) is fine: those directions are ignored.
    Example: features [[0], [2], [10], [12]], labels [0, 0, 1, 1] -> means [[1], [11]], precision [[1]].
    """
    x = _check_features(train_features, "train_features")
    labels = np.asarray(train_labels)
    if labels.shape != (x.shape[0],):
        raise ValueError(f"train_labels must have shape ({x.shape[0]},), got {labels.shape}")
    classes, index = np.unique(labels, return_inverse=True)
    counts = np.bincount(index, minlength=classes.size).astype(np.float64)
    means = np.zeros((classes.size, x.shape[1]))
    np.add.at(means, index, x)
    means /= counts[:, None]
    centered = x - means[index]
    covariance = centered.T @ centered / x.shape[0]
    precision: FloatArray = np.linalg.pinv(covariance, rcond=1e-10, hermitian=True)  # rcond: numpy < 2 has no rtol
    return means, precision


def mahalanobis(features: NDArray[Any], class_means: NDArray[Any], precision: NDArray[Any]) -> FloatArray:
    """Minus the smallest squared Mahalanobis distance to a class mean (higher = more in-distribution).

    score(x) = -min_c (x - mu_c)^T P (x - mu_c) with the tied precision P from `mahalanobis_fit`. Computed
    in blocks of samples as x P x - 2 x P mu_c + mu_c P mu_c, clipped at 0 against rounding, so memory stays
    bounded. Example: means [[1], [11]], P [[1]], x [[2]] -> [-1].
    """
    x = _check_features(features, "features")
    means = _check_features(class_means, "class_means")
    p = np.asarray(precision, dtype=np.float64)
    d = x.shape[1]
    if means.shape[1] != d or p.shape != (d, d):
        raise ValueError(f"shapes disagree: features {x.shape}, class_means {means.shape}, precision {p.shape}")
    means_p = means @ p
    mean_terms = np.einsum("cd,cd->c", means_p, means)
    out = np.empty(x.shape[0])
    block = max(1, _BLOCK_CELLS // max(means.shape[0], d))
    for start in range(0, x.shape[0], block):
        rows = x[start : start + block]
        rows_p = rows @ p
        distance = np.einsum("nd,nd->n", rows_p, rows)[:, None] - 2.0 * rows_p @ means.T + mean_terms
        out[start : start + block] = -np.maximum(distance.min(axis=1), 0.0)
    return out


def _normalised(x: FloatArray) -> FloatArray:
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    out: FloatArray = x / np.maximum(norm, np.finfo(np.float64).tiny)  # an all-zero vector stays zero
    return out


def knn_score(train_features: NDArray[Any], features: NDArray[Any], k: int) -> FloatArray:
    """Minus the distance to the k-th nearest training feature, on L2-normalised features (higher = more ID).

    Both sets are scaled to unit length (an all-zero vector stays zero), so the distance is
    sqrt(2 - 2 cos) and the score is -sqrt(2 - 2 s_k), s_k the k-th largest cosine similarity to the
    training set: it ranks exactly like s_k, in [-2, 0]. Memory: a normalised float64 copy of the training
    features, and queries processed in blocks so that at most ~4M similarities are held at once.
    k must lie in [1, n_train].
    Example: train [[1, 0], [0, 1]], query [[1, 0]], k = 1 -> [0]; k = 2 -> [-sqrt(2)].
    """
    train = _normalised(_check_features(train_features, "train_features"))
    queries = _normalised(_check_features(features, "features"))
    if queries.shape[1] != train.shape[1]:
        raise ValueError(f"features have {queries.shape[1]} dimensions, train_features {train.shape[1]}")
    n_train = train.shape[0]
    if int(k) != k or not 1 <= k <= n_train:
        raise ValueError(f"k must be an integer in [1, {n_train}] (the number of training features), got {k!r}")
    out = np.empty(queries.shape[0])
    block = max(1, _BLOCK_CELLS // n_train)
    for start in range(0, queries.shape[0], block):
        similarity = queries[start : start + block] @ train.T
        kth = np.partition(similarity, n_train - k, axis=1)[:, n_train - k]
        out[start : start + block] = -np.sqrt(np.maximum(2.0 - 2.0 * kth, 0.0))
    return out
