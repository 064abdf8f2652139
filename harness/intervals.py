"""Confidence intervals, one method per kind of statistic (docs/metrics.md, "Intervals").

- `wilson_interval`: a proportion of independent successes (accuracy, the share of flipped answers):
  the Wilson score interval with Brown, Cai & DasGupta's boundary modification (one to three
  successes or failures take the Poisson bound, see the function). Unlike a bootstrap it never has
  zero width at 0 or 1 (a model right on 271 of 271 samples gets [0.986, 1], not [1, 1]), and its
  coverage stays near nominal for p close to 0 or 1 where the percentile bootstrap's falls to about
  0.77 (issue measurements at n = 271).
- `bias_corrected_interval`: everything else that is bootstrapped (ECE, AUROC, nDCG, losses):
  the bias-corrected percentile interval (Efron 1981; BCa with acceleration 0). It shifts the
  percentiles by z0 = Phi^-1(share of resamples below the point), so an estimator whose bootstrap
  distribution sits above its point (the plug-in ECE) gets an interval that leans towards the point
  instead of one that excludes it. The acceleration of BCa needs n jackknife re-evaluations of every
  metric; bench/uncertainty.py measures the coverage this method reaches without it.
- `debiased_interval`: statistics made of absolute gaps (the ECE family), whose bootstrap bias is of
  the order of their standard error: the bias-corrected interval of the bias-shifted estimate
  (point - b, resamples - 2b, b = mean(resamples) - point; for ece the resamples' spread widened by
  how much more a bias-corrected ece varies), clipped at 0; for `ece`, extended to 0
  when the consistency-resampling test does not reject "calibrated" (test inversion at the boundary).
- `studentized_auroc_interval`: AUROC, whose bootstrap is skewed near 1: a bootstrap-t (DeLong standard
  errors) on the log of its distance to the bound, whose end away from the bound reaches at least as far
  as the bias-corrected interval's.
- `median_interval`: a median of independent units (first divergent token per prompt): the
  distribution-free order-statistic interval from Binomial(n, 1/2).
- A bootstrap with no variance at a bound (every resample of an AUROC or an accuracy equals 1) gets
  the Wilson interval of the independent units behind it (`bootstrap_metric(units_at_bound=...)`).
The percentile interval (`harness.stats.percentile_interval`) stays for paired differences.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

# the normal distribution's cdf and quantile, the binomial cdf (scipy.special: scipy.stats takes seconds to import)
from scipy.special import bdtr, gammaincinv, ndtr, ndtri


def wilson_interval(successes: float, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval of a binomial proportion successes / n (n >= 1), modified at the edges.

    (p + z^2/2n +- z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n), z the normal quantile. Example:
    271 of 271 at 95% -> (0.98602, 1.0).

    Wilson's coverage dips well below nominal for p within a few 1/n of 0 or 1 (0.85 at n = 100, 0.90
    at n = 1000; 0.910 for 98 of 100 at p = 0.995). Brown, Cai & DasGupta ("Interval Estimation for a
    Binomial Proportion", Statistical Science 2001, section 4.1.1) fix it with the one-sided Poisson
    bound: for x = 1..x* successes the lower bound becomes chi2_{2x}(alpha) / 2n, the alpha quantile
    (alpha = 1 - confidence), i.e. `gammaincinv(x, alpha) / n`; the same for failures and the upper
    bound; x* = 2 for n <= 50, 3 above. The modification only ever widens the interval (the smaller
    lower bound of the two is kept). `bench/uncertainty.py` prints the exact coverage.
    Successes that are not a whole number (a weighted count) get the plain Wilson interval.
    """
    if n < 1:
        raise ValueError("a proportion needs at least one sample")
    if not 0 <= successes <= n:
        raise ValueError(f"successes {successes} outside [0, {n}]")
    z = float(ndtri(0.5 + confidence / 2.0))
    p = successes / n
    denominator = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1.0 - p) / n + z * z / (4.0 * n * n)) / denominator
    low, high = max(0.0, centre - half), min(1.0, centre + half)
    whole = round(successes)
    if abs(successes - whole) <= 1e-9 * max(1.0, successes):
        edge = 2 if n <= 50 else 3
        alpha = 1.0 - confidence
        if 1 <= whole <= edge:
            low = min(low, float(gammaincinv(whole, alpha)) / n)
        if 1 <= n - whole <= edge:
            high = max(high, 1.0 - float(gammaincinv(n - whole, alpha)) / n)
    # At k = 0 or k = n the exact bound is 0 or 1 (rounding would leave 1e-16 off it).
    return (0.0 if successes == 0 else low), (1.0 if successes == n else high)


