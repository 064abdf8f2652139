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
    StoreSnapshot,
    badges,
    chart_text,
    csv_download,
    direction,
    plain,
    plot,
    query,
    safe_file_name,
    short_name,
    snapshot,
)
from labels import CARD_TITLES, axis_title, colours
from numpy.typing import NDArray
from same_loss_view import same_loss_view
from series import series_view
from widgets import family_filters, show_table, tier_filter, url_choice, url_flag, url_multichoice

from harness.stats import CORRELATION_METHODS, RANK_BOOTSTRAP_MAX_N, correlations_with_ci, linear_fit

CARD = "card."
CARD_LABELS = CARD_TITLES
N_RESAMPLES = 1000
MAX_SERIES_DEFAULT = 8  # training runs charted by default


@st.cache_data(show_spinner=False, max_entries=16)
def cached_card_variables(
    snap: StoreSnapshot, families: tuple[str, ...], tags: tuple[str, ...]
) -> tuple[pd.DataFrame, pd.Series]:
    """`card_variables` of the models shown and their families (model_id -> family), parsed once per
    store snapshot and filter."""
    models = query(snap, "model_cards", families=list(families), tags=list(tags), cached=False)
    cards = card_variables(models) if not models.empty else pd.DataFrame()
    return cards, models.set_index("model_id")["family"]


def card_variables(models: pd.DataFrame) -> pd.DataFrame:
    """Numeric card fields per model: parameters, losses, compression, and every numeric recipe field."""
    rows: list[dict[str, Any]] = []
    for model_id, text in zip(models["model_id"], models["card"], strict=True):
        card = json.loads(text)
        row: dict[str, Any] = {"model_id": model_id}
        for key in ("n_parameters", "pretrain_loss_nats", "train_loss_nats", "step", "tokens_seen"):
            row[CARD + key] = card.get(key)
        for key in ("sparsity", "achieved_sparsity", "bits"):
            row[f"{CARD}compression.{key}"] = (card.get("compression") or {}).get(key)
        for key, value in (card.get("recipe") or {}).items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                row[f"{CARD}recipe.{key}"] = value
        rows.append(row)
    frame = pd.DataFrame(rows).set_index("model_id").apply(pd.to_numeric, errors="coerce")
    return frame.loc[:, frame.notna().sum() >= 2]


def label(variable: str, info: pd.DataFrame | None = None) -> str:
    """The variable in words, with unit and direction (labels.axis_title)."""
    higher = None
    if info is not None and variable in info.index:
        higher = info.loc[variable, "higher_is_better"]
    return axis_title(variable, higher)


def values_of(
    snap: object, variable: str, cards: pd.DataFrame, families: list[str], tags: list[str], tiers: list[str]
) -> pd.DataFrame:
    """model_id -> value (and CI and trust tier for metrics) of one variable."""
    if variable.startswith(CARD):
        column = cards[variable].dropna() if variable in cards else pd.Series(dtype=float)
        return pd.DataFrame({"value": column, "ci_low": np.nan, "ci_high": np.nan, "tier": "card"})
    task, metric = variable.split("/", 1)
    rows = query(snap, "board_rows", [task], metric, families=families, tags=tags, tiers=tiers, slim=True).set_index(
        "model_id"
    )
    return rows[["value", "ci_low", "ci_high"]].assign(tier=badges(rows["tier"]))


@st.cache_data(show_spinner=False, max_entries=64)
def correlations(x: NDArray[np.float64], y: NDArray[np.float64]) -> pd.DataFrame:
    """The three coefficients with their intervals (cached: streamlit hashes arrays by their bytes)."""
    names = {"pearson": "Pearson r", "spearman": "Spearman ρ", "kendall": "Kendall τ-b"}
    results = correlations_with_ci(np.asarray(x), np.asarray(y), CORRELATION_METHODS, n_resamples=N_RESAMPLES, seed=0)
    return pd.DataFrame(
        [
            {"coefficient": names[r.method], "estimate": r.estimate, "95% CI low": r.ci_low,
             "95% CI high": r.ci_high, "n models": r.n, "interval": r.ci_method}
            for r in results
        ]
    )  # fmt: skip


