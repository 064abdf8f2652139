"""OOD metrics and scores against scikit-learn, torchmetrics and brute force, on random and adversarial inputs.

Score convention under test: higher = more in-distribution; ID is the positive class for AUROC and
AUPR-In, OOD (with negated scores) for AUPR-Out; FPR@95TPR accepts score >= t at the largest t that
keeps at least 95% of the ID scores.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch
from auroc_reference import delong_by_midranks
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import logsumexp
from scipy.stats import rankdata
from sklearn.covariance import EmpiricalCovariance
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve
from sklearn.neighbors import NearestNeighbors
from torchmetrics.functional.classification import binary_auroc

from harness.metrics import ood

# ---------------------------------------------------------------------------------------------------------
# References


def labelled(id_scores: np.ndarray, ood_scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.concatenate([np.ones(len(id_scores), dtype=int), np.zeros(len(ood_scores), dtype=int)])
    return y, np.concatenate([id_scores, ood_scores]).astype(np.float64)


def fpr_brute_force(id_scores: np.ndarray, ood_scores: np.ndarray, percent: int) -> float:
    """Scan every candidate threshold; exact integer test of 'keeps >= percent% of ID'."""
    id_list, ood_list = [float(s) for s in id_scores], [float(s) for s in ood_scores]
    best = None
    for t in sorted(set(id_list + ood_list)):
        if 100 * sum(s >= t for s in id_list) >= percent * len(id_list):
            best = t  # ascending scan: the last one kept is the largest
    assert best is not None
    return sum(s >= best for s in ood_list) / len(ood_list)


def fpr_from_roc_curve(id_scores: np.ndarray, ood_scores: np.ndarray, tpr: float) -> float:
    y, s = labelled(id_scores, ood_scores)
    fpr, tprs, _ = roc_curve(y, s, drop_intermediate=False)
    return float(fpr[np.flatnonzero(tprs >= tpr - 1e-12)[0]])  # first (largest) threshold reaching the TPR


def score_pairs() -> list[tuple[str, np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(0)
    cases = []
    for seed in range(4):
        rng = np.random.default_rng(seed)
        cases += [
            (f"normal-{seed}", rng.normal(1, 1, 200), rng.normal(0, 1, 150)),
            (f"integers-{seed}", rng.integers(0, 4, 97).astype(float), rng.integers(0, 4, 61).astype(float)),
            (f"binary-{seed}", rng.integers(0, 2, 40).astype(float), rng.integers(0, 2, 40).astype(float)),
            (f"imbalanced-{seed}", rng.normal(0.5, 1, 3), rng.normal(0, 1, 2000)),
            (f"imbalanced-rev-{seed}", rng.normal(0.5, 1, 2000), rng.normal(0, 1, 3)),
            (f"float32-{seed}", rng.normal(1, 1, 300).astype(np.float32), rng.normal(0, 1, 300).astype(np.float32)),
        ]
    cases += [
        ("constant", np.full(10, 3.0), np.full(7, 3.0)),
        ("single-each", np.array([1.0]), np.array([0.0])),
        ("single-tied", np.array([1.0]), np.array([1.0])),
        ("separated", np.arange(10.0, 30.0), np.arange(0.0, 10.0)),
        ("reversed", np.arange(0.0, 10.0), np.arange(10.0, 30.0)),
        ("one-id-many-ood", np.array([0.5]), rng.normal(size=500)),
        ("tiny-gaps", 1.0 + np.arange(5) * np.finfo(float).eps, 1.0 + np.arange(1, 6) * np.finfo(float).eps),
        ("huge", np.array([1e300, -1e300, 5e299]), np.array([1e300, -5e299])),
        ("signed-zero", np.array([0.0, -0.0, 1.0]), np.array([-0.0, 0.0, -1.0])),
    ]
    return cases


CASES = score_pairs()
IDS = [name for name, _, _ in CASES]


@pytest.mark.parametrize(("name", "id_scores", "ood_scores"), CASES, ids=IDS)
def test_metrics_match_sklearn(name: str, id_scores: np.ndarray, ood_scores: np.ndarray) -> None:
    y, s = labelled(id_scores, ood_scores)
    summary = ood.ood_summary(id_scores, ood_scores)
    assert list(summary) == ["auroc", "aupr_in", "aupr_out", "fpr95"]
    assert summary["auroc"] == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert summary["aupr_in"] == pytest.approx(average_precision_score(y, s), abs=1e-12)
    assert summary["aupr_out"] == pytest.approx(average_precision_score(1 - y, -s), abs=1e-12)
    assert summary["fpr95"] == pytest.approx(fpr_from_roc_curve(id_scores, ood_scores, 0.95), abs=1e-15)
    # The single-metric functions share the pass and give the same numbers.
    assert ood.auroc(id_scores, ood_scores) == summary["auroc"]
    assert ood.aupr_in(id_scores, ood_scores) == summary["aupr_in"]
    assert ood.aupr_out(id_scores, ood_scores) == summary["aupr_out"]
    assert ood.fpr_at_tpr(id_scores, ood_scores) == summary["fpr95"]


@pytest.mark.parametrize(("name", "id_scores", "ood_scores"), [c for c in CASES if len(c[1]) + len(c[2]) <= 400])
@pytest.mark.parametrize("percent", [95, 90, 50, 100, 1])
def test_fpr_matches_a_brute_force_threshold_scan(
    name: str, id_scores: np.ndarray, ood_scores: np.ndarray, percent: int
) -> None:
    expected = fpr_brute_force(id_scores, ood_scores, percent)
    assert ood.fpr_at_tpr(id_scores, ood_scores, tpr=percent / 100) == expected
    assert ood.fpr_at_tpr(id_scores, ood_scores, tpr=percent / 100) == pytest.approx(
        fpr_from_roc_curve(id_scores, ood_scores, percent / 100)
    )


@pytest.mark.parametrize(("name", "id_scores", "ood_scores"), CASES[:12], ids=IDS[:12])
def test_auroc_matches_torchmetrics(name: str, id_scores: np.ndarray, ood_scores: np.ndarray) -> None:
    y, s = labelled(id_scores, ood_scores)
    expected = binary_auroc(torch.as_tensor(s), torch.as_tensor(y)).item()
    assert ood.auroc(id_scores, ood_scores) == pytest.approx(expected, abs=1e-6)  # torchmetrics returns float32


TRANSFORMS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "exp": lambda x: np.exp(x / 4.0),
    "cubic": lambda x: x**3 + 5 * x,
    "affine": lambda x: 3.0 * x - 7.0,
}


@pytest.mark.parametrize("transform", list(TRANSFORMS))
@pytest.mark.parametrize(("name", "id_scores", "ood_scores"), CASES[:12], ids=IDS[:12])
def test_strictly_monotone_transforms_change_nothing(
    transform: str, name: str, id_scores: np.ndarray, ood_scores: np.ndarray
) -> None:
    f = TRANSFORMS[transform]
    id64, ood64 = id_scores.astype(np.float64), ood_scores.astype(np.float64)
    before = ood.ood_summary(id64, ood64)
    assert ood.ood_summary(f(id64), f(ood64)) == pytest.approx(before, abs=1e-12)
    # Dense ranks of the pooled scores: a strictly monotone map onto 1, 2, 3, ...
    ranks = rankdata(np.concatenate([id64, ood64]), method="dense")
    assert ood.ood_summary(ranks[: len(id64)], ranks[len(id64) :]) == pytest.approx(before, abs=1e-12)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=1, max_size=30),
    st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=1, max_size=30),
)
def test_property_auroc_in_unit_interval_and_equal_to_sklearn(id_list: list[float], ood_list: list[float]) -> None:
    id_scores, ood_scores = np.array(id_list), np.array(ood_list)
    y, s = labelled(id_scores, ood_scores)
    summary = ood.ood_summary(id_scores, ood_scores)
    assert 0.0 <= summary["auroc"] <= 1.0
    assert summary["auroc"] == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert summary["aupr_in"] == pytest.approx(average_precision_score(y, s), abs=1e-12)
    assert summary["aupr_out"] == pytest.approx(average_precision_score(1 - y, -s), abs=1e-12)
    # Swapping the roles of ID and OOD mirrors the ROC curve.
    assert ood.auroc(ood_scores, id_scores) == pytest.approx(1.0 - summary["auroc"], abs=1e-12)
    assert summary["fpr95"] == fpr_from_roc_curve(id_scores, ood_scores, 0.95)


def test_known_values() -> None:
    # Docstring examples.
    assert ood.auroc([2.0, 3.0], [1.0, 2.0]) == pytest.approx(0.875)
    assert ood.aupr_in([3.0, 1.0], [2.0]) == pytest.approx(5 / 6)
    assert ood.aupr_out([3.0, 1.0], [2.0]) == pytest.approx(0.5)
    assert ood.fpr_at_tpr(np.arange(1.0, 21.0), [0.5, 2.5]) == pytest.approx(0.5)
    # Constant scores: a coin flip; every OOD sample is accepted.
    constant = ood.ood_summary(np.zeros(5), np.zeros(3))
    assert constant["auroc"] == 0.5 and constant["fpr95"] == 1.0
    assert constant["aupr_in"] == pytest.approx(5 / 8) and constant["aupr_out"] == pytest.approx(3 / 8)
    # All ID above all OOD: perfect; all below: the worst.
    assert ood.ood_summary([5.0, 6.0, 7.0], [1.0, 2.0]) == {"auroc": 1.0, "aupr_in": 1.0, "aupr_out": 1.0, "fpr95": 0.0}
    worst = ood.ood_summary([1.0, 2.0], [5.0, 6.0, 7.0])
    assert worst["auroc"] == 0.0 and worst["fpr95"] == 1.0
    # Ties at the threshold are accepted: 20 ID scores, the 19th largest is 1 and an OOD sample ties with it.
    assert ood.fpr_at_tpr(np.r_[np.ones(2), np.arange(2.0, 20.0)], [1.0, 0.0]) == 0.5


def test_other_tpr_keys_and_bounds() -> None:
    assert list(ood.ood_summary([1.0, 2.0], [0.0], tpr=0.9)) == ["auroc", "aupr_in", "aupr_out", "fpr90"]
    assert "fpr99.5" in ood.ood_summary([1.0, 2.0], [0.0], tpr=0.995)
    for bad in (0.0, 1.5, -0.1):
        with pytest.raises(ValueError, match="tpr"):
            ood.fpr_at_tpr([1.0], [0.0], tpr=bad)


@pytest.mark.parametrize(
    ("id_scores", "ood_scores", "message"),
    [
        ([], [1.0], "id_scores is empty"),
        ([1.0], [], "ood_scores is empty"),
        ([1.0, np.nan], [0.0], "NaN or inf"),
        ([1.0], [np.inf], "NaN or inf"),
        ([[1.0, 2.0]], [0.0], "1-D"),
    ],
)
def test_bad_inputs(id_scores: list[float], ood_scores: list[float], message: str) -> None:
    for fn in (ood.auroc, ood.aupr_in, ood.aupr_out, ood.fpr_at_tpr, ood.ood_summary):
        with pytest.raises(ValueError, match=message):
            fn(np.asarray(id_scores), np.asarray(ood_scores))


def test_metric_infos() -> None:
    assert (ood.AUROC.name, ood.AUROC.higher_is_better) == ("auroc", True)
    assert (ood.AUPR_IN.name, ood.AUPR_IN.higher_is_better) == ("aupr_in", True)
    assert (ood.AUPR_OUT.name, ood.AUPR_OUT.higher_is_better) == ("aupr_out", True)
    assert (ood.FPR95.name, ood.FPR95.higher_is_better) == ("fpr95", False)
    assert ood.FPR95.convention.startswith(
        "FPR@95TPR: share of OOD samples accepted at the threshold that keeps 95% of ID samples; lower is better"
    )


# ---------------------------------------------------------------------------------------------------------
# Scores


def test_logit_scores() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(50, 7)) * 5
    probs = np.exp(logits - logsumexp(logits, axis=1, keepdims=True))
    np.testing.assert_allclose(ood.msp(logits), probs.max(axis=1), rtol=1e-12)
    np.testing.assert_array_equal(ood.max_logit(logits), logits.max(axis=1))
    np.testing.assert_allclose(ood.energy(logits), logsumexp(logits, axis=1), rtol=1e-12)
    np.testing.assert_allclose(ood.energy(logits, temperature=2.5), 2.5 * logsumexp(logits / 2.5, axis=1), rtol=1e-12)
    # Known values and stability.
    assert ood.msp(np.array([[0.0, 0.0]]))[0] == 0.5
    assert ood.energy(np.array([[0.0, 0.0]]))[0] == pytest.approx(np.log(2))
    assert ood.energy(np.array([[1000.0, -1000.0]]))[0] == pytest.approx(1000.0)
    with pytest.raises(ValueError, match="temperature"):
        ood.energy(logits, temperature=0.0)
    with pytest.raises(ValueError, match="NaN or inf"):
        ood.msp(np.array([[np.nan, 1.0]]))


def mahalanobis_reference(train: np.ndarray, labels: np.ndarray, x: np.ndarray) -> np.ndarray:
    classes = sorted(set(labels.tolist()))
    means = np.array([train[labels == c].mean(axis=0) for c in classes])
    centered = np.concatenate([train[labels == c] - means[i] for i, c in enumerate(classes)])
    precision = EmpiricalCovariance(assume_centered=True).fit(centered).precision_
    out = []
    for row in x:
        out.append(-min(float((row - m) @ precision @ (row - m)) for m in means))
    return np.array(out)


def test_mahalanobis_matches_a_loop_with_sklearn_covariance(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    train = rng.normal(size=(300, 6)) + np.repeat(np.eye(6)[:3] * 4, 100, axis=0)
    labels = np.repeat([2, 5, 7], 100)  # non-contiguous class ids
    x = rng.normal(size=(40, 6)) * 2
    means, precision = ood.mahalanobis_fit(train, labels)
    assert means.shape == (3, 6)
    expected = mahalanobis_reference(train, labels, x)
    np.testing.assert_allclose(ood.mahalanobis(x, means, precision), expected, rtol=1e-9, atol=1e-9)
    monkeypatch.setattr(ood, "_BLOCK_CELLS", 7)  # one sample per block
    np.testing.assert_allclose(ood.mahalanobis(x, means, precision), expected, rtol=1e-9, atol=1e-9)
    # Known value: 1-D, means 1 and 11, within-class variance 1.
    means1, precision1 = ood.mahalanobis_fit(np.array([[0.0], [2.0], [10.0], [12.0]]), np.array([0, 0, 1, 1]))
    np.testing.assert_allclose(means1, [[1.0], [11.0]])
    np.testing.assert_allclose(precision1, [[1.0]])
    assert ood.mahalanobis(np.array([[2.0]]), means1, precision1)[0] == pytest.approx(-1.0)


def test_mahalanobis_ignores_directions_without_variance() -> None:
    # A constant extra feature makes the covariance singular; the pseudo-inverse ignores it.
    rng = np.random.default_rng(1)
    train, labels, x = rng.normal(size=(80, 3)), rng.integers(0, 2, 80), rng.normal(size=(10, 3))
    plain = ood.mahalanobis(x, *ood.mahalanobis_fit(train, labels))
    padded_train = np.hstack([train, np.full((80, 1), 5.0)])
    padded_x = np.hstack([x, np.full((10, 1), 5.0)])
    padded = ood.mahalanobis(padded_x, *ood.mahalanobis_fit(padded_train, labels))
    np.testing.assert_allclose(padded, plain, rtol=1e-7, atol=1e-9)
    # More features than samples still gives finite scores.
    wide = ood.mahalanobis(rng.normal(size=(5, 50)), *ood.mahalanobis_fit(rng.normal(size=(10, 50)), np.arange(10) % 2))
    assert np.isfinite(wide).all() and (wide <= 0).all()


def test_knn_matches_sklearn_nearest_neighbours(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    train, x = rng.normal(size=(200, 8)), rng.normal(size=(30, 8)) * 3
    for k in (1, 5, 200):
        distances, _ = NearestNeighbors(n_neighbors=k, metric="cosine").fit(train).kneighbors(x)
        expected = -np.sqrt(2.0 * distances[:, -1])  # cosine distance 1 - cos -> ||a - b||^2 = 2 (1 - cos)
        np.testing.assert_allclose(ood.knn_score(train, x, k), expected, rtol=1e-7, atol=1e-7)
        monkeypatch.setattr(ood, "_BLOCK_CELLS", 450)  # blocks of 2 queries
        np.testing.assert_allclose(ood.knn_score(train, x, k), expected, rtol=1e-7, atol=1e-7)
        monkeypatch.undo()
    # Known values: an exact match scores 0; the 2nd neighbour is orthogonal.
    np.testing.assert_allclose(ood.knn_score(np.eye(2), np.array([[3.0, 0.0]]), 1), [0.0])
    np.testing.assert_allclose(ood.knn_score(np.eye(2), np.array([[3.0, 0.0]]), 2), [-np.sqrt(2)])
    for bad in (0, 201, 2.5):
        with pytest.raises(ValueError, match="k must be"):
            ood.knn_score(train, x, bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="dimensions"):
        ood.knn_score(train, x[:, :3], 1)


def test_scores_feed_the_metrics_in_the_right_direction() -> None:
    # Confident (peaked) logits are ID, flat ones OOD: every logit score ranks them perfectly.
    rng = np.random.default_rng(0)
    id_logits = rng.normal(size=(100, 5)) + np.eye(5)[rng.integers(0, 5, 100)] * 10
    ood_logits = rng.normal(size=(100, 5)) * 0.1
    for score in (ood.msp, ood.max_logit, ood.energy):
        assert ood.auroc(score(id_logits), score(ood_logits)) == 1.0


@pytest.mark.parametrize("seed", range(6))
def test_resampled_summary_equals_summary_of_each_resample(seed: int) -> None:
    from harness.metrics.ood import ood_summary, ood_summary_resampled
    from harness.stats import stratified_counts, stratified_resamples

    rng = np.random.default_rng(seed)
    n_id, n_ood = int(rng.integers(1, 40)), int(rng.integers(1, 40))
    # Rounded scores give many ties, the hard case for run-based formulas.
    id_scores = np.round(rng.normal(1.0, 1.0, n_id), 1)
    ood_scores = np.round(rng.normal(0.0, 1.0, n_ood), 1)
    id_counts, ood_counts = stratified_counts([n_id, n_ood], n_resamples=40, seed=seed)
    batched = ood_summary_resampled(id_scores, ood_scores, id_counts, ood_counts)
    for b, (id_rows, ood_rows) in enumerate(stratified_resamples([n_id, n_ood], n_resamples=40, seed=seed)):
        expected = ood_summary(id_scores[id_rows], ood_scores[ood_rows])
        for name, value in expected.items():
            assert batched[name][b] == pytest.approx(value, abs=1e-12), (name, b)


@pytest.mark.parametrize("seed", range(6))
def test_auroc_variance_is_delongs_of_the_sample_and_of_each_resample(seed: int) -> None:
    from harness.metrics.ood import auroc_variance
    from harness.stats import stratified_counts, stratified_resamples

    rng = np.random.default_rng(seed)
    sizes = [int(rng.integers(1, 30)) for _ in range(3)]
    # rounded scores: many ties within and across the sets; one set may hold a single sample
    id_scores = np.round(rng.normal(1.5, 1.0, sizes[0]), 1)
    sets = [np.round(rng.normal(0.0, 1.0, size), 1) for size in sizes[1:]]
    weights = [float(w) for w in rng.dirichlet([1.0, 1.0])]
    assert auroc_variance(id_scores, sets, weights)[0] == pytest.approx(
        delong_by_midranks(id_scores, sets, weights), rel=1e-10, abs=1e-15
    )
    counts = stratified_counts(sizes, n_resamples=30, seed=seed)
    batched = auroc_variance(id_scores, sets, weights, counts[0], counts[1:])
    for b, rows in enumerate(stratified_resamples(sizes, n_resamples=30, seed=seed)):
        expected = delong_by_midranks(id_scores[rows[0]], [s[r] for s, r in zip(sets, rows[1:], strict=True)], weights)
        assert batched[b] == pytest.approx(expected, rel=1e-10, abs=1e-15), b


def test_auroc_variance_of_a_single_set_is_the_variance_of_roc_auc_by_simulation() -> None:
    """DeLong's variance estimates the sampling variance of AUROC: the mean estimate over many samples
    is within 10% of the variance of sklearn's AUROC across them."""
    from harness.metrics.ood import auroc_variance

    rng = np.random.default_rng(0)
    aurocs, variances = [], []
    for _ in range(600):
        id_scores, ood_scores = rng.normal(1.5, 1.0, 60), rng.normal(0.0, 1.0, 40)
        truth = np.r_[np.ones(60), np.zeros(40)]
        aurocs.append(roc_auc_score(truth, np.r_[id_scores, ood_scores]))
        variances.append(auroc_variance(id_scores, [ood_scores], [1.0])[0])
    assert np.mean(variances) == pytest.approx(np.var(aurocs, ddof=1), rel=0.1)


def test_auroc_variance_rejects_mismatched_weights() -> None:
    from harness.metrics.ood import auroc_variance

    with pytest.raises(ValueError, match="one weight per OOD set"):
        auroc_variance(np.zeros(3), [np.zeros(2)], [0.5, 0.5])
