"""Leaderboard page: one table per task and metric with significance-aware ranks, or the mean rank across tasks."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from boards import ood_set_columns, task_header
from common import (
    EMPTY_STORE,
    FLAT,
    INTERVAL_HELP,
    OUTSIDE,
    TIER_HELP,
    badges,
    board_settings,
    chart_text,
    code,
    csv_download,
    direction,
    interval_notes,
    metric_caption,
    plain,
    plot,
    query,
    safe_file_name,
    short_name,
    snapshot,
)
from labels import axis_title, colours
from widgets import family_filters, show_table, tier_filter, url_choice, url_flag, url_multichoice

from harness.metrics import is_diagnostic
from harness.trust import BADGES, TIERS

PER_TASK, AGGREGATE = "Per task", "Mean rank across tasks"
TOP_IN_CHART = 25
CHART_BY_DEFAULT_UP_TO = 300

RANK_RULE = """
**How ranks are decided.** Every pair of models on the board is tested, and the tests are corrected
together (Holm's step-down procedure at 5%), so **with probability at least 95% not one "A is
better than B" verdict on the whole board is wrong**, however many models it holds. A model's
**rank** is 1 + the number of models found better than it, then made monotone: a model never gets a
worse rank than a model with a worse value (equal values share a rank). The rank is the best
position the data allow, and **worst rank** the worst: with 95% confidence, for every model at
once, its true rank lies between the two.

- *Paired bootstrap* (used when possible): every run stores the bootstrap distribution of its main
  metric. Two runs on the same data (same dataset fingerprints) with the same seed and the same
  number of resamples used the same resamples, so the difference of their distributions,
  resample by resample, is a paired-bootstrap distribution of the difference. Its p-value is the
  larger of the studentized one (observed difference / bootstrap standard error, normal tails) and
  the percentile-bootstrap one (twice the share of resamples on the other side of 0).
- *Fallback*: every other pair (another metric than the main one, runs with different seeds or
  data, tables of more than 300 models) is tested from the two 95% CIs, conservatively: each
  half-width / 1.96 is a standard error, and their sum bounds the standard error of the difference
  whatever the two results' correlation. For a single pair this is exactly "the CIs do not overlap";
  on a board, the CIs must stay apart after widening to Holm's stricter level.
- A model without a CI is compared by its value alone. The "paired test" column says which models
  were compared by the paired test.
- Diagnostics (fitted parameters such as `temperature`, flatness measures such as `hessian_trace`,
  the reference's own perplexity, the ece's noise floor and its p-value) are shown with their CIs
  but never ranked, and never enter the mean rank.
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
    task = url_choice("Task", tasks, key="task", container=left, what="tasks in the store")
    metrics = query(snap, "task_metrics", task)
    if metrics.empty:
        st.info(f"Task {code(task)} has no ranked runs (only runs made with `--limit`, which are never ranked).")
        return
    names = metrics["metric"].tolist()
    main = info.loc[task, "main_metric"]
    metric = url_choice(
        "Metric", names, key="metric", default=main, container=right, what=f"metrics of {task}",
        format_func=lambda m: f"{m} (diagnostic, not ranked)" if is_diagnostic(str(m)) else str(m),
    )  # fmt: skip
    adapter = str(info.loc[task, "adapter"])
    by_reference = False
    if adapter == "compression":
        by_reference = url_flag(
            "Rank within each reference", key="by_reference", default=True, widget="toggle",
            help="a compressed variant is measured against its own reference: rank variants among those of the same "
            "reference (off: one board across references)",
        )  # fmt: skip
    if by_reference:
        board = query(snap, "ranked_by_reference", task, metric, families=families, tags=tags, tiers=tiers)
    else:
        board = query(snap, "ranked_leaderboard", task, metric, families=families, tags=tags, tiers=tiers)
    table = board.table
    meta = metrics.set_index("metric")
    higher = meta.loc[metric, "higher_is_better"]
    st.subheader(f"{plain(task)} · {plain(metric)}")
    task_header(snap, task, tiers)  # type: ignore[arg-type]
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
    limited = f"{n_unranked} run(s) made with `--limit` are not ranked. " if n_unranked else ""
    if board.diagnostic:
        st.caption(
            f"{code(metric)} is a **diagnostic** (a fitted parameter or a property of the model, not a measure "
            "of quality): values are shown with their CIs, sorted by value, and **not ranked**; this board never "
            "enters the mean rank. " + limited
        )
    else:
        if board.over_paired_limit:
            method = (
                f"{len(table):,} models: more than the paired-test limit, so pairs are tested from their 95% CIs "
                "(conservative)."
            )
        elif board.paired_models == len(table):
            method = "Every pair was compared by a paired bootstrap test of the difference."
        elif board.paired_models:
            method = (
                f"{board.paired_models} of {len(table)} models were compared by a paired bootstrap test; "
                "the other pairs (no paired distribution: another seed, other data, or not the main metric) from "
                "their 95% CIs (conservative)."
            )
        else:
            method = "No paired bootstrap distributions for this metric: pairs are tested from their 95% CIs."
        within = "Ranks are among the variants of the same reference (the reference column). " if by_reference else ""
        st.caption(
            f"Rank = 1 + number of models significantly better, with the error controlled over the whole board "
            f"(Holm, 5%: {board.significant_pairs:,} of {board.pairs:,} pairs significant), and never worse than "
            f"the rank of a model with a worse value; equal ranks are ties. {within}{method} " + limited
        )
    notes = interval_notes(table)
    details = url_flag(
        "More columns (unit, parameters, paired test, tags)", key="details", widget="toggle",
        help="the table fits a 1280-pixel screen without them; with them it scrolls sideways",
    )  # fmt: skip
    sets, set_columns, set_help = ood_set_columns(snap, task, metric, table, families, tags, tiers)  # type: ignore[arg-type]
    # A set column equal to the ranked metric would repeat it (e.g. the mean on the main OOD board).
    set_columns = [c for c in set_columns if not sets[c].reset_index(drop=True).equals(table["value"])]
    # Boards with extra columns (OOD sets, the reference) keep family and n under More columns, to fit 1280 px.
    compact = by_reference or bool(set_columns)
    unranked = table["rank"].astype("string").fillna("—") if board.diagnostic else table["rank"]
    columns: dict[str, object] = {"rank": unranked}
    columns["worst rank"] = (
        table["rank_worst"].astype("string").fillna("—") if board.diagnostic else table["rank_worst"]
    )
    if by_reference:
        columns["reference"] = table["reference"].fillna("(none)").map(short_name)
    columns["model"] = table["model_id"]
    if not compact:
        columns["family"] = table["family"]
    columns |= {metric: table["value"], "CI low": table["ci_low"], "CI high": table["ci_high"]}
    if not compact:
        columns["n"] = table["n"]
    shown = pd.DataFrame(columns)
    config = {
        "rank": st.column_config.Column(
            "rank", help="1 + number of models significantly better (Holm, 5% over the board), made monotone"
        ),
        "worst rank": st.column_config.Column(
            "worst",
            help="with 95% confidence, for every model at once, the true rank lies between rank and worst rank",
        ),
        "reference": st.column_config.TextColumn("reference", help="the reference model the variant is compared with"),
        metric: st.column_config.NumberColumn(
            metric, format="%.4f", help=plain(axis_title(f"{task}/{metric}", higher))
        ),
        "CI low": st.column_config.NumberColumn("CI low", format="%.4f", help="lower end of the 95% CI"),
        "CI high": st.column_config.NumberColumn("CI high", format="%.4f", help="upper end of the 95% CI"),
        "n": st.column_config.NumberColumn("n", help="independent units resampled (the unit: More columns)"),
        "unit": st.column_config.TextColumn("unit", help="what n counts: samples, documents, queries, prompts ..."),
        "interval": st.column_config.TextColumn("interval", help=INTERVAL_HELP),
        "parameters": st.column_config.NumberColumn("parameters", format="compact"),
        "tags": st.column_config.ListColumn("tags"),
        "paired test": st.column_config.CheckboxColumn("paired test", help="compared by a paired bootstrap"),
        "tier": st.column_config.TextColumn("tier", help=TIER_HELP),
    }
    guarded = None if board.diagnostic or metric != main else _guarded_values(snap, task, table, tiers)
    # Boards with extra columns (OOD sets, the reference) show it under More columns, to fit 1280 px.
    if guarded is not None and not compact:
        shown.insert(shown.columns.get_loc("CI high") + 1, "guarded", guarded.to_numpy())
    if guarded is not None:
        config["guarded"] = st.column_config.NumberColumn(
            "guarded",
            format="%.4g",
            help="the public figure of the model's org under the overfitting guard (the Ladder), on the row of the "
            "model it shows; empty on the org's other rows",
        )
    for column in set_columns:
        shown[column] = sets[column].to_numpy()
        label = column.split(": ", 1)[-1].replace(" (average)", " avg")  # the group: order, caption and tooltip
        config[column] = st.column_config.NumberColumn(label, format="%.3f", help=plain(set_help[column]))
    if notes.str.len().gt(0).any():
        shown["interval"] = notes
    shown["tier"] = badges(table["tier"])
    if details:
        if compact:
            shown["family"] = table["family"]
            shown["n"] = table["n"]
        shown["unit"] = table["unit"]
        shown["parameters"] = table["n_parameters"]
        shown["paired test"] = table["paired"]
        shown["tags"] = table["tags"]
        if guarded is not None and compact:
            shown["guarded"] = guarded.to_numpy()
    if set_columns:
        near = [c.split(": ", 1)[-1] for c in set_columns if c == "near" or c.startswith("near: ")]
        far = [c.split(": ", 1)[-1] for c in set_columns if c.startswith("far: ")]
        st.caption(
            "OOD sets side by side, the same metric and score on each: near-OOD "
            + (", ".join(code(n) for n in near) or "none")
            + "; far-OOD "
            + (", ".join(code(f) for f in far) or "none")
            + f"; then the averages ({direction(higher)}). Family and n: *More columns*."
        )
    elif by_reference:
        st.caption("Family and n: *More columns*.")
    if guarded is not None:
        st.caption(
            "The **overfitting guard** is on for this board: the public figure of each org is its guarded best "
            f"(column *guarded*{', under *More columns*' if compact else ''}, on the row of the model it shows), "
            "which moves only when a submission beats it "
            "significantly; the other columns are raw values. History per org: the *Overfitting guard* page."
        )
    show_table(shown, key="board", column_config=config, model_columns=["model"], model_params={"task": task},
               page_key="page")  # fmt: skip
    if notes.str.len().gt(0).any():
        st.caption(
            f"{int(notes.eq(OUTSIDE).sum())} value(s) lie outside their own 95% interval and "
            f"{int(notes.eq(FLAT).sum())} interval(s) have no width (see the interval column): " + INTERVAL_HELP
        )
    export = table.drop(columns=["is_main"]).assign(tags=table["tags"].map(lambda t: ";".join(t)))
    if set_columns:
        export = export.join(sets.reset_index(drop=True).set_axis(export.index))
    csv_download(export, safe_file_name("leaderboard", task, metric), key="download-board")
    # Drawing the chart loads plotly.js (about 1 s per page load on a slow CPU): on by default for boards
    # of up to CHART_BY_DEFAULT_UP_TO models, a click away for larger ones.
    if url_flag(
        f"Chart the top {TOP_IN_CHART} with their 95% CIs",
        key="chart",
        default=len(table) <= CHART_BY_DEFAULT_UP_TO,
        widget="toggle",
    ):
        plot(_interval_chart(table.head(TOP_IN_CHART), metric, higher, ranked=not board.diagnostic, task=task),
             key="chart-board")  # fmt: skip
    with st.expander("How ranks are decided"):
        st.markdown(RANK_RULE)


def _guarded_values(snap: object, task: str, table: pd.DataFrame, tiers: list[str]) -> pd.Series | None:
    """Per row: its org's guarded best where the row's model is the one the guard shows, else NaN; None
    when the guard is off for the board (leaderboard.toml) or it has no ladder."""
    settings, _ = board_settings()
    if not settings.enabled(task):
        return None
    ladder = query(snap, "ladder_board", task, tiers=tiers)
    if ladder.orgs.empty:
        return None
    shown_by = dict(zip(ladder.orgs["shown_model"], ladder.orgs["guarded_best"], strict=True))
    return table["model_id"].map(shown_by).astype("float64")


def _interval_chart(
    table: pd.DataFrame, metric: str, higher: object, *, ranked: bool = True, task: str = ""
) -> go.Figure:
    """The top models' values with their 95% CIs, best at the top, one colour per family (unranked: by value)."""
    figure = go.Figure()
    labels = [
        f"{r if ranked else i + 1}. {chart_text(short_name(m), limit=None)}"
        for i, (r, m) in enumerate(zip(table["rank"], table["model_id"], strict=True))
    ]
    palette = colours(sorted(table["family"].fillna("unknown").unique()))
    for family, rows in table.assign(label=labels, family=table["family"].fillna("unknown")).groupby(
        "family", sort=True
    ):
        low = (rows["value"] - rows["ci_low"]).fillna(0)
        high = (rows["ci_high"] - rows["value"]).fillna(0)
        figure.add_trace(
            go.Scatter(
                x=rows["value"],
                y=rows["label"],
                mode="markers",
                name=chart_text(family),
                marker={"size": 9, "color": palette[str(family)]},
                error_x={"type": "data", "array": high, "arrayminus": low, "thickness": 1.5},
                hovertemplate="%{y}<br>" + chart_text(metric) + " = %{x:.4f}<extra>" + chart_text(family) + "</extra>",
            )
        )
    figure.update_yaxes(categoryorder="array", categoryarray=labels[::-1], title=None)
    figure.update_xaxes(title=chart_text(f"{axis_title(f'{task}/{metric}', higher)}, with 95% CI", limit=None))
    figure.update_layout(
        title=f"Top {len(table)} by rank, with 95% CIs" if ranked else f"First {len(table)} by value, with 95% CIs",
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
    # Tasks whose main metric is a diagnostic never enter a mean rank, so the default leaves them out.
    diagnostic = {t for t, m in zip(overview["task"], overview["main_metric"], strict=True) if is_diagnostic(str(m))}
    quality_sets = task_sets.assign(tasks=[[t for t in ts if t not in diagnostic] for ts in task_sets["tasks"]])
    quality_sets = quality_sets[quality_sets["tasks"].map(len) > 0]
    tasks = url_multichoice(
        "Tasks to aggregate (each task's main metric; quality metrics only)",
        overview["task"].tolist(),
        default=_default_tasks(quality_sets),
        key="tasks",
        what="tasks in the store",
    )
    if not tasks:
        st.info("Choose at least one task.")
        return
    result = query(snap, "mean_ranks", tasks, families=families, tags=tags, tiers=tiers)
    table, missing = result.table, result.missing
    averaged = [t for t in tasks if t in set(result.averaged["task"])]
    info = overview.set_index("task")
    st.subheader(f"Mean rank over {len(averaged)} task{'s' if len(averaged) != 1 else ''}")
    if not result.excluded.empty:
        st.info(
            "Not averaged, because the task's main metric is a diagnostic (a fitted parameter or a property of the "
            "model, not a measure of quality): "
            + "; ".join(
                f"{code(t)} ({code(m)})"
                for t, m in zip(result.excluded["task"], result.excluded["metric"], strict=True)
            )
            + ". Diagnostic boards show the values without ranks."
        )
    if not averaged:
        st.info("None of the selected tasks has a quality metric as its main metric. Choose other tasks.")
        return
    st.caption(
        "Averaged over **quality metrics only** (diagnostics such as fitted parameters and flatness never enter): "
        "per task, the rank on its main metric ("
        + "; ".join(
            f"{code(t)}: {plain(info.loc[t, 'main_metric'])}, {direction(info.loc[t, 'higher_is_better'])}"
            for t in averaged
        )
        + "), with the error controlled per board (Holm, 5%). Only models with a ranked run on every averaged task "
        "are aggregated, and each task's ranks are recomputed among them, so every mean is over the same tasks and "
        "competitors. Lower mean rank is better; `overall` ranks the means (equal means share a rank). The mean "
        "itself carries no error guarantee."
    )
    tasks = averaged
    if table.empty:
        st.info("No model has ranked runs on all the selected tasks. Choose fewer tasks.")
    else:
        weakest = _weakest_tiers(query(snap, "board_rows", tasks, families=families, tags=tags, tiers=tiers))
        shown = table.assign(model=table["model_id"], tier=table["model_id"].map(weakest))
        shown = shown[["overall", "model", "family", "mean_rank", "tier", *tasks]]
        show_table(
            shown,
            key="aggregate",
            model_columns=["model"],
            page_key="page",
            column_config={
                "mean_rank": st.column_config.NumberColumn("mean rank", format="%.2f", help="lower is better"),
                "tier": st.column_config.TextColumn(
                    "tier", help="the weakest trust tier among the model's runs aggregated here. " + TIER_HELP
                ),
                **{
                    t: st.column_config.NumberColumn(
                        t, width="small", help=f"{plain(t)}: rank on {plain(info.loc[t, 'main_metric'])}"
                    )
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
                colorscale="Viridis",
                reversescale=True,
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
        plot(figure, key="chart-aggregate")
    if not missing.empty:
        with st.expander(f"{len(missing)} model(s) not aggregated: no ranked run on some selected task"):
            show_table(missing, key="missing", model_columns=["model_id"], page_key="missing_page")
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
view = url_choice("View", [PER_TASK, AGGREGATE], key="view", widget="segmented_control", what="views")
families, tags = family_filters(snap)
tiers = tier_filter()
if view == AGGREGATE:
    aggregate(snap, overview, families, tags, tiers)
else:
    per_task(snap, overview, families, tags, tiers)
with st.expander("Trust tiers: verified, re-scored, self-reported"):
    st.markdown(TIER_RULE)