def transformed(values: pd.Series, log: bool) -> pd.Series:
    return np.log10(values) if log else values


def _error_bars(rows: pd.DataFrame, axis: str) -> dict[str, Any] | None:
    if not rows[f"{axis}_ci_low"].notna().any():
        return None
    return {
        "type": "data",
        "array": (rows[f"{axis}_ci_high"] - rows[axis]).fillna(0).clip(lower=0),
        "arrayminus": (rows[axis] - rows[f"{axis}_ci_low"]).fillna(0).clip(lower=0),
        "thickness": 1,
        "width": 2,
    }


WEBGL_ABOVE = 2000  # points: above this the scatter draws with WebGL


def scatter(
    data: pd.DataFrame, titles: tuple[str, str], logx: bool, logy: bool, title: str, *, fit: bool = True
) -> go.Figure:
    """One colour per family (qualitative palette), 95% CIs as x and y error bars, names on hover (no
    text labels piling up: the table below the chart lists every point)."""
    figure = go.Figure()
    families = sorted(data["family"].fillna("unknown").unique())
    palette = colours(families)
    kind = go.Scattergl if len(data) > WEBGL_ABOVE else go.Scatter
    for family in families:
        rows = data[data["family"].fillna("unknown") == family]
        figure.add_trace(
            kind(
                x=rows["x"].to_numpy(),
                y=rows["y"].to_numpy(),
                mode="markers",
                # numpy arrays: plotly validates them in bulk, lists element by element (1 s at 10,000 points)
                text=np.asarray([chart_text(short_name(m)) for m in rows["model_id"]], dtype=str),
                name=chart_text(family),
                error_x=_error_bars(rows, "x") if len(data) <= WEBGL_ABOVE else None,
                error_y=_error_bars(rows, "y") if len(data) <= WEBGL_ABOVE else None,
                marker={"size": 9, "color": palette[family], "line": {"width": 0.5, "color": "white"}},
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
    figure.update_xaxes(title=chart_text(titles[0], limit=None), type="log" if logx else "linear")
    figure.update_yaxes(title=chart_text(titles[1], limit=None), type="log" if logy else "linear")
    figure.update_layout(
        title=chart_text(title, limit=None),
        height=500,
        margin={"l": 10, "r": 10, "t": 60, "b": 40},
        legend_title_text="family",
        showlegend=len(families) > 1,
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
    # a hash lookup (isin on arrow strings loops in Python: 60 ms at 10,000 models); a model without a family stays
    shown = families_of.index.get_indexer(data["model_id"].to_numpy(dtype=object)) >= 0
    data = data[shown]
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
    def pick(preferred: list[str], exclude: str | None = None) -> str:
        return next((name for name in preferred if name in options and name != exclude), options[0])

    info = catalog.assign(variable=catalog["task"] + "/" + catalog["metric"]).set_index("variable")
    left, right = st.columns(2)
    x = url_choice(
        "x", options, key="x", container=left, what="variables", format_func=lambda v: f"{v} · {label(v, info)}",
        default=pick(["lm_loss/loss_nats", "card.pretrain_loss_nats", "card.train_loss_nats", "card.n_parameters"]),
    )  # fmt: skip
    main_rows = catalog[catalog["is_main"].astype(bool)]
    mains = [f"{t}/{m}" for t, m in zip(main_rows["task"], main_rows["metric"], strict=True)]
    y = url_choice(
        "y", options, key="y", container=right, what="variables", format_func=lambda v: f"{v} · {label(v, info)}",
        default=pick(["synth_blimp/lm_eval.acc", "synth_mc/lm_eval.acc", *mains], exclude=x),
    )  # fmt: skip
    c1, c2, _ = st.columns([1, 1, 4])
    logx = url_flag("log x", key="logx", default=x == "card.n_parameters", container=c1)
    logy = url_flag("log y", key="logy", container=c2)
    notes = [
        f"{axis}: {direction(info.loc[v, 'higher_is_better'])}" for axis, v in (("x", x), ("y", y)) if v in info.index
    ]
    data = usable(pair_frame(snap, x, y, cards, families_of, families, tags, tiers), logx, logy)
    if len(data) < 3:
        st.info(f"Only {len(data)} model(s) have both values (with the filters and log scales): need at least 3.")
        return
    titles = (label(x, info), label(y, info))
    plot(
        scatter(data, titles, logx, logy, f"{titles[1]} against {titles[0]} ({len(data)} models)"), key="chart-scatter"
    )
    stats = correlations(
        transformed(data["x"], logx).to_numpy(np.float64), transformed(data["y"], logy).to_numpy(np.float64)
    )
    show_table(
        stats,
        key="coefficients",
        column_config={
            c: st.column_config.NumberColumn(format="%.3f") for c in ("estimate", "95% CI low", "95% CI high")
        },
    )
    csv_download(stats.assign(x=x, y=y), safe_file_name("coefficients", x, y), key="download-coefficients")
    st.caption(
        f"Across models (one point per model: the newest ranked run of each task). 95% CIs: percentile bootstrap "
        f"over models ({N_RESAMPLES} resamples, seed 0); above {RANK_BOOTSTRAP_MAX_N:,} models Spearman's and "
        f"Kendall's come from Fisher's z transform (docs/app.md). Pearson and the dashed least-squares line use the plotted "
        f"scale (log10 where an axis is logarithmic); Spearman and Kendall depend on the order only. Error bars: "
        f"each value's 95% CI. " + ("; ".join(notes) + "." if notes else "")
    )
    with st.expander(f"The {len(data):,} points (hover a point in the chart for its name)"):
        points = pd.DataFrame(
            {"model": data["model_id"], "family": data["family"], "x": data["x"], "y": data["y"],
             "tier (y)": data["y_tier"]}
        )  # fmt: skip
        show_table(
            points,
            key="points",
            model_columns=["model"],
            page_key="points_page",
            column_config={
                "x": st.column_config.NumberColumn("x", format="%.4g", help=plain(titles[0])),
                "y": st.column_config.NumberColumn("y", format="%.4g", help=plain(titles[1])),
            },
        )
    csv_download(data, safe_file_name("correlation", x, y), key="download-pairs", label="Download the points (CSV)")


def series_section(snap: object, tiers: list[str], family: str | None) -> None:
    st.header("Checkpoint series")
    series = query(snap, "checkpoint_series")
    if series.empty:
        st.info(
            "No model card names a `training_run`: checkpoints of one training run share it, with their `step` "
            "(docs/submission-format.md)."
        )
        return
    runs = list(dict.fromkeys(series["training_run"]))
    of_family = [
        r for r in runs if family is not None and (series[series["training_run"] == r]["family"] == family).any()
    ]
    default = (of_family or runs)[:MAX_SERIES_DEFAULT]
    chosen = url_multichoice(
        "Training runs", runs, key="runs", default=default, what="training runs in the store",
        placeholder="choose training runs",
    )  # fmt: skip
    if not chosen:
        st.info("Choose at least one training run.")
        return
    series_view(snap, series[series["training_run"].isin(chosen)], tiers, key="series")  # type: ignore[arg-type]


snap = snapshot()
st.title("Correlations")
if query(snap, "summary")["models"] == 0:  # the sidebar's counts (cached): no extra query of every card
    st.info(EMPTY_STORE)
    st.stop()
tiers = tier_filter()
same_loss_view(snap, tiers)  # type: ignore[arg-type]

st.header("Any two variables")
st.caption(
    "Pick any two of: a metric of any task (the newest ranked run of each model) or a model-card field "
    "(parameters, self-reported losses, compression, recipe)."
)
families, tags = family_filters(snap)  # type: ignore[arg-type]
catalog = query(snap, "metric_catalog", families=families, tags=tags, tiers=tiers)
cards, families_of = cached_card_variables(snap, tuple(families), tuple(tags))
options = [c for c in CARD_LABELS if c in cards.columns] + [c for c in cards.columns if c not in CARD_LABELS]
options += [f"{t}/{m}" for t, m in zip(catalog["task"], catalog["metric"], strict=True)]
if len(options) < 2:
    st.info("Not enough variables: the store needs at least two metrics or card fields.")
else:
    main_view(snap, options, catalog, cards, families_of, families, tags, tiers)
series_section(snap, tiers, st.session_state.get("sl_family"))
