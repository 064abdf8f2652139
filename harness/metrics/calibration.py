"""Calibration metrics of a classifier's predicted probabilities.

Conventions (shared by every function here):
- `probs` is an (n, k) array of class probabilities whose rows sum to 1; `labels` holds integer
  classes in [0, k). Use `softmax` to turn logits into probabilities.
- The top-label confidence of a sample is its largest probability; the prediction is its argmax
  (ties go to the lowest class index, as numpy's argmax does).
- Equal-width binning uses `n_bins` bins over [0, 1]; bin b holds confidences in (b/B, (b+1)/B],
  and a confidence of exactly 0 goes to the first bin.
- Empty inputs raise ValueError; every other input is valid (one class, all correct, ties).
"""

from __future__ import annotations

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


def accuracy(probs: FloatArray, labels: IntArray) -> float:
    """Share of samples whose argmax class equals the label. Example: ([[.9,.1],[.4,.6]], [0,0]) -> 0.5."""
    probs, labels = check_probs(probs, labels)
    return float((probs.argmax(axis=1) == labels).mean())


def equal_width_bin(confidence: FloatArray, n_bins: int) -> IntArray:
    """Bin index of each confidence: bins (b/B, (b+1)/B], with 0 in bin 0 and values clipped to [0, 1]."""
    index = np.ceil(np.clip(confidence, 0.0, 1.0) * n_bins).astype(np.int64) - 1
    return np.clip(index, 0, n_bins - 1)


def reliability_bins(probs: FloatArray, labels: IntArray, n_bins: int = 15) -> dict[str, list[float]]:
    """Per equal-width bin: sample count, mean top-label confidence and accuracy (0 for empty bins).

    These are the points of a reliability diagram; `ece` is their count-weighted mean gap.
    """
    probs, labels = check_probs(probs, labels)
    confidence = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == labels).astype(np.float64)
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
    confidence = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == labels).astype(np.float64)
    return binned_calibration_gap(confidence, correct, equal_width_bin(confidence, n_bins), n_bins)


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
