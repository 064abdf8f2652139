"""Labelled arrays, texts and label-only splits: the split types of classification suites.

`ArraySplit` (inputs x), `TextSplit` (texts) and `LabelSplit` (labels and ids only: the outputs come
from a predictions file) carry integer labels `y`, -1 for unlabelled samples (OOD sets). `source`
names where a split was read from (a file or folder), for error messages; it is not part of the
fingerprint. `has_inputs` says whether a model can run on the split (False: predictions files only).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from harness.data import checked_positions
from harness.errors import HarnessError


def fingerprint_arrays(name: str, x: NDArray[np.generic], y: NDArray[np.generic], ids: list[str]) -> str:
    """sha256 over a split's name, array dtypes, shapes and bytes, and sample ids."""
    digest = hashlib.sha256()
    digest.update(name.encode())
    for array in (x, y):
        contiguous = np.ascontiguousarray(array)
        digest.update(f"{contiguous.dtype.str}{contiguous.shape}".encode())
        digest.update(contiguous.tobytes())
    digest.update("\x00".join(ids).encode())
    return digest.hexdigest()


def check_rows(name: str, source: str, ids: list[str], sizes: dict[str, int]) -> None:
    """A HarnessError unless every count in `sizes` (e.g. {"inputs": 3, "labels": 3}) equals the number
    of `ids` and the ids are unique."""
    n = len(ids)
    where = source or f"split {name}"
    if any(size != n for size in sizes.values()):
        counts = ", ".join(f"{size} {what}" for what, size in sizes.items())
        raise HarnessError(
            f"split {name!r} has {counts} and {n} ids",
            where=where,
            fix="inputs, labels and ids must have the same length",
        )
    if len(set(ids)) != n:
        raise HarnessError(f"split {name!r} has duplicate sample ids", where=where, fix="give every sample its own id")


@dataclass(frozen=True)
class ArraySplit:
    """Inputs `x` (n, ...), integer labels `y` (n,), unique string `ids` (n)."""

    name: str
    x: NDArray[np.float32]
    y: NDArray[np.int64]
    ids: list[str]
    source: str = field(default="", compare=False)
    fingerprint: str = field(init=False)
    has_inputs = True

    def __post_init__(self) -> None:
        check_rows(self.name, self.source, self.ids, {"inputs": self.x.shape[0], "labels": self.y.shape[0]})
        if not np.isfinite(self.x).all():
            raise HarnessError(f"split {self.name!r} has NaN or inf inputs", where=self.source or f"split {self.name}")
        object.__setattr__(self, "fingerprint", fingerprint_arrays(self.name, self.x, self.y, self.ids))

    def __len__(self) -> int:
        return len(self.ids)

    def head(self, n: int) -> ArraySplit:
        return ArraySplit(self.name, self.x[:n], self.y[:n], self.ids[:n], self.source)

    def take(self, indices: Sequence[int]) -> ArraySplit:
        """The samples at `indices`, in that order (inputs, labels and ids together)."""
        rows = np.asarray(checked_positions(indices, len(self), self.name), dtype=np.intp)
        return ArraySplit(self.name, self.x[rows], self.y[rows], [self.ids[i] for i in rows], self.source)


@dataclass(frozen=True)
class TextSplit:
    """Texts (n), integer labels `y` (n), unique string `ids` (n): for text classifiers."""

    name: str
    texts: list[str]
    y: NDArray[np.int64]
    ids: list[str]
    source: str = field(default="", compare=False)
    fingerprint: str = field(init=False)
    has_inputs = True

    def __post_init__(self) -> None:
        check_rows(self.name, self.source, self.ids, {"texts": len(self.texts), "labels": self.y.shape[0]})
        digest = hashlib.sha256(self.name.encode())
        digest.update("\x00".join(self.texts).encode())
        digest.update(np.ascontiguousarray(self.y, dtype=np.int64).tobytes())
        digest.update("\x00".join(self.ids).encode())
        object.__setattr__(self, "fingerprint", digest.hexdigest())

    def __len__(self) -> int:
        return len(self.ids)

    def head(self, n: int) -> TextSplit:
        return TextSplit(self.name, self.texts[:n], self.y[:n], self.ids[:n], self.source)

    def take(self, indices: Sequence[int]) -> TextSplit:
        """The samples at `indices`, in that order (texts, labels and ids together)."""
        rows = checked_positions(indices, len(self), self.name)
        y = self.y[np.asarray(rows, dtype=np.intp)]
        return TextSplit(self.name, [self.texts[i] for i in rows], y, [self.ids[i] for i in rows], self.source)


@dataclass(frozen=True)
class LabelSplit:
    """Integer labels `y` (n) and unique string `ids` (n), no inputs: a split that only a predictions
    file (per-sample logits exported elsewhere) can be evaluated on."""

    name: str
    y: NDArray[np.int64]
    ids: list[str]
    source: str = field(default="", compare=False)
    fingerprint: str = field(init=False)
    has_inputs = False

    def __post_init__(self) -> None:
        if self.y.ndim != 1:
            raise HarnessError(
                f"split {self.name!r} has labels of shape {self.y.shape}", where=self.source or f"split {self.name}",
                fix="give one integer label per sample",
            )  # fmt: skip
        check_rows(self.name, self.source, self.ids, {"labels": self.y.shape[0]})
        digest = hashlib.sha256(b"labels\x00" + self.name.encode())
        digest.update(np.ascontiguousarray(self.y, dtype=np.int64).tobytes())
        digest.update("\x00".join(self.ids).encode())
        object.__setattr__(self, "fingerprint", digest.hexdigest())

    def __len__(self) -> int:
        return len(self.ids)

    def head(self, n: int) -> LabelSplit:
        return LabelSplit(self.name, self.y[:n], self.ids[:n], self.source)

    def take(self, indices: Sequence[int]) -> LabelSplit:
        """The samples at `indices`, in that order (labels and ids together)."""
        rows = checked_positions(indices, len(self), self.name)
        return LabelSplit(self.name, self.y[np.asarray(rows, dtype=np.intp)], [self.ids[i] for i in rows], self.source)
