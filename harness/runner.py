"""The runner: plans (model x tasks), shares inference between tasks, caches per-sample outputs.

For each model, the requests of every task are grouped by (dataset, split, inference kind), so a
forward pass runs once and every task that needs it reads the same outputs. Outputs are cached on
disk by (checkpoint hash, split fingerprint, inference kind) and reused across invocations.
Task adapters then compute metrics from the outputs alone; nothing after the forward pass
touches the model.

`EvalOptions.limit` evaluates the first N samples of each split; `EvalOptions.sample_subset` a random
subset of N sample positions per (task, split), drawn from a seed text (`subset_positions`), which
`harness verify` uses so a submitter cannot know in advance which samples are re-run. A sample's
outputs on a subset are those of a full run: fitting data (`Request.whole`) and splits the samples
are computed against (`Request.per_sample` False) stay whole, and tasks whose samples depend on each
other (adapter attribute `subsettable = False`) run on whole splits.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from harness import provenance
from harness.cache import OutputCache, cache_key, default_cache_dir
from harness.data import get_split, has_split, load_suite
from harness.errors import HarnessError
from harness.models import detect_loader, is_checkpoint, load_model
from harness.models.base import Arrays, Inference, InferenceOptions, LoadOptions, ModelHandle
from harness.registry import INFERENCE
from harness.schema import RunResult, Submission, TaskSpec, canonical_hash
from harness.tasks import adapter_for
from harness.tasks.base import (
    Request,
    Samples,
    SplitOutputs,
    active_requests,
    evaluate,
    run_artifacts,
    run_parameters,
)


@dataclass(frozen=True)
class EvalOptions:
    seed: int = 0
    limit: int | None = None
    device: str = "auto"
    #: None: automatic per model kind (see InferenceOptions.batch_size)
    batch_size: int | None = None
    allow_pickle: bool = False
    dtype: str = "float32"
    cache_dir: Path = field(default_factory=default_cache_dir)
    command: str = ""
    #: (seed text, n): evaluate n sample positions per split, drawn by `subset_positions`; excludes `limit`
    sample_subset: tuple[str, int] | None = None
    #: `--label-map`: (model label, task label) pairs, for classifiers whose label names differ from a
    #: task's (harness/labels.py)
    label_map: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if self.sample_subset is None:
            return
        if self.limit is not None:
            raise HarnessError(
                "a random subset of samples and a limit (the first N samples) exclude each other",
                fix="use one of --samples and --limit",
            )
        if self.sample_subset[1] < 1:
            raise HarnessError(f"a subset of {self.sample_subset[1]} samples is empty", fix="use --samples 1 or more")


def subset_positions(seed: str, task: str, split: str, size: int, n: int) -> list[int]:
    """min(n, size) distinct positions of a split of `size` samples, ascending: numpy's default_rng seeded
    with the integer sha256(seed, task, split) draws them without replacement. The same seed text gives
    the same positions; without the seed (a commit sha not yet made) they cannot be predicted."""
    digest = hashlib.sha256("\x00".join((seed, task, split)).encode()).digest()
    rng = np.random.default_rng(int.from_bytes(digest, "big"))
    return sorted(int(i) for i in rng.choice(size, size=min(n, size), replace=False))


@dataclass
class ModelResult:
    """Everything one model's evaluation produced: the submission and its per-sample outputs."""

    submission: Submission
    samples: list[tuple[str, Samples]]
    cache_hits: int = 0
    cache_misses: int = 0


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise HarnessError(
            "--device cuda was asked for but no CUDA device is available", fix="use --device cpu or auto"
        )
    if device not in ("cpu", "cuda"):
        raise HarnessError(f"unknown device {device!r}", fix="use auto, cpu or cuda")
    return device


def resolve_spec(spec: TaskSpec, handle: ModelHandle) -> TaskSpec:
    """The spec with model-dependent parts filled in by its adapter (when the adapter has `resolve`)."""
    resolve = getattr(adapter_for(spec), "resolve", None)
    return spec if resolve is None else resolve(spec, handle)


