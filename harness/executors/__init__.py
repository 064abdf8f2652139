"""Executors: where the runner's units of work run.

A unit of work is one model with the tasks that share its inference (`harness.runner.evaluate_one`:
load, plan, forward passes through the output cache, metrics). An executor runs the units of a sweep
and yields one `Outcome` per model, in the order of the models, to `harness.sweep.run_and_record`,
which alone writes the submission files and the store (one writer, a deterministic order).

- `LocalExecutor`: here, one model after the other (the default; the behaviour `harness eval` always had).
- `RayExecutor` (harness/executors/ray_cluster.py, `--executor ray`): each unit is a Ray task with
  declared resources, on a local cluster or on one at `--address`; a single model's large splits are
  cut into shards that run as tasks of their own (harness/executors/sharding.py). Ray is an optional
  extra (`pip install 'harness[ray]'`) and is imported by that module alone, when it is used.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from harness.errors import HarnessError

if TYPE_CHECKING:
    from rich.progress import Progress

    from harness.models.base import ModelHandle
    from harness.runner import EvalOptions, ModelResult
    from harness.schema import TaskSpec

#: what `--executor` accepts
EXECUTORS = ("local", "ray")
#: `--address` of a running Ray cluster: `auto` (the one this machine belongs to), `ray://HOST:PORT`
#: (Ray Client) or `HOST:PORT` (the head node's GCS, from a machine of the cluster)
_ADDRESS = re.compile(
    r"(?:ray://)?(?P<host>[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:]+\]):(?P<port>\d{1,5})"
)

OnSkip = Callable[["ModelHandle", "TaskSpec", str], None]
Select = Callable[["TaskSpec", "ModelHandle"], bool]


@dataclass(frozen=True)
class Outcome:
    """What one model's unit produced: a result (None when no task fit it) or the error that stopped it."""

    path: Path
    result: ModelResult | None = None
    error: HarnessError | None = None


class Executor(Protocol):
    def outcomes(
        self,
        models: Sequence[Path | ModelHandle],
        specs: Sequence[TaskSpec],
        options: EvalOptions,
        progress: Progress | None,
        on_skip: OnSkip | None,
        select: Select | None,
    ) -> Iterator[Outcome]:
        """One Outcome per model, in the order of `models`; tasks that do not fit go to `on_skip`."""
        ...


class LocalExecutor:
    """Every unit in this process, one after the other (a model is released before the next loads)."""

    def outcomes(
        self,
        models: Sequence[Path | ModelHandle],
        specs: Sequence[TaskSpec],
        options: EvalOptions,
        progress: Progress | None,
        on_skip: OnSkip | None,
        select: Select | None,
    ) -> Iterator[Outcome]:
        from harness.runner import Runner, evaluate_one

        runner = Runner(options, progress)
        for model in models:
            where = model if isinstance(model, Path) else model.path
            try:
                yield Outcome(Path(where), result=evaluate_one(runner, model, specs, on_skip, select))
            except HarnessError as error:
                yield Outcome(Path(where), error=error)


@dataclass(frozen=True)
class ExecutorSettings:
    """`harness eval`'s executor options, checked by `check` before anything runs.

    kind: local or ray. The rest are Ray's:
    address: None starts a local cluster on this machine (stopped at the end); `auto`, `ray://HOST:PORT`
        or `HOST:PORT` connect to a running one;
    gpus_per_model / cpus_per_model: the resources each unit (and each shard) declares; None GPUs:
        one per unit when the device may be CUDA and the cluster has GPUs, else none;
    shard_size: cut each split of more than this many samples into contiguous shards run as tasks of
        their own (None: automatic when the sweep is one model: as many shards as units fit the cluster);
    max_retries: how often Ray re-runs a unit whose worker died (finished forward passes are cached).
    """

    kind: str = "local"
    address: str | None = None
    gpus_per_model: float | None = None
    cpus_per_model: float = 1.0
    shard_size: int | None = None
    max_retries: int = 3

    def check(self, device: str = "auto") -> None:
        if self.kind not in EXECUTORS:
            raise HarnessError(f"unknown executor {self.kind!r}", where="--executor", fix="use local or ray")
        ray_only = {
            "--address": self.address is not None,
            "--gpus-per-model": self.gpus_per_model is not None,
            "--cpus-per-model": self.cpus_per_model != 1.0,
            "--shard-size": self.shard_size is not None,
        }
        if self.kind == "local":
            given = [flag for flag, set_ in ray_only.items() if set_]
            if given:
                raise HarnessError(
                    f"{', '.join(given)} only apply to the Ray executor", where=given[0], fix="add --executor ray"
                )
            return
        if self.address is not None:
            check_address(self.address)
        if self.gpus_per_model is not None and not self.gpus_per_model >= 0:
            raise HarnessError(
                f"--gpus-per-model must be 0 or more, not {self.gpus_per_model:g}",
                where="--gpus-per-model",
                fix="pass 0 (CPU), a fraction of a GPU (0.5) or a number of GPUs",
            )
        if self.gpus_per_model and device == "cpu":
            raise HarnessError(
                f"--gpus-per-model {self.gpus_per_model:g} reserves GPUs, but --device cpu runs on the CPU",
                where="--gpus-per-model",
                fix="pass --device cuda (or auto), or --gpus-per-model 0",
            )
        if not self.cpus_per_model > 0:
            raise HarnessError(
                f"--cpus-per-model must be more than 0, not {self.cpus_per_model:g}", where="--cpus-per-model"
            )
        if self.shard_size is not None and self.shard_size < 1:
            raise HarnessError(f"--shard-size must be 1 or more, not {self.shard_size}", where="--shard-size")
        if self.max_retries < 0:
            raise HarnessError(f"max_retries must be 0 or more, not {self.max_retries}")


def check_address(address: str) -> None:
    """`auto`, `ray://HOST:PORT` or `HOST:PORT` with a port in 1-65535; anything else is a HarnessError."""
    match = _ADDRESS.fullmatch(address)
    if address == "auto" or (match is not None and 1 <= int(match.group("port")) <= 65535):
        return
    raise HarnessError(
        f"not a Ray cluster address: {address!r}",
        where="--address",
        fix="use auto (the cluster this machine belongs to), ray://HOST:PORT (Ray Client, port 10001 by default) "
        "or HOST:PORT (the head node's GCS, port 6379 by default)",
    )


@contextmanager
def open_executor(settings: ExecutorSettings, options: EvalOptions) -> Iterator[Executor]:
    """The executor `settings` name, ready to run: a Ray executor is connected to its cluster (started
    here when no address is given) and disconnected, and a cluster it started stopped, on exit."""
    settings.check(options.device)
    if settings.kind == "local":
        yield LocalExecutor()
        return
    from harness.executors.ray_cluster import RayExecutor

    with RayExecutor(settings, options) as executor:
        yield executor