#: Resamples within this relative (plus absolute) distance of the point may equal it on another machine
#: (float rounding): `bias_corrected_range` lets each of them fall on either side.
POINT_TIE_RTOL = 1e-9
POINT_TIE_ATOL = 1e-15


def bias_corrected_interval(
    point: float, distribution: NDArray[np.float64], confidence: float = 0.95, acceleration: float = 0.0
) -> tuple[float, float]:
    """The bias-corrected percentile interval of a bootstrap `distribution` around `point`.

    z0 = Phi^-1(#{d < point} / B + #{d == point} / 2B), clipped to the resolution of B resamples;
    the interval is the (Phi(2 z0 - z), Phi(2 z0 + z)) quantiles of the distribution (linear
    interpolation, as numpy.percentile). z0 = 0 (point at the median) gives the percentile interval.
    A nonzero `acceleration` a makes it BCa (Efron 1987): the Phi(z0 + (z0 +- z) / (1 - a (z0 +- z)))
    quantiles (no adapter uses it; bench/uncertainty.py measures BCa for AUROC as a contrast).
    A constant distribution gives a zero-width interval at that constant. The interval always
    contains `point` (widened to it when every resample lies on one side).
    """
    values = _sorted(distribution)
    below = np.searchsorted(values, point, side="left")
    equal = np.searchsorted(values, point, side="right") - below
    return _bias_corrected_at(values, point, (below + equal / 2.0) / values.shape[0], confidence, acceleration)


def bias_corrected_range(
    point: float, distribution: NDArray[np.float64], confidence: float = 0.95
) -> tuple[float, float, float, float]:
    """(lowest low, highest low, lowest high, highest high) of `bias_corrected_interval` when the
    resamples that tie the point up to float rounding (`POINT_TIE_RTOL`) fall on either side of it.

    The exact count #{d == point} decides z0, and a resample that reproduces the point on one machine
    (or in one summation order) can be an ulp off it on another, which moves the interval by far more
    than an ulp. Re-scoring accepts any interval in this range; both bounds grow with z0.
    """
    values = _sorted(distribution)
    b = values.shape[0]
    tie = POINT_TIE_RTOL * abs(point) + POINT_TIE_ATOL
    fewest = np.searchsorted(values, point - tie, side="left")
    most = np.searchsorted(values, point + tie, side="right")
    low_a, high_a = _bias_corrected_at(values, point, fewest / b, confidence)
    low_b, high_b = _bias_corrected_at(values, point, most / b, confidence)
    return low_a, low_b, high_a, high_b


def _sorted(distribution: NDArray[np.float64]) -> NDArray[np.float64]:
    values = np.sort(np.asarray(distribution, dtype=np.float64))
    if values.shape[0] == 0:
        raise ValueError("an empty bootstrap distribution")
    return values


def _bias_corrected_at(
    values: NDArray[np.float64], point: float, share: float, confidence: float, acceleration: float = 0.0
) -> tuple[float, float]:
    """The bias-corrected (BCa with `acceleration`) interval of sorted `values` for the share of resamples
    below the point."""
    b = values.shape[0]
    share = min(max(share, 0.5 / b), 1.0 - 0.5 / b)
    z0 = float(ndtri(share))
    z = float(ndtri(0.5 + confidence / 2.0))
    if acceleration == 0.0:
        low_q, high_q = float(ndtr(2 * z0 - z)), float(ndtr(2 * z0 + z))
    else:
        low_q, high_q = (float(ndtr(z0 + (z0 + q) / (1.0 - acceleration * (z0 + q)))) for q in (-z, z))
    low, high = np.percentile(values, [100.0 * low_q, 100.0 * high_q])
    # An estimate below (or above) every resample, as the plug-in ECE of a well-calibrated model is,
    # pins the quantiles at the extreme resample, above the point: the interval is widened to reach its
    # own point rather than report a range that excludes the number beside it.
    return min(float(low), point), max(float(high), point)


def debiased_interval(
    point: float,
    distribution: NDArray[np.float64],
    *,
    zero_plausible: bool = False,
    spread: float = 1.0,
    confidence: float = 0.95,
) -> tuple[float, float]:
    """A bias-aware interval for a non-negative, upward-biased statistic (the plug-in ECE and its kin).

    b = mean(distribution) - point estimates the bias; the interval is `bias_corrected_interval` of the
    debiased estimate point - b over the resamples shifted by -2b (each resample's own bias is b as
    well), clipped at 0, then widened to contain `point`. `spread` (>= 1) scales the shifted resamples
    about the debiased estimate: point - b varies more than the plug-in point does (b is smaller where the
    observed gaps are larger), and the plug-in's resamples do not show it (`harness.metrics.calibration.
    ece_spread` measures the factor). `zero_plausible`: a test did not reject
    "the true value is 0" at 1 - confidence (for ece: the consistency-resampling noise floor), so 0 is
    in the interval. bench/uncertainty.py measures the coverage.
    """
    low, high = bias_corrected_interval(*_debiased(point, distribution, spread), confidence)
    return _clip_debiased(low, point, zero_plausible), max(high, point, 0.0)


