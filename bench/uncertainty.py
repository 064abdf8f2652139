"""Error rates of Harness's statistical procedures, measured by simulation.

(Issue 13 calls this bench/statistics.py; a file of that name in bench/ would hide Python's own
`statistics` module from every script run from this folder.)

    python bench/uncertainty.py            # every section, one markdown table each (about 5 minutes: two jobs at a time)
    python bench/uncertainty.py --quick    # fewer simulated boards (a smoke run)
    python bench/uncertainty.py --section ranks --seed 1

Each section is one function `<name>_section(quick, seed) -> Section`, registered in SECTIONS; the
numbers are seeded, so a run is reproducible. `run()` gives `bench/run_all.py` its rows.

Sections
- ranks: the leaderboard's "significantly better" verdicts (harness.stats.significance_ranks) among
  models evaluated on n = 271 samples, each model's correctness drawn as Bernoulli(accuracy), every
  model's accuracy bootstrapped on the same 1,000 resamples (harness.stats.Bootstrap with the board's
  seed), exactly as the store pairs runs of one seed and dataset. Family-wise error rate (FWER): the
  share of boards of equal models (accuracy 0.8) with at least one verdict. Power: the share of truly
  better pairs found better, on boards where half of the models are 0.05 (or 0.10) more accurate.
  "old" is the previous rule (each pair tested alone: the 95% paired-bootstrap CI of the difference
  excludes 0); "new" is Holm's step-down over all pairs at 5%.
- ladder: Blum & Hardt's boosting attack (ICML 2015) on n = 1000 public binary labels: 1000 random
  label vectors (true accuracy 0.5), the majority vote of those that scored above 0.5, against a
  naive board (exact scores) and the Ladder (harness/ladder.py, fed paired bootstrap distributions
  as the store feeds it, and per-sample losses as the paper writes it). The guarded best must stay
  within its tolerance of the truth in every seed. About 5 s.
- coverage: the share of nominal-95% intervals that contain the true value, for every interval
  method the adapters use (Wilson for accuracy; the debiased bootstrap for ece; the studentized
  bootstrap for ece_sq_debiased; the bias-corrected bootstrap for nDCG@10 and the document-resampled
  loss; bc-studentized for AUROC),
  on data from known distributions at n = 100, 300, 1000; target [0.93, 0.97]. Also the misses on
  each side of the truth (a central interval's should be 2.5% each), the mean width, the share of
  zero-width intervals and of intervals that exclude their own point estimate, and the share of
  noise-floor p-values <= 0.05 for calibrated models. For AUROC, three unchecked contrasts on the same
  resamples: the bootstrap-t part alone, its union with the bias-corrected interval (schema versions
  6-7) and BCa. 400 data sets x 1,000 resamples per
  case (--quick: 60), computed in six parts (`coverage_part`: the AUROC cases and the rest, per n),
  each seeded on its own, as jobs beside the other sections (`--workers 2`, the default): the whole
  bench took 285 s on an idle 2-core machine (2026-12-03), the AUROC cases at n = 1000 the longest
  job (199 s).
- proportions: the exact coverage of the proportion interval (harness.intervals.wilson_interval) against
  plain Wilson, over 1,000 values of p in [0.5, 0.9999] at n = 30, 100, 300, 1000: lowest and mean over
  p, and at p = 0.8, 0.99, 0.995. Exact (no simulation); a second.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from harness.stats import (
    Bootstrap,
    holm_rejections,
    paired_better_matrix,
    paired_difference_p_values,
    percentile_interval,
    significance_ranks,
)


@dataclass
class Section:
    """One markdown table: a title, a header, rows of cells, and notes printed under it."""

    title: str
    header: list[str]
    rows: list[list[str]]
    notes: list[str] = field(default_factory=list)
    #: (case, value, target, ok) for bench/run_all.py's table
    checks: list[tuple[str, float, str, bool | None]] = field(default_factory=list)


def markdown(section: Section) -> str:
    lines = [f"### {section.title}", "", "| " + " | ".join(section.header) + " |"]
    lines.append("|" + "|".join("---" for _ in section.header) + "|")
    lines += ["| " + " | ".join(row) + " |" for row in section.rows]
    if section.notes:
        lines += ["", *section.notes]
    return "\n".join(lines)


# --------------------------------------------------------------------------- ranks

N_SAMPLES = 271
N_RESAMPLES = 1000
BASE_ACCURACY = 0.8
RANK_MODELS = (5, 15, 25)
#: boards per rate whose verdicts are also checked against the store's significance_ranks (the first ones: the check costs about as much as the verdicts)
CROSS_CHECKED_BOARDS = 200


def _board(rng: np.random.Generator, accuracies: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Point accuracies and bootstrap distributions (k, B) on the board's shared resamples."""
    correct = (rng.random((accuracies.size, N_SAMPLES)) < accuracies[:, None]).astype(np.float64)
    (rows,) = Bootstrap(N_SAMPLES, N_RESAMPLES, seed).chunks()  # one chunk: 1000 x 271 indices
    offsets = N_SAMPLES * np.arange(N_RESAMPLES)[:, None]
    counts = np.bincount((rows + offsets).ravel(), minlength=N_RESAMPLES * N_SAMPLES).reshape(N_RESAMPLES, -1)
    # exact: integer counts and sums below 2^53, in floats so that the product runs in BLAS
    return correct.mean(axis=1), (counts.astype(np.float64) @ correct.T).T / N_SAMPLES


def _verdicts(values: np.ndarray, distributions: np.ndarray, cross_check: bool) -> tuple[np.ndarray, np.ndarray]:
    """better[j, i] under the old and the new rule (all models in one paired group); with `cross_check`, also
    asserts that the store's function (significance_ranks) makes the same decisions."""
    k = values.size
    old = paired_better_matrix(distributions)
    p = paired_difference_p_values(values, distributions, N_SAMPLES)
    upper = np.triu_indices(k, 1)
    reject = np.zeros((k, k), dtype=bool)
    reject[upper] = holm_rejections(p[upper], 0.05)
    reject |= reject.T
    new = reject & (values[:, None] > values[None, :])
    if not cross_check:
        return old, new
    # The same decisions as the function the store calls, which counts them without a matrix.
    low, high = np.array([percentile_interval(d) for d in distributions]).T
    ranks = significance_ranks(
        values,
        low,
        high,
        higher_is_better=True,
        paired_groups=[(np.arange(k), distributions)],
        n_samples=np.full(k, N_SAMPLES),
    )
    assert np.array_equal(ranks.n_better, new.sum(axis=0)), "significance_ranks disagrees with Holm on the p-values"
    return old, new


