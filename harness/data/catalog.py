"""Suites of the standard-benchmark catalog (DatasetSource kind "hub", tasks/catalog/).

Each Harness split of a hub source is one `HubSplit` read offline-first (harness/data/mirror.py);
`modality` decides what the splits become:
- "image" / "text": a ClassificationSuite of EncodedImageSplit / TextSplit (LabelSplit for a split
  marked `labels_only`). The label space is the source's `label_names`, else the class names of the
  first labelled split (after its `keep_labels` / `drop_labels`); every labelled split's labels are
  mapped onto it by name, so a split whose dataset orders classes differently still agrees. An
  `ood` split gets label -1 (its label column, if any, only filters rows).
- "documents": DocumentSplits for lm_loss. Preprocessing `documents`: "rows" (default: one document
  per non-empty row of the text column) or "wikitext-articles" (rows are the lines of WikiText's raw
  files; an article starts at a level-1 heading line " = Title = " and its lines are joined, then
  stripped: the document-level text lm-eval's wikitext task reads).
- "retrieval": a RetrievalSuite from the mirror's BEIR folder, else through mteb's task object
  (param `mteb_task`), which reads the HF cache (or the hub when allowed).
- "choices": a ChoiceSuite of an lm-eval multiple-choice task (param `lm_eval_task`): its prompts,
  choices and targets come from lm-eval's own `doc_to_text`, `doc_to_choice` and `doc_to_target`, on
  the documents of each split (a mirror copy is given to lm-eval through a task file that includes the
  original and points it at the mirror's files; otherwise lm-eval loads its own data from the HF cache).
- "reference": what a compressed LM is compared with its reference on (harness/data/reference.py):
  splits `prompts` (documents; the first `n_prompts`, cut to their first `prompt_words` words),
  `heldout` (documents) and `choices` (an lm-eval multiple-choice split).
Rows are read in the dataset's order (a split's `with_splits` after it); ids are `<dataset split>-<row>`
(the row in the original split), or `<dataset split>/<path>` in an ImageFolder mirror. A split with a
`row_order` (harness/data/orders.py) is put back in the dataset's original order first, recognised by
its labels, and its ids are original positions, the same in every copy that passes the check.

`drop_class_ranks` names a file list of per-class numbered images (`cifar10/test/airplane/0187.png`: the
187th airplane of the test split in its original order, as cifar2png numbers CIFAR's images and
OpenOOD's lists name them); the split needs a `row_order`, so that the count runs in the original order.

`drop_files` names a file list of harness/data/lists/ (OpenOOD's held-out validation images): a row is
dropped when its image file name (its path in an image-folder mirror, else the `path` an HF image column
keeps), without extension, equals a listed name or continues one after '_' (the hub's ImageNet files are
ILSVRC2012_val_00000001_n01751748.JPEG). A split without file names, or none of whose files is listed,
is an error rather than a silently different set.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from harness.data import named_split
from harness.data.mirror import (
    Table,
    describe,
    is_beir_folder,
    mirror_files,
    mirror_folder,
    missing,
    read_split,
    sample_ids,
)
from harness.errors import HarnessError
from harness.schema import FILE_LISTS, DatasetSource, HubSplit

IMAGE_COLUMNS = ("image", "img", "jpg", "png")
TEXT_COLUMNS = ("text", "sentence", "content")
WIKITEXT_HEADING = re.compile(r"^ = [^=].* = \s*$")


def hub_suite(source: DatasetSource) -> Any:
    """The suite of a hub dataset source (see the module docstring)."""
    if source.modality in ("image", "text"):
        return classification_suite(source)
    if source.modality == "documents":
        return DocumentSuite(source.name, {name: document_split(source, name) for name in source.splits})
    if source.modality == "retrieval":
        return retrieval_suite(source)
    if source.modality == "choices":
        from harness.data.choices import ChoiceSuite

        splits = {name: choice_split(source, name) for name in source.splits}
        return ChoiceSuite(source.name, splits, f"lm-eval task {source.params.get('lm_eval_task')} ({source.name})")
    return reference_suite_of(source)


def _task(source: DatasetSource) -> str | None:
    """The task a source belongs to, when its name says it (catalog sources are named after their task)."""
    return source.name


def split_of(source: DatasetSource, name: str) -> HubSplit:
    return named_split(source.name, source.splits, name)


# --------------------------------------------------------------------------- classification


@dataclass(frozen=True)
class _Rows:
    """The rows of one split after filtering: positions in the original split, label names or ints."""

    positions: list[int]
    labels: list[Any]


def _row_labels(table: Table, hub: HubSplit, where: str) -> tuple[list[Any], list[str] | None]:
    """Each row's label (its class name when the dataset names classes) and the dataset's class names."""
    assert hub.label is not None
    if hub.label not in table.columns.column_names:
        raise HarnessError(
            f"split {describe(hub)} has no label column {hub.label!r}",
            where=where,
            fix=f"columns: {table.columns.column_names}",
        )
    values = table.columns.column(hub.label).to_pylist()
    names = table.class_names.get(hub.label)
    if names is not None:
        return [names[v] if isinstance(v, int) and 0 <= v < len(names) else v for v in values], names
    return values, None


def file_list(name: str) -> list[str]:
    """The names of a file list that ships with Harness (FILE_LISTS/<name>.txt, a name HubSplit has
    checked; '#' lines are its provenance)."""
    lines = (FILE_LISTS / f"{name}.txt").read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def file_stem(path: str) -> str:
    """A row's file name as file lists spell it: the base name without its extension."""
    return Path(path.replace("\\", "/")).name.rsplit(".", 1)[0]


