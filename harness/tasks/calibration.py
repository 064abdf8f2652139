"""Task adapter `calibration`: how well a classifier's confidence matches its accuracy.

Metrics on the test split, each with a seeded percentile-bootstrap 95% CI over test samples
(the same resamples for every metric): accuracy, ece (15 equal-width bins), nll, brier.
The reliability-diagram bins are stored as the run's `reliability` artifact.
"""

from __future__ import annotations

import numpy as np

from harness.errors import HarnessError
from harness.metrics import calibration as cal
from harness.models.base import Capability
from harness.schema import TaskSpec
from harness.stats import Bootstrap
from harness.tasks.base import Outcome, Request, Samples, SplitOutputs, bootstrap_metric


class CalibrationAdapter:
    name = "calibration"
    description = "confidence calibration of a classifier: ECE, NLL, Brier, accuracy, reliability diagram"
    capability = Capability.LOGITS
    metrics = ("accuracy", "ece", "nll", "brier")

    def requests(self, spec: TaskSpec) -> list[Request]:
        return [Request("classify", "test")]

    def evaluate(self, spec: TaskSpec, inputs: dict[str, SplitOutputs], seed: int) -> Outcome:
        n_bins = int(spec.parameters.get("n_bins", 15))  # type: ignore[arg-type]
        n_resamples = int(spec.parameters.get("n_resamples", 1000))  # type: ignore[arg-type]
        test = inputs["test"]
        logits = test.outputs["logits"].astype(np.float64)
        labels = test.split.y
        if not np.isfinite(logits).all():
            raise HarnessError(
                "the model produced NaN or inf logits on the test split",
                fix="check the checkpoint's weights (a diverged training run?)",
            )
        probs = cal.softmax(logits)
        confidence = probs.max(axis=1)
        correct = (probs.argmax(axis=1) == labels).astype(np.float64)
        bins = cal.equal_width_bin(confidence, n_bins)
        nll = cal.nll_per_sample(logits, labels)
        brier = cal.brier_per_sample(probs, labels)
        n = len(labels)
        boot = Bootstrap(n=n, n_resamples=n_resamples, seed=seed)

        def ece_of(rows: np.ndarray) -> np.ndarray:
            # Vectorised ECE over resamples: bincount over (resample, bin) pairs.
            b = rows.shape[0]
            flat = (np.arange(b)[:, None] * n_bins + bins[rows]).ravel()
            gap = np.bincount(flat, (correct - confidence)[rows].ravel(), minlength=b * n_bins)
            ece: np.ndarray = np.abs(gap.reshape(b, n_bins)).sum(axis=1) / n
            return ece

        metrics = [
            bootstrap_metric("accuracy", float(correct.mean()), boot.mean_distribution(correct), n),
            bootstrap_metric(
                "ece", cal.binned_calibration_gap(confidence, correct, bins, n_bins), boot.distribution(ece_of), n
            ),
            bootstrap_metric("nll", float(nll.mean()), boot.mean_distribution(nll), n),
            bootstrap_metric("brier", float(brier.mean()), boot.mean_distribution(brier), n),
        ]
        samples = Samples(
            split="test",
            ids=list(test.split.ids),
            labels=labels,
            values=logits.astype(np.float32),
            fields=[f"logit_{c}" for c in range(logits.shape[1])],
        )
        return Outcome(
            metrics=metrics,
            samples=[samples],
            artifacts={"reliability": cal.reliability_bins(probs, labels, n_bins)},
            parameters={"n_bins": n_bins, "n_resamples": n_resamples, "binning": "equal-width (a, b]"},
        )


ADAPTER = CalibrationAdapter()
