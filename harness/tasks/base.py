"""The task-adapter interface: what a task needs from a model, and how it turns outputs into metrics.

An adapter works in three declared steps:
1. `requests(spec)`: which inference on which split, so the runner can plan one forward pass per
   (model, dataset, split) shared by every task;
2. `samples(spec, inputs)`: the per-sample values the metrics need (logits, OOD scores ...),
   derived from the cached model outputs; they are written to the submission's parquet;
3. `score(spec, samples, seed)`: metrics with CIs and artifacts, a pure function of the samples.
`evaluate` chains 2 and 3. Because scoring only reads the samples, `harness validate` re-scores a
submission from its parquet, with the same code, and compares with the submitted numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from harness.errors import HarnessError
from harness.metrics import metric_info
from harness.models.base import Arrays, Capability
from harness.schema import CiMethod, MetricValue, Scalar, TaskSpec


@dataclass(frozen=True)
class Request:
    """Inference `inference` on split `split` of the task's dataset, with `params` (hashable pairs)
    passed to the inference and made part of its cache key (e.g. seeds and probe counts)."""

    inference: str
    split: str
    params: tuple[tuple[str, Any], ...] = ()
    #: fitting data (e.g. training features for OOD statistics) is used whole even under --limit,
    #: so per-sample values of the evaluated samples do not depend on the limit
    whole: bool = False
    #: False for a split the evaluated samples are computed against rather than evaluated one by one
    #: (a retrieval corpus): a random subset of samples (EvalOptions.sample_subset) keeps it whole,
    #: while --limit still cuts it
    per_sample: bool = True
    #: an optional split (a calib split for temperature scaling, a train split for feature statistics):
    #: read when the dataset has it and the model can produce it, left out otherwise (the adapter's
    #: `samples` and `score` then do without it and say so in the run's `notes` parameter)
    optional: bool = False
    #: a capability the model must have for this request to run (with `optional`: else it is left out)
    needs: Capability | None = None


@dataclass(frozen=True)
class SplitOutputs:
    """A data split together with the model's cached outputs on it."""

    split: Any
    outputs: Arrays


@dataclass(frozen=True)
class Samples:
    """Per-sample outputs of a run, written to the submission's parquet so metrics can be re-scored.

    `values[i]` is a vector whose meaning is `fields` (e.g. the logits of sample i).
    """

    split: str
    ids: list[str]
    labels: NDArray[np.int64]
    values: NDArray[np.float64]
    fields: list[str]


@dataclass(frozen=True)
class ExpectedSamples:
    """What a split's samples must be, known without the model (`harness validate` binds a
    submission's samples to it; see docs/trust.md).

    ids: exactly these sample ids, each once (None: the ids depend on the model, e.g. its layers);
    labels: the dataset's labels for `ids` (None: no labels to check; the parquet's are zeros);
    fields: the value columns, exactly (None: `field_prefix` + 0, 1, ..., at least `min_width`);
    whole: fields whose values must be whole numbers (token counts, indices, predicted classes);
    fixed: fields the dataset determines (e.g. a reference model's values), in `ids` order.
    `fields_options` lists alternatives to `fields` (e.g. OOD scores without feature-based ones).
    """

    ids: list[str] | None
    labels: NDArray[np.int64] | None = None
    fields: list[str] | None = None
    field_prefix: str = ""
    min_width: int = 1
    fields_options: tuple[tuple[str, ...], ...] = ()
    whole: frozenset[str] = frozenset()
    fixed: dict[str, NDArray[np.float64]] = field(default_factory=dict)
    #: an optional split (Request.optional): a run may leave it out (it then says so in its notes)
    optional: bool = False

    def allowed_fields(self) -> list[list[str]]:
        """Every exact field list this split accepts ([] when `field_prefix` decides)."""
        return [list(f) for f in ((tuple(self.fields),) if self.fields is not None else ()) + self.fields_options]


def split_expected(
    split: Any, *, prefix: str = "", n_classes: int | None = None, fields: list[str] | None = None, **extra: Any
) -> ExpectedSamples:
    """A dataset split's ids and labels (its `y`) as ExpectedSamples; with `prefix`, one column per
    class (`n_classes` of the dataset when it declares them, else at least the largest label + 1)."""
    labels = np.asarray(split.y, dtype=np.int64) if getattr(split, "y", None) is not None else None
    if prefix and n_classes is not None:
        fields = [f"{prefix}{c}" for c in range(n_classes)]
    min_width = int(labels.max()) + 1 if prefix and labels is not None and labels.size else 1
    return ExpectedSamples(list(split.ids), labels, fields, prefix, min_width, **extra)


@dataclass
class Outcome:
    metrics: list[MetricValue]
    artifacts: dict[str, Any] = field(default_factory=dict)
    parameters: dict[str, Scalar | list[Scalar]] = field(default_factory=dict)


