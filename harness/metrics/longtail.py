"""Long-tailed classification: per-class accuracy, shot groups, and accuracy under shifted test priors.

Conventions (shared by every function here):
- `predictions` and `labels` are integer classes in [0, n_classes). The accuracy of class c is the share
  of test samples labelled c whose prediction is c (its recall).
- A class with no test samples has no accuracy: `per_class_accuracy` returns NaN for it, and every
  aggregate here (group, balanced, worst, prior-weighted accuracy) leaves such classes out, as
  scikit-learn's balanced_accuracy_score does. An aggregate over no class with test samples is NaN.
- Shot groups use training-set counts: many-shot (> `many` training samples, default 100), medium-shot
  (`few`..`many` inclusive, default 20..100), few-shot (< `few`, default 20). Thresholds are parameters
  and are recorded with the run.
- Test-agnostic evaluation (SADE protocol): accuracy under a test class prior pi is sum_c pi_c * acc_c.
  Classes are ranked by training frequency, descending (ties: lower class id first). The forward
  long-tailed prior of imbalance ratio r gives the class at rank i (0 = head) pi proportional to
  r^(-i / (C - 1)), so head / tail = r; the backward prior reverses it (the tail class gets the most
  mass); the uniform prior gives balanced accuracy. Metric names: `acc_uniform`, `acc_forward_lt_<r>`,
  `acc_backward_lt_<r>` for r in {2, 5, 10, 25, 50}.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from harness.metrics import MetricInfo

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
Order = Literal["forward", "backward"]

BALANCED_ACCURACY = MetricInfo(
    "balanced_accuracy", True, "mean over classes with test samples of per-class accuracy (recall); sklearn's"
)
MANY_SHOT_ACCURACY = MetricInfo(
    "many_shot_accuracy", True, "mean per-class accuracy over classes with > 100 training samples (threshold recorded)"
)
MEDIUM_SHOT_ACCURACY = MetricInfo(
    "medium_shot_accuracy", True, "mean per-class accuracy over classes with 20..100 training samples, inclusive"
)
FEW_SHOT_ACCURACY = MetricInfo(
    "few_shot_accuracy", True, "mean per-class accuracy over classes with < 20 training samples (threshold recorded)"
)
WORST_CLASS_ACCURACY = MetricInfo(
    "worst_class_accuracy", True, "lowest per-class accuracy over classes with test samples"
)

#: Imbalance ratios of the test-agnostic (SADE) priors.
PRIOR_SHIFT_RATIOS = (2, 5, 10, 25, 50)


def prior_shift_name(order: Literal["forward", "backward", "uniform"], imbalance_ratio: float = 1) -> str:
    """Metric name of the accuracy under a test prior: "acc_uniform", "acc_forward_lt_10", "acc_backward_lt_50"."""
    if order == "uniform":
        return "acc_uniform"
    if order not in ("forward", "backward"):
        raise ValueError(f"order must be 'forward', 'backward' or 'uniform', got {order!r}")
    return f"acc_{order}_lt_{imbalance_ratio:g}"


def prior_shift_info(order: Literal["forward", "backward", "uniform"], imbalance_ratio: float = 1) -> MetricInfo:
    """The MetricInfo of `prior_shift_name(order, imbalance_ratio)` (higher is better)."""
    if order == "uniform":
        convention = "accuracy under a uniform test prior: sum_c acc_c / C (= balanced accuracy)"
    else:
        head = "head" if order == "forward" else "tail"
        convention = (
            f"accuracy under a {order} long-tailed test prior, imbalance ratio {imbalance_ratio:g} "
            f"(the {head} class, by training frequency, has {imbalance_ratio:g}x the mass of the other end): "
            "sum_c pi_c * acc_c (SADE test-agnostic protocol)"
        )
    return MetricInfo(prior_shift_name(order, imbalance_ratio), True, convention)


ACC_UNIFORM = prior_shift_info("uniform")
ACC_FORWARD_LT_2 = prior_shift_info("forward", 2)
ACC_FORWARD_LT_5 = prior_shift_info("forward", 5)
ACC_FORWARD_LT_10 = prior_shift_info("forward", 10)
ACC_FORWARD_LT_25 = prior_shift_info("forward", 25)
ACC_FORWARD_LT_50 = prior_shift_info("forward", 50)
ACC_BACKWARD_LT_2 = prior_shift_info("backward", 2)
ACC_BACKWARD_LT_5 = prior_shift_info("backward", 5)
ACC_BACKWARD_LT_10 = prior_shift_info("backward", 10)
ACC_BACKWARD_LT_25 = prior_shift_info("backward", 25)
ACC_BACKWARD_LT_50 = prior_shift_info("backward", 50)

#: Every test-agnostic metric, by name.
PRIOR_SHIFT_METRICS: dict[str, MetricInfo] = {
    info.name: info
    for info in (
        ACC_UNIFORM,
        ACC_FORWARD_LT_2,
        ACC_FORWARD_LT_5,
        ACC_FORWARD_LT_10,
        ACC_FORWARD_LT_25,
        ACC_FORWARD_LT_50,
        ACC_BACKWARD_LT_2,
        ACC_BACKWARD_LT_5,
        ACC_BACKWARD_LT_10,
        ACC_BACKWARD_LT_25,
        ACC_BACKWARD_LT_50,
    )
}


def _check_classes(values: NDArray[Any], name: str, n_classes: int) -> IntArray:
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {array.shape}")
    if array.size and array.dtype.kind not in "iub":
        raise ValueError(f"{name} must hold integer class ids, got dtype {array.dtype}")
    if array.size and (array.min() < 0 or array.max() >= n_classes):
        raise ValueError(f"{name} must lie in [0, {n_classes}), got [{array.min()}, {array.max()}]")
    return array.astype(np.int64)


def per_class_accuracy(predictions: NDArray[Any], labels: NDArray[Any], n_classes: int) -> FloatArray:
    """Accuracy (recall) of each class: share of its test samples predicted as it; NaN if it has none.

    Returns an array of length n_classes; classes absent from `labels` are NaN (mask: np.isnan) and are
    left out by every aggregate in this module. Example: predictions [0, 1, 1], labels [0, 0, 1],
    n_classes 3 -> [0.5, 1.0, nan].
    """
    if int(n_classes) != n_classes or n_classes < 1:
        raise ValueError(f"n_classes must be a positive integer, got {n_classes!r}")
    labels = _check_classes(labels, "labels", n_classes)
    predictions = _check_classes(predictions, "predictions", n_classes)
    if predictions.shape != labels.shape:
        raise ValueError(f"predictions and labels differ in length: {predictions.shape[0]} vs {labels.shape[0]}")
    if labels.size == 0:
        raise ValueError("no samples: per-class accuracy needs at least one test sample")
    total = np.bincount(labels, minlength=n_classes).astype(np.float64)
    hits = np.bincount(labels[predictions == labels], minlength=n_classes).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        out: FloatArray = np.where(total > 0, hits / total, np.nan)
    return out


def _n_classes(predictions: NDArray[Any], labels: NDArray[Any], n_classes: int | None) -> int:
    if n_classes is not None:
        return n_classes
    sizes = [int(np.max(a)) + 1 for a in (predictions, labels) if np.size(a)]
    return max(sizes, default=1)


def balanced_accuracy(predictions: NDArray[Any], labels: NDArray[Any], n_classes: int | None = None) -> float:
    """Mean per-class accuracy over the classes present in `labels` (= sklearn's balanced_accuracy_score).

    n_classes defaults to 1 + the largest class id seen. Example: predictions [0, 1, 1], labels [0, 0, 1]
    -> (0.5 + 1) / 2 = 0.75.
    """
    return _nan_mean(per_class_accuracy(predictions, labels, _n_classes(predictions, labels, n_classes)))


def worst_class_accuracy(predictions: NDArray[Any], labels: NDArray[Any], n_classes: int | None = None) -> float:
    """Lowest per-class accuracy over the classes present in `labels`. Example: [0, 1, 1] vs [0, 0, 1] -> 0.5."""
    accuracy = per_class_accuracy(predictions, labels, _n_classes(predictions, labels, n_classes))
    return float(np.nanmin(accuracy))  # at least one class is present: labels are non-empty


def _nan_mean(values: FloatArray) -> float:
    present = values[~np.isnan(values)]
    return float(present.mean()) if present.size else float("nan")


def shot_groups(train_counts: NDArray[Any], many: int = 100, few: int = 20) -> dict[str, IntArray]:
    """Class ids by training-set size: {"many": count > many, "medium": few <= count <= many, "few": count < few}.

    `train_counts[c]` is the number of training samples of class c. Example: counts [500, 100, 20, 19],
    defaults -> many [0], medium [1, 2], few [3].
    """
    counts = np.asarray(train_counts)
    if counts.ndim != 1 or counts.size == 0:
        raise ValueError(f"train_counts must be a non-empty 1-D array (one count per class), got shape {counts.shape}")
    if counts.dtype.kind not in "iu" or counts.min() < 0:
        raise ValueError("train_counts must be non-negative integers")
    if not 0 <= few <= many:
        raise ValueError(f"thresholds must satisfy 0 <= few <= many, got few={few}, many={many}")
    return {
        "many": np.flatnonzero(counts > many).astype(np.int64),
        "medium": np.flatnonzero((counts >= few) & (counts <= many)).astype(np.int64),
        "few": np.flatnonzero(counts < few).astype(np.int64),
    }


def group_accuracy(per_class_acc: NDArray[Any], class_ids: NDArray[Any]) -> float:
    """Mean per-class accuracy over `class_ids`, leaving out classes without test samples (NaN).

    NaN when the group is empty or none of its classes has test samples (e.g. a dataset without few-shot
    classes). Example: accuracies [1, .5, nan], group [1, 2] -> 0.5.
    """
    accuracy = np.asarray(per_class_acc, dtype=np.float64)
    ids = np.asarray(class_ids, dtype=np.int64)
    if ids.size and (ids.min() < 0 or ids.max() >= accuracy.size):
        raise ValueError(f"class_ids must lie in [0, {accuracy.size}), got [{ids.min()}, {ids.max()}]")
    return _nan_mean(accuracy[ids])


def frequency_ranking(train_counts: NDArray[Any]) -> IntArray:
    """Class ids from most to least frequent in training (stable: equal counts keep lower ids first)."""
    counts = np.asarray(train_counts)
    if counts.ndim != 1 or counts.size == 0:
        raise ValueError(f"train_counts must be a non-empty 1-D array, got shape {counts.shape}")
    out: IntArray = np.argsort(-counts.astype(np.float64), kind="stable").astype(np.int64)
    return out


def long_tailed_prior(
    n_classes: int, imbalance_ratio: float, order: Order = "forward", train_counts: NDArray[Any] | None = None
) -> FloatArray:
    """Test class prior of the SADE protocol: pi_i proportional to imbalance_ratio^(-i / (C - 1)).

    Forward: position i = 0 is the head (most frequent training class) and gets the most mass, the tail
    gets 1/imbalance_ratio of it; backward reverses the prior. Without `train_counts` the positions are
    the class ids, i.e. classes must already be ordered by training frequency, descending; with
    `train_counts` classes are ranked by `frequency_ranking` and the prior is returned indexed by class id.
    imbalance_ratio 1 (or one class) gives the uniform prior. Sums to 1.
    Example: n_classes 3, ratio 4, forward -> [4, 2, 1] / 7; backward -> [1, 2, 4] / 7.
    """
    if int(n_classes) != n_classes or n_classes < 1:
        raise ValueError(f"n_classes must be a positive integer, got {n_classes!r}")
    if not imbalance_ratio >= 1:
        raise ValueError(f"imbalance_ratio must be >= 1 (head / tail mass), got {imbalance_ratio!r}")
    if order not in ("forward", "backward"):
        raise ValueError(f"order must be 'forward' or 'backward', got {order!r}")
    position = np.arange(n_classes, dtype=np.float64) / max(n_classes - 1, 1)
    prior: FloatArray = np.power(float(imbalance_ratio), -position)
    if order == "backward":
        prior = prior[::-1]
    prior = prior / prior.sum()
    if train_counts is None:
        return prior
    ranking = frequency_ranking(train_counts)
    if ranking.size != n_classes:
        raise ValueError(f"train_counts has {ranking.size} classes, n_classes is {n_classes}")
    by_class = np.empty(n_classes)
    by_class[ranking] = prior
    return by_class


def prior_weighted_accuracy(per_class_acc: NDArray[Any], prior: NDArray[Any]) -> float:
    """sum_c pi_c * acc_c: expected accuracy on a test set whose classes follow `prior`.

    Classes without test samples (NaN accuracy) are left out and the prior is renormalised over the rest;
    NaN if no class with test samples has prior mass. A uniform prior gives `balanced_accuracy`.
    Example: accuracies [1, 0], prior [.75, .25] -> 0.75.
    """
    accuracy = np.asarray(per_class_acc, dtype=np.float64)
    weights = np.asarray(prior, dtype=np.float64)
    if weights.shape != accuracy.shape or accuracy.ndim != 1:
        raise ValueError(f"prior must have the shape of per_class_acc {accuracy.shape}, got {weights.shape}")
    if not (np.isfinite(weights).all() and weights.min() >= 0):
        raise ValueError("prior must be finite and non-negative")
    present = ~np.isnan(accuracy)
    mass = float(weights[present].sum())
    if mass == 0:
        return float("nan")
    return float((weights[present] * accuracy[present]).sum() / mass)


def prior_shift_accuracies(
    per_class_acc: NDArray[Any], train_counts: NDArray[Any], ratios: tuple[float, ...] = PRIOR_SHIFT_RATIOS
) -> dict[str, float]:
    """Accuracy under the uniform, forward and backward long-tailed test priors, by metric name.

    Keys: "acc_uniform", then "acc_forward_lt_<r>" and "acc_backward_lt_<r>" for each r in `ratios`.
    Classes are ranked by `train_counts` (descending) before the priors are applied.
    """
    accuracy = np.asarray(per_class_acc, dtype=np.float64)
    n_classes = accuracy.size
    out = {prior_shift_name("uniform"): prior_weighted_accuracy(accuracy, np.full(n_classes, 1.0 / n_classes))}
    orders: tuple[Order, ...] = ("forward", "backward")
    for order in orders:
        for ratio in ratios:
            prior = long_tailed_prior(n_classes, ratio, order, train_counts)
            out[prior_shift_name(order, ratio)] = prior_weighted_accuracy(accuracy, prior)
    return out