def _file_names(table: Table, hub: HubSplit, where: str) -> list[str]:
    """Each row's image file name: its path in an image-folder mirror, else the `path` an HF image column
    keeps beside the bytes (ILSVRC/imagenet-1k: ILSVRC2012_val_00000001_n01751748.JPEG)."""
    paths: list[Any] | None = table.paths
    if paths is None and table.columns.num_rows:
        column = _column(table, hub.input, IMAGE_COLUMNS, hub, "image")
        values = table.columns.column(column)
        if hasattr(values.type, "get_field_index") and values.type.get_field_index("path") >= 0:
            paths = [p for chunk in values.chunks for p in chunk.field("path").to_pylist()]
    if paths is None or any(not p for p in paths):
        raise HarnessError(
            f"split {describe(hub)} keeps no image file names, so the file list {hub.drop_files!r} cannot be applied",
            where=where,
            fix="put the split's images in the mirror as an image folder (<split>/<class>/<file>, docs/catalog.md), "
            "or a parquet whose image column keeps each file's path",
        )
    return [file_stem(str(p)) for p in paths]


def _dropped_files(table: Table, hub: HubSplit, where: str) -> set[int]:
    """Rows whose file is in the split's `drop_files` list: the file name equals a listed name or continues
    it after '_' (a listed ILSVRC2012_val_00000001 matches ILSVRC2012_val_00000001_n01751748.JPEG)."""
    assert hub.drop_files is not None
    listed = set(file_list(hub.drop_files))
    dropped = set()
    for row, stem in enumerate(_file_names(table, hub, where)):
        if stem in listed or any(stem[:i] in listed for i in range(len(stem)) if stem[i] == "_"):
            dropped.add(row)
    if listed and not dropped:  # names of another scheme: the list would silently drop nothing
        raise HarnessError(
            f"none of the {table.columns.num_rows} files of split {describe(hub)} is in the file list "
            f"{hub.drop_files!r} (its names look like {sorted(listed)[0]!r})",
            where=where,
            fix="keep the dataset's own file names in the mirror",
        )
    return dropped


def in_original_order(table: Table, hub: HubSplit) -> Table:
    """The table with its rows' original order (`hub.row_order`, recognised by the labels): `order` lists
    its rows in that order and each row's id is `<split>-<original position>`, whatever the copy's order
    (the hub's CIFAR-10 train row 0 is `train-30000`, data_batch_4's first image)."""
    from harness.data.orders import copy_layout, original_positions, row_order

    assert hub.row_order is not None
    labels, _ = _row_labels(table, hub, table.origin)
    known = row_order(hub.row_order)
    order = original_positions(labels, known, f"split {describe(hub)}", table.origin)
    ids = [""] * len(order)
    for original, row in enumerate(order):
        ids[row] = f"{hub.split}-{original}"
    # where the rows came from says how the copy held them (`harness data check` shows it)
    origin = f"{table.origin}; {known.name} blocks as held: {', '.join(copy_layout(order, known))}"
    return replace(table, ids=ids, order=order, origin=origin)