def debiased_range(
    point: float,
    distribution: NDArray[np.float64],
    *,
    zero_plausible: bool = False,
    spread: float = 1.0,
    confidence: float = 0.95,
) -> tuple[float, float, float, float]:
    """(lowest low, highest low, lowest high, highest high) of `debiased_interval` when the resamples that
    tie its debiased point up to float rounding fall on either side of it (see `bias_corrected_range`)."""
    fewest_low, most_low, fewest_high, most_high = bias_corrected_range(
        *_debiased(point, distribution, spread), confidence
    )
    return (
        _clip_debiased(fewest_low, point, zero_plausible),
        _clip_debiased(most_low, point, zero_plausible),
        max(fewest_high, point, 0.0),
        max(most_high, point, 0.0),
    )


def _debiased(
    point: float, distribution: NDArray[np.float64], spread: float = 1.0
) -> tuple[float, NDArray[np.float64]]:
    """The debiased point and resamples: point - b and distribution - 2b, b = mean(distribution) - point,
    the resamples scaled by `spread` about point - b."""
    values = np.asarray(distribution, dtype=np.float64)
    if values.size == 0:
        raise ValueError("an empty bootstrap distribution")
    if not spread >= 1.0:
        raise ValueError(f"spread must be at least 1, got {spread!r}")
    bias = float(values.mean()) - point
    centre = point - bias
    shifted = values - 2.0 * bias
    return centre, shifted if spread == 1.0 else centre + spread * (shifted - centre)


def _clip_debiased(low: float, point: float, zero_plausible: bool) -> float:
    """The debiased interval's lower end: 0 when 0 is plausible, else clipped to [0, point]."""
    return 0.0 if zero_plausible else max(0.0, min(low, point))


def studentized_auroc_interval(
    point: float,
    stderr: float,
    distribution: NDArray[np.float64],
    stderrs: NDArray[np.float64],
    pairs: int,
    confidence: float = 0.95,
) -> tuple[tuple[float, float], tuple[float, float, float, float]]:
    """An AUROC's interval, and its range under float rounding: towards the nearer bound (1, or 0 for an
    AUROC below 0.5) the end of a studentized bootstrap on the scale of the distance to that bound
    (`studentized_auroc_tail`); away from it the further of that end and `bias_corrected_interval`'s
    (`pairs`: n_ID x n_OOD, the smallest set's for an average). The range is (lowest low, highest low,
    lowest high, highest high): the bias-corrected end's `bias_corrected_range` where it is taken, the
    studentized end (continuous) as it is.

    Near 1 an AUROC is a mean of very skewed terms (a few extreme samples make all its discordant pairs),
    and a percentile-type interval is too narrow at the bound (coverage 0.87-0.89 at AUROC 0.9995,
    bench/uncertainty.py). The bootstrap-t on x = log(e + c), e = 1 - AUROC (AUROC itself below 0.5),
    c = 0.5 / pairs (half a discordant pair, so a separated resample stays finite), with standard error
    sqrt(stderr^2 + (e + c) / pairs) / (e + c) (DeLong's `stderr`, floored by the Poisson spread of the
    pair count) is second-order accurate (Hall 1988) and adapts to the skew. Each end is taken from the
    method whose tail holds there (bench/uncertainty.py counts each side's misses): towards the bound the
    bootstrap-t misses about its nominal share where the bias-corrected interval, whose resamples pile up
    at the bound, is conservative; away from it the bootstrap-t alone misses far too often when a small
    sample holds only a few discordant pairs (its resamples' t values understate that tail), and the
    bias-corrected end, which reaches to resamples that repeat the extreme samples, keeps that side.
    `distribution` and `stderrs` are the resamples' AUROCs and DeLong standard errors.
    """
    low, high = bias_corrected_interval(point, distribution, confidence)
    fewest_low, most_low, fewest_high, most_high = bias_corrected_range(point, distribution, confidence)
    t_low, t_high = studentized_auroc_tail(point, stderr, distribution, stderrs, pairs, confidence)
    if point >= 0.5:  # the bound is 1 (as in studentized_auroc_tail): the high end is the bootstrap-t's
        return (min(low, t_low), t_high), (min(fewest_low, t_low), min(most_low, t_low), t_high, t_high)
    return (t_low, max(high, t_high)), (t_low, t_low, max(fewest_high, t_high), max(most_high, t_high))


