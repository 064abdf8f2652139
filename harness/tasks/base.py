"""The task-adapter interface: what a task needs from a model, and how it turns outputs into metrics.

An adapter is declarative about its inputs (`requests`: which inference on which split) so the
runner can plan one forward pass per (model, dataset, split) shared by every task. `evaluate`
is a pure function of the cached outputs: it never touches the model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from harness.metrics import MetricInfo
from harness.models.base import Arrays, Capability
from harness.registry import METRICS
from harness.schema import MetricValue, Scalar, TaskSpec
from harness.stats import percentile_interval


@dataclass(frozen=True)
class Request:
    """Inference `inference` on split `split` of the task's dataset."""

    inference: str
    split: str


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
    values: NDArray[np.float32]
    fields: list[str]


@dataclass
class Outcome:
    metrics: list[MetricValue]
    samples: list[Samples] = field(default_factory=list)
    artifacts: dict[str, Any] = field(default_factory=dict)
    parameters: dict[str, Scalar | list[Scalar]] = field(default_factory=dict)


class TaskAdapter(Protocol):
    name: str
    description: str
    capability: Capability
    #: names of the metrics it reports (each registered in METRICS)
    metrics: tuple[str, ...]

    def requests(self, spec: TaskSpec) -> list[Request]: ...

    def evaluate(self, spec: TaskSpec, inputs: dict[str, SplitOutputs], seed: int) -> Outcome: ...


def bootstrap_metric(name: str, value: float, distribution: NDArray[np.float64], n: int) -> MetricValue:
    """A MetricValue with a percentile-bootstrap 95% CI; direction from the metric registry."""
    info: MetricInfo = METRICS.get(name)
    low, high = percentile_interval(distribution)
    return MetricValue(
        name=name,
        value=value,
        higher_is_better=info.higher_is_better,
        ci_low=low,
        ci_high=high,
        ci_method="bootstrap",
        n=n,
    )


def plain_metric(name: str, value: float, n: int) -> MetricValue:
    """A MetricValue without an interval (e.g. a fitted parameter such as a temperature)."""
    info: MetricInfo = METRICS.get(name)
    return MetricValue(name=name, value=value, higher_is_better=info.higher_is_better, ci_method="none", n=n)
