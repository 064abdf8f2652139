"""Correlations page: any metric or model-card field against any other, across models."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from common import (
    EMPTY_STORE,
    PLOT_CONFIG,
    badges,
    chart_text,
    csv_download,
    direction,
    family_filters,
    plain,
    query,
    safe_file_name,
    short_name,
    snapshot,
    tier_filter,
)

from harness.stats import CORRELATION_METHODS, correlation_with_ci, linear_fit

CARD = "card."
CARD_LABELS = {
    "card.n_parameters": "parameters (card)",
    "card.pretrain_loss_nats": "pre-training loss, nats (card, self-reported)",
    "card.train_loss_nats": "final training loss, nats (card)",
    "card.compression.sparsity": "sparsity (card compression)",
    "card.compression.achieved_sparsity": "achieved sparsity (card compression)",
    "card.compression.bits": "bits (card compression)",
}
N_RESAMPLES = 1000
LABELS_UP_TO = 15  # more points than this: names on hover only


def card_variables(models: pd.DataFrame) -> pd.DataFrame:
    """Numeric card fields per model: parameters, losses, compression, and every numeric recipe field."""
    rows: list[dict[str, Any]] = []
    for model_id, text in zip(models["model_id"], models["card"], strict=True):
        card = json.loads(text)
        row: dict[str, Any] = {"model_id": model_id}
        for key in ("n_parameters", "pretrain_loss_nats", "train_loss_nats"):
            row[CARD + key] = card.get(key)
        for key in ("sparsity", "achieved_sparsity", "bits"):
            row[f"{CARD}compression.{key}"] = (card.get("compression") or {}).get(key)
        for key, value in (card.get("recipe") or {}).items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                row[f"{CARD}recipe.{key}"] = value
        rows.append(row)
    frame = pd.DataFrame(rows).set_index("model_id").apply(pd.to_numeric, errors="coerce")
    return frame.loc[:, frame.notna().sum() >= 2]


def label(variable: str) -> str:
    if variable in CARD_LABELS:
        return CARD_LABELS[variable]
    if variable.startswith(CARD):
        return variable[len(CARD) :].replace("recipe.", "recipe: ") + " (card)"
    return variable


def values_of(
    snap: object, variable: str, cards: pd.DataFrame, families: list[str], tags: list[str], tiers: list[str]
) -> pd.DataFrame:
    """model_id -> value (and CI and trust tier for metrics) of one variable."""
    if variable.startswith(CARD):
        column = cards[variable].dropna() if variable in cards else pd.Series(dtype=float)
        return pd.DataFrame({"value": column, "ci_low": np.nan, "ci_high": np.nan, "tier": "card"})
    task, metric = variable.split("/", 1)
    rows = query(snap, "board_rows", [task], metric, families=families, tags=tags, tiers=tiers).set_index("model_id")
    return rows[["value", "ci_low", "ci_high"]].assign(tier=badges(rows["tier"]))


@st.cache_data(show_spinner=False, max_entries=64)
def correlations(x: tuple[float, ...], y: tuple[float, ...]) -> pd.DataFrame:
    rows = []
    for method in CORRELATION_METHODS:
        result = correlation_with_ci(np.asarray(x), np.asarray(y), method, n_resamples=N_RESAMPLES, seed=0)
        rows.append(
            {
                "coefficient": {"pearson": "Pearson r", "spearman": "Spearman ρ", "kendall": "Kendall τ-b"}[method],
                "estimate": result.estimate,
                "95% CI low": result.ci_low,
                "95% CI high": result.ci_high,
                "n models": result.n,
            }
        )
    return pd.DataFrame(rows)


def transformed(values: pd.Series, log: bool) -> pd.Series:
    return np.log10(values) if log else values


def scatter(data: pd.DataFrame, x: str, y: str, logx: bool, logy: bool, title: str, *, fit: bool = True) -> go.Figure:
    figure = go.Figure()
    text_mode = len(data) <= LABELS_UP_TO
    for family, rows in data.groupby("family", sort=True):
        error_y = None
        if rows["y_ci_low"].notna().any():
            error_y = {
                "type": "data",
                "array": (rows["y_ci_high"] - rows["y"]).fillna(0),
                "arrayminus": (rows["y"] - rows["y_ci_low"]).fillna(0),
                "thickness": 1,
                "width": 2,
            }
        figure.add_trace(
            go.Scatter(
                x=rows["x"],
                y=rows["y"],
                mode="markers+text" if text_mode else "markers",
                text=[chart_text(short_name(m)) for m in rows["model_id"]],
                textposition="top center",
                textfont={"size": 10},
                name=chart_text(family),
                error_y=error_y,
                marker={"size": 9, "line": {"width": 0.5, "color": "white"}},
                hovertemplate="%{text}<br>x = %{x:.4g}<br>y = %{y:.4g}<extra>" + chart_text(family) + "</extra>",
            )
        )
    valid = data[np.isfinite(transformed(data["x"], logx)) & np.isfinite(transformed(data["y"], logy))]
    if fit and len(valid) >= 3:
        slope, intercept = linear_fit(
            transformed(valid["x"], logx).to_numpy(), transformed(valid["y"], logy).to_numpy()
        )
        if math.isfinite(slope):
            grid = np.linspace(transformed(valid["x"], logx).min(), transformed(valid["x"], logx).max(), 50)
            line = intercept + slope * grid
            figure.add_trace(
                go.Scatter(
                    x=10**grid if logx else grid,
                    y=10**line if logy else line,
                    mode="lines",
                    name="least-squares fit",
                    line={"dash": "dash", "color": "gray"},
                    hoverinfo="skip",
                )
            )
    figure.update_xaxes(title=chart_text(label(x)), type="log" if logx else "linear")
    figure.update_yaxes(title=chart_text(label(y)), type="log" if logy else "linear")
    figure.update_layout(
        title=chart_text(title, limit=None),
        height=520,
        margin={"l": 10, "r": 10, "t": 60, "b": 40},
        legend_title_text="family",
        showlegend=data["family"].nunique() > 1,
    )
    return figure


def pair_frame(
    snap: object,
    x: str,
    y: str,
    cards: pd.DataFrame,
    families_of: pd.Series,
    families: list[str],
    tags: list[str],
    tiers: list[str],
) -> pd.DataFrame:
    xs = values_of(snap, x, cards, families, tags, tiers).add_prefix("x_").rename(columns={"x_value": "x"})
    ys = values_of(snap, y, cards, families, tags, tiers).add_prefix("y_").rename(columns={"y_value": "y"})
    data = xs.join(ys, how="inner").reset_index(names="model_id")
    data = data[data["model_id"].isin(families_of.index)]
    data.insert(1, "family", data["model_id"].map(families_of))
    return data.dropna(subset=["x", "y"])


def usable(data: pd.DataFrame, logx: bool, logy: bool) -> pd.DataFrame:
    keep = np.isfinite(data["x"]) & np.isfinite(data["y"])
    if logx:
        keep &= data["x"] > 0
    if logy:
        keep &= data["y"] > 0
    return data[keep]


def main_view(snap: object, options: list[str], catalog: pd.DataFrame, cards: pd.DataFrame, families_of: pd.Series,
              families: list[str], tags: list[str], tiers: list[str]) -> None:  # fmt: skip
    def pick(preferred: list[str], exclude: str | None = None) -> int:
        for name in preferred:
            if name in options and name != exclude:
                return options.index(name)
        return 0

    left, right = st.columns(2)
    x = left.selectbox(
        "x",
        options,
        index=pick(["lm_loss/loss_nats", "card.pretrain_loss_nats", "card.train_loss_nats", "card.n_parameters"]),
        key="x",
        bind="query-params",
    )
    main_rows = catalog[catalog["is_main"].astype(bool)]
    mains = [f"{t}/{m}" for t, m in zip(main_rows["task"], main_rows["metric"], strict=True)]
    y = right.selectbox(
        "y",
        options,
        index=pick(["synth_blimp/lm_eval.acc", "synth_mc/lm_eval.acc", *mains], exclude=x),
        key="y",
        bind="query-params",
    )
    c1, c2, _ = st.columns([1, 1, 4])
    logx = c1.checkbox("log x", value=x == "card.n_parameters", key="logx", bind="query-params")
    logy = c2.checkbox("log y", key="logy", bind="query-params")
    info = catalog.assign(variable=catalog["task"] + "/" + catalog["metric"]).set_index("variable")
    notes = [
        f"{axis}: {direction(info.loc[v, 'higher_is_better'])}" for axis, v in (("x", x), ("y", y)) if v in info.index
    ]
    data = usable(pair_frame(snap, x, y, cards, families_of, families, tags, tiers), logx, logy)
    if len(data) < 3:
        st.info(f"Only {len(data)} model(s) have both values (with the filters and log scales): need at least 3.")
        return
    st.plotly_chart(
        scatter(data, x, y, logx, logy, f"{label(y)} against {label(x)} ({len(data)} models)"),
        config=PLOT_CONFIG,
        key="chart-scatter",
    )
    stats = correlations(tuple(transformed(data["x"], logx).tolist()), tuple(transformed(data["y"], logy).tolist()))
    st.dataframe(
        stats,
        hide_index=True,
        column_config={
            c: st.column_config.NumberColumn(format="%.3f") for c in ("estimate", "95% CI low", "95% CI high")
        },
    )
    csv_download(stats.assign(x=x, y=y), safe_file_name("coefficients", x, y), key="download-coefficients")
    st.caption(
        f"Across models (one point per model: the newest ranked run of each task). 95% CIs: percentile bootstrap "
        f"over models ({N_RESAMPLES} resamples, seed 0). Pearson and the dashed least-squares line use the plotted "
        f"scale (log10 where an axis is logarithmic); Spearman and Kendall depend on the order only. Error bars: the "
        f"y metric's 95% CI. " + ("; ".join(notes) + "." if notes else "")
    )
    csv_download(data, safe_file_name("correlation", x, y), key="download-pairs", label="Download the points (CSV)")


def side_by_side(
    snap: object, options: list[str], cards: pd.DataFrame, families_of: pd.Series, tiers: list[str]
) -> None:
    st.subheader("Loss and flatness against downstream, one family")
    st.caption(
        "Models of one family (e.g. a pre-training sweep) can reach nearly the same loss and still differ downstream; "
        "the flatness of the loss (Hessian trace: lower is flatter) may explain part of the difference."
    )
    loss = next((v for v in ("lm_loss/loss_nats", "card.pretrain_loss_nats") if v in options), None)
    flat = next((v for v in options if v.startswith("flatness/") and v.endswith("hessian_trace")), None)
    flat = flat or next((v for v in options if v.startswith("flatness/")), None)
    if loss is None or flat is None:
        st.info("Needs a held-out loss (task lm_loss or a pre-training loss on the cards) and a flatness task run.")
        return
    family_options = sorted(set(families_of.dropna()))
    preferred = [f for f in family_options if "compressed" not in f and "gpt" in f] or family_options
    left, right = st.columns(2)
    family = left.selectbox(
        "Family", family_options, index=family_options.index(preferred[0]), key="side_family", bind="query-params"
    )
    downstream_options = [v for v in options if not v.startswith(CARD) and v not in (loss, flat)]
    if not downstream_options:
        st.info("No downstream metric in the store.")
        return
    default = next((v for v in ("synth_blimp/lm_eval.acc", "synth_mc/lm_eval.acc") if v in downstream_options), None)
    downstream = right.selectbox(
        "Downstream metric",
        downstream_options,
        index=downstream_options.index(default) if default else 0,
        key="downstream",
        bind="query-params",
    )
    in_family = families_of[families_of == family]
    columns = st.columns(2)
    for column, x, name in ((columns[0], loss, "loss"), (columns[1], flat, "flatness")):
        data = usable(pair_frame(snap, x, downstream, cards, in_family, [family], [], tiers), False, False)
        with column:
            if len(data) < 3:
                st.info(
                    f"{len(data)} model(s) of {plain(family)} have both {plain(label(x))} and {plain(downstream)}: need 3."
                )
                continue
            st.plotly_chart(
                scatter(data, x, downstream, False, False, f"against {name} ({len(data)} models)"),
                config=PLOT_CONFIG,
                key=f"chart-side-{name}",
            )
            stats = correlations(tuple(data["x"].tolist()), tuple(data["y"].tolist()))
            text = "; ".join(
                f"{r['coefficient']} {r['estimate']:.2f} [{r['95% CI low']:.2f}, {r['95% CI high']:.2f}]"
                for _, r in stats.iterrows()
            )
            st.caption(f"{text} (95% bootstrap CIs over models).")
            csv_download(data, safe_file_name("side-by-side", family, name, downstream), key=f"download-side-{name}")


snap = snapshot()
st.title("Correlations")
st.caption(
    "Pick any two of: a metric of any task (the newest ranked run of each model) or a model-card field "
    "(parameters, self-reported losses, compression, recipe)."
)
models = query(snap, "model_table")
if models.empty:
    st.info(EMPTY_STORE)
    st.stop()
families, tags = family_filters(snap)
tiers = tier_filter()
catalog = query(snap, "metric_catalog", families=families, tags=tags, tiers=tiers)
shown_models = query(snap, "model_table", families=families, tags=tags)
cards = card_variables(shown_models) if not shown_models.empty else pd.DataFrame()
options = [c for c in CARD_LABELS if c in cards.columns] + [c for c in cards.columns if c not in CARD_LABELS]
options += [f"{t}/{m}" for t, m in zip(catalog["task"], catalog["metric"], strict=True)]
if len(options) < 2:
    st.info("Not enough variables: the store needs at least two metrics or card fields.")
    st.stop()
families_of = shown_models.set_index("model_id")["family"]
main_view(snap, options, catalog, cards, families_of, families, tags, tiers)
side_by_side(snap, options, cards, families_of, tiers)
