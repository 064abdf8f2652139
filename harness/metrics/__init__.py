"""Pure metric functions, one module per family; conventions are stated in each docstring.

Each metric also has a `MetricInfo` (its direction and convention), registered by name in
`harness.registry.METRICS`, recorded with every stored value and shown in the app.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MetricInfo:
    """A metric's direction and convention.

    `diagnostic`: the number describes the model (a fitted parameter, a property such as
    sharpness) or its reference, not the quality of its outputs, so boards show it but never rank
    it and the mean-rank view leaves it out; `higher_is_better` then only says how to sort.
    """

    name: str
    higher_is_better: bool
    convention: str
    diagnostic: bool = False


def metric_info(name: str) -> MetricInfo:
    """The registered info of a metric name; a qualified name ("auroc.msp.near") uses its base ("auroc")."""
    from harness.registry import METRICS

    base, _, qualifier = name.partition(".")
    info: MetricInfo = METRICS.get(base)
    if base == "lm_eval" and qualifier.split(".")[0] in LOWER_IS_BETTER_LM_EVAL:
        return MetricInfo(name, False, info.convention)
    return info


def is_diagnostic(name: str) -> bool:
    """Whether `name` (or its base, for a qualified name) is registered as a diagnostic; unknown names are not."""
    from harness.registry import METRICS

    return name.partition(".")[0] in METRICS and metric_info(name).diagnostic


#: lm-evaluation-harness metrics where lower is better (every other lm_eval.* metric: higher)
LOWER_IS_BETTER_LM_EVAL = ("word_perplexity", "byte_perplexity", "bits_per_byte", "perplexity", "ter")
