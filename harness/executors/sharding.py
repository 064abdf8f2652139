"""Sharded inference: one large split cut into contiguous shards, each run apart, merged in dataset order.

Only inference kinds declared `shardable` (harness.models.base.Inference: one output row per sample,
independent of the other samples) are cut. Shard i holds positions [i * size, min((i + 1) * size, n));
each shard's outputs are computed on `split.take(positions)` and the shards' arrays concatenated in
order, so the merged outputs have the split's order and are cached under the whole split's key.

A sample's outputs do not depend on the shard it falls in, up to floating-point rounding where a
model's kernels depend on the batch's shape: a classifier's outputs are identical bit for bit when the
shard size is a multiple of the batch size (the batches are then the same ones), which the automatic
shard size guarantees.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from harness.errors import HarnessError
from harness.models.base import Arrays

#: the automatic shard size never goes below this many samples (smaller shards cost more in start-up)
MIN_AUTO_SHARD = 512


def shard_ranges(n: int, size: int) -> list[range]:
    """Contiguous position ranges of at most `size` covering 0..n-1 in order (one empty range when n is 0).

    >>> shard_ranges(5, 2)
    [range(0, 2), range(2, 4), range(4, 5)]
    """
    if size < 1:
        raise ValueError(f"shard size must be 1 or more, not {size}")
    return [range(start, min(start + size, n)) for start in range(0, n, size)] or [range(0, 0)]


def auto_shard_size(n: int, slots: int, batch_size: int, minimum: int = MIN_AUTO_SHARD) -> int | None:
    """The shard size for a split of `n` samples on a cluster that runs `slots` shards at once: n spread
    over the slots, rounded up to a multiple of `batch_size`, at least `minimum`; None when that leaves
    a single shard (the split then runs whole, as one task)."""
    if slots < 2 or n <= minimum:
        return None
    size = math.ceil(n / slots)
    size = max(minimum, math.ceil(size / batch_size) * batch_size)
    return None if size >= n else size


def concat_shards(parts: Sequence[Arrays], where: str = "") -> Arrays:
    """The shards' outputs concatenated along the sample axis, in order.

    Every shard must return the same array names. Rows of float arrays whose trailing width differs
    between shards (multiple-choice items: a shard's width is its own largest number of choices) are
    padded with -inf, the padding of `choice_logliks`; other shape mismatches are a HarnessError.
    """
    if not parts:
        raise ValueError("no shards to concatenate")
    names = list(parts[0])
    for part in parts[1:]:
        if list(part) != names:
            raise HarnessError(
                f"shards returned different outputs ({sorted(parts[0])} and {sorted(part)})",
                where=where,
                fix="this inference is not shardable: run it without --shard-size",
            )
    out: Arrays = {}
    for name in names:
        arrays = [np.asarray(part[name]) for part in parts]
        if any(a.ndim == 0 for a in arrays):
            raise HarnessError(f"output {name!r} has no sample axis, so it cannot be sharded", where=where)
        tails = {a.shape[1:] for a in arrays}
        if len(tails) > 1:
            if len({len(t) for t in tails}) > 1 or not all(np.issubdtype(a.dtype, np.floating) for a in arrays):
                raise HarnessError(
                    f"shards returned output {name!r} with shapes {sorted(tails)}, which do not concatenate",
                    where=where,
                )
            width = tuple(max(sizes) for sizes in zip(*tails, strict=True))
            arrays = [_pad(a, width) for a in arrays]
        out[name] = np.concatenate(arrays, axis=0)
    return out


def _pad(array: np.ndarray, width: tuple[int, ...]) -> np.ndarray:
    pad = [(0, 0)] + [(0, w - s) for s, w in zip(array.shape[1:], width, strict=True)]
    return np.pad(array, pad, constant_values=-np.inf)
