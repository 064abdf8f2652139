"""Read files that come from outside (cards, imports, predictions, datasets) without surprises.

Every reader checks sizes and shapes that the file declares before anything big is parsed, and
raises a HarnessError (what, where, what to do) instead of a traceback, a hang or a full memory:
- `read_json` / `load_json_text`: a regular file under a size cap whose arrays and objects nest at
  most `max_depth` levels, found by one linear scan before `json.loads` (which recurses: a document
  nested 200,000 deep raises RecursionError); `check_json_file` checks a file the same way, for
  JSON that another library (transformers, sentence-transformers, mteb) parses;
- `read_npz`: a zip archive of .npy members, no pickled (object) arrays, whose decompressed size,
  from the zip directory and the .npy headers, is at most MAX_ARRAY_BYTES (a 4 MB file of zeros
  can decompress to gigabytes);
- `read_npy`: one .npy array, no pickled (object) array, its size from the header at most
  MAX_ARRAY_BYTES and within the file;
- `read_parquet`: a readable parquet file whose uncompressed size, from its footer, is at most
  MAX_ARRAY_BYTES; `matrix_column` turns a column of equal-length number lists into a 2-D array.
"""

from __future__ import annotations

import json
import math
import os
import re
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from harness.errors import HarnessError

if TYPE_CHECKING:
    import pyarrow as pa

#: JSON files read outside submissions (cards, configs, imported results) stay under this size
MAX_JSON_BYTES = 64 * 1024**2
#: nesting of arrays and objects in such JSON; the tools that write them use about 10 levels
MAX_JSON_DEPTH = 64
#: decompressed size of the arrays of one .npz or .parquet file (predictions, local datasets)
MAX_ARRAY_BYTES = int(os.environ.get("HARNESS_MAX_ARRAY_BYTES", str(2 * 1024**3)))

_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_BRACKET = re.compile(r"[\[\]{}]")
_NPY_HEADERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}


def _size(n_bytes: int) -> str:
    return f"{n_bytes / 1024**3:.1f} GiB" if n_bytes >= 1024**3 else f"{n_bytes:,} bytes"


def regular_file(path: Path, what: str = "file") -> int:
    """The size of the regular file at `path` (links followed); anything else is a HarnessError,
    checked before opening it: reading a FIFO or a device would block or never end."""
    try:
        if not path.exists():
            raise HarnessError(f"{what} does not exist", where=str(path))
        if not path.is_file():
            kind = "folder" if path.is_dir() else "named pipe, device or socket"
            raise HarnessError(f"{what} is a {kind}, not a regular file", where=str(path), fix="pass a regular file")
        return path.stat().st_size
    except OSError as error:
        raise HarnessError(f"cannot read the {what}: {error.strerror}", where=str(path)) from None


def json_depth_exceeds(text: str, max_depth: int) -> bool:
    """Whether arrays and objects in `text` nest deeper than `max_depth` (brackets inside strings
    skipped); a linear scan that never recurses."""
    depth = 0
    for bracket in _BRACKET.finditer(_STRING.sub("", text)):
        if bracket.group() in "[{":
            depth += 1
            if depth > max_depth:
                return True
        else:
            depth -= 1
    return False


def _json_text(text: str | bytes, where: str, max_depth: int, max_bytes: int) -> str:
    """`text` as str once its size, encoding and nesting depth are checked."""
    if len(text) > max_bytes:
        raise HarnessError(
            f"JSON of {_size(len(text))} is over the {_size(max_bytes)} cap", where=where, fix="pass a smaller file"
        )
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as error:
            raise HarnessError(f"not UTF-8 text: {error}", where=where, fix="save the file as UTF-8") from None
    if json_depth_exceeds(text, max_depth):
        raise HarnessError(
            f"JSON nests arrays or objects more than {max_depth} levels deep",
            where=where,
            fix="re-export the file with the tool that wrote it; deeper nesting is refused",
        )
    return text


