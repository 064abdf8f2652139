"""Task adapter `calibration`: how well a classifier's confidence matches its accuracy.

On the test split: accuracy, ece (15 equal-width bins), ece_em (15 equal-mass bins), mce,
classwise_ece, brier, nll and aurc, each with a seeded percentile-bootstrap 95% CI over test
samples (the same resamples for every metric). Temperature scaling: T is fitted by NLL on the
held-out `calib` split and reported with ece_ts and nll_ts (test metrics of logits / T; the CI
resamples the test split with T fixed). The reliability-diagram bins before and after scaling are
stored as the run's `reliability` and `reliability_ts` artifacts.
"""

from __future__ import annotations

import numpy as np

from harness.metrics import calibration as cal
from harness.models.base import Capability
from harness.schema import MetricValue, TaskSpec
from harness.stats import Bootstrap
from harness.tasks.base import (
    ExpectedSamples,
    Outcome,
    Request,
    Samples,
    SplitOutputs,
    bootstrap_metric,
    logit_samples,
    plain_metric,
    split_expected,
)

SUMMARY = ("accuracy", "ece", "ece_em", "mce", "classwise_ece", "brier", "nll", "aurc")
SCALED = ("ece_ts", "nll_ts")


class CalibrationAdapter:
    name = "calibration"
    description = "confidence calibration of a classifier: ECE variants, NLL, Brier, AURC, temperature scaling"
    capability = Capability.LOGITS

    def metric_names(self, spec: TaskSpec) -> list[str]:
        return [*SUMMARY, "temperature", *SCALED]

    def requests(self, spec: TaskSpec) -> list[Request]:
        return [Request("classify", "calib"), Request("classify", "test")]

    def label_splits(self, spec: TaskSpec) -> list[str]:
        return ["calib", "test"]

    def expected_samples(self, spec: TaskSpec) -> dict[str, ExpectedSamples]:
        from harness.data import get_split, load_suite

        suite = load_suite(spec.dataset)
        classes = getattr(suite, "n_classes", None)
        return {
            name: split_expected(get_split(suite, name), prefix="logit_", n_classes=classes)
            for name in ("calib", "test")
        }

    def samples(self, spec: TaskSpec, inputs: dict[str, SplitOutputs]) -> list[Samples]:
        return [logit_samples("calib", inputs["calib"]), logit_samples("test", inputs["test"])]

    def score(self, spec: TaskSpec, samples: dict[str, Samples], seed: int) -> Outcome:
        n_bins = int(spec.parameters.get("n_bins", 15))  # type: ignore[arg-type]
        n_resamples = int(spec.parameters.get("n_resamples", 1000))  # type: ignore[arg-type]
        calib, test = samples["calib"], samples["test"]
        logits = test.values.astype(np.float64)
        labels = test.labels
        temperature = cal.fit_temperature(calib.values.astype(np.float64), calib.labels)
        scaled = logits / temperature

        def all_metrics(rows: np.ndarray) -> dict[str, float]:
            values = cal.calibration_summary(logits[rows], labels[rows], n_bins=n_bins)
            values["ece_ts"] = cal.expected_calibration_error(cal.softmax(scaled[rows]), labels[rows], n_bins)
            values["nll_ts"] = cal.negative_log_likelihood(scaled[rows], labels[rows])
            return values

        n = len(labels)
        point = all_metrics(np.arange(n))
        resampled: dict[str, list[float]] = {name: [] for name in point}
        for chunk in Bootstrap(n=n, n_resamples=n_resamples, seed=seed).chunks():
            for rows in chunk:
                for name, value in all_metrics(rows).items():
                    resampled[name].append(value)
        metrics: list[MetricValue] = [
            bootstrap_metric(name, point[name], np.asarray(resampled[name]), n) for name in (*SUMMARY, *SCALED)
        ]
        metrics.append(plain_metric("temperature", temperature, len(calib.labels)))
        return Outcome(
            metrics=metrics,
            artifacts={
                "reliability": cal.reliability_bins(cal.softmax(logits), labels, n_bins),
                "reliability_ts": cal.reliability_bins(cal.softmax(scaled), labels, n_bins),
            },
            parameters={
                "n_bins": n_bins,
                "n_resamples": n_resamples,
                "binning": "equal-width (a, b]; ece_em: equal-mass",
                "temperature_fit": "NLL on the calib split, T in [0.05, 100]",
                "temperature_at_bound": bool(min(abs(np.log(temperature / b)) for b in cal.TEMPERATURE_BOUNDS) < 1e-3),
            },
        )


ADAPTER = CalibrationAdapter()
