"""Task adapter `ood`: out-of-distribution detection scores and their metrics.

Score convention: higher = more in-distribution. Scores: msp, max_logit, energy (T = 1) from
the logits; mahalanobis (class means and a shared covariance of the training features) and knn
(cosine, k = `knn_k`) from penultimate features, when the model exposes them and the dataset
has a `train` split to fit on (optional: without either, they are skipped and the run's `notes`
parameter says so).

Metrics per OOD set and score: auroc, aupr_in (ID positive), aupr_out (OOD positive),
fpr95 (share of OOD samples accepted at the threshold that keeps 95% of ID samples; lower is
better). Names are `<metric>.<score>.<set>`; the sets are the spec's `near_ood` and `far_ood`
lists, plus the averages `near`, `far` and `mean` (the mean of the near and far averages).
CIs: stratified bootstrap (ID and each OOD set resampled separately, same resamples for all); AUROC's
joins the bias-corrected interval with a bootstrap-t of DeLong standard errors on the log distance to
the bound (`harness.intervals.studentized_auroc_interval`: near 1 the percentile-type interval is too
narrow), the others are bias-corrected; Wilson over pairs when every resample separates perfectly.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from harness.errors import HarnessError
from harness.intervals import studentized_auroc_interval
from harness.metrics import ood as ood_metrics
from harness.models.base import Capability
from harness.schema import CiMethod, MetricValue, TaskSpec
from harness.stats import stratified_counts
from harness.tasks.base import (
    ExpectedSamples,
    Outcome,
    Request,
    Samples,
    SplitOutputs,
    bootstrap_metric,
    logit_samples,
    require_labels,
    split_expected,
)

METRICS = ("auroc", "aupr_in", "aupr_out", "fpr95")
LOGIT_SCORES = ("msp", "max_logit", "energy")
FEATURE_SCORES = ("mahalanobis", "knn")
ROC_GRID = np.linspace(0.0, 1.0, 101)


def _names(spec: TaskSpec, key: str) -> list[str]:
    value = spec.parameters.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise HarnessError(f"parameter {key!r} must be a list of split names", where=f"task {spec.name}")
    return [str(v) for v in value]


class OODAdapter:
    name = "ood"
    description = "OOD detection: MSP, MaxLogit, Energy, Mahalanobis, KNN scores; AUROC, AUPR-In/Out, FPR@95TPR"
    capability = Capability.LOGITS

    def scores(self, spec: TaskSpec) -> list[str]:
        requested = spec.parameters.get("scores", [*LOGIT_SCORES, *FEATURE_SCORES])
        assert isinstance(requested, list)
        unknown = [s for s in requested if s not in (*LOGIT_SCORES, *FEATURE_SCORES)]
        if unknown:
            raise HarnessError(
                f"unknown OOD score(s) {unknown}", where=f"task {spec.name}", fix=f"use {LOGIT_SCORES + FEATURE_SCORES}"
            )
        return [str(s) for s in requested]

    def sets(self, spec: TaskSpec) -> dict[str, str]:
        """OOD split name -> group ("near" or "far")."""
        return {**{s: "near" for s in _names(spec, "near_ood")}, **{s: "far" for s in _names(spec, "far_ood")}}

    def metric_names(self, spec: TaskSpec) -> list[str]:
        groups = sorted(set(self.sets(spec).values()))
        columns = [*self.sets(spec), *groups, "mean"]
        return [f"{m}.{s}.{c}" for m in METRICS for s in self.scores(spec) for c in columns]

    def requests(self, spec: TaskSpec) -> list[Request]:
        # feature statistics for mahalanobis and knn: optional (without a train split, or features, the
        # feature-based scores are skipped with a note)
        fitting = [Request("classify", "train", whole=True, optional=True, needs=Capability.FEATURES)]
        wanted = fitting if set(self.scores(spec)) & set(FEATURE_SCORES) else []
        return wanted + [Request("classify", split) for split in ["test", *self.sets(spec)]]

    def check_splits(self, spec: TaskSpec, splits: dict[str, Any]) -> None:
        """Before any model loads: at least one OOD set, and a labelled train split (class means) if any."""
        if not self.sets(spec):
            raise HarnessError(
                "no OOD set: parameters near_ood and far_ood are both empty",
                where=f"task {spec.name}",
                fix="list the dataset's OOD splits in parameters.near_ood and/or parameters.far_ood",
            )
        if "train" in splits:
            require_labels(splits["train"], "train", spec.name, "Mahalanobis class means are fitted on it")

    def expected_samples(self, spec: TaskSpec) -> dict[str, ExpectedSamples]:
        """The test split and every OOD set (labels -1); scores as requested, or the logit-based ones
        alone for models without features."""
        from harness.data import get_split, load_suite

        suite = load_suite(spec.dataset)
        scores = self.scores(spec)
        options = (tuple(scores), tuple(s for s in scores if s in LOGIT_SCORES))
        return {
            split: split_expected(get_split(suite, split), fields_options=options)
            for split in ["test", *self.sets(spec)]
        }

    def samples(self, spec: TaskSpec, inputs: dict[str, SplitOutputs]) -> list[Samples]:
        """Per split (test and each OOD set): every score of every sample (label -1 for OOD)."""
        k = int(spec.parameters.get("knn_k", 10))  # type: ignore[arg-type]
        splits = ["test", *self.sets(spec)]
        has_features = "train" in inputs and all("features" in inputs[s].outputs for s in ("train", *splits))
        scores = [s for s in self.scores(spec) if s in LOGIT_SCORES or has_features]
        values = self._score_splits(inputs, splits, scores, k)
        return [
            Samples(
                split=split,
                ids=list(inputs[split].split.ids),
                labels=np.asarray(inputs[split].split.y, dtype=np.int64),
                values=np.stack([values[split][s] for s in scores], axis=1).astype(np.float64),
                fields=list(scores),
            )
            for split in splits
        ]

    def score(self, spec: TaskSpec, samples: dict[str, Samples], seed: int) -> Outcome:
        n_resamples = int(spec.parameters.get("n_resamples", 1000))  # type: ignore[arg-type]
        sets = self.sets(spec)
        set_names = list(sets)
        scores = samples["test"].fields
        columns = {
            split: {score: samples[split].values[:, i].astype(np.float64) for i, score in enumerate(scores)}
            for split in ["test", *set_names]
        }
        id_scores = columns["test"]
        groups = {g: [s for s in set_names if sets[s] == g] for g in sorted(set(sets.values()))}

        sizes = [len(samples[s].ids) for s in ["test", *set_names]]
        # n of a per-set metric: the ID test samples and that set's (resampled separately, independent);
        # of a group or the mean: the ID samples and every set averaged into it
        units = {name: sizes[0] + size for name, size in zip(set_names, sizes[1:], strict=True)}
        units |= {g: sizes[0] + sum(units[m] - sizes[0] for m in members) for g, members in groups.items()}
        units["mean"] = sum(sizes)
        # Each name's metric as a weighted sum of the sets' (a set alone, a group's mean, the mean of the
        # groups): its sets for intervals at perfect separation (`_units_at_bound`), its weights for AUROC's
        set_weights = {name: {name: 1.0} for name in set_names}
        set_weights |= {g: {m: 1.0 / len(ms) for m in ms} for g, ms in groups.items()}
        set_weights["mean"] = {m: 1.0 / (len(groups) * len(ms)) for ms in groups.values() for m in ms}
        members = {name: list(weights) for name, weights in set_weights.items()}
        set_size = dict(zip(set_names, sizes[1:], strict=True))
        counts = stratified_counts(sizes, n_resamples, seed)
        metrics: list[MetricValue] = []
        for score in scores:
            # Point values, then every bootstrap resample at once (ID and each OOD set resampled separately).
            point = {name: ood_metrics.ood_summary(id_scores[score], columns[name][score]) for name in set_names}
            resampled = {
                name: ood_metrics.ood_summary_resampled(id_scores[score], columns[name][score], counts[0], ood_counts)
                for name, ood_counts in zip(set_names, counts[1:], strict=True)
            }
            for metric in METRICS:
                values = {name: (point[name][metric], resampled[name][metric]) for name in set_names}
                group_values = {
                    group: (
                        float(np.mean([values[m][0] for m in members])),
                        np.mean([values[m][1] for m in members], axis=0),
                    )
                    for group, members in groups.items()
                }
                values |= group_values
                values["mean"] = (
                    float(np.mean([v[0] for v in group_values.values()])),
                    np.mean([v[1] for v in group_values.values()], axis=0),
                )
                for name, (value, distribution) in values.items():
                    interval, ci_range = None, None
                    if metric == "auroc":
                        parts = members[name]
                        interval, ci_range = auroc_interval(
                            value, distribution, id_scores[score], [columns[m][score] for m in parts],
                            list(set_weights[name].values()), counts[0], [counts[1 + set_names.index(m)] for m in parts],
                        )  # fmt: skip
                    metrics.append(
                        bootstrap_metric(
                            f"{metric}.{score}.{name}", value, distribution, units[name], "ID + OOD samples",
                            units_at_bound=_units_at_bound(metric, sizes[0], [set_size[m] for m in members[name]]),
                            interval=interval, ci_range=ci_range,
                        )
                    )  # fmt: skip
        return Outcome(
            metrics=metrics,
            artifacts={"roc": self._roc_curves(id_scores, columns, set_names, scores), "ood_groups": sets},
            parameters={
                "scores": list(scores),
                "knn_k": int(spec.parameters.get("knn_k", 10)),  # type: ignore[arg-type]
                "n_resamples": n_resamples,
                "score_convention": "higher = more in-distribution",
                "fpr95": "share of OOD accepted at the threshold keeping 95% of ID",
                "skipped_scores": [s for s in self.scores(spec) if s not in scores],
                **(
                    {"notes": [_skipped_note(self.scores(spec), scores)]}
                    if len(scores) < len(self.scores(spec))
                    else {}
                ),
            },
        )

    def _score_splits(
        self, inputs: dict[str, SplitOutputs], splits: list[str], scores: list[str], k: int
    ) -> dict[str, dict[str, np.ndarray]]:
        """score name -> values, for each split (features statistics come from the train split)."""
        fitted: dict[str, Any] = {}
        if "mahalanobis" in scores:
            train = inputs["train"]
            fitted["mahalanobis"] = ood_metrics.mahalanobis_fit(train.outputs["features"], train.split.y)
        values: dict[str, dict[str, np.ndarray]] = {}
        for split in splits:
            logits = logit_samples(split, inputs[split]).values.astype(np.float64)
            out: dict[str, np.ndarray] = {}
            for score in scores:
                if score == "msp":
                    out[score] = ood_metrics.msp(logits)
                elif score == "max_logit":
                    out[score] = ood_metrics.max_logit(logits)
                elif score == "energy":
                    out[score] = ood_metrics.energy(logits)
                elif score == "mahalanobis":
                    means, precision = fitted["mahalanobis"]
                    out[score] = ood_metrics.mahalanobis(inputs[split].outputs["features"], means, precision)
                elif score == "knn":
                    out[score] = ood_metrics.knn_score(
                        inputs["train"].outputs["features"], inputs[split].outputs["features"], k
                    )
            values[split] = {name: np.asarray(v, dtype=np.float64) for name, v in out.items()}
        return values

    def _roc_curves(
        self,
        id_scores: dict[str, np.ndarray],
        score_values: dict[str, dict[str, np.ndarray]],
        set_names: list[str],
        scores: list[str],
    ) -> dict[str, Any]:
        """TPR (share of ID kept) at 101 evenly spaced FPRs (share of OOD accepted), per score and set."""
        from sklearn.metrics import roc_curve  # imported here: loading sklearn costs every command ~0.6 s

        curves: dict[str, dict[str, list[float]]] = {}
        for score in scores:
            curves[score] = {}
            for name in set_names:
                ood = score_values[name][score]
                truth = np.r_[np.ones(len(id_scores[score])), np.zeros(len(ood))]
                fpr, tpr, _ = roc_curve(truth, np.r_[id_scores[score], ood])
                curves[score][name] = np.round(np.interp(ROC_GRID, fpr, tpr), 5).tolist()
        return {"fpr": ROC_GRID.round(2).tolist(), "tpr": curves}


def _skipped_note(requested: list[str], scored: list[str]) -> str:
    skipped = [s for s in requested if s not in scored]
    return (
        f"{', '.join(skipped)} skipped: feature-based scores need penultimate features from the model on a "
        "train split of the dataset (no train split, or the model or predictions file has no features for it)"
    )


def auroc_interval(
    point: float,
    distribution: np.ndarray,
    id_scores: np.ndarray,
    sets: list[np.ndarray],
    weights: list[float],
    id_counts: np.ndarray,
    set_counts: list[np.ndarray],
    errors: tuple[float, np.ndarray] | None = None,
) -> tuple[tuple[float, float, CiMethod] | None, tuple[float, float, float, float] | None]:
    """The interval of an AUROC that is the weighted sum `weights` of the AUROCs of ID against `sets`, and
    its float-rounding range (harness.intervals.studentized_auroc_interval): DeLong standard errors of the
    sample and of every resample (`id_counts`, `set_counts`: multiplicities, as `stratified_counts`;
    `errors`: those two when already computed, as `auroc_errors` gives them); pairs n_ID x the smallest
    set's size. (None, None) when every resample equals the point (perfect separation):
    `bootstrap_metric` then gives Wilson's interval of the pairs."""
    if np.all(distribution == point):
        return None, None
    stderr, stderrs = errors or auroc_errors(id_scores, sets, weights, id_counts, set_counts)
    pairs = id_scores.size * min(s.size for s in sets)
    (low, high), ci_range = studentized_auroc_interval(point, stderr, distribution, stderrs, pairs)
    return (low, high, "bc-studentized"), ci_range