def load_json_text(
    text: str | bytes, where: str, *, max_depth: int = MAX_JSON_DEPTH, max_bytes: int = MAX_JSON_BYTES
) -> Any:
    """`json.loads(text)` for untrusted text: its size (bytes, or characters for str) and nesting
    depth are checked first; every problem is a HarnessError naming `where` (a path, a line)."""
    text = _json_text(text, where, max_depth, max_bytes)
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError) as error:
        raise HarnessError(f"invalid JSON: {error}", where=where, fix="repair or re-export the file") from None


def _json_bytes(path: Path, max_bytes: int) -> bytes:
    size = regular_file(path, "JSON file")
    if size > max_bytes:
        raise HarnessError(
            f"file of {_size(size)} is over the {_size(max_bytes)} cap for JSON",
            where=str(path),
            fix="pass a smaller file",
        )
    try:
        return path.read_bytes()
    except OSError as error:
        raise HarnessError(f"cannot read the file: {error.strerror}", where=str(path)) from None


def read_json(path: Path, *, max_depth: int = MAX_JSON_DEPTH, max_bytes: int = MAX_JSON_BYTES) -> Any:
    """The JSON in the regular file at `path`, checked like `load_json_text`."""
    return load_json_text(_json_bytes(path, max_bytes), str(path), max_depth=max_depth, max_bytes=max_bytes)


def check_json_file(path: Path, *, max_depth: int = MAX_JSON_DEPTH, max_bytes: int = MAX_JSON_BYTES) -> None:
    """Check (without parsing it) that a JSON file another library will parse is a regular file
    within the size and nesting caps: those libraries recurse, and a FIFO would block them."""
    _json_text(_json_bytes(path, max_bytes), str(path), max_depth, max_bytes)


def _over_cap(declared: int, cap: int, file: Path) -> HarnessError:
    return HarnessError(
        f"the arrays decompress to {_size(declared)}, over the {_size(cap)} cap (MAX_ARRAY_BYTES)",
        where=str(file),
        fix="split or shrink the file; for genuine larger data raise HARNESS_MAX_ARRAY_BYTES",
    )


def read_npz(file: Path, *, max_bytes: int | None = None) -> dict[str, NDArray[Any]]:
    """Every array of the .npz `file` by name, checked before any array is decompressed: a zip of
    .npy members only, no object (pickled) arrays, at most `max_bytes` (MAX_ARRAY_BYTES) in all."""
    cap = MAX_ARRAY_BYTES if max_bytes is None else max_bytes
    regular_file(file, "npz file")
    fix_format = "save it with numpy.savez (plain numeric or string arrays)"
    try:
        with zipfile.ZipFile(file) as archive:
            members = archive.infolist()
            declared = sum(member.file_size for member in members)  # reading never yields more than this
            if declared > cap:
                raise _over_cap(declared, cap, file)
            in_headers = 0  # what numpy would allocate: the shapes and dtypes the .npy headers declare
            for member in members:
                if not member.filename.endswith(".npy"):
                    raise HarnessError(
                        f"member {member.filename!r} is not an .npy array", where=str(file), fix=fix_format
                    )
                with archive.open(member) as stream:
                    version = np.lib.format.read_magic(stream)
                    if version not in _NPY_HEADERS:
                        raise HarnessError(
                            f"array {member.filename!r} has .npy version {version}", where=str(file), fix=fix_format
                        )
                    shape, _, dtype = _NPY_HEADERS[version](stream)
                if dtype.hasobject:
                    raise HarnessError(
                        f"array {member.filename[:-4]!r} holds Python objects (pickle), which are never loaded",
                        where=str(file),
                        fix=fix_format,
                    )
                n_bytes = math.prod(shape) * dtype.itemsize
                in_headers += n_bytes
                if in_headers > cap:
                    raise _over_cap(in_headers, cap, file)
                if n_bytes > member.file_size:
                    raise HarnessError(
                        f"array {member.filename[:-4]!r} is truncated: its header declares shape {shape}",
                        where=str(file),
                        fix=fix_format,
                    )
        with np.load(file, allow_pickle=False) as arrays:
            return {name: arrays[name] for name in arrays.files}
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError, OSError) as error:
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise HarnessError(
            f"not a valid .npz file (a zip archive of .npy arrays): {message}", where=str(file), fix=fix_format
        ) from None