def class_rank(name: str) -> tuple[str, int]:
    """A per-class numbered image file, `.../<class>/<n>.<ext>` (cifar2png's names: the n-th image of the
    class, from 1), as (class, n)."""
    parts = name.replace("\\", "/").split("/")
    stem = parts[-1].rsplit(".", 1)[0]
    if len(parts) < 2 or not parts[-2] or not stem.isdigit() or int(stem) < 1:
        raise HarnessError(f"{name!r} is not a per-class numbered image file (<class>/<n>.png, n from 1)")
    return parts[-2], int(stem)


def _dropped_class_ranks(hub: HubSplit, positions: list[int], labels: list[Any], where: str) -> set[int]:
    """Rows named by the split's `drop_class_ranks` list: the n-th row of each listed class, counted along
    `positions` (the original order). Every listed image must exist: a list for another dataset or split
    (a class it lacks, a number beyond the class's size) is an error, not a silently different set."""
    assert hub.drop_class_ranks is not None
    listed = {class_rank(name) for name in file_list(hub.drop_class_ranks)}
    seen: dict[str, int] = {}
    dropped = set()
    for row in positions:
        label = str(labels[row])
        seen[label] = seen.get(label, 0) + 1
        if (label, seen[label]) in listed:
            dropped.add(row)
    absent = sorted(f"{c}/{n}" for c, n in listed if n > seen.get(c, 0))
    if absent:
        raise HarnessError(
            f"the file list {hub.drop_class_ranks!r} names {len(absent)} images that split {describe(hub)} does not "
            f"have (e.g. {', '.join(absent[:3])}: class and number in the original order)",
            where=where,
            fix="the list is for another dataset or split; check the split's `label` column and class names",
        )
    return dropped


def _select_rows(table: Table, hub: HubSplit, where: str) -> tuple[Table, _Rows, list[str] | None]:
    """The split's rows after `row_order`, `drop_files`, label filters and `rows` (see HubSplit), and the
    table they index (in its original order where the split names one)."""
    if hub.row_order is not None:
        table = in_original_order(table, hub)
    n = table.columns.num_rows
    labels: list[Any] = [None] * n
    names: list[str] | None = None
    if hub.label is not None:
        labels, names = _row_labels(table, hub, where)
    positions = list(range(n)) if table.order is None else list(table.order)
    if hub.drop_class_ranks is not None:
        ranked = _dropped_class_ranks(hub, positions, labels, where)
        positions = [i for i in positions if i not in ranked]
    if hub.drop_files is not None:
        dropped = _dropped_files(table, hub, where)
        positions = [i for i in positions if i not in dropped]
    if hub.keep_labels or hub.drop_labels:
        if hub.label is None:
            raise HarnessError(f"split {describe(hub)} filters by label but names no label column", where=where)
        keep, drop = {str(v) for v in hub.keep_labels}, {str(v) for v in hub.drop_labels}
        # a class the dataset does not name (or, unnamed, no row has) would otherwise filter nothing silently
        present = set(names) if names is not None else {str(v) for v in labels}
        unknown = sorted((keep | drop) - present)
        if unknown:
            raise HarnessError(
                f"split {describe(hub)} filters by labels that are not among its {len(present)} classes: "
                + ", ".join(repr(u) for u in unknown[:5])
                + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""),
                where=where,
                fix="spell keep_labels / drop_labels as the dataset's class names (harness data check TASK lists "
                "what a split reads)",
            )
        positions = [i for i in positions if (not keep or str(labels[i]) in keep) and str(labels[i]) not in drop]
        if names is not None:
            names = [c for c in names if (not keep or c in keep) and c not in drop]
    if hub.rows is not None:
        start, _, stop = hub.rows.partition(":")
        positions = positions[int(start) if start else None : int(stop) if stop else None]
    return table, _Rows(positions, [labels[i] for i in positions]), names


def long_tail_positions(labels: NDArray[np.int64], n_classes: int, ratio: float, seed: int) -> NDArray[np.intp]:
    """Rows of an exponentially long-tailed subsample, as Cao et al.'s LDAM code (IMBALANCECIFAR10) draws it:
    n_c = int(n_max * (1 / ratio)^(c / (C - 1))) with n_max = rows / C; for each class in order, its rows
    are shuffled by numpy's legacy RandomState(seed) (one generator for all classes) and the first n_c kept.
    Returns positions grouped by class, head class first."""
    state = np.random.RandomState(seed)
    n_max = len(labels) / n_classes
    keep = []
    for c in range(n_classes):
        count = int(n_max * (1.0 / ratio) ** (c / (n_classes - 1.0)))
        rows = np.flatnonzero(labels == c)
        state.shuffle(rows)
        keep.append(rows[:count])
    return np.concatenate(keep).astype(np.intp) if keep else np.zeros(0, np.intp)


