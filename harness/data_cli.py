"""`harness data list|check|fetch`: the data of the standard-benchmark catalog (tasks/catalog/).

- list: every catalog split, its dataset, pinned revision and split, and where it is (mirror, HF
  cache) or that it is missing;
- check: reads every split of the given catalog tasks (all by default) as an evaluation would, and
  prints its rows, fingerprint and origin; exit 2 when one is missing or malformed;
- fetch: on a machine with network access, downloads the splits of the given tasks from the hub into
  the mirror ($HARNESS_DATA_DIR) and records the resolved commit in each folder's manifest.json;
  refused when HF_HUB_OFFLINE or HF_DATASETS_OFFLINE is set. Splits that are not on the hub
  (`fetch: manual`) are listed with where to download them and where to put them.
The mirror's layout is in harness/data/mirror.py and docs/catalog.md. This module is imported with the
CLI: it imports nothing heavy at the top.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from harness.errors import HarnessError

if TYPE_CHECKING:
    from harness.schema import HubSplit, TaskSpec

data_app = typer.Typer(
    help="Data of the standard-benchmark catalog: list, check, fetch (docs/catalog.md).", no_args_is_help=True
)
console = Console()

TaskNames = Annotated[Optional[list[str]], typer.Argument(help="catalog task names (default: every catalog task)")]


def catalog_specs(names: list[str] | None = None) -> list[TaskSpec]:
    """The catalog tasks (dataset kind "hub") named, or all of them; a task of another kind is an error."""
    from harness.tasks import load_specs

    registry = load_specs()
    if names:
        specs = [registry.get(name) for name in names]
        other = [s.name for s in specs if s.dataset.kind != "hub"]
        if other:
            raise HarnessError(
                f"{', '.join(other)} {'is not a catalog task' if len(other) == 1 else 'are not catalog tasks'}: "
                "their data ships with Harness or is named by a local path",
                fix="see `harness data list` for the catalog",
            )
        return specs
    return [registry.get(n) for n in registry.names() if registry.get(n).dataset.kind == "hub"]


def data_status(spec: TaskSpec) -> str:
    """For `harness tasks`: "" for data that ships with Harness; else where the catalog data is, or what to run."""
    from harness.data.mirror import where_found

    if spec.dataset.kind != "hub":
        return ""
    found = {where_found(hub) for hub in spec.dataset.splits.values()}
    if None in found:
        return f"needs data: harness data fetch {spec.name}"
    return "ready (" + ", ".join(sorted(str(f) for f in found)) + ")"


@data_app.command("list")
def list_(tasks: TaskNames = None) -> None:
    """Every split of the catalog tasks: dataset, pinned revision, split, and whether it is here."""
    from harness.data.mirror import data_dir, describe, where_found

    table = Table(title=f"Catalog data (mirror: {data_dir()})")
    for column in ("task", "split", "dataset@revision:split", "rows", "fetch", "here"):
        table.add_column(column, overflow="fold")
    missing = 0
    for spec in catalog_specs(tasks):
        for name, hub in spec.dataset.splits.items():
            found = where_found(hub)
            missing += found is None
            selection = ", ".join(
                part
                for part in (
                    hub.row_order and f"in {hub.row_order} order",
                    hub.drop_class_ranks and f"drop images of {hub.drop_class_ranks}",
                    hub.drop_files and f"drop files of {hub.drop_files}",
                    hub.rows and f"rows {hub.rows}",
                    hub.keep_labels and f"keep {','.join(hub.keep_labels)}",
                    hub.drop_labels and f"drop {','.join(hub.drop_labels)}",
                    hub.long_tail_ratio and f"long tail {hub.long_tail_ratio:g}",
                    hub.labels_only and "labels only",
                )
                if part
            )
            table.add_row(spec.name, name, describe(hub), selection or "all", hub.fetch, found or "missing")
    console.print(table)
    if missing:
        console.print(
            f"{missing} split(s) missing: `harness data fetch TASK` on a connected machine, then copy the mirror "
            "here (HARNESS_DATA_DIR); manual splits: docs/catalog.md",
            style="yellow",
        )


@data_app.command()
def check(tasks: TaskNames = None) -> None:
    """Read every split of the catalog tasks as an evaluation would; exit 2 when one is missing."""
    problems = []
    table = Table(title="Catalog data check")
    for column in ("task", "split", "rows", "fingerprint", "read from"):
        table.add_column(column, overflow="fold")
    for spec in catalog_specs(tasks):
        try:
            for name, rows, fingerprint, origin in _read_task(spec):
                table.add_row(spec.name, name, str(rows), fingerprint[:16], origin)
        except HarnessError as error:
            problems.append(error.one_line())
            table.add_row(spec.name, "-", "-", "-", "missing")
    console.print(table)
    for problem in problems:
        Console(stderr=True).print(f"error: {problem}", style="red", markup=False, highlight=False, soft_wrap=True)
    if problems:
        raise typer.Exit(2)


def _read_task(spec: TaskSpec) -> list[tuple[str, int, str, str]]:
    """(split, rows, fingerprint, origin) of every split a catalog task reads (no model needed)."""
    from harness.data import load_suite
    from harness.data.catalog import reference_data

    source = spec.dataset
    if source.modality == "reference":
        prompts, heldout, choices = reference_data(source)
        return [
            ("prompts", len(prompts), "", "prompts of the first documents"),
            ("heldout", len(heldout), heldout.fingerprint, heldout.source),
            ("choices", len(choices), choices.fingerprint, "lm-eval task " + str(source.params.get("lm_eval_task"))),
        ]
    suite = load_suite(source)
    if source.modality == "retrieval":
        return [(n, len(suite.split(n)), suite.split(n).fingerprint, suite.description) for n in ("corpus", "queries")]
    out = []
    for name in source.splits:
        split = suite.split(name)
        out.append((name, len(split), split.fingerprint, getattr(split, "source", "") or suite.description))
    return out


@data_app.command()
def fetch(
    tasks: TaskNames = None,
    data_dir: Annotated[
        Optional[Path], typer.Option(help="the mirror to write [default: $HARNESS_DATA_DIR or ~/.cache/harness/data]")
    ] = None,
) -> None:
    """Download the catalog tasks' splits from the Hugging Face hub into the mirror (needs network)."""
    from harness.data.mirror import offline, parts

    if offline():
        raise HarnessError(
            "`harness data fetch` downloads from the Hugging Face hub, but HF_HUB_OFFLINE or HF_DATASETS_OFFLINE is set",
            fix="run it on a machine with network access (unset those variables there), then copy the mirror "
            "folder here and set HARNESS_DATA_DIR",
        )
    if data_dir is not None:
        import os

        os.environ["HARNESS_DATA_DIR"] = str(data_dir)
    manual: list[str] = []
    for spec in catalog_specs(tasks):
        for name, hub in spec.dataset.splits.items():
            for part in parts(hub):  # a split with `with_splits` is fetched split by split
                manual += fetch_split(spec, name, part)
    for line in manual:
        console.print(line, style="yellow", markup=False, highlight=False, soft_wrap=True)
    if manual:
        raise typer.Exit(1)


