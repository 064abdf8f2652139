"""Tabular split files of a local dataset: CSV, JSON Lines, parquet, .npz and .npy.

One file per split, `<split>.<suffix>`. For a table (CSV with a header row, JSON Lines with one
object per line, parquet), with the column names of `Columns` (dataset params):
- `id` (optional): the sample ids, strings or integers; without it ids are `<split>-<row>`;
- `label` (optional): the class of each row, an integer index or, with `classes`, a class name;
  a split without it is unlabelled (an OOD set; label -1);
- `text`: present, the split is text classification (`TextSplit`); other columns are ignored;
- otherwise the features: `feature_columns` when given, else every other column, each numeric
  (parquet may instead hold one `x` column of equal-length number lists);
- no feature column at all: the split has labels and ids only (`LabelSplit`), which only a
  predictions file can be evaluated on.
`.npz`: arrays `y` (labels, optional), `x` (inputs (n, ...), optional) and `ids` (optional).
`.npy`: one 2-D numeric array, one row per sample; its last column is the label (whole numbers).

Labels: integers >= 0, or -1 for an unlabelled sample. With `classes` (a list of class names, whose
order gives the indices) a label is a class name, or an integer index below the number of classes;
anything else is an error that lists the unknown labels. CSV and JSON Lines files must be UTF-8 and
are capped at MAX_ARRAY_BYTES / 4 (their values can take four times their text's size); .npz, .npy
and parquet files are read as untrusted (harness.untrusted).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from harness.data.arrays import ArraySplit, LabelSplit, TextSplit
from harness.errors import HarnessError

TABLE_SUFFIXES = (".csv", ".jsonl", ".parquet", ".npz", ".npy")
NPZ_ARRAYS = ("x", "y", "ids")


@dataclass(frozen=True)
class Columns:
    """Column names of table files and the label space (dataset params of a local source)."""

    label: str = "label"
    text: str = "text"
    id: str = "id"
    features: tuple[str, ...] | None = None
    classes: tuple[str, ...] | None = None


def read_table_split(file: Path, columns: Columns) -> ArraySplit | TextSplit | LabelSplit:
    """The split in one table file, named after the file (its name without the suffix)."""
    if file.suffix == ".npz":
        return _npz_split(file, columns)
    if file.suffix == ".npy":
        return _npy_split(file, columns)
    return table_split(_read_table(file), file.stem, str(file), columns)


def _read_table(file: Path) -> Any:
    import pyarrow as pa

    from harness import untrusted

    if file.suffix == ".parquet":
        return untrusted.read_parquet(file)
    size = untrusted.regular_file(file, f"{file.suffix[1:]} file")
    cap = untrusted.MAX_ARRAY_BYTES // 4
    if size > cap:
        raise HarnessError(
            f"the file has {size:,} bytes, over the {cap:,} bytes cap (MAX_ARRAY_BYTES / 4)",
            where=str(file),
            fix="split it, store it as parquet, or raise HARNESS_MAX_ARRAY_BYTES",
        )
    from harness.data.text import read_text

    data = io.BytesIO(read_text(file).encode())  # UTF-8 checked first, with the offset of a bad byte
    try:
        if file.suffix == ".csv":
            import pyarrow.csv as pa_csv

            # quoted values may span lines (texts with newlines)
            return pa_csv.read_csv(data, parse_options=pa_csv.ParseOptions(newlines_in_values=True))
        import pyarrow.json as pa_json

        return pa_json.read_json(data)
    except (pa.ArrowException, OSError, ValueError) as error:
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        kind = "CSV file with a header row" if file.suffix == ".csv" else "JSON Lines file (one object per line)"
        raise HarnessError(
            f"not a readable {kind}: {message}",
            where=str(file),
            fix="save it as UTF-8 " + ("CSV with a header row" if file.suffix == ".csv" else "JSON Lines"),
        ) from None


def table_split(table: Any, split: str, where: str, columns: Columns) -> ArraySplit | TextSplit | LabelSplit:
    """A split from a pyarrow table with the columns of `columns` (see the module docstring)."""
    names = list(table.column_names)
    n = table.num_rows
    ids = _ids(table.column(columns.id).to_pylist() if columns.id in names else None, split, n, where, columns.id)
    labels = (
        labels_from(table.column(columns.label).to_pylist(), where, columns)
        if columns.label in names
        else np.full(n, -1, np.int64)
    )
    if columns.text in names:
        texts = table.column(columns.text).to_pylist()
        bad = next((i for i, t in enumerate(texts) if not isinstance(t, str)), None)
        if bad is not None:
            raise HarnessError(
                f"column {columns.text!r} must hold text in every row; row {bad} holds {texts[bad]!r}",
                where=where,
                fix="fill the missing texts (or drop those rows)",
            )
        return TextSplit(split, texts, labels, ids, where)
    if columns.features is not None:
        missing = [c for c in columns.features if c not in names]
        if missing:
            raise HarnessError(
                f"feature column(s) {missing} are missing", where=where, fix=f"the file has columns {names}"
            )
        feature_names = list(columns.features)
    elif "x" in names and _is_list(table.column("x").type):
        from harness.untrusted import matrix_column

        return ArraySplit(split, matrix_column(table, "x", where), labels, ids, where)
    else:
        feature_names = [c for c in names if c not in (columns.id, columns.label)]
    if not feature_names:
        return LabelSplit(split, labels, ids, where)
    return ArraySplit(split, _features(table, feature_names, where, columns), labels, ids, where)


def _is_list(kind: Any) -> bool:
    import pyarrow as pa

    return bool(pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind))


def _features(table: Any, names: Sequence[str], where: str, columns: Columns) -> NDArray[np.float32]:
    import pyarrow as pa

    for name in names:
        kind = table.column(name).type
        if not (pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)):
            raise HarnessError(
                f"column {name!r} ({kind}) is neither a numeric feature nor the text column {columns.text!r}",
                where=where,
                fix="name the text column with dataset.params.text_column, or list the numeric ones in "
                "dataset.params.feature_columns",
            )
        if table.column(name).null_count:
            raise HarnessError(
                f"feature column {name!r} has {table.column(name).null_count} empty values",
                where=where,
                fix="fill them in",
            )
    if not table.num_rows:
        return np.zeros((0, len(names)), np.float32)
    x = np.stack([table.column(name).to_numpy(zero_copy_only=False).astype(np.float32) for name in names], axis=1)
    return x


def _ids(raw: list[Any] | None, split: str, n: int, where: str, column: str) -> list[str]:
    if raw is None:
        return [f"{split}-{i}" for i in range(n)]
    bad = next((i for i, v in enumerate(raw) if not isinstance(v, (str, int)) or isinstance(v, bool)), None)
    if bad is not None:
        raise HarnessError(
            f"sample ids (column or array {column!r}) must be strings or integers; row {bad} holds {raw[bad]!r}",
            where=where,
            fix="one id per sample",
        )
    return [str(v) for v in raw]


def _as_index(value: Any) -> int | None:
    """`value` as an integer when it is one (an int, a whole float, or the text of an int), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return None


