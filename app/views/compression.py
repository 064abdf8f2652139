"""Compression page: the variants of one reference model, quality against sparsity or bits, and the
divergence metrics (FDTM, SDTM, JS) against the perplexity ratio."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from common import (
    TIER_HELP,
    badges,
    chart_text,
    code,
    csv_download,
    metric_caption,
    plain,
    plot,
    query,
    safe_file_name,
    short_name,
    snapshot,
)
from labels import PALETTE, axis_title
from plotly.subplots import make_subplots
from widgets import show_table, tier_filter, url_choice

from harness.metrics import is_diagnostic

DIVERGENCE = (
    ("fdtm_mean", "FDTM, tokens (higher is better)"),
    ("sdtm", "SDTM, share (lower is better)"),
    ("js_mean", "JS divergence, nats (lower is better)"),
)
REFERENCE_BITS = 32  # where the uncompressed reference sits on the bits axis
MARGIN = {"l": 10, "r": 10, "t": 60, "b": 40}
METHOD_COLOURS = {"none": "#000000", "prune": PALETTE[0], "quantize": PALETTE[1]}
#: pruning scopes and quantization granularities: one qualitative colour each
GROUP_COLOURS = {"global": PALETTE[0], "per-component": PALETTE[2], "per-channel": PALETTE[1],
                 "per-tensor": PALETTE[4], "unspecified": PALETTE[3]}  # fmt: skip


def variant_label(row: pd.Series, reference: str) -> str:
    name = short_name(row["model_id"])
    prefix = short_name(reference)
    if row["is_reference"]:
        return "reference"
    common = 0
    while common < min(len(name), len(prefix)) and name[common] == prefix[common]:
        common += 1
    return name[common:].lstrip("-_.") or name


def metric_values(snap: object, variable: str, ids: list[str], tiers: list[str]) -> pd.DataFrame:
    task, metric = variable.split("/", 1)
    rows = query(snap, "board_rows", [task], metric, models=ids, tiers=tiers)
    return rows.set_index("model_id")[["value", "ci_low", "ci_high", "higher_is_better", "tier"]]


def quality_chart(data: pd.DataFrame, quality: str, higher: object) -> go.Figure:
    """Two panels: pruned variants against sparsity, quantized variants against bits; the reference as a line."""
    figure = make_subplots(
        rows=1,
        cols=2,
        subplot_titles=("Pruning: quality against sparsity", "Quantization: quality against bits"),
        shared_yaxes=True,
        horizontal_spacing=0.06,
    )
    reference = data[data["is_reference"]]
    for col, method in ((1, "prune"), (2, "quantize")):
        rows = data[data["method"] == method]
        if method == "prune":
            rows = rows.assign(x=rows["achieved_sparsity"].fillna(rows["sparsity"]))
            groups = rows.groupby(rows["scope"].fillna("unspecified"), sort=True)
        else:
            rows = rows.assign(x=rows["bits"])
            groups = rows.groupby(rows["granularity"].fillna("unspecified"), sort=True)
        for group, part in groups:
            part = part.sort_values("x")
            figure.add_trace(
                go.Scatter(
                    x=part["x"],
                    y=part["value"],
                    mode="lines+markers",
                    text=[chart_text(t) for t in part["label"]],
                    hovertemplate="%{text}<br>x %{x}<br>quality %{y:.4f}<extra></extra>",
                    name=chart_text(f"{method}: {group}"),
                    line={"color": GROUP_COLOURS.get(str(group), PALETTE[5])},
                    error_y={
                        "type": "data",
                        "array": (part["ci_high"] - part["value"]).fillna(0),
                        "arrayminus": (part["value"] - part["ci_low"]).fillna(0),
                        "thickness": 1,
                    },
                    marker={"size": 9, "color": GROUP_COLOURS.get(str(group), PALETTE[5])},
                ),
                row=1,
                col=col,
            )
        if not reference.empty:  # the reference at sparsity 0 and at 32 bits, with its value as a line
            ref = reference.iloc[0]
            figure.add_trace(
                go.Scatter(
                    x=[0.0 if method == "prune" else REFERENCE_BITS],
                    y=[ref["value"]],
                    mode="markers",
                    hovertemplate="reference<br>quality %{y:.4f}<extra></extra>",
                    marker={"symbol": "star", "size": 14, "color": METHOD_COLOURS["none"]},
                    error_y={"type": "data", "array": [ref["ci_high"] - ref["value"]],
                             "arrayminus": [ref["value"] - ref["ci_low"]], "thickness": 1},
                    name="reference",
                    showlegend=col == 1,
                ),
                row=1, col=col,
            )  # fmt: skip
            figure.add_hline(y=float(ref["value"]), line={"dash": "dash", "color": "gray"}, row=1, col=col)
    top = data["achieved_sparsity"].fillna(data["sparsity"]).max()
    right = float(top) + 0.1 if pd.notna(top) else 1.0
    figure.update_xaxes(title_text="sparsity (share of zero weights)", range=[-0.06, right], row=1, col=1)
    figure.update_xaxes(
        title_text="bits per weight (log scale)",
        type="log",
        autorange="reversed",
        tickvals=[2, 3, 4, 6, 8, 16, 32],
        row=1,
        col=2,
    )
    figure.update_yaxes(title_text=chart_text(axis_title(quality, higher), limit=None), row=1, col=1)
    figure.update_layout(height=460, margin=MARGIN, legend_title_text="variant")
    return figure


def bar_chart(data: pd.DataFrame, quality: str, higher: object) -> go.Figure:
    """Quality of every variant (and the reference) as bars, for methods without a numeric axis."""
    figure = go.Figure(
        go.Bar(
            x=[chart_text(f"{label} ({method})") for label, method in zip(data["label"], data["method"], strict=True)],
            y=data["value"],
            marker_color=[METHOD_COLOURS.get(m, "#8d99ae") for m in data["method"]],
            error_y={
                "type": "data",
                "array": (data["ci_high"] - data["value"]).fillna(0),
                "arrayminus": (data["value"] - data["ci_low"]).fillna(0),
            },
        )
    )
    figure.update_layout(
        title="Quality per variant",
        yaxis_title=chart_text(axis_title(quality, higher), limit=None),
        height=420,
        margin=MARGIN,
    )
    return figure


def divergence_chart(data: pd.DataFrame) -> go.Figure:
    figure = make_subplots(rows=1, cols=3, subplot_titles=[title for _, title in DIVERGENCE], horizontal_spacing=0.08)
    for col, (metric, _) in enumerate(DIVERGENCE, start=1):
        for method, part in data.groupby("method", sort=True):
            figure.add_trace(
                go.Scatter(
                    x=part["ppl_ratio"],
                    y=part[metric],
                    mode="markers",
                    text=[chart_text(t) for t in part["label"]],
                    hovertemplate="%{text}<br>perplexity ratio %{x:.4f}<br>%{y:.4g}<extra></extra>",
                    name=chart_text(method),
                    legendgroup=str(method),
                    showlegend=col == 1,
                    marker={"size": 9, "color": METHOD_COLOURS.get(str(method))},
                    error_y={
                        "type": "data",
                        "array": (part[f"{metric}_ci_high"] - part[metric]).fillna(0),
                        "arrayminus": (part[metric] - part[f"{metric}_ci_low"]).fillna(0),
                        "thickness": 1,
                    },
                ),
                row=1,
                col=col,
            )
        figure.add_vline(x=1.0, line={"dash": "dot", "color": "lightgray"}, row=1, col=col)
        figure.update_xaxes(title_text="perplexity ratio (1 = unchanged)", row=1, col=col)
    figure.update_layout(height=460, margin=MARGIN, legend_title_text="method")
    figure.update_annotations(font_size=13)
    return figure


snap = snapshot()
st.title("Compression")
st.caption(
    "Compressed variants of one reference model (cards with `reference` and `compression` fields), compared "
    "with the reference teacher-forced on its own greedy continuations (task `compression`)."
)
references = query(snap, "compression_references")
if references.empty:
    st.info(
        "No model card in the store names a reference model, so there is nothing to compare. Compressed variants "
        "carry `reference` and `compression` on their cards (see `harness zoo build --family lm`)."
    )
    st.stop()
reference = url_choice("Reference model", references["reference"].tolist(), key="reference",
                       what="reference models in the store")  # fmt: skip
variants = query(snap, "compression_variants", reference)
variants = variants.assign(label=[variant_label(row, reference) for _, row in variants.iterrows()])
ids = variants["model_id"].tolist()
if not variants["is_reference"].any():
    st.warning(f"The reference {code(reference)} itself is not in the store: only its variants are shown.")
else:
    st.page_link("views/model.py", label=f"Reference: {plain(reference)}", icon=":material/deployed_code:",
                 query_params={"model": reference})  # fmt: skip
tiers = tier_filter()

catalog = query(snap, "metric_catalog", models=ids, tiers=tiers)
# Quality means a measure of quality: diagnostics (fitted parameters, flatness, the reference's own perplexity)
# are never offered as one.
options = [f"{t}/{m}" for t, m in zip(catalog["task"], catalog["metric"], strict=True) if not is_diagnostic(str(m))]
st.subheader("Quality against compression")
if not options:
    st.info("None of these models has a ranked run yet.")
    st.stop()
preferred = ["synth_mc/lm_eval.acc", "synth_blimp/lm_eval.acc", "lm_loss/loss_nats", "compression/top1_agreement"]
quality = url_choice(
    "Quality metric", options, key="quality", default=next((p for p in preferred if p in options), None),
    what="quality metrics of these models (diagnostics are not quality)", format_func=lambda v: f"{v} · {axis_title(v)}",
)  # fmt: skip
values = metric_values(snap, quality, ids, tiers)
data = variants.join(values, on="model_id", how="inner")
info = catalog.assign(variable=catalog["task"] + "/" + catalog["metric"]).set_index("variable").loc[quality]
st.markdown(metric_caption(quality, info["higher_is_better"], info["convention"]))
if data.empty:
    st.info(f"No variant of {plain(reference)} has {code(quality)}.")
else:
    if data["method"].isin(["prune", "quantize"]).any():
        plot(quality_chart(data, quality, info["higher_is_better"]), key="chart-quality")
        st.caption(
            "Error bars: 95% CIs. Star and dashed line: the uncompressed reference (at sparsity 0 and 32 bits). "
            "Sparsity is the achieved one when the card has it."
        )
    if not data["method"].isin(["prune", "quantize", "none"]).all():
        plot(bar_chart(data, quality, info["higher_is_better"]), key="chart-other")
        st.caption("Variants compressed by other methods (neither pruning nor quantization); error bars: 95% CIs.")

st.subheader("Where perplexity hides damage")
st.caption(
    "Each point is a variant. A perplexity ratio near 1 can hide large token-level divergence: FDTM (how soon the "
    "greedy continuation diverges), SDTM (share of divergent tokens) and the Jensen-Shannon divergence of the "
    "next-token distributions show the damage that the averaged perplexity smooths over."
)
divergence = variants.set_index("model_id")[["label", "method", "sparsity", "bits", "is_reference"]]
found = True
for metric in ("ppl_ratio", *(m for m, _ in DIVERGENCE)):
    rows = query(snap, "board_rows", ["compression"], metric, models=ids, tiers=tiers)
    if rows.empty:
        found = False
        break
    frame = rows.set_index("model_id")[["value", "ci_low", "ci_high"]]
    divergence = divergence.join(frame.add_prefix(f"{metric}_").rename(columns={f"{metric}_value": metric}))
divergence = divergence.dropna(subset=["ppl_ratio"]) if found else divergence.iloc[0:0]
if divergence.empty:
    st.info(
        f"No `compression` task runs of the chosen tiers for the variants of {plain(reference)}: "
        "run `harness eval --tasks compression`."
    )
else:
    plot(divergence_chart(divergence), key="chart-divergence")

st.subheader("Variants")
table = variants.drop(columns=["compression"]).merge(
    data[["model_id", "value", "ci_low", "ci_high", "tier"]].rename(
        columns={"value": quality, "ci_low": f"{quality} CI low", "ci_high": f"{quality} CI high"}
    ),
    on="model_id",
    how="left",
)
if not divergence.empty:
    table = table.merge(
        divergence.drop(columns=["label", "method", "sparsity", "bits", "is_reference"]),
        left_on="model_id",
        right_index=True,
        how="left",
    )


def setting(row: pd.Series) -> str:
    """The compression of a variant in a few words: "prune 50% (global)", "quantize 4 bits (per-channel)"."""
    if row["is_reference"]:
        return "reference (uncompressed)"
    if row["method"] == "prune":
        share = row["achieved_sparsity"] if pd.notna(row["achieved_sparsity"]) else row["sparsity"]
        amount = f" {share:.0%}" if pd.notna(share) else ""
        return f"prune{amount}" + (f" ({row['scope']})" if isinstance(row["scope"], str) else "")
    if row["method"] == "quantize":
        bits = f" {row['bits']:g} bits" if pd.notna(row["bits"]) else ""
        return f"quantize{bits}" + (f" ({row['granularity']})" if isinstance(row["granularity"], str) else "")
    return str(row["method"])


# Compact enough for a 1280-pixel screen: every column (and the compression object) is in the CSV download.
shown = pd.DataFrame(
    {
        "model": table["model_id"],
        "compression": [setting(row) for _, row in table.iterrows()],
        "quality": table[quality],
        **{name: table.get(name) for name, _ in (("ppl_ratio", ""), *DIVERGENCE)},
        "tier": badges(table["tier"]),
    }
)
show_table(
    shown,
    key="variants",
    model_columns=["model"],
    model_params={"task": "compression"},
    column_config={
        "quality": st.column_config.NumberColumn(
            quality.split("/", 1)[1], format="%.4f", help=plain(axis_title(quality, info["higher_is_better"]))
        ),
        "ppl_ratio": st.column_config.NumberColumn(
            "ppl ratio", format="%.3f", help=axis_title("compression/ppl_ratio")
        ),
        **{
            name: st.column_config.NumberColumn(name.removesuffix("_mean").upper(), format="%.3f", help=title)
            for name, title in DIVERGENCE
        },
        "tier": st.column_config.TextColumn("tier", help=f"trust tier of the {plain(quality)} run. {TIER_HELP}"),
    },
)
csv_download(table, safe_file_name("compression", short_name(reference), quality), key="download-variants")
if reference in ids and (catalog["task"] == "compression-components").any():
    st.page_link(
        "views/model.py",
        label="Per-component sensitivity of the reference (task compression-components)",
        icon=":material/bar_chart:",
        query_params={"model": reference, "task": "compression-components"},
    )