def unfit_reason(spec: TaskSpec, handle: ModelHandle, label_map: Sequence[tuple[str, str]] = ()) -> str | None:
    """Why `handle` cannot run `spec`, or None when it can (capability, training data, the adapter's own
    check, and for a task that names its classes, the model's label space: harness/labels.py)."""
    adapter = adapter_for(spec)
    if adapter.capability not in handle.capabilities:
        have = ", ".join(sorted(handle.capabilities)) or "none"
        return (
            f"task {spec.name!r} needs capability {adapter.capability.value!r}; model kind {handle.kind!r} has {have}"
        )
    if spec.models_trained_on and handle.card.trained_on not in spec.models_trained_on:
        return (
            f"task {spec.name!r} is for models trained on {', '.join(spec.models_trained_on)} (its classes are "
            f"that suite's); the card says trained_on={handle.card.trained_on!r}: a classifier trained on "
            f"{spec.models_trained_on[0]} (the zoo's: `harness zoo build`) fits, with card.json trained_on set"
        )
    fits = getattr(adapter, "fits", None)
    reason = None if fits is None else fits(spec, handle)
    if reason is None:
        from harness.labels import unfit_label_reason

        reason = unfit_label_reason(spec, handle, label_map)
    return reason


def load_options(options: EvalOptions, device: str) -> LoadOptions:
    return LoadOptions(device=device, allow_pickle=options.allow_pickle, dtype=options.dtype)


def load_models(paths: Sequence[Path], options: EvalOptions, device: str) -> list[ModelHandle]:
    return [load_model(path, load_options(options, device)) for path in paths]


def expand_model_paths(paths: Sequence[Path]) -> list[Path]:
    """`--model` arguments as checkpoint paths, checked before anything loads.

    A checkpoint (any folder or file a loader detects) stands for itself. A folder that is not a
    checkpoint stands for its immediate subfolders that are, sorted by name (a sweep: one folder per
    step or variant); hidden subfolders and subfolders that are not checkpoints are left out. A path
    that does not exist, or a folder with no checkpoint in it, is a HarnessError.
    """
    out: list[Path] = []
    for path in paths:
        if not path.exists():
            raise HarnessError("model path does not exist", where=str(path), fix="check the --model path")
        if is_checkpoint(path) or not path.is_dir():
            detect_loader(path)  # not a checkpoint: the loader error names what was expected
            out.append(path)
            continue
        members = [p for p in sorted(path.iterdir()) if p.is_dir() and not p.name.startswith(".") and is_checkpoint(p)]
        if not members:
            detect_loader(path)  # raises: not a checkpoint, and no checkpoint folder inside
        out += members
    return out


def planned_split(suite: Any, spec: TaskSpec, request: Request, options: EvalOptions) -> Any:
    """The data `request` of task `spec` reads: fitting data whole; the evaluated samples cut to the first
    `options.limit`, or to the random subset of `options.sample_subset` where the task and the split allow
    it (whole otherwise)."""
    if request.whole:
        return get_split(suite, request.split)
    if options.sample_subset is None:
        return get_split(suite, request.split, options.limit)
    split = get_split(suite, request.split)
    if not request.per_sample or not getattr(adapter_for(spec), "subsettable", True):
        return split
    seed, n = options.sample_subset
    return split.take(subset_positions(seed, spec.name, request.split, len(split), n))


def check_data(specs: Sequence[TaskSpec], limit: int | None) -> None:
    """Load every split the tasks will read, so a missing or malformed dataset fails before any model
    loads. Tasks whose data depends on the model (a compression reference named by the card) are
    checked when the model is known."""
    for spec in specs:
        adapter = adapter_for(spec)
        if getattr(adapter, "resolve", None) is not None:
            continue
        suite = load_suite(spec.dataset)
        splits = {
            request.split: get_split(suite, request.split, None if request.whole else limit)
            for request in active_requests(adapter, spec, suite)
        }
        check_splits = getattr(adapter, "check_splits", None)  # the adapter's own checks of its data
        if check_splits is not None:
            check_splits(spec, splits)


