"""Adaptive-overfitting guard page: each org's best score under the Ladder (Blum & Hardt 2015) next
to its raw best, and the history of its submissions as a step chart (harness/ladder.py)."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from common import (
    EMPTY_STORE,
    TIER_HELP,
    badges,
    board_settings,
    chart_text,
    code,
    csv_download,
    direction,
    metric_caption,
    plain,
    plot,
    query,
    safe_file_name,
    snapshot,
)
from labels import axis_title
from widgets import show_table, tier_filter, url_choice

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


def step_chart(history: pd.DataFrame, metric: str, higher: object, org: str, task: str = "") -> go.Figure:
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
    figure.update_yaxes(title=chart_text(axis_title(f"{task}/{metric}", higher), limit=None))
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
task = url_choice("Task", overview["task"].tolist(), key="task", what="tasks in the store")
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
        "shown model": orgs["shown_model"],
        "raw best model": orgs["raw_best_model"],
    }
)
show_table(
    shown,
    key="orgs",
    model_columns=["shown model", "raw best model"],
    model_params={"task": task},
    column_config={
        "public board": st.column_config.NumberColumn(
            "public", format="%.4g", help="what the public board shows: guarded when the guard is on"
        ),
        "guarded best": st.column_config.NumberColumn(
            "guarded",
            format="%.4g",
            help="the guarded best: the Ladder's value, rounded to the precision of its threshold",
        ),
        "raw best": st.column_config.NumberColumn("raw", format="%.4f", help="the raw best: the best value submitted"),
        "raw - guarded": st.column_config.NumberColumn("raw − guarded", format="%.4f"),
        "submissions": st.column_config.NumberColumn("runs", help="submissions: ranked runs of the org on this board"),
        "accepted": st.column_config.NumberColumn("accepted", help="how often the guarded best moved"),
    },
)
csv_download(orgs, safe_file_name("ladder", task, metric), key="download-ladder")

st.subheader("History of one org")
org = url_choice("Org", orgs["org"].tolist(), key="org", what="orgs on this board")
history = board.history[board.history["org"] == org].reset_index(drop=True)
plot(step_chart(history, metric, higher, str(org), task), key="chart-ladder")
table = pd.DataFrame(
    {
        "#": range(1, len(history) + 1),
        "model": history["model_id"],
        "value": history["value"],
        "threshold": history["threshold"],
        "rule": history["rule"],
        "accepted": history["accepted"],
        "shown after": history["displayed"],
        "tier": badges(history["tier"]),
    }
)
show_table(
    table,
    key="history",
    model_columns=["model"],
    model_params={"task": task},
    page_key="history_page",
    column_config={
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
