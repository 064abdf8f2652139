"""Pure metric functions, one module per family; conventions are stated in each docstring.

Each metric also has a `MetricInfo` (its direction and convention), registered by name in
`harness.registry.METRICS`, recorded with every stored value and shown in the app.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MetricInfo:
    name: str
    higher_is_better: bool
    convention: str


def metric_info(name: str) -> MetricInfo:
    """The registered info of a metric name; a qualified name ("auroc.msp.near") uses its base ("auroc")."""
    from harness.registry import METRICS

    info: MetricInfo = METRICS.get(name.split(".", 1)[0])
    return info