def _column(table: Table, wanted: str | None, defaults: tuple[str, ...], hub: HubSplit, what: str) -> str:
    columns = table.columns.column_names
    if wanted is not None:
        if wanted not in columns:
            raise HarnessError(f"split {describe(hub)} has no {what} column {wanted!r}", fix=f"columns: {columns}")
        return wanted
    for name in defaults:
        if name in columns:
            return name
    raise HarnessError(
        f"split {describe(hub)} has no {what} column (looked for {', '.join(defaults)})",
        fix=f"set `input` to one of its columns {columns}",
    )


def _image_bytes(value: Any, hub: HubSplit, row: int) -> bytes:
    if isinstance(value, dict):
        if value.get("bytes"):
            return bytes(value["bytes"])
        if value.get("path") and Path(value["path"]).is_file():
            return Path(value["path"]).read_bytes()
    elif isinstance(value, bytes | bytearray):
        return bytes(value)
    raise HarnessError(f"row {row} of split {describe(hub)} holds no image bytes")


def classification_suite(source: DatasetSource) -> Any:
    """A ClassificationSuite of the source's image or text splits, on one label space."""
    from harness.data.arrays import LabelSplit, TextSplit
    from harness.data.digits import ClassificationSuite
    from harness.data.images import IMAGE_PREPROCESSING, EncodedImageSplit

    read: dict[str, tuple[HubSplit, Table, _Rows, list[str] | None]] = {}
    tables: dict[tuple[Any, ...], Table] = {}  # calib and test rows of one split (ImageNet) read it once
    for name, hub in source.splits.items():
        key = (
            hub.dataset,
            hub.config,
            hub.revision,
            hub.split,
            tuple(hub.with_splits),
            hub.image_list,
            hub.labels_only,
            hub.label,
        )
        if key not in tables:
            tables[key] = read_split(hub, task=_task(source), harness_split=name)
        table, rows, names = _select_rows(tables[key], hub, tables[key].origin)
        read[name] = (hub, table, rows, names)
    named = [names for hub, _, _, names in read.values() if names and hub.label and not hub.ood]
    space: list[str] | None = list(source.label_names) or (named[0] if named else None)
    index = {c: i for i, c in enumerate(space)} if space else {}
    largest = -1
    splits: dict[str, Any] = {}
    preprocessing = tuple(sorted((k, v) for k, v in source.preprocessing.items() if k in IMAGE_PREPROCESSING))
    for name, (hub, table, rows, _) in read.items():
        if hub.label is None or hub.ood:
            y = np.full(len(rows.positions), -1, np.int64)
        else:
            y = _label_indices(rows.labels, index, hub, table.origin)
            largest = max(largest, int(y.max()) if y.size else -1)
        positions = np.asarray(rows.positions, dtype=np.intp)
        if hub.long_tail_ratio is not None:
            n_classes = len(space) if space else int(y.max()) + 1
            keep = long_tail_positions(y, n_classes, hub.long_tail_ratio, hub.seed)
            positions, y = positions[keep], y[keep]
        ids = _ids(table, hub, positions)
        where = f"{describe(hub)} ({table.origin})"
        if hub.labels_only:
            splits[name] = LabelSplit(name, y, ids, where)
        elif source.modality == "text":
            column = _column(table, hub.input, TEXT_COLUMNS, hub, "text")
            values = table.columns.column(column).take(positions).to_pylist() if len(positions) else []
            splits[name] = TextSplit(name, [str(v) for v in values], y, ids, where)
        else:
            column = _column(table, hub.input, IMAGE_COLUMNS, hub, "image")
            values = table.columns.column(column).take(positions).to_pylist() if len(positions) else []
            blobs = tuple(_image_bytes(v, hub, int(p)) for v, p in zip(values, positions, strict=True))
            splits[name] = EncodedImageSplit(name, blobs, y, ids, preprocessing, where)
    n_classes = len(space) if space else largest + 1
    return ClassificationSuite(
        name=source.name,
        n_classes=n_classes,
        splits=splits,
        description=f"catalog dataset {source.name}: "
        + ", ".join(f"{n} = {describe(h)}" for n, (h, _, _, _) in read.items()),
        class_names=tuple(space or ()),
    )