class TaskAdapter(Protocol):
    name: str
    description: str
    capability: Capability

    def metric_names(self, spec: TaskSpec) -> list[str]:
        """Every metric the task can report; a name is a registered metric, optionally qualified
        with dots ("auroc.energy.near": AUROC of the energy score on the near-OOD sets)."""
        ...

    def requests(self, spec: TaskSpec) -> list[Request]: ...

    def samples(self, spec: TaskSpec, inputs: dict[str, SplitOutputs]) -> list[Samples]: ...

    # Optional: `resolve(spec, handle) -> TaskSpec` fills model-dependent parts of a spec (e.g. the
    # reference model of a compression task) before the runner plans anything.
    # Optional: `label_splits(spec) -> list[str]`: the splits whose labels index the model's outputs;
    # the runner checks them against the model's number of outputs before any forward pass.
    # Optional: `subsettable: bool` (True when absent): False when a sample's values depend on the other
    # samples of its split (a probe fitted over the split, a loss landscape over its documents), so a
    # random subset of samples (`harness verify`) runs such a task on whole splits.
    # Optional: `summary_blocks: frozenset[str]`: sample blocks that summarise a whole split rather than
    # one sample each (lm-eval's own aggregates); they are not compared when only a subset was re-run.
    # Optional: `expected_samples(spec) -> dict[str, ExpectedSamples] | None`: what each split's samples
    # must be without the model (None: the data cannot be read here); validation binds a submission's
    # samples to it, and a task without it can only hold self-reported results.

    def score(self, spec: TaskSpec, samples: dict[str, Samples], seed: int) -> Outcome: ...


def evaluate(
    adapter: TaskAdapter, spec: TaskSpec, inputs: dict[str, SplitOutputs], seed: int
) -> tuple[list[Samples], Outcome]:
    """Per-sample values from the model outputs, then metrics from those values alone."""
    blocks = adapter.samples(spec, inputs)
    return blocks, adapter.score(spec, {block.split: block for block in blocks}, seed)


#: decimals kept of the main metric's bootstrap values in `artifacts.main_bootstrap`
MAIN_BOOTSTRAP_DECIMALS = 7


def run_artifacts(outcome: Outcome, main_metric: str, seed: int) -> dict[str, Any]:
    """A run's artifacts: the task's own plus `main_bootstrap` (seed and rounded distribution of the
    main metric). Runs on the same samples with the same seed share their resamples, so two models'
    main-metric distributions pair up: the app tests differences with them."""
    artifacts = dict(outcome.artifacts)
    main = next((m for m in outcome.metrics if m.name == main_metric), None)
    if main is not None and main._distribution is not None:
        artifacts["main_bootstrap"] = {
            "seed": seed,
            "values": [round(v, MAIN_BOOTSTRAP_DECIMALS) for v in main._distribution],
        }
    return artifacts


def run_parameters(spec: TaskSpec, outcome: Outcome) -> dict[str, Scalar | list[Scalar]]:
    """A run's recorded parameters: the spec's, then what scoring reports (fitted or derived values)."""
    return {**spec.parameters, **outcome.parameters}


#: A choice that an item does not have (multiple-choice items with fewer choices than the widest: the
#: language model pads their log-likelihoods with -inf) gets the logit "its row's largest - this": its
#: probability is exactly 0 in float64 under every temperature the calibration fit allows (exp(-1e5 / 100)
#: underflows), and the per-sample values stay finite, as stored submissions must be.
PADDED_LOGIT_GAP = 1e5


def logit_samples(split: str, outputs: SplitOutputs) -> Samples:
    """A split's logits as per-sample values (float64); NaN or +inf is a HarnessError. -inf (a padded
    choice of a multiple-choice item) becomes its row's largest logit - `PADDED_LOGIT_GAP`; a row without
    any finite logit, or a label on a padded choice, is a HarnessError."""
    logits = np.asarray(outputs.outputs["logits"], dtype=np.float64)
    padded = np.isneginf(logits)
    if padded.any() and logits.ndim == 2:
        row_max = np.where(padded, -np.inf, logits).max(axis=1, initial=-np.inf)
        if not np.isfinite(row_max).all():
            raise HarnessError(
                f"the model produced no finite logit for some samples of the {split} split",
                fix="check the checkpoint's weights, or the split's items (every item needs a choice)",
            )
        logits = np.where(padded, row_max[:, None] - PADDED_LOGIT_GAP, logits)
    if not np.isfinite(logits).all():
        raise HarnessError(
            f"the model produced NaN or inf logits on the {split} split",
            fix="check the checkpoint's weights (a diverged training run?)",
        )
    labels = np.asarray(outputs.split.y, dtype=np.int64)
    if labels.size and labels.max() >= logits.shape[1]:
        raise HarnessError(
            f"the model has {logits.shape[1]} outputs but split {split!r} has labels up to {labels.max()}",
            fix="evaluate the model on a dataset with its own label space (see `harness tasks`)",
        )
    if padded.any() and labels.size and labels.min() >= 0 and padded[np.arange(labels.size), labels].any():
        raise HarnessError(
            f"a label of split {split!r} points at a choice its item does not have (a -inf logit)",
            fix="check the split's labels against its choices",
        )
    return Samples(
        split=split,
        ids=list(outputs.split.ids),
        labels=labels,
        values=logits,
        fields=[f"logit_{c}" for c in range(logits.shape[1])],
    )


