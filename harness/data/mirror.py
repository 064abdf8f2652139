"""Catalog data resolved offline-first: the data mirror, the local Hugging Face cache, then the hub.

A catalog split (`HubSplit`: dataset id, config, revision, split) is looked for in this order:
1. the mirror, a folder tree under $HARNESS_DATA_DIR (default ~/.cache/harness/data):

       <dataset id>/<config or "default">/<revision>/
           manifest.json            what `harness data fetch` resolved (the revision's commit sha), optional
           <split>.parquet          a table (as `Dataset.to_parquet` writes it: class names in its metadata),
           <split>-*.parquet        or its shards,
           <split>.jsonl            or one JSON object per line,
           <split>.txt              or plain text, one row per line (documents: see harness/data/catalog.py);
                                    for a labels-only split, an image list of "path label" lines,
           <split>/<class>/<image>  or an ImageFolder (class names = folder names; labels in sorted order),
           <split>/<image>          or a flat folder of images (unlabelled: an OOD set),
           dataset_dict.json ...    or a `DatasetDict.save_to_disk` folder holding the split,
           corpus.jsonl, queries.jsonl, qrels/<split>.tsv   a BEIR folder (retrieval);

   the mirror wins because it is an explicit local copy, and checking it costs a file lookup;
2. the local Hugging Face cache, through `datasets.load_dataset(id, config, split, revision)`, which
   reads only the cache when HF_DATASETS_OFFLINE=1 or HF_HUB_OFFLINE=1;
3. the hub itself, by the same call, when the network is allowed.
When none has it, the error names the dataset, revision and split and the exact way to get them
(`harness data fetch TASK` on a connected machine, or where to put the files).

Pinned revisions: the revision is part of the path, so a mirror holds exactly the pinned data; the
fingerprint of every split covers its content, so results never depend on where it was read from.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.schema import HubSplit

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
MANIFEST = "manifest.json"
#: a mirror is the user's own copy, not an upload: its files may be far larger than untrusted ones
MIRROR_MAX_BYTES = int(os.environ.get("HARNESS_MAX_MIRROR_BYTES", str(256 * 1024**3)))


def data_dir() -> Path:
    """$HARNESS_DATA_DIR, else ~/.cache/harness/data."""
    if env := os.environ.get("HARNESS_DATA_DIR"):
        return Path(env).expanduser()
    return Path.home() / ".cache" / "harness" / "data"


def offline() -> bool:
    """Whether the hub may not be reached (HF_HUB_OFFLINE or HF_DATASETS_OFFLINE set to a true value)."""
    return any(
        os.environ.get(v, "").lower() in ("1", "true", "yes", "on") for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
    )


def mirror_folder(hub: HubSplit, root: Path | None = None) -> Path:
    """Where the mirror holds `hub`'s dataset at its revision: <root>/<id>/<config or default>/<revision>."""
    return (root or data_dir()) / hub.dataset / (hub.config or "default") / hub.revision


def describe(hub: HubSplit) -> str:
    """`id[/config]@revision:split[+split...]`, the way errors and listings name a split."""
    splits = "+".join([hub.split, *hub.with_splits])
    return f"{hub.dataset}{'/' + hub.config if hub.config else ''}@{hub.revision}:{splits}"


def parts(hub: HubSplit) -> list[HubSplit]:
    """The single hub splits `hub` reads: its `split`, then each of its `with_splits`."""
    if not hub.with_splits:
        return [hub]
    return [hub.model_copy(update={"split": s, "with_splits": []}) for s in (hub.split, *hub.with_splits)]


@dataclass
class Table:
    """Rows of one split: `columns` (pyarrow.Table), class names per label column, where they came from."""

    columns: Any
    class_names: dict[str, list[str]] = field(default_factory=dict)
    origin: str = ""
    #: per row, its file's path in an image-folder mirror (the sample ids); None: ids from row numbers
    paths: list[str] | None = None
    #: per row, its sample id, where the rows come from several splits (`with_splits`) or the copy's
    #: order is not the original (`row_order`: ids are original positions)
    ids: list[str] | None = None
    #: the rows in the dataset's original order (`row_order`); None: the copy keeps that order
    order: list[int] | None = None


