"""Local data: a folder (or one file) of the user's own splits, for any task.

Under the source's `path`, each split is one entry named after it (`test.csv` and `test/` are
both split "test"; hidden entries and files of other kinds, such as a README, are left out):
- `<split>.csv`, `<split>.jsonl`, `<split>.parquet`: a table with a `label` column and either
  a `text` column (text classification) or numeric feature columns, or neither (labels only, for
  a predictions file); `<split>.npz` (arrays y, x, ids) or `<split>.npy` (features, label last).
  See harness/data/tables.py for every rule.
- `<split>.txt`: plain-text documents separated by blank lines; `<split>/` holding `*.txt` files:
  one document per file (for lm_loss and flatness; harness/data/text.py).
- `<split>/<class name>/<image>` (ImageFolder): images of each class; `<split>/<image>`: an
  unlabelled image split (an OOD set, label -1). Classes are the sorted class folder names of the
  train split (or the first split with class folders), unless `classes` lists them. Images are
  read with Pillow and scaled to [0, 1]; they must share one size and mode unless `image_size`
  ([height, width], or one number for squares) and `image_mode` (a Pillow mode such as RGB or L)
  convert them (checked from the files' headers). They stay encoded in memory and are decoded batch
  by batch as a model reads them (harness/data/images.py), so a folder larger than memory decoded fits.
`path` may also name one such file: a dataset with one split, named after the file.

Dataset params (`dataset.params` in the task spec): `label_column`, `text_column`, `id_column`,
`feature_columns`, `classes`, `image_size`, `image_mode`; any other name is an error. The class
names (`classes`, or an ImageFolder's class folders) are the suite's `class_names`: a classifier with
label names of its own (an HF config's id2label) is matched to them by name, in any order
(harness/labels.py); without names, labels index the model's outputs. A split
given twice (`test.csv` and `test.npz`) is an error, and every array split must have inputs of
one shape. Relative paths are relative to the folder `harness` runs in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harness.data.arrays import ArraySplit
from harness.data.digits import ClassificationSuite
from harness.data.images import NATIVE_MODE, EncodedImageSplit
from harness.data.tables import TABLE_SUFFIXES, Columns, read_table_split
from harness.data.text import DocumentSplit, documents_in_file, documents_in_folder
from harness.errors import HarnessError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
SPLIT_SUFFIXES = (*TABLE_SUFFIXES, ".txt")
PARAMS = ("label_column", "text_column", "id_column", "feature_columns", "classes", "image_size", "image_mode")


@dataclass(frozen=True)
class LocalOptions:
    """The dataset params of a local source, checked."""

    columns: Columns = field(default_factory=Columns)
    image_size: tuple[int, int] | None = None
    image_mode: str | None = None

    @classmethod
    def from_params(cls, params: Mapping[str, Any], where: str) -> LocalOptions:
        unknown = sorted(set(params) - set(PARAMS))
        if unknown:
            raise HarnessError(
                f"unknown dataset parameter(s) {unknown} for a local dataset",
                where=f"{where} (dataset.params)",
                fix="known parameters: " + ", ".join(PARAMS),
            )

        def text(key: str, default: str) -> str:
            value = params.get(key, default)
            if not isinstance(value, str) or not value:
                raise HarnessError(f"dataset.params.{key} must be a column name", where=where)
            return value

        def names(key: str) -> tuple[str, ...] | None:
            value = params.get(key)
            if value is None:
                return None
            if not isinstance(value, list) or not value or any(isinstance(v, (bool, dict, list)) for v in value):
                raise HarnessError(f"dataset.params.{key} must be a non-empty list of names", where=where)
            out = tuple(str(v) for v in value)
            if len(set(out)) != len(out):
                raise HarnessError(f"dataset.params.{key} repeats a name", where=where)
            return out

        size = params.get("image_size")
        image_size = None
        if size is not None:
            sides = size if isinstance(size, list) else [size, size]
            if len(sides) != 2 or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in sides):
                raise HarnessError(
                    f"dataset.params.image_size must be [height, width] or one side, got {size!r}", where=where
                )
            image_size = (int(sides[0]), int(sides[1]))
        mode = params.get("image_mode")
        if mode is not None and mode not in ("1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "YCbCr", "I", "F"):
            raise HarnessError(
                f"dataset.params.image_mode {mode!r} is not a Pillow mode", where=where, fix="e.g. RGB or L"
            )
        columns = Columns(
            label=text("label_column", "label"),
            text=text("text_column", "text"),
            id=text("id_column", "id"),
            features=names("feature_columns"),
            classes=names("classes"),
        )
        return cls(columns, image_size, None if mode is None else str(mode))


def local_suite(path: str, name: str = "local", params: Mapping[str, Any] | None = None) -> ClassificationSuite:
    """Every split under `path` (see the module docstring), as one suite."""
    root = Path(path)
    options = LocalOptions.from_params(params or {}, str(root))
    if not root.exists():
        raise HarnessError("dataset path does not exist", where=str(root), fix="check the task spec's dataset.path")
    entries = [root] if root.is_file() else sorted(p for p in root.iterdir() if not p.name.startswith("."))
    found: dict[str, Path] = {}
    image_folders: list[Path] = []
    for entry in entries:
        if entry.is_file() and entry.suffix not in SPLIT_SUFFIXES:
            if root.is_file():
                raise HarnessError(f"a local dataset file must end in {', '.join(SPLIT_SUFFIXES)}", where=str(root))
            continue
        if entry.is_dir() and not _holds_split(entry):
            continue
        split = entry.stem if entry.is_file() else entry.name
        if split in found:
            raise HarnessError(
                f"split {split!r} is given twice: {found[split].name} and {entry.name}",
                where=str(root),
                fix="keep one of them",
            )
        found[split] = entry
        if entry.is_dir() and not _is_document_folder(entry):
            image_folders.append(entry)
    if not found:
        raise HarnessError(
            "no dataset found: expected <split>.csv|.jsonl|.parquet|.npz|.npy|.txt files, <split>/*.txt "
            "documents or <split>/<class>/<image> folders",
            where=str(root),
            fix="see docs/own-data.md for the layouts",
        )
    classes = list(options.columns.classes) if options.columns.classes else _image_classes(image_folders)
    splits: dict[str, Any] = {}
    for split, entry in found.items():
        if entry.is_file() and entry.suffix == ".txt":
            splits[split] = documents_in_file(entry, split)
        elif entry.is_file():
            splits[split] = read_table_split(entry, options.columns)
        elif _is_document_folder(entry):
            splits[split] = documents_in_folder(entry, split)
        else:
            splits[split] = _read_image_folder(entry, classes, options)
    _check_input_shapes(splits, root)
    labelled = [s.y for s in splits.values() if not isinstance(s, DocumentSplit) and len(s)]
    n_classes = len(classes) if classes else max((int(y.max()) + 1 for y in labelled), default=0)
    return ClassificationSuite(
        name=name,
        n_classes=n_classes,
        splits=splits,
        description=f"local dataset at {root}",
        class_names=tuple(classes),  # named classes map onto a model's own label names (harness/labels.py)
    )


def _holds_split(folder: Path) -> bool:
    """A folder is a split when it holds class folders, images or .txt documents, or nothing (an empty
    split, reported as such when a task reads it)."""
    children = [p for p in folder.iterdir() if not p.name.startswith(".")]
    return not children or any(p.is_dir() or p.suffix.lower() in (*IMAGE_SUFFIXES, ".txt") for p in children)


def _is_document_folder(folder: Path) -> bool:
    return any(p.suffix == ".txt" and not p.name.startswith(".") for p in folder.iterdir())


def _class_folders(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _image_classes(folders: list[Path]) -> list[str]:
    """Class names: the class folders of the train split, else of the first split that has any."""
    labelled = [f for f in folders if _class_folders(f)]
    first = next((f for f in labelled if f.name == "train"), labelled[0] if labelled else None)
    return [p.name for p in _class_folders(first)] if first is not None else []


def _check_input_shapes(splits: dict[str, Any], root: Path) -> None:
    """Every array split must have inputs of one shape: a model fitted on one fits all of them."""
    shapes = {
        name: split.x.shape[1:]  # an image split decodes its first image for this
        for name, split in splits.items()
        if isinstance(split, ArraySplit | EncodedImageSplit) and len(split)
    }
    if len(set(shapes.values())) > 1:
        listed = ", ".join(f"{name} {shape}" for name, shape in sorted(shapes.items()))
        raise HarnessError(
            f"splits have inputs of different shapes: {listed}",
            where=str(root),
            fix="give every split the same features (the same width, in the same order); images: "
            "dataset.params.image_size and image_mode",
        )


def _image_files(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
    )


def _image_shape(file: Path, options: LocalOptions) -> tuple[int, ...]:
    """The (height, width, channels) `file` decodes to, from its header (nothing decoded); an unreadable
    file is a HarnessError naming it."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(file) as opened:
            mode = options.image_mode or opened.mode
            width, height = opened.size
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as error:
        raise HarnessError(
            f"cannot read the image ({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''})",
            where=str(file),
            fix="re-save it as PNG or JPEG, or remove it",
        ) from None
    if options.image_size is not None:
        height, width = options.image_size
    return (height, width, Image.getmodebands(mode))