def labels_from(values: Sequence[Any], where: str, columns: Columns) -> NDArray[np.int64]:
    """Labels as class indices: a class name of `columns.classes`, else an integer index in
    [0, number of classes) or -1 (unlabelled); anything else is an error listing what was found."""
    classes = columns.classes
    index = {name: i for i, name in enumerate(classes)} if classes is not None else {}
    out = np.empty(len(values), np.int64)
    unknown: list[Any] = []
    for row, value in enumerate(values):
        if value is None:
            raise HarnessError(
                f"row {row} has no label (column {columns.label!r})",
                where=where,
                fix="give every row a label, or leave the column out for an unlabelled (OOD) split",
            )
        if classes is not None and str(value) in index:
            out[row] = index[str(value)]
            continue
        number = _as_index(value)
        if number is None or number < -1 or (classes is not None and number >= len(classes)):
            unknown.append(value)
            continue
        out[row] = number
    if unknown:
        shown = ", ".join(repr(v) for v in sorted(set(unknown), key=str)[:5])
        if classes is None and any(isinstance(v, str) for v in unknown):
            fix = "labels are class indices (0, 1, ...); to use names, list them in dataset.params.classes"
        elif classes is None:
            fix = "labels are class indices 0, 1, ... (or -1 for unlabelled samples)"
        else:
            fix = f"labels are one of the {len(classes)} classes {list(classes)[:10]} or their indices 0..{len(classes) - 1}"
        raise HarnessError(
            f"{len(unknown)} labels are outside the label space (for example {shown})", where=where, fix=fix
        )
    return out