def studentized_auroc_tail(
    point: float,
    stderr: float,
    distribution: NDArray[np.float64],
    stderrs: NDArray[np.float64],
    pairs: int,
    confidence: float,
) -> tuple[float, float]:
    """The bootstrap-t part of `studentized_auroc_interval`: the interval on the log distance to the nearer
    bound, widened to contain `point` (bench/uncertainty.py measures it alone, as a contrast)."""
    if pairs < 1:
        raise ValueError("an AUROC needs at least one (ID, OOD) pair")
    values, errors = _resamples_with_errors(distribution, stderrs)
    upper = point >= 0.5  # the bound the AUROC lies near: 1 (distance 1 - A) or 0 (distance A)
    offset = 0.5 / pairs

    def scale(
        auroc: NDArray[np.float64], error: NDArray[np.float64]
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        distance = np.clip(1.0 - auroc if upper else auroc, 0.0, 1.0)
        smoothed = distance + offset
        return np.log(smoothed), np.sqrt(error**2 + smoothed / pairs) / smoothed

    x, se = (float(v[0]) for v in scale(np.array([point]), np.array([stderr])))
    xs, ses = scale(values, errors)  # ses > 0: the floor's offset keeps every denominator positive
    x_low, x_high = studentized_interval(x, se, xs, ses, confidence=confidence)
    near, far = np.exp(x_low) - offset, np.exp(x_high) - offset  # distances to the bound
    near, far = max(near, 0.0), min(far, 1.0)
    low, high = (1.0 - far, 1.0 - near) if upper else (near, far)
    return min(low, point), max(high, point)


def studentized_interval(
    point: float,
    stderr: float,
    distribution: NDArray[np.float64],
    stderrs: NDArray[np.float64],
    *,
    center: float | None = None,
    confidence: float = 0.95,
) -> tuple[float, float]:
    """The bootstrap-t interval (Efron & Tibshirani 1993, ch. 12; Hall 1988): with t_r = (x*_r - center) /
    se*_r over the resamples, (point - t_(1-a/2) stderr, point - t_(a/2) stderr). `center` is the statistic's
    true value in the bootstrap world, which its resamples estimate: `point` (the default) for a plug-in
    statistic, the sample's plug-in value for a debiased one. `stderr` must be positive; a resample whose
    standard error is 0 (it happened to draw data without spread) has t = +-inf (0 at the center), so a
    bound is not finite (infinite or nan) when about the tail's share of resamples or more are such: the
    caller decides then."""
    values, errors = _resamples_with_errors(distribution, stderrs)
    if not (stderr > 0.0 and bool(np.all(errors >= 0.0))):
        raise ValueError("a studentized interval needs a positive standard error and no negative one")
    deviation = values - (point if center is None else center)
    positive = errors > 0.0
    t = np.where(deviation == 0.0, 0.0, np.copysign(np.inf, deviation))
    t[positive] = deviation[positive] / errors[positive]
    tail = (1.0 - confidence) / 2.0
    with np.errstate(invalid="ignore"):  # interpolating towards an infinite t gives inf or nan: not finite
        t_low, t_high = (float(q) for q in np.quantile(t, [tail, 1.0 - tail]))
    return point - t_high * stderr, point - t_low * stderr


def _resamples_with_errors(
    distribution: NDArray[np.float64], stderrs: NDArray[np.float64]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """The resamples and their standard errors as float arrays: one error per resample, at least one."""
    values = np.asarray(distribution, dtype=np.float64)
    errors = np.asarray(stderrs, dtype=np.float64)
    if values.size == 0 or values.shape != errors.shape:
        raise ValueError("one standard error per resample, and at least one resample")
    return values, errors


def median_interval(values: NDArray[np.float64], confidence: float = 0.95) -> tuple[float, float]:
    """The distribution-free interval of the median of n independent values: order statistics
    (x_(j), x_(n+1-j)) with j the largest rank such that P(Binomial(n, 1/2) < j) <= (1 - confidence) / 2
    (coverage at least `confidence` for any continuous distribution; j = 1 below n = 6 at 95%)."""
    ordered = np.sort(np.asarray(values, dtype=np.float64))
    n = ordered.size
    if n == 0:
        raise ValueError("the median of no values")
    alpha = (1.0 - confidence) / 2.0
    # bdtr(j - 1, n, 0.5) = P(Binomial(n, 1/2) <= j - 1) = P(fewer than j values below the median)
    ranks = np.arange(1, n // 2 + 1)
    ok = ranks[bdtr(ranks - 1, n, 0.5) <= alpha]
    j = int(ok[-1]) if ok.size else 1
    return float(ordered[j - 1]), float(ordered[n - j])