def _read_image_folder(folder: Path, classes: list[str], options: LocalOptions) -> EncodedImageSplit:
    class_folders = _class_folders(folder)
    loose = _image_files(folder)
    if class_folders and loose:
        raise HarnessError(
            f"split {folder.name!r} holds both class folders and images ({loose[0].name})",
            where=str(folder),
            fix="put every image in its class folder, or (an unlabelled split) no class folders",
        )
    unknown = sorted(p.name for p in class_folders if p.name not in classes)
    if unknown:
        known = "dataset.params.classes" if options.columns.classes else "the train split"
        raise HarnessError(f"classes {unknown} are not in {known}", where=str(folder), fix=f"known classes: {classes}")
    blobs, shapes, labels, ids = [], set(), [], []
    members = [(-1, folder)] if loose else [(classes.index(p.name), p) for p in class_folders]
    for label, member in members:
        for file in _image_files(member):
            shapes.add(_image_shape(file, options))
            blobs.append(file.read_bytes())  # kept encoded: decoded batch by batch as the model reads them
            labels.append(label)
            ids.append(file.relative_to(folder.parent).as_posix())
    if len(shapes) > 1:
        raise HarnessError(
            f"images have different shapes {sorted(shapes)[:3]}",
            where=str(folder),
            fix="set dataset.params.image_size (and image_mode, e.g. RGB) to convert them, or resize them",
        )
    preprocessing: list[tuple[str, Any]] = [("mode", options.image_mode or NATIVE_MODE)]
    if options.image_size is not None:
        preprocessing.append(("size", tuple(options.image_size)))
    y = np.asarray(labels, dtype=np.int64)
    return EncodedImageSplit(folder.name, tuple(blobs), y, ids, tuple(preprocessing), str(folder))
