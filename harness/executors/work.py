"""What a worker runs: pure functions of (checkpoint, tasks or split, options) that return their outputs.

The Ray executor wraps these as Ray tasks; they import nothing of Ray, so they run (and are tested)
in any process. None of them writes a submission or the store: only the output cache, whose entries
are content-addressed and written atomically, so workers that share its folder share their work.

- `evaluate_unit`: one model with its tasks, as `harness eval` evaluates it; returns the ModelResult,
  the tasks skipped and why, or the model's one-line error.
- `describe`: loads a model and returns its `HandleFacts` (what the driver needs to plan it).
- `infer_shard`: one inference on positions [start, stop) of a split (or the whole split).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from harness.errors import HarnessError
from harness.models.base import Arrays, InferenceOptions, LoadOptions, ModelHandle

if TYPE_CHECKING:
    from harness.executors import Select
    from harness.runner import EvalOptions, ModelResult
    from harness.schema import TaskSpec

T = TypeVar("T")


@dataclass
class HandleFacts(ModelHandle):
    """A model as the driver sees it when it loaded on a worker: identity, card, capabilities and the
    facts the runner's checks read, without weights. `device` is the device the worker resolved."""

    outputs: int | None = None
    reads_inputs: bool = True
    device: str = "cpu"

    @property
    def n_outputs(self) -> int | None:
        return self.outputs


def facts_of(handle: ModelHandle, device: str) -> HandleFacts:
    return HandleFacts(
        path=handle.path,
        kind=handle.kind,
        card=handle.card,
        checkpoint_hash=handle.checkpoint_hash,
        capabilities=handle.capabilities,
        settings=dict(handle.settings),
        outputs=handle.n_outputs,
        reads_inputs=bool(getattr(handle, "reads_inputs", True)),
        device=device,
    )


@dataclass
class UnitResult:
    """One unit's return value: `result` (None when no task fit), or `error` (what, where, fix);
    `skips` are (task name, reason) with `facts` describing the model for the driver's messages."""

    path: Path
    result: ModelResult | None = None
    skips: list[tuple[str, str]] = field(default_factory=list)
    facts: HandleFacts | None = None
    error: HarnessError | None = None


def evaluate_unit(
    path: Path, specs: list[TaskSpec], options: EvalOptions, select: Select | None, skips_are_errors: bool = False
) -> UnitResult:
    """Load the model at `path` on this worker and evaluate it on the tasks that fit (`evaluate_one`).

    A HarnessError is returned, not raised: it is the model's own failure and the sweep goes on.
    With `skips_are_errors`, a task that does not fit is that error (as for a single-model `harness eval`)."""
    from harness.runner import Runner, evaluate_one

    unit = UnitResult(path)

    def on_skip(handle: ModelHandle, spec: TaskSpec, reason: str) -> None:
        unit.skips.append((spec.name, reason))
        unit.facts = unit.facts or facts_of(handle, runner.device)

    try:
        runner = Runner(options)
        unit.result = evaluate_one(runner, path, specs, None if skips_are_errors else on_skip, select)
    except HarnessError as error:
        unit.error = error
    finally:
        release_memory()  # the model is gone: an idle worker holds no GPU memory
    return unit


def release_memory() -> None:
    """Free what this worker's finished task left: unreachable objects, then CUDA's cached blocks."""
    import gc

    from harness.models.batching import release_cuda_cache

    gc.collect()
    release_cuda_cache()


def describe(path: Path, options: EvalOptions) -> HandleFacts:
    """Load the model at `path` on this worker (kept for the shards that follow) and return its facts."""
    from harness.runner import load_options, resolve_device

    device = resolve_device(options.device)
    facts = facts_of(loaded_model(path, load_options(options, device)), device)
    if device == "cuda":  # not kept on a GPU (`loaded_model`): free it now
        release_memory()
    return facts


