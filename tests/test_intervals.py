"""Interval methods (harness/intervals.py) against scipy and a reference written from the definitions."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import binomtest, norm

from harness.intervals import bias_corrected_interval, wilson_interval
from harness.stats import percentile_interval


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 5000), st.floats(0.0, 1.0), st.sampled_from([0.8, 0.9, 0.95, 0.99]))
def test_wilson_matches_scipy(n: int, share: float, confidence: float) -> None:
    k = round(share * n)
    expected = binomtest(k, n).proportion_ci(confidence_level=confidence, method="wilson")
    low, high = wilson_interval(k, n, confidence)
    assert low == pytest.approx(expected.low, abs=1e-12) and high == pytest.approx(expected.high, abs=1e-12)


def test_wilson_at_the_edges_has_width() -> None:
    low, high = wilson_interval(271, 271)
    assert high == 1.0 and low == pytest.approx(0.98602, abs=1e-5)
    low, high = wilson_interval(0, 10)
    assert low == 0.0 and high > 0.2
    with pytest.raises(ValueError):
        wilson_interval(5, 0)
    with pytest.raises(ValueError):
        wilson_interval(11, 10)


def bc_reference(point: float, distribution: list[float], confidence: float) -> tuple[float, float]:
    """Efron's bias-corrected percentile interval, written from the definition with scipy's normal."""
    b = len(distribution)
    below = sum(1 for d in distribution if d < point) + 0.5 * sum(1 for d in distribution if d == point)
    share = min(max(below / b, 0.5 / b), 1 - 0.5 / b)
    z0, z = norm.ppf(share), norm.ppf(0.5 + confidence / 2)
    ordered = sorted(distribution)

    def quantile(q: float) -> float:  # linear interpolation between order statistics (numpy's default)
        position = q * (b - 1)
        lower = math.floor(position)
        upper = min(lower + 1, b - 1)
        return ordered[lower] + (position - lower) * (ordered[upper] - ordered[lower])

    return min(quantile(norm.cdf(2 * z0 - z)), point), max(quantile(norm.cdf(2 * z0 + z)), point)


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 400), st.integers(0, 2**31), st.floats(-3, 3), st.sampled_from([0.9, 0.95]))
def test_bias_corrected_matches_the_definition(b: int, seed: int, shift: float, confidence: float) -> None:
    rng = np.random.default_rng(seed)
    distribution = np.round(rng.normal(size=b), 2)  # ties included
    point = float(np.round(shift * rng.random(), 2))
    got = bias_corrected_interval(point, distribution, confidence)
    expected = bc_reference(point, distribution.tolist(), confidence)
    assert got == pytest.approx(expected, abs=1e-9)


def test_bias_corrected_is_the_percentile_interval_at_the_median_and_leans_towards_a_biased_point() -> None:
    distribution = np.random.default_rng(0).normal(size=1001)
    median = float(np.median(distribution))
    assert bias_corrected_interval(median, distribution) == pytest.approx(percentile_interval(distribution), abs=1e-12)
    # A point below most resamples (an upward-biased estimator such as the plug-in ECE): the interval
    # moves down towards it, below the percentile interval.
    biased = float(np.quantile(distribution, 0.1))
    low, high = bias_corrected_interval(biased, distribution)
    p_low, p_high = percentile_interval(distribution)
    assert low < p_low and high < p_high and low <= biased <= high
    assert bias_corrected_interval(2.0, np.full(50, 2.0)) == (2.0, 2.0)


def test_bias_corrected_interval_always_contains_its_point() -> None:
    distribution = np.linspace(0.012, 0.03, 1000)  # every resample above the estimate (plug-in ECE)
    low, high = bias_corrected_interval(0.0113, distribution)
    assert low == 0.0113 and high > 0.012
    low, high = bias_corrected_interval(0.5, np.linspace(0.1, 0.2, 100))
    assert high == 0.5
