"""Model page: card, provenance, every metric, and the task artifacts as charts."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from common import (
    EMPTY_STORE,
    TIER_HELP,
    badges,
    chart_text,
    code,
    csv_download,
    direction,
    human_count,
    metric_caption,
    plain,
    plot,
    query,
    safe_file_name,
    short_name,
    snapshot,
)
from plotly.subplots import make_subplots
from series import series_view
from widgets import show_table, tier_filter, url_choice

from harness.trust import BADGES

MARGIN = {"l": 10, "r": 10, "t": 50, "b": 40}
CHART_KEYS = {"per_class": "per-class", "fdt_histogram": "fdt", "ranking": "rank"}  # element keys, as before


def card_summary(card: dict[str, Any], model_id: str, row: pd.Series) -> None:
    cols = st.columns([2, 1, 1, 1])
    cols[0].metric("Family", plain(card.get("family") or "unknown"))
    cols[1].metric("Parameters", human_count(card.get("n_parameters")))
    loss = card.get("pretrain_loss_nats")
    if loss is not None:
        cols[2].metric("Pre-training loss (card)", f"{loss:.4f} nats", help="self-reported on the model card")
    elif card.get("train_loss_nats") is not None:
        cols[2].metric("Training loss (card)", f"{card['train_loss_nats']:.4f} nats", help="final training loss")
    else:
        cols[2].metric("Training loss (card)", "not reported")
    cols[3].metric("Runs", f"{int(row['runs'])}", help=f"{int(row['unranked_runs'])} made with --limit (never ranked)")
    # Every card field is the submitter's text: plain() or code() (links only to this app's own pages).
    facts = [f"**kind** {code(card.get('kind') or 'unknown')}"]
    if card.get("trained_on"):
        facts.append(f"**trained on** {code(card['trained_on'])}")
    if card.get("reference"):
        facts.append(f"**reference** {code(card['reference'])}")
    if card.get("compression"):
        text = ", ".join(f"{plain(k)}={plain(v)}" for k, v in card["compression"].items())
        facts.append(f"**compression** {text}")
    if card.get("training_run"):
        step = f" at step {int(card['step']):,}" if isinstance(card.get("step"), int) else ""
        facts.append(f"**training run** {code(card['training_run'])}{step}")
    if card.get("tags"):
        facts.append("**tags** " + " ".join(code(t) for t in card["tags"]))
    st.markdown(" · ".join(facts))
    if card.get("reference"):  # links to this app's own pages, opened in this tab
        left, right = st.columns(2)
        left.page_link(
            "views/model.py", label=f"Reference model: {plain(card['reference'])}", icon=":material/deployed_code:",
            query_params={"model": str(card["reference"])},
        )  # fmt: skip
        if card.get("compression"):
            right.page_link(
                "views/compression.py", label="Compressed variants of the reference", icon=":material/compress:",
                query_params={"reference": str(card["reference"])},
            )  # fmt: skip
    if card.get("description"):
        st.caption(plain(card["description"]))
    if card.get("recipe"):
        st.markdown("**recipe** " + " · ".join(f"{plain(k)} {code(v)}" for k, v in card["recipe"].items()))
    with st.expander("Model card (JSON)"):
        st.json(card, expanded=True)


def runs_table(model_id: str, runs: pd.DataFrame) -> None:
    st.subheader("Runs")
    status = [
        "ranked (newest)" if latest else ("ranked, superseded" if ranked else f"not ranked: --limit {int(limit)}")
        for latest, ranked, limit in zip(runs["latest_ranked"], runs["ranked"], runs["sample_limit"], strict=True)
    ]
    shown = pd.DataFrame(
        {
            "task": runs["task"],
            "status": status,
            "tier": badges(runs["tier"]),
            "main metric": runs["main_metric"],
            "value": runs["value"],
            "CI low": runs["ci_low"],
            "CI high": runs["ci_high"],
            "n": runs["n"],
        }
    )  # seeds, dates and run ids: the CSV download and the task details below
    show_table(
        shown,
        key="runs",
        column_config={
            "value": st.column_config.NumberColumn(format="%.4f"),
            "CI low": st.column_config.NumberColumn("CI low", format="%.4f", help="lower end of the 95% CI"),
            "CI high": st.column_config.NumberColumn("CI high", format="%.4f", help="upper end of the 95% CI"),
            "tier": st.column_config.TextColumn("tier", help=TIER_HELP),
        },
    )
    st.caption("Runs made with `--limit` evaluate only the first N samples of each split: shown here, never ranked.")
    csv_download(runs, safe_file_name("runs", short_name(model_id)), key="download-runs")


def every_metric(snap: object, model_id: str, runs: pd.DataFrame) -> None:
    """Every metric of the newest ranked run of each task (or the newest run where none is ranked)."""
    st.subheader("Every metric")
    chosen = runs.sort_values(["task", "latest_ranked", "created_at"], ascending=[True, False, False])
    chosen = chosen.drop_duplicates("task")
    frames = []
    for task, run_id, ranked, tier in zip(
        chosen["task"], chosen["run_id"], chosen["ranked"], chosen["tier"], strict=True
    ):
        frame = query(snap, "run_metric_table", run_id)
        frames.append(frame.assign(task=task, ranked=bool(ranked), tier=str(tier)))
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if table.empty:
        st.info("No metrics.")
        return
    table["direction"] = table["higher_is_better"].map(direction)
    table["tier"] = badges(table["tier"])
    shown = table[["task", "metric", "value", "ci_low", "ci_high", "n", "direction", "tier"]]
    show_table(
        shown,
        key="metrics",
        page_size=100,
        column_config={
            "value": st.column_config.NumberColumn(format="%.4f"),
            "ci_low": st.column_config.NumberColumn("CI low", format="%.4f", help="lower end of the 95% CI"),
            "ci_high": st.column_config.NumberColumn("CI high", format="%.4f", help="upper end of the 95% CI"),
            "tier": st.column_config.TextColumn("tier", help=TIER_HELP),
        },
    )
    export = table[
        ["task", "metric", "value", "ci_low", "ci_high", "ci_method", "n", "unit", "direction", "convention", "ranked",
         "tier"]
    ]  # fmt: skip
    csv_download(export, safe_file_name("metrics", short_name(model_id)), key="download-metrics")
    with st.expander("What each metric means: interval method and convention"):
        conventions = table.drop_duplicates("metric")[["metric", "ci_method", "unit", "convention"]]
        show_table(
            conventions,
            key="conventions",
            page_size=100,
            column_config={
                "ci_method": st.column_config.TextColumn(
                    "interval",
                    help="wilson, bc-bootstrap, bc-studentized, studentized, debiased-bootstrap, order-statistic, bootstrap, stderr "
                    "or none",
                ),
                "unit": st.column_config.TextColumn("n counts"),
                "convention": st.column_config.TextColumn("convention", width="large"),
            },
        )


def provenance(details: dict[str, Any]) -> None:
    prov = details["provenance"]
    with st.expander("Provenance: harness version, commit, hardware, data fingerprints, parameters"):
        left, right = st.columns(2)
        left.markdown(
            "\n".join(
                [  # the submitter's text: plain() or code(); the command below is a code block (literal)
                    f"- **source** {plain(prov.get('source'))}; **harness** {plain(prov.get('harness_version'))}; "
                    f"**commit** {code(prov.get('git_commit') or 'unknown')}",
                    f"- **created** {plain(prov.get('created_at'))}; **duration** {prov.get('duration_s', 0):.1f} s",
                    f"- **python** {plain(prov.get('python'))}; **platform** {plain(prov.get('platform'))}",
                    f"- **seed** {details['seed']}; **--limit** {details['sample_limit'] or 'none (ranked)'}",
                    f"- **checkpoint sha256** {code(details['checkpoint_hash'])}",
                    f"- **task spec hash** {code(details['spec_hash'])}",
                    f"- **submission file** {code(details['file'] or 'n/a')}",
                ]
            )
        )
        if prov.get("command"):
            left.code(prov["command"], language="bash")
        right.markdown("**Dataset fingerprints (sha256 per split)**")
        right.json(details["dataset_fingerprints"])
        right.markdown("**Task parameters**")
        right.json(details["parameters"])
        if prov.get("hardware") or prov.get("packages"):
            right.markdown("**Hardware and packages**")
            right.json({"hardware": prov.get("hardware", {}), "packages": prov.get("packages", {})}, expanded=False)


# --------------------------------------------------------------------------- artifact charts


def reliability_chart(bins: dict[str, Any], scaled: dict[str, Any] | None) -> go.Figure:
    """Accuracy per confidence bin (bars) against the diagonal, before and (when stored) after scaling."""
    panels = [("before temperature scaling", bins)] + ([("after temperature scaling", scaled)] if scaled else [])
    figure = make_subplots(rows=1, cols=len(panels), subplot_titles=[p for p, _ in panels], shared_yaxes=True)
    for col, (_, data) in enumerate(panels, start=1):
        frame = pd.DataFrame(data)
        frame = frame[frame["count"] > 0]
        centres = (frame["lower"] + frame["upper"]) / 2
        figure.add_trace(
            go.Scatter(
                x=[0, 1], y=[0, 1], mode="lines", name="perfect calibration", showlegend=col == 1,
                line={"dash": "dash", "color": "gray"},
            ),
            row=1, col=col,
        )  # fmt: skip
        figure.add_trace(
            go.Bar(
                x=centres,
                y=frame["accuracy"],
                width=(frame["upper"] - frame["lower"]) * 0.92,
                name="accuracy in bin",
                showlegend=col == 1,
                marker_color="#4c78a8",
                opacity=0.8,
                customdata=frame[["count", "confidence"]],
                hovertemplate="bin centre %{x:.2f}<br>accuracy %{y:.3f}<br>mean confidence %{customdata[1]:.3f}"
                "<br>%{customdata[0]} samples<extra></extra>",
            ),
            row=1,
            col=col,
        )
        figure.add_trace(
            go.Scatter(
                x=centres, y=frame["confidence"], mode="markers", name="mean confidence in bin", showlegend=col == 1,
                marker={"size": 7, "color": "#e45756"},
            ),
            row=1, col=col,
        )  # fmt: skip
        figure.update_xaxes(title_text="top-label confidence (max softmax)", range=[0, 1], row=1, col=col)
    figure.update_yaxes(title_text="accuracy in bin", range=[0, 1.02], row=1, col=1)
    figure.update_layout(
        title="Reliability diagram (15 equal-width bins (a, b]; empty bins hidden)",
        height=450,
        margin={**MARGIN, "t": 85},
    )
    return figure


def roc_chart(roc: dict[str, Any], score: str, groups: dict[str, str]) -> go.Figure:
    figure = go.Figure()
    figure.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="chance", line={"dash": "dot", "color": "gray"}))
    for name, tpr in roc["tpr"][score].items():
        group = groups.get(name, "")
        figure.add_trace(
            go.Scatter(
                x=roc["fpr"],
                y=tpr,
                mode="lines",
                name=chart_text(f"{name} ({group}-OOD)" if group else name),
                line={"dash": "solid" if group == "near" else "dashdot"},
            )
        )
    figure.add_hline(
        y=0.95,
        line={"dash": "dot", "color": "gray"},
        annotation_text="TPR 95%: each curve crosses it at its FPR@95TPR",
        annotation_position="bottom right",
    )
    figure.update_layout(
        title=f"ROC per OOD set, score {chart_text(score)} (higher score = more in-distribution)",
        xaxis_title="FPR: share of OOD samples accepted",
        yaxis_title="TPR: share of ID samples kept",
        height=430,
        margin=MARGIN,
    )
    return figure


def per_class_chart(per_class: dict[str, Any]) -> go.Figure:
    frame = pd.DataFrame(per_class).reset_index(names="class")
    frame["label"] = [
        f"{chart_text(c, limit=None)}<br>({chart_text(n)} train)"
        for c, n in zip(frame["class"], frame["train_count"], strict=True)
    ]
    colours = {"many": "#2a6f97", "medium": "#61a5c2", "few": "#f4a261"}
    figure = go.Figure()
    for group in ("many", "medium", "few"):
        rows = frame[frame["group"] == group]
        if rows.empty:
            continue
        figure.add_trace(
            go.Bar(
                x=rows["label"],
                y=rows["accuracy"],
                text=[f"{a:.2f}" for a in rows["accuracy"]],
                textposition="outside",
                name=f"{group}-shot",
                marker_color=colours[group],
                customdata=rows["train_count"],
                hovertemplate="class %{x}<br>accuracy %{y:.3f}<br>%{customdata} training samples<extra></extra>",
            )
        )
    figure.update_layout(
        title="Per-class accuracy (colour: shot group by number of training samples)",
        xaxis_title="class (training samples)",
        yaxis_title="accuracy (balanced test split)",
        height=400,
        margin=MARGIN,
    )
    figure.update_yaxes(range=[0, 1.12])
    figure.update_xaxes(categoryorder="array", categoryarray=frame["label"].tolist())
    return figure


def histogram_chart(counts: list[int]) -> go.Figure:
    figure = go.Figure(go.Bar(x=list(range(len(counts))), y=counts, marker_color="#6d597a"))
    figure.update_layout(
        title="First divergent token per prompt (teacher-forced; N = no divergence)",
        xaxis_title="position of the first divergent token",
        yaxis_title="prompts",
        height=360,
        margin=MARGIN,
    )
    return figure


def ranking_chart(ranking: list[dict[str, Any]]) -> go.Figure:
    frame = pd.DataFrame(ranking)
    components = [chart_text(c, limit=None) for c in frame["component"]]
    figure = go.Figure(go.Bar(x=frame["fdtm_mean"], y=components, orientation="h", marker_color="#b56576"))
    figure.update_yaxes(autorange="reversed")
    figure.update_layout(
        title="Component sensitivity: mean first divergent token when compressed alone (lower = more sensitive)",
        xaxis_title="FDTM (tokens)",
        height=140 + 22 * len(frame),
        margin=MARGIN,
    )
    return figure


@contextmanager
def drawn(name: str) -> Iterator[None]:
    """Artifacts of unchecked (self-reported) runs can have any shape: one that cannot be drawn gets a
    warning on the page instead of an exception."""
    try:
        yield
    except (KeyError, IndexError, TypeError, ValueError, AttributeError):
        st.warning(f"The run's {code(name)} artifact does not have the expected shape, so it is not drawn.")


def artifacts(snap: object, run_id: str, names: list[str]) -> None:
    shown = False
    if "reliability" in names:
        shown = True
        with drawn("reliability"):
            bins = query(snap, "run_artifact", run_id, "reliability")
            scaled = query(snap, "run_artifact", run_id, "reliability_ts") if "reliability_ts" in names else None
            plot(reliability_chart(bins, scaled), key="chart-reliability")
            st.caption("ECE is the count-weighted mean gap between the bars (accuracy) and the dots (confidence).")
    if "roc" in names:
        shown = True
        with drawn("roc"):
            roc = query(snap, "run_artifact", run_id, "roc")
            groups = query(snap, "run_artifact", run_id, "ood_groups") or {}
            scores = list(roc["tpr"])
            score = url_choice("OOD score", scores, key="score", default="energy", what="scores of this run")
            plot(roc_chart(roc, score, groups), key="chart-roc")
            st.caption(
                "AUROC (area under each curve): higher is better. FPR@95TPR: lower is better; the share of OOD "
                "samples accepted at the threshold that keeps 95% of ID samples, where a curve crosses the dotted line."
            )
    for name, chart in (("per_class", per_class_chart), ("fdt_histogram", histogram_chart), ("ranking", ranking_chart)):
        if name in names:
            shown = True
            with drawn(name):
                figure = chart(query(snap, "run_artifact", run_id, name))
                plot(figure, key=f"chart-{CHART_KEYS[name]}")
    if not shown:
        st.caption("This run stores no artifact with a chart (" + (plain(", ".join(names)) or "no artifacts") + ").")


snap = snapshot()
st.title("Model")
models = query(snap, "model_table")
if models.empty:
    st.info(EMPTY_STORE)
    st.stop()
ids = models["model_id"].tolist()
model_id = url_choice("Model", ids, key="model", what="models in the store")
row = models.set_index("model_id").loc[model_id]
card = query(snap, "model_card", model_id) or {}
st.header(plain(model_id))
card_summary(card, model_id, row)
runs = query(snap, "model_runs", model_id)
if runs.empty:
    st.info("This model has no runs.")
    st.stop()
runs_table(model_id, runs)
every_metric(snap, model_id, runs)
if card.get("training_run"):
    st.subheader("Checkpoint series")
    series = query(snap, "checkpoint_series", training_runs=[str(card["training_run"])])
    st.caption(
        f"The {len(series)} checkpoint(s) of training run {code(card['training_run'])} (cards sharing "
        "`training_run`), ordered by step; the star marks this model. Trust tiers as chosen here."
    )
    series_view(snap, series, tier_filter(key="series_tier"), key="model-series", highlight=model_id)

st.subheader("Task details")
tasks = sorted(runs["task"].unique())
task = url_choice("Task", tasks, key="task", what="tasks this model ran")
task_runs = runs[runs["task"] == task].sort_values(["latest_ranked", "created_at"], ascending=[False, False])
run = task_runs.iloc[0]
label = "newest ranked run" if run["latest_ranked"] else f"newest run (not ranked: --limit {int(run['sample_limit'])})"
st.caption(f"Run {code(run['run_id'])} ({label}; tier {BADGES.get(run['tier'], plain(run['tier']))})")
st.page_link(
    "views/ranking.py",
    label=f"Leaderboard of {plain(task)}",
    icon=":material/leaderboard:",
    query_params={"task": task},
)
metrics = query(snap, "run_metric_table", run["run_id"])
main = metrics[metrics["metric"] == run["main_metric"]]
if not main.empty:
    st.markdown(
        "Main metric "
        + metric_caption(run["main_metric"], main["higher_is_better"].iloc[0], main["convention"].iloc[0])
    )
details = query(snap, "run_details", run["run_id"])
if details is not None:
    artifacts(snap, run["run_id"], details["artifacts"])
    provenance(details)