def fetch_split(spec: TaskSpec, name: str, hub: HubSplit) -> list[str]:
    """Write one split into the mirror (skipped when it is there); returns instructions for manual splits."""
    from harness.data.mirror import describe, mirror_folder, resolved_revision, where_found, write_dataset_split

    if where_found(hub) == "mirror":
        console.print(f"{spec.name}/{name}: {describe(hub)} already in the mirror", style="dim")
        return []
    if hub.fetch == "manual":
        return [f"{spec.name}/{name}: download {describe(hub)} from {hub.url} and put it under {mirror_folder(hub)}/"]
    resolved = resolved_revision(hub)
    if spec.dataset.modality == "retrieval":
        write_beir_folder(spec, hub, resolved)
        return []
    try:
        dataset = _download(hub)
    except Exception as error:  # datasets raises many types: no network, gated dataset, unknown split
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise HarnessError(
            f"cannot download {describe(hub)} for task {spec.name!r}: {first[:300]}",
            fix="check the network, and for a gated dataset (ImageNet) accept its terms on the hub and "
            "log in (`huggingface-cli login`)",
        ) from None
    target = write_dataset_split(dataset, hub, resolved=resolved)
    console.print(f"{spec.name}/{name}: {describe(hub)} -> {target} (revision {resolved or 'unresolved'})")
    return []


def _download(hub: HubSplit) -> Any:
    """The split from the hub (through the datasets library and its cache); a `rows` slice from the start
    is streamed, so a slice of a large split (C4) downloads only what it keeps."""
    import datasets

    start, _, stop = (hub.rows or ":").partition(":")
    if stop and not start.strip("0") and not hub.keep_labels and not hub.drop_labels:
        streamed = datasets.load_dataset(
            hub.dataset, hub.config, split=hub.split, revision=hub.revision, streaming=True
        )
        return datasets.Dataset.from_list(list(streamed.take(int(stop))), features=streamed.features)
    return datasets.load_dataset(hub.dataset, hub.config, split=hub.split, revision=hub.revision)


def write_beir_folder(spec: TaskSpec, hub: HubSplit, resolved: str | None = None, suite: Any = None) -> Path:
    """A retrieval task's data as a BEIR folder in the mirror (read through mteb when `suite` is None)."""
    import json

    from harness.data.mirror import file_sha256, mirror_folder, write_manifest
    from harness.data.retrieval import read_mteb_task

    if suite is None:
        task = spec.dataset.params.get("mteb_task")
        if not isinstance(task, str):
            raise HarnessError("a retrieval catalog task needs param mteb_task to fetch its data", where=spec.name)
        suite = read_mteb_task(task, hub.split)
    folder = mirror_folder(hub)
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    with (folder / "corpus.jsonl").open("w", encoding="utf-8") as out:
        for doc_id, text in zip(suite.corpus.ids, suite.corpus.texts, strict=True):
            out.write(json.dumps({"_id": doc_id, "title": "", "text": text}, ensure_ascii=False) + "\n")
    with (folder / "queries.jsonl").open("w", encoding="utf-8") as out:
        for query_id, text in zip(suite.queries.ids, suite.queries.texts, strict=True):
            out.write(json.dumps({"_id": query_id, "text": text}, ensure_ascii=False) + "\n")
    with (folder / "qrels" / f"{hub.split}.tsv").open("w", encoding="utf-8") as out:
        out.write("query-id\tcorpus-id\tscore\n")
        for query_id, docs in suite.qrels.items():
            for doc_id, grade in docs.items():
                out.write(f"{query_id}\t{doc_id}\t{grade}\n")
    files = {
        hub.split: {
            "file": f"corpus.jsonl, queries.jsonl, qrels/{hub.split}.tsv",
            "rows": len(suite.queries),
            "sha256": file_sha256(folder / "qrels" / f"{hub.split}.tsv"),
        }
    }
    write_manifest(folder, hub, resolved, files)
    console.print(f"{spec.name}: {len(suite.corpus)} documents, {len(suite.queries)} queries -> {folder}")
    return folder
