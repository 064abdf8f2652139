"""Adaptive-overfitting guard page: each org's best score under the Ladder (Blum & Hardt 2015) next
to its raw best, and the history of its submissions as a step chart (harness/ladder.py)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from common import (
    EMPTY_STORE,
    PLOT_CONFIG,
    TIER_HELP,
    badges,
    chart_text,
    code,
    csv_download,
    direction,
    metric_caption,
    model_url,
    plain,
    query,
    safe_file_name,
    snapshot,
    tier_filter,
)

from harness.errors import HarnessError
from harness.ladder import SETTINGS_FILE, LadderSettings, load_settings

INTRO = (
    "Contributors see their scores and resubmit; keeping the best of many noisy scores, or combining the "
    "submissions that happened to score well, overfits the public test set. The guard is the parameter-free "
    'Ladder of Blum & Hardt ("The Ladder: A Reliable Leaderboard for Machine Learning Competitions", ICML 2015): '
    "an org's shown best moves only when a new submission beats it by more than the standard error of their "
    "difference, and the shown value is rounded to that precision."
)

HOW = """
**How the guard works.** Per org (the part of the model id before `/`) and board, every ranked run of the
chosen trust tiers counts as a submission, in ingest order, superseded runs included (each was a look at
the test set); runs made with `--limit` are never ranked and do not count.

- A submission replaces the shown best only when its value beats the **shown** value by more than its
  **threshold** *s* and beats the best's own value. The first submission is always shown.
- *s* is the standard error of the difference between the submission and the shown best: the standard
  deviation of the difference of their bootstrap distributions, resample by resample, when both stored
  one on the same resamples (same seed, number of resamples and data; the paper's std of per-sample loss
  differences / sqrt(n)). Otherwise sqrt(se₁² + se₂²) from each run's own standard error (bootstrap
  spread, stderr or 95% interval), which is stricter; a run without any interval is compared by value.
- The shown value is the submission's value rounded to the decimal place of *s* (the largest power of ten
  not above it), so it carries no digits that are noise and never moves the wrong way.
- What it buys: resubmitting, or combining submissions that scored well by chance, no longer moves the
  board; a real improvement (larger than the noise) still does. The repository's `bench/uncertainty.py`
  (section *ladder*) runs Blum & Hardt's boosting attack against a naive board and the guard.
- Which boards are guarded: all, unless `leaderboard.toml` at the repository root says otherwise
  (`[ladder]` with `default`, `on` and `off`, lists of task names). A board with the guard off shows
  raw values; this page still shows what the guard would show.
"""

RULE_TEXT = {
    "paired": "by a paired bootstrap (shared resamples)",
    "unpaired": "by unpaired standard errors (no shared resamples)",
    "value": "by value alone (no interval)",
}


def settings_file() -> tuple[Path, bool]:
    """`--ladder-config PATH` after `streamlit run app/leaderboard.py --`, else $HARNESS_LADDER_CONFIG
    (both must exist), else leaderboard.toml in the working directory (optional)."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--ladder-config")
    known, _ = parser.parse_known_args(sys.argv[1:])
    explicit = known.ladder_config or os.environ.get("HARNESS_LADDER_CONFIG")
    return (Path(explicit), True) if explicit else (Path(SETTINGS_FILE), False)


def board_settings() -> tuple[LadderSettings, Path]:
    path, required = settings_file()
    try:
        return load_settings(path, required=required), path
    except HarnessError as error:
        st.warning(f"The board settings were not read ({plain(error.one_line())}): every board stays guarded.")
        return LadderSettings(), path


def step_chart(history: pd.DataFrame, metric: str, higher: object, org: str) -> go.Figure:
    """Raw values as points (filled: accepted), the shown value as a step line."""
    number = list(range(1, len(history) + 1))
    hover = [
        f"#{i} {chart_text(m)}<br>value %{{y:.4f}}<br>threshold {t:.4g} ({chart_text(r)})"
        for i, m, t, r in zip(number, history["model_id"], history["threshold"], history["rule"], strict=True)
    ]
    figure = go.Figure()
    accepted = history["accepted"].to_numpy(bool)
    for mask, name, symbol in ((accepted, "accepted: the shown best moved", "circle"),
                               (~accepted, "not accepted", "circle-open")):  # fmt: skip
        figure.add_trace(
            go.Scatter(
                x=[n for n, keep in zip(number, mask, strict=True) if keep],
                y=history["value"][mask],
                mode="markers",
                name=name,
                marker={"symbol": symbol, "size": 9},
                hovertemplate=[h for h, keep in zip(hover, mask, strict=True) if keep],
            )
        )
    figure.add_trace(
        go.Scatter(
            x=number,
            y=history["displayed"],
            mode="lines",
            line={"shape": "hv", "width": 2},
            name="shown by the guarded board",
            hovertemplate="after #%{x}: shown %{y}<extra></extra>",
        )
    )
    figure.update_xaxes(title="submission (ingest order)")
    figure.update_yaxes(title=f"{chart_text(metric)} ({direction(higher)})")
    figure.update_layout(
        title=f"Submissions of {chart_text(org)} and the guarded best",
        height=420,
        margin={"l": 10, "r": 10, "t": 50, "b": 40},
        legend={"orientation": "h", "y": -0.2},
    )
    return figure


