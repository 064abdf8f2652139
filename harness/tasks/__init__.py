"""Task adapters (this package) and task specs (tasks/*.yaml at the repository root).

A task spec is declarative (TaskSpec): which adapter, which dataset, which parameters, which
main metric. `load_specs` validates every file; an invalid one fails with the file and field.
Users add their own specs beside the built-in ones with `include_tasks` (`--include-path DIR`,
`--tasks FILE.yaml`); `HARNESS_TASKS_DIR` replaces the built-in folder instead.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import yaml
from pydantic import ValidationError

from harness.errors import HarnessError
from harness.registry import TASK_ADAPTERS, Registry
from harness.schema import TaskSpec
from harness.tasks.base import TaskAdapter
from harness.untrusted import regular_file

#: task specs are a few hundred bytes; the cap keeps a hostile one from exhausting the parser
MAX_SPEC_BYTES = 1_000_000


def specs_dir() -> Path:
    """$HARNESS_TASKS_DIR, else tasks/ beside the package (source checkout), else the packaged copy."""
    if env := os.environ.get("HARNESS_TASKS_DIR"):
        return Path(env)
    package = Path(__file__).resolve().parent.parent
    for candidate in (package.parent / "tasks", package / "task_specs"):
        if candidate.is_dir():
            return candidate
    raise HarnessError("no task specs folder found", fix="set HARNESS_TASKS_DIR to a folder of task YAML files")


def load_spec(file: Path) -> TaskSpec:
    """Parse and validate one task spec; errors name the file and the field."""
    if regular_file(file, "task spec") > MAX_SPEC_BYTES:
        raise HarnessError(f"a task spec is capped at {MAX_SPEC_BYTES:,} bytes", where=str(file), fix="shorten it")
    try:
        raw = yaml.safe_load(file.read_text())
    except yaml.YAMLError as error:
        raise HarnessError(f"invalid YAML: {error}".replace("\n", " "), where=str(file)) from None
    except RecursionError:  # PyYAML recurses per level of nesting (flow or block style)
        raise HarnessError(
            "YAML nested too deeply to parse", where=str(file), fix="a task spec nests a few levels; flatten it"
        ) from None
    if not isinstance(raw, dict):
        raise HarnessError("a task spec must be a YAML mapping", where=str(file))
    try:
        spec = TaskSpec.model_validate(raw)
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise HarnessError(
            f"invalid task spec field {field!r}: {first['msg']}",
            where=str(file),
            fix="see docs/tasks.md for the TaskSpec fields",
        ) from None
    if spec.name != file.stem:
        raise HarnessError(
            f"field 'name' is {spec.name!r} but the file is {file.name}", where=str(file), fix="make them equal"
        )
    if spec.adapter not in TASK_ADAPTERS:
        raise HarnessError(
            f"field 'adapter': unknown task adapter {spec.adapter!r}",
            where=str(file),
            fix=TASK_ADAPTERS.suggestion(spec.adapter),
        )
    adapter: TaskAdapter = TASK_ADAPTERS.get(spec.adapter)
    if spec.main_metric not in adapter.metric_names(spec):
        raise HarnessError(
            f"field 'main_metric': adapter {spec.adapter!r} does not report {spec.main_metric!r}",
            where=str(file),
            fix="choose one of " + ", ".join(adapter.metric_names(spec)),
        )
    return spec


def load_specs(folder: Path | None = None) -> Registry[TaskSpec]:
    """Every tasks/*.yaml as a registry of TaskSpecs, by name (parsed again only when a file changes).

    Without `folder`: the built-in folder (`specs_dir`) and what this process included (`include_tasks`:
    `--include-path` folders and `--tasks FILE.yaml` files). A task name defined by two files is an
    error that names both."""
    files = (
        _spec_files(folder)
        if folder is not None
        else [f for p in [specs_dir(), *catalog_folders(specs_dir()), *_INCLUDED] for f in _spec_files(p)]
    )
    files = list(dict.fromkeys(f.resolve() for f in files))  # a folder included twice (or the built-in one) counts once
    key = tuple((str(f), f.stat().st_mtime_ns, f.stat().st_size) for f in files)
    if key not in _LOADED:
        registry: Registry[TaskSpec] = Registry("task")
        origins: dict[str, Path] = {}
        for file in files:
            spec = load_spec(file)
            if spec.name in origins:
                raise HarnessError(
                    f"task {spec.name!r} is defined twice: {origins[spec.name]} and {file}",
                    where=str(file),
                    fix="rename one of them (a task's name is its file name; built-in names are taken)",
                )
            origins[spec.name] = file
            registry.add(spec.name, spec)
        _LOADED.clear()  # one set of files at a time: the cache only spares re-reading unchanged files
        _LOADED[key] = registry
        _ORIGINS.clear()
        _ORIGINS.update(origins)
    return _LOADED[key]


_LOADED: dict[tuple[tuple[str, int, int], ...], Registry[TaskSpec]] = {}
#: the file each task of the last `load_specs` came from
_ORIGINS: dict[str, Path] = {}
#: folders and files of task specs added to the built-ins in this process (`include_tasks`)
_INCLUDED: list[Path] = []
SPEC_SUFFIXES = (".yaml", ".yml")


def catalog_folders(folder: Path) -> list[Path]:
    """The standard-benchmark catalog beside the built-in specs: `catalog/<family>/` folders (docs/catalog.md)."""
    catalog = folder / "catalog"
    return sorted(p for p in catalog.iterdir() if p.is_dir()) if catalog.is_dir() else []


def _spec_files(path: Path) -> list[Path]:
    """The task spec files of a folder (its *.yaml and *.yml files, sorted), or the file itself."""
    if path.is_file():
        return [path]
    return sorted(f for f in path.iterdir() if f.suffix in SPEC_SUFFIXES and f.is_file())


def include_tasks(paths: Sequence[Path], *, replace: bool = False) -> None:
    """Add task specs to the built-in ones for the rest of this process: folders of task YAML files
    (`--include-path DIR`, as lm-evaluation-harness's flag) or single spec files (`--tasks FILE.yaml`);
    `replace` forgets what was included before (each CLI command starts afresh). The files are
    validated at once; a task name that clashes with another file's is an error naming both."""
    if replace:
        _INCLUDED.clear()
    for path in paths:
        if not path.exists():
            raise HarnessError("task path does not exist", where=str(path), fix="check --include-path / --tasks")
        if path.is_file() and path.suffix not in SPEC_SUFFIXES:
            raise HarnessError("a task spec file must end in .yaml or .yml", where=str(path))
        resolved = path.resolve()
        if resolved not in _INCLUDED and resolved not in (f.resolve() for f in _spec_files(specs_dir())):
            _INCLUDED.append(resolved)
    load_specs()  # validates every file now, so a bad one fails before anything runs


def included_tasks() -> list[Path]:
    """The spec folders and files `include_tasks` added in this process (a worker process repeats them)."""
    return list(_INCLUDED)


def spec_from_file(path: Path) -> TaskSpec:
    """The task spec in `path` (`--tasks path/to/task.yaml`), added to this process's tasks."""
    include_tasks([path])
    return load_specs().get(path.stem)


def looks_like_spec_file(name: str) -> bool:
    """Whether a `--tasks` entry names a spec file (ends in .yaml/.yml, or is an existing file) rather than a task."""
    return name.endswith(SPEC_SUFFIXES) or Path(name).is_file()


def adapter_for(spec: TaskSpec) -> TaskAdapter:
    adapter: TaskAdapter = TASK_ADAPTERS.get(spec.adapter)
    return adapter
