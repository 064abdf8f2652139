"""Task adapter `lm_eval`: any lm-evaluation-harness task, run through its Python API.

The spec names the lm-eval task (`parameters.task`) and its dataset is an lm-eval suite
(harness/data/lm_eval_source.py). `--tasks lm_eval:<task>` builds such a spec on the fly.

Metrics are named `lm_eval.<metric>` (e.g. lm_eval.acc, lm_eval.word_perplexity). Harness recomputes
each from lm-eval's per-document values (mean, or for (numerator, weight) pairs: weighted perplexity
exp(-sum ll / sum w), or bits_per_byte -sum ll / sum bytes / ln 2), with a seeded bootstrap CI, and
records lm-eval's own aggregate and stderr beside it (artifact `lm_eval`) so both can be compared.
Directions are the ones lm-eval declares. For multiple-choice tasks, the choice log-likelihoods also
feed calibration: ece, nll, brier and accuracy of the softmax over each item's choices.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from harness.errors import HarnessError
from harness.intervals import (
    bias_corrected_interval,
    bias_corrected_range,
    debiased_interval,
    debiased_range,
    wilson_interval,
)
from harness.metrics import calibration as cal
from harness.models.base import Capability
from harness.schema import DatasetSource, MetricValue, TaskSpec
from harness.stats import stratified_counts
from harness.tasks.base import ExpectedSamples, Outcome, Request, Samples, SplitOutputs, bootstrap_metric

PAIR_AGGREGATES = ("word_perplexity", "byte_perplexity", "bits_per_byte")
CALIBRATION = ("accuracy", "ece", "nll", "brier")


def dynamic_spec(name: str) -> TaskSpec:
    """The spec behind `--tasks lm_eval:<task>`: lm-eval's task on its own data, main metric from its config."""
    task = name.split(":", 1)[1]
    if not task:
        raise HarnessError("empty lm-eval task name", fix="use --tasks lm_eval:<task>, e.g. lm_eval:hellaswag")
    metrics = task_metrics(task)
    return TaskSpec(
        name=f"lm_eval.{task}",
        version=1,
        adapter="lm_eval",
        description=f"lm-evaluation-harness task {task}",
        dataset=DatasetSource(kind="builtin", name="lm-eval"),
        parameters={"task": task, "metrics": metrics},
        main_metric=f"lm_eval.{metrics[0]}",
    )


def task_metrics(task: str, include_path: str | None = None) -> list[str]:
    """The metric names of an lm-eval task, read from its config (no data is loaded)."""
    from harness.data.lm_eval_source import manager_for, task_config

    manager = manager_for(task, include_path)
    if task not in manager.all_tasks:
        from difflib import get_close_matches

        close = get_close_matches(task, manager.all_tasks, n=3)
        raise HarnessError(
            f"lm-evaluation-harness has no task {task!r}",
            fix=("did you mean " + " or ".join(close) + "?") if close else "list them with `lm_eval --tasks list`",
        )
    return metrics_from_config(task_config(manager, task))


def metrics_from_config(config: dict[str, Any]) -> list[str]:
    """The metric names an lm-eval task config declares (`metric_list`), else lm-eval's defaults for its
    output type; the first is the task's main metric, for native runs and imported ones alike."""
    listed = [str(m["metric"]) for m in config.get("metric_list", []) or [] if isinstance(m, dict) and "metric" in m]
    if listed:
        return listed
    defaults = {"loglikelihood_rolling": list(PAIR_AGGREGATES), "multiple_choice": ["acc", "acc_norm"]}
    return defaults.get(str(config.get("output_type")), ["acc"])