def check_inputs(specs: Sequence[TaskSpec], reads_inputs: bool, where: Path) -> None:
    """A model that reads inputs (any kind but a predictions file) cannot run on a split of labels and
    ids alone: fail before it loads, naming the split's file."""
    if not reads_inputs:
        return
    for spec in specs:
        adapter = adapter_for(spec)
        if getattr(adapter, "resolve", None) is not None:
            continue
        suite = load_suite(spec.dataset)
        for request in active_requests(adapter, spec, suite):
            split = suite.split(request.split)
            if not getattr(split, "has_inputs", True):
                raise HarnessError(
                    f"split {request.split!r} of task {spec.name!r} has labels and ids but no inputs, so only a "
                    f"predictions file can be evaluated on it, not the model at {where}",
                    where=getattr(split, "source", "") or f"dataset {spec.dataset.name}",
                    fix="add the inputs (feature columns, a text column, images) or pass a predictions file as --model",
                )


def check_fit(
    specs: Sequence[TaskSpec], handles: Sequence[ModelHandle], label_map: Sequence[tuple[str, str]] = ()
) -> None:
    """Fail before running anything if a requested task cannot run on a requested model."""
    for handle in handles:
        for spec in specs:
            if reason := unfit_reason(spec, handle, label_map):
                raise HarnessError(
                    reason, where=str(handle.path), fix="choose tasks that fit the model (see `harness tasks`)"
                )


def submission_id(
    handle: ModelHandle, specs: Sequence[TaskSpec], fingerprints: dict[str, dict[str, str]], options: EvalOptions
) -> str:
    """Deterministic id: the same checkpoint, inference settings, tasks, data, seed and limit give the same
    submission; changing any of them gives another (a bfloat16 run never overwrites a float32 one)."""
    payload = {
        "checkpoint": handle.checkpoint_hash,
        "settings": handle.settings,
        "tasks": sorted((s.name, s.spec_hash()) for s in specs),
        "data": fingerprints,
        "seed": options.seed,
        "limit": options.limit,
    }
    if options.sample_subset is not None:  # only then: the ids of full and limited runs stay as they were
        payload["sample_subset"] = list(options.sample_subset)
    if options.label_map:  # likewise: runs without a label map keep their ids
        payload["label_map"] = [list(pair) for pair in options.label_map]
    return canonical_hash(payload)[:20]


#: runs one inference on a split and returns its outputs: (handle, split, inference, options) -> arrays
Compute = Callable[[ModelHandle, Any, Inference, InferenceOptions], Arrays]


def compute_here(handle: ModelHandle, split: Any, inference: Inference, options: InferenceOptions) -> Arrays:
    """The default `Compute`: the forward pass runs in this process, on the handle's device."""
    return inference.run(handle, split, options)


