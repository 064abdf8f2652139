"""The same-loss family as the harness measures it: the table and statistics of docs/lm.md.

Reads a store (default: build/shipped/results.duckdb, which `make shipped` writes; or any store with
`--store`) and prints, for the family (default: the one leaderboard.toml names), one row per checkpoint
(tokens seen, held-out loss with its 95% CI, minimal pairs, multiple choice, Hessian trace with its CI,
the Hutchinson estimate, the loss increase under weight noise 0.1), then what the same-loss view shows:
the checkpoints within the tolerance of the best loss, and among them Spearman's rho of the trace with
each downstream task and the partial correlations of downstream and trace given loss, with 95%
bootstrap CIs (`harness.stats`, 1,000 resamples, seed 0; the same functions as the app).

    python bench/same_loss.py [--store PATH] [--family NAME] [--tolerance 0.05]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from common import Row

from harness.ladder import SETTINGS_FILE
from harness.same_loss import load_same_loss_settings, select_same_loss
from harness.stats import correlation_with_ci, partial_correlation_with_ci
from harness.store import open_store

ROOT = Path(__file__).resolve().parents[1]
COLUMNS = {
    "loss": ("lm_loss", "loss_nats"),
    "pairs": ("synth_blimp", "lm_eval.acc"),
    "mc": ("synth_mc", "lm_eval.acc"),
    "trace": ("flatness", "hessian_trace"),
    "hutchinson": ("flatness", "hessian_trace_hutchinson"),
    "noise": ("flatness", "noise_loss_increase.0.1"),
}


def family_table(store_path: Path, family: str) -> pd.DataFrame:
    """One row per checkpoint of `family` with a training run: the measurements above (NaN if absent)."""
    with open_store(store_path, read_only=True) as store:
        table = store.checkpoint_series(families=[family]).set_index("model_id")
        for name, (task, metric) in COLUMNS.items():
            rows = store.board_rows([task], metric, families=[family], slim=True).set_index("model_id")
            table[name] = rows["value"]
            table[f"{name}_lo"], table[f"{name}_hi"] = rows["ci_low"], rows["ci_high"]
    return table.sort_values(["training_run", "step"])


def markdown(table: pd.DataFrame) -> str:
    lines = [
        "| checkpoint | tokens seen | loss (nats) [95% CI] | minimal pairs | multiple choice "
        "| Hessian trace [95% CI] | Hutchinson | noise 0.1 |",
        "| --- | ---: | --- | ---: | ---: | --- | ---: | ---: |",
    ]
    for model_id, row in table.iterrows():
        name = str(model_id).split("/", 1)[-1]
        lines.append(
            f"| {name} | {row['tokens_seen'] / 1e6:.2f}M | {row['loss']:.4f} [{row['loss_lo']:.4f}, "
            f"{row['loss_hi']:.4f}] | {row['pairs']:.3f} | {row['mc']:.3f} | {row['trace']:.0f} "
            f"[{row['trace_lo']:.0f}, {row['trace_hi']:.0f}] | {row['hutchinson']:.0f} | {row['noise']:.4f} |"
        )
    return "\n".join(lines)


def same_loss_statistics(table: pd.DataFrame, tolerance: float) -> list[str]:
    data = table.dropna(subset=["loss", "trace", "pairs", "mc"])
    losses = data.reset_index()[["model_id", "loss", "loss_lo", "loss_hi"]]
    selection = select_same_loss(
        losses.rename(columns={"loss": "value", "loss_lo": "ci_low", "loss_hi": "ci_high"}), "absolute", tolerance
    )
    chosen = data[selection.mask.to_numpy()].sort_values("loss")  # the order the app resamples in
    out = [
        f"{len(chosen)} of {len(data)} checkpoints {selection.rule}; losses {chosen['loss'].min():.4f}-"
        f"{chosen['loss'].max():.4f}, minimal pairs {chosen['pairs'].min():.3f}-{chosen['pairs'].max():.3f}, "
        f"multiple choice {chosen['mc'].min():.3f}-{chosen['mc'].max():.3f}, trace "
        f"{chosen['trace'].min():.0f}-{chosen['trace'].max():.0f}"
    ]
    if len(chosen) < 4:
        return [*out, "too few checkpoints at the same loss for correlations"]
    loss, trace = chosen["loss"].to_numpy(np.float64), chosen["trace"].to_numpy(np.float64)
    for task in ("mc", "pairs"):
        down = chosen[task].to_numpy(np.float64)
        rho = correlation_with_ci(trace, down, "spearman", seed=0)
        out.append(f"Spearman rho(trace, {task}) = {rho.estimate:+.2f} [{rho.ci_low:+.2f}, {rho.ci_high:+.2f}]")
        for method in ("pearson", "spearman"):
            part = partial_correlation_with_ci(down, trace, loss, method, seed=0)
            out.append(
                f"partial {method} ({task} ~ trace | loss) = {part.estimate:+.2f} [{part.ci_low:+.2f}, {part.ci_high:+.2f}]"
            )
    return out


def run() -> list[Row]:
    """`make bench`: the same-loss statistics of the shipped family as rows (none without build/shipped)."""
    store = ROOT / "build" / "shipped" / "results.duckdb"
    if not store.exists():
        print(f"bench/same_loss.py: no {store} (run `make shipped`): skipped")
        return []
    settings = load_same_loss_settings(ROOT / SETTINGS_FILE)
    table = family_table(store, settings.family or "synthlang-same-loss")
    return [Row("same_loss", line, float("nan"), "") for line in same_loss_statistics(table, settings.tolerance_nats)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", type=Path, default=ROOT / "build" / "shipped" / "results.duckdb")
    parser.add_argument("--family", default=None, help="default: [same_loss] family of leaderboard.toml")
    parser.add_argument("--tolerance", type=float, default=None, help="nats; default: leaderboard.toml's, else 0.05")
    args = parser.parse_args()
    settings = load_same_loss_settings(ROOT / SETTINGS_FILE)
    family = args.family or settings.family or "synthlang-same-loss"
    tolerance = settings.tolerance_nats if args.tolerance is None else args.tolerance
    table = family_table(args.store, family)
    print(f"family {family} in {args.store} ({len(table)} checkpoints)\n")
    print(markdown(table))
    print()
    for line in same_loss_statistics(table, tolerance):
        print(f"- {line}")


if __name__ == "__main__":
    main()