class LMEvalAdapter:
    name = "lm_eval"
    description = "any lm-evaluation-harness task through its Python API (metrics with stderr and CIs)"
    capability = Capability.CAUSAL_LM
    #: lm-eval's own aggregates over the evaluated documents (an artifact; metrics are recomputed per document)
    summary_blocks = frozenset({"lm_eval"})

    def metric_names(self, spec: TaskSpec) -> list[str]:
        metrics = spec.parameters.get("metrics", [])
        assert isinstance(metrics, list)
        return [f"lm_eval.{m}" for m in metrics] + list(CALIBRATION)

    def requests(self, spec: TaskSpec) -> list[Request]:
        task = spec.parameters.get("task")
        if not isinstance(task, str):
            raise HarnessError("an lm_eval task spec needs parameters.task", where=f"task {spec.name}")
        return [Request("lm-eval", task)]

    def expected_samples(self, spec: TaskSpec) -> dict[str, ExpectedSamples] | None:
        """For the synthetic language's tasks (data generated here): every document once with its
        target, each choice's log-likelihood, lm-eval's aggregates. Other lm-eval tasks read data
        this harness does not hold: None (their results are self-reported)."""
        if spec.dataset.name != "synthlang-lm-eval":
            return None
        from harness.data.language import language_suite

        task = str(spec.parameters.get("task"))
        language = language_suite(seed=int(spec.dataset.params.get("seed", 0)))  # type: ignore[arg-type]
        if task == "synth_blimp":
            targets = np.zeros(len(language.minimal_pairs), np.int64)
        elif task == "synth_mc":
            targets = np.asarray([item.label for item in language.multiple_choice], np.int64)
        else:
            return None
        ids = [f"doc-{i}" for i in range(len(targets))]
        metrics = spec.parameters.get("metrics", ["acc"])
        names = sorted(str(m) for m in metrics) if isinstance(metrics, list) else ["acc"]
        return {
            task: ExpectedSamples(ids, targets, names),
            "choices": ExpectedSamples(ids, targets, field_prefix="choice_", min_width=2),
            "lm_eval": ExpectedSamples(names, np.zeros(len(names), np.int64), ["aggregate", "stderr", "higher_is_better"]),
        }  # fmt: skip

    def samples(self, spec: TaskSpec, inputs: dict[str, SplitOutputs]) -> list[Samples]:
        ((task, outputs),) = inputs.items()
        out = outputs.outputs
        columns = sorted(k for k in out if k.startswith("metric:"))
        blocks = [
            Samples(
                split=task,
                ids=[f"doc-{i}" for i in out["doc_id"]],
                labels=np.asarray(out["target"], dtype=np.int64),
                values=np.stack([out[c] for c in columns], axis=1).astype(np.float64),
                fields=[c.removeprefix("metric:") for c in columns],
            )
        ]
        if "choice_logliks" in out:
            logliks = np.asarray(out["choice_logliks"], dtype=np.float64)
            finite = logliks[np.isfinite(logliks)]
            floor = (finite.min() if finite.size else 0.0) - 1e4  # padding: far below every real choice
            blocks.append(
                Samples(
                    split="choices",
                    ids=[f"doc-{i}" for i in out["doc_id"]],
                    labels=np.asarray(out["target"], dtype=np.int64),
                    values=np.where(np.isfinite(logliks), logliks, floor),
                    fields=[f"choice_{c}" for c in range(logliks.shape[1])],
                )
            )
        # lm-eval's own aggregates, stderrs and directions travel with the samples (one row per metric).
        # Samples must be finite: a stderr lm-eval reports as N/A (NaN) is written as NO_STDERR.
        names = sorted(k.split(":", 1)[1] for k in out if k.startswith("aggregate:"))
        declared = [
            [out[f"aggregate:{m}"][0], _finite_stderr(out[f"stderr:{m}"][0]), float(out[f"higher:{m}"][0])]
            for m in names
        ]
        blocks.append(
            Samples("lm_eval", names, np.zeros(len(names), np.int64), np.asarray(declared, np.float64).reshape(-1, 3), ["aggregate", "stderr", "higher_is_better"])
        )  # fmt: skip
        return blocks

    def score(self, spec: TaskSpec, samples: dict[str, Samples], seed: int) -> Outcome:
        n_resamples = int(spec.parameters.get("n_resamples", 1000))  # type: ignore[arg-type]
        task = str(spec.parameters["task"])
        block = samples[task]
        n = len(block.ids)
        (counts,) = stratified_counts([n], n_resamples, seed)
        columns = {name: block.values[:, i] for i, name in enumerate(block.fields)}
        summary = samples.get("lm_eval")
        declared = {
            name: {"aggregate": row[0], "stderr": None if row[1] < 0 or np.isnan(row[1]) else row[1], "higher_is_better": bool(row[2])}
            for name, row in zip(summary.ids, summary.values.tolist(), strict=True)
        } if summary is not None else {}  # fmt: skip
        metrics: list[MetricValue] = []
        for name in sorted({f.split(":")[0] for f in block.fields}):
            if name in columns:
                value, resampled = float(columns[name].mean()), counts @ columns[name] / n
            elif name in PAIR_AGGREGATES:
                ll, weight = columns[f"{name}:0"], columns[f"{name}:1"]
                value, resampled = _pair(name, ll.sum(), weight.sum()), _pair(name, counts @ ll, counts @ weight)
            else:
                continue
            # A per-document 0/1 score (acc, acc_norm, exact_match) is a proportion: Wilson; else bias-corrected.
            binary = name in columns and bool(np.isin(columns[name], (0.0, 1.0)).all())
            ci_range = None
            if binary:
                low, high = wilson_interval(float(columns[name].sum()), n)
            else:
                low, high = bias_corrected_interval(value, np.asarray(resampled, dtype=np.float64))
                ci_range = bias_corrected_range(value, np.asarray(resampled, dtype=np.float64))
            higher = declared.get(name, {}).get("higher_is_better", name not in PAIR_AGGREGATES)
            metric = MetricValue(
                name=f"lm_eval.{name}", value=value, higher_is_better=bool(higher), ci_low=low, ci_high=high,
                ci_method="wilson" if binary else "bc-bootstrap", n=n, unit="documents",
            )  # fmt: skip
            metric._ci_range = ci_range
            metrics.append(metric)
        if "choices" in samples:
            choices = samples["choices"]
            logits, labels = choices.values, choices.labels
            probs = cal.softmax(logits)
            correct = (probs.argmax(axis=1) == labels).astype(np.float64)
            confidence = probs.max(axis=1)
            bins = cal.equal_width_bin(confidence, 15)
            nll = cal.nll_per_sample(logits, labels)
            brier = cal.brier_per_sample(probs, labels)
            ece = [cal.binned_calibration_gap(confidence[r], correct[r], bins[r], 15) for r in _rows(counts)]
            ece_point = cal.binned_calibration_gap(confidence, correct, bins, 15)
            # as the calibration adapter: the debiased interval, reaching 0 when calibration is plausible
            p_calibrated = cal.ece_noise_floor(confidence, ece_point, 15, n_resamples, seed)[1]
            ece_resampled = np.asarray(ece)
            spread = cal.ece_spread(ece_resampled, cal.normal_debiased_ece(counts, confidence, correct, 15))
            plausible = p_calibrated > 0.05
            ece_range = debiased_range(ece_point, ece_resampled, zero_plausible=plausible, spread=spread)
            ece_low, ece_high = debiased_interval(ece_point, ece_resampled, zero_plausible=plausible, spread=spread)
            metrics += [
                bootstrap_metric(
                    "accuracy", float(correct.mean()), counts @ correct / n, n, "documents", proportion=True
                ),
                bootstrap_metric(
                    "ece",
                    ece_point,
                    ece_resampled,
                    n,
                    "documents",
                    interval=(ece_low, ece_high, "debiased-bootstrap"),
                    ci_range=ece_range,
                ),
                bootstrap_metric("nll", float(nll.mean()), counts @ nll / n, n, "documents"),
                bootstrap_metric("brier", float(brier.mean()), counts @ brier / n, n, "documents"),
            ]
        return Outcome(
            metrics=metrics,
            artifacts={"lm_eval": declared} if declared else {},
            parameters={"task": task, "n_documents": n, "n_resamples": n_resamples},
        )


#: stands for "no stderr" (lm-eval's N/A) in the per-sample values, which must be finite; read back as null
NO_STDERR = -1.0


def _finite_stderr(value: float) -> float:
    return float(value) if np.isfinite(value) and value >= 0 else NO_STDERR


def _pair(name: str, ll: Any, weight: Any) -> Any:
    if name == "bits_per_byte":
        return -np.asarray(ll) / np.asarray(weight) / np.log(2.0)
    return np.exp(-np.asarray(ll) / np.asarray(weight))


def _rows(counts: np.ndarray) -> list[np.ndarray]:
    """Each resample as row indices (its counts expanded)."""
    index = np.arange(counts.shape[1])
    return [np.repeat(index, row.astype(np.int64)) for row in counts]


ADAPTER = LMEvalAdapter()
