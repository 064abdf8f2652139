"""A sweep: models x tasks evaluated by an executor, each model recorded as soon as it finishes.

`run_and_record` asks an executor (harness/executors: here, or Ray tasks) for one outcome per model and
writes each model's submission file and store rows from this process alone, in the order of the
models: one writer, a deterministic order, nothing lost when a later model crashes. It sits above the
runner and the executors; neither imports it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from harness.errors import HarnessError
from harness.models.base import ModelHandle
from harness.runner import EvalOptions, ModelResult
from harness.schema import TaskSpec

if TYPE_CHECKING:
    from rich.progress import Progress

    from harness.executors import Executor


@dataclass
class Recorded:
    """One model's result, and the submission file written for it (None without an output folder)."""

    result: ModelResult
    submission_path: Path | None


def run_and_record(
    models: Sequence[Path | ModelHandle],
    specs: Sequence[TaskSpec],
    options: EvalOptions,
    *,
    out: Path | None,
    store_path: Path | None,
    progress: Progress | None = None,
    on_error: Callable[[Path, HarnessError], None] | None = None,
    on_skip: Callable[[ModelHandle, TaskSpec, str], None] | None = None,
    select: Callable[[TaskSpec, ModelHandle], bool] | None = None,
    executor: Executor | None = None,
) -> list[Recorded]:
    """Evaluate each model, then write its submission file and ingest it into the store at once.

    Models given as paths are loaded one at a time (and released before the next loads), so a sweep
    of many checkpoints needs the memory of one. Tasks that do not fit a model (capability, training
    data, the adapter's own check) go to `on_skip` with the reason and the model runs the others; tasks
    that `select` rejects are left out silently (the demo's per-task model tags). Each model is recorded
    as soon as it finishes, so a crash later never loses earlier models. A HarnessError for one model
    (while loading or evaluating) goes to `on_error` (when given) and the others still run.

    `executor` runs the evaluations (default: `LocalExecutor`, here, one model after the other; see
    harness/executors). Whatever runs them, this process alone writes the submissions and the store,
    in the order of `models`.
    """
    from harness.executors import LocalExecutor
    from harness.submissions import write_submission

    recorded = []
    outcomes = (executor or LocalExecutor()).outcomes(models, specs, options, progress, on_skip, select)
    for outcome in outcomes:
        if outcome.error is not None:
            if on_error is None:
                raise outcome.error
            on_error(outcome.path, outcome.error)
            continue
        result = outcome.result
        if result is None:
            continue
        try:
            path = write_submission(out, result.submission, result.samples) if out is not None else None
        except OSError as error:
            raise HarnessError(
                f"cannot write the submission of {result.submission.model.model_id} ({error.strerror})",
                where=str(error.filename or out),
                fix="free disk space or choose a writable --out; submissions written before are intact",
            ) from None
        if store_path is not None:
            from harness.store import open_store  # here: DuckDB is not loaded by --no-store runs

            with open_store(store_path) as store:
                store.ingest([(result.submission, str(path) if path else None)])
        recorded.append(Recorded(result, path))
    return recorded
