"""`harness verify`: re-run a checkpoint and compare its behaviour with a submission.

Three questions, answered separately:
- same checkpoint? The sha256 of the weight files against the submitted `checkpoint_hash`. A zoo
  rebuilt on another machine is a different checkpoint (training is not bit-reproducible across
  CPUs), so a mismatch is a warning, not a failure.
- same behaviour? The checkpoint is re-run on a random subset of each split (`sample_subset`: n
  positions drawn from a seed text, see `harness.runner.subset_positions`; the seed is unknown when
  the submission is written, so a submitter cannot tell which samples will be re-run), or on every
  sample, or (--limit, kept for old scripts) on the first N. Its per-sample outputs are compared with
  the submitted ones BY SAMPLE ID, within `VERIFY_ATOL` + `VERIFY_RTOL` * |value|; a re-run sample
  missing from the submission is a failure. After a full re-run, its metrics are compared too.
- do the metrics follow from the samples? Every metric of every run is re-scored from the full
  submitted parquet (`validate_file(rescore=True)`); its problems are failed checks.
The tier established is "verified" when every check passes (a hash mismatch is only a warning) and
the re-run samples were not predictable (a random subset or all of them), else "not verified".
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from harness.errors import HarnessError
from harness.tasks.base import Samples
from harness.validation import Problem, current_spec, read_samples, validate_file

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


VerifyTier = Literal["verified", "not verified"]


@dataclass(frozen=True)
class Verification:
    """What `verify_submission` found: every check, the tier it establishes and what was re-run."""

    checks: list[Check]
    tier: VerifyTier
    #: (seed text, samples per split) of the random subset; None for a --limit or a full re-run
    sample_subset: tuple[str, int] | None
    #: the first N samples per split (--limit), predictable by a submitter; None otherwise
    limit: int | None

    @property
    def failed(self) -> bool:
        return any(check.failed for check in self.checks)

    @property
    def verified_tasks(self) -> list[str]:
        """Tasks whose own checks and the submission-wide ones all passed on samples a submitter could
        not predict (what a store records per run); none after a --limit re-run."""
        if self.limit is not None or any(check.failed and check.task == "-" for check in self.checks):
            return []
        tasks = dict.fromkeys(check.task for check in self.checks if check.task != "-")
        return [task for task in tasks if not any(c.failed and c.task == task for c in self.checks)]

    @property
    def why_not_verified(self) -> str:
        """Why the tier is not "verified" ("" when it is)."""
        if self.tier == "verified":
            return ""
        if self.failed:
            return "a check failed"
        return "--limit re-runs the first N samples, which a submitter can predict: use --samples"


def compare_samples(task: str, ours: Samples, theirs: Samples | None) -> Check:
    """The re-run samples of one split against the submitted ones, matched by sample id: every re-run
    id must be submitted, with the same fields and values within tolerance."""
    what = f"samples {ours.split}"
    if theirs is None:
        return Check(task, what, "not in the submission", "failed")
    position = {sample: i for i, sample in enumerate(theirs.ids)}
    missing = [sample for sample in ours.ids if sample not in position]
    if missing:
        shown = ", ".join(missing[:3]) + (" ..." if len(missing) > 3 else "")
        return Check(task, what, f"{len(missing)} of {len(ours.ids)} re-run samples not submitted: {shown}", "failed")
    if list(ours.fields) != list(theirs.fields):
        return Check(task, what, f"fields {ours.fields[:4]} != submitted {theirs.fields[:4]}", "failed")
    their_values = theirs.values[[position[sample] for sample in ours.ids]]
    if ours.values.shape != their_values.shape:
        return Check(task, what, f"shape {ours.values.shape} != {their_values.shape}", "failed")
    close = np.isclose(ours.values, their_values, atol=VERIFY_ATOL, rtol=VERIFY_RTOL).all(axis=1)
    difference = float(np.max(np.abs(ours.values - their_values))) if ours.values.size else 0.0
    detail = f"{len(ours.ids)} samples by id, max |difference| {difference:.2e}"
    if not close.all():
        wrong = [ours.ids[i] for i in np.flatnonzero(~close)]
        detail += f"; {len(wrong)} differ: " + ", ".join(wrong[:3]) + (" ..." if len(wrong) > 3 else "")
    return Check(task, what, detail, _status(bool(close.all())))


def rescore_checks(sub: Any, problems: list[Problem]) -> list[Check]:
    """validate_file's problems (rescoring every metric from the full submitted parquet included) as
    failed checks, or one passed check when there are none."""
    if sub.samples_file is None or sub.provenance.source != "harness":
        return [Check("-", "metrics re-scored", "no per-sample outputs to re-score the metrics from", "failed")]
    if not problems:
        detail = f"every metric of {len(sub.results)} run(s) recomputes from the submitted samples: all metrics agree"
        return [Check("-", "metrics re-scored", detail, "ok")]
    checks = []
    for problem in problems:
        index = re.match(r"results\[(\d+)\]", problem.field)
        task = sub.results[int(index.group(1))].task if index and int(index.group(1)) < len(sub.results) else "-"
        detail = f"{problem.field}: {problem.message}" if problem.field else problem.message
        checks.append(Check(task, "validate (re-scored)", detail, "failed"))
    return checks


def verify_submission(file: Path, handle: Any, options: Any, reference: Path | None = None) -> Verification:
    """Re-run `handle` on the submission's tasks and check the submission against it.

    `options` (EvalOptions) chooses the samples re-run: `sample_subset` (a random subset per split),
    `limit` (the first N) or neither (all). Checks: the checkpoint hash (a warning at worst), the
    re-run samples by id, the metrics re-scored from the whole submitted parquet, and after a full
    re-run the re-run's metrics."""
    from harness.runner import Runner
    from harness.tasks import adapter_for
    from harness.tasks.compression import with_reference

    sub, problems = validate_file(file, rescore=True)
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
    partial = options.limit is not None or options.sample_subset is not None
    summaries: dict[str, frozenset[str]] = {
        spec.name: getattr(adapter_for(spec), "summary_blocks", frozenset()) for spec in specs
    }
    for task, block in result.samples:
        if partial and block.split in summaries.get(task, frozenset()):
            continue  # a summary of the whole split: a subset's differs; the metrics are re-scored below
        checks.append(compare_samples(task, block, submitted.get(task, {}).get(block.split)))
    checks += rescore_checks(sub, problems)
    if not partial:
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
            checks.append(Check(run.task, "metrics re-run", detail, _status(not mismatches)))
    predictable = options.limit is not None
    failed = any(check.failed for check in checks)
    tier: VerifyTier = "not verified" if failed or predictable else "verified"
    return Verification(checks, tier, options.sample_subset, options.limit)