def _npz_split(file: Path, columns: Columns) -> ArraySplit | LabelSplit:
    from harness.untrusted import read_npz

    arrays = read_npz(file)
    unexpected = sorted(set(arrays) - set(NPZ_ARRAYS))
    if unexpected or not {"x", "y", "ids"} & set(arrays):
        raise HarnessError(
            f"an .npz split holds arrays y (labels), x (inputs) and ids, each optional; found {sorted(arrays)}",
            where=str(file),
            fix="name the arrays x, y and ids (numpy.savez(file, x=..., y=..., ids=...))",
        )
    n = next(len(arrays[k]) for k in ("y", "ids", "x") if k in arrays)
    if "y" in arrays:
        y = np.asarray(arrays["y"])
        if y.ndim != 1 or y.dtype.kind not in "iuUSf":
            raise HarnessError(
                f"labels 'y' must be a 1-D array, got dtype {y.dtype} and shape {y.shape}",
                where=str(file),
                fix="one integer label per sample",
            )
        if y.dtype.kind == "f" and not np.all(np.mod(y, 1) == 0):
            raise HarnessError("labels must be integers >= 0 (or -1 for unlabelled OOD data)", where=str(file))
        labels = labels_from(y.tolist(), str(file), columns)
    else:
        labels = np.full(n, -1, np.int64)
    raw_ids = arrays.get("ids")
    if raw_ids is not None and (np.asarray(raw_ids).ndim != 1 or np.asarray(raw_ids).dtype.kind not in "Uiu"):
        raise HarnessError(
            f"ids must be a 1-D array of strings or integers, got dtype {raw_ids.dtype} and shape {raw_ids.shape}",
            where=str(file),
            fix="one id per sample",
        )
    ids = _ids(None if raw_ids is None else raw_ids.tolist(), file.stem, len(labels), str(file), "ids")
    if "x" not in arrays:
        return LabelSplit(file.stem, labels, ids, str(file))
    return ArraySplit(file.stem, _inputs(arrays["x"], file), labels, ids, str(file))


def _inputs(values: Any, where: Path) -> NDArray[np.float32]:
    x = np.asarray(values)
    if x.dtype.kind not in "biuf" or x.ndim < 2:
        raise HarnessError(
            f"inputs 'x' must be real numbers with one row per sample, got dtype {x.dtype} and shape {x.shape}",
            where=str(where),
            fix="store x as a float array of shape (n, features...)",
        )
    return x.astype(np.float32)


def _npy_split(file: Path, columns: Columns) -> ArraySplit:
    from harness.untrusted import read_npy

    array = read_npy(file)
    if array.ndim != 2 or array.shape[1] < 2 or array.dtype.kind not in "biuf":
        raise HarnessError(
            f"an .npy split is one 2-D numeric array (features, then the label in the last column); got dtype "
            f"{array.dtype} and shape {array.shape}",
            where=str(file),
            fix="numpy.save(file, numpy.column_stack([features, labels]))",
        )
    last = array[:, -1]
    if not np.all(np.mod(last, 1) == 0):
        raise HarnessError(
            "the last column (the label) must hold whole numbers", where=str(file), fix="put the label last"
        )
    labels = labels_from(last.astype(np.int64).tolist(), str(file), columns)
    ids = [f"{file.stem}-{i}" for i in range(len(labels))]
    return ArraySplit(file.stem, _inputs(array[:, :-1], file), labels, ids, str(file))
