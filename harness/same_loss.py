"""The same-loss comparison: among checkpoints of one family that reach the same loss, does flatness
explain their downstream performance? (The setting of Liu et al., "Same Pre-training Loss, Better
Downstream: Implicit Bias Matters for Language Models", ICML 2023.)

Which checkpoints count as "at the same loss" is one rule, stated in words wherever it is shown:

- "absolute": loss <= best + tolerance_nats, where best is the family's lowest loss;
- "ci": the loss lies inside the 95% interval of the best model's loss (no wider than the noise of
  the best measurement). A best without an interval admits only equal losses.

The statistic is the partial correlation of downstream and flatness given loss over the selected
checkpoints (`harness.stats.partial_correlation_with_ci`): the loss that remains within the tolerance
is controlled for, so a relation that only reflects "lower loss, better downstream" does not count.

Settings come from `leaderboard.toml` (the file `harness.ladder.SETTINGS_FILE` names):

    [same_loss]
    family = "synthlang-gpt2"   # the family the Correlations page opens with
    tolerance_nats = 0.05       # the default tolerance of the "absolute" rule

Without a `family` (or when the store has no such family) the page opens with the family that has
the most models with both a held-out loss (task lm_loss) and a flatness run.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pandas as pd

from harness.errors import HarnessError

#: the default tolerance of the "absolute" rule (nats of held-out loss)
DEFAULT_TOLERANCE_NATS = 0.05
#: the tasks whose main metrics the comparison needs by default: held-out loss and flatness
LOSS_TASK, FLATNESS_TASK = "lm_loss", "flatness"
Rule = Literal["absolute", "ci"]
RULES: tuple[Rule, ...] = ("absolute", "ci")


@dataclass(frozen=True)
class SameLossSettings:
    """The `[same_loss]` table of leaderboard.toml (defaults when absent)."""

    family: str | None = None
    tolerance_nats: float = DEFAULT_TOLERANCE_NATS


def load_same_loss_settings(path: Path | None, *, required: bool = False) -> SameLossSettings:
    """The `[same_loss]` settings in `path`; defaults when `path` is None, or does not exist and is not
    `required`. A malformed file or value is a HarnessError naming the key."""
    if path is None or (not required and not path.exists()):
        return SameLossSettings()
    where = str(path)
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise HarnessError("the board settings file does not exist", where=where, fix="create it or omit it") from None
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise HarnessError(f"cannot read the board settings: {error}", where=where, fix="write valid TOML") from None
    table = data.get("same_loss", {})
    if not isinstance(table, dict):
        raise HarnessError("[same_loss] must be a table", where=where, fix="write `[same_loss]` followed by its keys")
    unknown = sorted(set(table) - {"family", "tolerance_nats"})
    if unknown:
        raise HarnessError(
            f"unknown key(s) in [same_loss]: {', '.join(unknown)}", where=where, fix="use family and tolerance_nats"
        )
    family = table.get("family")
    if family is not None and (not isinstance(family, str) or not family.strip()):
        raise HarnessError("[same_loss] family must be a non-empty string", where=where, fix='e.g. family = "gpt"')
    tolerance = table.get("tolerance_nats", DEFAULT_TOLERANCE_NATS)
    if isinstance(tolerance, bool) or not isinstance(tolerance, int | float) or not 0 <= tolerance < math.inf:
        raise HarnessError(
            "[same_loss] tolerance_nats must be a number >= 0", where=where, fix="e.g. tolerance_nats = 0.05"
        )
    return SameLossSettings(family, float(tolerance))


def default_family(coverage: pd.DataFrame, configured: str | None = None) -> tuple[str | None, str]:
    """The family the same-loss view opens with, and why (a phrase for the page).

    `coverage` has columns family and models (how many models of the family have every task the
    comparison needs, as `Store.family_coverage` returns it). The configured family wins when the
    store has it (with any models); otherwise the family with the most such models (ties: by name).
    None when no family has any.
    """
    known = dict(zip(coverage["family"], coverage["models"].astype(int), strict=True))
    if configured is not None and configured in known:
        return configured, "set in the board settings"
    candidates = sorted(((-m, f) for f, m in known.items() if m > 0))
    if not candidates:
        return None, "no family has models with both runs"
    family = candidates[0][1]
    reason = "the family with the most models that have both a held-out loss and a flatness run"
    if configured is not None:
        reason = f"the family set in the board settings is not in the store; {reason}"
    return family, reason


@dataclass(frozen=True)
class SameLossSelection:
    """The checkpoints at the same loss. mask: per row of the input, selected or not; best: the model
    with the lowest loss (its value and interval); upper: the largest loss admitted; rule: the rule
    in words ("within 0.05 nats of the best (3.079)", ...)."""

    mask: pd.Series
    best: str
    best_loss: float
    best_ci_low: float
    best_ci_high: float
    upper: float
    lower: float
    rule: str


def select_same_loss(losses: pd.DataFrame, rule: Rule = "absolute", tolerance_nats: float = 0.05) -> SameLossSelection:
    """Which models are at the same loss as the best (lowest loss) of `losses`.

    `losses` has columns model_id, value, ci_low, ci_high (one row per model, finite values). Rule
    "absolute": value <= best + tolerance_nats; rule "ci": ci_low(best) <= value <= ci_high(best),
    the best's own 95% interval (a best without one admits only its own value). Ties for the best
    are broken by model id.
    """
    if losses.empty:
        raise ValueError("no losses to select from")
    if rule not in RULES:
        raise ValueError(f"unknown rule {rule!r}; use one of {RULES}")
    if not (tolerance_nats >= 0 and math.isfinite(tolerance_nats)):
        raise ValueError(f"tolerance_nats must be a finite number >= 0, got {tolerance_nats}")
    ordered = losses.sort_values(["value", "model_id"])
    top = ordered.iloc[0]
    best_loss = float(top["value"])
    ci_low, ci_high = _float(top["ci_low"]), _float(top["ci_high"])
    values = losses["value"].astype(float)
    if rule == "absolute":
        lower, upper = best_loss, best_loss + tolerance_nats
        text = f"within {tolerance_nats:g} nats of the best ({best_loss:.4g}): loss <= {upper:.4g}"
    elif math.isnan(ci_low) or math.isnan(ci_high):
        lower = upper = best_loss
        text = f"equal to the best ({best_loss:.4g}), which has no interval"
    else:
        lower, upper = min(ci_low, best_loss), max(ci_high, best_loss)
        text = f"inside the 95% interval of the best ({best_loss:.4g} [{ci_low:.4g}, {ci_high:.4g}])"
    # A hair of slack for values that equal the bound up to rounding (e.g. the tolerance itself).
    slack = 1e-12 * max(1.0, abs(upper))
    mask = (values >= lower - slack) & (values <= upper + slack)
    return SameLossSelection(mask, str(top["model_id"]), best_loss, ci_low, ci_high, upper, lower, text)


def _float(value: object) -> float:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan
    return number