snap = snapshot()
st.title("Adaptive-overfitting guard")
st.caption(INTRO)
overview = query(snap, "task_overview")
if overview.empty:
    st.info(EMPTY_STORE)
    st.stop()
task = st.selectbox("Task", overview["task"].tolist(), key="task", bind="query-params")
tiers = tier_filter()
settings, settings_path = board_settings()
board = query(snap, "ladder_board", task, tiers=tiers)
if board.orgs.empty:
    st.info(f"Task {code(task)} has no ranked runs of the chosen tiers (runs made with `--limit` are never ranked).")
    st.stop()
metric, higher = str(board.metric), board.higher_is_better
metrics = query(snap, "task_metrics", task).set_index("metric")
convention = metrics.loc[metric, "convention"] if metric in metrics.index else None
st.subheader(f"{plain(task)} · {plain(metric)}")
st.markdown(metric_caption(metric, higher, convention))
guarded = settings.enabled(task)
source = code(settings_path) if settings_path.exists() else "the default"
if guarded:
    st.caption(f"The guard is **on** for this board ({source}): the public board shows each org's guarded best.")
else:
    st.caption(
        f"The guard is **off** for this board ({source}): the public board shows raw values. "
        "The guarded values below are what it would show."
    )
counts = board.rules
compared = sum(counts.get(rule, 0) for rule in RULE_TEXT)
if compared:
    st.caption(
        f"Of {compared} submission(s) compared with a shown best: "
        + "; ".join(f"{counts[rule]} {text}" for rule, text in RULE_TEXT.items() if counts.get(rule))
        + "."
    )

orgs = board.orgs
shown = pd.DataFrame(
    {
        "org": orgs["org"],
        "public board": orgs["guarded_best"] if guarded else orgs["raw_best"],
        "guarded best": orgs["guarded_best"],
        "raw best": orgs["raw_best"],
        "raw - guarded": orgs["raw_best"] - orgs["guarded_best"],
        "submissions": orgs["submissions"],
        "accepted": orgs["accepted"],
        "shown model": [model_url(m, task) if isinstance(m, str) else None for m in orgs["shown_model"]],
        "raw best model": [model_url(m, task) if isinstance(m, str) else None for m in orgs["raw_best_model"]],
    }
)
st.dataframe(
    shown,
    hide_index=True,
    width="stretch",
    height=min(38 + 35 * len(shown), 560),
    column_config={
        "public board": st.column_config.NumberColumn(
            "public board", format="%.4g", help="what the public board shows: guarded when the guard is on"
        ),
        "guarded best": st.column_config.NumberColumn(
            "guarded best", format="%.4g", help="the Ladder's value, rounded to the precision of its threshold"
        ),
        "raw best": st.column_config.NumberColumn("raw best", format="%.4f", help="the best value submitted"),
        "raw - guarded": st.column_config.NumberColumn("raw - guarded", format="%.4f"),
        "submissions": st.column_config.NumberColumn("submissions", help="ranked runs of the org on this board"),
        "accepted": st.column_config.NumberColumn("accepted", help="how often the guarded best moved"),
        "shown model": st.column_config.LinkColumn("shown model", display_text=r"model=([^&]*)"),
        "raw best model": st.column_config.LinkColumn("raw best model", display_text=r"model=([^&]*)"),
    },
)
csv_download(orgs, safe_file_name("ladder", task, metric), key="download-ladder")

st.subheader("History of one org")
org = st.selectbox("Org", orgs["org"].tolist(), key="org", bind="query-params")
history = board.history[board.history["org"] == org].reset_index(drop=True)
st.plotly_chart(step_chart(history, metric, higher, str(org)), config=PLOT_CONFIG, key="chart-ladder")
table = pd.DataFrame(
    {
        "#": range(1, len(history) + 1),
        "model": [model_url(m, task) for m in history["model_id"]],
        "value": history["value"],
        "threshold": history["threshold"],
        "rule": history["rule"],
        "accepted": history["accepted"],
        "shown after": history["displayed"],
        "tier": badges(history["tier"]),
        "run": history["run_id"],
    }
)
st.dataframe(
    table,
    hide_index=True,
    width="stretch",
    height=min(38 + 35 * len(table), 420),
    column_config={
        "model": st.column_config.LinkColumn("model", display_text=r"model=([^&]*)"),
        "value": st.column_config.NumberColumn("value", format="%.4f", help=direction(higher)),
        "threshold": st.column_config.NumberColumn(
            "threshold", format="%.4g", help="the standard error of the difference with the shown best"
        ),
        "rule": st.column_config.TextColumn("rule", help="how the threshold was computed"),
        "accepted": st.column_config.CheckboxColumn("accepted", help="the shown best moved to this submission"),
        "shown after": st.column_config.NumberColumn("shown after", format="%.4g"),
        "tier": st.column_config.TextColumn("tier", help=TIER_HELP),
    },
)
csv_download(history, safe_file_name("ladder-history", task, metric, str(org)), key="download-ladder-history")
with st.expander("How the guard works"):
    st.markdown(HOW)
