"""Original row orders of datasets whose copies keep another one (HubSplit.row_order).

A catalog split that selects rows by position ("the last 5,000 training images", "the 187th airplane
of the test set") means positions in the dataset's original order, and not every copy keeps it. The hub's
CIFAR-10 was written by a script that read cifar-10-python.tar.gz's pickles in the archive's member
order, so its training rows are data_batch_4, 3, 2, 5, 1: its last 5,000 rows are half of data_batch_1,
images a model trained on torchvision's first 45,000 has seen.

A row order (ROW_ORDERS/<name>.yaml, its provenance in '#' lines) describes the original order as
consecutive blocks (CIFAR-10: its five training pickles), each fingerprinted by its per-class label
counts and its first labels. A copy's rows must be those blocks, whole, in any order: each block of
the copy is recognised by its fingerprint and the rows are put back in the original order. Anything
else (rows sorted by class, shuffled, cut, relabelled) is refused, since positions in it would
silently mean other images.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

import numpy as np
import yaml
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field, model_validator

from harness.errors import HarnessError
from harness.schema import ROW_ORDERS


class OrderBlock(BaseModel):
    """One block of consecutive rows of the original order (a CIFAR-10 training pickle)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    rows: int = Field(ge=1)
    #: rows per class, in the order's `classes` order
    label_counts: list[int]
    #: the block's first labels (class indices), in row order
    first_labels: list[int] = Field(min_length=5)


class RowOrder(BaseModel):
    """A dataset split's original row order: its blocks, in order, over the class names `classes`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    classes: list[str] = Field(min_length=2)
    blocks: list[OrderBlock] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> RowOrder:
        n_classes = len(self.classes)
        if len(set(self.classes)) != n_classes:
            raise ValueError("class names repeat")
        for block in self.blocks:
            counts = np.asarray(block.label_counts)
            if len(counts) != n_classes or (counts < 0).any() or counts.sum() != block.rows:
                raise ValueError(f"block {block.name}: label_counts must be {n_classes} counts summing to its rows")
            if any(not 0 <= y < n_classes for y in block.first_labels) or len(block.first_labels) > block.rows:
                raise ValueError(f"block {block.name}: first_labels must be class indices, at most its rows")
            if (np.bincount(block.first_labels, minlength=n_classes) > counts).any():
                raise ValueError(f"block {block.name}: first_labels has more of a class than label_counts")
        if len({_fingerprint(b) for b in self.blocks}) != len(self.blocks):
            raise ValueError("two blocks have the same fingerprint")
        return self

    @property
    def n_rows(self) -> int:
        return sum(block.rows for block in self.blocks)


def _fingerprint(block: OrderBlock) -> tuple[tuple[int, ...], tuple[int, ...]]:
    return tuple(block.label_counts), tuple(block.first_labels)


@cache
def row_order(name: str) -> RowOrder:
    """The row order ROW_ORDERS/<name>.yaml (a name HubSplit has checked)."""
    raw = yaml.safe_load((ROW_ORDERS / f"{name}.yaml").read_text(encoding="utf-8"))
    return RowOrder(name=name, **raw)


def class_indices(labels: Sequence[object], order: RowOrder, what: str, where: str) -> NDArray[np.int64]:
    """Each row's class index in `order.classes`: a class name by name, an unnamed label as the index."""
    index = {name: i for i, name in enumerate(order.classes)}
    out = np.empty(len(labels), dtype=np.int64)
    unknown: set[str] = set()
    for row, label in enumerate(labels):
        if isinstance(label, str):
            out[row] = index.get(label, -1)
        elif isinstance(label, (int, np.integer)) and not isinstance(label, bool):
            out[row] = int(label) if 0 <= int(label) < len(order.classes) else -1
        else:
            out[row] = -1
        if out[row] < 0:
            unknown.add(repr(label))
    if unknown:
        raise HarnessError(
            f"{what} has labels that are not among the {len(order.classes)} classes of row order "
            f"{order.name!r}: {', '.join(sorted(unknown)[:5])}",
            where=where,
            fix=f"label the rows by the dataset's class names ({', '.join(order.classes[:3])}, ...) or their "
            f"indices 0-{len(order.classes) - 1}",
        )
    return out


def original_positions(labels: Sequence[object], order: RowOrder, what: str, where: str) -> list[int]:
    """The positions of a copy's rows, listed in the original order (see the module docstring).

    `labels` are the copy's rows' labels in its own order (class names or indices); `what` names the
    copy and `where` its files in errors. From its first row on, each block of the copy must be exactly
    one block of `order` not yet seen: the same first labels and the same label counts over its length."""
    y = class_indices(labels, order, what, where)
    if len(y) != order.n_rows:
        raise HarnessError(
            f"{what} has {len(y):,} rows; row order {order.name!r} is {order.n_rows:,} "
            f"({len(order.blocks)} blocks), so its rows cannot be put in the original order",
            where=where,
            fix="mirror the whole split as `harness data fetch` writes it (no rows added or left out)",
        )
    n_classes = len(order.classes)
    start_of: dict[int, int] = {}
    start = 0
    while start < len(y):
        matches = [
            i
            for i, block in enumerate(order.blocks)
            if i not in start_of
            and start + block.rows <= len(y)
            and y[start : start + len(block.first_labels)].tolist() == block.first_labels
            and np.bincount(y[start : start + block.rows], minlength=n_classes).tolist() == block.label_counts
        ]
        if len(matches) != 1:
            names = ", ".join(block.name for block in order.blocks)
            raise HarnessError(
                f"{what} is not {order.name!r} in any block order: rows {start:,} on match none of its blocks "
                f"({names}; each is recognised by its label counts and first labels)",
                where=where,
                fix="mirror the split as `harness data fetch` writes it, or in the original order; a copy sorted "
                "by class (an image folder) or shuffled has lost the order that positions in it refer to",
            )
        start_of[matches[0]] = start
        start += order.blocks[matches[0]].rows
    return [p for i, block in enumerate(order.blocks) for p in range(start_of[i], start_of[i] + block.rows)]


def copy_layout(positions: Sequence[int], order: RowOrder) -> list[str]:
    """The blocks of `order` as the copy holds them, given `original_positions`' result (the hub's CIFAR-10
    train split: data_batch_4, data_batch_3, data_batch_2, data_batch_5, data_batch_1)."""
    starts, offset = [], 0
    for block in order.blocks:
        starts.append((positions[offset], block.name))
        offset += block.rows
    return [name for _, name in sorted(starts)]