def _label_indices(labels: list[Any], index: dict[str, int], hub: HubSplit, where: str) -> NDArray[np.int64]:
    """Labels as indices of the label space: class names by name, integers as they are."""
    out = np.empty(len(labels), np.int64)
    unknown: set[str] = set()
    for i, label in enumerate(labels):
        if isinstance(label, str) and index:
            if label not in index:
                unknown.add(label)
                continue
            out[i] = index[label]
        elif isinstance(label, int | np.integer) and not isinstance(label, bool) and label >= 0:
            out[i] = int(label)
        else:
            unknown.add(str(label))
    if unknown:
        raise HarnessError(
            f"split {describe(hub)} has labels outside the task's label space: {sorted(unknown)[:5]}",
            where=where,
            fix="drop them with drop_labels, or mark the split `ood: true`",
        )
    if index and out.size and out.max() >= len(index):
        raise HarnessError(
            f"split {describe(hub)} has label {int(out.max())} beyond the {len(index)} classes", where=where
        )
    return out


def _ids(table: Table, hub: HubSplit, positions: NDArray[np.intp]) -> list[str]:
    """The sample ids of the rows at `positions` (`sample_ids`)."""
    ids = sample_ids(table, hub.split)
    return [ids[int(p)] for p in positions]


# --------------------------------------------------------------------------- documents


@dataclass(frozen=True)
class DocumentSuite:
    """Document splits (held-out text for language models), by Harness split name."""

    name: str
    splits: dict[str, Any]
    description: str = ""

    def split(self, name: str) -> Any:
        return named_split(self.name, self.splits, name)


def wikitext_articles(lines: list[str]) -> list[str]:
    """WikiText's raw lines joined into articles: one starts at each level-1 heading " = Title = "."""
    articles: list[list[str]] = []
    for line in lines:
        if WIKITEXT_HEADING.match(line) or not articles:
            articles.append([])
        articles[-1].append(line if line.endswith("\n") else line + "\n")
    return [text for text in ("".join(a).strip() for a in articles) if text]


def document_split(source: DatasetSource, name: str) -> Any:
    from harness.data.text import DocumentSplit

    hub = split_of(source, name)
    table = read_split(hub, task=_task(source), harness_split=name)
    column = _column(table, hub.input, TEXT_COLUMNS, hub, "text")
    table, rows, _ = _select_rows(table, hub, table.origin)
    values = table.columns.column(column).to_pylist()
    mode = str(source.preprocessing.get("documents", "rows"))
    where = f"{describe(hub)} ({table.origin})"
    if mode == "wikitext-articles":
        texts = wikitext_articles([str(values[i] or "") for i in rows.positions])
        return DocumentSplit(name, texts, [f"{hub.split}-article-{i}" for i in range(len(texts))], where)
    if mode != "rows":
        raise HarnessError(
            f"unknown documents preprocessing {mode!r}", where=source.name, fix="use rows or wikitext-articles"
        )
    kept = [(i, str(values[i]).strip()) for i in rows.positions if values[i] and str(values[i]).strip()]
    return DocumentSplit(name, [t for _, t in kept], [f"{hub.split}-{i}" for i, _ in kept], where)


# --------------------------------------------------------------------------- retrieval


def retrieval_suite(source: DatasetSource) -> Any:
    """The mirror's BEIR folder, else the MTEB task named by param `mteb_task` (HF cache or hub)."""
    from harness.data.retrieval import read_beir, read_mteb_task

    ((name, hub),) = source.splits.items()
    folder = mirror_folder(hub)
    if is_beir_folder(folder, hub.split):
        empty = str(source.params.get("empty_documents", "error"))
        return read_beir(folder, hub.split, name=source.name, empty_documents=empty)  # type: ignore[arg-type]
    task = source.params.get("mteb_task")
    if not isinstance(task, str):
        raise missing(hub, _task(source), name)
    try:
        return read_mteb_task(task, hub.split)
    except HarnessError as error:
        raise missing(hub, _task(source), name, error.what[:200]) from None


# --------------------------------------------------------------------------- lm-eval multiple choice


def _lm_eval_name(source: DatasetSource) -> str:
    task = source.params.get("lm_eval_task")
    if not isinstance(task, str) or not task:
        raise HarnessError(
            "a choices dataset needs param lm_eval_task (an lm-eval multiple-choice task)", where=source.name
        )
    return task