def read_npy(file: Path, *, max_bytes: int | None = None) -> NDArray[Any]:
    """The array of the .npy `file`, checked from its header before it is read: no object (pickled)
    array, at most `max_bytes` (MAX_ARRAY_BYTES), and no more than the file holds."""
    cap = MAX_ARRAY_BYTES if max_bytes is None else max_bytes
    size = regular_file(file, "npy file")
    fix_format = "save it with numpy.save (a plain numeric array)"
    try:
        with file.open("rb") as stream:
            version = np.lib.format.read_magic(stream)
            if version not in _NPY_HEADERS:
                raise HarnessError(f".npy version {version} is not supported", where=str(file), fix=fix_format)
            shape, _, dtype = _NPY_HEADERS[version](stream)
            header = stream.tell()
        if dtype.hasobject:
            raise HarnessError("the array holds Python objects (pickle), which are never loaded", where=str(file))
        n_bytes = math.prod(shape) * dtype.itemsize
        if n_bytes > cap:
            raise _over_cap(n_bytes, cap, file)
        if n_bytes > size - header:
            raise HarnessError(
                f"the array is truncated: its header declares shape {shape}", where=str(file), fix=fix_format
            )
        return np.asarray(np.load(file, allow_pickle=False))
    except (ValueError, EOFError, OSError) as error:
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise HarnessError(f"not a valid .npy file: {message}", where=str(file), fix=fix_format) from None


def read_parquet(file: Path, *, max_bytes: int | None = None) -> pa.Table:
    """The table in the parquet `file`, its uncompressed size (from the footer) at most `max_bytes`
    (MAX_ARRAY_BYTES); an unreadable file is a HarnessError."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    cap = MAX_ARRAY_BYTES if max_bytes is None else max_bytes
    regular_file(file, "parquet file")
    try:
        with pq.ParquetFile(file) as parquet:
            meta = parquet.metadata
            groups = [meta.row_group(i) for i in range(meta.num_row_groups)]
            declared = max(
                sum(group.total_byte_size for group in groups),
                sum(group.column(c).total_uncompressed_size for group in groups for c in range(group.num_columns)),
            )
            if declared > cap:
                raise _over_cap(declared, cap, file)
            return parquet.read()
    except (pa.ArrowException, OSError, ValueError) as error:
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise HarnessError(
            f"not a readable parquet file: {message}",
            where=str(file),
            fix="re-export it (pyarrow or pandas .to_parquet)",
        ) from None


def matrix_column(table: pa.Table, name: str, where: str) -> NDArray[np.float32]:
    """Column `name` of lists of numbers, all of one length, as an (n, length) float32 array."""
    import pyarrow as pa
    import pyarrow.compute as pc

    column = table.column(name).combine_chunks()
    fix = f"store {name} as a list of numbers per row, every row the same length"
    if not (
        pa.types.is_list(column.type) or pa.types.is_large_list(column.type) or pa.types.is_fixed_size_list(column.type)
    ):
        raise HarnessError(f"column {name!r} must hold lists of numbers, not {column.type}", where=where, fix=fix)
    values = column.flatten()
    value_type = column.type.value_type
    if not (pa.types.is_integer(value_type) or pa.types.is_floating(value_type) or pa.types.is_boolean(value_type)):
        raise HarnessError(f"column {name!r} must hold lists of numbers, not {column.type}", where=where, fix=fix)
    if column.null_count or values.null_count:
        raise HarnessError(f"column {name!r} has missing (null) values", where=where, fix=fix)
    lengths = set(pc.list_value_length(column).to_pylist())
    if len(lengths) > 1:
        raise HarnessError(
            f"rows of column {name!r} have different lengths {sorted(lengths)[:5]}", where=where, fix=fix
        )
    width = lengths.pop() if lengths else 0
    matrix: NDArray[np.float32] = values.to_numpy(zero_copy_only=False).astype(np.float32)
    return matrix.reshape(len(column), width)
