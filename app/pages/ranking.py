"""Leaderboard page: one table per task and metric with significance-aware ranks, or the mean rank across tasks."""

from __future__ import annotations

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
    family_filters,
    metric_caption,
    model_url,
    plain,
    query,
    safe_file_name,
    short_name,
    snapshot,
    tier_filter,
)

from harness.trust import BADGES, TIERS

PER_TASK, AGGREGATE = "Per task", "Mean rank across tasks"
TOP_IN_CHART = 25
CHART_BY_DEFAULT_UP_TO = 300

RANK_RULE = """
**How ranks are decided.** A model's rank is **1 + the number of models significantly better than
it** at the 95% level, so models that no other model beats significantly share rank 1, and a tie
never hides a model that is significantly worse than the one above.

- *Paired bootstrap* (used when possible): every run stores the bootstrap distribution of its main
  metric. Two runs on the same data (same dataset fingerprints) with the same seed and the same
  number of resamples used the same resamples, so the difference of their distributions,
  resample by resample, is a paired-bootstrap distribution of the difference. Model A is
  significantly better than B when the 95% percentile interval of A - B (oriented so that positive
  means better) lies above 0.
- *Fallback*: for every other pair (another metric than the main one, runs with different seeds or
  data, tables of more than 300 models), A is significantly better than B when their 95% CIs do not
  overlap. This is conservative: it ties more models than a paired test would.
- A model without a CI is compared by its value alone. Ties are not transitive: A can beat C while
  B ties with both. The "paired test" column says which models were compared by the paired test.
- Runs made with `--limit` are never ranked; each model's newest ranked run of the task is used.
- With a family, tag or trust-tier filter, ranks are recomputed among the models shown.
"""

TIER_RULE = f"""
Every result carries a **trust tier**, decided when it is ingested and raised by verification
(the repository's `docs/trust.md` has the details):

- **{BADGES["verified"]}**: CI re-ran the checkpoint on a subset of samples chosen by a seed nobody
  knew in advance, compared those samples with the submitted ones and re-scored every metric
  (`harness verify`).
- **{BADGES["re-scored"]}**: the per-sample outputs are bound to the task's own data (its sample ids,
  labels from the dataset, its fingerprints), and every metric was recomputed from them by the
  task's scoring code.
- **{BADGES["self-reported"]}**: everything else: results imported from other tools and runs on data
  the harness cannot read. Nobody checked these numbers, so they are not comparable with the others.

Boards rank verified and re-scored results together. Self-reported results are hidden until you
add the tier to the *Trust tiers* filter; ranks are then recomputed among everything shown.
"""


