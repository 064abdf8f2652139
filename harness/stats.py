"""Bootstrap confidence intervals (and, later, paired comparisons and correlations).

Convention: percentile bootstrap. `n_resamples` resamples of the n evaluation samples with
replacement, drawn from numpy's PCG64 seeded with `seed`, so an interval is reproducible from
the seed recorded with the run. Metrics of one run share the same resamples (paired).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

# Bound on resample-matrix entries held at once (int64: 8 bytes each -> 32 MB).
_MAX_CELLS = 4_000_000


@dataclass(frozen=True)
class Bootstrap:
    """Seeded resamples of n samples, generated in chunks of bounded memory."""

    n: int
    n_resamples: int = 1000
    seed: int = 0

    def chunks(self) -> Iterator[NDArray[np.int64]]:
        """Index matrices of shape (b, n) whose rows are resamples; the same for every call."""
        rng = np.random.default_rng(self.seed)
        rows_per_chunk = max(1, _MAX_CELLS // max(self.n, 1))
        done = 0
        while done < self.n_resamples:
            b = min(rows_per_chunk, self.n_resamples - done)
            yield rng.integers(0, self.n, size=(b, self.n))
            done += b

    def distribution(self, statistic: Callable[[NDArray[np.int64]], NDArray[np.float64]]) -> NDArray[np.float64]:
        """The statistic on every resample; `statistic` maps an index matrix (b, n) to (b,) values."""
        return np.concatenate([np.asarray(statistic(rows), dtype=np.float64) for rows in self.chunks()])

    def mean_distribution(self, values: NDArray[np.float64]) -> NDArray[np.float64]:
        """Resampled means of per-sample `values`."""
        values = np.asarray(values, dtype=np.float64)
        return self.distribution(lambda rows: values[rows].mean(axis=1))


def stratified_resamples(
    sizes: Sequence[int], n_resamples: int = 1000, seed: int = 0
) -> Iterator[list[NDArray[np.int64]]]:
    """Seeded resamples that keep group sizes: each yield holds one index array per group.

    Used where groups must stay fixed, e.g. ID and OOD samples (AUROC needs both) or the classes
    of a balanced test set (per-class accuracies need every class).
    """
    rng = np.random.default_rng(seed)
    for _ in range(n_resamples):
        yield [rng.integers(0, size, size=size) for size in sizes]


def stratified_counts(sizes: Sequence[int], n_resamples: int = 1000, seed: int = 0) -> list[NDArray[np.float64]]:
    """The resamples of `stratified_resamples` as multiplicities: one (n_resamples, size) matrix per group.

    Row b, column i says how often sample i occurs in resample b (the same draws, in the same order).
    Metrics that take per-sample weights evaluate every resample at once from these.
    """
    counts = [np.zeros((n_resamples, size)) for size in sizes]
    for b, rows in enumerate(stratified_resamples(sizes, n_resamples, seed)):
        for matrix, drawn, size in zip(counts, rows, sizes, strict=True):
            matrix[b] = np.bincount(drawn, minlength=size)
    return counts


def percentile_interval(distribution: NDArray[np.float64], confidence: float = 0.95) -> tuple[float, float]:
    """The central `confidence` interval of a bootstrap distribution."""
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = np.percentile(distribution, [tail, 100.0 - tail])
    return float(low), float(high)
