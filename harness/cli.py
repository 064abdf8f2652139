"""The `harness` command line: eval, tasks, models, submit, validate, ingest, verify, import, leaderboard,
zoo, data, demo, app.

Every user-input problem is a HarnessError, printed as one line on stderr with exit code 2.
"""

from __future__ import annotations

import os
import shlex
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from harness.data_cli import data_app
from harness.errors import HarnessError

if TYPE_CHECKING:  # heavy modules are imported inside the commands that need them
    from harness.executors import Executor
    from harness.models.base import ModelHandle
    from harness.runner import EvalOptions
    from harness.schema import Submission, TaskSpec
    from harness.store import Store
    from harness.trust import Tier
    from harness.validation import Problem

app = typer.Typer(
    name="harness",
    help="Evaluate ML checkpoints on a registry of tasks; keep results in a DuckDB leaderboard.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
zoo_app = typer.Typer(help="Build the offline model zoo (real checkpoints trained here).", no_args_is_help=True)
app.add_typer(zoo_app, name="zoo")
task_app = typer.Typer(help="Write task specs for your own data (docs/own-data.md).", no_args_is_help=True)
app.add_typer(task_app, name="task")
app.add_typer(data_app, name="data")

console = Console()
err_console = Console(stderr=True)

DEFAULT_STORE = Path("results.duckdb")
DEFAULT_OUT = Path("submissions")
DEFAULT_ZOO = Path("zoo")
DEFAULT_DEMO_DIR = Path("demo")
#: random samples per split that `harness verify` re-runs by default
VERIFY_SAMPLES = 64


#: `--include-path DIR` (repeatable): folders of task YAML files added to the built-in tasks
IncludePath = Annotated[
    Optional[list[Path]],
    typer.Option("--include-path", help="folder of your own task YAML files, added to the built-in tasks (repeatable)"),
]


#: `--jobs N`: worker processes that re-score submission files
Jobs = Annotated[
    Optional[int],
    typer.Option("--jobs", min=1, help="worker processes that re-score the files (default: one per core)"),
]


def _validate(
    paths: list[Path], *, rescore: bool = True, tiers: dict[str, Tier] | None = None, jobs: int | None = None
) -> tuple[list[tuple[Submission, str]], list[Problem]]:
    """`validate_files` with a progress bar on a terminal (re-scoring a folder takes a while)."""
    from harness.validation import submission_files, validate_files

    if not err_console.is_terminal:
        return validate_files(paths, rescore=rescore, tiers=tiers, workers=jobs)
    from harness.runner import progress_bar

    total = sum(1 for _ in submission_files(paths))
    with progress_bar(err_console) as progress:
        bar = progress.add_task("validating", total=total)
        return validate_files(
            paths, rescore=rescore, tiers=tiers, workers=jobs, on_file=lambda _file: progress.advance(bar)
        )


def _include(paths: list[Path] | None) -> None:
    from harness.tasks import include_tasks

    include_tasks(paths or [], replace=True)


def _split_csv(values: list[str]) -> list[str]:
    return [item.strip() for value in values for item in value.split(",") if item.strip()]


def _fmt(value: float | None) -> str:
    return "" if value is None or value != value else f"{value:.4f}"


# ----------------------------------------------------------------------------- tasks, models


@app.command()
def tasks(include_path: IncludePath = None) -> None:
    """List every task: description, the model capability it needs, its main metric."""
    from harness.data_cli import data_status
    from harness.metrics import metric_info
    from harness.tasks import adapter_for, load_specs

    _include(include_path)
    specs = load_specs()
    table = Table(title="Tasks")
    for column in ("task", "description", "needs", "main metric", "dataset", "data"):
        table.add_column(column)
    for name in sorted(specs.names()):
        spec = specs.get(name)
        direction = "higher is better" if metric_info(spec.main_metric).higher_is_better else "lower is better"
        table.add_row(
            name,
            spec.description,
            adapter_for(spec).capability.value,
            f"{spec.main_metric} ({direction})",
            f"{spec.dataset.kind}:{spec.dataset.name}",
            data_status(spec),
        )
    console.print(table)


@task_app.command("new")
def task_new(
    adapter: Annotated[
        str, typer.Option(help="calibration, ood, longtail, lm_loss or flatness (see `harness tasks`)")
    ] = "calibration",
    out: Annotated[
        Optional[Path], typer.Option(help="write the template to this .yaml file [default: print it]")
    ] = None,
    name: Annotated[
        Optional[str], typer.Option(help="task name [default: the --out file's name, else my-task]")
    ] = None,
    data: Annotated[
        Optional[str], typer.Option(help="your data's folder, written as dataset.path [default: a placeholder]")
    ] = None,
    force: Annotated[bool, typer.Option(help="overwrite --out if it exists")] = False,
) -> None:
    """Write a commented task-spec template for your own data; fill in dataset.path (or pass --data) and run it."""
    from harness.tasks.templates import PLACEHOLDER_PATH, task_template

    if out is not None and out.suffix not in (".yaml", ".yml"):
        raise HarnessError("a task spec file must end in .yaml or .yml", where=str(out))
    task_name = name or (out.stem if out is not None else "my-task")
    if out is not None and name is not None and name != out.stem:
        raise HarnessError(
            f"--name {name!r} differs from the file name {out.name!r}",
            fix="a task's name is its file name: drop --name",
        )
    text = task_template(adapter, task_name, str(out) if out is not None else "", data)
    if out is None:
        sys.stdout.write(text)
        return
    if out.exists() and not force:
        raise HarnessError("the file exists", where=str(out), fix="choose another --out or pass --force")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    if data is None:
        console.print(f"wrote {out}: replace {PLACEHOLDER_PATH} with your data's folder, then", soft_wrap=True)
    else:
        console.print(
            f"wrote {out} (data: {data}); check it with `harness tasks --include-path {out.parent}`, then",
            soft_wrap=True,
        )
    console.print(f"  harness eval --model YOUR_MODEL --tasks {out}", markup=False, highlight=False)


@app.command()
def models(
    paths: Annotated[
        Optional[list[Path]], typer.Argument(help="checkpoints to inspect; none lists the model kinds")
    ] = None,
    allow_pickle: Annotated[bool, typer.Option(help="allow loading pickle weight files")] = False,
) -> None:
    """List the model kinds Harness can load, or inspect checkpoints (kind, card, capabilities, hash)."""
    from harness.models import load_model
    from harness.models.base import LoadOptions
    from harness.registry import MODEL_LOADERS

    if not paths:
        table = Table(title="Model kinds (detected from the files at --model PATH)")
        table.add_column("kind")
        table.add_column("description")
        table.add_column("expects")
        for kind in MODEL_LOADERS.names():
            loader = MODEL_LOADERS.get(kind)
            table.add_row(kind, loader.description, loader.expects)
        console.print(table)
        return
    table = Table(title="Checkpoints")
    for column in ("path", "model", "kind", "family", "parameters", "capabilities", "checkpoint sha256"):
        table.add_column(column)
    for path in paths:
        handle = load_model(path, LoadOptions(allow_pickle=allow_pickle))
        table.add_row(
            str(path),
            handle.card.model_id,
            handle.kind,
            handle.card.family,
            f"{handle.card.n_parameters:,}" if handle.card.n_parameters is not None else "?",
            ", ".join(sorted(handle.capabilities)),
            handle.checkpoint_hash[:16] + "...",
        )
    console.print(table)


# ----------------------------------------------------------------------------- eval


@app.command(name="eval")
def eval_(
    model: Annotated[list[str], typer.Option("--model", "-m", help="checkpoint path(s); comma-separated or repeated")],
    tasks: Annotated[
        list[str],
        typer.Option(
            "--tasks",
            "-t",
            help="task names or task YAML files (path/to/task.yaml), comma-separated (see `harness tasks`)",
        ),
    ],
    store: Annotated[Path, typer.Option(help="DuckDB results store to add the runs to")] = DEFAULT_STORE,
    out: Annotated[Path, typer.Option(help="folder for submission files")] = DEFAULT_OUT,
    no_store: Annotated[bool, typer.Option("--no-store", help="do not write to the store")] = False,
    limit: Annotated[
        Optional[int], typer.Option(min=1, help="evaluate only the first N samples of each split (never ranked)")
    ] = None,
    seed: Annotated[int, typer.Option(help="seed for bootstrap CIs and any sampling")] = 0,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda")] = "auto",
    batch_size: Annotated[
        Optional[int],
        typer.Option(
            min=1,
            help="inference batch size [default: automatic: 256 for classifiers; language models as many "
            "sequences as keep a forward pass's activations within 32 MB]",
        ),
    ] = None,
    allow_pickle: Annotated[bool, typer.Option(help="allow loading pickle weight files (can execute code)")] = False,
    cache_dir: Annotated[
        Optional[Path], typer.Option(help="per-sample output cache [default: $HARNESS_CACHE_DIR or ~/.cache/harness]")
    ] = None,
    dtype: Annotated[
        str, typer.Option(help="weights dtype: float32, bfloat16, float16 (every kind but predictions files)")
    ] = "float32",
    details: Annotated[bool, typer.Option(help="print every metric, not only each task's main metric")] = False,
    reference: Annotated[
        Optional[Path], typer.Option(help="reference model for the compression task (default: the card's reference)")
    ] = None,
    label_map: Annotated[
        Optional[Path],
        typer.Option(
            "--label-map",
            help="JSON/YAML file mapping model labels (id2label names or output indices) to task class names, "
            "for a classifier whose labels differ from a task's (docs/catalog.md)",
        ),
    ] = None,
    include_path: IncludePath = None,
    executor: Annotated[
        str, typer.Option(help="where the models run: local (this process) or ray (a Ray cluster; docs/scale.md)")
    ] = "local",
    address: Annotated[
        Optional[str],
        typer.Option(help="Ray: a running cluster, auto or ray://HOST:PORT [default: start a local cluster]"),
    ] = None,
    gpus_per_model: Annotated[
        Optional[float],
        typer.Option(
            help="Ray: GPUs each model's task reserves [default: 1 when the cluster has GPUs and --device "
            "is auto or cuda, else 0]"
        ),
    ] = None,
    cpus_per_model: Annotated[float, typer.Option(help="Ray: CPUs each model's task reserves")] = 1.0,
    shard_size: Annotated[
        Optional[int],
        typer.Option(
            help="Ray: cut each split into shards of N samples run as separate tasks [default: automatic "
            "for a single model]"
        ),
    ] = None,
) -> None:
    """Evaluate checkpoints on tasks; write submission files and add the runs to the store.

    A --model folder that is not itself a checkpoint stands for the checkpoints in its immediate
    subfolders (a sweep). Several models are loaded one at a time; a task that does not fit one of
    them is skipped for that model with its reason. Exit code: 0 when every model ran every task,
    1 when some model/task pairs were skipped, 2 on bad input or when a model failed.

    --executor ray runs each model as a Ray task (a single model's splits in shards) on a local
    cluster or the one at --address; this process alone writes the submissions and the store.
    """
    from harness.data.lm_eval_source import one_reading_per_command
    from harness.executors import ExecutorSettings, open_executor
    from harness.models import check_dtype, detect_loader
    from harness.runner import check_data, check_fit, check_inputs, expand_model_paths, load_models, resolve_device

    options = _options(seed, limit, device, batch_size, allow_pickle, cache_dir, dtype)
    if label_map is not None:
        import dataclasses

        from harness.labels import read_label_map

        options = dataclasses.replace(options, label_map=read_label_map(label_map))
    # Validate every input before anything runs or is written: executor, tasks, models, dtype, store, data.
    settings = ExecutorSettings(executor, address, gpus_per_model, cpus_per_model, shard_size)
    settings.check(device)
    _include(include_path)
    specs = resolve_tasks(_split_csv(tasks))
    if reference is not None:
        from harness.tasks.compression import with_reference

        if not reference.exists():
            raise HarnessError("reference model path does not exist", where=str(reference), fix="check --reference")
        specs = [with_reference(s, str(reference)) if s.adapter == "compression" else s for s in specs]
    if not specs:
        raise HarnessError("no task given", fix="pass --tasks, e.g. --tasks calib (see `harness tasks`)")
    paths = expand_model_paths([Path(p) for p in _split_csv(model)])
    for path in paths:
        check_dtype(dtype, detect_loader(path), path)
    store_path = None if no_store else store
    if store_path is not None:
        from harness.store import check_store  # here: DuckDB is not loaded by --no-store runs

        check_store(store_path)
    with one_reading_per_command():  # the data checks and the run read each lm-eval task's data once
        check_data(specs, limit)
        for path in paths:  # a split of labels alone suits a predictions file only: said before any model loads
            check_inputs(specs, getattr(detect_loader(path), "reads_inputs", True), path)
        models: Sequence[Path | ModelHandle] = paths
        if len(paths) == 1:  # one model: a task that does not fit it is an input error, before anything runs
            # (on Ray the model runs on the workers: checked here on the CPU, its weights left unused)
            handles = load_models(paths, options, "cpu" if executor == "ray" else resolve_device(device))
            check_fit(specs, handles, options.label_map)
            models = paths if executor == "ray" else handles
        elif executor == "local":
            console.print(
                f"{len(paths)} models, loaded one at a time: " + ", ".join(p.name for p in paths), style="dim"
            )
        with open_executor(settings, options) as runs_on:
            if executor == "ray":
                console.print(_ray_banner(runs_on, len(paths)), style="dim")
            failed, skipped = _run(models, specs, options, out, store_path, details, executor=runs_on)
    if failed:
        raise typer.Exit(2)
    if skipped:
        raise typer.Exit(1)


def _ray_banner(executor: Any, n_models: int) -> str:
    """One line on the cluster a sweep runs on: its resources, what each model reserves, the start-up time."""
    what = f"{n_models} models as Ray tasks" if n_models > 1 else "1 model, its forward passes in Ray shards"
    return (
        f"ray: {what} on {executor.cpus:g} CPUs and {executor.gpus:g} GPUs ({executor.settings.cpus_per_model:g} "
        f"CPUs, {executor.gpus_per_unit:g} GPUs per task; connected in {executor.startup_s:.1f} s)"
    )


def resolve_tasks(names: list[str]) -> list[TaskSpec]:
    """Task specs by name; `lm_eval:<task>` is any lm-evaluation-harness task; a name ending in .yaml or
    .yml, or naming an existing file, is a task spec file (added to this process's tasks)."""
    from harness.tasks import load_specs, looks_like_spec_file, spec_from_file
    from harness.tasks.lm_eval import dynamic_spec

    files = {name: spec_from_file(Path(name)) for name in names if looks_like_spec_file(name)}
    registry = load_specs()
    return [
        files[name] if name in files else dynamic_spec(name) if name.startswith("lm_eval:") else registry.get(name)
        for name in names
    ]


def _options(
    seed: int,
    limit: int | None,
    device: str,
    batch_size: int | None,
    allow_pickle: bool,
    cache_dir: Path | None,
    dtype: str = "float32",
) -> EvalOptions:
    from harness.cache import default_cache_dir
    from harness.runner import EvalOptions

    if cache_dir is not None:  # one cache for everything this process computes (reference models included)
        os.environ["HARNESS_CACHE_DIR"] = str(cache_dir)
    return EvalOptions(
        seed=seed,
        limit=limit,
        device=device,
        batch_size=batch_size,
        allow_pickle=allow_pickle,
        dtype=dtype,
        command=shlex.join(["harness", *sys.argv[1:]]),
        cache_dir=cache_dir if cache_dir is not None else default_cache_dir(),
    )


def _run(
    models: Sequence[Path | ModelHandle],
    specs: list[TaskSpec],
    options: EvalOptions,
    out: Path,
    store_path: Path | None,
    details: bool = False,
    *,
    select: Callable[[TaskSpec, ModelHandle], bool] | None = None,
    report_skips: bool = True,
    executor: Executor | None = None,
) -> tuple[int, int]:
    """Run (on `executor`, default here), print the results table; returns (models that failed, model/task
    pairs skipped)."""
    from harness.runner import progress_bar
    from harness.sweep import run_and_record

    failures: list[str] = []
    skips: list[str] = []

    def on_error(path: Path, error: HarnessError) -> None:
        failures.append(error.one_line())

    def on_skip(handle: ModelHandle, spec: TaskSpec, reason: str) -> None:
        skips.append(f"{handle.card.name}: skipped {spec.name}: {reason}")

    with progress_bar(err_console) as progress:
        recorded = run_and_record(
            models, specs, options, out=out, store_path=store_path, progress=progress, on_error=on_error,
            on_skip=on_skip, select=select, executor=executor,
        )  # fmt: skip
    if recorded:
        table = Table(title="Results" + (f" (--limit {options.limit}: not ranked)" if options.limit else ""))
        for column in ("model", "task", "metric", "value", "95% CI", "n"):
            table.add_column(column, overflow="fold")
        for item in recorded:
            sub = item.result.submission
            dtype = sub.settings.get("dtype", "float32")
            label = sub.model.name + ("" if dtype == "float32" else f" ({dtype})")
            for run in sub.results:
                for metric in run.metrics:
                    if not details and metric.name != run.main_metric:
                        continue
                    ci = f"[{_fmt(metric.ci_low)}, {_fmt(metric.ci_high)}]" if metric.ci_low is not None else ""
                    name = metric.name + (" *" if metric.name == run.main_metric else "")
                    table.add_row(label, run.task, name, _fmt(metric.value), ci, str(metric.n))
        console.print(table)
        console.print("* main metric" + ("" if details else "; --details shows every metric"), style="dim")
    for item in recorded:  # what a run left out and why (no calib split: no temperature scaling, ...)
        for run in item.result.submission.results:
            notes = run.parameters.get("notes")
            for note in notes if isinstance(notes, list) else []:
                console.print(
                    f"note: {item.result.submission.model.name} {run.task}: {note}",
                    style="yellow", markup=False, highlight=False, soft_wrap=True,
                )  # fmt: skip
    passes = sum(item.result.cache_misses for item in recorded)
    hits = sum(item.result.cache_hits for item in recorded)
    console.print(f"inference: {passes} forward passes, {hits} reused from the cache", style="dim")
    for item in recorded:
        if item.submission_path:
            console.print(f"wrote {item.submission_path}", style="dim")
    if store_path is not None and recorded:
        console.print(
            f"stored {sum(len(r.result.submission.results) for r in recorded)} runs in {store_path}", style="dim"
        )
    if report_skips:
        for skip in skips:
            console.print(skip, style="yellow", markup=False, highlight=False, soft_wrap=True)
    for failure in failures:
        err_console.print(f"error: {failure}", style="red", markup=False, highlight=False, soft_wrap=True)
    return len(failures), len(skips)


# ----------------------------------------------------------------------------- submissions and store


@app.command()
def validate(
    paths: Annotated[list[Path], typer.Argument(help="submission files or folders (e.g. submissions/)")],
    rescore: Annotated[bool, typer.Option(help="recompute every metric from the per-sample outputs")] = True,
    include_path: IncludePath = None,
    jobs: Jobs = None,
    upgrade: Annotated[
        bool,
        typer.Option(
            help="rewrite valid files of an older schema in the current one, with the re-scored numbers "
            "(maintainers; only when no file has a problem)"
        ),
    ] = False,
) -> None:
    """Check submission files: schema, names, sizes, tasks, duplicates, and metrics re-scored from samples."""
    _include(include_path)
    if upgrade and not rescore:
        raise HarnessError("--upgrade writes re-scored numbers", fix="drop --no-rescore")
    valid, problems = _validate(paths, rescore=rescore, jobs=jobs)
    if upgrade and problems:
        err_console.print("--upgrade: nothing rewritten while any file has a problem", style="yellow")
    elif upgrade:
        from harness.submissions import rewrite_upgraded

        upgraded = rewrite_upgraded(valid)
        for path in upgraded:
            console.print(f"upgraded {path}", style="dim")
        console.print(f"{len(upgraded)} files rewritten in the current schema")
    for problem in problems:
        err_console.print(f"invalid: {problem.one_line()}", markup=False, highlight=False, soft_wrap=True)
    bad_files = len({p.file for p in problems})
    console.print(f"{len(valid)} valid, {bad_files} invalid submission files ({len(problems)} problems)")
    if problems:
        raise typer.Exit(2)


@app.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="submission files or folders (e.g. submissions/)")],
    store: Annotated[Path, typer.Option(help="DuckDB results store")] = DEFAULT_STORE,
    rebuild: Annotated[bool, typer.Option(help="replace the store with one built from these files alone")] = False,
    rescore: Annotated[
        bool,
        typer.Option(help="re-score every metric from its samples; without it every run is stored as self-reported"),
    ] = True,
    include_path: IncludePath = None,
    jobs: Jobs = None,
) -> None:
    """Load submission files into the store in one transaction: one invalid file and nothing is ingested.

    Files are ingested in the order git first committed them (then by path): that order, not a
    file's `created_at`, decides which run of a model is its latest. Each run is stored with the
    trust tier validation established (docs/trust.md)."""
    from harness import store as store_module
    from harness.submissions import commit_order

    store_module.check_store(store, replacing=rebuild)  # a FIFO, a read-only file: refused before the work
    _include(include_path)
    tiers: dict[str, Tier] = {}
    loaded, problems = _validate(
        paths, rescore=rescore, tiers=tiers, jobs=jobs
    )  # all checked before anything is written
    if problems:
        for problem in problems:
            err_console.print(f"invalid: {problem.one_line()}", markup=False, highlight=False, soft_wrap=True)
        raise HarnessError(
            f"{len({p.file for p in problems})} invalid submission files; nothing was ingested",
            fix="fix or remove them (`harness validate` lists every problem)",
        )
    loaded = commit_order(loaded)
    if rebuild:
        written = store_module.rebuild(store, loaded, tiers=lambda sub, run: tiers[run.run_id])
    else:
        with store_module.open_store(store) as opened:
            written = opened.ingest(loaded, tiers=lambda sub, run: tiers[run.run_id])
    counts = Counter(tiers[run.run_id] for sub, _ in loaded for run in sub.results)
    console.print(
        f"ingested {len(loaded)} submissions ({written} runs: "
        + ", ".join(f"{counts[t]} {t}" for t in sorted(counts))
        + f") into {store}"
        + (" (rebuilt)" if rebuild else "")
    )