def per_task(snap: object, overview: pd.DataFrame, families: list[str], tags: list[str], tiers: list[str]) -> None:
    tasks = overview["task"].tolist()
    info = overview.set_index("task")
    left, right = st.columns(2)
    task = left.selectbox(
        "Task",
        tasks,
        key="task",
        bind="query-params",
    )
    metrics = query(snap, "task_metrics", task)
    if metrics.empty:
        st.info(f"Task {code(task)} has no ranked runs (only runs made with `--limit`, which are never ranked).")
        return
    names = metrics["metric"].tolist()
    main = info.loc[task, "main_metric"]
    metric = right.selectbox(
        "Metric",
        names,
        index=names.index(main) if main in names else 0,
        key="metric",
        bind="query-params",
    )
    board = query(snap, "ranked_leaderboard", task, metric, families=families, tags=tags, tiers=tiers)
    table = board.table
    meta = metrics.set_index("metric")
    higher = meta.loc[metric, "higher_is_better"]
    st.subheader(f"{plain(task)} · {plain(metric)}")
    st.markdown(
        metric_caption(metric, higher, meta.loc[metric, "convention"])
        + ("" if metric == main else f" (The task's main metric is {code(main)}.)")
    )
    hidden = [t for t in TIERS if t not in tiers]
    if hidden:  # models whose only results on this board are of tiers not shown: say so, never silently
        others = query(snap, "board_rows", [task], metric, families=families, tags=tags, tiers=hidden)
        n_hidden = len(set(others["model_id"]) - set(table["model_id"]))
        if n_hidden:
            st.caption(
                f"{n_hidden} model(s) with results of this task only in the tier(s) "
                f"{', '.join(BADGES[t] for t in hidden)} are not shown: add the tier to the *Trust tiers* filter."
            )
    if table.empty:
        st.info("No ranked run matches the filters (task, family, tags and trust tiers).")
        return
    n_unranked = int(info.loc[task, "unranked_runs"])
    if board.over_paired_limit:
        method = f"{len(table):,} models: more than the paired-test limit, so ranks use non-overlapping 95% CIs."
    elif board.paired_models == len(table):
        method = "Every model was compared by a paired bootstrap test of the difference (95%)."
    elif board.paired_models:
        method = (
            f"{board.paired_models} of {len(table)} models were compared by a paired bootstrap test; "
            "the others (no paired distribution: another seed, other data, or not the main metric) by "
            "non-overlapping 95% CIs."
        )
    else:
        method = "No paired bootstrap distributions for this metric: ranks use non-overlapping 95% CIs."
    st.caption(
        f"Rank = 1 + number of models significantly better (95%); equal ranks are ties. {method} "
        + (f"{n_unranked} run(s) made with `--limit` are not ranked. " if n_unranked else "")
    )
    shown = pd.DataFrame(
        {
            "rank": table["rank"],
            "model": [model_url(m, task) for m in table["model_id"]],
            "family": table["family"],
            metric: table["value"],
            "CI low": table["ci_low"],
            "CI high": table["ci_high"],
            "n": table["n"],
            "parameters": table["n_parameters"],
            "paired test": table["paired"],
            "tier": badges(table["tier"]),
            "tags": table["tags"],
        }
    )
    st.dataframe(
        shown,
        hide_index=True,
        width="stretch",
        height=min(38 + 35 * len(shown), 560),
        column_config={
            "rank": st.column_config.NumberColumn("rank", help="1 + number of models significantly better"),
            "model": st.column_config.LinkColumn("model", display_text=r"model=([^&]*)", help="open the model page"),
            metric: st.column_config.NumberColumn(metric, format="%.4f", help=direction(higher)),
            "CI low": st.column_config.NumberColumn("95% CI low", format="%.4f"),
            "CI high": st.column_config.NumberColumn("95% CI high", format="%.4f"),
            "n": st.column_config.NumberColumn("n", help="evaluation samples (or tokens, prompts, items)"),
            "parameters": st.column_config.NumberColumn("parameters", format="compact"),
            "tags": st.column_config.ListColumn("tags"),
            "paired test": st.column_config.CheckboxColumn("paired test", help="compared by a paired bootstrap"),
            "tier": st.column_config.TextColumn("tier", help=TIER_HELP),
        },
    )
    export = table.drop(columns=["is_main"]).assign(tags=table["tags"].map(lambda t: ";".join(t)))
    csv_download(export, safe_file_name("leaderboard", task, metric), key="download-board")
    # Drawing the chart loads plotly.js (about 1 s per page load on a slow CPU): on by default for boards
    # of up to CHART_BY_DEFAULT_UP_TO models, a click away for larger ones.
    if st.toggle(
        f"Chart the top {TOP_IN_CHART} with their 95% CIs",
        value=len(table) <= CHART_BY_DEFAULT_UP_TO,
        key="chart",
        bind="query-params",
    ):
        st.plotly_chart(
            _interval_chart(table.head(TOP_IN_CHART), metric, higher), config=PLOT_CONFIG, key="chart-board"
        )
    with st.expander("How ranks are decided"):
        st.markdown(RANK_RULE)


def _interval_chart(table: pd.DataFrame, metric: str, higher: object) -> go.Figure:
    """The top models' values with their 95% CIs, best at the top, coloured by family."""
    figure = go.Figure()
    labels = [
        f"{r}. {chart_text(short_name(m), limit=None)}" for r, m in zip(table["rank"], table["model_id"], strict=True)
    ]
    for family, rows in table.assign(label=labels).groupby("family", sort=True):
        low = (rows["value"] - rows["ci_low"]).fillna(0)
        high = (rows["ci_high"] - rows["value"]).fillna(0)
        figure.add_trace(
            go.Scatter(
                x=rows["value"],
                y=rows["label"],
                mode="markers",
                name=chart_text(family),
                error_x={"type": "data", "array": high, "arrayminus": low, "thickness": 1.5},
                hovertemplate="%{y}<br>" + chart_text(metric) + " = %{x:.4f}<extra>" + chart_text(family) + "</extra>",
            )
        )
    figure.update_yaxes(categoryorder="array", categoryarray=labels[::-1], title=None)
    figure.update_xaxes(title=f"{chart_text(metric)} ({direction(higher)}), 95% CI")
    figure.update_layout(
        title=f"Top {len(table)} by rank, with 95% CIs",
        height=120 + 24 * len(table),
        margin={"l": 10, "r": 10, "t": 50, "b": 40},
        legend_title_text="family",
    )
    return figure


def _default_tasks(task_sets: pd.DataFrame) -> list[str]:
    """The task set that covers the most (models x tasks); models with a superset count as covering it."""
    sets = [(tuple(t), int(m)) for t, m in zip(task_sets["tasks"], task_sets["models"], strict=True)]
    best: tuple[int, list[str]] = (0, [])
    for tasks, _ in sets:
        if len(tasks) < 2:
            continue
        covered = sum(m for other, m in sets if set(other) >= set(tasks))
        if covered >= 2 and covered * len(tasks) > best[0]:
            best = (covered * len(tasks), list(tasks))
    return best[1] or (list(sets[0][0]) if sets else [])


