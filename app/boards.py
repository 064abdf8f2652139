"""Board pieces shared by the Leaderboard and Tasks pages: what a task is (dataset, split, protocol,
spec version, docs), and the per-set columns of OOD boards.

Specs come from the repository's tasks/*.yaml (`harness.tasks.load_specs`); the store says which spec
version and hash each run was made with, and which splits it scored (the keys of its dataset
fingerprints). Task docs are the sections of docs/tasks.md, one `### <task>` heading per task, shown
by the Tasks page (`tasks?task=<name>`), which the board header links to in the same tab.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st
from common import StoreSnapshot, code, plain, query

from harness.errors import HarnessError
from harness.schema import TaskSpec

DOCS = Path(__file__).resolve().parents[1] / "docs" / "tasks.md"
#: the split a task scores, by the names the built-in data sources give it (the others were read for fitting,
#: calibration or as OOD sets)
SCORED_SPLITS = ("test", "heldout", "validation", "dev")
#: an OOD metric name: <metric>.<score>.<set> (sets: the near and far OOD sets, "far" and "mean")
OOD_NAME = re.compile(r"^(auroc|aupr_in|aupr_out|fpr95)\.([^.]+)\.([^.]+)$")


def spec_files() -> dict[str, Path]:
    """The repository's task spec files by task name (a spec's file name is its task's name)."""
    from harness.tasks import specs_dir

    try:
        files = sorted(specs_dir().rglob("*.yaml"), key=lambda f: (-len(f.parts), str(f)))
        return {f.stem: f for f in files}  # deeper folders first: a top-level spec wins over a namesake
    except (HarnessError, OSError):
        return {}


@st.cache_resource(show_spinner=False, max_entries=256)
def _spec(path: str, mtime_ns: int) -> TaskSpec | None:
    import yaml
    from pydantic import ValidationError

    try:
        return TaskSpec.model_validate(yaml.safe_load(Path(path).read_text(encoding="utf-8")))
    except (OSError, ValueError, yaml.YAMLError, ValidationError):
        return None


def task_spec(task: str) -> TaskSpec | None:
    """The spec of `task` from its YAML file, read and validated as a TaskSpec only (no adapter is
    imported: a board's header costs one small file), cached per file version; None when there is none."""
    path = spec_files().get(task)
    try:
        return _spec(str(path), path.stat().st_mtime_ns) if path is not None else None
    except OSError:
        return None


def parse_sections(text: str) -> dict[str, str]:
    """The `### <task>` sections of docs/tasks.md by task name (a section ends at the next heading of
    level 2 or 3)."""
    sections: dict[str, str] = {}
    for block in re.split(r"^### ", text, flags=re.MULTILINE)[1:]:
        heading, _, body = block.partition("\n")
        name = heading.strip().strip("`")
        sections[name] = re.split(r"^##? ", body, flags=re.MULTILINE)[0].strip()
    return sections


@st.cache_data(show_spinner=False)
def docs_sections(mtime_ns: int) -> dict[str, str]:
    """docs/tasks.md's sections by task (cached per modification time of the file)."""
    try:
        return parse_sections(DOCS.read_text(encoding="utf-8"))
    except OSError:
        return {}


def task_docs(task: str) -> str | None:
    try:
        mtime = DOCS.stat().st_mtime_ns
    except OSError:
        return None
    return docs_sections(mtime).get(task)


def anchor(task: str) -> str:
    """The GitHub-style anchor of the task's section in docs/tasks.md."""
    return re.sub(r"[^a-z0-9_ -]", "", task.lower()).replace(" ", "-")


