"""Shared pieces of the Streamlit app: the store (read-only, cached), CSV downloads, deep links.

The app never writes: every query opens the store with `open_store(path, read_only=True)`, runs
one `Store` method (parameterised SQL in harness/store.py) and closes it again, so `harness eval`
or `harness ingest` can still write the file while the app is running (DuckDB lets a writer in
only when no process holds the file open). Results are cached per store *snapshot* (path,
modification time, size): when the file changes, the next page run reads the new contents.
"""

from __future__ import annotations

import argparse
import html
import math
import os
import re
import string
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pandas as pd
import streamlit as st

from harness.errors import HarnessError
from harness.store import Store, open_store
from harness.trust import BADGES, RANKED_TIERS, TIERS

DEFAULT_STORE = "results.duckdb"
DIRECTION = {True: "higher is better", False: "lower is better"}
EMPTY_STORE = "The store holds no runs yet. Add some with `harness eval` or `harness ingest submissions/`."


@dataclass(frozen=True)
class StoreSnapshot:
    """A store file as it is now: cached query results are keyed by this."""

    path: str
    mtime_ns: int
    size: int


def store_path() -> Path:
    """`--store PATH` after `streamlit run app/leaderboard.py --`, else $HARNESS_STORE, else results.duckdb."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--store")
    known, _ = parser.parse_known_args(sys.argv[1:])
    return Path(known.store or os.environ.get("HARNESS_STORE") or DEFAULT_STORE)


def snapshot() -> StoreSnapshot:
    """The current store, or an error on the page (with what to do) and the script stops."""
    path = store_path().resolve()
    if not path.is_file():
        st.error(f"No results store at {code(path)}.")
        st.info(
            "Build one with `harness demo` (writes `demo/results.duckdb`) or "
            "`harness ingest submissions/ --store results.duckdb`, then start "
            "the app with `harness app --store PATH` (or set `HARNESS_STORE`)."
        )
        st.stop()
    stat = path.stat()
    return StoreSnapshot(str(path), stat.st_mtime_ns, stat.st_size)


@st.cache_data(show_spinner=False, max_entries=256)
def _query(snap: StoreSnapshot, method: str, args: tuple[Any, ...], kwargs: tuple[tuple[str, Any], ...]) -> Any:
    with open_store(snap.path, read_only=True) as store:
        return getattr(store, method)(*args, **dict(kwargs))


def query(snap: StoreSnapshot, method: str, *args: Any, **kwargs: Any) -> Any:
    """`Store.<method>(*args, **kwargs)` on a read-only connection, cached per store snapshot."""
    if not callable(getattr(Store, method, None)):
        raise AttributeError(f"Store has no query {method!r}")
    frozen = tuple(tuple(a) if isinstance(a, list) else a for a in args)
    try:
        return _query(snap, method, frozen, tuple(sorted((k, _freeze(v)) for k, v in kwargs.items())))
    except HarnessError as error:
        st.error(f"Cannot read the results store: {error.one_line()}")
        st.stop()


def _freeze(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


# --------------------------------------------------------------------------- untrusted text
# Card fields, provenance, task, metric and model names come from submissions, i.e. from strangers.
# Whatever of them reaches Markdown (st.markdown, st.caption, st.info, headers, labels) goes through
# `plain` or `code`, and whatever reaches a plotly figure through `chart_text`: shown as the text it
# is, never as a link, an image, HTML, LaTeX, an emoji or icon shortcode, or a Markdown block.

_MARKDOWN_PUNCTUATION = re.compile("([" + re.escape(string.punctuation) + "])")
#: U+2060 WORD JOINER: invisible; breaks what GFM (and Streamlit's :shortcodes:) would turn into a
#: link or an icon even after Markdown escapes are resolved ("https://", "www.", "a@b.c", ":smile:")
_JOINER = "\u2060"
_LINK_TRIGGERS = re.compile(r"(?<=\\[:@])|(?i:(?<=www)(?=\\\.))")


def plain(value: object) -> str:
    """`value` as Markdown that shows exactly its text: every ASCII punctuation character escaped
    with a backslash (CommonMark allows that for all of them: no links, images, HTML, emphasis,
    tables, headings, and no LaTeX between dollar signs), whitespace runs (newlines too) as one
    space, so no block can start, and an invisible word joiner after ":" and "@" and between "www"
    and "." so that no URL, e-mail address or shortcode is recognised in the text."""
    text = _MARKDOWN_PUNCTUATION.sub(r"\\\1", " ".join(str(value).split()))
    return _LINK_TRIGGERS.sub(_JOINER, text)


def code(value: object) -> str:
    """`value` as an inline code span (literal text: no Markdown, links or HTML inside), fenced with
    more backticks than any run in the text, on one line."""
    text = " ".join(str(value).split())
    if not text:
        return ""
    fence = "`" * (max((len(run) for run in re.findall("`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def chart_text(value: object, limit: int | None = 60) -> str:
    """`value` for a plotly title, label, legend or hover text: plotly reads a few HTML tags
    (<a href> makes a link), so "<", ">" and "&" become entities it shows as text. Longer than
    `limit` characters: cut there with "…" (a long legend entry would squeeze the plot away)."""
    text = str(value)
    if limit is not None and len(text) > limit:
        text = text[: limit - 1] + "…"
    return html.escape(text, quote=False)


# --------------------------------------------------------------------------- formatting


def direction(higher_is_better: Any) -> str:
    if higher_is_better is None or (isinstance(higher_is_better, float) and math.isnan(higher_is_better)):
        return "direction unknown"
    return DIRECTION[bool(higher_is_better)]


def metric_caption(metric: str, higher_is_better: Any, convention: Any = None) -> str:
    """ "`fpr95.energy.mean`: lower is better. <convention>" (units and conventions from metric_info)."""
    text = f"{code(metric)}: **{direction(higher_is_better)}**."
    if isinstance(convention, str) and convention:
        text += " " + plain(f"{convention[0].upper()}{convention[1:]}.")
    return text


def human_count(value: Any) -> str:
    """1234567 -> "1.23 M" (parameter counts)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "?"
    value = float(value)
    for unit, scale in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.3g} {unit}"
    return f"{value:.0f}"


