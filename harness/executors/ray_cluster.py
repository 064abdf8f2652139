"""The Ray executor (`harness eval --executor ray`): a sweep's units as Ray tasks, on one machine or a cluster.

The only module that imports Ray (lazily: `pip install 'harness[ray]'` when it is missing).

- Units: each model of a sweep is one Ray task (`work.evaluate_unit`) declaring `num_cpus` and
  `num_gpus`; Ray places the tasks on the cluster's workers and re-runs a task whose worker died
  (`max_retries`). The driver collects the results in the order of the models, and
  `harness.sweep.run_and_record` writes the submissions and the store from here alone.
- Shards: a sweep of one model (or any sweep with `--shard-size`) is planned on the driver, one model
  at a time, from the facts a worker reports when it loads the model (`work.describe`); each forward
  pass the cache does not hold runs as Ray tasks over contiguous shards of its split
  (`work.infer_shard`), merged in order (harness/executors/sharding.py) and cached by the driver
  under the whole split's key.
- The cache: workers read and write `--cache-dir` (HARNESS_CACHE_DIR is passed to them). On a cluster,
  point it at a shared filesystem: finished forward passes are then never recomputed, whether a worker
  died and its unit was retried or the driver was restarted. Without one, each node caches its own.
- A local cluster (no `--address`) is started here with this machine's CPUs and GPUs and stopped at the end.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from harness.errors import HarnessError
from harness.executors import ExecutorSettings, OnSkip, Outcome, Select
from harness.executors.sharding import auto_shard_size, concat_shards, shard_ranges
from harness.executors.work import (
    HandleFacts,
    UnitResult,
    describe,
    evaluate_unit,
    infer_shard,
    on_worker,
    readiness,
    warm,
)
from harness.models.base import DEFAULT_BATCH_SIZE, Arrays, Inference, InferenceOptions, ModelHandle

if TYPE_CHECKING:
    from rich.progress import Progress

    from harness.runner import EvalOptions
    from harness.schema import TaskSpec

#: environment variables a worker needs as the driver has them (offline hubs, caches, tokenizers)
FORWARDED_ENV = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "HF_HOME", "HF_DATASETS_CACHE", "TOKENIZERS_PARALLELISM")


def import_ray() -> ModuleType:
    """The `ray` module, or a HarnessError that says how to install it."""
    try:
        return importlib.import_module("ray")
    except ImportError:
        raise HarnessError(
            "--executor ray needs Ray, which is not installed",
            fix="pip install 'harness[ray]' (or use --executor local)",
        ) from None


def worker_env(options: EvalOptions) -> dict[str, str]:
    """The variables every worker gets: HARNESS_* and FORWARDED_ENV as set here, and the output cache."""
    env = {k: v for k, v in os.environ.items() if k.startswith("HARNESS_") or k in FORWARDED_ENV}
    env["HARNESS_CACHE_DIR"] = str(Path(options.cache_dir).resolve())
    return env


def thread_env() -> dict[str, str]:
    """The thread counts of this process's BLAS libraries (numpy's OpenBLAS, MKL, BLIS) as environment
    variables, for workers of a cluster on this machine.

    BLAS reductions (OOD's covariance and pseudo-inverse) change in their last bits with the number of
    threads, so workers run BLAS with the driver's counts and a unit's per-sample outputs are those of a
    local run, bit for bit. torch keeps Ray's one thread per reserved CPU (OMP_NUM_THREADS): its CPU
    inference kernels split work by output rows and give the same bits at any thread count (tested on
    the digits classifiers), and a worker per CPU with several torch threads each would oversubscribe
    the machine."""
    threadpoolctl: Any = importlib.import_module("threadpoolctl")  # scikit-learn's dependency
    names = {"openblas": "OPENBLAS_NUM_THREADS", "mkl": "MKL_NUM_THREADS", "blis": "BLIS_NUM_THREADS"}
    env = {}
    for library in threadpoolctl.threadpool_info():
        name = names.get(str(library.get("internal_api")))
        if name is not None:
            env[name] = str(library["num_threads"])
    return env


#: connections a Ray Client driver tries: the head forks a server process for each, which dies now and
#: then while it starts (a gRPC race in Ray's proxier, ray-project/ray#63202, about 7% of connections;
#: seen here on a busy 2-core machine); the client then reports "Initialization failure from server"
CLIENT_ATTEMPTS = 3


def _client_server_died(error: BaseException) -> bool:
    """Whether a Ray Client connection failed because the head's server process for it did not start."""
    text = str(error)
    return "Initialization failure from server" in text or "Starting Ray client server failed" in text


def _first_line(error: BaseException) -> str:
    """One line for an error raised on a worker: the cause's type and message, not Ray's traceback."""
    cause = getattr(error, "cause", None)
    if isinstance(cause, BaseException):
        error = cause
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}".rstrip(": ")