def task_header(snap: StoreSnapshot, task: str, tiers: list[str]) -> None:
    """One caption under a board's title: dataset, split(s) scored, protocol, spec version, and a link to
    the task's docs (the Tasks page, same tab)."""
    versions = query(snap, "task_versions", task, tiers=tiers)
    spec = task_spec(task)
    parts: list[str] = []
    if spec is not None:
        source = spec.dataset
        parts.append(f"**dataset** {code(source.name)} ({plain(source.kind)}, revision {plain(source.revision)})")
    if not versions.empty:
        splits = sorted({s for row in versions["splits"] for s in (row if row is not None else [])})
        scored = next((s for s in SCORED_SPLITS if s in splits), splits[0] if len(splits) == 1 else None)
        if scored is not None:
            others = [s for s in splits if s != scored]
            also = f" (also read: {', '.join(code(s) for s in others)})" if others else ""
            parts.append(f"**split** {code(scored)}{also}")
        elif splits:
            parts.append("**splits** " + ", ".join(code(s) for s in splits))
    if spec is not None:
        parts.append(f"**protocol** {plain(spec.description)}")
    if not versions.empty:
        stated = "; ".join(
            f"{code(f'v{int(v)}')} ({code(str(h)[:12])}, {int(m)} model{'s' if int(m) != 1 else ''})"
            for v, h, m in zip(versions["task_version"], versions["spec_hash"], versions["models"], strict=True)
        )
        parts.append(f"**spec** {stated}")
        if spec is not None and spec.spec_hash() not in set(versions["spec_hash"]):
            parts.append(
                f"the repository's spec is now {code(f'v{spec.version}')} ({code(spec.spec_hash()[:12])}): "
                "these runs predate it"
            )
    elif spec is not None:
        parts.append(f"**spec** {code(f'v{spec.version}')} ({code(spec.spec_hash()[:12])})")
    if parts:
        st.markdown(" · ".join(parts))
    st.page_link(
        "views/tasks.py",
        label=f"Task docs: {task} (docs/tasks.md#{anchor(task)})",
        icon=":material/description:",
        query_params={"task": task},
    )


# --------------------------------------------------------------------------- OOD boards


def ood_groups(snap: StoreSnapshot, task: str, run_id: str | None) -> dict[str, str]:
    """OOD set -> "near" or "far", from a run's `ood_groups` artifact, else the spec's near_ood/far_ood."""
    groups: dict[str, str] = {}
    if run_id is not None:
        stored = query(snap, "run_artifact", run_id, "ood_groups")
        if isinstance(stored, dict):
            groups = {str(k): str(v) for k, v in stored.items() if v in ("near", "far")}
    if not groups:
        spec = task_spec(task)
        params: dict[str, Any] = dict(spec.parameters) if spec is not None else {}
        for group in ("near", "far"):
            for name in params.get(f"{group}_ood") or []:
                groups[str(name)] = group
    return groups


def ood_set_columns(
    snap: StoreSnapshot, task: str, metric: str, table: pd.DataFrame, families: list[str], tags: list[str],
    tiers: list[str],
) -> tuple[pd.DataFrame, list[str], dict[str, str]]:  # fmt: skip
    """For an OOD metric <m>.<score>.<set>: the same metric and score on every OOD set, as columns
    side by side (near sets, then far sets, then the "near", "far" and "mean" averages), per model of
    `table`. Returns (model_id x column values, the columns in order, column -> tooltip)."""
    match = OOD_NAME.match(metric)
    if match is None or table.empty:
        return pd.DataFrame(index=table["model_id"]), [], {}
    base, score, _ = match.groups()
    catalog = query(snap, "task_metrics", task)
    prefix = f"{base}.{score}."
    names = [m for m in catalog["metric"] if str(m).startswith(prefix)]
    groups = ood_groups(snap, task, str(table["run_id"].iloc[0]))
    sets = {n.removeprefix(prefix): n for n in names}
    order = (
        [s for s in sets if groups.get(s) == "near" and s != "near"]
        + (["near"] if "near" in sets else [])
        + [s for s in sets if groups.get(s) == "far"]
        + [s for s in ("far", "mean") if s in sets]
    )
    order += [s for s in sets if s not in order]
    rows = query(snap, "board_metric_values", task, [sets[s] for s in order], families=families, tags=tags,
                 tiers=tiers)  # fmt: skip
    wide = rows.pivot_table(index="model_id", columns="metric", values="value", aggfunc="first")
    columns: list[str] = []
    helps: dict[str, str] = {}
    data = pd.DataFrame(index=table["model_id"])
    for name in order:
        group = groups.get(name)
        if name in ("far", "mean") and group is None:
            column = f"{name} (average)"
            tip = {"far": "mean over the far-OOD sets", "mean": "mean of the near and far averages"}[name]
        elif name in ("near", "far") or group is None:
            column = name
            tip = f"{group}-OOD set {name}" if group else f"OOD set {name}"
        else:
            column = f"{group}: {name}"
            tip = f"{group}-OOD set {name}"
        data[column] = data.index.map(wide[sets[name]]) if sets[name] in wide else None
        columns.append(column)
        helps[column] = f"{base}, score {score}: {tip}".strip(": ")
    return data, columns, helps
