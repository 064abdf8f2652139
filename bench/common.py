"""Shared pieces of the benchmarks: a result row and the one table every bench prints."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from rich.console import Console
from rich.table import Table


@dataclass
class Row:
    bench: str
    case: str
    value: float
    unit: str
    target: str = ""
    ok: bool | None = None  # None: no target


def best_of(fn: Callable[[], object], repeat: int = 3) -> float:
    """Minimum wall time of `repeat` calls, in seconds."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


@contextmanager
def timer() -> Iterator[list[float]]:
    """`with timer() as t: ...` then t[0] holds the elapsed seconds."""
    box: list[float] = []
    started = time.perf_counter()
    yield box
    box.append(time.perf_counter() - started)


def print_table(rows: list[Row], title: str = "Benchmarks") -> None:
    table = Table(title=title)
    for column in ("bench", "case", "value", "unit", "target", "ok"):
        table.add_column(column, overflow="fold")
    for row in rows:
        ok = "" if row.ok is None else ("yes" if row.ok else "NO")
        table.add_row(row.bench, row.case, f"{row.value:.4g}", row.unit, row.target, ok)
    Console(width=160).print(table)