class RayExecutor:
    """Runs units and shards as Ray tasks; a context manager that connects to (or starts) the cluster.

    In a process already connected to Ray (`ray.init` called before), that connection is used and
    left open; otherwise `__enter__` connects (starting a local cluster when `settings.address` is
    None) and `__exit__` disconnects, which stops a local cluster it started."""

    def __init__(self, settings: ExecutorSettings, options: EvalOptions) -> None:
        self.settings = settings
        self.options = options
        self.connected_here = False
        #: seconds `__enter__` took (a local cluster's start-up)
        self.startup_s = 0.0
        self.cpus = 0.0
        self.gpus = 0.0
        self.gpus_per_unit = 0.0
        self._ray: Any = None
        self._thread_env: dict[str, str] = {}

    # ------------------------------------------------------------------ cluster

    def __enter__(self) -> RayExecutor:
        started = time.perf_counter()
        self._ray = ray = import_ray()
        if not ray.is_initialized():
            self._connect(ray)
        resources = ray.cluster_resources()
        self.cpus, self.gpus = float(resources.get("CPU", 0)), float(resources.get("GPU", 0))
        try:
            self.gpus_per_unit = self._gpus_per_unit()
            if self.settings.cpus_per_model > self.cpus:
                raise HarnessError(
                    f"each model asks for {self.settings.cpus_per_model:g} CPUs, but the Ray cluster has {self.cpus:g}",
                    where="--cpus-per-model",
                    fix="ask for fewer CPUs per model, or add nodes to the cluster",
                )
        except HarnessError:
            self.__exit__(None, None, None)
            raise
        self._thread_env = thread_env()
        self.startup_s = time.perf_counter() - started
        return self

    def __exit__(self, *exc: object) -> None:
        if self.connected_here and self._ray is not None:
            self._ray.shutdown()
            self.connected_here = False

    def _connect(self, ray: Any) -> None:
        address = self.settings.address
        kwargs: dict[str, Any] = {
            "runtime_env": {"env_vars": worker_env(self.options)},
            "log_to_driver": False,  # worker output would tear the driver's progress display
            "logging_level": logging.WARNING,
        }
        if address is None:
            kwargs["include_dashboard"] = False
        attempts = CLIENT_ATTEMPTS if address is not None and address.startswith("ray://") else 1
        for attempt in range(1, attempts + 1):
            try:
                ray.init(address=address, **kwargs)
                break
            except (ConnectionError, RuntimeError, ValueError, TimeoutError) as error:
                if attempt < attempts and _client_server_died(error):
                    with contextlib.suppress(Exception):
                        ray.shutdown()
                    time.sleep(attempt)
                    continue
                raise self._connect_error(address, error) from None
        self.connected_here = True

    def _connect_error(self, address: str | None, error: BaseException) -> HarnessError:
        where = address or "a local cluster"
        if "ray[client]" in str(error):
            return HarnessError(
                "a ray:// address needs Ray Client, which is not installed",
                where=where,
                fix='pip install "harness[ray]" (or "ray[client]==2.60.0")',
            )
        fix = "start it (`ray start --head` on the head node) or check --address"
        if address is not None and address.startswith("ray://"):
            fix += "; a cluster with token authentication needs RAY_AUTH_MODE=token here (docs/scale.md)"
            if _client_server_died(error):
                fix += (
                    f"; the head's server process for this connection died {CLIENT_ATTEMPTS} times "
                    "(see the head's ray_client_server logs)"
                )
        return HarnessError(f"cannot connect to the Ray cluster ({_first_line(error)})", where=where, fix=fix)

    def _gpus_per_unit(self) -> float:
        wanted = self.settings.gpus_per_model
        device = self.options.device
        if wanted is None:
            wanted = 1.0 if device in ("cuda", "auto") and self.gpus >= 1 else 0.0
        if device == "cuda" and (wanted == 0 or self.gpus == 0):
            raise HarnessError(
                "--device cuda on Ray needs GPUs for every model, but "
                + ("the cluster has none" if self.gpus == 0 else "--gpus-per-model is 0"),
                where="--gpus-per-model",
                fix="pass --gpus-per-model 1 on a cluster with GPUs, or --device cpu",
            )
        if wanted > self.gpus:
            raise HarnessError(
                f"each model asks for {wanted:g} GPUs, but the Ray cluster has {self.gpus:g}",
                where="--gpus-per-model",
                fix="ask for fewer GPUs per model, or add GPU nodes to the cluster",
            )
        return wanted

    @property
    def slots(self) -> int:
        """How many units (or shards) the cluster runs at once."""
        by_cpu = int(self.cpus // self.settings.cpus_per_model)
        by_gpu = int(self.gpus // self.gpus_per_unit) if self.gpus_per_unit else by_cpu
        return max(1, min(by_cpu, by_gpu))

    def _remote(self, function: Any, specs: Sequence[TaskSpec] = ()) -> _WorkerTask:
        """`function` of harness/executors/work.py as a Ray task named after it, with this executor's
        resources and retries, run through `work.on_worker` (which readies the worker process first for
        the adapters and dataset suites of `specs`); on a cluster of this machine (no --address), in
        workers with this process's thread counts (`thread_env`)."""
        options: dict[str, Any] = {
            "num_cpus": self.settings.cpus_per_model,
            "num_gpus": self.gpus_per_unit,
            "max_retries": self.settings.max_retries,
            "name": function.__name__,  # what the Ray dashboard and its errors call the task
        }
        if self.settings.address is None:
            options["runtime_env"] = {"env_vars": self._thread_env}
        return _WorkerTask(self._ray.remote(on_worker).options(**options), function, readiness(specs))

    def warm_up(self, specs: Sequence[TaskSpec] = ()) -> float:
        """Start one worker per slot and ready it as the first units would (`work.on_worker`: torch, the
        runner, the model loaders, the adapters and built-in dataset suites of `specs` imported, then
        frozen); returns seconds. A sweep does not need it (its first units pay the same); benchmarks
        separate a cluster's start-up from the sweep with it."""
        started = time.perf_counter()
        task = self._remote(warm, specs)
        self._ray.get([task.remote() for _ in range(self.slots)])
        return time.perf_counter() - started

    # ------------------------------------------------------------------ units

    def outcomes(
        self,
        models: Sequence[Path | ModelHandle],
        specs: Sequence[TaskSpec],
        options: EvalOptions,
        progress: Progress | None,
        on_skip: OnSkip | None,
        select: Select | None,
    ) -> Iterator[Outcome]:
        """One Outcome per model in the order of `models`; a model given as a loaded handle is loaded
        again from its path on a worker."""
        if self._ray is None:
            raise RuntimeError("use RayExecutor as a context manager (with RayExecutor(...) as executor)")
        paths = [Path(m) if isinstance(m, Path) else Path(m.path) for m in models]
        if self.settings.shard_size is not None or len(paths) == 1:
            for path in paths:
                yield self._sharded(path, specs, options, progress, on_skip, select)
            return
        unit = self._remote(evaluate_unit, specs)
        refs = [unit.remote(path, list(specs), options, select, on_skip is None) for path in paths]
        bar = (
            progress.add_task(f"ray: {len(paths)} models on {self.slots} workers", total=len(paths))
            if progress
            else None
        )
        done = 0
        try:
            for path, ref in zip(paths, refs, strict=True):
                yield self._collect(path, ref, specs, on_skip)
                done += 1
                if progress is not None and bar is not None:
                    progress.advance(bar)
        finally:
            for ref in refs[done:]:  # the consumer stopped early: do not leave the rest running
                self._ray.cancel(ref)

    def _collect(self, path: Path, ref: Any, specs: Sequence[TaskSpec], on_skip: OnSkip | None) -> Outcome:
        try:
            unit: UnitResult = self._ray.get(ref)
        except self._ray.exceptions.RayError as error:
            return Outcome(path, error=self._task_error(path, error))
        if unit.error is not None:
            return Outcome(path, error=unit.error)
        by_name = {spec.name: spec for spec in specs}
        for name, reason in unit.skips:
            if on_skip is not None and unit.facts is not None:
                on_skip(unit.facts, by_name[name], reason)
        return Outcome(path, result=unit.result)

    def _task_error(self, path: Path, error: BaseException) -> HarnessError:
        cause = getattr(error, "cause", None)
        if isinstance(cause, HarnessError):
            return HarnessError(cause.what, where=cause.where or str(path), fix=cause.fix)
        return HarnessError(
            f"the Ray task evaluating this model failed ({_first_line(error)})",
            where=str(path),
            fix="see the worker's log in the Ray session folder; the other models still ran",
        )

    # ------------------------------------------------------------------ shards

    def _sharded(
        self,
        path: Path,
        specs: Sequence[TaskSpec],
        options: EvalOptions,
        progress: Progress | None,
        on_skip: OnSkip | None,
        select: Select | None,
    ) -> Outcome:
        """One model planned here, its forward passes sharded across the workers."""
        from harness.models import detect_loader
        from harness.runner import Runner, evaluate_one

        try:
            reads_inputs = getattr(detect_loader(path), "reads_inputs", True)
        except HarnessError as error:
            return Outcome(path, error=error)
        if not reads_inputs:  # a predictions file: no forward pass to shard, one unit reads it
            unit = self._remote(evaluate_unit, specs).remote(path, list(specs), options, select, on_skip is None)
            return self._collect(path, unit, specs, on_skip)
        try:
            facts: HandleFacts = self._ray.get(self._remote(describe).remote(path, options))
        except self._ray.exceptions.RayError as error:
            return Outcome(path, error=self._task_error(path, error))

        def compute(
            handle: ModelHandle, split: Any, inference: Inference, inference_options: InferenceOptions
        ) -> Arrays:
            return self._compute(path, handle, split, inference, inference_options)

        runner = Runner(options, progress, device=facts.device, compute=compute)
        try:
            return Outcome(path, result=evaluate_one(runner, facts, specs, on_skip, select))
        except HarnessError as error:
            return Outcome(path, error=error)

    def shard_size(self, n: int) -> int | None:
        """Samples per shard for a split of `n` (None: the split runs whole, as one task)."""
        if self.settings.shard_size is not None:
            return self.settings.shard_size if self.settings.shard_size < n else None
        return auto_shard_size(n, self.slots, self.options.batch_size or DEFAULT_BATCH_SIZE)

    def _compute(
        self, path: Path, handle: ModelHandle, split: Any, inference: Inference, options: InferenceOptions
    ) -> Arrays:
        """The `Compute` of sharded runs: the inference as Ray tasks over shards of the split, merged in order."""
        ray = self._ray
        size = self.shard_size(len(split)) if inference.shardable else None
        ranges = [None] if size is None else [(r.start, r.stop) for r in shard_ranges(len(split), size)]
        split_ref = ray.put(split)  # one copy in the object store, read by every shard
        task = self._remote(infer_shard)
        refs = [
            task.remote(path, self.options, handle.identity, split_ref, positions, inference.name, options.params)
            for positions in ranges
        ]
        parts = []
        try:
            for positions, ref in zip(ranges, refs, strict=True):
                parts.append(ray.get(ref))
                options.advance(len(split) if positions is None else positions[1] - positions[0])
        except ray.exceptions.RayError as error:
            for pending in refs:
                ray.cancel(pending)
            raise self._task_error(path, error) from None
        return parts[0] if size is None else concat_shards(parts, where=f"{path} ({inference.name} {split.name})")


class _WorkerTask:
    """A work function submitted as a Ray task through `work.on_worker`: `remote(*args)` returns the
    task's ObjectRef; `ready` is what the worker imports before it freezes (`work.readiness`)."""

    def __init__(self, task: Any, function: Any, ready: dict[str, list[str]]) -> None:
        self._task = task
        self._function = function
        self._ready = ready

    def remote(self, *args: Any) -> Any:
        return self._task.remote(self._function, *args, **self._ready)