def infer_shard(
    path: Path,
    options: EvalOptions,
    identity: str,
    split: Any,
    positions: tuple[int, int] | None,
    inference: str,
    params: dict[str, Any],
) -> Arrays:
    """Outputs of `inference` on positions [start, stop) of `split` (all of it when `positions` is None),
    computed with the model at `path`, which must still be the model of `identity`."""
    from harness.registry import INFERENCE
    from harness.runner import load_options, resolve_device

    handle = loaded_model(path, load_options(options, resolve_device(options.device)))
    if handle.identity != identity:
        raise HarnessError(
            "the checkpoint a worker loaded is not the one the driver planned (its files or settings differ)",
            where=str(path),
            fix="do not change checkpoints during a sweep, and give every worker the same device kind",
        )
    part = split if positions is None else split.take(list(range(*positions)))
    arrays: Arrays = INFERENCE.get(inference).run(
        handle, part, InferenceOptions(batch_size=options.batch_size, params=params)
    )
    if handle.settings.get("device") == "cuda":
        del handle
        release_memory()
    return arrays


def on_worker(function: Callable[..., T], *args: Any, adapters: Sequence[str] = (), datasets: Sequence[str] = ()) -> T:
    """`function(*args)` as a Ray task runs it: in a worker process readied first (`ready_process` with
    the sweep's task adapters and built-in dataset suites). The Ray executor submits every task this way."""
    ready_process(adapters, datasets)
    return function(*args)


def readiness(specs: Sequence[TaskSpec]) -> dict[str, list[str]]:
    """`on_worker`'s keyword arguments for a sweep of `specs`: their adapters and built-in dataset suites."""
    return {
        "adapters": sorted({spec.adapter for spec in specs}),
        "datasets": sorted({spec.dataset.name for spec in specs if spec.dataset.kind == "builtin"}),
    }


#: whether this process's long-lived objects were moved out of the garbage collector's view
_FROZEN = False


def ready_process(adapters: Sequence[str] = (), datasets: Sequence[str] = ()) -> None:
    """Do in this worker process what every first unit would: import torch, the runner, every model loader,
    the named task adapters and the modules of the named built-in dataset suites (the digits suites import
    scikit-learn and scipy.stats: 2 s on a 2-core machine), and check the installed packages against the
    lock file (cached per process, read by each submission's provenance).

    The first call in a process then collects garbage and freezes what is alive (`gc.freeze`): the
    300,000 objects those imports create are never garbage, and without this every collection scans
    them again (0.12 s for each unit's `release_memory`, and as much in the automatic collections while
    a unit runs, on a unit of 0.9 s). Besides modules and registries, only the first task's arguments are
    alive then (a path, specs and options; a shard's split), never a loaded model. Frozen objects are
    still freed when their last reference goes; only one caught in a reference cycle would stay. Only
    `on_worker` calls this: a worker process runs tasks and nothing else, while the driver's process
    (the CLI, a notebook, a test) is left as it is."""
    global _FROZEN
    import gc

    import torch  # noqa: F401

    import harness.runner  # noqa: F401
    from harness.provenance import locked_environment
    from harness.registry import DATASETS, MODEL_LOADERS, TASK_ADAPTERS

    for name in MODEL_LOADERS.names():
        MODEL_LOADERS.get(name)
    for name in adapters:
        TASK_ADAPTERS.get(name)
    for name in datasets:
        DATASETS.get(name)
    locked_environment()
    if not _FROZEN:
        gc.collect()
        gc.freeze()
        _FROZEN = True


def warm(seconds: float = 0.5) -> int:
    """Stay busy a moment, so that each slot of the cluster gets its own worker (submitted through
    `on_worker`, which readies the worker); returns the worker's pid."""
    import os
    import time

    time.sleep(seconds)
    return os.getpid()


#: the model this worker process loaded last, by (path, load options): a worker that runs several
#: shards of one model on the CPU loads it once
_LOADED: dict[tuple[Path, LoadOptions], ModelHandle] = {}


def loaded_model(path: Path, options: LoadOptions) -> ModelHandle:
    """The model at `path`, kept for this process's next shard when it runs on the CPU. On CUDA it is
    not kept: Ray hands a GPU to a task, not to a process, and an idle worker must not hold GPU memory
    that the next task on that GPU needs (a shard then loads the model itself)."""
    from harness.models import load_model
    from harness.models.batching import is_cuda, release_cuda_cache

    key = (Path(path), options)
    if key not in _LOADED:
        _LOADED.clear()  # one model at a time: release the previous one before loading
        release_cuda_cache()
        handle = load_model(path, options)
        if is_cuda(options.device):
            return handle
        _LOADED[key] = handle
    return _LOADED[key]
