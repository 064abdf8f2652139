"""Long-tail metrics against scikit-learn and brute force: per-class, shot-group, balanced, worst-class and
test-agnostic (SADE) accuracies."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score

from harness.metrics import longtail as lt


def per_class_reference(predictions: np.ndarray, labels: np.ndarray, n_classes: int) -> list[float]:
    out = []
    for c in range(n_classes):
        members = [p for p, y in zip(predictions.tolist(), labels.tolist(), strict=True) if y == c]
        out.append(sum(p == c for p in members) / len(members) if members else float("nan"))
    return out


def random_predictions(seed: int, n: int, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    # Long-tailed labels (some classes absent), predictions right about 60% of the time.
    weights = 0.7 ** np.arange(n_classes)
    labels = rng.choice(n_classes, size=n, p=weights / weights.sum())
    predictions = np.where(rng.random(n) < 0.6, labels, rng.integers(0, n_classes, n))
    return predictions, labels


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize(("n", "n_classes"), [(1, 3), (20, 10), (500, 12), (3000, 4)])
def test_per_class_balanced_and_worst_match_references(seed: int, n: int, n_classes: int) -> None:
    predictions, labels = random_predictions(seed, n, n_classes)
    per_class = lt.per_class_accuracy(predictions, labels, n_classes)
    np.testing.assert_array_equal(per_class, per_class_reference(predictions, labels, n_classes))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn warns when predictions hold classes absent from the labels
        expected = balanced_accuracy_score(labels, predictions)
    assert lt.balanced_accuracy(predictions, labels, n_classes) == pytest.approx(expected, abs=1e-12)
    assert lt.balanced_accuracy(predictions, labels) == pytest.approx(expected, abs=1e-12)
    present = [a for a in per_class_reference(predictions, labels, n_classes) if a == a]
    assert lt.worst_class_accuracy(predictions, labels, n_classes) == min(present)
    assert lt.prior_weighted_accuracy(per_class, np.full(n_classes, 1 / n_classes)) == pytest.approx(expected)


def test_known_values() -> None:
    predictions, labels = np.array([0, 1, 1]), np.array([0, 0, 1])
    np.testing.assert_array_equal(lt.per_class_accuracy(predictions, labels, 3), [0.5, 1.0, np.nan])
    assert lt.balanced_accuracy(predictions, labels) == 0.75
    assert lt.worst_class_accuracy(predictions, labels) == 0.5
    assert lt.group_accuracy(np.array([1.0, 0.5, np.nan]), np.array([1, 2])) == 0.5
    assert np.isnan(lt.group_accuracy(np.array([1.0, np.nan]), np.array([1])))
    assert np.isnan(lt.group_accuracy(np.array([1.0, 0.5]), np.array([], dtype=int)))
    assert lt.prior_weighted_accuracy(np.array([1.0, 0.0]), np.array([0.75, 0.25])) == 0.75
    # A class without test samples is dropped and the prior renormalised: (.5 * 1) / .5.
    assert lt.prior_weighted_accuracy(np.array([1.0, np.nan]), np.array([0.5, 0.5])) == 1.0
    assert np.isnan(lt.prior_weighted_accuracy(np.array([np.nan, 1.0]), np.array([1.0, 0.0])))


def test_shot_group_boundaries() -> None:
    groups = lt.shot_groups(np.array([500, 101, 100, 20, 19, 0]))
    assert groups["many"].tolist() == [0, 1]
    assert groups["medium"].tolist() == [2, 3]
    assert groups["few"].tolist() == [4, 5]
    custom = lt.shot_groups(np.array([50, 10, 5, 4]), many=10, few=5)
    assert (custom["many"].tolist(), custom["medium"].tolist(), custom["few"].tolist()) == ([0], [1, 2], [3])
    with pytest.raises(ValueError, match="few <= many"):
        lt.shot_groups(np.array([1, 2]), many=5, few=10)
    with pytest.raises(ValueError, match="non-negative integers"):
        lt.shot_groups(np.array([1.5, 2.0]))


def test_long_tailed_prior_shape() -> None:
    forward = lt.long_tailed_prior(3, 4, "forward")
    np.testing.assert_allclose(forward, np.array([4, 2, 1]) / 7)
    np.testing.assert_allclose(lt.long_tailed_prior(3, 4, "backward"), np.array([1, 2, 4]) / 7)
    for ratio in lt.PRIOR_SHIFT_RATIOS:
        prior = lt.long_tailed_prior(100, ratio, "forward")
        assert prior.sum() == pytest.approx(1.0)
        assert prior[0] / prior[-1] == pytest.approx(ratio)
        assert np.all(np.diff(prior) < 0)
        # pi_c proportional to ratio^(-c / (C - 1)), written out per class.
        direct = np.array([ratio ** (-c / 99) for c in range(100)])
        np.testing.assert_allclose(prior, direct / direct.sum(), rtol=1e-12)
        np.testing.assert_allclose(lt.long_tailed_prior(100, ratio, "backward"), prior[::-1])
    np.testing.assert_allclose(lt.long_tailed_prior(5, 1, "forward"), np.full(5, 0.2))
    np.testing.assert_allclose(lt.long_tailed_prior(1, 50, "backward"), [1.0])
    with pytest.raises(ValueError, match="imbalance_ratio"):
        lt.long_tailed_prior(3, 0.5)
    with pytest.raises(ValueError, match="order"):
        lt.long_tailed_prior(3, 2, "sideways")  # type: ignore[arg-type]


def test_prior_follows_training_frequency() -> None:
    counts = np.array([5, 50, 5, 500])  # head: class 3, then 1, then 0 and 2 (tie: lower id first)
    assert lt.frequency_ranking(counts).tolist() == [3, 1, 0, 2]
    by_rank = lt.long_tailed_prior(4, 10, "forward")
    by_class = lt.long_tailed_prior(4, 10, "forward", train_counts=counts)
    np.testing.assert_allclose(by_class[[3, 1, 0, 2]], by_rank)
    backward = lt.long_tailed_prior(4, 10, "backward", train_counts=counts)
    assert backward.argmax() == 2 and backward.argmin() == 3


def test_prior_weighted_accuracy_equals_accuracy_on_a_resampled_test_set() -> None:
    # SADE builds test sets whose class sizes follow the prior; the overall accuracy on such a set is
    # sum_c pi_c acc_c. Build one with integer sizes and compare.
    n_classes, counts = 5, np.array([400, 200, 100, 40, 10])
    hits = np.array([0.9, 0.8, 0.6, 0.5, 0.2])
    per_class = hits.copy()
    prior = lt.long_tailed_prior(n_classes, 10, "backward", train_counts=counts)
    sizes = np.round(prior * 100_000).astype(int)
    correct = sum(round(float(size) * h) for size, h in zip(sizes, hits, strict=True))
    expected = correct / sizes.sum()
    assert lt.prior_weighted_accuracy(per_class, prior) == pytest.approx(expected, abs=1e-4)


def test_prior_shift_accuracies_names_and_values() -> None:
    counts = np.array([1000, 300, 100, 30, 10, 3])
    per_class = np.array([0.9, 0.8, 0.7, 0.5, 0.3, 0.1])
    values = lt.prior_shift_accuracies(per_class, counts)
    expected_names = ["acc_uniform"] + [
        f"acc_{order}_lt_{r}" for order in ("forward", "backward") for r in (2, 5, 10, 25, 50)
    ]
    assert list(values) == expected_names
    assert set(values) == set(lt.PRIOR_SHIFT_METRICS)
    assert values["acc_uniform"] == pytest.approx(per_class.mean())
    # Head classes are the accurate ones: forward priors raise accuracy, backward priors lower it, monotonically.
    forward = [values[f"acc_forward_lt_{r}"] for r in (2, 5, 10, 25, 50)]
    backward = [values[f"acc_backward_lt_{r}"] for r in (2, 5, 10, 25, 50)]
    assert values["acc_uniform"] < forward[0] and np.all(np.diff(forward) > 0)
    assert values["acc_uniform"] > backward[0] and np.all(np.diff(backward) < 0)


def test_metric_infos() -> None:
    assert lt.prior_shift_name("forward", 10) == "acc_forward_lt_10"
    assert lt.prior_shift_name("backward", 50) == "acc_backward_lt_50"
    assert lt.prior_shift_name("uniform") == "acc_uniform"
    assert lt.ACC_FORWARD_LT_10.name == "acc_forward_lt_10" and lt.ACC_BACKWARD_LT_2.name == "acc_backward_lt_2"
    assert len(lt.PRIOR_SHIFT_METRICS) == 11
    infos = [
        lt.BALANCED_ACCURACY,
        lt.MANY_SHOT_ACCURACY,
        lt.MEDIUM_SHOT_ACCURACY,
        lt.FEW_SHOT_ACCURACY,
        lt.WORST_CLASS_ACCURACY,
        *lt.PRIOR_SHIFT_METRICS.values(),
    ]
    assert all(info.higher_is_better for info in infos)
    # The registry looks constants up as the upper-cased metric name.
    for info in infos:
        assert getattr(lt, info.name.upper()) is info


@pytest.mark.parametrize(
    ("predictions", "labels", "n_classes", "message"),
    [
        (np.array([0, 1]), np.array([0]), 2, "differ in length"),
        (np.array([0]), np.array([3]), 2, "labels must lie"),
        (np.array([5]), np.array([0]), 2, "predictions must lie"),
        (np.array([0.5]), np.array([0]), 2, "integer class ids"),
        (np.array([], dtype=int), np.array([], dtype=int), 2, "no samples"),
        (np.array([0]), np.array([0]), 0, "n_classes"),
    ],
)
def test_bad_inputs(predictions: np.ndarray, labels: np.ndarray, n_classes: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        lt.per_class_accuracy(predictions, labels, n_classes)