def _rates(
    rng: np.random.Generator, k: int, delta: float, boards: int, first_seed: int
) -> dict[str, tuple[float, float]]:
    """FWER (any false verdict) and power (share of truly better pairs found), old and new rule."""
    accuracies = np.full(k, BASE_ACCURACY)
    accuracies[: k // 2] += delta
    truly_better = accuracies[:, None] > accuracies[None, :]
    false_old = false_new = found_old = found_new = 0
    for b in range(boards):
        values, distributions = _board(rng, accuracies, first_seed + b)
        old, new = _verdicts(values, distributions, cross_check=b < CROSS_CHECKED_BOARDS)
        false_old += bool((old & ~truly_better).any())
        false_new += bool((new & ~truly_better).any())
        found_old += int((old & truly_better).sum())
        found_new += int((new & truly_better).sum())
    pairs = max(int(truly_better.sum()) * boards, 1)
    return {
        "fwer_old": (false_old / boards, boards),
        "fwer_new": (false_new / boards, boards),
        "power_old": (found_old / pairs, pairs),
        "power_new": (found_new / pairs, pairs),
    }


def _share(value: float, trials: float) -> str:
    """A share with its Monte-Carlo standard error."""
    return f"{value:.3f} ± {np.sqrt(max(value * (1 - value), 1e-12) / trials):.3f}"


def ranks_section(quick: bool, seed: int) -> Section:
    boards = 150 if quick else 2000
    power_boards = 50 if quick else 500
    rng = np.random.default_rng(seed)
    started = time.perf_counter()
    rows: list[list[str]] = []
    checks: list[tuple[str, float, str, bool | None]] = []
    for k in RANK_MODELS:
        null = _rates(rng, k, 0.0, boards, first_seed=seed * 1_000_000)
        small = _rates(rng, k, 0.05, power_boards, first_seed=seed * 1_000_000 + 100_000)
        large = _rates(rng, k, 0.10, power_boards, first_seed=seed * 1_000_000 + 200_000)
        rows.append(
            [
                str(k),
                _share(*null["fwer_old"]),
                _share(*null["fwer_new"]),
                _share(*small["fwer_new"]),
                _share(*small["power_old"]),
                _share(*small["power_new"]),
                _share(*large["power_old"]),
                _share(*large["power_new"]),
            ]
        )
        fwer = null["fwer_new"][0]
        limit = 0.05 + 3 * np.sqrt(0.05 * 0.95 / boards)
        checks.append((f"ranks: FWER among {k} equal models (new)", fwer, "<= 0.05 (+3 se)", fwer <= limit))
        checks.append((f"ranks: FWER among {k} equal models (old)", null["fwer_old"][0], "", None))
        checks.append((f"ranks: power at +0.05 accuracy, {k} models (new)", small["power_new"][0], "", None))
    return Section(
        title="ranks: family-wise error and power of the 'significantly better' verdicts",
        header=[
            "models",
            "FWER old, equal models",
            "FWER new, equal models",
            "FWER new, mixed board (+0.05)",
            "power old, +0.05",
            "power new, +0.05",
            "power old, +0.10",
            "power new, +0.10",
        ],
        rows=rows,
        notes=[
            f"n = {N_SAMPLES} Bernoulli samples per model, accuracy {BASE_ACCURACY}; {N_RESAMPLES} bootstrap "
            "resamples shared by the models of a board; FWER = share of boards with at least one false 'better' "
            f"verdict ({boards} boards of equal models; mixed: half the models 0.05 more accurate, {power_boards} "
            "boards); power = share of truly better pairs found better. ± is the Monte-Carlo standard error. "
            f"Seed {seed}, {time.perf_counter() - started:.0f} s.",
        ],
        checks=checks,
    )


# --------------------------------------------------------------------------- ladder

from harness.ladder import LadderHistory, ladder_from_bootstrap, ladder_from_losses  # noqa: E402

LADDER_LABELS = 1000  # public test set: n binary labels
LADDER_QUERIES = 1000  # random submissions before the combined one
LADDER_TRUTH = 0.5  # labels are independent of every submission: each has accuracy 0.5 on fresh labels


def _majority(vectors: np.ndarray) -> np.ndarray:
    """The per-sample majority vote of 0/1 label vectors (ties: 1); all ones when there are none."""
    if vectors.shape[0] == 0:
        return np.ones(vectors.shape[1], dtype=np.int8)
    return (2 * vectors.sum(axis=0, dtype=np.int64) >= vectors.shape[0]).astype(np.int8)


def _boosting_attack(seed: int) -> dict[str, dict[str, float]]:
    """Blum & Hardt's boosting attack, once, against a naive board (exact scores) and against the
    Ladder fed as the store feeds it (paired bootstrap distributions on shared resamples), and as
    the paper writes it (per-sample losses)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, LADDER_LABELS, dtype=np.int8)
    fresh = rng.integers(0, 2, LADDER_LABELS, dtype=np.int8)  # another draw of the truth
    queries = rng.integers(0, 2, (LADDER_QUERIES, LADDER_LABELS), dtype=np.int8)
    (rows,) = Bootstrap(LADDER_LABELS, N_RESAMPLES, seed).chunks()  # shared resamples of the public set
    offsets = LADDER_LABELS * np.arange(N_RESAMPLES)[:, None]
    counts = np.bincount((rows + offsets).ravel(), minlength=N_RESAMPLES * LADDER_LABELS).reshape(N_RESAMPLES, -1)

    def correct(vectors: np.ndarray) -> np.ndarray:
        return (vectors == labels).astype(np.float64)

    def by_bootstrap(vectors: np.ndarray) -> LadderHistory:
        hits = correct(vectors)
        return ladder_from_bootstrap(hits.mean(axis=1), list(hits @ counts.T / LADDER_LABELS), higher_is_better=True)

    def by_losses(vectors: np.ndarray) -> LadderHistory:
        return ladder_from_losses(1.0 - correct(vectors))

    public = correct(queries).mean(axis=1)
    naive = _majority(queries[public > 0.5])  # exact scores: keep what scored above 0.5
    out = {
        "naive": {
            "best": max(float(public.max()), float(correct(naive[None]).mean())),
            "public": float(correct(naive[None]).mean()),
            "fresh": float(np.mean(naive == fresh)),
            "accepted": float("nan"),
            "combined accepted": float("nan"),
        }
    }
    for name, history_of in (("bootstrap", by_bootstrap), ("losses", by_losses)):
        first = history_of(queries)
        combined = _majority(queries[first.accepted])  # the Ladder's feedback: which submissions moved it
        full = history_of(np.vstack([queries, combined[None]]))  # online: its first k steps are `first`'s
        best = full.guarded_best if name == "bootstrap" else 1.0 - full.guarded_best
        out[name] = {
            "best": best,
            "public": float(correct(combined[None]).mean()),
            "fresh": float(np.mean(combined == fresh)),
            "accepted": float(full.accepted.sum()),
            "combined accepted": float(full.accepted[-1]),
        }
    return out


def ladder_tolerance() -> float:
    """How far above the truth the guarded best may be: the 95% simultaneous (Bonferroni) bound for
    the best of k + 1 *non-adaptive* submissions, z(0.05 / (k + 1)) x sqrt(0.25 / n), plus half the
    release step (0.01 here: thresholds are 0.016-0.022)."""
    from scipy.stats import norm

    se = np.sqrt(LADDER_TRUTH * (1 - LADDER_TRUTH) / LADDER_LABELS)
    return float(norm.isf(0.05 / (LADDER_QUERIES + 1)) * se + 0.005)


def ladder_section(quick: bool, seed: int) -> Section:
    repetitions = 3 if quick else 10
    started = time.perf_counter()
    runs = [_boosting_attack(seed * 1_000 + r) for r in range(repetitions)]
    tolerance = ladder_tolerance()
    labels = {
        "naive": "naive (exact scores)",
        "bootstrap": "Ladder, paired bootstrap (the store's)",
        "losses": "Ladder, per-sample losses (the paper's)",
    }
    rows: list[list[str]] = []
    for key, label in labels.items():
        values = {field_: np.array([run[key][field_] for run in runs]) for field_ in runs[0][key]}
        rows.append(
            [
                label,
                f"{values['best'].mean():.4f}",
                f"{values['best'].max():.4f}",
                f"{values['best'].max() - LADDER_TRUTH:+.4f}",
                f"{values['public'].mean():.4f}",
                f"{values['fresh'].mean():.4f}",
                "" if key == "naive" else f"{values['accepted'].mean():.1f}",
                "" if key == "naive" else f"{values['combined accepted'].mean():.2f}",
            ]
        )
    naive_excess = float(np.mean([run["naive"]["best"] for run in runs])) - LADDER_TRUTH
    guarded_excess = max(run[key]["best"] for run in runs for key in ("bootstrap", "losses")) - LADDER_TRUTH
    return Section(
        title="ladder: Blum & Hardt's boosting attack against a naive board and the Ladder",
        header=[
            "board",
            "best shown, mean",
            "best shown, worst seed",
            "worst excess over the truth",
            "combined submission: public accuracy",
            "combined: fresh labels",
            "accepted (of 1001)",
            "combined accepted (share)",
        ],
        rows=rows,
        notes=[
            f"n = {LADDER_LABELS} public binary labels; k = {LADDER_QUERIES} random label vectors (true accuracy "
            f"{LADDER_TRUTH}), then the majority vote of those the board's feedback favoured (naive: public score "
            "above 0.5; Ladder: the submissions it accepted). The truth of every submission is 0.5; 'fresh labels' "
            f"scores it on an independent draw. {N_RESAMPLES} bootstrap resamples shared by all submissions. "
            f"Tolerance of the guarded best: +{tolerance:.4f} (the 95% Bonferroni bound for the best of k + 1 "
            f"non-adaptive submissions plus half the 0.01 release step). {repetitions} seeds from {seed * 1_000}, "
            f"{time.perf_counter() - started:.0f} s.",
        ],
        checks=[
            ("ladder: naive board's best over the truth (mean)", naive_excess, ">= 0.05", naive_excess >= 0.05),
            (
                "ladder: guarded best over the truth (worst seed)",
                guarded_excess,
                f"<= {tolerance:.4f}",
                guarded_excess <= tolerance,
            ),
        ],
    )


# --------------------------------------------------------------------------- coverage

from scipy.special import ndtri  # noqa: E402
from scipy.stats import binom  # noqa: E402

from harness.intervals import (  # noqa: E402
    bias_corrected_interval,
    debiased_interval,
    median_interval,
    studentized_auroc_tail,
    wilson_interval,
)
from harness.metrics import calibration as cal  # noqa: E402
from harness.metrics.ood import ood_summary, ood_summary_resampled  # noqa: E402
from harness.metrics.retrieval import evaluate_topk  # noqa: E402
from harness.schema import MetricValue  # noqa: E402
from harness.stats import stratified_counts  # noqa: E402
from harness.tasks.base import bootstrap_metric  # noqa: E402
from harness.tasks.calibration import CALIBRATED_ALPHA, squared_ece_interval  # noqa: E402
from harness.tasks.ood import auroc_errors, auroc_interval  # noqa: E402

COVERAGE_SIZES = (100, 300, 1000)
COVERAGE_TARGET = (0.93, 0.97)
COVERAGE_BINS = 15  # the calibration adapter's n_bins
COVERAGE_CLASSES = 10
OVERCONFIDENCE = 0.1  # the over-confident model: accuracy = confidence - 0.1
AUROC_TRUE = 0.99
#: an AUROC near 1: about a quarter of the samples of n = 100 separate perfectly (the table's notes count them)
AUROC_NEAR_ONE = 0.9995
NDCG_POOL = 200_000  # queries of the retrieval population
NDCG_CANDIDATES = 50
LM_MEAN_TOKENS = 60.0  # mean document length; lengths are log-normal with sigma LM_LENGTH_SIGMA
LM_LENGTH_SIGMA = 1.0
LM_LEVEL = 3.0  # per-document loss level: LM_LEVEL exp(0.3 W - 0.1 Z), Z the length's normal, W independent
LM_TOKEN_SHAPE = 2.0  # token NLL ~ Gamma(shape 2, mean = the document's level)


@dataclass
class _Coverage:
    """Intervals of one case at one n, accumulated over replicates, against the true value."""

    method: str
    statistic: str
    truth: float
    n: int
    low: list[float] = field(default_factory=list)
    high: list[float] = field(default_factory=list)
    point: list[float] = field(default_factory=list)
    weight: list[float] = field(default_factory=list)  # 1 per simulated replicate; a probability when exact
    exact: bool = False
    #: False for a contrast, or a true value the method cannot reach (no plug-in ece is 0): no target check
    checked: bool = True

    def add(self, low: float, high: float, point: float, weight: float = 1.0) -> None:
        self.low.append(low)
        self.high.append(high)
        self.point.append(point)
        self.weight.append(weight)

    def shares(self) -> dict[str, float]:
        low, high, point, w = (np.asarray(v) for v in (self.low, self.high, self.point, self.weight))
        w = w / w.sum()
        return {
            "coverage": float(w @ ((low <= self.truth) & (self.truth <= high))),
            "width": float(w @ (high - low)),
            "zero": float(w @ (high == low)),
            "excludes": float(w @ ((point < low) | (point > high))),
            # the two ways to miss: the interval lies wholly above the truth, or wholly below it
            "above": float(w @ (low > self.truth)),
            "below": float(w @ (high < self.truth)),
            "replicates": float(len(self.low)),
        }


def attainable_coverage(probabilities: np.ndarray, low: float, high: float) -> tuple[bool, float]:
    """For a discrete statistic (success counts k = 0..n with these probabilities): whether any interval
    rule can cover with probability in [low, high], and the smallest coverage >= low it can have. A rule
    whose intervals move monotonically with k covers the truth on a contiguous range of k, so its coverage
    is the probability of such a range; every range is tried. At p = 0.995, n = 100 the ranges give
    0.910 or 0.986 and nothing in [0.93, 0.97]."""
    cumulative = np.concatenate(([0.0], np.cumsum(probabilities)))
    sums = cumulative[None, :] - cumulative[:, None]  # sums[i, j]: P(i <= k < j) for i < j
    sums = sums[np.triu_indices(cumulative.size, k=1)]
    reachable = sums[sums >= low - 1e-12]
    return bool(np.any(reachable <= high + 1e-12)), float(reachable.min())


def _bounds(metric: MetricValue) -> tuple[float, float]:
    """The interval bootstrap_metric gave (it always gives one)."""
    assert metric.ci_low is not None and metric.ci_high is not None
    return float(metric.ci_low), float(metric.ci_high)


def _resample_counts(n: int, n_resamples: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The calibration adapter's resamples (harness.stats.Bootstrap) as index rows and multiplicities (B, n)."""
    rows = np.concatenate(list(Bootstrap(n, n_resamples, seed).chunks()))
    offsets = n * np.arange(n_resamples)[:, None]
    counts = np.bincount((rows + offsets).ravel(), minlength=n_resamples * n).reshape(n_resamples, n)
    return rows, counts.astype(np.float64)


def _calibration_draw(rng: np.random.Generator, n: int, gap: float) -> tuple[np.ndarray, np.ndarray]:
    """Logits of a 10-class model with top-label confidence c = 1 - 0.85 Beta(1.2, 4) (in [0.15, 1],
    mean 0.80) on class 0, the rest spread evenly, and labels right with probability c - gap
    (else a uniform other class). The population's binned gap is -gap in every bin: ece = gap and
    the binned squared gap = gap^2 exactly."""
    confidence = 1.0 - 0.85 * rng.beta(1.2, 4.0, n)
    probs = np.repeat(((1.0 - confidence) / (COVERAGE_CLASSES - 1))[:, None], COVERAGE_CLASSES, axis=1)
    probs[:, 0] = confidence
    correct = rng.random(n) < confidence - gap
    labels = np.where(correct, 0, rng.integers(1, COVERAGE_CLASSES, n))
    return np.log(probs), labels


def _binned_resampled(
    confidence: np.ndarray, correct: np.ndarray, counts: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ece, ece_sq_debiased, its standard error and the plug-in squared gap of every resample at once from
    multiplicities (B, n): the bin sums of `binned_calibration_gap` and `debiased_squared_ece`, summed over
    the samples sorted by bin (checked against those functions; a BLAS product is slower here on 2 threads)."""
    n = confidence.size
    bins = cal.equal_width_bin(confidence, COVERAGE_BINS)
    order = np.argsort(bins, kind="stable")
    starts = np.flatnonzero(np.r_[True, bins[order][1:] != bins[order][:-1]])  # empty bins add nothing
    weights = counts[:, order]
    count = np.add.reduceat(weights, starts, axis=1)
    hits = np.add.reduceat(weights * correct[order], starts, axis=1)
    conf = np.add.reduceat(weights * confidence[order], starts, axis=1)
    ece = np.abs(hits - conf).sum(axis=1) / n
    safe = np.maximum(count, 1.0)
    accuracy, mean_confidence = hits / safe, conf / safe
    variance = np.where(count > 1, accuracy * (1.0 - accuracy) / np.maximum(count - 1.0, 1.0), 0.0)
    plug_in = (count * (accuracy - mean_confidence) ** 2).sum(axis=1) / n
    stderr = cal.debiased_bin_stderr(count, hits, conf, n)
    return ece, plug_in - (count * variance).sum(axis=1) / n, stderr, plug_in


def _calibration_cases(
    rng: np.random.Generator, n: int, replicates: int, n_resamples: int, seed: int
) -> tuple[list[_Coverage], list[float]]:
    """ece and ece_sq_debiased of a calibrated and an over-confident model, as the calibration
    adapter scores them; and the noise-floor p-values of the calibrated model."""
    out: list[_Coverage] = []
    p_values: list[float] = []
    for label, gap in (("calibrated", 0.0), (f"over-confident (accuracy = c - {OVERCONFIDENCE})", OVERCONFIDENCE)):
        ece_case = _Coverage("debiased-bootstrap", f"ece, {label}", gap, n)
        squared_case = _Coverage("studentized", f"ece_sq_debiased, {label}", gap**2, n)
        for r in range(replicates):
            logits, labels = _calibration_draw(rng, n, gap)
            confidence, prediction = cal.top_label(cal.softmax(logits))
            correct = (prediction == labels).astype(np.float64)
            ece = cal.calibration_summary(logits, labels, n_bins=COVERAGE_BINS)["ece"]
            squared = cal.debiased_squared_ece(confidence, correct, COVERAGE_BINS)
            rows, counts = _resample_counts(n, n_resamples, seed + r)
            ece_b, squared_b, squared_se_b, _ = _binned_resampled(confidence, correct, counts)
            if r == 0:  # the vectorised resamples are the adapter's functions on logits[rows]
                for b in range(3):
                    direct = cal.calibration_summary(logits[rows[b]], labels[rows[b]], n_bins=COVERAGE_BINS)["ece"]
                    assert abs(direct - ece_b[b]) < 1e-9, "vectorised ece disagrees with calibration_summary"
                    direct = cal.debiased_squared_ece(confidence[rows[b]], correct[rows[b]], COVERAGE_BINS)
                    assert abs(direct - squared_b[b]) < 1e-9, "vectorised ece_sq_debiased disagrees"
                    direct = cal.debiased_squared_ece_stderr(confidence[rows[b]], correct[rows[b]], COVERAGE_BINS)
                    assert abs(direct**2 - squared_se_b[b] ** 2) < 1e-12, "vectorised standard error disagrees"
            # As the adapter does: the resamples' debiased values centre on the sample's plug-in squared gap
            # (their bootstrap world's true value): studentized about it, or shifted by (point - plug-in)
            # for the bias-corrected interval where no standard error is positive.
            plug_in = cal.squared_gap(confidence, correct, COVERAGE_BINS)
            squared_se = cal.debiased_squared_ece_stderr(confidence, correct, COVERAGE_BINS)
            squared_interval = squared_ece_interval(squared, plug_in, squared_se, squared_b, squared_se_b)
            # As the adapter does: ece's debiased interval reaches 0 when the noise floor does not reject calibration.
            p_calibrated = cal.ece_noise_floor(confidence, ece, COVERAGE_BINS, n_resamples, seed + r)[1]
            # As the adapter does: the resamples spread by how much more a debiased ece varies than the plug-in.
            spread = cal.ece_spread(ece_b, cal.normal_debiased_ece(counts, confidence, correct, COVERAGE_BINS))
            plausible = p_calibrated > CALIBRATED_ALPHA
            ece_case.add(*debiased_interval(ece, ece_b, zero_plausible=plausible, spread=spread), ece)
            if squared_interval is None:
                squared_interval = (
                    *_bounds(bootstrap_metric("ece_sq_debiased", squared, squared_b + squared - plug_in, n)),
                    "bc-bootstrap",
                )
            squared_case.add(squared_interval[0], squared_interval[1], squared)
            if gap == 0.0:
                p_values.append(p_calibrated)
        out += [ece_case, squared_case]
    return out, p_values


def _accuracy_cases(n: int) -> list[_Coverage]:
    """Wilson intervals of accuracy, exactly: every success count k = 0..n weighted by its binomial probability."""
    out = []
    for p in (0.8, 0.995):
        case = _Coverage("wilson", f"accuracy, p = {p}", p, n, exact=True)
        for k, probability in enumerate(binom.pmf(np.arange(n + 1), n, p)):
            metric = bootstrap_metric("accuracy", k / n, np.empty(0), n, proportion=True)
            case.add(*_bounds(metric), k / n, float(probability))
        out.append(case)
    return out


def _auroc_case(
    rng: np.random.Generator, n: int, replicates: int, n_resamples: int, seed: int, truth: float = AUROC_TRUE
) -> list[_Coverage]:
    """AUROC of n ID scores N(d, 1) against n OOD scores N(0, 1), d = sqrt(2) Phi^-1(truth), so the
    true AUROC is Phi(d / sqrt(2)); ID and OOD resampled separately (the OOD adapter's stratified_counts
    and ood_summary_resampled). Beside the adapter's interval, three contrasts on the same resamples: the
    bootstrap-t part alone, its union with the bias-corrected interval (the adapter's before schema
    version 8), and BCa with the acceleration of the AUROC's influence values."""
    shift = float(np.sqrt(2.0) * ndtri(truth))
    statistic = f"auroc, Gaussians {shift:.2f} sd apart"
    # at perfect separation (every resample 1) the adapter's interval is Wilson's over min(n_id, n_ood) pairs
    case = _Coverage("bc-studentized (Wilson at 1)", statistic, truth, n)
    alone = _Coverage("contrast: bootstrap-t part alone", statistic, truth, n, checked=False)
    union = _Coverage("contrast: union with bias-corrected (v6-7)", statistic, truth, n, checked=False)
    bca = _Coverage("contrast: BCa (placement acceleration)", statistic, truth, n, checked=False)
    for r in range(replicates):
        id_scores, ood_scores = rng.normal(shift, 1.0, n), rng.normal(0.0, 1.0, n)
        point = ood_summary(id_scores, ood_scores)["auroc"]
        id_counts, ood_counts = stratified_counts([n, n], n_resamples, seed + r)
        distribution = ood_summary_resampled(id_scores, ood_scores, id_counts, ood_counts)["auroc"]
        # as the OOD adapter does: Wilson at perfect separation, else the studentized interval on the log
        # distance to 1, its far end reaching at least as far as the bias-corrected interval's
        errors = auroc_errors(id_scores, [ood_scores], [1.0], id_counts, [ood_counts])
        interval = auroc_interval(
            point, distribution, id_scores, [ood_scores], [1.0], id_counts, [ood_counts], errors=errors
        )[0]
        metric = bootstrap_metric(
            "auroc.score.set", point, distribution, 2 * n, "ID + OOD samples", units_at_bound=n, interval=interval
        )
        bounds = _bounds(metric)
        case.add(*bounds, point)
        if interval is None:  # separated perfectly: every method takes the same Wilson interval
            for contrast in (alone, union, bca):
                contrast.add(*bounds, point)
            continue
        stderr, stderrs = errors
        t_low, t_high = studentized_auroc_tail(point, stderr, distribution, stderrs, n * n, 0.95)
        bc_low, bc_high = bias_corrected_interval(point, distribution)
        alone.add(t_low, t_high, point)
        union.add(min(t_low, bc_low), max(t_high, bc_high), point)
        acceleration = auroc_acceleration(point, id_scores, ood_scores)
        bca.add(*bias_corrected_interval(point, distribution, acceleration=acceleration), point)
    return [case, alone, union, bca]


def auroc_acceleration(point: float, id_scores: np.ndarray, ood_scores: np.ndarray) -> float:
    """BCa's acceleration of an AUROC (Efron 1987): a = sum L^3 / (6 (sum L^2)^1.5) over the influence
    values L of every sample: an ID sample's placement (share of OOD scores below it, ties 1/2) minus the
    AUROC, over n_ID; an OOD sample's (share of ID scores above it) minus the AUROC, over n_OOD. These are
    DeLong's components; with n_ID = n_OOD they are proportional to the jackknife's (tested)."""
    ood_sorted, id_sorted = np.sort(ood_scores), np.sort(id_scores)
    below = np.searchsorted(ood_sorted, id_scores, "left")
    id_place = (below + (np.searchsorted(ood_sorted, id_scores, "right") - below) / 2.0) / ood_scores.size
    at_or_below = np.searchsorted(id_sorted, ood_scores, "right")
    ties = at_or_below - np.searchsorted(id_sorted, ood_scores, "left")
    ood_place = (id_scores.size - at_or_below + ties / 2.0) / id_scores.size
    influence = np.r_[(id_place - point) / id_scores.size, (ood_place - point) / ood_scores.size]
    spread = float(np.sum(influence**2))
    return float(np.sum(influence**3)) / (6.0 * spread**1.5) if spread > 0.0 else 0.0


def _median_case(rng: np.random.Generator, n: int, replicates: int) -> _Coverage:
    """fdtm_median's order-statistic interval, on exponential values (mean 20 positions, true median
    20 ln 2). Its coverage is exact for continuous values (at least 95%, the binomial's discreteness
    above); on integer positions with ties it can only be higher."""
    truth = 20.0 * float(np.log(2.0))
    case = _Coverage("order-statistic", "median, exponential values (mean 20)", truth, n)
    for _ in range(replicates):
        values = rng.exponential(20.0, n)
        case.add(*median_interval(values), float(np.median(values)))
    return case


def _ndcg_population(rng: np.random.Generator, queries: int) -> np.ndarray:
    """Per-query nDCG@10 (harness evaluate_topk) of a population of queries: each has 1 + Poisson(1.5)
    relevant documents among 50 candidates (grade 2 with probability 0.3, else 1), scored
    N(mu_q + 0.5 (grade - 1), 1) with a per-query difficulty mu_q ~ N(1.5, 1), non-relevant ones N(0, 1);
    the system returns its top 10."""
    relevant = np.minimum(1 + rng.poisson(1.5, queries), NDCG_CANDIDATES)
    position = np.arange(NDCG_CANDIDATES)[None, :]
    is_relevant = position < relevant[:, None]
    grade = np.where(is_relevant, 1 + (rng.random((queries, NDCG_CANDIDATES)) < 0.3), 0)
    difficulty = rng.normal(1.5, 1.0, queries)[:, None]
    scores = rng.normal(0.0, 1.0, (queries, NDCG_CANDIDATES)) + np.where(
        is_relevant, difficulty + 0.5 * (grade - 1), 0.0
    )
    top = np.argpartition(-scores, 10, axis=1)[:, :10]
    doc_ids = [f"d{j:02d}" for j in range(NDCG_CANDIDATES)]
    query_ids = [f"q{i}" for i in range(queries)]
    qrels = {qid: {doc_ids[j]: int(grade[i, j]) for j in range(int(relevant[i]))} for i, qid in enumerate(query_ids)}
    per_query = evaluate_topk(qrels, query_ids, doc_ids, top, np.take_along_axis(scores, top, axis=1), [10])
    return np.array([per_query[qid]["ndcg_at_10"] for qid in query_ids])


def _ndcg_case(
    rng: np.random.Generator, population: np.ndarray, n: int, replicates: int, n_resamples: int, seed: int
) -> _Coverage:
    """Mean nDCG@10 of n queries drawn from the population, bootstrapped over queries as the retrieval
    adapter does (Bootstrap.mean_distribution of the per-query values)."""
    case = _Coverage("bc-bootstrap", "ndcg_at_10, mean over queries", float(population.mean()), n)
    for r in range(replicates):
        values = population[rng.integers(0, population.size, n)]
        point = math.fsum(values) / n  # mean_over_queries
        distribution = Bootstrap(n, n_resamples, seed + r).mean_distribution(values)
        metric = bootstrap_metric("ndcg_at_10", point, distribution, n, "queries")
        case.add(*_bounds(metric), point)
    return case


def _documents(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """n documents' token counts and per-document loss levels (longer documents a little easier)."""
    z = rng.normal(size=n)
    tokens = np.maximum(1, np.round(LM_MEAN_TOKENS * np.exp(LM_LENGTH_SIGMA * z - LM_LENGTH_SIGMA**2 / 2)))
    level = LM_LEVEL * np.exp(0.3 * rng.normal(size=n) - 0.1 * z)
    return tokens.astype(np.int64), level


def _lm_cases(
    rng: np.random.Generator, truth: float, n: int, replicates: int, n_resamples: int, seed: int
) -> list[_Coverage]:
    """loss_nats of n documents: the lm_loss adapter's document bootstrap (ratio of resampled sums), and
    a naive interval that treats the tokens as independent."""
    documents = _Coverage("bc-bootstrap (documents)", "loss_nats, clustered tokens", truth, n)
    naive = _Coverage("naive: tokens independent", "loss_nats, clustered tokens", truth, n, checked=False)
    for r in range(replicates):
        tokens, level = _documents(rng, n)
        token_nll = rng.gamma(LM_TOKEN_SHAPE, np.repeat(level, tokens) / LM_TOKEN_SHAPE)
        nll = np.add.reduceat(token_nll, np.cumsum(tokens) - tokens)
        loss = float(nll.sum() / tokens.sum())
        (counts,) = stratified_counts([n], n_resamples, seed + r)
        metric = bootstrap_metric("loss_nats", loss, (counts @ nll) / (counts @ tokens), n, "documents")
        documents.add(*_bounds(metric), loss)
        # A token bootstrap's distribution of a mean of T >= 6,000 tokens is normal to ~1e-3: its
        # percentile interval is mean -+ 1.96 s / sqrt(T) (resampling T tokens 1,000 times is too slow here).
        half = 1.959964 * token_nll.std() / np.sqrt(token_nll.size)
        naive.add(loss - half, loss + half, loss)
    return [documents, naive]


def _lm_truth(rng: np.random.Generator, documents: int) -> float:
    """The population's loss: E[tokens x level] / E[tokens] (a token's expected NLL is its document's
    level), over `documents` simulated documents."""
    tokens, level = _documents(rng, documents)
    return float((tokens * level).sum() / tokens.sum())


#: the coverage cases in two jobs per n: the AUROC cases (the costliest) and the rest
COVERAGE_GROUPS = ("auroc", "other")


@dataclass
class CoveragePart:
    """The coverage cases of one n and group (a job of its own: `build_sections` runs the parts in parallel)."""

    n: int
    group: str
    cases: list[_Coverage]
    p_values: list[float]
    lm_truth: float | None  # the loss population's true value; computed by the "other" parts only
    seconds: float


def coverage_part(quick: bool, seed: int, n: int, group: str) -> CoveragePart:
    """The coverage cases of `group` at sample size n, seeded by (seed, n, group) alone; the true values of
    nDCG and of the loss come from `seed` alone, the same in every part that uses them."""
    replicates = 60 if quick else 400
    n_resamples = 1000
    started = time.perf_counter()
    rng = np.random.default_rng([seed, n, COVERAGE_GROUPS.index(group)])
    boot_seed = seed * 1_000_000 + 10_000 * n
    cases: list[_Coverage] = []
    p_values: list[float] = []
    lm_truth = None
    if group == "auroc":
        cases += _auroc_case(rng, n, replicates, n_resamples, boot_seed + 1_000)
        cases += _auroc_case(rng, n, replicates, n_resamples, boot_seed + 1_500, AUROC_NEAR_ONE)
    else:
        truths = np.random.default_rng(seed)  # the populations' true values: the same in every part
        population = _ndcg_population(truths, NDCG_POOL)
        lm_truth = _lm_truth(truths, 4_000_000)
        cases = _accuracy_cases(n)
        calibration, p_values = _calibration_cases(rng, n, replicates, n_resamples, boot_seed)
        cases += calibration
        cases.append(_median_case(rng, n, replicates))
        cases.append(_ndcg_case(rng, population, n, replicates, n_resamples, boot_seed + 2_000))
        cases += _lm_cases(rng, lm_truth, n, replicates, n_resamples, boot_seed + 3_000)
    return CoveragePart(n, group, cases, p_values, lm_truth, time.perf_counter() - started)


def coverage_section(quick: bool, seed: int, parts: list[CoveragePart] | None = None) -> Section:
    """The coverage table from its parts (computed here, one after another, when not given)."""
    if parts is None:
        parts = [coverage_part(quick, seed, n, group) for n in COVERAGE_SIZES for group in COVERAGE_GROUPS]
    replicates = 60 if quick else 400
    n_resamples = 1000
    lm_truth = next(part.lm_truth for part in parts if part.lm_truth is not None)
    cases = [case for part in parts for case in part.cases]
    p_values = {part.n: part.p_values for part in parts if part.group == "other"}
    cases.sort(key=lambda c: (c.statistic.split(",")[0], c.statistic, c.method, c.n))

    rows: list[list[str]] = []
    checks: list[tuple[str, float, str, bool | None]] = []
    low, high = COVERAGE_TARGET
    for case in cases:
        s = case.shares()
        se = 0.0 if case.exact else np.sqrt(max(s["coverage"] * (1 - s["coverage"]), 1e-12) / s["replicates"])
        coverage = f"{s['coverage']:.3f}" + (" (exact)" if case.exact else f" ± {se:.3f}")
        miss = s["coverage"] - low if s["coverage"] < low else s["coverage"] - high if s["coverage"] > high else 0.0
        target = f"[{low}, {high}] (± 2 se)"
        ok = low - 2 * se <= s["coverage"] <= high + 2 * se
        if case.exact:  # a discrete statistic may have no rule whose coverage lies in the target at all
            in_reach, smallest = attainable_coverage(np.asarray(case.weight), low, high)
            if not in_reach:
                coverage = coverage[:-1] + f"; [{low}, {high}] unattainable, least attainable >= {low}: {smallest:.3f})"
                target = f"the least attainable coverage >= {low}: {smallest:.3f}"
                ok, miss = abs(s["coverage"] - smallest) <= 1e-9, 0.0
        rows.append(
            [
                case.method,
                case.statistic,
                f"{case.truth:.4g}",
                str(case.n),
                coverage + (f" ({miss:+.3f})" if miss else ""),
                f"{s['above']:.3f} / {s['below']:.3f}",
                f"{s['width']:.4f}",
                f"{s['zero']:.3f}",
                f"{s['excludes']:.3f}",
            ]
        )
        name = f"coverage: {case.method}, {case.statistic}, n = {case.n}"
        if not case.checked:
            checks.append((name, s["coverage"], "", None))
        else:
            checks.append((name, s["coverage"], target, ok))
    separation_notes = []
    for case in cases:
        if case.statistic.startswith("auroc") and case.checked:
            low_bounds, high_bounds, points = (np.asarray(v) for v in (case.low, case.high, case.point))
            separated = points == 1.0
            covered = (low_bounds <= case.truth) & (case.truth <= high_bounds)
            rest = f"{covered[~separated].mean():.3f}" if (~separated).any() else "-"
            those = f" (covered {covered[separated].mean():.3f})" if separated.any() else ""
            separation_notes.append(
                f"{case.truth:g}, n = {case.n}: {separated.mean():.3f} separated perfectly{those}, the others covered {rest}"
            )
    floor_notes = []
    for n, values in p_values.items():
        share = float(np.mean(np.asarray(values) <= 0.05))
        se = float(np.sqrt(0.05 * 0.95 / len(values)))
        floor_notes.append(f"n = {n}: {share:.3f} ± {se:.3f}")
        checks.append(
            (
                f"coverage: ece_calibrated_p <= 0.05 for a calibrated model, n = {n}",
                share,
                "0.05 (± 3 se)",
                abs(share - 0.05) <= 3 * se,
            )
        )
    return Section(
        title="coverage: nominal-95% intervals of every interval method, on known distributions",
        header=[
            "method",
            "statistic",
            "true value",
            "n",
            "coverage (miss of [0.93, 0.97])",
            "misses: above / below the truth",
            "mean width",
            "zero-width share",
            "excludes its point",
        ],
        rows=rows,
        notes=[
            f"Each case is computed with the harness's functions as its adapter calls them (bootstrap_metric picks "
            f"Wilson for a proportion, the OOD adapter bc-studentized for AUROC, the calibration adapter a "
            f"bootstrap-t for ece_sq_debiased, else the bias-corrected percentile "
            f"interval), {n_resamples} bootstrap "
            f"resamples, {replicates} simulated data sets per case and n (± the Monte-Carlo standard error); "
            "Wilson's coverage is exact (every success count weighted by its binomial probability). "
            "True values: accuracy p; ece of the binned population = the confidence gap in every bin (0 for the "
            f"calibrated model, {OVERCONFIDENCE} for the over-confident one, whose accuracy is c - "
            f"{OVERCONFIDENCE} at every confidence c), ece_sq_debiased's = its square (10 classes, c = 1 - 0.85 "
            f"Beta(1.2, 4)); auroc Phi(d / sqrt 2) = {AUROC_TRUE} with n ID and n OOD samples; ndcg_at_10 the "
            f"mean over a population of {NDCG_POOL:,} simulated queries that the n queries are drawn from; "
            f"loss_nats E[tokens x level] / E[tokens] over 4,000,000 simulated documents ({lm_truth:.4f}; log-normal "
            f"lengths, mean {LM_MEAN_TOKENS:.0f} tokens, sigma {LM_LENGTH_SIGMA}, per-document loss level, token "
            "NLL Gamma around it). The naive loss interval treats the tokens as independent (mean ± 1.96 "
            "token sd / sqrt(tokens), the limit of a token bootstrap). The plug-in ece's interval is the "
            "debiased bootstrap (resamples shifted by twice the bootstrap bias and spread by ece_spread, as a "
            "debiased ece varies more than the plug-in), reaching 0 when the noise-floor "
            f"test does not reject calibration (p > {CALIBRATED_ALPHA}); without that, a calibrated model's ece is "
            "never covered (every resample's ece is above 0). ece_sq_debiased's interval is the adapter's "
            "bootstrap-t (squared_ece_interval): t = (resample - the sample's plug-in squared gap) / the "
            "resample's delta-method standard error, as a debiased estimator's resamples centre on the "
            "sample's plug-in value (the true value of the bootstrap world); the bias-corrected interval of "
            "the resamples shifted onto the point covered 0.97-0.995 (too wide: the bootstrap world's bins "
            "are miscalibrated by their noise even where the model is calibrated).",
            "AUROC data sets whose ID and OOD scores separate perfectly (point 1; Wilson's interval over the "
            "pairs): " + "; ".join(separation_notes) + ".",
            "Noise-floor p-value (ece_calibrated_p, consistency resampling with "
            f"{n_resamples} draws) of the calibrated model: share of p <= 0.05: " + "; ".join(floor_notes) + ".",
            f"Seed {seed}; "
            + ", ".join(f"n = {part.n}, {part.group}: {part.seconds:.0f} s" for part in parts)
            + " (each part seeded on its own and computed as a job of its own).",
        ],
        checks=checks,
    )


PROPORTION_SIZES = (30, 100, 300, 1000)
#: the grid of true proportions whose exact coverage is scanned (symmetric about 1/2, so one half)
PROPORTION_GRID = np.linspace(0.5, 0.9999, 1000)


def _exact_coverages(bounds: np.ndarray, n: int, ps: np.ndarray) -> np.ndarray:
    """Exact coverage at every p of `ps` of intervals given per success count k = 0..n."""
    ks = np.arange(n + 1)
    pmf = binom.pmf(ks[None, :], n, ps[:, None])
    covered = (bounds[None, :, 0] <= ps[:, None]) & (ps[:, None] <= bounds[None, :, 1])
    return np.asarray((pmf * covered).sum(axis=1))


def proportions_section(quick: bool, seed: int) -> Section:
    """Exact coverage of the proportion interval (`wilson_interval`, Wilson with Brown, Cai & DasGupta's
    Poisson bounds at the edges) against plain Wilson (scipy's binomtest) over p in [0.5, 0.9999]."""
    from scipy.stats import binomtest

    del quick, seed  # exact: no simulation
    started = time.perf_counter()
    rows: list[list[str]] = []
    checks: list[tuple[str, float, str, bool | None]] = []
    for n in PROPORTION_SIZES:
        ours = np.array([wilson_interval(k, n) for k in range(n + 1)])
        plain = np.array([tuple(binomtest(k, n).proportion_ci(method="wilson")) for k in range(n + 1)])
        for method, bounds in (("wilson (plain, scipy)", plain), ("wilson, Poisson bounds at the edges", ours)):
            coverage = _exact_coverages(bounds, n, PROPORTION_GRID)
            at = _exact_coverages(bounds, n, np.array([0.8, 0.99, 0.995]))
            rows.append([method, str(n), f"{coverage.min():.3f}", f"{coverage.mean():.4f}", *(f"{c:.3f}" for c in at)])
            if bounds is ours:
                mean = float(coverage.mean())
                checks.append(
                    (f"proportions: mean exact coverage over p, n = {n}", mean, "[0.94, 0.96]", 0.94 <= mean <= 0.96)
                )
                checks.append((f"proportions: lowest exact coverage over p, n = {n}", float(coverage.min()), "", None))
    return Section(
        title="proportions: exact coverage of the 95% interval of a proportion (accuracy), over p",
        header=["method", "n", "lowest over p", "mean over p", "at p = 0.8", "at p = 0.99", "at p = 0.995"],
        rows=rows,
        notes=[
            f"Exact: every success count weighted by its binomial probability, at {len(PROPORTION_GRID)} values of p "
            "in [0.5, 0.9999] (the intervals are symmetric, so p < 0.5 mirrors them). Wilson's coverage oscillates "
            "with p and dips far below 95% within a few 1/n of the edge; the Poisson bounds for 1-3 successes "
            "or failures (x* = 2 for n <= 50) lift the dips and leave the mean where it was.",
            f"{time.perf_counter() - started:.0f} s.",
        ],
        checks=checks,
    )


# --------------------------------------------------------------------------- driver

SECTIONS: dict[str, Callable[[bool, int], Section]] = {
    "ranks": ranks_section,
    "ladder": ladder_section,
    "coverage": coverage_section,
    "proportions": proportions_section,
}


def build_sections(names: list[str], quick: bool, seed: int, workers: int) -> list[Section]:
    """The sections `names`, in that order, computed in `workers` processes. The coverage section is computed
    in parts (`coverage_part`: one per n and group). Every section and part is seeded on its own, so the
    numbers do not depend on where or in which order it runs; the longest jobs start first."""
    if workers <= 1:
        return [SECTIONS[name](quick, seed) for name in names]
    import multiprocessing
    import os
    from concurrent.futures import Future, ProcessPoolExecutor

    # one BLAS thread per job: `workers` jobs share the cores (the spawned workers inherit the setting)
    for variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(variable, "1")
    parts = [(n, group) for n in sorted(COVERAGE_SIZES, reverse=True) for group in COVERAGE_GROUPS]
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        # longest first (measured): the AUROC cases at the largest n, the ranks, then the rest by size
        part_futures: list[Future[CoveragePart]] = []
        futures: dict[str, Future[Section]] = {}
        order = ["coverage-first", "ranks", "coverage-rest", *(name for name in SECTIONS if name != "ranks")]
        for job in order:
            if job == "coverage-first" and "coverage" in names:
                part_futures.append(pool.submit(coverage_part, quick, seed, *parts[0]))
            elif job == "coverage-rest" and "coverage" in names:
                part_futures += [pool.submit(coverage_part, quick, seed, *part) for part in parts[1:]]
            elif job in names and job != "coverage" and job not in futures:
                futures[job] = pool.submit(SECTIONS[job], quick, seed)
        if part_futures:
            done = sorted((future.result() for future in part_futures), key=lambda part: (part.n, part.group))
            futures["coverage"] = pool.submit(coverage_section, quick, seed, done)
        return [futures[name].result() for name in names]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer simulated boards (a smoke run)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--section", action="append", choices=sorted(SECTIONS), help="repeatable; default: all")
    parser.add_argument("--workers", type=int, default=2, help="sections computed at once (default 2: the cores)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    for section in build_sections(args.section or list(SECTIONS), args.quick, args.seed, args.workers):
        print(markdown(section), end="\n\n", flush=True)
    print(f"All sections: {time.perf_counter() - started:.0f} s with {args.workers} worker(s).")
    return 0


def run() -> list[Any]:
    """Rows for bench/run_all.py: every section's checks (full size)."""
    from common import Row

    rows = []
    for section in build_sections(list(SECTIONS), False, 0, 2):
        rows += [Row("uncertainty", case, value, "share", target, ok) for case, value, target, ok in section.checks]
    return rows


if __name__ == "__main__":
    sys.exit(main())
