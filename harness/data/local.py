"""Local classification data: an ImageFolder tree or one array file per split.

Layouts (checked in this order), under the source's `path`:
- `<split>.npz` with arrays `x` (n, ...) and `y` (n,), optional `ids` (n,) of strings;
- `<split>.parquet` with a `label` column, optional `id`, and either a `text` column (text
  classification) or an `x` column of float lists (fixed-length feature vectors);
- ImageFolder: `<split>/<class name>/<image file>`; classes are the sorted folder names of the
  train split (or the first split), images are read with Pillow, scaled to [0, 1], and must all
  have the same size and mode.
Samples without ids get `<split>-<row>`. Labels must be integers in [0, n_classes).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from harness.data.arrays import ArraySplit, TextSplit
from harness.data.digits import ClassificationSuite
from harness.errors import HarnessError

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
    n_classes = max(int(s.y.max()) + 1 if len(s) else 0 for s in splits.values())
    return ClassificationSuite(name=name, n_classes=n_classes, splits=splits, description=f"local dataset at {root}")


def _ids(split: str, raw: Any, n: int) -> list[str]:
    return [str(i) for i in raw] if raw is not None else [f"{split}-{i}" for i in range(n)]


def _labels(values: Any, where: Path) -> np.ndarray:
    labels = np.asarray(values)
    if labels.size and (not np.issubdtype(labels.dtype, np.integer) or labels.min() < -1):
        raise HarnessError("labels must be integers >= 0 (or -1 for unlabelled OOD data)", where=str(where))
    return labels.astype(np.int64)


def _read_npz(file: Path) -> ArraySplit:
    try:
        with np.load(file, allow_pickle=False) as archive:
            if "x" not in archive.files or "y" not in archive.files:
                raise HarnessError(
                    "an .npz split needs arrays 'x' and 'y'", where=str(file), fix=f"found {archive.files}"
                )
            x = archive["x"].astype(np.float32)
            y = _labels(archive["y"], file)
            ids = archive["ids"] if "ids" in archive.files else None
    except ValueError as error:
        raise HarnessError(f"cannot read npz: {error}", where=str(file)) from None
    return ArraySplit(file.stem, x, y, _ids(file.stem, ids, len(y)))


def _read_parquet(file: Path) -> ArraySplit | TextSplit:
    import pyarrow.parquet as pq

    table = pq.read_table(file).to_pydict()
    if "label" not in table:
        raise HarnessError("a parquet split needs a 'label' column", where=str(file), fix=f"found {sorted(table)}")
    y = _labels(table["label"], file)
    ids = _ids(file.stem, table.get("id"), len(y))
    if "text" in table:
        return TextSplit(file.stem, [str(t) for t in table["text"]], y, ids)
    if "x" in table:
        return ArraySplit(file.stem, np.asarray(table["x"], dtype=np.float32), y, ids)
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