def auroc_errors(
    id_scores: np.ndarray,
    sets: list[np.ndarray],
    weights: list[float],
    id_counts: np.ndarray,
    set_counts: list[np.ndarray],
) -> tuple[float, np.ndarray]:
    """DeLong's standard error of the weighted AUROC of the sample, and of every resample (multiplicities)."""
    stderr = float(np.sqrt(ood_metrics.auroc_variance(id_scores, sets, weights)[0]))
    return stderr, np.sqrt(ood_metrics.auroc_variance(id_scores, sets, weights, id_counts, set_counts))


def _units_at_bound(metric: str, n_id: int, set_sizes: list[int]) -> int | None:
    """Independent units behind an OOD metric whose every resample equals 0 or 1 (perfect separation):
    for AUROC, min(n_id, n_set) disjoint (ID, OOD) pairs, each an independent Bernoulli(AUROC) trial
    (the smallest set's count for an average over sets); for FPR@95, the OOD samples accepted at the
    threshold (a proportion of the smallest set). AUPR has no such units: its interval stays at the
    point, and the app says that every resample separated the sets perfectly."""
    if metric == "auroc":
        return min(min(n_id, size) for size in set_sizes)
    if metric == "fpr95":
        return min(set_sizes)
    return None


ADAPTER = OODAdapter()
