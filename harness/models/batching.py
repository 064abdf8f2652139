"""Batches of a forward pass, and on CUDA the largest that fits: halved on out-of-memory, never grown back.

`run_batches(n, size, forward, backoff=...)` calls `forward(start, stop)` over consecutive batches of
0..n-1 and yields (start, stop, result). `size` is a number or a function of the batch's first
position (language models size each batch by its longest sequence). With `backoff`, a
torch.cuda.OutOfMemoryError halves the batch, the allocator's cache is released and the same batch
runs again; the smaller size caps every later batch. Without it (a batch size the user chose, or the
CPU), or at a batch of one, out-of-memory is a HarnessError that says what to change.

`forward` must do all of a batch's device work and change nothing outside it until it returns, so a
batch that ran out of memory can run again. Callers move its results to the host once per batch (one
copy of each output array), never per sample or per token.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import torch

from harness.errors import HarnessError

R = TypeVar("R")

#: the first automatic batch of fixed-size inputs (classifiers) on CUDA, halved until it fits
CUDA_START_BATCH = 4096
#: the largest automatic batch of language-model sequences on CUDA
CUDA_MAX_LM_BATCH = 512
#: the share of free CUDA memory an automatic language-model batch plans to use (the estimate is rough:
#: out-of-memory halves it anyway)
CUDA_MEMORY_SHARE = 0.5


def is_cuda(device: Any) -> bool:
    return str(device).startswith("cuda")


def automatic_backoff(device: Any, batch_size: int | None) -> bool:
    """Back off on out-of-memory when the batch size is automatic (None) and the device is CUDA."""
    return batch_size is None and is_cuda(device)


def free_cuda_bytes(device: Any) -> int:
    """Free memory on a CUDA device, in bytes (what an automatic batch plans from)."""
    free, _ = torch.cuda.mem_get_info(torch.device(device))
    return int(free)


def run_batches(
    n: int,
    size: int | Callable[[int], int],
    forward: Callable[[int, int], R],
    *,
    backoff: bool,
    where: str = "",
) -> Iterator[tuple[int, int, R]]:
    """(start, stop, forward(start, stop)) over consecutive batches covering 0..n-1; see the module doc."""
    cap: int | None = None
    start = 0
    while start < n:
        wanted = size(start) if callable(size) else size
        batch = max(1, min(wanted, cap) if cap is not None else wanted)
        stop = min(start + batch, n)
        try:
            result = forward(start, stop)
        except torch.cuda.OutOfMemoryError:
            if not backoff or stop - start <= 1:
                raise HarnessError(
                    f"out of GPU memory at a batch of {stop - start}",
                    where=where or None,
                    fix="pass a smaller --batch-size (or none: automatic), or --dtype bfloat16",
                ) from None
            cap = (stop - start) // 2
            release_cuda_cache()
            continue
        yield start, stop, result
        start = stop


def run_item_batches(
    items: Sequence[Any],
    size: int | Callable[[Any], int],
    forward: Callable[[Sequence[Any]], R],
    *,
    backoff: bool,
    where: str = "",
) -> Iterator[tuple[Sequence[Any], R]]:
    """`run_batches` over a list: (batch of items, forward(batch)); `size` may read the batch's first item."""
    first: int | Callable[[int], int] = size if isinstance(size, int) else (lambda start: size(items[start]))
    for start, stop, result in run_batches(
        len(items), first, lambda a, b: forward(items[a:b]), backoff=backoff, where=where
    ):
        yield items[start:stop], result


def release_cuda_cache() -> None:
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