@app.command()
def submit(
    files: Annotated[list[Path], typer.Argument(help="submission JSON files written by `harness eval --out`")],
    out: Annotated[Path, typer.Option(help="the submissions folder of the leaderboard repository")] = DEFAULT_OUT,
    include_path: IncludePath = None,
) -> None:
    """Copy evaluated submissions (JSON + per-sample parquet) into submissions/<org>__<model>/, validated."""
    import shutil

    from harness.validation import validate_files

    _include(include_path)
    valid, problems = validate_files(files)
    for problem in problems:
        err_console.print(f"invalid: {problem.one_line()}", markup=False, highlight=False, soft_wrap=True)
    if problems:
        raise HarnessError("nothing was submitted", fix="fix the problems above (`harness validate` checks a file)")
    for submission, file in valid:
        folder = out / f"{submission.model.org}__{submission.model.name}"
        folder.mkdir(parents=True, exist_ok=True)
        source = Path(file)
        targets = [(source, folder / source.name)]
        if submission.samples_file:
            targets.append((source.parent / submission.samples_file, folder / submission.samples_file))
        for origin, target in targets:
            if origin.resolve() != target.resolve():
                shutil.copyfile(origin, target)
        console.print(f"submitted {folder / source.name}")
    console.print("next: commit the files and open a pull request (see CONTRIBUTING.md)", style="dim")