def sample_ids(table: Table, split: str) -> list[str]:
    """Each row's sample id: `<split>-<row>`, `<split>/<path>` in an image-folder mirror (rows follow the
    file order), or the table's own ids (rows of several splits)."""
    if table.ids is not None:
        return table.ids
    if table.paths is not None:
        return [f"{split}/{p}" for p in table.paths]
    return [f"{split}-{i}" for i in range(table.columns.num_rows)]


def mirror_files(hub: HubSplit, root: Path | None = None) -> list[Path]:
    """The mirror's files or folder of `hub`'s split, or [] when the mirror does not hold it."""
    folder = mirror_folder(hub, root)
    if not folder.is_dir():
        return []
    if hub.image_list is not None:
        return [folder / hub.image_list] if (folder / hub.image_list).is_file() else []
    for pattern in (f"{hub.split}.parquet", f"{hub.split}-*.parquet", f"{hub.split}.jsonl", f"{hub.split}.txt"):
        found = sorted(folder.glob(pattern))
        if found:
            return found
    if (folder / "dataset_dict.json").is_file() and (folder / hub.split / "dataset_info.json").is_file():
        return [folder]
    if (folder / hub.split).is_dir():
        return [folder / hub.split]
    return []


def is_beir_folder(folder: Path, split: str) -> bool:
    return (folder / "corpus.jsonl").is_file() and (folder / "qrels" / f"{split}.tsv").is_file()


def where_found(hub: HubSplit, root: Path | None = None) -> str | None:
    """ "mirror" or "hf-cache" when the split is present locally (a cheap check), else None."""
    if hub.with_splits:
        found = {where_found(part, root) for part in parts(hub)}
        return None if None in found else "+".join(sorted(str(f) for f in found))
    folder = mirror_folder(hub, root)
    if mirror_files(hub, root) or is_beir_folder(folder, hub.split):
        return "mirror"
    if _in_hf_cache(hub):
        return "hf-cache"
    return None


def _in_hf_cache(hub: HubSplit) -> bool:
    """Whether the datasets cache has a folder for this dataset and config (not proof that the split is
    complete: `harness data check` reads it)."""
    cache = Path(
        os.environ.get("HF_DATASETS_CACHE")
        or Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface")) / "datasets"
    )
    folder = cache / hub.dataset.replace("/", "___")
    return folder.is_dir() and (hub.config is None or (folder / hub.config).is_dir())


def missing(hub: HubSplit, task: str | None, harness_split: str, detail: str = "") -> HarnessError:
    """The one-line error for a split that is nowhere: what is missing and how to get it."""
    folder = mirror_folder(hub)
    if hub.fetch == "manual":
        what = f"{hub.image_list} and {hub.image_root}/" if hub.image_list else f"split {hub.split!r}"
        fix = f"download it from {hub.url or 'the protocol source (docs/catalog.md)'} and put {what} under {folder}/ (layouts: docs/catalog.md)"
    else:
        command = f"harness data fetch {task}" if task else "harness data fetch TASK"
        fix = f"run `{command}` on a machine with network access and copy {data_dir()} here (or set HARNESS_DATA_DIR), or put the files under {folder}/ (layouts: docs/catalog.md)"
    return HarnessError(
        f"dataset {describe(hub)} (split {harness_split!r}{' of task ' + repr(task) if task else ''}) is not available offline"
        + (f": {detail}" if detail else ""),
        where=str(folder),
        fix=fix,
    )


def read_split(hub: HubSplit, *, task: str | None = None, harness_split: str = "", root: Path | None = None) -> Table:
    """The rows of `hub`'s split: from the mirror, else the HF cache, else the hub (when allowed)."""
    if hub.with_splits:
        return _joined([read_split(p, task=task, harness_split=harness_split, root=root) for p in parts(hub)], hub)
    files = mirror_files(hub, root)
    if files:
        return _read_mirror(hub, files)
    if hub.fetch == "manual":
        raise missing(hub, task, harness_split or hub.split)
    return _read_hf(hub, task, harness_split or hub.split)