class Runner:
    """Evaluates models on tasks; `progress` (optional) shows bars for forward passes and tasks.

    `compute` runs each forward pass that the cache does not hold (default: here; the Ray executor
    passes one that shards it across workers), and `device` is the device those passes run on
    (default: `options.device` resolved on this machine)."""

    def __init__(
        self,
        options: EvalOptions,
        progress: Progress | None = None,
        *,
        device: str | None = None,
        compute: Compute = compute_here,
    ) -> None:
        self.options = options
        self.device = device or resolve_device(options.device)
        self.cache = OutputCache(options.cache_dir)
        self.progress = progress
        self.compute = compute

    def evaluate(self, handle: ModelHandle, specs: Sequence[TaskSpec]) -> ModelResult:
        started = time.perf_counter()
        hits = misses = 0
        # Plan: resolve every task's requests to data splits; a forward pass runs once per
        # (split fingerprint, inference kind), however many tasks (or datasets) share that split.
        specs = [resolve_spec(spec, handle) for spec in specs]
        planned: dict[str, dict[str, tuple[Any, Request]]] = {}
        for spec in specs:
            suite = load_suite(spec.dataset)
            planned[spec.name] = {
                r.split: (planned_split(suite, spec, r, self.options), r)
                for r in active_requests(adapter_for(spec), spec, suite, handle)
            }
        outputs: dict[tuple[str, str, tuple[tuple[str, Any], ...]], SplitOutputs] = {}
        for requests in planned.values():
            for split, request in requests.values():
                key = (split.fingerprint, request.inference, request.params)
                if key not in outputs:
                    outputs[key], hit = self._infer(
                        handle, split, INFERENCE.get(request.inference), dict(request.params)
                    )
                    hits, misses = hits + hit, misses + (not hit)
        results: list[RunResult] = []
        samples: list[tuple[str, Samples]] = []
        fingerprints: dict[str, dict[str, str]] = {}
        task_bar = self._add_task(f"{handle.card.name}: tasks", len(specs))
        for spec in specs:
            adapter = adapter_for(spec)
            inputs = {
                name: outputs[(split.fingerprint, r.inference, r.params)]
                for name, (split, r) in planned[spec.name].items()
            }
            fingerprints[spec.name] = {split: value.split.fingerprint for split, value in inputs.items()}
            inputs = _in_task_label_space(spec, handle, inputs, self.options.label_map)
            task_started = time.perf_counter()
            try:
                blocks, outcome = evaluate(adapter, spec, inputs, self.options.seed)
            except HarnessError as error:
                raise HarnessError(f"task {spec.name}: {error.what}", where=str(handle.path), fix=error.fix) from None
            results.append(
                RunResult(
                    run_id="",  # filled in below, once the submission id is known
                    task=spec.name,
                    task_version=spec.version,
                    spec_hash=spec.spec_hash(),
                    adapter=spec.adapter,
                    main_metric=spec.main_metric,
                    metrics=outcome.metrics,
                    parameters=run_parameters(spec, outcome),
                    dataset_fingerprints=fingerprints[spec.name],
                    artifacts=run_artifacts(outcome, spec.main_metric, self.options.seed),
                    duration_s=time.perf_counter() - task_started,
                )
            )
            samples += [(spec.name, block) for block in blocks]
            self._advance(task_bar)
        sid = submission_id(handle, specs, fingerprints, self.options)
        submission = Submission(
            submission_id=sid,
            model=handle.card,
            checkpoint_hash=handle.checkpoint_hash,
            seed=self.options.seed,
            # a subset is no full run either: at most that many samples per split
            sample_limit=self.options.limit if self.options.sample_subset is None else self.options.sample_subset[1],
            settings=_settings(handle, self.options),
            provenance=provenance.collect(self.device, time.perf_counter() - started, self.options.command),
            results=[r.model_copy(update={"run_id": f"{sid}-{r.task}"}) for r in results],
            samples_file=f"{sid}.parquet" if samples else None,
        )
        return ModelResult(submission, samples, cache_hits=hits, cache_misses=misses)

    def _infer(
        self, handle: ModelHandle, split: Any, inference: Inference, params: dict[str, Any]
    ) -> tuple[SplitOutputs, bool]:
        """Outputs of `inference` on a split: from the cache, or one forward pass (then cached)."""
        version = f"{inference.version}|{canonical_hash(params)}" if params else inference.version
        key = cache_key(handle.identity, split.fingerprint, inference.name, version)
        cached = self.cache.get(key)
        if cached is not None:
            return SplitOutputs(split, cached), True
        bar = self._add_task(f"{handle.card.name}: {inference.name} {split.name}", len(split))

        def advance(n: int) -> None:
            self._advance(bar, n)

        inference_options = InferenceOptions(batch_size=self.options.batch_size, advance=advance, params=params)
        arrays = self.compute(handle, split, inference, inference_options)
        try:
            self.cache.put(key, arrays)
        except OSError as error:
            raise HarnessError(
                f"cannot write the output cache ({error.strerror})",
                where=str(self.cache.root),
                fix="free disk space or point HARNESS_CACHE_DIR (--cache-dir) at a writable folder",
            ) from None
        return SplitOutputs(split, arrays), False

    def _add_task(self, description: str, total: int) -> Any:
        return self.progress.add_task(description, total=total) if self.progress else None

    def _advance(self, bar: Any, n: int = 1) -> None:
        if self.progress is not None and bar is not None:
            self.progress.advance(bar, n)


