"""Predictions files: evaluate a model whose weights cannot be shared, from its outputs.

A folder (with an optional card.json) holding `predictions.npz` or `predictions.parquet`, or the
file itself:
- npz: per split, `<split>.ids` (n strings), `<split>.logits` (n, k) and optionally
  `<split>.features` (n, d);
- parquet: columns `split`, `sample_id`, `logits` (list of floats) and optionally `features`.
The loader reads the file as untrusted (`harness.untrusted`: no pickles, decompressed size capped
by MAX_ARRAY_BYTES before anything is read) and checks dtypes, shapes, duplicate ids and
finiteness on load; at evaluation time every sample id of a requested split must be present
(extra ids are ignored; order follows the dataset). The dataset's inputs are never read, so its
splits may hold labels and ids alone (a CSV with `id` and `label` columns; harness/data/tables.py),
and an optional split (calib, train) that the file leaves out is skipped with a note in the run.
The checkpoint hash is the sha256 of the predictions file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from harness.errors import HarnessError
from harness.models import checkpoint_hash, read_card
from harness.models.base import Arrays, Capability, InferenceOptions, LoadOptions, ModelHandle
from harness.untrusted import matrix_column, read_npz, read_parquet

FILES = ("predictions.npz", "predictions.parquet")


def predictions_file(path: Path) -> Path | None:
    if path.is_file() and path.name.endswith(FILES):
        return path
    if path.is_dir():
        return next((path / name for name in FILES if (path / name).exists()), None)
    return None


class PredictionsHandle(ModelHandle):
    #: the outputs are given: the dataset's inputs are never read (a split of labels and ids will do)
    reads_inputs = False

    def __init__(self, *, table: dict[str, dict[str, Any]], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.table = table  # split -> {"ids": {id: row}, "logits": array, "features": array | None}

    def covers(self, split: str) -> bool:
        """Whether the file predicts split `split` (an optional split it leaves out is not read)."""
        return split in self.table

    @property
    def n_outputs(self) -> int | None:
        widths = {int(entry["logits"].shape[1]) for entry in self.table.values()}
        return widths.pop() if len(widths) == 1 else None

    def classify(self, split: Any, options: InferenceOptions) -> Arrays:
        if split.name not in self.table:
            raise HarnessError(
                f"the predictions have no split {split.name!r}",
                where=str(self.path),
                fix=f"add it; the file has {sorted(self.table)}",
            )
        entry = self.table[split.name]
        index = entry["ids"]
        missing = [i for i in split.ids if i not in index]
        if missing:
            raise HarnessError(
                f"{len(missing)} of {len(split.ids)} sample ids of split {split.name!r} have no prediction "
                f"(for example {missing[:3]})",
                where=str(self.path),
                fix="predict every sample of the dataset split (ids must match the dataset's ids)",
            )
        rows = np.fromiter((index[i] for i in split.ids), dtype=np.int64, count=len(split.ids))
        out = {"logits": entry["logits"][rows]}
        if entry["features"] is not None:
            out["features"] = entry["features"][rows]
        options.advance(len(rows))
        return out


def _read(file: Path) -> dict[str, dict[str, Any]]:
    raw: dict[str, dict[str, Any]] = {}
    if file.suffix == ".npz":
        for key, array in read_npz(file).items():
            split, _, field = key.rpartition(".")
            if field not in ("ids", "logits", "features") or not split:
                raise HarnessError(
                    f"unexpected array {key!r}",
                    where=str(file),
                    fix="name arrays <split>.ids, <split>.logits, <split>.features",
                )
            raw.setdefault(split, {})[field] = array
    else:
        table = read_parquet(file)
        for column in ("split", "sample_id", "logits"):
            if column not in table.column_names:
                raise HarnessError(
                    f"missing column {column!r}", where=str(file), fix="columns: split, sample_id, logits[, features]"
                )
        splits = np.asarray([str(s) for s in table.column("split").to_pylist()])
        sample_ids = np.asarray(table.column("sample_id").to_pylist())
        logits = matrix_column(table, "logits", str(file))
        features = matrix_column(table, "features", str(file)) if "features" in table.column_names else None
        for split in sorted(set(splits.tolist())):
            rows = np.flatnonzero(splits == split)
            entry = {"ids": sample_ids[rows], "logits": logits[rows]}
            if features is not None:
                entry["features"] = features[rows]
            raw[split] = entry
    return {split: _check(split, entry, file) for split, entry in raw.items()}


def _numbers(values: Any, name: str, n: int, where: str) -> NDArray[np.float32]:
    """A finite (n, k) float32 array from `values` (any real dtype); anything else is a HarnessError."""
    array = np.asarray(values)
    if array.dtype.kind not in "biuf":
        raise HarnessError(
            f"{name} must be real numbers, got dtype {array.dtype}", where=where, fix=f"export {name} as floats"
        )
    if array.ndim != 2 or array.shape[0] != n:
        raise HarnessError(
            f"{name} must have shape ({n}, k), got {array.shape}", where=where, fix=f"export one row of {name} per id"
        )
    result = array.astype(np.float32)
    if not np.isfinite(result).all():
        raise HarnessError(f"{name} contain NaN or inf", where=where, fix=f"export finite {name}")
    return result


def _check(split: str, entry: dict[str, Any], file: Path) -> dict[str, Any]:
    where = f"{file} (split {split})"
    if "ids" not in entry or "logits" not in entry:
        raise HarnessError("each split needs ids and logits", where=where)
    raw_ids = np.asarray(entry["ids"])
    if raw_ids.ndim != 1 or raw_ids.dtype.kind not in "Uiu":
        raise HarnessError(
            f"ids must be a 1-D array of strings or integers, got dtype {raw_ids.dtype} and shape {raw_ids.shape}",
            where=where,
            fix="export the dataset's sample ids, one per row",
        )
    ids = [str(i) for i in raw_ids.tolist()]
    if len(set(ids)) != len(ids):
        raise HarnessError("duplicate sample ids", where=where)
    logits = _numbers(entry["logits"], "logits", len(ids), where)
    features = entry.get("features")
    if features is not None:
        features = _numbers(features, "features", len(ids), where)
    return {"ids": {i: row for row, i in enumerate(ids)}, "logits": logits, "features": features}


class PredictionsLoader:
    kind = "predictions"
    description = "per-split logits (and features) in predictions.npz or predictions.parquet"
    expects = "predictions.npz (<split>.ids, <split>.logits[, <split>.features]) or predictions.parquet"
    #: the logits are given: there are no weights to run in another dtype
    dtypes = ("float32",)
    #: nor inputs to read: the dataset needs labels and ids only
    reads_inputs = False

    def detect(self, path: Path) -> bool:
        return predictions_file(path) is not None

    def load(self, path: Path, options: LoadOptions) -> ModelHandle:
        file = predictions_file(path)
        assert file is not None
        table = _read(file)
        has_features = all(entry["features"] is not None for entry in table.values())
        folder = path if path.is_dir() else path.parent
        card = read_card(folder, self.kind) if (folder / "card.json").exists() else None
        if card is None:
            from harness.schema import ModelCard

            card = ModelCard(name=(path.name if path.is_dir() else file.stem), kind=self.kind)
        capabilities = {Capability.LOGITS} | ({Capability.FEATURES} if has_features else set())
        return PredictionsHandle(
            table=table,
            path=path,
            kind=self.kind,
            card=card,
            checkpoint_hash=checkpoint_hash([file], file),
            capabilities=frozenset(capabilities),
        )


LOADER = PredictionsLoader()