def _joined(tables: list[Table], hub: HubSplit) -> Table:
    """The rows of several splits of one dataset, one after another; sample ids name each row's split."""
    import pyarrow as pa

    names = tables[0].class_names
    for other in tables[1:]:
        if other.class_names != names:
            raise HarnessError(
                f"the splits of {describe(hub)} name their classes differently",
                where=other.origin,
                fix="check the mirror",
            )
    try:
        columns = pa.concat_tables([t.columns for t in tables], promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as error:
        raise HarnessError(f"the splits of {describe(hub)} do not share their columns: {error}") from None
    ids = [i for part, table in zip(parts(hub), tables, strict=True) for i in sample_ids(table, part.split)]
    # file names (for `drop_files`) only where every part is an image folder; else the image column's paths
    paths = [p for t in tables for p in t.paths or []] if all(t.paths is not None for t in tables) else None
    origin = "; ".join(dict.fromkeys(t.origin for t in tables))
    return Table(columns, names, origin, paths, ids)


def _read_mirror(hub: HubSplit, files: list[Path]) -> Table:
    import pyarrow as pa

    first = files[0]
    origin = f"mirror {first if len(files) == 1 else first.parent}"
    if hub.image_list is not None:
        return _read_image_list(first, mirror_folder(hub) / hub.image_root, origin)
    if first.is_dir() and (first / "dataset_dict.json").is_file():
        import datasets

        loaded = datasets.load_from_disk(str(first))[hub.split]
        return Table(loaded.with_format("arrow")[0 : len(loaded)], _dataset_class_names(loaded.features), origin)
    if first.is_dir():
        return _read_image_folder(first, origin)
    if first.suffix == ".parquet":
        from harness.untrusted import read_parquet

        tables = [read_parquet(f, max_bytes=MIRROR_MAX_BYTES) for f in files]
        names = _parquet_class_names(tables[0].schema)
        return Table(pa.concat_tables(tables) if len(tables) > 1 else tables[0], names, origin)
    if first.suffix == ".jsonl":
        rows = []
        with first.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                if line.strip():
                    try:
                        rows.append(json.loads(line))
                    except json.JSONDecodeError as error:
                        raise HarnessError(f"line {number} is not JSON ({error.msg})", where=str(first)) from None
        return Table(pa.Table.from_pylist(rows), {}, origin)
    lines = first.read_text(encoding="utf-8").splitlines(keepends=True)
    if hub.labels_only:  # an image list ("path label" lines, as OLTR's ImageNet_LT_train.txt): its labels
        pairs = [line.split() for line in lines if line.strip()]
        if not all(len(p) == 2 and p[1].isdigit() for p in pairs):
            raise HarnessError("an image list needs one 'path label' pair per line", where=str(first))
        return Table(
            pa.table({"path": [p[0] for p in pairs], hub.label or "label": [int(p[1]) for p in pairs]}), {}, origin
        )
    return Table(pa.table({"text": lines}), {}, origin)


def _read_image_list(listing: Path, root: Path, origin: str) -> Table:
    """The images an image list names ("path label" lines, paths under `root`), with its labels: OpenOOD's
    benchmark_imglist files, read as OpenOOD reads them (label -1 marks an OOD image)."""
    import pyarrow as pa

    images: list[dict[str, Any]] = []
    labels: list[int] = []
    base = root.resolve()
    for number, line in enumerate(listing.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        path, _, label = line.strip().rpartition(" ")
        file = (root / path).resolve()
        if not path or not re.fullmatch(r"-?\d+", label) or not file.is_relative_to(base):
            raise HarnessError(f"line {number} is not 'path label' with a path under {root}", where=str(listing))
        if not file.is_file():
            raise HarnessError(
                f"line {number} names {path}, which is not under {root}",
                where=str(listing),
                fix="put the image folders the list refers to beside it (OpenOOD's data/ folder: docs/catalog.md)",
            )
        images.append({"bytes": file.read_bytes(), "path": path})
        labels.append(int(label))
    paths = [image["path"] for image in images]
    return Table(pa.Table.from_pydict({"image": images, "label": labels}), {}, origin, paths)


def _read_image_folder(folder: Path, origin: str) -> Table:
    """An ImageFolder (<class>/<image>) with labels in sorted class order, or a flat folder of images."""
    import pyarrow as pa

    classes = sorted(p.name for p in folder.iterdir() if p.is_dir())
    images: list[dict[str, Any]] = []
    labels: list[int] = []
    for label, directory in enumerate([folder / c for c in classes] or [folder]):
        for file in sorted(directory.iterdir()):
            if file.is_file() and file.suffix.lower() in IMAGE_SUFFIXES:
                images.append({"bytes": file.read_bytes(), "path": file.relative_to(folder).as_posix()})
                labels.append(label)
    columns: dict[str, Any] = {"image": images}
    if classes:
        columns["label"] = labels
    paths = [image["path"] for image in images]
    return Table(pa.Table.from_pydict(columns), {"label": classes} if classes else {}, origin, paths)


def _dataset_class_names(features: Any) -> dict[str, list[str]]:
    return {name: list(f.names) for name, f in features.items() if hasattr(f, "names") and f.names}


def _parquet_class_names(schema: Any) -> dict[str, list[str]]:
    """ClassLabel names from the `huggingface` metadata `Dataset.to_parquet` writes into a parquet file."""
    raw = (schema.metadata or {}).get(b"huggingface")
    if not raw:
        return {}
    try:
        features = json.loads(raw).get("info", {}).get("features", {})
    except (ValueError, AttributeError):
        return {}
    return {
        name: [str(n) for n in feature["names"]]
        for name, feature in features.items()
        if isinstance(feature, dict) and feature.get("_type") == "ClassLabel" and feature.get("names")
    }


def _read_hf(hub: HubSplit, task: str | None, harness_split: str) -> Table:
    """The split through `datasets` (its cache; the hub when the network is allowed)."""
    try:
        import datasets

        loaded = datasets.load_dataset(hub.dataset, hub.config, split=hub.split, revision=hub.revision)
    except Exception as error:  # datasets raises many types for a missing dataset, config or network
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise missing(hub, task, harness_split, first[:200]) from None
    origin = "hf-cache" if offline() else "hub (or hf-cache)"
    return Table(loaded.with_format("arrow")[0 : len(loaded)], _dataset_class_names(loaded.features), origin)


# --------------------------------------------------------------------------- fetching


def write_manifest(folder: Path, hub: HubSplit, resolved: str | None, files: dict[str, dict[str, Any]]) -> Path:
    """Add the fetched splits to `folder`'s manifest.json (resolved commit sha, rows and file sha256)."""
    import datetime

    from harness import __version__

    path = folder / MANIFEST
    manifest: dict[str, Any] = json.loads(path.read_text()) if path.is_file() else {}
    manifest.update(
        {
            "dataset": hub.dataset,
            "config": hub.config,
            "revision": hub.revision,
            "resolved_revision": resolved,
            "fetched_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "harness_version": __version__,
        }
    )
    manifest.setdefault("splits", {}).update(files)
    path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return path


def read_manifest(hub: HubSplit, root: Path | None = None) -> dict[str, Any]:
    path = mirror_folder(hub, root) / MANIFEST
    try:
        loaded = json.loads(path.read_text()) if path.is_file() else {}
    except ValueError:
        return {}
    return loaded if isinstance(loaded, dict) else {}


def file_sha256(path: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_dataset_split(dataset: Any, hub: HubSplit, root: Path | None = None, resolved: str | None = None) -> Path:
    """Write a loaded `datasets.Dataset` as the mirror's `<split>.parquet` (class names kept in its
    metadata) and record it in the manifest; returns the file."""
    folder = mirror_folder(hub, root)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{hub.split}.parquet"
    partial = target.with_suffix(".parquet.partial")
    dataset.to_parquet(str(partial))
    partial.replace(target)
    write_manifest(
        folder, hub, resolved, {hub.split: {"file": target.name, "rows": len(dataset), "sha256": file_sha256(target)}}
    )
    return target


def resolved_revision(hub: HubSplit) -> str | None:
    """The commit sha the hub resolves `hub.revision` to (None when it cannot be asked)."""
    try:
        from huggingface_hub import HfApi

        return str(HfApi().dataset_info(hub.dataset, revision=hub.revision).sha)
    except Exception:  # no network, gated dataset, old huggingface_hub: the manifest records None
        return None
