"""Task adapter `longtail`: recognition under a long-tailed training distribution.

Evaluated on a class-balanced test split. Classes are grouped by their number of training
samples in the suite's train split: many-shot (> `many_shot_min`), medium-shot
(`few_shot_max` to `many_shot_min`, inclusive) and few-shot (< `few_shot_max`); the thresholds
are task parameters and are recorded with every run.

Metrics: balanced_accuracy (mean per-class accuracy), many/medium/few_shot_accuracy,
worst_class_accuracy, and test-agnostic accuracy (SADE protocol) under test class priors
pi: acc_uniform, acc_forward_lt_<r> and acc_backward_lt_<r> for each ratio r in `test_ratios`,
computed as sum_c pi_c * acc_c with classes ordered by training frequency (head first).
CIs: bootstrap that resamples test samples within each class. Per-class accuracies and shot
groups are stored as the `per_class` artifact.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from harness.data import load_suite
from harness.errors import HarnessError
from harness.metrics import longtail as lt
from harness.models.base import Capability
from harness.schema import MetricValue, TaskSpec
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

GROUP_METRICS = (
    "balanced_accuracy",
    "many_shot_accuracy",
    "medium_shot_accuracy",
    "few_shot_accuracy",
    "worst_class_accuracy",
)


def _ratios(spec: TaskSpec) -> list[float]:
    ratios = spec.parameters.get("test_ratios", [2, 5, 10, 25, 50])
    assert isinstance(ratios, list)
    return [float(r) for r in ratios]  # type: ignore[arg-type]


class LongTailAdapter:
    name = "longtail"
    description = "long-tailed recognition: many/medium/few-shot, balanced, worst-class and test-agnostic accuracy"
    capability = Capability.LOGITS

    def metric_names(self, spec: TaskSpec) -> list[str]:
        agnostic = [f"acc_{d}_lt_{r:g}" for d in ("forward", "backward") for r in _ratios(spec)]
        return [*GROUP_METRICS, "acc_uniform", *agnostic]

    def requests(self, spec: TaskSpec) -> list[Request]:
        return [Request("classify", "test")]

    def label_splits(self, spec: TaskSpec) -> list[str]:
        return ["test"]

    def check_splits(self, spec: TaskSpec, splits: dict[str, Any]) -> None:
        """Before any model loads: a labelled test split, and a labelled train split for the shot groups."""
        from harness.data import has_split

        require_labels(splits["test"], "test", spec.name, "per-class accuracy")
        suite = load_suite(spec.dataset)
        if not has_split(suite, "train"):
            raise HarnessError(
                "longtail groups classes by their training counts, but the dataset has no train split",
                where=getattr(splits["test"], "source", "") or f"dataset {spec.dataset.name}",
                fix="add a train split; its labels are enough (e.g. train.csv with a label column)",
            )
        require_labels(suite.split("train"), "train", spec.name, "the shot groups count its labels")

    def expected_samples(self, spec: TaskSpec) -> dict[str, ExpectedSamples]:
        from harness.data import get_split

        suite = load_suite(spec.dataset)
        classes = getattr(suite, "n_classes", None)
        return {"test": split_expected(get_split(suite, "test"), prefix="logit_", n_classes=classes)}

    def samples(self, spec: TaskSpec, inputs: dict[str, SplitOutputs]) -> list[Samples]:
        return [logit_samples("test", inputs["test"])]

    def score(self, spec: TaskSpec, samples: dict[str, Samples], seed: int) -> Outcome:
        many = int(spec.parameters.get("many_shot_min", 100))  # type: ignore[arg-type]
        few = int(spec.parameters.get("few_shot_max", 20))  # type: ignore[arg-type]
        n_resamples = int(spec.parameters.get("n_resamples", 1000))  # type: ignore[arg-type]
        suite = load_suite(spec.dataset)
        train_counts = suite.train_counts()
        n_classes = int(suite.n_classes)
        test = samples["test"]
        labels = test.labels
        predictions = test.values.argmax(axis=1)
        groups = lt.shot_groups(train_counts, many=many, few=few)
        ratios = tuple(_ratios(spec))

        correct = (predictions == labels).astype(np.float64)
        by_class = [np.flatnonzero(labels == c) for c in range(n_classes)]
        present = [c for c in range(n_classes) if len(by_class[c])]
        # Per-class accuracy of the test split (point) and of every resample at once: resampling
        # within each class keeps the class sizes, so accuracy_c = counts_c @ correct_c / n_c.
        counts = stratified_counts([len(by_class[c]) for c in present], n_resamples, seed)
        accuracy = np.full((n_resamples + 1, n_classes), np.nan)
        for c, class_counts in zip(present, counts, strict=True):
            members = correct[by_class[c]]
            accuracy[0, c] = members.mean()
            accuracy[1:, c] = class_counts @ members / len(members)
        # Test-agnostic priors rank classes by training frequency, head first; absent classes drop out.
        priors = {
            lt.prior_shift_name("uniform"): np.full(n_classes, 1.0 / n_classes),
            **{
                lt.prior_shift_name(order, r): lt.long_tailed_prior(n_classes, r, order, train_counts)
                for order in ("forward", "backward")
                for r in ratios
            },
        }
        # the test samples behind each metric: an accuracy of exactly 1 (or 0) on every resample gets the
        # Wilson interval of those samples rather than a zero-width one
        behind: dict[str, int] = {"worst_class_accuracy": min(len(by_class[c]) for c in present)}
        values: dict[str, np.ndarray] = {
            "balanced_accuracy": np.nanmean(accuracy, axis=1),
            "worst_class_accuracy": np.nanmin(accuracy, axis=1),
        }
        for group in ("many", "medium", "few"):
            members = [c for c in groups[group] if c in present]
            if members:  # a shot group with no classes reports nothing
                values[f"{group}_shot_accuracy"] = accuracy[:, members].mean(axis=1)
                behind[f"{group}_shot_accuracy"] = sum(len(by_class[c]) for c in members)
        for name, prior in priors.items():
            weights = prior[present] / prior[present].sum()
            values[name] = accuracy[:, present] @ weights
        metrics: list[MetricValue] = [
            bootstrap_metric(name, float(v[0]), v[1:], len(labels), units_at_bound=behind.get(name, len(labels)))
            for name, v in values.items()
        ]
        per_class = lt.per_class_accuracy(predictions, labels, n_classes)
        artifacts: dict[str, Any] = {
            "per_class": {
                # a class absent from the test split has no accuracy: null, not NaN (JSON has no NaN)
                "accuracy": [None if np.isnan(a) else float(a) for a in per_class],
                "train_count": train_counts.tolist(),
                "group": [next(g for g in ("many", "medium", "few") if c in groups[g]) for c in range(n_classes)],
            }
        }
        return Outcome(
            metrics=metrics,
            artifacts=artifacts,
            parameters={
                "many_shot_min": many,
                "few_shot_max": few,
                "test_ratios": [float(r) for r in _ratios(spec)],
                "n_resamples": n_resamples,
                "shot_groups": "many: > many_shot_min; medium: few_shot_max..many_shot_min; few: < few_shot_max",
            },
        )


ADAPTER = LongTailAdapter()
