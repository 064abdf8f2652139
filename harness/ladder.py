"""The adaptive-overfitting guard of public boards: the parameter-free Ladder (Blum & Hardt,
"The Ladder: A Reliable Leaderboard for Machine Learning Competitions", ICML 2015).

Contributors see their scores and resubmit. Keeping the best of many noisy scores, or combining
the submissions that happened to score well (the "boosting attack"), overfits a public test set:
the board's best climbs while the truth does not (Dwork et al., Science 2015). The Ladder shows
each org's best only when a new submission beats it by more than the noise of the comparison.

The mechanism, for one org's submissions on one board in ingest order (oriented here so that
lower is better; higher-is-better metrics are mirrored):

    R = +inf (nothing shown), b = none (the submission whose value is shown)
    for each submission t with value x_t:
        s_t = standard error of x_t - x_b (paired), or of x_t alone while nothing is shown
        if x_t < R - s_t and (b is none or x_t < x_b):
            R = x_t rounded to the decimal place of s_t;  b = t
        show R

- s_t (the threshold), as in the paper's parameter-free Ladder: the standard deviation of the
  per-sample loss differences / sqrt(n) (`ladder_from_losses`). The store keeps each run's paired
  bootstrap distribution of its main metric instead of per-sample losses; two runs whose
  distributions share resamples (same seed, number of resamples and dataset fingerprints) pair up,
  and the standard deviation of the difference of their distributions, resample by resample, is the
  standard error of their difference (`ladder_from_bootstrap`). The first submission's threshold
  is its own standard error (the paper's initial loss vector is zero).
- Fallback without pairing (no bootstrap, another seed or other data): the unpaired standard error
  sqrt(se_t^2 + se_b^2), each se the bootstrap's standard deviation, else the stored stderr, else
  the 95% interval's width / (2 x 1.96). Submissions on one test set are positively correlated, so
  this overstates the paired error: the guard is stricter, never looser. Without any uncertainty
  (no interval at all) submissions are compared by value (s = 0), as the significance ranks do.
- The released value is rounded to the decimal place of s_t (the largest power of ten not above
  it, half to even), so it shows no digits that are noise. As |round(x) - x| <= s_t / 2, a released
  value is always strictly better than the one before: the shown value is monotone.
- `x_t < x_b` is ours, not the paper's: rounding may have moved R past x_b, and a new best must
  be better than the old one. It also means an exact resubmission of the best never moves it.

Pure functions of their inputs; the store (`Store.ladder_board`) feeds them, the app and
`harness leaderboard --ladder` show them. Boards are guarded by default; `leaderboard.toml`
([ladder] default, on, off) switches the guard per board (`LadderSettings`).
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from harness.errors import HarnessError

#: the two-sided 95% normal quantile (interval width / 2 -> standard error)
Z95 = 1.959963984540054
#: what decided a submission's threshold
RULES = ("first", "paired", "unpaired", "value", "no value")
#: the board settings file, read from the working directory (the leaderboard repository's root)
SETTINGS_FILE = "leaderboard.toml"

#: (t, b) -> (threshold s_t, rule): the standard error of x_t - x_b, or of x_t alone when b is None
DifferenceSE = Callable[[int, int | None], tuple[float, str]]


@dataclass(frozen=True)
class LadderHistory:
    """One org's submissions on one board, in order, and what the Ladder made of each.

    value: the submitted values; threshold: s_t (NaN for a submission without a value); rule: what
    decided s_t (`RULES`); accepted: whether it became the shown best; displayed: the value shown
    after it (NaN until something is shown); best: the index of the submission shown (-1 before).
    """

    value: NDArray[np.float64]
    threshold: NDArray[np.float64]
    rule: tuple[str, ...]
    accepted: NDArray[np.bool_]
    displayed: NDArray[np.float64]
    best: NDArray[np.int64]
    higher_is_better: bool

    @property
    def guarded_best(self) -> float:
        """What the guarded board shows: the last released value (NaN when nothing was accepted)."""
        return float(self.displayed[-1]) if self.displayed.size else math.nan

    @property
    def raw_best(self) -> float:
        """The best submitted value (what an unguarded board shows), NaN when there is none."""
        finite = self.value[np.isfinite(self.value)]
        if not finite.size:
            return math.nan
        return float(finite.max() if self.higher_is_better else finite.min())


def decimal_step(threshold: float) -> int:
    """The exponent e of the largest power of ten 10^e not above `threshold` (> 0, finite).

    Example: 0.0158 -> -2 (values are released to 0.01); 0.01 -> -2; 3.0 -> 0.
    """
    if not (threshold > 0 and math.isfinite(threshold)):
        raise ValueError(f"a rounding step needs a positive finite threshold, got {threshold!r}")
    exponent = math.floor(math.log10(threshold))
    if 10.0**exponent > threshold:  # log10 rounded up across a power of ten
        exponent -= 1
    elif 10.0 ** (exponent + 1) <= threshold:
        exponent += 1
    return exponent


def release(value: float, threshold: float) -> float:
    """`value` rounded to the decimal place of `threshold` (half to even); unrounded when the
    threshold is 0 or unknown. Example: release(0.84371, 0.0158) -> 0.84."""
    if not (threshold > 0 and math.isfinite(threshold)):
        return float(value)
    return float(round(value, -decimal_step(threshold)))


def ladder(
    values: Sequence[float] | NDArray[np.float64], difference_se: DifferenceSE, *, higher_is_better: bool
) -> LadderHistory:
    """The parameter-free Ladder over `values` (one org's submissions in order); see the module
    docstring. `difference_se(t, b)` gives the threshold of submission t against the shown best b
    (None while nothing is shown) and the rule that decided it. A NaN or infinite value is never
    accepted (rule "no value").

    Example (lower is better, thresholds 0.01): values [0.50, 0.495, 0.48] -> accepted
    [True, False, True], displayed [0.5, 0.5, 0.48].
    """
    raw = np.asarray(values, dtype=np.float64)
    if raw.ndim != 1:
        raise ValueError(f"values must be one submission per entry (1-d), got shape {raw.shape}")
    sign = -1.0 if higher_is_better else 1.0  # oriented: lower is better
    k = raw.shape[0]
    threshold = np.full(k, math.nan)
    accepted = np.zeros(k, dtype=bool)
    displayed = np.full(k, math.nan)
    best = np.full(k, -1, dtype=np.int64)
    rules: list[str] = []
    shown = math.inf  # R, oriented
    current: int | None = None
    for t in range(k):
        x = sign * float(raw[t])
        if not math.isfinite(x):
            rules.append("no value")
        else:
            s, rule = difference_se(t, current)
            s = s if s > 0 and math.isfinite(s) else 0.0
            threshold[t] = s
            rules.append(rule)
            if x < shown - s and (current is None or x < sign * float(raw[current])):
                shown = sign * release(float(raw[t]), s)
                current = t
                accepted[t] = True
        if current is not None:
            displayed[t] = sign * shown
            best[t] = current
    return LadderHistory(raw, threshold, tuple(rules), accepted, displayed, best, higher_is_better)


def ladder_from_losses(losses: NDArray[np.float64]) -> LadderHistory:
    """The paper's setting: `losses` is (submissions, n), per-sample losses on the holdout set
    (lower is better); a submission's value is its mean loss and its threshold
    std(l_t - l_b) / sqrt(n) (sample standard deviation, ddof 1), std(l_t) / sqrt(n) for the first.

    Example: losses [[1, 0, 1, 0], [0, 0, 1, 0]] -> values [0.5, 0.25]; the second differs on one
    sample of four: s = 0.25, and 0.25 < 0.5 - 0.25 fails, so the board keeps showing 0.5.
    """
    matrix = np.asarray(losses, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[1] < 2:
        raise ValueError(f"losses must be (submissions, n >= 2), got shape {matrix.shape}")
    root_n = math.sqrt(matrix.shape[1])

    def difference_se(t: int, b: int | None) -> tuple[float, str]:
        diff = matrix[t] if b is None else matrix[t] - matrix[b]
        return float(np.std(diff, ddof=1)) / root_n, "first" if b is None else "paired"

    return ladder(matrix.mean(axis=1), difference_se, higher_is_better=False)


def standard_error(stderr: float | None, ci_low: float | None, ci_high: float | None) -> float:
    """A value's standard error: `stderr` when known, else the 95% interval's width / (2 x 1.96),
    else NaN."""
    if stderr is not None and math.isfinite(stderr) and stderr >= 0:
        return float(stderr)
    if ci_low is not None and ci_high is not None and math.isfinite(ci_low) and math.isfinite(ci_high):
        return abs(float(ci_high) - float(ci_low)) / (2.0 * Z95)
    return math.nan


def ladder_from_bootstrap(
    values: Sequence[float] | NDArray[np.float64],
    bootstraps: Sequence[NDArray[np.float64] | None],
    *,
    higher_is_better: bool,
    pair_keys: Sequence[Hashable] | None = None,
    stderrs: Sequence[float] | None = None,
) -> LadderHistory:
    """The Ladder on what the store keeps: each submission's value and its bootstrap distribution.

    Submissions t and b pair when both have a distribution (at least two finite values), with equal
    `pair_keys` (default: every distribution pairs with any other of the same length) and the same
    length: s_t = std(boot_t - boot_b, ddof 1), resample by resample ("paired"). Otherwise
    s_t = sqrt(se_t^2 + se_b^2) ("unpaired"), se being the distribution's standard deviation, else
    `stderrs` (see `standard_error`); missing ones count 0, and with none at all s_t = 0 ("value").
    The first submission's threshold is its own standard error ("first").
    """
    k = len(values)
    if (
        len(bootstraps) != k
        or (pair_keys is not None and len(pair_keys) != k)
        or (stderrs is not None and len(stderrs) != k)
    ):
        raise ValueError("values, bootstraps, pair_keys and stderrs need one entry per submission")
    boots: list[NDArray[np.float64] | None] = []
    for boot in bootstraps:
        array = None if boot is None else np.asarray(boot, dtype=np.float64).ravel()
        boots.append(array if array is not None and array.size >= 2 and np.isfinite(array).all() else None)
    keys: list[Hashable] = list(pair_keys) if pair_keys is not None else [None] * k
    own = [
        float(np.std(boot, ddof=1)) if boot is not None else (float(stderrs[i]) if stderrs is not None else math.nan)
        for i, boot in enumerate(boots)
    ]

    def difference_se(t: int, b: int | None) -> tuple[float, str]:
        if b is None:
            return (own[t], "first") if math.isfinite(own[t]) else (0.0, "value")
        bt, bb = boots[t], boots[b]
        if bt is not None and bb is not None and bt.size == bb.size and keys[t] == keys[b]:
            return float(np.std(bt - bb, ddof=1)), "paired"
        known = [own[i] ** 2 for i in (t, b) if math.isfinite(own[i])]
        return (math.sqrt(sum(known)), "unpaired") if known else (0.0, "value")

    return ladder(values, difference_se, higher_is_better=higher_is_better)


# --------------------------------------------------------------------------- boards (tables of the store)

HISTORY_COLUMNS = (
    "org",
    "model_id",
    "run_id",
    "seq",
    "tier",
    "value",
    "threshold",
    "rule",
    "accepted",
    "displayed",
    "shown_run",
)
ORG_COLUMNS = (
    "org", "guarded_best", "raw_best", "submissions", "accepted", "shown_model", "shown_run", "raw_best_model",
    "raw_best_run", "higher_is_better",
)  # fmt: skip


@dataclass(frozen=True)
class LadderBoard:
    """A board under the Ladder (`Store.ladder_board`), one ladder per org.

    orgs: one row per org (`ORG_COLUMNS`), best guarded value first: guarded_best (what the guarded
    board shows), raw_best (the best submitted value), submissions, accepted (how often the shown
    value moved), the model and run shown and the model and run of the raw best.
    history: one row per submission (`HISTORY_COLUMNS`), per org in ingest order.
    metric, higher_is_better: the board's metric and direction (None on an empty board).
    """

    orgs: pd.DataFrame
    history: pd.DataFrame
    metric: str | None = None
    higher_is_better: bool | None = None
    rules: dict[str, int] = field(default_factory=dict)


def ladder_tables(runs: pd.DataFrame) -> LadderBoard:
    """Per-org ladders of `Store.ladder_runs` rows (one board: one task and metric).

    Bootstrap distributions pair when both runs report the main metric with the same bootstrap
    seed, number of values and dataset fingerprints (as the significance ranks pair them).
    The direction is the newest run's.
    """
    if runs.empty:
        return LadderBoard(pd.DataFrame(columns=list(ORG_COLUMNS)), pd.DataFrame(columns=list(HISTORY_COLUMNS)))
    runs = runs.sort_values(["org", "seq", "run_id"], kind="stable").reset_index(drop=True)
    higher = bool(runs.loc[runs["seq"].idxmax(), "higher_is_better"])
    # Whole columns once, then one slice per org: a board of 10,000 orgs made a DataFrame and read rows
    # one `iloc` at a time per org (1 s of the Leaderboard page's first visit).
    org = runs["org"].to_numpy(dtype=object)
    starts = np.flatnonzero(np.r_[True, org[1:] != org[:-1]])
    ends = np.r_[starts[1:], len(runs)]
    model_id, run_id = runs["model_id"].to_numpy(dtype=object), runs["run_id"].to_numpy(dtype=object)
    values = runs["value"].to_numpy(np.float64, na_value=np.nan)
    boots = [np.asarray(v, dtype=np.float64) if main is True and isinstance(v, list | np.ndarray) else None
             for main, v in zip(runs["is_main"].tolist(), runs["boot_values"].tolist(), strict=True)]  # fmt: skip
    keys = [
        (seed if pd.notna(seed) else None, fp)
        for seed, fp in zip(runs["boot_seed"].tolist(), runs["fingerprints"].tolist(), strict=True)
    ]
    errors = [
        standard_error(_number(se), _number(lo), _number(hi))
        for se, lo, hi in zip(runs["stderr"].tolist(), runs["ci_low"].tolist(), runs["ci_high"].tolist(), strict=True)
    ]
    columns: dict[str, list[Any]] = {"threshold": [], "rule": [], "accepted": [], "displayed": [], "shown_run": []}
    summaries: list[dict[str, Any]] = []
    for first, stop in zip(starts.tolist(), ends.tolist(), strict=True):
        history = ladder_from_bootstrap(
            values[first:stop],
            boots[first:stop],
            higher_is_better=higher,
            pair_keys=keys[first:stop],
            stderrs=errors[first:stop],
        )
        columns["threshold"].append(history.threshold)
        columns["rule"] += history.rule
        columns["accepted"].append(history.accepted)
        columns["displayed"].append(history.displayed)
        columns["shown_run"] += [run_id[first + b] if b >= 0 else None for b in history.best.tolist()]
        finite = np.flatnonzero(np.isfinite(history.value))
        raw_index = first + int(finite[np.argmax(history.value[finite] * (1 if higher else -1))]) if finite.size else -1
        last = first + int(history.best[-1]) if history.best[-1] >= 0 else -1
        summaries.append(
            {
                "org": org[first], "guarded_best": history.guarded_best, "raw_best": history.raw_best,
                "submissions": stop - first, "accepted": int(history.accepted.sum()),
                "shown_model": model_id[last] if last >= 0 else None,
                "shown_run": run_id[last] if last >= 0 else None,
                "raw_best_model": model_id[raw_index] if raw_index >= 0 else None,
                "raw_best_run": run_id[raw_index] if raw_index >= 0 else None,
                "higher_is_better": higher,
            }
        )  # fmt: skip
    history_table = pd.DataFrame(
        {
            "org": runs["org"], "model_id": runs["model_id"], "run_id": runs["run_id"], "seq": runs["seq"],
            "tier": runs["tier"], "value": values, "threshold": np.concatenate(columns["threshold"]),
            "rule": columns["rule"], "accepted": np.concatenate(columns["accepted"]),
            "displayed": np.concatenate(columns["displayed"]), "shown_run": columns["shown_run"],
        }
    )  # fmt: skip
    orgs = pd.DataFrame(summaries, columns=list(ORG_COLUMNS))
    orgs = orgs.assign(_key=-orgs["guarded_best"] if higher else orgs["guarded_best"])
    orgs = orgs.sort_values(["_key", "org"], na_position="last").drop(columns="_key").reset_index(drop=True)
    rules = {
        rule: int((history_table["rule"] == rule).sum()) for rule in RULES if (history_table["rule"] == rule).any()
    }
    return LadderBoard(orgs, history_table, str(runs["metric"].iloc[-1]), higher, rules)


def _number(value: object) -> float | None:
    if value is None or value is pd.NA:
        return None
    number = float(value)  # type: ignore[arg-type]
    return None if math.isnan(number) else number


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class LadderSettings:
    """Which boards the guard is on for (a board is a task). Default: every board.

    From `leaderboard.toml` at the leaderboard repository's root:

        [ladder]
        default = true          # the guard's state for boards not listed
        off = ["lm_loss"]       # boards shown raw
        on = []                 # boards guarded even when default = false
    """

    default: bool = True
    on: frozenset[str] = frozenset()
    off: frozenset[str] = frozenset()

    def enabled(self, task: str) -> bool:
        if task in self.on:
            return True
        if task in self.off:
            return False
        return self.default


def load_settings(path: Path | None, *, required: bool = False) -> LadderSettings:
    """The settings in `path` (a TOML file with a [ladder] table); defaults when `path` is None, or
    does not exist and is not `required`. A malformed file is a HarnessError naming the key."""
    if path is None or (not required and not path.exists()):
        return LadderSettings()
    where = str(path)
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise HarnessError(
            "the board settings file does not exist",
            where=where,
            fix="create it or omit it (default: every board guarded)",
        ) from None
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise HarnessError(f"cannot read the board settings: {error}", where=where, fix="write valid TOML") from None
    table = data.get("ladder", {})
    if not isinstance(table, dict):
        raise HarnessError("[ladder] must be a table", where=where, fix="write `[ladder]` followed by its keys")
    unknown = sorted(set(table) - {"default", "on", "off"})
    if unknown:
        raise HarnessError(
            f"unknown key(s) in [ladder]: {', '.join(unknown)}", where=where, fix="use default, on and off"
        )
    default = table.get("default", True)
    if not isinstance(default, bool):
        raise HarnessError("[ladder] default must be true or false", where=where)
    lists: dict[str, frozenset[str]] = {}
    for key in ("on", "off"):
        names = table.get(key, [])
        if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
            raise HarnessError(
                f"[ladder] {key} must be a list of task names", where=where, fix=f'e.g. {key} = ["calib"]'
            )
        lists[key] = frozenset(names)
    both = sorted(lists["on"] & lists["off"])
    if both:
        raise HarnessError(
            f"task(s) both on and off in [ladder]: {', '.join(both)}", where=where, fix="list each task once"
        )
    return LadderSettings(default, lists["on"], lists["off"])
