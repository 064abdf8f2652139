"""The same-loss view (Correlations page, first section): among the checkpoints of one family that reach
the same loss, downstream performance against flatness, and their partial correlation given loss.

Defaults need no configuring: the family set in leaderboard.toml (`[same_loss] family`), else the family
with the most models that have both a held-out loss and a flatness run (harness/same_loss.py); held-out
loss; the tolerance of the settings (0.05 nats); the family's downstream LM task (synth_mc, synth_blimp
or another lm-eval task); the flatness task's main metric (Hessian trace).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from common import (
    StoreSnapshot,
    badges,
    chart_text,
    code,
    csv_download,
    plain,
    plot,
    query,
    safe_file_name,
    settings_file,
    short_name,
)
from labels import SEQUENTIAL, axis_title, colours
from numpy.typing import NDArray
from widgets import show_table, url_choice, url_number

from harness.errors import HarnessError
from harness.metrics import is_diagnostic
from harness.same_loss import (
    FLATNESS_TASK,
    LOSS_TASK,
    SameLossSettings,
    default_family,
    load_same_loss_settings,
    select_same_loss,
)
from harness.stats import partial_correlation_with_ci

N_RESAMPLES = 1000
LOSSES = {
    "lm_loss/loss_nats": "held-out loss (task lm_loss)",
    "card.pretrain_loss_nats": "pre-training loss (card, self-reported)",
}
RULE_WORDS = {"absolute": "within a tolerance of the best", "ci": "within the 95% CI of the best"}
PREFERRED_DOWNSTREAM = ("synth_mc", "synth_blimp")
MIN_MODELS = 5  # a partial correlation with one control and its bootstrap need a few more points than 3


def settings() -> SameLossSettings:
    path, required = settings_file()
    try:
        return load_same_loss_settings(path, required=required)
    except HarnessError as error:
        st.warning(f"The board settings were not read ({plain(error.one_line())}): using the defaults.")
        return SameLossSettings()


def downstream_default(catalog: pd.DataFrame) -> str | None:
    """The main metric of the family's downstream LM task: synth_mc, synth_blimp, another lm-eval task,
    else the first main metric that is a measure of quality (not loss, not flatness)."""
    mains = catalog[catalog["is_main"].astype(bool) & ~catalog["task"].isin([LOSS_TASK, FLATNESS_TASK])]
    by_task = dict(zip(mains["task"], mains["metric"], strict=True))
    for task in PREFERRED_DOWNSTREAM:
        if task in by_task:
            return f"{task}/{by_task[task]}"
    for task, metric in by_task.items():
        if str(metric).startswith("lm_eval."):
            return f"{task}/{metric}"
    for task, metric in by_task.items():
        if not is_diagnostic(str(metric)):
            return f"{task}/{metric}"
    return None


def values(snap: StoreSnapshot, variable: str, family: str, tiers: list[str], models: pd.DataFrame) -> pd.DataFrame:
    """model_id -> value, ci_low, ci_high, tier of a task metric or a card field (no CI) in `family`."""
    if variable.startswith("card."):
        field = variable.removeprefix("card.")
        column = pd.to_numeric(models.set_index("model_id")[field], errors="coerce").dropna()
        return pd.DataFrame({"value": column, "ci_low": np.nan, "ci_high": np.nan, "tier": "card"})
    task, metric = variable.split("/", 1)
    rows = query(snap, "board_rows", [task], metric, families=[family], tiers=tiers, slim=True).set_index("model_id")
    return rows[["value", "ci_low", "ci_high", "tier"]]


def partial_table(chosen: pd.DataFrame) -> pd.DataFrame:
    """Partial correlations of downstream and flatness given loss (Pearson, Spearman) with 95%
    percentile-bootstrap CIs over checkpoints."""
    return _partial_table(*(chosen[c].to_numpy(np.float64) for c in ("down", "flat", "loss")))


@st.cache_data(show_spinner=False, max_entries=64)
def _partial_table(x: NDArray[np.float64], y: NDArray[np.float64], z: NDArray[np.float64]) -> pd.DataFrame:
    """(cached by the values: the bootstraps are the page's costliest computation after the queries)"""
    rows = []
    for method, words in (("pearson", "Pearson"), ("spearman", "Spearman")):
        result = partial_correlation_with_ci(x, y, z, method, n_resamples=N_RESAMPLES, seed=0)
        rows.append(
            {"statistic": f"partial {words}: downstream ~ flatness | loss", "estimate": result.estimate,
             "95% CI low": result.ci_low, "95% CI high": result.ci_high, "n models": result.n}
        )  # fmt: skip
    return pd.DataFrame(rows)


def downstream_higher(catalog: pd.DataFrame, variable: str) -> bool | None:
    task, metric = variable.split("/", 1)
    rows = catalog[(catalog["task"] == task) & (catalog["metric"] == metric)]["higher_is_better"]
    return None if rows.empty or pd.isna(rows.iloc[0]) else bool(rows.iloc[0])


def verdict(low: float, high: float, higher_is_better: bool | None) -> str:
    """What the interval says, in words (flatness: lower = flatter)."""
    if not (math.isfinite(low) and math.isfinite(high)) or higher_is_better is None:
        return ""
    if low <= 0 <= high:
        return "The interval includes 0: no clear relation between flatness and downstream at this loss."
    # r < 0: downstream rises as flatness falls (flatter). With lower-is-better downstream, that is worse.
    flatter_better = (high < 0) == higher_is_better
    return (
        "At the same loss, **flatter checkpoints do better downstream** (the interval excludes 0)."
        if flatter_better
        else "At the same loss, **sharper checkpoints do better downstream** (the interval excludes 0)."
    )


def _values_text(data: pd.DataFrame, name: str, prefix: str) -> pd.Series:
    """ "<name>: value [low, high]" per row (no interval where the row has none)."""
    value = data[prefix].map(lambda v: f"{v:.4g}")
    low, high = data[f"{prefix}_lo"], data[f"{prefix}_hi"]
    bounds = low.map(lambda v: f"{v:.4g}") + ", " + high.map(lambda v: f"{v:.4g}")
    ci = (" [" + bounds + "]").where(low.notna() & high.notna(), "")
    return chart_text(name) + ": " + value + ci


def hover(data: pd.DataFrame, names: dict[str, str]) -> NDArray[np.str_]:
    """Hover text per point: name, training run and step, loss, flatness and downstream with their CIs."""
    model = data["model_id"].map(lambda m: f"<b>{chart_text(short_name(m))}</b>")
    has_run = data["training_run"].notna() & data["step"].notna()
    run = data["training_run"].fillna("").map(chart_text)
    step = data["step"].map(lambda s: f"{int(s):,}" if pd.notna(s) else "")
    series = ("<br>run " + run + ", step " + step).where(has_run, "")
    text = model + series
    for key, prefix in (("loss", "loss"), ("flat", "flat"), ("down", "down")):
        text = text + "<br>" + _values_text(data, names[key], prefix)
    return text.to_numpy(dtype=str)  # an array: plotly validates it in bulk, a list string by string


def errors(data: pd.DataFrame, prefix: str, column: str) -> dict[str, Any] | None:
    if data[f"{prefix}_lo"].isna().all():
        return None
    return {
        "type": "data",
        "array": (data[f"{prefix}_hi"] - data[column]).fillna(0).clip(lower=0),
        "arrayminus": (data[column] - data[f"{prefix}_lo"]).fillna(0).clip(lower=0),
        "thickness": 1,
        "width": 2,
        "color": "rgba(80, 80, 80, 0.55)",
    }


def _bars(data: pd.DataFrame, prefix: str) -> tuple[NDArray[np.float64], dict[str, Any] | None]:
    """The values of `prefix` as an array and their error bars (`errors`) with arrays in place of columns."""
    bars = errors(data, prefix, prefix)
    if bars is not None:
        bars = {**bars, "array": bars["array"].to_numpy(), "arrayminus": bars["arrayminus"].to_numpy()}
    return data[prefix].to_numpy(np.float64), bars


def _take(bars: dict[str, Any] | None, rows: NDArray[np.bool_]) -> dict[str, Any] | None:
    return None if bars is None else {**bars, "array": bars["array"][rows], "arrayminus": bars["arrayminus"][rows]}


def loss_chart(data: pd.DataFrame, names: dict[str, str], lower: float, upper: float) -> go.Figure:
    """Every checkpoint of the family: loss (x) against downstream (y), coloured by flatness; the
    same-loss band shaded, the checkpoints outside it drawn hollow."""
    figure = go.Figure()
    figure.add_vrect(x0=lower, x1=upper, fillcolor="rgba(0, 114, 178, 0.10)", line_width=0, layer="below")
    low, high = float(data["flat"].min()), float(data["flat"].max())
    for inside, part in ((False, data[~data["same"]]), (True, data[data["same"]])):
        if part.empty:
            continue
        figure.add_trace(
            go.Scatter(
                x=part["loss"].to_numpy(),
                y=part["down"].to_numpy(),
                mode="markers",
                name="at the same loss" if inside else "other checkpoints",
                error_x=errors(part, "loss", "loss"),
                error_y=errors(part, "down", "down"),
                marker={
                    "size": 11 if inside else 8,
                    "color": part["flat"].to_numpy(),
                    "colorscale": SEQUENTIAL,
                    "cmin": low,
                    "cmax": high if high > low else low + 1,
                    "symbol": "circle" if inside else "circle-open",
                    "line": {"width": 1 if inside else 2, "color": "white" if inside else None},
                    "showscale": bool(inside or not data["same"].any()),
                    "colorbar": {
                        "title": {"text": chart_text(names["flat"], limit=None), "side": "right"},
                        "thickness": 14,
                    },
                },
                text=hover(part, names),
                hovertemplate="%{text}<extra></extra>",
            )
        )
    figure.update_xaxes(title=chart_text(names["loss"], limit=None))
    figure.update_yaxes(title=chart_text(names["down"], limit=None))
    figure.update_layout(
        title="Loss against downstream, coloured by flatness",
        height=460,
        margin={"l": 10, "r": 10, "t": 50, "b": 40},
        legend={"orientation": "h", "y": -0.22},
    )
    return figure


def flatness_chart(chosen: pd.DataFrame, names: dict[str, str]) -> go.Figure:
    """The checkpoints at the same loss: flatness (x) against downstream (y), one colour per training run."""
    figure = go.Figure()
    group = chosen["training_run"].fillna("(no training run)").to_numpy()
    groups = list(dict.fromkeys(group))
    palette = colours(groups)
    # Texts and error bars once for all points, then one slice per run (runs can be many: 40 x pandas
    # string operations per run took seconds).
    text = hover(chosen, names)
    (flat, flat_bars), (down, down_bars) = _bars(chosen, "flat"), _bars(chosen, "down")
    for name in groups:
        rows = group == name
        figure.add_trace(
            go.Scatter(
                x=flat[rows],
                y=down[rows],
                mode="markers",
                name=chart_text(name),
                error_x=_take(flat_bars, rows),
                error_y=_take(down_bars, rows),
                marker={"size": 11, "color": palette[name], "line": {"width": 1, "color": "white"}},
                text=text[rows],
                hovertemplate="%{text}<extra></extra>",
            )
        )
    figure.update_xaxes(title=chart_text(names["flat"], limit=None))
    figure.update_yaxes(title=chart_text(names["down"], limit=None))
    figure.update_layout(
        title="At the same loss: downstream against flatness",
        height=460,
        margin={"l": 10, "r": 10, "t": 50, "b": 40},
        legend={"title": {"text": "training run"}, "orientation": "h", "y": -0.22},
        showlegend=len(groups) > 1,
    )
    return figure


def same_loss_view(snap: StoreSnapshot, tiers: list[str]) -> None:
    st.header("Same loss, different downstream?")
    st.caption(
        "Checkpoints of one family can reach the same loss and still differ downstream (Liu et al., ICML 2023). "
        "Among the checkpoints at the same loss, does flatness (lower = flatter) go with better downstream "
        "performance? The partial correlation controls for the loss that remains within the tolerance."
    )
    config = settings()
    coverage = query(snap, "family_coverage", [LOSS_TASK, FLATNESS_TASK], tiers=tiers)
    family_default, why = default_family(coverage, config.family)
    if family_default is None:
        st.info(
            "No family has models with both a held-out loss (task `lm_loss`) and a flatness run (task "
            "`flatness`) among the chosen trust tiers: run `harness eval --tasks lm_loss,flatness` on a family."
        )
        return
    counts = dict(zip(coverage["family"], coverage["models"].astype(int), strict=True))
    families = [f for f in coverage["family"] if counts[f] > 0] or [family_default]
    c1, c2, c3, c4 = st.columns([3, 2, 2, 1.3])
    family = url_choice(
        "Family", families, key="sl_family", default=family_default, container=c1, what="families with both runs",
        format_func=lambda f: f"{f} ({counts.get(f, 0)} with loss and flatness)",
    )  # fmt: skip
    loss = url_choice("Loss", list(LOSSES), key="sl_loss", container=c2, format_func=LOSSES.get)
    rule = url_choice("Same loss means", list(RULE_WORDS), key="sl_rule", container=c3, format_func=RULE_WORDS.get)
    tolerance = url_number(
        "Tolerance, nats", key="sl_nats", default=config.tolerance_nats, min_value=0.0, max_value=10.0, step=0.01,
        format="%.3f", container=c4, disabled=rule == "ci", help="absolute tolerance: loss <= best + tolerance",
    )  # fmt: skip
    st.caption(f"Family {code(family)}: {why if family == family_default else 'chosen'}.")
    catalog = query(snap, "metric_catalog", families=[family], tiers=tiers)
    variables = [f"{t}/{m}" for t, m in zip(catalog["task"], catalog["metric"], strict=True)]
    flat_options = [v for v in variables if v.startswith(f"{FLATNESS_TASK}/")]
    down_options = [v for v in variables if not v.startswith((f"{FLATNESS_TASK}/", f"{LOSS_TASK}/"))]
    if not flat_options or not down_options:
        st.info(f"The family {code(family)} needs a flatness run and a downstream metric for this comparison.")
        return
    main_flat = catalog[(catalog["task"] == FLATNESS_TASK) & catalog["is_main"].astype(bool)]["metric"]
    d1, d2 = st.columns(2)
    downstream = url_choice("Downstream metric", down_options, key="downstream", container=d1,
                            default=downstream_default(catalog), what="metrics of this family")  # fmt: skip
    flatness = url_choice(
        "Flatness measure", flat_options, key="flatness", container=d2, what="flatness metrics of this family",
        default=f"{FLATNESS_TASK}/{main_flat.iloc[0]}" if not main_flat.empty else None,
    )  # fmt: skip
    models = query(snap, "model_table", families=[family], card=False)
    series = query(snap, "checkpoint_series", families=[family]).set_index("model_id")
    parts = {name: values(snap, v, family, tiers, models) for name, v in
             (("loss", loss), ("flat", flatness), ("down", downstream))}  # fmt: skip
    data = pd.concat(
        [parts[n].rename(columns={"value": n, "ci_low": f"{n}_lo", "ci_high": f"{n}_hi", "tier": f"{n}_tier"})
         for n in parts], axis=1, join="inner",
    ).reset_index(names="model_id")  # fmt: skip
    data = data[np.isfinite(data[["loss", "flat", "down"]]).all(axis=1)]
    data = data.join(series[["training_run", "step"]], on="model_id")
    names = {"loss": axis_title(loss), "flat": axis_title(flatness), "down": axis_title(downstream)}
    if len(data) < 2:
        st.info(f"{len(data)} model(s) of {code(family)} have all three values: need at least 2.")
        return
    selection = select_same_loss(
        data.rename(columns={"loss": "value", "loss_lo": "ci_low", "loss_hi": "ci_high"})[
            ["model_id", "value", "ci_low", "ci_high"]
        ],
        rule,  # type: ignore[arg-type]
        tolerance,
    )
    data = data.assign(same=selection.mask.to_numpy())
    chosen = data[data["same"]].sort_values("loss").reset_index(drop=True)
    st.markdown(
        f"**{len(chosen)} of {len(data)}** checkpoints of {code(family)} with all three values are at the same "
        f"loss: {plain(LOSSES[loss])} {plain(selection.rule)}."
    )
    stats = partial_table(chosen) if len(chosen) >= MIN_MODELS else None
    if stats is not None:
        head = stats.iloc[0]
        estimate = f"{head['estimate']:+.2f}" if math.isfinite(head["estimate"]) else "undefined"
        ci = (f" [{head['95% CI low']:+.2f}, {head['95% CI high']:+.2f}]"
              if math.isfinite(head["95% CI low"]) else " (no interval)")  # fmt: skip
        st.markdown(
            f"Partial correlation of downstream and flatness given loss: **r = {estimate}**{ci} "
            f"(Pearson, 95% bootstrap CI, n = {len(chosen)} checkpoints). "
            + verdict(head["95% CI low"], head["95% CI high"], downstream_higher(catalog, downstream))
        )
    else:
        st.info(
            f"{len(chosen)} checkpoint(s) at the same loss: the partial correlation needs at least {MIN_MODELS}. "
            "Widen the tolerance or choose the CI rule."
        )
    left, right = st.columns(2)
    with left:
        plot(loss_chart(data, names, selection.lower, selection.upper), key="chart-same-loss")
    with right:
        if not chosen.empty:
            plot(flatness_chart(chosen, names), key="chart-same-loss-flatness")
    if stats is not None:
        show_table(
            stats,
            key="same-loss-stats",
            column_config={c: st.column_config.NumberColumn(format="%.3f") for c in
                           ("estimate", "95% CI low", "95% CI high")},
        )  # fmt: skip
        csv_download(stats.assign(family=family, loss=loss, downstream=downstream, flatness=flatness, rule=rule,
                                  tolerance_nats=tolerance), safe_file_name("same-loss-statistics", family),
                     key="download-same-loss-stats")  # fmt: skip
    st.caption(
        "Shaded band: the same-loss range. Error bars: 95% CIs of each measurement (none for card values). "
        f"Partial correlation: Pearson's r of the residuals of downstream and of flatness after a least-squares "
        f"fit on loss (Spearman: the same on ranks); 95% percentile bootstrap over checkpoints ({N_RESAMPLES} "
        "resamples, seed 0). Hover a point for its name; the table lists every checkpoint at the same loss."
    )
    legend = pd.DataFrame(
        {
            "model": chosen["model_id"],
            "training run": chosen["training_run"],
            "step": chosen["step"],
            "loss": chosen["loss"],
            "flatness": chosen["flat"],
            "downstream": chosen["down"],
            "tier": badges(chosen["down_tier"]),
        }
    )
    show_table(
        legend,
        key="same-loss-models",
        model_columns=["model"],
        column_config={
            "loss": st.column_config.NumberColumn("loss", format="%.4f", help=plain(names["loss"])),
            "flatness": st.column_config.NumberColumn("flatness", format="%.4g", help=plain(names["flat"])),
            "downstream": st.column_config.NumberColumn("downstream", format="%.4f", help=plain(names["down"])),
            "step": st.column_config.NumberColumn("step", format="%d"),
            "tier": st.column_config.TextColumn("tier", help="trust tier of the downstream run"),
        },
    )
    csv_download(data, safe_file_name("same-loss", family, downstream), key="download-same-loss",
                 label="Download every checkpoint of the family (CSV)")  # fmt: skip
