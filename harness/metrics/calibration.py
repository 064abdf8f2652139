"""Calibration metrics of a classifier's predicted probabilities.

Conventions (shared by every function here):
- `probs` is an (n, k) array of class probabilities whose rows sum to 1; `labels` holds integer
  classes in [0, k). Use `softmax` to turn logits into probabilities.
- The top-label confidence of a sample is its largest probability; the prediction is its argmax
  (ties go to the lowest class index, as numpy's argmax does).
- Equal-width binning uses `n_bins` bins over [0, 1]; bin b holds confidences in (b/B, (b+1)/B],
  and a confidence of exactly 0 goes to the first bin.
- Equal-mass binning sorts the samples by confidence and splits the sorted order into `n_bins` runs
  of equal count, exactly as `np.array_split` does (the first n % B runs get one sample more; with
  n < B the trailing runs are empty and skipped).
- Ties in confidence: samples with exactly equal confidence are interchangeable. Wherever an order
  matters (equal-mass bin boundaries, the risk-coverage curve) each of them counts the mean
  correctness of its tie group, i.e. the expectation over all orderings of the tie. Values therefore
  never depend on the order of the samples, and equal the plain sorted computation when no ties exist.
- Empty inputs raise ValueError; every other input is valid (one class, all correct, ties).
- Temperature scaling divides logits by a scalar T > 0 fitted by NLL on a calibration split that is
  disjoint from the test split; `ece_ts` and `nll_ts` are then measured on the test split.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from harness.metrics import MetricInfo

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

ACCURACY = MetricInfo("accuracy", True, "share of samples whose argmax class equals the label")
ECE = MetricInfo("ece", False, "expected calibration error of the top-label confidence: 15 equal-width bins (a, b], L1")
NLL = MetricInfo("nll", False, "mean negative log-likelihood of the label, natural log (nats)")
BRIER = MetricInfo(
    "brier", False, "multiclass Brier score: mean over samples of the sum over classes of (p - onehot)^2"
)
ECE_EM = MetricInfo(
    "ece_em",
    False,
    "expected calibration error of the top-label confidence: 15 equal-mass bins (np.array_split of the sorted "
    "confidences), L1; tied confidences share their mean accuracy",
)
MCE = MetricInfo(
    "mce", False, "maximum calibration error: largest |accuracy - mean confidence| over the non-empty bins of ece"
)
CLASSWISE_ECE = MetricInfo(
    "classwise_ece",
    False,
    "classwise (static) calibration error: mean over classes c of the ECE of p_c against 1[label = c], "
    "all samples, 15 equal-width bins (a, b], L1",
)
AURC = MetricInfo(
    "aurc",
    False,
    "area under the risk-coverage curve: mean over k = 1..n of the error rate of the k most confident samples "
    "(max prob); tied confidences share their mean error",
)
# Diagnostic: a fitted parameter. T says how over- or under-confident the model was, not how good it
# is (T = 1 is not better than T = 2 once the logits are rescaled), so it is shown, never ranked.
TEMPERATURE = MetricInfo(
    "temperature",
    False,
    "softmax temperature T fitted by NLL on the calibration split (logits / T); a fitted parameter, "
    "direction does not apply (T > 1: the model was over-confident)",
    diagnostic=True,
)
ECE_TS = MetricInfo(
    "ece_ts",
    False,
    "ece (15 equal-width bins, L1) of softmax(test logits / T), T fitted by NLL on the calibration split",
)
NLL_TS = MetricInfo("nll_ts", False, "nll (nats) of softmax(test logits / T), T fitted by NLL on the calibration split")
ECE_SQ_DEBIASED = MetricInfo(
    "ece_sq_debiased",
    False,
    "debiased squared L2 calibration error (Kumar, Liang & Ma 2019): sum over the 15 equal-width bins of "
    "|b|/n * ((accuracy - confidence)^2 - accuracy (1 - accuracy) / (|b| - 1)); unbiased for the binned "
    "squared error, so it is negative for some well-calibrated samples (0: calibrated)",
)
ECE_NOISE_FLOOR = MetricInfo(
    "ece_noise_floor",
    False,
    "mean ece of a perfectly calibrated model with these confidences (consistency resampling, Broecker & Smith "
    "2007: confidences resampled, labels drawn as Bernoulli(confidence)); an ece near or below it is noise",
    diagnostic=True,  # what a calibrated model would score: a reference line, not the model's quality
)
ECE_CALIBRATED_P = MetricInfo(
    "ece_calibrated_p",
    True,
    "p-value of 'the model is calibrated': share of consistency resamples whose ece is at least the observed "
    "one, (1 + k) / (1 + B); small: miscalibration beyond noise",
    diagnostic=True,  # a test's p-value: evidence about the ece, not a quality to rank by
)


def check_probs(probs: FloatArray, labels: IntArray) -> tuple[FloatArray, IntArray]:
    """Validate and convert inputs once; raises ValueError with what is wrong."""
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels)
    if probs.ndim != 2:
        raise ValueError(f"probs must be 2-D (n_samples, n_classes), got shape {probs.shape}")
    if labels.shape != (probs.shape[0],):
        raise ValueError(f"labels must have shape ({probs.shape[0]},), got {labels.shape}")
    if probs.shape[0] == 0:
        raise ValueError("no samples: calibration metrics need at least one sample")
    if probs.shape[1] == 0:
        raise ValueError("no classes: probs must have at least one column")
    if not np.isfinite(probs).all():
        raise ValueError("probs contain NaN or inf")
    if labels.size and (labels.min() < 0 or labels.max() >= probs.shape[1]):
        raise ValueError(f"labels must lie in [0, {probs.shape[1]}), got [{labels.min()}, {labels.max()}]")
    return probs, labels.astype(np.int64)


def softmax(logits: FloatArray, temperature: float = 1.0) -> FloatArray:
    """Row-wise softmax of logits / temperature, computed stably in float64."""
    z = np.asarray(logits, dtype=np.float64) / temperature
    z = z - z.max(axis=1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=1, keepdims=True)
    return z  # type: ignore[no-any-return]


def log_softmax(logits: FloatArray, temperature: float = 1.0) -> FloatArray:
    """Row-wise log-softmax of logits / temperature (stable log-sum-exp)."""
    z = np.asarray(logits, dtype=np.float64) / temperature
    z = z - z.max(axis=1, keepdims=True)
    out: FloatArray = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return out


# Logit or probability cells per chunk of the chunked kernels: float64 work arrays stay in the L2 cache.
_CHUNK_CELLS = 1 << 16
# Up to this many classes, row-wise max/argmax run faster on transposed chunks (contiguous class rows).
_TRANSPOSE_MAX_CLASSES = 128


def top_label(probs: FloatArray) -> tuple[FloatArray, IntArray]:
    """Top-label confidence (row max) and prediction (first argmax, as numpy's argmax) of every row.

    Exactly `probs.max(axis=1)` and `probs.argmax(axis=1)`. With few classes numpy reduces a short
    contiguous axis slowly, so the rows are processed in transposed chunks: the max and the first index
    reaching it (maxima marked with weights k..1, largest weight wins) become element-wise passes.
    """
    n, k = probs.shape
    if k > _TRANSPOSE_MAX_CLASSES:
        return probs.max(axis=1), probs.argmax(axis=1).astype(np.int64)
    confidence = np.empty(n)
    prediction = np.empty(n, dtype=np.int64)
    weight_type = np.uint8 if k < 256 else np.uint32
    first_weight = np.arange(k, 0, -1).astype(weight_type)[:, None]
    rows_per_chunk = max(16, _CHUNK_CELLS // k)
    work: dict[str, NDArray[Any]] = {}
    for start in range(0, n, rows_per_chunk):
        stop = min(n, start + rows_per_chunk)
        if work.get("block", np.empty((0, 0))).shape != (k, stop - start):
            shape = (k, stop - start)
            work = {
                "block": np.empty(shape),
                "is_max": np.empty(shape, np.bool_),
                "marks": np.empty(shape, weight_type),
            }
        np.copyto(work["block"], probs[start:stop].T)
        top = work["block"].max(axis=0)
        np.equal(work["block"], top, out=work["is_max"])
        np.multiply(work["is_max"], first_weight, out=work["marks"])
        prediction[start:stop] = k - work["marks"].max(axis=0).astype(np.int64)
        confidence[start:stop] = top
    return confidence, prediction


def accuracy(probs: FloatArray, labels: IntArray) -> float:
    """Share of samples whose argmax class equals the label. Example: ([[.9,.1],[.4,.6]], [0,0]) -> 0.5."""
    probs, labels = check_probs(probs, labels)
    return float((top_label(probs)[1] == labels).mean())


def equal_width_bin(confidence: FloatArray, n_bins: int) -> IntArray:
    """Bin index of each confidence: bins (b/B, (b+1)/B], with 0 in bin 0 and values clipped to [0, 1]."""
    index = np.ceil(np.clip(confidence, 0.0, 1.0) * n_bins).astype(np.int64) - 1
    return np.clip(index, 0, n_bins - 1)


def reliability_bins(probs: FloatArray, labels: IntArray, n_bins: int = 15) -> dict[str, list[float]]:
    """Per equal-width bin: sample count, mean top-label confidence and accuracy (0 for empty bins).

    These are the points of a reliability diagram; `ece` is their count-weighted mean gap.
    """
    probs, labels = check_probs(probs, labels)
    confidence, prediction = top_label(probs)
    correct = (prediction == labels).astype(np.float64)
    bins = equal_width_bin(confidence, n_bins)
    count = np.bincount(bins, minlength=n_bins).astype(np.float64)
    safe = np.maximum(count, 1.0)
    return {
        "lower": [b / n_bins for b in range(n_bins)],
        "upper": [(b + 1) / n_bins for b in range(n_bins)],
        "count": count.tolist(),
        "confidence": (np.bincount(bins, confidence, minlength=n_bins) / safe).tolist(),
        "accuracy": (np.bincount(bins, correct, minlength=n_bins) / safe).tolist(),
    }


def expected_calibration_error(probs: FloatArray, labels: IntArray, n_bins: int = 15) -> float:
    """ECE: sum over equal-width bins of |bin| / n * |accuracy(bin) - mean confidence(bin)|.

    Top-label confidence, `n_bins` bins (a, b] over [0, 1] (confidence 0 in the first bin), L1 gap.
    Empty bins contribute nothing. Example: one sample with confidence 0.8, correct -> 0.2.
    """
    probs, labels = check_probs(probs, labels)
    confidence, prediction = top_label(probs)
    correct = (prediction == labels).astype(np.float64)
    return binned_calibration_gap(confidence, correct, equal_width_bin(confidence, n_bins), n_bins)


def debiased_squared_ece(confidence: FloatArray, correct: FloatArray, n_bins: int = 15) -> float:
    """Kumar et al. (2019)'s debiased estimator of the binned squared calibration error.

    Per equal-width bin b with n_b >= 2 samples, mean confidence c_b and accuracy a_b:
    (a_b - c_b)^2 - a_b (1 - a_b) / (n_b - 1), weighted by n_b / n (bins with one sample add
    (a_b - c_b)^2). The plug-in (a_b - c_b)^2 overestimates the squared gap by the variance of a_b;
    subtracting its unbiased estimate removes that bias, so a calibrated model scores about 0.
    """
    confidence = np.asarray(confidence, dtype=np.float64)
    correct = np.asarray(correct, dtype=np.float64)
    bins = equal_width_bin(confidence, n_bins)
    count = np.bincount(bins, minlength=n_bins).astype(np.float64)
    hits = np.asarray(np.bincount(bins, correct, minlength=n_bins), dtype=np.float64)
    confidence_sum = np.asarray(np.bincount(bins, confidence, minlength=n_bins), dtype=np.float64)
    return float(_debiased_bin_sum(count, hits, confidence_sum, confidence.shape[0]))


def _debiased_bin_sum(count: FloatArray, hits: FloatArray, confidence_sum: FloatArray, n: int) -> FloatArray:
    """Kumar et al.'s debiased squared error from per-bin counts, correct counts and confidence sums
    (the last axis is the bins; leading axes, e.g. resamples, are kept)."""
    safe = np.maximum(count, 1.0)
    accuracy = hits / safe
    variance = np.where(count > 1, accuracy * (1.0 - accuracy) / np.maximum(count - 1.0, 1.0), 0.0)
    out: FloatArray = np.sum(count * ((accuracy - confidence_sum / safe) ** 2 - variance), axis=-1) / n
    return out


def debiased_squared_ece_stderr(confidence: FloatArray, correct: FloatArray, n_bins: int = 15) -> float:
    """The delta-method standard error of `debiased_squared_ece` (see `debiased_bin_stderr`)."""
    confidence = np.asarray(confidence, dtype=np.float64)
    bins = equal_width_bin(confidence, n_bins)
    count = np.bincount(bins, minlength=n_bins).astype(np.float64)
    hits = np.asarray(np.bincount(bins, np.asarray(correct, dtype=np.float64), minlength=n_bins), dtype=np.float64)
    confidence_sum = np.asarray(np.bincount(bins, confidence, minlength=n_bins), dtype=np.float64)
    return float(debiased_bin_stderr(count, hits, confidence_sum, confidence.shape[0]))


def debiased_bin_stderr(count: FloatArray, hits: FloatArray, confidence_sum: FloatArray, n: int) -> FloatArray:
    """The standard error of `_debiased_bin_sum` (same axes) under a normal model of each bin's gap.

    With w_b = n_b / n, gap g_b = a_b - c_b, v_b = a_b (1 - a_b) / (n_b - 1) (Var a_b; 0 for one sample) and
    h_b = g_b^2 - v_b (unbiased for the true squared gap mu_b^2), the estimate sum_b w_b h_b varies by
        sum_b w_b^2 2 v_b^2                          a squared normal's spread about a zero gap
      + 4 max(sum_b w_b^2 h_b v_b, 0)                its linear spread 4 mu_b^2 Var(a_b), clipped as a whole
      + sum_b w_b (h+_b - m)^2 / n                   the spread of the bins' sample counts (h+ = max(h, 0),
                                                     m = sum_b w_b h+_b)
    Unbiased in mu_b^2 where the plug-in g_b^2 is not: with g_b^2 in its place the error of a calibrated
    model is about sqrt(3) times too large (tests/test_calibration_extra.py), and so is a bootstrap's
    spread, which made its intervals over-cover (bench/uncertainty.py)."""
    safe = np.maximum(count, 1.0)
    accuracy = hits / safe
    variance = np.where(count > 1, accuracy * (1.0 - accuracy) / np.maximum(count - 1.0, 1.0), 0.0)
    share = count / n
    excess = (accuracy - confidence_sum / safe) ** 2 - variance
    positive = np.maximum(excess, 0.0)
    spread = (
        np.sum(share**2 * 2.0 * variance**2, axis=-1)
        + 4.0 * np.maximum(np.sum(share**2 * excess * variance, axis=-1), 0.0)
        + np.sum(share * (positive - np.sum(share * positive, axis=-1, keepdims=True)) ** 2, axis=-1) / n
    )
    out: FloatArray = np.sqrt(spread)
    return out


def squared_gap(confidence: FloatArray, correct: FloatArray, n_bins: int = 15) -> float:
    """The plug-in binned squared calibration error: sum over equal-width bins of |b|/n (a_b - c_b)^2."""
    confidence = np.asarray(confidence, dtype=np.float64)
    bins = equal_width_bin(confidence, n_bins)
    count = np.bincount(bins, minlength=n_bins).astype(np.float64)
    gap = np.bincount(bins, np.asarray(correct, dtype=np.float64) - confidence, minlength=n_bins)
    return float(np.sum(gap**2 / np.maximum(count, 1.0)) / confidence.shape[0])


def ece_noise_floor(
    confidence: FloatArray, observed: float, n_bins: int = 15, n_resamples: int = 1000, seed: int = 0
) -> tuple[float, float]:
    """(noise floor, p-value of "calibrated") of the ece by consistency resampling.

    Each resample draws n confidences with replacement and labels correct_i ~ Bernoulli(confidence_i),
    i.e. data from a perfectly calibrated model with the same confidences, and computes its ece
    (equal-width bins). The floor is the mean of those eces; the p-value is (1 + #{ece_b >= observed})
    / (1 + B). Seeded: the same inputs give the same numbers.
    """
    confidence = np.asarray(confidence, dtype=np.float64)
    n = confidence.shape[0]
    rng = np.random.default_rng(seed)
    eces = np.empty(n_resamples, dtype=np.float64)
    # The draws in their original order (indices, then uniforms, resample by resample), the eces of a block
    # of resamples at once: one bincount over (resample, bin) cells adds each cell's terms in sample order,
    # as a bincount per resample did, so the values are the same to the bit (tested).
    rows = max(1, min(n_resamples, _NOISE_FLOOR_CELLS // max(n, 1)))
    for start in range(0, n_resamples, rows):
        stop = min(start + rows, n_resamples)
        index = np.empty((stop - start, n), dtype=np.int64)
        uniform = np.empty((stop - start, n), dtype=np.float64)
        for r in range(stop - start):
            index[r] = rng.integers(0, n, size=n)
            uniform[r] = rng.random(n)
        drawn = confidence[index]
        terms = (uniform < drawn).astype(np.float64) - drawn
        cells = equal_width_bin(drawn, n_bins) + (np.arange(stop - start, dtype=np.int64) * n_bins)[:, None]
        gaps = np.bincount(cells.ravel(), terms.ravel(), minlength=(stop - start) * n_bins)
        eces[start:stop] = np.abs(gaps.reshape(stop - start, n_bins)).sum(axis=1) / n if n else 0.0
    p_value = (1.0 + float(np.sum(eces >= observed - 1e-12))) / (1.0 + n_resamples)
    return float(eces.mean()), p_value


#: samples x resamples held at once by `ece_noise_floor`: a few arrays of 1.6 MB, small enough to stay in
#: cache (2-3x faster than a loop per resample at n <= 1000, 1.3x at 5000; ten times more cells is slower)
_NOISE_FLOOR_CELLS = 200_000


def binned_calibration_gap(confidence: FloatArray, correct: FloatArray, bins: IntArray, n_bins: int) -> float:
    """sum_b |sum_{i in b} (correct_i - confidence_i)| / n: the ECE for precomputed bin indices."""
    gap = np.bincount(bins, correct - confidence, minlength=n_bins)
    return float(np.abs(gap).sum() / confidence.shape[0])


def nll_per_sample(logits: FloatArray, labels: IntArray, temperature: float = 1.0) -> FloatArray:
    """-log softmax(logits / T)[label] per sample, in nats."""
    log_probs = log_softmax(logits, temperature)
    out: FloatArray = -log_probs[np.arange(log_probs.shape[0]), labels]
    return out


def negative_log_likelihood(logits: FloatArray, labels: IntArray, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of the labels under softmax(logits / T), in nats.

    Takes logits (not probabilities) so that confident mistakes stay finite and exact.
    Example: logits [[0, 0]], label [1] -> ln 2.
    """
    check_probs(np.asarray(logits, dtype=np.float64), labels)
    return float(nll_per_sample(logits, labels, temperature).mean())


def brier_per_sample(probs: FloatArray, labels: IntArray) -> FloatArray:
    """sum_c (p_c - onehot_c)^2 per sample, in [0, 2]."""
    squared = probs**2
    rows = np.arange(probs.shape[0])
    out: FloatArray = squared.sum(axis=1) - 2.0 * probs[rows, labels] + 1.0
    return out


def brier_score(probs: FloatArray, labels: IntArray) -> float:
    """Multiclass Brier score: mean over samples of sum over classes of (p_c - 1[c = label])^2.

    In [0, 2]; 0 for a perfect confident classifier. Example: [[1, 0]], [1] -> 2.
    """
    probs, labels = check_probs(probs, labels)
    return float(brier_per_sample(probs, labels).mean())


def max_calibration_error(probs: FloatArray, labels: IntArray, n_bins: int = 15) -> float:
    """MCE: the largest |accuracy(bin) - mean confidence(bin)| over the non-empty equal-width bins.

    Same top-label confidence and bins (a, b] as `expected_calibration_error`; empty bins are skipped
    (torchmetrics' norm="max" agrees). In [0, 1]. Example: confidence .95 correct and .55 wrong fall in
    different bins, gaps .05 and .55 -> 0.55.
    """
    probs, labels = check_probs(probs, labels)
    _check_n_bins(n_bins)
    confidence, prediction = top_label(probs)
    correct = (prediction == labels).astype(np.float64)
    bins = equal_width_bin(confidence, n_bins)
    gap = np.bincount(bins, correct - confidence, minlength=n_bins)
    return _max_bin_gap(gap, np.bincount(bins, minlength=n_bins))


def equal_mass_calibration_error(probs: FloatArray, labels: IntArray, n_bins: int = 15) -> float:
    """ECE with equal-mass bins (`ece_em`): sum over bins of |bin| / n * |accuracy(bin) - mean confidence(bin)|.

    The samples are sorted by top-label confidence and the sorted order is split into `n_bins` runs of
    equal count as `np.array_split` does (sizes differ by at most one, larger runs first); with n < n_bins
    the empty runs are skipped. Tie rule: samples with equal confidence count the mean correctness of their
    tie group, so a tie that straddles a bin boundary is shared pro rata and the value does not depend on
    the order of the samples. Example: confidences [.6, .9] with correctness [1, 0] and 2 bins ->
    (|1 - .6| + |0 - .9|) / 2 = 0.65.
    """
    probs, labels = check_probs(probs, labels)
    _check_n_bins(n_bins)
    confidence, prediction = top_label(probs)
    correct = prediction == labels
    sorted_confidence, sorted_correct = sort_by_confidence(confidence, correct)
    return equal_mass_gap(sorted_confidence, sorted_correct, n_bins)


def classwise_calibration_error(probs: FloatArray, labels: IntArray, n_bins: int = 15) -> float:
    """Classwise ECE (static calibration error): mean over classes c of ECE(p_c, 1[label = c]).

    For each class c every sample takes part with its probability p_c (not only the samples predicted as
    c), binned into `n_bins` equal-width bins (a, b] over [0, 1] (p_c = 0 in the first bin); the class's
    ECE is sum over bins of |sum_{i in bin} (1[label_i = c] - p_ic)| / n. The k class ECEs are averaged.
    Example: one sample p = [.8, .2], label 0 -> (|1 - .8| + |0 - .2|) / 2 = 0.2.
    """
    probs, labels = check_probs(probs, labels)
    _check_n_bins(n_bins)
    n, k = probs.shape
    total = 0.0
    for c in range(k):
        target = (labels == c).astype(np.float64)
        bins = equal_width_bin(probs[:, c], n_bins)
        total += float(np.abs(np.bincount(bins, target - probs[:, c], minlength=n_bins)).sum())
    return total / int(n * k)


def area_under_risk_coverage(probs: FloatArray, labels: IntArray) -> float:
    """AURC: mean over k = 1..n of the error rate among the k most confident samples (lower is better).

    Confidence is the top-label probability, coverage k / n, risk the share of wrong argmax predictions
    among the k samples of highest confidence. Tie rule: samples with equal confidence count the mean error
    of their tie group (the expectation over the orderings of the tie), so the value does not depend on the
    order of the samples; without ties it is the plain descending sort. In [0, 1]; all correct -> 0.
    Example: confidences [.9, .6], correctness [0, 1] -> (1/1 + 1/2) / 2 = 0.75.
    """
    probs, labels = check_probs(probs, labels)
    confidence, prediction = top_label(probs)
    correct = prediction == labels
    return risk_coverage_area(sort_by_confidence(confidence, correct)[1])


def sort_by_confidence(confidence: FloatArray, correct: NDArray[np.bool_]) -> tuple[FloatArray, FloatArray]:
    """Confidences sorted ascending, with the tie-averaged correctness (as 0..1 floats) aligned to them.

    For confidences in [0, 1] this is one integer sort of a packed key (the float's bit pattern, which orders
    like the value for non-negative floats, shifted left by one with the correctness bit below it), so
    no argsort and no gather are needed. Anything else falls back to a stable argsort.
    """
    confidence = np.asarray(confidence, dtype=np.float64) + 0.0  # + 0.0 turns -0.0 into 0.0
    correct = np.asarray(correct, dtype=np.bool_)
    if confidence.size and confidence.min() >= 0.0 and confidence.max() <= 1.0:
        key = confidence.view(np.int64) << 1
        key |= correct
        return sort_packed_confidence(key)
    order = np.argsort(confidence, kind="stable")
    ordered = confidence[order]
    return ordered, tie_averaged(ordered, correct[order].astype(np.float64))


def sort_packed_confidence(key: IntArray) -> tuple[FloatArray, FloatArray]:
    """Sort keys (confidence bits << 1 | correct) in place; return sorted confidences and tie-averaged correctness."""
    key.sort()
    confidence: FloatArray = (key >> 1).view(np.float64)
    np.bitwise_and(key, 1, out=key)
    return confidence, tie_averaged(confidence, key.astype(np.float64))


def tie_averaged(sorted_values: FloatArray, weights: FloatArray) -> FloatArray:
    """`weights` with each run of equal `sorted_values` replaced by the run's mean (unchanged without ties)."""
    if sorted_values.size < 2 or not np.any(sorted_values[1:] == sorted_values[:-1]):
        return weights
    starts = np.concatenate(([0], np.flatnonzero(sorted_values[1:] != sorted_values[:-1]) + 1))
    sizes = np.diff(np.append(starts, sorted_values.size))
    out: FloatArray = np.repeat(np.add.reduceat(weights, starts) / sizes, sizes)
    return out


def equal_mass_gap(sorted_confidence: FloatArray, sorted_correct: FloatArray, n_bins: int) -> float:
    """sum over np.array_split runs of the sorted order of |sum (correct - confidence)| / n: the equal-mass ECE."""
    n = sorted_confidence.size
    sizes = np.full(n_bins, n // n_bins, dtype=np.int64)
    sizes[: n % n_bins] += 1
    starts = (np.cumsum(sizes) - sizes)[sizes > 0]
    gap = np.add.reduceat(sorted_correct, starts) - np.add.reduceat(sorted_confidence, starts)
    return float(np.abs(gap).sum() / n)


def risk_coverage_area(sorted_correct: FloatArray) -> float:
    """AURC from correctness sorted by ascending confidence: mean over k of (errors among the top k) / k."""
    n = sorted_correct.size
    risk = np.subtract(1.0, sorted_correct[::-1])
    np.cumsum(risk, out=risk)
    risk /= np.arange(1, n + 1, dtype=np.float64)
    return float(risk.sum() / n)


def _max_bin_gap(gap: NDArray[Any], count: NDArray[Any]) -> float:
    filled = count > 0
    return float((np.abs(gap[filled]) / count[filled]).max())


def _check_n_bins(n_bins: int) -> None:
    if int(n_bins) != n_bins or n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer, got {n_bins!r}")


def calibration_summary(logits: NDArray[np.floating], labels: IntArray, n_bins: int = 15) -> dict[str, float]:
    """accuracy, ece, ece_em, mce, classwise_ece, brier, nll and aurc of softmax(logits) in one fused pass.

    The values are those of `accuracy`, `expected_calibration_error`, `equal_mass_calibration_error`,
    `max_calibration_error`, `classwise_calibration_error`, `brier_score`, `negative_log_likelihood` and
    `area_under_risk_coverage` on `softmax(logits)`, with the same conventions. They agree up to float
    rounding: the softmax normaliser is summed in another order, so a confidence can differ by one ulp,
    which only matters where it decides an exact tie (e.g. two rows that are permutations of each other).

    The logits are read once, in chunks of rows: per chunk one softmax, one max and first-argmax, and the
    bin sums of every binned metric; then one sort of a packed (confidence, correct) integer key serves both
    ece_em and aurc.

    Memory: the logits may be float32 (or float64) and are never copied whole; each chunk of about 65k
    cells is converted to float64 in reused work buffers. Extra memory is O(n), about 40-50 bytes per sample
    at peak (the int64 sort key, the sorted confidences, their correctness and the risk-coverage running
    sum): ~0.45 GB at n = 10^7, next to 0.4 GB of float32 logits (10 classes).

    Example: logits [[0, 0]] with label 1 -> accuracy 0 (ties go to class 0), nll ln 2, ece .5, brier .5.
    """
    logits = np.asarray(logits)
    labels = np.asarray(labels)
    if logits.ndim != 2:
        raise ValueError(f"logits must be 2-D (n_samples, n_classes), got shape {logits.shape}")
    if logits.dtype.kind not in "fiu":
        raise ValueError(f"logits must be a real-valued array, got dtype {logits.dtype}")
    n, k = logits.shape
    if labels.shape != (n,):
        raise ValueError(f"labels must have shape ({n},), got {labels.shape}")
    if n == 0 or k == 0:
        raise ValueError("no samples: calibration metrics need at least one sample and one class")
    if labels.min() < 0 or labels.max() >= k:
        raise ValueError(f"labels must lie in [0, {k}), got [{labels.min()}, {labels.max()}]")
    _check_n_bins(n_bins)
    labels = labels.astype(np.intp, copy=False)

    # First-argmax without a per-row argmax: mark maxima with weights k..1 and take the largest weight.
    weight_type = np.uint8 if k < 256 else np.uint32
    first_weight = np.arange(k, 0, -1).astype(weight_type)[:, None]
    # Classwise cells: class c, bin j (0-based) -> c * B + j + 1; a probability of exactly 0 lands on
    # c * B, which it shares with class c - 1's last bin but adds 0 to its probability sum.
    class_offset = (np.arange(k) * n_bins).astype(np.float64)[:, None]
    key = np.empty(n, dtype=np.int64)
    top_gap = np.zeros(n_bins)
    top_count = np.zeros(n_bins, dtype=np.int64)
    class_prob = np.zeros(k * n_bins + 1)
    class_pos = np.zeros(k * n_bins + 1, dtype=np.int64)
    n_correct, nll_sum, brier_sum = 0, 0.0, 0.0
    rows_per_chunk = max(16, _CHUNK_CELLS // k)
    work: dict[str, NDArray[Any]] = {}
    for start in range(0, n, rows_per_chunk):
        stop = min(n, start + rows_per_chunk)
        rows = stop - start
        if work.get("p", np.empty((0, 0))).shape != (k, rows):
            # Reused (k, rows) work buffers: a fresh large array per chunk costs more in page faults than the math.
            work = {
                "p": np.empty((k, rows)),
                "cells": np.empty((k, rows)),
                "cell_index": np.empty((k, rows), dtype=np.intp),
                "is_max": np.empty((k, rows), dtype=np.bool_),
                "marks": np.empty((k, rows), dtype=weight_type),
            }
        p, cells, cell_index = work["p"], work["cells"], work["cell_index"]
        label = labels[start:stop]
        cols = np.arange(rows)
        np.copyto(p, logits[start:stop].T)  # (k, rows) float64: each class's values are contiguous
        top = p.max(axis=0)
        if not (np.isfinite(top).all() and np.isfinite(p.min())):
            raise ValueError(f"logits contain NaN or inf (in rows {start}..{stop - 1})")
        p -= top
        nll_sum -= float(p[label, cols].sum())
        np.exp(p, out=p)
        total = p.sum(axis=0)
        nll_sum += float(np.log(total).sum())
        p /= total
        confidence = p.max(axis=0)
        np.equal(p, confidence, out=work["is_max"])
        np.multiply(work["is_max"], first_weight, out=work["marks"])
        correct = (k - work["marks"].max(axis=0).astype(np.intp)) == label
        n_correct += int(np.count_nonzero(correct))
        p_label = p[label, cols]
        brier_sum += float(np.einsum("ij,ij->", p, p)) - 2.0 * float(p_label.sum()) + rows
        bins = equal_width_bin(confidence, n_bins)
        top_gap += np.bincount(bins, correct - confidence, minlength=n_bins)
        top_count += np.bincount(bins, minlength=n_bins)
        np.multiply(p, n_bins, out=cells)
        np.ceil(cells, out=cells)
        cells += class_offset
        np.copyto(cell_index, cells, casting="unsafe")
        class_prob += np.bincount(cell_index.ravel(), p.ravel(), minlength=k * n_bins + 1)
        label_bin = np.maximum(np.ceil(p_label * n_bins), 1.0).astype(np.intp)
        class_pos += np.bincount(label_bin + label * n_bins, minlength=k * n_bins + 1)
        key[start:stop] = confidence.view(np.int64) << 1
        key[start:stop] |= correct

    sorted_confidence, sorted_correct = sort_packed_confidence(key)
    return {
        "accuracy": n_correct / n,
        "ece": float(np.abs(top_gap).sum() / n),
        "ece_em": equal_mass_gap(sorted_confidence, sorted_correct, n_bins),
        "mce": _max_bin_gap(top_gap, top_count),
        "classwise_ece": float(np.abs(class_pos[1:] - class_prob[1:]).sum() / (n * k)),
        "brier": brier_sum / n,
        "nll": nll_sum / n,
        "aurc": risk_coverage_area(sorted_correct),
    }


# --------------------------------------------------------------------------- bootstrap resamples at once


@dataclass(frozen=True)
class SampleTerms:
    """Per-sample quantities of softmax(logits) of which every calibration metric is a function of weighted sums.

    A bootstrap resample is a weight vector (how often each sample was drawn), so the metrics of many
    resamples are matrix products of a (b, n) weight matrix with these terms (`resampled_calibration`),
    instead of b calls of `calibration_summary` on copied rows.
    """

    probs: FloatArray  # (n, k) softmax probabilities
    labels: IntArray
    confidence: FloatArray  # top-label probability
    correct: FloatArray  # 1.0 where the argmax is the label
    nll: FloatArray  # -log p_label, nats
    brier: FloatArray  # sum_c (p_c - onehot_c)^2

    @classmethod
    def of(cls, logits: FloatArray, labels: IntArray, temperature: float = 1.0) -> SampleTerms:
        """The terms of softmax(logits / temperature)."""
        probs, labels = check_probs(softmax(np.asarray(logits, dtype=np.float64), temperature), labels)
        confidence, prediction = top_label(probs)
        return cls(
            probs=probs,
            labels=labels,
            confidence=confidence,
            correct=(prediction == labels).astype(np.float64),
            nll=nll_per_sample(logits, labels, temperature),
            brier=brier_per_sample(probs, labels),
        )


def _cell_sums(weights: FloatArray, cells: IntArray, values: FloatArray, n_cells: int) -> FloatArray:
    """(b, n_cells): row r holds sum_i weights[r, i] * values[i] over the samples i of each cell.

    `cells` and `values` may list several entries per sample (flattened as (sample, entry)): the
    sparse (n, n_cells) matrix they define is multiplied by the weights."""
    from scipy.sparse import csr_matrix  # here: only the bootstrap needs sparse matrices

    n = weights.shape[1]
    per_sample = cells.size // n
    rows = np.repeat(np.arange(n), per_sample)
    matrix = csr_matrix((values.ravel(), (rows, cells.ravel())), shape=(n, n_cells))
    return np.asarray((matrix.T @ weights.T).T, dtype=np.float64)


def _equal_width_sums(weights: FloatArray, terms: SampleTerms, n_bins: int) -> tuple[FloatArray, ...]:
    """Per resample and equal-width bin of the top-label confidence: count, sum of correct, sum of confidence."""
    bins = equal_width_bin(terms.confidence, n_bins)
    stacked = np.stack([np.ones_like(terms.correct), terms.correct, terms.confidence], axis=1)
    cells = bins[:, None] * 3 + np.arange(3)[None, :]
    sums = _cell_sums(weights, cells, stacked, 3 * n_bins).reshape(weights.shape[0], n_bins, 3)
    return sums[:, :, 0], sums[:, :, 1], sums[:, :, 2]


def _tie_groups(terms: SampleTerms, weights: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Ascending distinct confidences, and per resample each one's drawn count and drawn correct count."""
    order = np.argsort(terms.confidence, kind="stable")
    ordered = terms.confidence[order]
    starts = np.concatenate(([0], np.flatnonzero(ordered[1:] != ordered[:-1]) + 1))
    drawn = weights[:, order]
    count = np.add.reduceat(drawn, starts, axis=1)
    correct = np.add.reduceat(drawn * terms.correct[order], starts, axis=1)
    return ordered[starts], count, correct


def _resampled_equal_mass(values: FloatArray, count: FloatArray, correct: FloatArray, n_bins: int) -> FloatArray:
    """ece_em of every resample from its tie groups (see `equal_mass_gap`; ties share their mean correctness).

    In sorted order the running sum F(x) of (correct - confidence) over the first x drawn samples is
    linear inside each tie group, so F at the np.array_split boundaries comes from the groups' running sums."""
    b, n = count.shape[0], round(float(count[0].sum()))
    sizes = np.full(n_bins, n // n_bins, dtype=np.int64)
    sizes[: n % n_bins] += 1
    bounds = np.concatenate(([0], np.cumsum(sizes))).astype(np.float64)
    zero = np.zeros((b, 1))
    running_count = np.concatenate((zero, np.cumsum(count, axis=1)), axis=1)
    running_gap = np.concatenate((zero, np.cumsum(correct - count * values, axis=1)), axis=1)
    slope = np.concatenate(
        (np.divide(correct, count, out=np.zeros_like(count), where=count > 0) - values, zero), axis=1
    )
    at_bounds = np.empty((b, bounds.size))
    for j, x in enumerate(bounds):
        full = np.sum(running_count[:, 1:] <= x, axis=1, keepdims=True)  # groups wholly before x
        before = np.take_along_axis(running_count, full, axis=1)
        at_bounds[:, j] = (
            np.take_along_axis(running_gap, full, axis=1) + (x - before) * np.take_along_axis(slope, full, axis=1)
        )[:, 0]
    gaps: FloatArray = np.abs(np.diff(at_bounds, axis=1)).sum(axis=1) / n
    return gaps


def _resampled_aurc(count: FloatArray, correct: FloatArray) -> FloatArray:
    """aurc of every resample from its tie groups (see `risk_coverage_area`; ties share their mean error).

    Most confident first, a group of N drawn samples after a drawn ones with E errors adds
    sum_{m=1..N} (E + m e) / (a + m) = (H(a + N) - H(a)) (E - a e) + N e, with e the group's error
    rate and H the harmonic numbers."""
    count, correct = count[:, ::-1], correct[:, ::-1]
    n = round(float(count[0].sum()))
    harmonic = np.concatenate(([0.0], np.cumsum(1.0 / np.arange(1, n + 1))))
    errors = count - correct
    rate = np.divide(errors, count, out=np.zeros_like(count), where=count > 0)
    before = np.cumsum(count, axis=1) - count
    errors_before = np.cumsum(errors, axis=1) - errors
    start = np.rint(before).astype(np.int64)
    stop = np.rint(before + count).astype(np.int64)
    terms = (harmonic[stop] - harmonic[start]) * (errors_before - before * rate) + count * rate
    area: FloatArray = terms.sum(axis=1) / n
    return area


def resampled_calibration(
    weights: FloatArray, terms: SampleTerms, n_bins: int = 15, *, only: tuple[str, ...] | None = None
) -> dict[str, FloatArray]:
    """The metrics of `calibration_summary` and ece_sq_debiased on every resample of a (b, n) weight matrix.

    Row r of `weights` says how often each of the n samples occurs in resample r (each row sums to n,
    `harness.stats.Bootstrap.count_chunks`). The values equal those of `calibration_summary` and
    `debiased_squared_ece` on the resampled rows up to float rounding, ties included (a tie group
    shares its mean correctness as there). With ece_sq_debiased comes `ece_sq_debiased_se`, each
    resample's `debiased_squared_ece_stderr`. `only` limits the work to some of the names.
    """
    wanted = set(only or ("accuracy", *_RESAMPLED))
    n = weights.shape[1]
    out: dict[str, FloatArray] = {}
    if "accuracy" in wanted:
        out["accuracy"] = weights @ terms.correct / n
    if "nll" in wanted:
        out["nll"] = weights @ terms.nll / n
    if "brier" in wanted:
        out["brier"] = weights @ terms.brier / n
    if wanted & {"ece", "mce", "ece_sq_debiased"}:
        count, hits, confidence = _equal_width_sums(weights, terms, n_bins)
        gap = hits - confidence
        out["ece"] = np.abs(gap).sum(axis=1) / n
        filled = count > 0
        safe = np.where(filled, count, 1.0)
        out["mce"] = np.where(filled, np.abs(gap) / safe, -np.inf).max(axis=1)
        out["ece_sq_debiased"] = _debiased_bin_sum(count, hits, confidence, n)
        out["ece_sq_debiased_se"] = debiased_bin_stderr(count, hits, confidence, n)
    if "classwise_ece" in wanted:
        k = terms.probs.shape[1]
        cells = equal_width_bin(terms.probs, n_bins) + np.arange(k)[None, :] * n_bins
        target = (terms.labels[:, None] == np.arange(k)[None, :]).astype(np.float64)
        # resamples in blocks: the (block, k * n_bins) sums stay under _CLASSWISE_CELLS however many classes
        step = max(1, _CLASSWISE_CELLS // (k * n_bins))
        out["classwise_ece"] = np.concatenate(
            [
                np.abs(_cell_sums(weights[start : start + step], cells, target - terms.probs, k * n_bins)).sum(axis=1)
                for start in range(0, weights.shape[0], step)
            ]
        ) / (n * k)
    if wanted & {"ece_em", "aurc"}:
        values, count, correct = _tie_groups(terms, weights)
        out["ece_em"] = _resampled_equal_mass(values, count, correct, n_bins)
        out["aurc"] = _resampled_aurc(count, correct)
    names = [name for name in ("accuracy", *_RESAMPLED) if name in wanted]
    if "ece_sq_debiased" in wanted:  # its resamples' standard errors, for the studentized interval
        names.append("ece_sq_debiased_se")
    return {name: out[name] for name in names}


def normal_debiased_ece(
    weights: FloatArray, confidence: FloatArray, correct: FloatArray, n_bins: int = 15
) -> FloatArray:
    """Per resample (row of a (b, n) weight matrix): the plug-in ece minus its bias under a normal model of
    each equal-width bin's gap sum S = sum w (correct - confidence), variance V = sum w (correct - confidence)^2:
    ece - sum_b (E|N(S_b, V_b)| - |S_b|) / n, with E|N(m, v)| = sqrt(2v/pi) exp(-m^2 / 2v) + m (1 - 2 Phi(-m / sqrt v)).

    Only its spread is used (`ece_spread`): it varies with the data as a bias-corrected ece does, which
    the plug-in's resamples do not show (the bias is smaller where the observed gaps are larger)."""
    from scipy.special import ndtr

    confidence = np.asarray(confidence, dtype=np.float64)
    gap = np.asarray(correct, dtype=np.float64) - confidence
    bins = equal_width_bin(confidence, n_bins)
    cells = bins[:, None] * 2 + np.arange(2)[None, :]
    sums = _cell_sums(np.asarray(weights, dtype=np.float64), cells, np.stack([gap, gap * gap], axis=1), 2 * n_bins)
    total, variance = sums[:, 0::2], sums[:, 1::2]
    sd = np.sqrt(variance)
    safe = np.where(sd > 0, sd, 1.0)
    expected = np.where(
        sd > 0,
        sd * math.sqrt(2.0 / math.pi) * np.exp(-0.5 * (total / safe) ** 2) + total * (1.0 - 2.0 * ndtr(-total / safe)),
        np.abs(total),
    )
    n = confidence.shape[0]
    out: FloatArray = (2.0 * np.abs(total) - expected).sum(axis=1) / n
    return out


def ece_spread(plug_in: FloatArray, debiased: FloatArray) -> float:
    """How much more a bias-corrected ece varies than the plug-in: max(1, sd(debiased) / sd(plug_in)) over the
    same resamples (1 when the plug-in does not vary). `harness.intervals.debiased_interval` scales by it."""
    plug_in_sd = float(np.std(np.asarray(plug_in, dtype=np.float64)))
    if plug_in_sd <= 0.0:
        return 1.0
    return max(1.0, float(np.std(np.asarray(debiased, dtype=np.float64))) / plug_in_sd)


#: bound on the per-class bin sums held at once in `resampled_calibration` (float64: 8 bytes each -> 32 MB)
_CLASSWISE_CELLS = 4_000_000
_RESAMPLED = ("ece", "ece_em", "mce", "classwise_ece", "brier", "nll", "aurc", "ece_sq_debiased")


#: Search interval of T in `fit_temperature`. A calibration split whose predictions are all correct
#: keeps lowering its NLL as T -> 0, so the fit would sharpen without limit and ruin the test NLL; a
#: T at a bound is reported as such (the split does not determine it).
TEMPERATURE_BOUNDS = (0.05, 100.0)
#: Iteration cap of the safeguarded Newton search in `fit_temperature` (it converges in about 10).
_TEMPERATURE_MAX_ITERATIONS = 200


def _nll_slope_and_curvature(logits64: FloatArray, labels: IntArray, beta: float) -> tuple[float, float]:
    """d/dbeta and d2/dbeta2 of the mean NLL of softmax(beta * logits): mean(E_p[z] - z_y), mean(Var_p[z])."""
    z = logits64 - logits64.max(axis=1, keepdims=True)  # both derivatives are shift-invariant per row
    p = np.exp(beta * z)
    p /= p.sum(axis=1, keepdims=True)
    mean_z = (p * z).sum(axis=1)
    variance = np.maximum((p * (z - mean_z[:, None]) ** 2).sum(axis=1), 0.0)
    slope = float((mean_z - z[np.arange(z.shape[0]), labels]).mean())
    return slope, float(variance.mean())


def fit_temperature(logits: FloatArray, labels: IntArray) -> float:
    """The temperature T > 0 that minimises the mean NLL of softmax(logits / T) on a calibration split.

    Searched over beta = 1/T in [1/100, 1/0.05] (`TEMPERATURE_BOUNDS`) in float64. The mean NLL is
    convex in beta (its second derivative is the mean variance of the logits under the softmax), so
    its slope is increasing and the minimum is the slope's root: a safeguarded Newton iteration
    (a bisection step whenever Newton leaves the bracket) from the fixed start beta = 1, run to
    machine precision, at most 200 iterations. Converging fully, rather than stopping within a
    tolerance, makes T a function of the data alone: machines whose float reductions differ in the
    last bit agree on T to about 1e-12 relative (a bracketing search stopped at a tolerance does not).
    A model whose NLL keeps falling as T -> 0 (every calibration prediction correct) gets the lower
    bound 0.05 exactly; one that keeps falling as T grows gets 100; logits constant within each row
    (the NLL does not depend on T) get T = 1. T > 1 means the model was over-confident. Fit on a split
    disjoint from the test split.
    Example: logits of a calibrated model multiplied by 3 -> T close to 3.
    """
    logits64, labels = check_probs(np.asarray(logits, dtype=np.float64), labels)
    low, high = 1.0 / TEMPERATURE_BOUNDS[1], 1.0 / TEMPERATURE_BOUNDS[0]
    slope_low, _ = _nll_slope_and_curvature(logits64, labels, low)
    slope_high, _ = _nll_slope_and_curvature(logits64, labels, high)
    if slope_low >= 0.0 and slope_high <= 0.0:
        return 1.0  # a flat NLL: T is not determined
    if slope_low >= 0.0:
        return TEMPERATURE_BOUNDS[1]
    if slope_high <= 0.0:
        return TEMPERATURE_BOUNDS[0]
    beta = 1.0
    for _ in range(_TEMPERATURE_MAX_ITERATIONS):
        slope, curvature = _nll_slope_and_curvature(logits64, labels, beta)
        if slope == 0.0:
            break
        if slope < 0.0:
            low = beta
        else:
            high = beta
        step = slope / curvature if curvature > 0.0 else math.inf
        candidate = beta - step
        if not low < candidate < high:
            candidate = 0.5 * (low + high)
        if candidate == beta or high - low <= 4.0 * np.finfo(np.float64).eps * beta:
            break
        beta = candidate
    return float(1.0 / beta)


def temperature_scaled_metrics(
    calib_logits: FloatArray, calib_labels: IntArray, test_logits: FloatArray, test_labels: IntArray, n_bins: int = 15
) -> dict[str, float]:
    """{"temperature", "ece_ts", "nll_ts"}: T fitted on the calibration split, ECE and NLL of test logits / T.

    Example: if the fitted T is 1 the scaled metrics equal `ece` and `nll` of the test split.
    """
    temperature = fit_temperature(calib_logits, calib_labels)
    test_probs = softmax(np.asarray(test_logits, dtype=np.float64), temperature)
    return {
        "temperature": temperature,
        "ece_ts": expected_calibration_error(test_probs, test_labels, n_bins),
        "nll_ts": negative_log_likelihood(test_logits, test_labels, temperature),
    }
