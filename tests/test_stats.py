from __future__ import annotations

import numpy as np
import pytest

from harness.stats import Bootstrap, percentile_interval


def test_bootstrap_is_reproducible_and_matches_a_naive_loop() -> None:
    values = np.random.default_rng(0).normal(size=137)
    boot = Bootstrap(n=137, n_resamples=500, seed=7)
    first = boot.mean_distribution(values)
    assert np.array_equal(first, boot.mean_distribution(values))
    rng = np.random.default_rng(7)
    naive = [values[rng.integers(0, 137, size=137)].mean() for _ in range(500)]
    assert np.allclose(first, naive)


def test_chunking_does_not_change_resamples(monkeypatch: pytest.MonkeyPatch) -> None:
    values = np.arange(50, dtype=float)
    whole = Bootstrap(n=50, n_resamples=300, seed=1).mean_distribution(values)
    monkeypatch.setattr("harness.stats._MAX_CELLS", 50 * 7)  # 7 resamples per chunk
    assert np.array_equal(whole, Bootstrap(n=50, n_resamples=300, seed=1).mean_distribution(values))


def test_interval_covers_the_mean_of_a_known_distribution() -> None:
    rng = np.random.default_rng(3)
    covered = 0
    for trial in range(200):
        values = rng.normal(loc=1.0, size=200)
        low, high = percentile_interval(Bootstrap(n=200, n_resamples=400, seed=trial).mean_distribution(values))
        covered += low <= 1.0 <= high
    assert 0.88 <= covered / 200 <= 0.99  # nominal 95%
