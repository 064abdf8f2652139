"""Hugging Face datasets as classification suites (image or text), offline-friendly.

The source's `name` is a hub id, read through `datasets.load_dataset` at `revision` (with
HF_DATASETS_OFFLINE=1 this uses the local cache only), or `path` is a folder written by
`Dataset.save_to_disk` / `DatasetDict.save_to_disk`. Params: `label_column` (default "label"),
`image_column` (default "image") or `text_column` (default "text"), and `splits`, a mapping
from Harness split names (train, calib, test, ...) to the dataset's split names (default:
the same names). Images become float32 arrays in [0, 1], shape (n, H, W, C).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from harness.data.arrays import ArraySplit, TextSplit
from harness.data.digits import ClassificationSuite
from harness.errors import HarnessError
from harness.schema import DatasetSource


def hf_suite(source: DatasetSource) -> ClassificationSuite:
    import datasets

    try:
        if source.path:
            loaded = datasets.load_from_disk(source.path)
        else:
            revision = None if source.revision in ("", "1") else source.revision
            loaded = datasets.load_dataset(source.name, revision=revision)
    except (FileNotFoundError, ValueError, ConnectionError, OSError) as error:
        raise HarnessError(
            f"cannot load HF dataset: {str(error).splitlines()[0]}",
            where=source.path or source.name,
            fix="download it once with network access (it is then cached), or point 'path' at a saved copy",
        ) from None
    if isinstance(loaded, datasets.Dataset):
        loaded = datasets.DatasetDict({"test": loaded})
    params = source.params
    label_column = str(params.get("label_column", "label"))
    mapping = params.get("splits") or {name: name for name in loaded}
    if not isinstance(mapping, dict):
        raise HarnessError("param 'splits' must map Harness split names to dataset split names", where=source.name)
    splits: dict[str, ArraySplit | TextSplit] = {}
    n_classes = 0
    for ours, theirs in mapping.items():
        if theirs not in loaded:
            raise HarnessError(f"dataset has no split {theirs!r}", where=source.name, fix=f"splits: {sorted(loaded)}")
        data = loaded[theirs]
        if label_column not in data.column_names:
            raise HarnessError(
                f"no label column {label_column!r}", where=source.name, fix=f"columns: {data.column_names}"
            )
        feature = data.features[label_column]
        n_classes = max(n_classes, getattr(feature, "num_classes", 0) or 0)
        splits[ours] = _split(ours, data, params, label_column)
        if len(splits[ours]):
            n_classes = max(n_classes, int(splits[ours].y.max()) + 1)
    return ClassificationSuite(
        name=source.name, n_classes=n_classes, splits=splits, description=f"HF dataset {source.path or source.name}"
    )


def _split(name: str, data: Any, params: dict[str, Any], label_column: str) -> ArraySplit | TextSplit:
    labels = np.asarray(data[label_column], dtype=np.int64)
    ids = [str(i) for i in data["id"]] if "id" in data.column_names else [f"{name}-{i}" for i in range(len(labels))]
    text_column = str(params.get("text_column", "text"))
    image_column = str(params.get("image_column", "image"))
    if image_column in data.column_names:
        images = [np.asarray(image, dtype=np.float32) / 255.0 for image in data[image_column]]
        shapes = {image.shape for image in images}
        if len(shapes) > 1:
            raise HarnessError(f"images in split {name!r} have different shapes", fix="resize them to one size")
        x = np.stack(images) if images else np.zeros((0, 1), np.float32)
        return ArraySplit(name, x[..., None] if x.ndim == 3 else x, labels, ids)
    if text_column in data.column_names:
        return TextSplit(name, [str(t) for t in data[text_column]], labels, ids)
    raise HarnessError(
        f"split {name!r} has neither an image column {image_column!r} nor a text column {text_column!r}",
        fix="set params image_column or text_column in the task spec",
    )