def aggregate(snap: object, overview: pd.DataFrame, families: list[str], tags: list[str], tiers: list[str]) -> None:
    task_sets = query(snap, "task_sets", families=families, tags=tags, tiers=tiers)
    tasks = st.multiselect(
        "Tasks to aggregate (each task's main metric)",
        overview["task"].tolist(),
        default=_default_tasks(task_sets),
        key="tasks",
        bind="query-params",
    )
    if not tasks:
        st.info("Choose at least one task.")
        return
    table, missing = query(snap, "mean_ranks", tasks, families=families, tags=tags, tiers=tiers)
    info = overview.set_index("task")
    st.subheader(f"Mean rank over {len(tasks)} task{'s' if len(tasks) > 1 else ''}")
    st.caption(
        "Per task: the significance-aware rank on its main metric ("
        + "; ".join(
            f"{code(t)}: {plain(info.loc[t, 'main_metric'])}, {direction(info.loc[t, 'higher_is_better'])}"
            for t in tasks
        )
        + "). Only models with a ranked run on every selected task are aggregated, and each task's ranks are "
        "recomputed among them, so every mean is over the same tasks and competitors. Lower mean rank is better; "
        "`overall` ranks the means (equal means share a rank)."
    )
    if table.empty:
        st.info("No model has ranked runs on all the selected tasks. Choose fewer tasks.")
    else:
        weakest = _weakest_tiers(query(snap, "board_rows", tasks, families=families, tags=tags, tiers=tiers))
        shown = table.assign(model=[model_url(m) for m in table["model_id"]], tier=table["model_id"].map(weakest))
        shown = shown[["overall", "model", "family", "mean_rank", "tier", *tasks]]
        st.dataframe(
            shown,
            hide_index=True,
            width="stretch",
            height=min(38 + 35 * len(shown), 560),
            column_config={
                "model": st.column_config.LinkColumn("model", display_text=r"model=([^&]*)"),
                "mean_rank": st.column_config.NumberColumn("mean rank", format="%.2f", help="lower is better"),
                "tier": st.column_config.TextColumn(
                    "tier", help="the weakest trust tier among the model's runs aggregated here. " + TIER_HELP
                ),
                **{
                    t: st.column_config.NumberColumn(t, help=f"rank on {plain(info.loc[t, 'main_metric'])}")
                    for t in tasks
                },
            },
        )
        csv_download(
            table.assign(tier=table["model_id"].map(weakest)),
            safe_file_name("mean-rank", *tasks),
            key="download-aggregate",
        )
        top = table.head(TOP_IN_CHART)
        figure = go.Figure(
            go.Heatmap(
                z=top[tasks].to_numpy(),
                x=[chart_text(t, limit=None) for t in tasks],
                y=[
                    f"{o}. {chart_text(short_name(m), limit=None)}"
                    for o, m in zip(top["overall"], top["model_id"], strict=True)
                ],
                colorscale="Blues_r",
                colorbar={"title": "rank"},
                text=top[tasks].to_numpy(),
                texttemplate="%{text}",
                hovertemplate="%{y}<br>%{x}: rank %{z}<extra></extra>",
            )
        )
        figure.update_yaxes(autorange="reversed")
        figure.update_layout(
            title=f"Per-task ranks of the top {len(top)} (lower is better)",
            height=140 + 26 * len(top),
            margin={"l": 10, "r": 10, "t": 50, "b": 40},
        )
        st.plotly_chart(figure, config=PLOT_CONFIG, key="chart-aggregate")
    if not missing.empty:
        with st.expander(f"{len(missing)} model(s) not aggregated: no ranked run on some selected task"):
            st.dataframe(missing, hide_index=True, width="stretch")
            csv_download(missing, safe_file_name("not-aggregated", *tasks), key="download-missing")
    with st.expander("How ranks are decided"):
        st.markdown(RANK_RULE)


def _weakest_tiers(rows: pd.DataFrame) -> pd.Series:
    """model_id -> the badge of the least trusted tier among its board rows (a mean is as good as its worst part)."""
    order = {tier: i for i, tier in enumerate(TIERS)}  # verified, re-scored, self-reported
    weakest = rows.groupby("model_id")["tier"].agg(lambda tiers: max(tiers, key=lambda t: order.get(t, len(order))))
    return badges(weakest)


snap = snapshot()
st.title("Leaderboard")
overview = query(snap, "task_overview")
if overview.empty:
    st.info(EMPTY_STORE)
    st.stop()
view = st.segmented_control(
    "View", [PER_TASK, AGGREGATE], default=PER_TASK, key="view", bind="query-params", required=True
)
families, tags = family_filters(snap)
tiers = tier_filter()
if view == AGGREGATE:
    aggregate(snap, overview, families, tags, tiers)
else:
    per_task(snap, overview, families, tags, tiers)
with st.expander("Trust tiers: verified, re-scored, self-reported"):
    st.markdown(TIER_RULE)
