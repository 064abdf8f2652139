"""`harness verify`: re-run a checkpoint and compare its behaviour with a submission.

Two questions, answered separately:
- same checkpoint? The sha256 of the weight files against the submitted `checkpoint_hash`. A zoo
  rebuilt on another machine is a different checkpoint (training is not bit-reproducible across
  CPUs), so a mismatch is a warning, not a failure.
- same behaviour? The checkpoint's per-sample outputs against the submitted ones (within
  `VERIFY_ATOL` + `VERIFY_RTOL` * |value|), and without --limit every metric. This decides the exit code.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from harness.errors import HarnessError
from harness.validation import current_spec, read_samples, validate_file

#: re-running a checkpoint on other hardware or software changes float32 outputs slightly
VERIFY_ATOL = 1e-4
VERIFY_RTOL = 1e-3

Status = Literal["ok", "warning", "failed"]


@dataclass(frozen=True)
class Check:
    task: str
    what: str
    detail: str
    status: Status

    @property
    def failed(self) -> bool:
        return self.status == "failed"


def _status(ok: bool) -> Status:
    return "ok" if ok else "failed"


def checkpoint_check(submitted_hash: str, actual_hash: str) -> Check:
    """The identity check: a different hash is a warning (the behaviour checks decide)."""
    if submitted_hash == actual_hash:
        return Check("-", "checkpoint sha256", "matches: the submitted checkpoint", "ok")
    return Check(
        "-",
        "checkpoint sha256",
        f"{actual_hash[:16]} != submitted {submitted_hash[:16]}: another checkpoint (a zoo rebuilt on another "
        "machine differs); its behaviour is compared below",
        "warning",
    )


def verify_submission(file: Path, handle: Any, options: Any, reference: Path | None = None) -> list[Check]:
    """Re-run `handle` on the submission's tasks (on `options.limit` samples per split when set) and
    compare its per-sample outputs with the submitted ones, and, without a limit, its metrics."""
    from harness.runner import Runner
    from harness.tasks.compression import with_reference

    sub, problems = validate_file(file, rescore=False)
    if sub is None:
        raise HarnessError(problems[0].message, where=problems[0].file, fix=problems[0].fix)
    checks = [checkpoint_check(sub.checkpoint_hash, handle.checkpoint_hash)]
    specs = []
    for run in sub.results:
        spec = current_spec(run)
        if spec is None:
            checks.append(Check(run.task, "task", "unknown to this harness", "failed"))
            continue
        if reference is not None and spec.adapter == "compression":
            spec = with_reference(spec, str(reference))
        specs.append(spec)
    result = Runner(options).evaluate(handle, specs)
    submitted = read_samples(file.parent / sub.samples_file) if sub.samples_file else {}
    for task, block in result.samples:
        theirs = submitted.get(task, {}).get(block.split)
        if theirs is None:
            checks.append(Check(task, f"samples {block.split}", "not in the submission", "failed"))
            continue
        position = {sample: i for i, sample in enumerate(theirs.ids)}
        common = [i for i, sample in enumerate(block.ids) if sample in position]
        if not common:
            checks.append(Check(task, f"samples {block.split}", "no sample ids in common", "failed"))
            continue
        ours = block.values[common]
        their_values = theirs.values[[position[block.ids[i]] for i in common]]
        if ours.shape != their_values.shape:
            checks.append(
                Check(task, f"samples {block.split}", f"shape {ours.shape} != {their_values.shape}", "failed")
            )
            continue
        difference = float(np.max(np.abs(ours - their_values))) if ours.size else 0.0
        ok = bool(np.allclose(ours, their_values, atol=VERIFY_ATOL, rtol=VERIFY_RTOL))
        detail = f"{len(common)} samples, max |difference| {difference:.2e}"
        checks.append(Check(task, f"samples {block.split}", detail, _status(ok)))
    if options.limit is None:
        by_task = {run.task: run for run in sub.results}
        for run in result.submission.results:
            mismatches = [
                name
                for name, m in ((m.name, m) for m in run.metrics)
                if name in {x.name for x in by_task[run.task].metrics}
                and not math.isclose(
                    m.value, by_task[run.task].metric(name).value, rel_tol=VERIFY_RTOL, abs_tol=VERIFY_ATOL
                )
            ]
            detail = "all metrics agree" if not mismatches else "differ: " + ", ".join(mismatches[:5])
            checks.append(Check(run.task, "metrics", detail, _status(not mismatches)))
    return checks