def lm_eval_task_object(source: DatasetSource, hubs: list[HubSplit]) -> Any:
    """lm-eval's task object for the source's task, reading the mirror's copy of `hubs` when it has them."""
    from harness.cache import default_cache_dir
    from harness.data.lm_eval_source import task_manager

    task = _lm_eval_name(source)
    manager = task_manager(None)
    entry = manager.task_index.get(task)
    if entry is None or entry.yaml_path is None:
        raise HarnessError(f"lm-evaluation-harness has no task {task!r} defined by a YAML file", where=source.name)
    files = {hub.split: mirror_files(hub) for hub in hubs}
    target: Any = task
    if all(len(found) == 1 and found[0].suffix == ".parquet" for found in files.values()):
        # The mirror holds every split: a task file that includes lm-eval's own and reads the mirror's files.
        import yaml

        data_files = {split: str(found[0]) for split, found in files.items()}
        digest = hashlib.sha256(repr(sorted(data_files.items())).encode()).hexdigest()[:16]
        folder = default_cache_dir() / "lm_eval_tasks" / f"catalog-{task}-{digest}"
        folder.mkdir(parents=True, exist_ok=True)
        splits = list(data_files)
        config = {
            "include": str(entry.yaml_path),
            "task": f"{task}_harness_mirror_{digest}",
            "dataset_path": "parquet",
            "dataset_name": None,
            "dataset_kwargs": {"data_files": data_files},
            # only the splits the catalog reads exist; Harness reads each by name, lm-eval needs a test split
            "training_split": None,
            "fewshot_split": None,
            "validation_split": splits[0] if len(splits) > 1 else None,
            "test_split": splits[-1],
        }
        target = folder / "task.yaml"
        target.write_text(yaml.safe_dump(config, sort_keys=True))
        target = str(target)
    try:
        from harness.data.lm_eval_source import _quiet

        with _quiet():
            loaded = manager.load([target])["tasks"]
    except Exception as error:  # lm-eval raises many types for missing data
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        hub = next((h for h in hubs if not files[h.split]), hubs[0])
        raise missing(hub, _task(source), hub.split, first[:200]) from None
    return next(iter(loaded.values()))


def choice_split(source: DatasetSource, name: str, task_object: Any = None) -> Any:
    """Split `name` as multiple-choice items, with lm-eval's prompt, choices and target of each document."""
    from harness.data.choices import ChoiceSplit

    hub = split_of(source, name)
    task = task_object or lm_eval_task_object(source, [h for h in source.splits.values() if h.dataset == hub.dataset])
    docs = task.dataset[hub.split]
    process = getattr(task.config, "process_docs", None)
    if process is not None:
        docs = process(docs)
    positions = list(range(len(docs)))
    if hub.rows is not None:
        start, _, stop = hub.rows.partition(":")
        positions = positions[int(start) if start else None : int(stop) if stop else None]
    contexts, choices, labels = [], [], []
    for i in positions:
        doc = docs[i]
        options = [str(c) for c in task.doc_to_choice(doc)]
        target = task.doc_to_target(doc)
        label = options.index(target) if isinstance(target, str) and target in options else int(target)
        contexts.append(str(task.doc_to_text(doc)))
        choices.append(options)
        labels.append(label)
    # Items may have different numbers of choices (ARC: 3 to 5): the model pads the missing ones with -inf,
    # which scoring turns into a probability of exactly 0 (harness.tasks.base.logit_samples).
    return ChoiceSplit(name, contexts, choices, np.asarray(labels, np.int64), [f"{hub.split}-{i}" for i in positions])


# --------------------------------------------------------------------------- compression reference


def reference_data(source: DatasetSource) -> tuple[list[tuple[str, str]], Any, Any]:
    """The prompts (id, text), held-out documents and choice items a candidate is compared on, read
    without the reference model."""
    params = source.params
    n_prompts = int(params.get("n_prompts", 64))  # type: ignore[arg-type]
    words = int(params.get("prompt_words", 32))  # type: ignore[arg-type]
    prompts = document_split(source, "prompts")
    prompt_items = [(i, " ".join(t.split()[:words])) for i, t in zip(prompts.ids, prompts.texts, strict=True)][
        :n_prompts
    ]
    return prompt_items, document_split(source, "heldout"), choice_split(source, "choices")


def reference_suite_of(source: DatasetSource) -> Any:
    from harness.data.reference import build_reference_suite

    prompts, heldout, choices = reference_data(source)
    reference = source.params.get("reference")
    return build_reference_suite(
        source.name,
        str(reference) if reference else None,
        prompts,
        heldout,
        choices,
        int(source.params.get("n_tokens", 32)),  # type: ignore[arg-type]
    )
