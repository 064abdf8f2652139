"""Task adapter `calibration`: how well a classifier's confidence matches its accuracy.

On the test split: accuracy, ece (15 equal-width bins), ece_em (15 equal-mass bins), mce,
classwise_ece, brier, nll and aurc, each with a seeded bootstrap 95% CI over test samples (the
same resamples for every metric): Wilson for accuracy, the debiased bootstrap for the gap metrics
(ece, ece_em, mce, classwise_ece, ece_ts; ece's interval reaches 0 when the noise-floor test does
not reject "calibrated"; ece's and ece_ts's resamples are spread by `cal.ece_spread`, as a debiased
ece varies more than the plug-in), the bias-corrected bootstrap otherwise. Temperature scaling: T is fitted by NLL on the
held-out `calib` split and reported with ece_ts and nll_ts (test metrics of logits / T; the CI
resamples the test split with T fixed). The reliability-diagram bins before and after scaling are
stored as the run's `reliability` and `reliability_ts` artifacts. The calib split is optional:
without it (or without its predictions) temperature scaling is skipped and the run's `notes`
parameter says so; temperature, ece_ts, nll_ts and `reliability_ts` are then absent.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray

from harness.errors import HarnessError
from harness.intervals import debiased_interval, debiased_range, studentized_interval
from harness.metrics import calibration as cal
from harness.models.base import Capability
from harness.schema import CiMethod, MetricValue, Scalar, TaskSpec
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
    require_labels,
    split_expected,
)

SUMMARY = ("accuracy", "ece", "ece_em", "mce", "classwise_ece", "brier", "nll", "aurc")
#: the ece's bias and noise: a debiased estimator, the floor of a calibrated model, a p-value
ECE_NOISE = ("ece_sq_debiased", "ece_noise_floor", "ece_calibrated_p")
SCALED = ("ece_ts", "nll_ts")
NO_CALIB_NOTE = (
    "temperature scaling skipped (no temperature, ece_ts, nll_ts): no calib split in the dataset or the predictions"
)
#: statistics of absolute confidence gaps, biased upwards by sampling noise: intervals by
#: `harness.intervals.debiased_interval` (bench/uncertainty.py measures their coverage)
GAP_METRICS = ("ece", "ece_em", "mce", "classwise_ece", "ece_ts")
#: ece's interval reaches 0 when the noise-floor test's p-value of "calibrated" exceeds this
CALIBRATED_ALPHA = 0.05


class CalibrationAdapter:
    name = "calibration"
    description = "confidence calibration of a classifier: ECE variants, NLL, Brier, AURC, temperature scaling"
    capability = Capability.LOGITS

    def metric_names(self, spec: TaskSpec) -> list[str]:
        return [*SUMMARY, "temperature", *SCALED, *ECE_NOISE]

    def requests(self, spec: TaskSpec) -> list[Request]:
        # without a calib split (or its predictions) temperature scaling is skipped, with a note
        return [Request("classify", "calib", optional=True), Request("classify", "test")]

    def check_splits(self, spec: TaskSpec, splits: dict[str, Any]) -> None:
        """Before any model loads: labelled splits, and a calib split when the main metric needs one."""
        for name, split in splits.items():
            require_labels(split, name, spec.name, "calibration compares confidences with labels")
        if "calib" not in splits and spec.main_metric in (*SCALED, "temperature"):
            raise HarnessError(
                f"main_metric {spec.main_metric!r} needs temperature scaling, but the dataset has no calib split",
                where=f"task {spec.name}",
                fix="add a calib split (held-out labelled samples) or rank by ece",
            )

    def label_splits(self, spec: TaskSpec) -> list[str]:
        return ["calib", "test"]

    def expected_samples(self, spec: TaskSpec) -> dict[str, ExpectedSamples]:
        from harness.data import get_split, has_split, load_suite

        suite = load_suite(spec.dataset)
        classes = getattr(suite, "n_classes", None)
        return {
            name: split_expected(get_split(suite, name), prefix="logit_", n_classes=classes, optional=name == "calib")
            for name in ("calib", "test")
            if name == "test" or has_split(suite, name)
        }

    def samples(self, spec: TaskSpec, inputs: dict[str, SplitOutputs]) -> list[Samples]:
        return [logit_samples(name, inputs[name]) for name in ("calib", "test") if name in inputs]

    def score(self, spec: TaskSpec, samples: dict[str, Samples], seed: int) -> Outcome:
        n_bins = int(spec.parameters.get("n_bins", 15))  # type: ignore[arg-type]
        n_resamples = int(spec.parameters.get("n_resamples", 1000))  # type: ignore[arg-type]
        calib, test = samples.get("calib"), samples["test"]
        logits = test.values.astype(np.float64)
        labels = test.labels
        # no calib samples: no temperature scaling (temperature, ece_ts, nll_ts left out, with a note)
        temperature = None if calib is None else cal.fit_temperature(calib.values.astype(np.float64), calib.labels)
        scaled = None if temperature is None else logits / temperature

        # per-sample terms (confidence, correctness, nll, brier) for the point's extras and every resample
        terms = cal.SampleTerms.of(logits, labels)
        scaled_terms = None if scaled is None else cal.SampleTerms.of(scaled, labels)
        confidence, correct = terms.confidence, terms.correct

        def all_metrics() -> dict[str, float]:
            values = cal.calibration_summary(logits, labels, n_bins=n_bins)
            if scaled is not None and scaled_terms is not None:
                values["ece_ts"] = cal.expected_calibration_error(scaled_terms.probs, labels, n_bins)
                values["nll_ts"] = cal.negative_log_likelihood(scaled, labels)
            values["ece_sq_debiased"] = cal.debiased_squared_ece(confidence, correct, n_bins)
            return values

        n = len(labels)
        point = all_metrics()
        # Every resample at once: a resample is a weight per sample, the metrics weighted sums of
        # per-sample terms (cal.resampled_calibration equals the metrics on the drawn rows to float rounding).
        resampled: dict[str, list[float]] = {name: [] for name in point}
        squared_errors: list[float] = []  # the standard error of each resample's ece_sq_debiased
        # the ece's and ece_ts's resamples minus their normal-model bias: how much a debiased ece varies
        normal: dict[str, list[float]] = {"ece": [], "ece_ts": []}
        for weights in Bootstrap(n=n, n_resamples=n_resamples, seed=seed).count_chunks():
            values_of = cal.resampled_calibration(weights, terms, n_bins)
            squared_errors.extend(values_of.pop("ece_sq_debiased_se").tolist())
            for name, values in values_of.items():
                resampled[name].extend(values.tolist())
            normal["ece"].extend(cal.normal_debiased_ece(weights, confidence, correct, n_bins).tolist())
            if scaled_terms is not None:
                scaled_values = cal.resampled_calibration(weights, scaled_terms, n_bins, only=("ece", "nll"))
                resampled["ece_ts"].extend(scaled_values["ece"].tolist())
                resampled["nll_ts"].extend(scaled_values["nll"].tolist())
                normal["ece_ts"].extend(
                    cal.normal_debiased_ece(weights, scaled_terms.confidence, scaled_terms.correct, n_bins).tolist()
                )
        # The debiased estimator's resamples centre on the sample's plug-in squared gap (their bootstrap
        # world's truth), not on the point: its interval is studentized about the plug-in, and the
        # resamples kept for the ranks are shifted by (point - plug-in) to centre on the point.
        plug_in = cal.squared_gap(confidence, correct, n_bins)
        squared_interval = squared_ece_interval(
            point["ece_sq_debiased"],
            plug_in,
            cal.debiased_squared_ece_stderr(confidence, correct, n_bins),
            np.asarray(resampled["ece_sq_debiased"]),
            np.asarray(squared_errors),
        )
        shift = point["ece_sq_debiased"] - plug_in
        resampled["ece_sq_debiased"] = [value + shift for value in resampled["ece_sq_debiased"]]
        floor, p_calibrated = cal.ece_noise_floor(confidence, point["ece"], n_bins, n_resamples, seed)
        metrics: list[MetricValue] = []
        for name in (m for m in (*SUMMARY, *SCALED, "ece_sq_debiased") if m in point):
            distribution = np.asarray(resampled[name])
            interval: tuple[float, float, CiMethod] | None = None
            ci_range = None
            if name in GAP_METRICS:  # upward-biased: the debiased interval; for ece 0 when calibration is plausible
                zero_plausible = name == "ece" and p_calibrated > CALIBRATED_ALPHA
                spread = cal.ece_spread(distribution, np.asarray(normal[name])) if normal.get(name) else 1.0
                low, high = debiased_interval(point[name], distribution, zero_plausible=zero_plausible, spread=spread)
                interval = (low, high, "debiased-bootstrap")
                ci_range = debiased_range(point[name], distribution, zero_plausible=zero_plausible, spread=spread)
            elif name == "ece_sq_debiased":
                interval = squared_interval  # None: no spread to studentize by, the bias-corrected interval
            metrics.append(
                bootstrap_metric(
                    name,
                    point[name],
                    distribution,
                    n,
                    proportion=name == "accuracy",
                    interval=interval,
                    ci_range=ci_range,
                )
            )
        if calib is not None and temperature is not None:
            metrics.append(plain_metric("temperature", temperature, len(calib.labels)))  # fitted on the calib samples
        metrics.append(plain_metric("ece_noise_floor", floor, n))
        metrics.append(plain_metric("ece_calibrated_p", p_calibrated, n))
        artifacts = {"reliability": cal.reliability_bins(terms.probs, labels, n_bins)}
        parameters: dict[str, Scalar | list[Scalar]] = {
            "n_bins": n_bins,
            "n_resamples": n_resamples,
            "binning": "equal-width (a, b]; ece_em: equal-mass",
        }
        if scaled_terms is not None and temperature is not None:
            artifacts["reliability_ts"] = cal.reliability_bins(scaled_terms.probs, labels, n_bins)
            parameters["temperature_fit"] = "NLL on the calib split, T in [0.05, 100]"
            parameters["temperature_at_bound"] = bool(
                min(abs(np.log(temperature / b)) for b in cal.TEMPERATURE_BOUNDS) < 1e-3
            )
        else:
            parameters["notes"] = [NO_CALIB_NOTE]
        return Outcome(metrics=metrics, artifacts=artifacts, parameters=parameters)


def squared_ece_interval(
    point: float, plug_in: float, stderr: float, resampled: NDArray[np.float64], stderrs: NDArray[np.float64]
) -> tuple[float, float, CiMethod] | None:
    """The 95% interval of ece_sq_debiased: a bootstrap-t (`harness.intervals.studentized_interval`) of the
    resamples' debiased values about the sample's `plug_in` squared gap (their bootstrap world's truth),
    with `cal.debiased_squared_ece_stderr` as standard errors, widened to contain the point.

    A percentile-type interval of the resamples over-covers (0.98-0.995 at n >= 300, bench/uncertainty.py):
    the bootstrap world's bins are miscalibrated by their sampling noise even where the model is
    calibrated, and a squared gap's spread grows with its size. The standard error estimates the true
    squared gap without that bias. None when the sample's standard error is 0 (one bin, all right or all
    wrong) or so many resamples' are (t infinite) that a bound is not finite: the caller's bias-corrected
    interval then."""
    if not (stderr > 0.0 and resampled.size > 0):
        return None
    low, high = studentized_interval(point, stderr, resampled, stderrs, center=plug_in)
    if not (math.isfinite(low) and math.isfinite(high)):
        return None
    return min(low, point), max(high, point), "studentized"


ADAPTER = CalibrationAdapter()