@app.command()
def verify(
    submission: Annotated[Path, typer.Argument(help="a submission JSON file")],
    model: Annotated[Path, typer.Option("--model", "-m", help="the checkpoint the submission claims to evaluate")],
    samples: Annotated[
        Optional[int],
        typer.Option(
            "--samples",
            min=0,
            help=f"re-run N samples of each split drawn at random from --sample-seed (default {VERIFY_SAMPLES}; "
            "0: every sample)",
        ),
    ] = None,
    sample_seed: Annotated[
        Optional[str],
        typer.Option(help="text the random samples are drawn from, e.g. a commit sha (default: a fresh seed, printed)"),
    ] = None,
    limit: Annotated[
        Optional[int],
        typer.Option(min=1, help="re-run the first N samples of each split instead (predictable: never 'verified')"),
    ] = None,
    reference: Annotated[Optional[Path], typer.Option(help="reference model for compression runs")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda")] = "auto",
    allow_pickle: Annotated[bool, typer.Option(help="allow loading pickle weight files (can execute code)")] = False,
    cache_dir: Annotated[Optional[Path], typer.Option(help="per-sample output cache")] = None,
    store: Annotated[
        Optional[Path],
        typer.Option(help="record the outcome for the submission's runs in this store (ingest the file first)"),
    ] = None,
    include_path: IncludePath = None,
) -> None:
    """Re-run a checkpoint on random samples of each split and check the submission against it.

    The re-run samples are compared with the submitted ones by sample id, and every metric is
    re-scored from the whole submitted parquet. Exit code 0 when every check passes (a different
    checkpoint hash, e.g. a zoo rebuilt on another machine, is only a warning) and the tier is
    "verified" (except with --limit), 1 when a check fails, 2 on bad input.
    """
    import dataclasses
    import secrets

    from harness.runner import load_models, resolve_device
    from harness.untrusted import read_json
    from harness.verify import verify_submission

    if not submission.is_file():
        raise HarnessError("submission file does not exist", where=str(submission))
    _include(include_path)
    if limit is not None and (samples is not None or sample_seed is not None):
        raise HarnessError(
            "--limit (the first N samples) excludes --samples and --sample-seed (random samples)",
            fix="drop --limit: random samples are what verify is for",
        )
    n_samples = VERIFY_SAMPLES if samples is None else samples
    if n_samples == 0 and sample_seed is not None:
        raise HarnessError("--sample-seed draws random samples, but --samples 0 re-runs all of them", fix="drop one")
    try:
        seed = int(read_json(submission).get("seed", 0))  # size and nesting capped before parsing
    except (HarnessError, ValueError, TypeError, AttributeError):
        seed = 0  # not a valid submission: verify_submission reports why
    options = _options(seed, limit, device, None, allow_pickle, cache_dir)
    if limit is None and n_samples > 0:
        sample_seed = sample_seed if sample_seed is not None else secrets.token_hex(8)
        options = dataclasses.replace(options, sample_subset=(sample_seed, n_samples))
        console.print(
            f"verify: {n_samples} random samples per split, seed {sample_seed} (repeat with --sample-seed {sample_seed})"
        )
    if store is not None:
        from harness.store import check_store

        check_store(store)
    handle = load_models([model], options, resolve_device(device))[0]
    verification = verify_submission(submission, handle, options, reference)
    if store is not None:
        _record_verification(store, submission, verification)
    table = Table(title=f"verify {submission.name} against {model}")
    for column in ("task", "check", "detail", "ok"):
        table.add_column(column, overflow="fold")
    marks = {"ok": "yes", "warning": "[yellow]warning[/yellow]", "failed": "[red]NO[/red]"}
    for check in verification.checks:
        table.add_row(check.task, check.what, check.detail, marks[check.status])
    console.print(table)
    if verification.sample_subset is not None:
        console.print(f"sample seed: {verification.sample_subset[0]}")
    tier_line = f"tier: {verification.tier}"
    if verification.why_not_verified:
        tier_line += f" ({verification.why_not_verified})"
    if verification.failed:
        console.print("verify: the submission does not match the checkpoint's behaviour", style="red")
        console.print(tier_line, style="red", markup=False, highlight=False)
        raise typer.Exit(1)
    same = all(check.status == "ok" for check in verification.checks)
    console.print("verify: " + ("same checkpoint, same behaviour" if same else "same behaviour (another checkpoint)"))
    console.print(tier_line, markup=False, highlight=False)


def _record_verification(store: Path, submission: Path, verification: Any) -> None:
    """One row per run in the store's `verifications`: ok for the tasks verify verified."""
    from harness import __version__
    from harness.store import open_store
    from harness.submissions import read_submission

    sub = read_submission(submission)
    verified = set(verification.verified_tasks)
    seed, n = verification.sample_subset or ("", 0)
    with open_store(store) as opened:
        for run in sub.results:
            ok = run.task in verified
            detail = "; ".join(f"{c.what}: {c.detail}" for c in verification.checks if c.task in (run.task, "-"))
            opened.record_verification(
                run.run_id, ok=ok, sample_seed=seed, samples=n, detail=detail[:2000], harness_version=__version__
            )
    console.print(f"recorded in {store}: {len(verified)} of {len(sub.results)} runs verified")


@app.command(name="check-pr")
def check_pr(
    author: Annotated[str, typer.Option(help="GitHub login of the pull request's author")],
    changes: Annotated[str, typer.Option(help="`git diff --name-status -M BASE HEAD` output: a file, or - for stdin")],
    owners: Annotated[
        Path, typer.Option(help="owners file; in CI the BASE commit's copy, never the pull request's")
    ] = Path(".github/submission-owners.json"),
    root: Annotated[
        Optional[Path],
        typer.Option(help="checkout of the pull request's head (read as data): refuses symlinks and case collisions"),
    ] = None,
) -> None:
    """Check that a pull request changes only submission files in folders its author may change.

    Exit code 0 when it may, 2 with one line per problem when it may not (see CONTRIBUTING.md).
    """
    from harness.ownership import check_checkout, check_pull_request, list_submission_files, load_owners, parse_changes

    loaded = load_owners(owners)
    if changes == "-":
        text, source = sys.stdin.read(), "stdin"
    else:
        try:
            text, source = Path(changes).read_text(encoding="utf-8"), changes
        except (OSError, UnicodeDecodeError) as error:
            raise HarnessError(
                f"cannot read the changes ({type(error).__name__})",
                where=changes,
                fix="pass the output of `git diff --name-status -M BASE HEAD` (a file or -)",
            ) from None
    parsed = parse_changes(text, source)
    if root is not None and not root.is_dir():
        raise HarnessError("the checkout folder does not exist", where=str(root), fix="pass the PR head's checkout")
    head_paths = list_submission_files(root) if root is not None else []
    problems = check_pull_request(parsed, author, loaded, head_paths)
    if root is not None:
        problems += check_checkout(parsed, root)
    for problem in problems:
        err_console.print(f"refused: {problem.one_line()}", markup=False, highlight=False, soft_wrap=True)
    if problems:
        raise HarnessError(
            f"{len(problems)} problem{'s' * (len(problems) != 1)}: this pull request may not be merged as it is",
            fix="see 'Who may change which folder' in CONTRIBUTING.md",
        )
    from harness.ownership import ownership_reason, split_folder

    folders: dict[str, list[str]] = {}
    for change in parsed:
        for path in {change.path, change.old_path} - {None}:
            assert path is not None
            folders.setdefault(path.split("/")[1], []).append(change.status[0])
    table = Table(title=f"pull request by {author}")
    for column in ("folder", "changes", "allowed as"):
        table.add_column(column, overflow="fold")
    for folder, statuses in sorted(folders.items()):
        org = (split_folder(folder) or ("", ""))[0]
        summary = ", ".join(f"{statuses.count(s)} {s}" for s in sorted(set(statuses)))
        table.add_row(folder, summary, ownership_reason(org, author, loaded) or "")
    if folders:
        console.print(table)
    console.print(f"check-pr: {len(parsed)} changes, all in folders {author} may change")


import_app = typer.Typer(help="Import results written by other tools as submissions.", no_args_is_help=True)
app.add_typer(import_app, name="import")


@import_app.command("lm-eval")
def import_lm_eval(
    results: Annotated[Path, typer.Argument(help="an lm-evaluation-harness results JSON (from --output_path)")],
    org: Annotated[str, typer.Option(help="organisation of the model")] = "imported",
    name: Annotated[Optional[str], typer.Option(help="model name (default: from the results file)")] = None,
    out: Annotated[Path, typer.Option(help="submissions folder")] = DEFAULT_OUT,
) -> None:
    """Import an lm-evaluation-harness results file as a submission (provenance: imported)."""
    from harness.imports import from_lm_eval
    from harness.submissions import write_submission

    if not results.is_file():
        raise HarnessError("results file does not exist", where=str(results))
    path = write_submission(out, from_lm_eval(results, org, name), [])
    console.print(f"imported {results} -> {path}")


@import_app.command("mteb")
def import_mteb(
    results: Annotated[Path, typer.Argument(help="an MTEB results folder (one <Task>.json per task)")],
    org: Annotated[str, typer.Option(help="organisation of the model")] = "imported",
    name: Annotated[
        Optional[str], typer.Option(help="model name (default: from model_meta.json or the folder)")
    ] = None,
    out: Annotated[Path, typer.Option(help="submissions folder")] = DEFAULT_OUT,
) -> None:
    """Import an MTEB results folder as a submission (provenance: imported)."""
    from harness.imports import from_mteb
    from harness.submissions import write_submission

    path = write_submission(out, from_mteb(results, org, name), [])
    console.print(f"imported {results} -> {path}")


@app.command()
def leaderboard(
    store: Annotated[Path, typer.Option(help="DuckDB results store")] = DEFAULT_STORE,
    task: Annotated[Optional[list[str]], typer.Option(help="only these tasks")] = None,
    tier: Annotated[
        Optional[list[str]],
        typer.Option(help="trust tiers to rank: verified, re-scored, self-reported [default: verified,re-scored]"),
    ] = None,
    ladder: Annotated[
        bool,
        typer.Option(
            "--ladder",
            help="print each org's guarded best (the Ladder, adaptive-overfitting guard) and raw best per task",
        ),
    ] = False,
) -> None:
    """Print the leaderboard of every task in the store (latest ranked run per model), with each row's tier."""
    from harness.store import open_store
    from harness.trust import RANKED_TIERS, check_tiers

    try:
        tiers = check_tiers(_split_csv(tier or [])) if tier else list(RANKED_TIERS)
    except ValueError as error:
        raise HarnessError(str(error), where="--tier") from None
    with open_store(store, read_only=True) as opened:
        if ladder:
            _print_ladders(opened, _split_csv(task or []) or opened.tasks(), tiers)
        else:
            _print_leaderboards(opened, _split_csv(task or []) or opened.tasks(), tiers)


def _print_ladders(opened: Store, task_names: list[str], tiers: Sequence[str]) -> None:
    """Per task and org: the guarded best (harness/ladder.py), the raw best, submissions and accepted ones.
    Whether the guard is on for a board comes from leaderboard.toml ($HARNESS_LADDER_CONFIG), if any."""
    from harness.ladder import SETTINGS_FILE, load_settings

    explicit = os.environ.get("HARNESS_LADDER_CONFIG")
    settings = load_settings(Path(explicit or SETTINGS_FILE), required=bool(explicit))
    for name in task_names:
        board = opened.ladder_board(name, tiers=tiers)
        if board.orgs.empty:
            console.print(f"[dim]{escape(name)}: no ranked runs of tiers {', '.join(tiers)}[/dim]")
            continue
        direction = "higher is better" if board.higher_is_better else "lower is better"
        state = "on" if settings.enabled(name) else "off: the public board shows raw values"
        table = Table(title=escape(f"{name} - {board.metric} ({direction}) - guard {state}"))
        table.add_column("org", overflow="fold", ratio=2)
        table.add_column("guarded best", overflow="fold", min_width=8)
        table.add_column("raw best", overflow="fold", min_width=8)
        table.add_column("submissions", no_wrap=True)
        table.add_column("accepted", no_wrap=True)
        table.add_column("shown model", overflow="fold", ratio=3)
        for row in board.orgs.itertuples():
            table.add_row(
                escape(str(row.org)),
                f"{row.guarded_best:.6g}" if row.guarded_best == row.guarded_best else "",
                _fmt(row.raw_best),
                str(row.submissions),
                str(row.accepted),
                escape(str(row.shown_model or "")),
            )
        console.print(table)


def _print_leaderboards(opened: Store, task_names: list[str], tiers: Sequence[str] | None = None) -> None:
    """Each task's board as the app ranks it: Holm-controlled ranks with a worst rank (docs/metrics.md,
    Ranks), a diagnostic shown unranked, the unit n counts, a note where an interval excludes its value."""
    from harness.trust import RANKED_TIERS

    shown = list(tiers or RANKED_TIERS)
    for name in task_names:
        board = opened.ranked_leaderboard(name, tiers=shown)
        rows = board.table
        if rows.empty:
            console.print(f"[dim]{name}: no ranked runs of tiers {', '.join(shown)}[/dim]")
            continue
        metric = rows["metric"].iloc[0]
        direction = "higher is better" if rows["higher_is_better"].iloc[0] else "lower is better"
        kind = "a diagnostic, not ranked" if board.diagnostic else direction
        table = Table(title=f"{escape(name)} - {escape(str(metric))} ({kind})")
        table.add_column("rank", min_width=4, no_wrap=True)
        table.add_column("model", overflow="fold", ratio=3)
        table.add_column("family", overflow="fold", ratio=1)
        table.add_column(escape(str(metric)), overflow="fold", min_width=8)
        table.add_column("95% CI", overflow="fold", min_width=9)
        table.add_column("n", no_wrap=True)
        table.add_column("tier", no_wrap=True)
        for row in rows.itertuples():
            if board.diagnostic:
                rank = "-"
            else:
                rank = str(row.rank) if row.rank == row.rank_worst else f"{row.rank}-{row.rank_worst}"
            interval = f"[{_fmt(row.ci_low)}, {_fmt(row.ci_high)}]" + _interval_note(row.value, row.ci_low, row.ci_high)
            unit = f" {row.unit}" if isinstance(row.unit, str) else ""
            table.add_row(
                rank, escape(str(row.model_id)), escape(str(row.family)), _fmt(row.value), interval,
                f"{row.n}{escape(unit)}", str(row.tier),
            )  # fmt: skip
        console.print(table)
        if not board.diagnostic:
            console.print(
                f"[dim]rank: 1 + models significantly better (Holm, 5% over the board's {board.pairs} pairs); "
                "a range: the true rank lies in it, for every model at once, with 95% confidence[/dim]"
            )


def _interval_note(value: float, low: float, high: float) -> str:
    """What the leaderboard says beside an interval: that it excludes its value (a biased estimator) or has
    no width (the data do not vary where it is measured; docs/metrics.md, Intervals). NaN: no interval."""
    if low != low or high != high:
        return ""
    if not low <= value <= high:
        return " (excludes the value)"
    return " (no spread in the data)" if low == high else ""


# ----------------------------------------------------------------------------- zoo and demo


@zoo_app.command("build")
def zoo_build(
    dir: Annotated[Path, typer.Option("--dir", help="where to write the checkpoints")] = DEFAULT_ZOO,
    family: Annotated[Optional[list[str]], typer.Option(help="zoo families to build (default: all)")] = None,
    profile: Annotated[
        str, typer.Option(help="full (every model), demo (what `harness demo` builds) or tiny (seconds, for tests)")
    ] = "full",
) -> None:
    """Train the zoo's checkpoints on the CPU and write them under --dir."""
    _build_zoo(dir, _split_csv(family or []), profile)


def _build_zoo(folder: Path, families: list[str], profile: str) -> None:
    from harness.zoo import FAMILIES, check_profile

    check_profile(profile)
    names = families or FAMILIES.names()
    builders = [FAMILIES.get(name) for name in names]  # unknown names fail before any training
    for name, build in zip(names, builders, strict=True):
        started = time.perf_counter()
        with err_console.status(f"training zoo family {name} ({profile})") as status:
            folders = build(folder, profile, lambda model: status.update(f"trained {model}"))  # type: ignore[operator]
        console.print(f"zoo family {name}: {len(folders)} models in {time.perf_counter() - started:.1f} s -> {folder}")


@app.command()
def demo(
    workdir: Annotated[
        Path, typer.Option(help="where the demo writes everything it makes (zoo, submissions, store, cache)")
    ] = DEFAULT_DEMO_DIR,
    zoo: Annotated[Optional[Path], typer.Option(help="zoo folder, built if missing [default: WORKDIR/zoo]")] = None,
    store: Annotated[Optional[Path], typer.Option(help="DuckDB store [default: WORKDIR/results.duckdb]")] = None,
    out: Annotated[
        Optional[Path], typer.Option(help="folder for the runs' submission files [default: WORKDIR/submissions]")
    ] = None,
    shipped: Annotated[
        Optional[Path], typer.Option(help="shipped submissions shown beside the runs (read, never written)")
    ] = DEFAULT_OUT,
    profile: Annotated[str, typer.Option(help="zoo profile when building: demo (default), full or tiny")] = "demo",
    seed: Annotated[int, typer.Option(help="seed for bootstrap CIs")] = 0,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda")] = "auto",
    cache_dir: Annotated[
        Optional[Path], typer.Option(help="per-sample output cache [default: $HARNESS_CACHE_DIR, else WORKDIR/cache]")
    ] = None,
) -> None:
    """Build the zoo if missing, evaluate every zoo model on every task that fits it, print the leaderboard.

    Everything it writes goes under --workdir (default demo/, ignored by git); the shipped submissions
    (submissions/) are read and shown beside the new runs, never written. `--shipped ''` shows the new
    runs alone.
    """
    from harness.store import check_store, open_store
    from harness.submissions import commit_order
    from harness.tasks import load_specs
    from harness.zoo import zoo_models

    started = time.perf_counter()
    zoo = zoo or workdir / "zoo"
    store = store or workdir / "results.duckdb"
    out = out or workdir / "submissions"
    if cache_dir is None and not os.environ.get("HARNESS_CACHE_DIR"):
        cache_dir = workdir / "cache"
    shown = shipped if shipped is not None and str(shipped) not in ("", ".") else None
    if shown is not None and shown.resolve() == out.resolve():
        shown = None  # the runs are the shipped results being (re)written: already in the store
    check_store(store)
    if not zoo_models(zoo):
        _build_zoo(zoo, [], profile)
    specs_registry = load_specs()
    # catalog tasks read standard benchmarks (harness data fetch): the demo runs on what ships offline
    specs = [s for s in (specs_registry.get(name) for name in specs_registry.names()) if s.dataset.kind != "hub"]
    options = _options(seed, None, device, None, False, cache_dir)
    models = zoo_models(zoo)

    def demo_tasks(spec: TaskSpec, handle: ModelHandle) -> bool:
        """Every task that fits a model; tasks that name demo tags run only on models with one of them."""
        return not spec.demo_models_tagged or bool(set(spec.demo_models_tagged) & set(handle.card.tags))

    n_shipped = 0
    if shown is not None and shown.is_dir():
        # The leaderboard also shows the shipped results (the full zoo's), read from their folder. They are
        # ingested first, so a model in both (the demo's LM checkpoints are the full zoo's) shows this run
        # and its card (the store's newest is the last ingested).
        tiers: dict[str, Tier] = {}
        valid, problems = _validate([shown], tiers=tiers)
        if problems:
            console.print(
                f"{len({p.file for p in problems})} submission files in {shown} are invalid and were skipped",
                style="yellow",
            )
        with open_store(store) as opened:
            opened.ingest(commit_order(valid), tiers=lambda sub, run: tiers[run.run_id])
        n_shipped = len(valid)
    failed, _ = _run(list(models), specs, options, out, store, select=demo_tasks, report_skips=False)
    with open_store(store, read_only=True) as opened:
        _print_leaderboards(opened, opened.tasks())
    where = Table(title=f"demo finished in {time.perf_counter() - started:.1f} s", show_header=False)
    where.add_column("what", style="bold")
    where.add_column("where", overflow="fold")
    where.add_row("zoo", f"{zoo} ({len(models)} checkpoints)")
    where.add_row("new runs", f"{out} (submission files of the {len(models)} models)")
    if shown is not None:
        where.add_row("shipped runs", f"{shown} ({n_shipped} files, read only)")
    where.add_row("store", f"{store} (browse it: harness app --store {store})")
    where.add_row("cache", str(cache_dir or os.environ.get("HARNESS_CACHE_DIR", "")))
    console.print(where)
    if failed:
        raise typer.Exit(2)


@app.command(name="app")
def app_(
    store: Annotated[Path, typer.Option(help="DuckDB results store (opened read-only)")] = DEFAULT_STORE,
    port: Annotated[int, typer.Option(help="port")] = 8501,
    host: Annotated[str, typer.Option(help="address to bind")] = "localhost",
    headless: Annotated[bool, typer.Option(help="do not open a browser")] = False,
) -> None:
    """Serve the leaderboard app (Streamlit) on a results store, read-only. SIGTERM, SIGINT or SIGHUP to
    this process stops the Streamlit server too (it runs in its own process group)."""
    from harness.processes import run_forwarding_signals
    from harness.store import inspect_store, open_store

    if inspect_store(store).kind != "empty":  # an empty file: the app says "no runs yet"
        with open_store(store, read_only=True):  # missing, not DuckDB, not a store: a clear error before starting
            pass
    script = Path(__file__).resolve().parents[1] / "app" / "leaderboard.py"
    server = script.with_name("server.py")  # `streamlit run` with the pages' modules imported first
    if not script.exists() or not server.exists():
        raise HarnessError(
            "the app is not in this installation",
            where=str(script),
            fix="run from a source checkout (pip install -e .)",
        )
    command = [
        sys.executable, str(server), "run", str(script), "--server.port", str(port), "--server.address", host,
        "--server.headless", str(headless).lower(), "--browser.gatherUsageStats", "false",
        "--client.toolbarMode", "viewer", "--", "--store", str(store.resolve()),
    ]  # fmt: skip
    raise typer.Exit(run_forwarding_signals(command))


def main() -> None:
    """Console-script entry point: HarnessError -> one line on stderr, exit code 2."""
    try:
        app()
    except HarnessError as error:
        err_console.print(f"error: {error.one_line()}", style="red", markup=False, highlight=False, soft_wrap=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
