"""Checkpoint series: any metric against the training step for the checkpoints of training runs (models
whose cards share `training_run`, ordered by `step`). Shown on the Correlations page (several runs) and
on the Model page (the model's own run, the model marked)."""

from __future__ import annotations

from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from common import StoreSnapshot, badges, chart_text, csv_download, plot, query, safe_file_name, short_name
from labels import axis_title, colours
from widgets import show_table, url_choice

X_AXES = {"step": "Training step (card)", "tokens_seen": "Training tokens seen (card)"}


def series_values(snap: StoreSnapshot, series: pd.DataFrame, variable: str, tiers: list[str]) -> pd.DataFrame:
    """`series` (checkpoint_series rows) with the value, CI and tier of `variable` ("task/metric")."""
    task, metric = variable.split("/", 1)
    rows = query(snap, "board_rows", [task], metric, models=series["model_id"].tolist(), tiers=tiers)
    values = rows.set_index("model_id")[["value", "ci_low", "ci_high", "tier", "higher_is_better"]]
    return series.join(values, on="model_id", how="inner")


def metric_options(snap: StoreSnapshot, model_ids: list[str], tiers: list[str]) -> tuple[list[str], str | None]:
    """Every task/metric the checkpoints have (main metrics first), and a default: held-out loss when
    there, else the first main metric."""
    catalog = query(snap, "metric_catalog", models=model_ids, tiers=tiers)
    options = [f"{t}/{m}" for t, m in zip(catalog["task"], catalog["metric"], strict=True)]
    mains = [f"{t}/{m}" for t, m, main in zip(catalog["task"], catalog["metric"], catalog["is_main"], strict=True)
             if main]  # fmt: skip
    default = "lm_loss/loss_nats" if "lm_loss/loss_nats" in options else (mains[0] if mains else None)
    return options, default


def series_chart(data: pd.DataFrame, variable: str, x: str, *, highlight: str | None = None) -> go.Figure:
    """One line per training run (qualitative colours), points with their 95% CIs, hover names."""
    figure = go.Figure()
    runs = list(dict.fromkeys(data["training_run"]))
    palette = colours(runs)
    higher = data["higher_is_better"].dropna().iloc[0] if data["higher_is_better"].notna().any() else None
    for run in runs:
        rows = data[data["training_run"] == run].sort_values(x)
        figure.add_trace(
            go.Scatter(
                x=rows[x],
                y=rows["value"],
                mode="lines+markers",
                name=chart_text(run),
                line={"color": palette[run], "width": 2},
                marker={"size": 8, "color": palette[run]},
                error_y={
                    "type": "data",
                    "array": (rows["ci_high"] - rows["value"]).fillna(0),
                    "arrayminus": (rows["value"] - rows["ci_low"]).fillna(0),
                    "thickness": 1,
                    "width": 3,
                },
                text=[chart_text(short_name(m)) for m in rows["model_id"]],
                hovertemplate="%{text}<br>" + chart_text(X_AXES[x]) + " %{x:,}<br>value %{y:.4g}<extra></extra>",
            )
        )
    if highlight is not None and (data["model_id"] == highlight).any():
        row = data[data["model_id"] == highlight].iloc[0]
        figure.add_trace(
            go.Scatter(
                x=[row[x]],
                y=[row["value"]],
                mode="markers",
                name="this model",
                marker={"symbol": "star", "size": 18, "color": "#000000", "line": {"width": 1, "color": "white"}},
                hoverinfo="skip",
            )
        )
    figure.update_xaxes(title=chart_text(X_AXES[x]))
    figure.update_yaxes(title=chart_text(axis_title(variable, higher)))
    figure.update_layout(
        title=chart_text(f"{axis_title(variable, higher)} against {X_AXES[x].lower()}", limit=None),
        height=440,
        margin={"l": 10, "r": 10, "t": 60, "b": 40},
        legend={"title": {"text": "training run"}},
        hovermode="closest",
    )
    return figure


def series_view(
    snap: StoreSnapshot,
    series: pd.DataFrame,
    tiers: list[str],
    *,
    key: str,
    highlight: str | None = None,
    task: str | None = None,
) -> None:
    """Metric and x-axis selectors, the chart and the table of points for the checkpoints in `series`."""
    options, default = metric_options(snap, series["model_id"].tolist(), tiers)
    if not options:
        st.info("These checkpoints have no ranked runs of the chosen trust tiers.")
        return
    left, right = st.columns([3, 1])
    variable = url_choice("Metric", options, key="series_metric", default=default, container=left,
                          what="metrics of these checkpoints")  # fmt: skip
    x_options = [x for x in X_AXES if series[x].notna().any()] or ["step"]
    x = url_choice("Against", x_options, key="series_x", container=right, format_func=X_AXES.get)
    data = series_values(snap, series.dropna(subset=[x]), variable, tiers)
    if data.empty:
        st.info(f"None of these checkpoints has {chart_text(variable)} with a recorded {x}.")
        return
    plot(series_chart(data, variable, x, highlight=highlight), key=f"chart-{key}")
    st.caption(
        f"{len(data)} checkpoint(s) of {data['training_run'].nunique()} training run(s), ordered by the card's "
        f"{x}; error bars: 95% CIs. Newest ranked run of each checkpoint among the chosen trust tiers."
    )
    table = pd.DataFrame(
        {
            "training run": data["training_run"],
            x: data[x],
            "model": data["model_id"],
            "value": data["value"],
            "CI low": data["ci_low"],
            "CI high": data["ci_high"],
            "tier": badges(data["tier"]),
        }
    )
    config: dict[str, Any] = {
        "value": st.column_config.NumberColumn(variable, format="%.4f"),
        "CI low": st.column_config.NumberColumn("CI low", format="%.4f", help="lower end of the 95% CI"),
        "CI high": st.column_config.NumberColumn("CI high", format="%.4f", help="upper end of the 95% CI"),
        x: st.column_config.NumberColumn(x, format="%d"),
    }
    show_table(table, key=key, column_config=config, model_columns=["model"], model_params={"task": task})
    csv_download(table, safe_file_name("series", variable), key=f"download-{key}")