def short_name(model_id: str) -> str:
    return model_id.split("/", 1)[-1]


# --------------------------------------------------------------------------- links and downloads


def page_url(url_path: str, **params: Any) -> str:
    """A relative deep link to a page of this app, e.g. page_url("model", model="org/name")."""
    query = urlencode({k: v for k, v in params.items() if v not in (None, "")}, doseq=True, safe="/")
    return f"{url_path}?{query}" if query else url_path


def model_url(model_id: str, task: str | None = None) -> str:
    return page_url("model", model=model_id, task=task)


def csv_download(frame: pd.DataFrame, file_name: str, *, key: str, label: str = "Download CSV") -> None:
    """A download button for `frame` as CSV (every table of the app has one)."""
    st.download_button(
        label,
        frame.to_csv(index=False).encode(),
        file_name=file_name,
        mime="text/csv",
        key=key,
        icon=":material/download:",
        on_click="ignore",
    )


def safe_file_name(*parts: str) -> str:
    text = "-".join(p for p in parts if p)
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in text) + ".csv"


def family_filters(snap: StoreSnapshot, *, key_prefix: str = "") -> tuple[list[str], list[str]]:
    """Model family and tag filters (deep-linkable as ?family=...&tag=...)."""
    families = query(snap, "families")
    tags = query(snap, "tags")
    left, right = st.columns(2)
    chosen_families = left.multiselect(
        "Model family", families, key=f"{key_prefix}family", bind="query-params", placeholder="all families"
    )
    chosen_tags = right.multiselect(
        "Tags (any of)", tags, key=f"{key_prefix}tag", bind="query-params", placeholder="any tags"
    )
    return list(chosen_families), list(chosen_tags)


TIER_HELP = (
    "Trust tier of the run (docs/trust.md): ✔ verified (CI re-ran the checkpoint and compared), "
    "↻ re-scored (metrics recomputed from per-sample outputs bound to the task's data), "
    "✎ self-reported (imported or unchecked)."
)
SELF_REPORTED_NOTE = (
    "✎ Self-reported numbers are imported from other tools or unchecked (their samples are not bound to the "
    "task's data): they are not comparable with verified or re-scored ones, and ranks computed with them mix "
    "checked and unchecked results."
)


def tier_filter(*, key: str = "tier") -> list[str]:
    """The trust tiers to show (deep-linkable as ?tier=...; default verified and re-scored, see
    harness/trust.py). Self-reported results appear only when the user adds them, with a warning."""
    chosen = st.multiselect(
        "Trust tiers",
        TIERS,
        default=RANKED_TIERS,
        key=key,
        bind="query-params",
        placeholder="choose at least one tier",
        help=TIER_HELP,
    )
    if not chosen:
        st.info("Choose at least one trust tier.")
        st.stop()
    if "self-reported" in chosen:
        st.caption(SELF_REPORTED_NOTE)
    return [t for t in TIERS if t in chosen]  # one order, so cached queries share entries


def badges(tiers: pd.Series) -> pd.Series:
    """Tier names as the badges every table shows ("✔ verified", "↻ re-scored", "✎ self-reported")."""
    return tiers.map(lambda tier: "" if pd.isna(tier) else BADGES.get(str(tier), str(tier)))


PLOT_CONFIG: dict[str, Any] = {"displaylogo": False, "toImageButtonOptions": {"format": "png", "scale": 2}}


OUTSIDE = "value outside its interval"
FLAT = "no spread in the resamples"
INTERVAL_HELP = (
    "an interval can exclude its own value when the estimator is biased (the plug-in ECE sits below "
    "its resamples; compare ece_noise_floor and ece_sq_debiased), and has no width only when every "
    "resample gave the same value (docs/metrics.md, Intervals)"
)


def interval_notes(table: pd.DataFrame) -> pd.Series:
    """Per row: OUTSIDE, FLAT or "" (the UI says when an interval excludes its point or has no width)."""
    low, high, value = table["ci_low"], table["ci_high"], table["value"]
    outside = (value < low) | (value > high)
    flat = low.notna() & high.notna() & (low == high)
    return (
        pd.Series(["" for _ in range(len(table))], index=table.index, dtype="string")
        .mask(flat, FLAT)
        .mask(outside, OUTSIDE)
    )
