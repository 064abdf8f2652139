"""Re-scoring: a run's numbers recomputed from its per-sample outputs, compared within stated tolerances.

`harness validate` recomputes every run of a submission from its parquet with the task's own scoring
code (a pure function of the samples and the seed) and compares the result with what the file says.
The comparison must accept the same computation on another machine and reject any edit:

- exactly: metric names, `n`, `ci_method`, `higher_is_better`; and in `parameters` and `artifacts`
  every string, boolean and integer (counts, bin sizes, seeds), every dict key, every list's length
  and order (a ranking of components is compared element by element);
- within `RESCORE_RTOL` relative (plus `RESCORE_ATOL` absolute, for values at zero): every float, i.e.
  metric values, CI bounds, stderrs, fitted parameters (the temperature) and float artifacts
  (reliability-diagram bins). Float64 reductions differ between machines in the last bits (SIMD
  width, BLAS kernels and thread counts, vectorised exp/log), which moves results by about 1e-15 to
  1e-12 relative; fitted parameters are solved to machine precision (see `fit_temperature`), so they
  move no more. 1e-6 leaves six orders of magnitude for that and still rejects any edit that could
  change a leaderboard (a change at 1e-4 relative is rejected, tested);
- a bias-corrected bootstrap bound (ci_method "bc-bootstrap", "bc-studentized" or "debiased-bootstrap") may lie anywhere in
  the range `harness.intervals.bias_corrected_range` gives (within the same tolerance): its z0 counts the
  resamples *equal* to the point, and a resample that ties the point exactly on one machine can be an ulp
  off on another, which moves the bound by a quantile step, not by an ulp. The range is as wide as
  those near-ties allow and no wider (a plain edit of a bound is still rejected, tested);
- `artifacts.main_bootstrap.values` are written rounded to 7 decimals, so a last-bit difference can
  flip a rounding: they agree within `MAIN_BOOTSTRAP_ATOL` absolute.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

from pydantic_core import to_jsonable_python

from harness.schema import MetricValue, RunResult, TaskSpec
from harness.tasks.base import MAIN_BOOTSTRAP_DECIMALS, Outcome, run_artifacts, run_parameters

#: relative tolerance of every re-scored float (see the module docstring)
RESCORE_RTOL = 1e-6
#: absolute tolerance added to it, for values at or near zero
RESCORE_ATOL = 1e-12
#: main_bootstrap values are rounded when written: one rounding step, plus the relative tolerance
MAIN_BOOTSTRAP_ATOL = 1.5 * 10.0**-MAIN_BOOTSTRAP_DECIMALS


def close(a: float | None, b: float | None, atol: float = RESCORE_ATOL) -> bool:
    """Whether two re-scored floats agree: |a - b| <= RESCORE_RTOL * max(|a|, |b|) + atol (None == None)."""
    if a is None or b is None:
        return a is None and b is None
    return abs(a - b) <= RESCORE_RTOL * max(abs(a), abs(b)) + atol


def compare_metrics(submitted: Sequence[MetricValue], recomputed: Sequence[MetricValue]) -> list[tuple[str, str]]:
    """(metric, what differs) for every disagreement between two metric lists."""
    ours = {m.name: m for m in recomputed}
    theirs = {m.name: m for m in submitted}
    out = [(name, "missing from the submission") for name in sorted(set(ours) - set(theirs))]
    out += [(name, "not produced by the task") for name in sorted(set(theirs) - set(ours))]
    for name in sorted(set(ours) & set(theirs)):
        a, b = theirs[name], ours[name]
        for attribute in ("value", "ci_low", "ci_high", "stderr"):
            if not close(getattr(a, attribute), getattr(b, attribute)) and not _in_ci_range(a, b, attribute):
                out.append((name, f"{attribute} {getattr(a, attribute)} != recomputed {getattr(b, attribute)}"))
        for attribute in ("n", "unit", "ci_method", "higher_is_better"):
            if getattr(a, attribute) != getattr(b, attribute):
                out.append((name, f"{attribute} {getattr(a, attribute)!r} != recomputed {getattr(b, attribute)!r}"))
    return out


def _in_ci_range(submitted: MetricValue, recomputed: MetricValue, attribute: str) -> bool:
    """Whether a submitted CI bound lies in the range that float rounding of the resamples allows it."""
    bounds = recomputed._ci_range
    value = getattr(submitted, attribute)
    if bounds is None or value is None or attribute not in ("ci_low", "ci_high"):
        return False
    lowest, highest = bounds[:2] if attribute == "ci_low" else bounds[2:]
    return close(value, lowest) or close(value, highest) or lowest <= value <= highest


def compare_values(submitted: Any, recomputed: Any, where: str, atol: float = RESCORE_ATOL) -> Iterator[str]:
    """Every place where two JSON-like values disagree: floats within tolerance, everything else exactly."""
    if isinstance(recomputed, dict):
        if not isinstance(submitted, dict):
            yield f"{where}: expected an object"
            return
        for key in sorted(set(recomputed) - set(submitted)):
            yield f"{where}.{key}: missing"
        for key in sorted(set(submitted) - set(recomputed)):
            yield f"{where}.{key}: not produced by the task"
        for key in sorted(set(recomputed) & set(submitted)):
            inner = MAIN_BOOTSTRAP_ATOL if key == "main_bootstrap" else atol
            yield from compare_values(submitted[key], recomputed[key], f"{where}.{key}", inner)
    elif isinstance(recomputed, list):
        if not isinstance(submitted, list) or len(submitted) != len(recomputed):
            yield f"{where}: expected a list of {len(recomputed)}"
            return
        for index, (a, b) in enumerate(zip(submitted, recomputed, strict=True)):
            yield from compare_values(a, b, f"{where}[{index}]", atol)
    elif isinstance(recomputed, float):
        if isinstance(submitted, bool) or not isinstance(submitted, int | float):
            yield f"{where}: expected a number"
        elif not (math.isfinite(submitted) and close(float(submitted), recomputed, atol)):
            yield f"{where}: {submitted!r} != recomputed {recomputed!r}"
    elif type(submitted) is not type(recomputed) or submitted != recomputed:
        yield f"{where}: {submitted!r} != recomputed {recomputed!r}"


def compare_run(run: RunResult, spec: TaskSpec, outcome: Outcome, seed: int) -> list[tuple[str, str]]:
    """(field, what differs) between a submitted run and the outcome of re-scoring its samples."""
    out = [(f"metrics ({name})", difference) for name, difference in compare_metrics(run.metrics, outcome.metrics)]
    recomputed = {
        "parameters": to_jsonable_python(run_parameters(spec, outcome)),
        "artifacts": to_jsonable_python(run_artifacts(outcome, spec.main_metric, seed)),
    }
    submitted = {"parameters": run.parameters, "artifacts": run.artifacts}
    for key in ("parameters", "artifacts"):
        out += [(key, difference) for difference in compare_values(submitted[key], recomputed[key], key)]
    return out