def bootstrap_metric(
    name: str,
    value: float,
    distribution: NDArray[np.float64],
    n: int,
    unit: str = "samples",
    *,
    proportion: bool = False,
    units_at_bound: int | None = None,
    interval: tuple[float, float, CiMethod] | None = None,
    ci_range: tuple[float, float, float, float] | None = None,
) -> MetricValue:
    """A MetricValue with a 95% CI; direction from the metric registry; `n` independent `unit`s.

    A `proportion` (the share of n units that succeed: accuracy, flips) gets the Wilson interval;
    any other statistic the bias-corrected percentile interval of its bootstrap `distribution`
    (harness/intervals.py), unless the caller computed its own (`interval`: low, high, ci_method).
    `units_at_bound`: when the bias-corrected interval of a value of exactly 0 or 1 has no width (every
    resample, or all but a few beyond both quantiles, equal it: an AUROC of 1 at perfect separation, an
    accuracy of 1 on a group of classes, an FPR@95 of 0), the Wilson interval of that many independent
    units instead of a zero-width one. The distribution is kept either way: the main metric's pairs
    runs for the ranks. `ci_range`: the range float rounding allows a caller's own `interval`
    (`harness.intervals.debiased_range`); the bias-corrected interval's is computed here."""
    from harness.intervals import bias_corrected_interval, bias_corrected_range, wilson_interval

    info = metric_info(name)
    values = np.asarray(distribution, dtype=np.float64)
    method: CiMethod
    if interval is not None:
        low, high, method = interval
    elif proportion:
        low, high = wilson_interval(min(max(value * n, 0.0), float(n)), n)
        method = "wilson"
    else:
        low, high = bias_corrected_interval(value, values)
        ci_range = bias_corrected_range(value, values)
        method = "bc-bootstrap"
        # At a bound with no width: every resample equals it, or so many that both quantiles do (an
        # FPR@95 of 0 that 2% of resamples lift). The data may still vary, so the units decide.
        if units_at_bound and value in (0.0, 1.0) and low == high == value and values.size > 0:
            low, high = wilson_interval(value * units_at_bound, units_at_bound)
            ci_range, method = None, "wilson"
    metric = MetricValue(
        name=name,
        value=value,
        higher_is_better=info.higher_is_better,
        ci_low=low,
        ci_high=high,
        ci_method=method,
        n=n,
        unit=unit,
    )
    metric._distribution = tuple(float(v) for v in values)
    metric._ci_range = ci_range
    return metric


def stderr_metric(name: str, values: NDArray[np.float64], unit: str) -> MetricValue:
    """The mean of independent estimates (`unit`s) with a 95% CI of mean +- 1.96 standard errors."""
    values = np.asarray(values, dtype=np.float64)
    mean = float(values.mean())
    stderr = float(values.std(ddof=1) / np.sqrt(len(values))) if len(values) > 1 else 0.0
    info = metric_info(name)
    return MetricValue(
        name=name,
        value=mean,
        higher_is_better=info.higher_is_better,
        stderr=stderr,
        ci_low=mean - 1.96 * stderr,
        ci_high=mean + 1.96 * stderr,
        ci_method="stderr",
        n=len(values),
        unit=unit,
    )


def plain_metric(name: str, value: float, n: int, unit: str = "samples") -> MetricValue:
    """A MetricValue without an interval (e.g. a fitted parameter such as a temperature)."""
    info = metric_info(name)
    return MetricValue(name=name, value=value, higher_is_better=info.higher_is_better, ci_method="none", n=n, unit=unit)


def active_requests(adapter: TaskAdapter, spec: TaskSpec, suite: Any, handle: Any = None) -> list[Request]:
    """The requests of `spec` that run: every required one, and an optional one when the dataset has its
    split and (given a model) the model has the capability it `needs` and covers the split (a predictions
    file may leave out, say, the train split)."""
    from harness.data import has_split

    out = []
    for request in adapter.requests(spec):
        if request.optional:
            if not has_split(suite, request.split):
                continue
            if handle is not None:
                if request.needs is not None and request.needs not in handle.capabilities:
                    continue
                covers = getattr(handle, "covers", None)
                if covers is not None and not covers(request.split):
                    continue
        out.append(request)
    return out


def require_labels(split: Any, name: str, task: str, why: str) -> None:
    """Before any model loads: every sample of `split` carries a label (>= 0); else a HarnessError that
    names the split's file and says how labels are given."""
    labels = getattr(split, "y", None)
    where = getattr(split, "source", "") or f"split {name}"
    if labels is None:
        raise HarnessError(
            f"task {task!r} needs labelled samples ({why}), but split {name!r} holds plain-text documents",
            where=where,
            fix="give the split as a table with a label column, or as class folders of images",
        )
    unlabelled = int((np.asarray(labels) < 0).sum())
    if unlabelled:
        raise HarnessError(
            f"task {task!r} needs a label for every sample ({why}), but {unlabelled} of {len(labels)} samples "
            f"of split {name!r} have none",
            where=where,
            fix="add a label column ('label', or the name in dataset.params.label_column) or class folders of images",
        )
