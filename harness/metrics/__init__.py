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

    base, _, qualifier = name.partition(".")
    info: MetricInfo = METRICS.get(base)
    if base == "lm_eval" and qualifier.split(".")[0] in LOWER_IS_BETTER_LM_EVAL:
        return MetricInfo(name, False, info.convention)
    return info


#: lm-evaluation-harness metrics where lower is better (every other lm_eval.* metric: higher)
LOWER_IS_BETTER_LM_EVAL = ("word_perplexity", "byte_perplexity", "bits_per_byte", "perplexity", "ter")
