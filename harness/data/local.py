"""Local classification data: an ImageFolder tree or one array file per split.

Layouts (checked in this order), under the source's `path`:
- `<split>.npz` with arrays `x` (n, ...) and `y` (n,), optional `ids` (n,) of strings;
- `<split>.parquet` with a `label` column, optional `id`, and either a `text` column (text
  classification) or an `x` column of float lists (fixed-length feature vectors);
- ImageFolder: `<split>/<class name>/<image file>`; classes are the sorted folder names of the
  train split (or the first split), images are read with Pillow, scaled to [0, 1], and must all
  have the same size and mode.
Samples without ids get `<split>-<row>`. Labels must be integers in [0, n_classes). Every array
split has inputs of one shape. Files are read as untrusted (`harness.untrusted`: no pickles,
decompressed size capped by MAX_ARRAY_BYTES before anything is read).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from harness.data.arrays import ArraySplit, TextSplit
from harness.data.digits import ClassificationSuite
from harness.errors import HarnessError
from harness.untrusted import matrix_column, read_npz, read_parquet

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")


def local_suite(path: str, name: str = "local") -> ClassificationSuite:
    root = Path(path)
    if not root.exists():
        raise HarnessError("dataset path does not exist", where=str(root), fix="check the task spec's dataset.path")
    splits: dict[str, Any] = {}
    for file in sorted(root.glob("*.npz")):
        splits[file.stem] = _read_npz(file)
    for file in sorted(root.glob("*.parquet")):
        splits.setdefault(file.stem, _read_parquet(file))
    if not splits:
        folders = sorted(p for p in root.iterdir() if p.is_dir())
        if not folders:
            raise HarnessError(
                "no dataset found: expected <split>.npz, <split>.parquet or <split>/<class>/<image> folders",
                where=str(root),
            )
        first = next((f for f in folders if f.name == "train"), folders[0])
        classes = sorted(p.name for p in first.iterdir() if p.is_dir())
        splits = {folder.name: _read_image_folder(folder, classes) for folder in folders}
    _check_input_shapes(splits, root)
    n_classes = max(int(s.y.max()) + 1 if len(s) else 0 for s in splits.values())
    return ClassificationSuite(name=name, n_classes=n_classes, splits=splits, description=f"local dataset at {root}")


def _check_input_shapes(splits: dict[str, Any], root: Path) -> None:
    """Every array split must have inputs of one shape: a model fitted on one fits all of them."""
    shapes = {name: split.x.shape[1:] for name, split in splits.items() if isinstance(split, ArraySplit)}
    if len(set(shapes.values())) > 1:
        listed = ", ".join(f"{name} {shape}" for name, shape in sorted(shapes.items()))
        raise HarnessError(
            f"splits have inputs of different shapes: {listed}",
            where=str(root),
            fix="give every split the same features (the same width, in the same order)",
        )


def _ids(split: str, raw: Any, n: int, where: Path) -> list[str]:
    if raw is None:
        return [f"{split}-{i}" for i in range(n)]
    ids = np.asarray(raw)
    if ids.ndim != 1 or ids.dtype.kind not in "Uiu":
        raise HarnessError(
            f"ids must be a 1-D array of strings or integers, got dtype {ids.dtype} and shape {ids.shape}",
            where=str(where),
            fix="one id per sample",
        )
    return [str(i) for i in ids.tolist()]


def _labels(values: Any, where: Path) -> np.ndarray:
    labels = np.asarray(values)
    if labels.ndim != 1 or (labels.size and (not np.issubdtype(labels.dtype, np.integer) or labels.min() < -1)):
        raise HarnessError(
            "labels must be integers >= 0 (or -1 for unlabelled OOD data), in a 1-D array", where=str(where)
        )
    return labels.astype(np.int64)


def _inputs(values: Any, where: Path) -> np.ndarray:
    x = np.asarray(values)
    if x.dtype.kind not in "biuf" or x.ndim < 2:
        raise HarnessError(
            f"inputs 'x' must be real numbers with one row per sample, got dtype {x.dtype} and shape {x.shape}",
            where=str(where),
            fix="store x as a float array of shape (n, features...)",
        )
    return x.astype(np.float32)


def _read_npz(file: Path) -> ArraySplit:
    arrays = read_npz(file)
    if "x" not in arrays or "y" not in arrays:
        raise HarnessError("an .npz split needs arrays 'x' and 'y'", where=str(file), fix=f"found {sorted(arrays)}")
    y = _labels(arrays["y"], file)
    return ArraySplit(file.stem, _inputs(arrays["x"], file), y, _ids(file.stem, arrays.get("ids"), len(y), file))


def _read_parquet(file: Path) -> ArraySplit | TextSplit:
    table = read_parquet(file)
    columns = table.column_names
    if "label" not in columns:
        raise HarnessError("a parquet split needs a 'label' column", where=str(file), fix=f"found {sorted(columns)}")
    y = _labels(table.column("label").to_numpy(zero_copy_only=False), file)
    ids = _ids(file.stem, table.column("id").to_pylist() if "id" in columns else None, len(y), file)
    if "text" in columns:
        return TextSplit(file.stem, [str(t) for t in table.column("text").to_pylist()], y, ids)
    if "x" in columns:
        return ArraySplit(file.stem, matrix_column(table, "x", str(file)), y, ids)
    raise HarnessError("a parquet split needs a 'text' or an 'x' column", where=str(file))


def _read_image_folder(folder: Path, classes: list[str]) -> ArraySplit:
    from PIL import Image

    images, labels, ids = [], [], []
    for label, class_name in enumerate(classes):
        for file in sorted((folder / class_name).glob("*")):
            if file.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            with Image.open(file) as image:
                images.append(np.asarray(image, dtype=np.float32) / 255.0)
            labels.append(label)
            ids.append(f"{folder.name}/{class_name}/{file.name}")
    unknown = sorted(p.name for p in folder.iterdir() if p.is_dir() and p.name not in classes)
    if unknown:
        raise HarnessError(f"classes {unknown} are not in the train split", where=str(folder))
    shapes = {image.shape for image in images}
    if len(shapes) > 1:
        raise HarnessError(
            f"images have different shapes {sorted(shapes)[:3]}", where=str(folder), fix="resize them to one size"
        )
    x = np.stack(images) if images else np.zeros((0, 1), np.float32)
    if x.ndim == 3:  # greyscale: add the channel axis
        x = x[..., None]
    return ArraySplit(folder.name, x, np.asarray(labels, dtype=np.int64), ids)