def progress_bar(console: Any = None) -> Progress:
    """The rich progress display used by `harness eval` and `harness demo`."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


def evaluate_one(
    runner: Runner,
    model: Path | ModelHandle,
    specs: Sequence[TaskSpec],
    on_skip: Callable[[ModelHandle, TaskSpec, str], None] | None,
    select: Callable[[TaskSpec, ModelHandle], bool] | None,
) -> ModelResult | None:
    """Load (when given a path) and evaluate one model on the tasks that fit it; None when none does.
    A model loaded here is released when this returns."""
    handle = model if isinstance(model, ModelHandle) else load_model(model, load_options(runner.options, runner.device))
    fitting = []
    for spec in specs:
        if select is not None and not select(spec, handle):
            continue
        reason = unfit_reason(spec, handle, runner.options.label_map)
        if reason is None:
            fitting.append(spec)
        elif on_skip is None:
            raise HarnessError(
                reason, where=str(handle.path), fix="choose tasks that fit the model (see `harness tasks`)"
            )
        else:
            on_skip(handle, spec, reason)
    for spec in fitting:
        check_label_space(spec, handle, runner.options.limit)
    check_inputs(fitting, getattr(handle, "reads_inputs", True), handle.path)
    return runner.evaluate(handle, fitting) if fitting else None


def check_label_space(spec: TaskSpec, handle: ModelHandle, limit: int | None) -> None:
    """Before any forward pass: a classifier must score every class the task's splits label."""
    from harness.labels import task_class_names

    n_outputs = handle.n_outputs
    adapter = adapter_for(spec)
    label_splits = getattr(adapter, "label_splits", None)
    if n_outputs is None or label_splits is None or task_class_names(spec):
        return  # a task that names its classes maps the model's labels by name (unfit_reason checked it)
    suite = load_suite(spec.dataset)
    for name in label_splits(spec):
        if not has_split(suite, name):  # an optional split the dataset leaves out
            continue
        labels = getattr(get_split(suite, name, limit), "y", None)
        if labels is not None and len(labels) and int(labels.max()) >= n_outputs:
            raise HarnessError(
                f"the model has {n_outputs} outputs but split {name!r} of task {spec.name!r} has labels "
                f"up to {int(labels.max())}",
                where=str(handle.path),
                fix="evaluate the model on a dataset with its own label space (see `harness tasks`)",
            )


def _in_task_label_space(
    spec: TaskSpec, handle: ModelHandle, inputs: dict[str, SplitOutputs], label_map: Sequence[tuple[str, str]]
) -> dict[str, SplitOutputs]:
    """A classification task's inputs with the model's logits mapped onto the task's classes
    (harness/labels.py); unchanged when the outputs already are the task's classes, in order."""
    from harness.labels import label_mapping, remap_outputs

    mapping = label_mapping(spec, handle, label_map)
    if mapping is None or mapping.outputs is None:
        return inputs
    return {name: SplitOutputs(value.split, remap_outputs(value.outputs, mapping)) for name, value in inputs.items()}


def _settings(handle: ModelHandle, options: EvalOptions) -> dict[str, str]:
    """The submission's settings: the model's, and a digest of the label map when one was given."""
    settings = dict(handle.settings)
    if options.label_map:
        settings["label_map"] = canonical_hash([list(pair) for pair in options.label_map])[:16]
    return settings
