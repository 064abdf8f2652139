"""Task adapters (this package) and task specs (tasks/*.yaml at the repository root).

A task spec is declarative (TaskSpec): which adapter, which dataset, which parameters, which
main metric. `load_specs` validates every file; an invalid one fails with the file and field.
"""

from __future__ import annotations

import os
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
    """Every tasks/*.yaml as a registry of TaskSpecs, by name (parsed again only when a file changes)."""
    folder = folder or specs_dir()
    files = sorted(folder.glob("*.yaml"))
    key = (str(folder.resolve()), tuple((f.name, f.stat().st_mtime_ns, f.stat().st_size) for f in files))
    if key not in _LOADED:
        registry: Registry[TaskSpec] = Registry("task")
        for file in files:
            registry.add(file.stem, load_spec(file))
        _LOADED.clear()  # one folder's specs at a time: the cache only spares re-reading unchanged files
        _LOADED[key] = registry
    return _LOADED[key]


_LOADED: dict[tuple[str, tuple[tuple[str, int, int], ...]], Registry[TaskSpec]] = {}


def adapter_for(spec: TaskSpec) -> TaskAdapter:
    adapter: TaskAdapter = TASK_ADAPTERS.get(spec.adapter)
    return adapter
