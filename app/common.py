"""Shared pieces of the Streamlit app: the store (read-only, cached), CSV downloads, deep links.

The app never writes: queries run `Store` methods (parameterised SQL in harness/store.py) on one
read-only connection (`open_store(path, read_only=True)`), shared by the queries of a page run and
closed once no query has come for `IDLE_CLOSE_S` (and at the latest `MAX_HOLD_S` after it opened), so
`harness eval` or `harness ingest` can still write the file while the app is running: DuckDB lets a
writer in only when no process holds the file open, and a writer's connect retries until then. A page
run costs one open, not one per query (19 on the Correlations page). Results are cached per store
*snapshot* (path, modification time, size): when the file changes, the next page run reads the new
contents.
"""

from __future__ import annotations

import argparse
import html
import math
import os
import re
import string
import sys
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import duckdb
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from harness.errors import HarnessError
from harness.ladder import SETTINGS_FILE, LadderSettings, load_settings
from harness.store import Store, StoreState, inspect_store, open_store
from harness.trust import BADGES

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


BUILD_STORE = (
    "Build one with `harness demo` (writes `demo/results.duckdb`) or "
    "`harness ingest submissions/ --store results.duckdb`, then start "
    "the app with `harness app --store PATH` (or set `HARNESS_STORE`)."
)


def _file_snapshot(path: Path) -> StoreSnapshot | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return StoreSnapshot(str(path), stat.st_mtime_ns, stat.st_size)


@st.cache_data(show_spinner=False, max_entries=16)
def _state(snap: StoreSnapshot) -> StoreState:
    return inspect_store(snap.path)


def store_state() -> StoreState:
    """What the store path holds now (missing, empty, foreign, outdated or ok), cached per snapshot."""
    path = store_path().resolve()
    snap = _file_snapshot(path) if path.exists() else None
    return _state(snap) if snap is not None else inspect_store(path)


def snapshot() -> StoreSnapshot:
    """The current store; anything else (no file, an empty DuckDB file, a file that is not a Harness
    store, an old store) gets a page that says so and what to do, and the script stops."""
    path = store_path().resolve()
    state = store_state()
    if state.kind == "missing":
        st.error(f"No results store at {code(path)}.")
        st.info(BUILD_STORE)
        st.stop()
    if state.kind == "empty":
        st.title("No runs yet")
        st.info(f"The store {code(path)} is empty: no runs have been added yet. " + EMPTY_STORE.split(". ", 1)[1])
        st.stop()
    if state.kind == "foreign":
        tables = f" (it holds {', '.join(code(t) for t in state.tables[:8])})" if state.tables else ""
        st.title("Not a Harness store")
        st.warning(f"{code(path)} is not a Harness results store{tables}: {plain(state.detail or 'unknown format')}.")
        st.info(BUILD_STORE)
        st.stop()
    if state.kind == "outdated":
        st.title("An older Harness store")
        st.warning(
            f"{code(path)} was written by an older harness (store version {state.version}). Open it once for "
            "writing (`harness ingest` upgrades it) or rebuild it: `harness ingest submissions/ --store PATH --rebuild`."
        )
        st.stop()
    snap = _file_snapshot(path)
    if snap is None:  # removed in between
        st.error(f"No results store at {code(path)}.")
        st.stop()
    return snap


#: seconds without a query after which the shared read-only connection closes (a writer waits this long)
IDLE_CLOSE_S = 1.0
#: seconds after which the next query reopens the connection however busy the app is
MAX_HOLD_S = 10.0


class SharedStore:
    """One read-only connection to the store for the queries of all sessions, one query at a time,
    closed after IDLE_CLOSE_S without a query, on a new snapshot, on a database error, and reopened
    when it has been held for MAX_HOLD_S."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stack: ExitStack | None = None
        self._store: Store | None = None
        self._key: tuple[StoreSnapshot, float] | None = None  # (snapshot, when opened)
        self._timer: threading.Timer | None = None

    def run(self, snap: StoreSnapshot, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
            if self._key is not None and (self._key[0] != snap or time.monotonic() - self._key[1] > MAX_HOLD_S):
                self._close()
            try:
                if self._store is None:
                    stack = ExitStack()
                    self._store = stack.enter_context(open_store(snap.path, read_only=True))
                    self._stack, self._key = stack, (snap, time.monotonic())
                return getattr(self._store, method)(*args, **kwargs)
            except Exception:
                self._close()
                raise
            finally:
                if self._store is not None:
                    self._timer = threading.Timer(IDLE_CLOSE_S, self.close)
                    self._timer.daemon = True
                    self._timer.start()

    def close(self) -> None:
        with self._lock:
            self._close()

    def _close(self) -> None:
        stack, self._stack, self._store, self._key = self._stack, None, None, None
        if stack is not None:
            stack.close()

    @property
    def is_open(self) -> bool:
        return self._store is not None


SHARED = SharedStore()


@st.cache_data(show_spinner=False, max_entries=256)
def _query(snap: StoreSnapshot, method: str, args: tuple[Any, ...], kwargs: tuple[tuple[str, Any], ...]) -> Any:
    return SHARED.run(snap, method, args, dict(kwargs))


def query(snap: StoreSnapshot, method: str, *args: Any, cached: bool = True, **kwargs: Any) -> Any:
    """`Store.<method>(*args, **kwargs)` on a read-only connection, cached per store snapshot.

    cached=False: not cached here, for a large result that a cached function reduces (streamlit
    pickles every cached result: 0.35 s for the cards of 10,000 models)."""
    if not callable(getattr(Store, method, None)):
        raise AttributeError(f"Store has no query {method!r}")
    frozen = tuple(tuple(a) if isinstance(a, list) else a for a in args)
    try:
        if not cached:
            return SHARED.run(snap, method, frozen, {k: _freeze(v) for k, v in kwargs.items()})
        return _query(snap, method, frozen, tuple(sorted((k, _freeze(v)) for k, v in kwargs.items())))
    except HarnessError as error:
        st.error(f"Cannot read the results store: {plain(error.one_line())}")
        st.stop()
    except duckdb.Error as error:  # a file changed under the app, or tables of another kind
        st.error(f"Cannot read the results store: {plain(str(error).splitlines()[0])}")
        st.info(BUILD_STORE)
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
    """A download button for `frame` as CSV (every table of the app has one). The CSV is written when the
    button is clicked, not on every run of the page (a 10,000-row table costs a tenth of a second)."""
    st.download_button(
        label,
        lambda: frame.to_csv(index=False).encode(),
        file_name=file_name,
        mime="text/csv",
        key=key,
        icon=":material/download:",
        on_click="ignore",
    )


def safe_file_name(*parts: str) -> str:
    text = "-".join(p for p in parts if p)
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in text) + ".csv"


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


def badges(tiers: pd.Series) -> pd.Series:
    """Tier names as the badges every table shows ("✔ verified", "↻ re-scored", "✎ self-reported")."""
    return tiers.map(lambda tier: "" if pd.isna(tier) else BADGES.get(str(tier), str(tier)))


PLOT_CONFIG: dict[str, Any] = {"displaylogo": False, "toImageButtonOptions": {"format": "png", "scale": 2}}


def plot(figure: go.Figure, *, key: str) -> None:
    """Draw a plotly figure: the app's config, and the qualitative palette (labels.PALETTE) for traces
    without their own colour, instead of the theme's shades of blue."""
    from labels import PALETTE

    if not figure.layout.colorway:
        figure.update_layout(colorway=list(PALETTE))
    # The toolbar down the right edge, in a margin of its own: it never covers the title or a colour bar;
    # legends go below the chart, where the toolbar cannot cover them either.
    right = figure.layout.margin.r if figure.layout.margin.r is not None else 0
    figure.update_layout(modebar={"orientation": "v"}, margin={"r": max(right, 44)})
    if figure.layout.legend.orientation is None:
        figure.update_layout(legend={"orientation": "h", "x": 0, "xanchor": "left", "y": -0.18, "yanchor": "top"})
    st.plotly_chart(figure, config=PLOT_CONFIG, key=key)


def settings_file() -> tuple[Path, bool]:
    """The board settings: `--ladder-config PATH` after `streamlit run app/leaderboard.py --`, else
    $HARNESS_LADDER_CONFIG (both must exist), else leaderboard.toml in the working directory (optional).
    (True: the file must exist.)"""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--ladder-config")
    known, _ = parser.parse_known_args(sys.argv[1:])
    explicit = known.ladder_config or os.environ.get("HARNESS_LADDER_CONFIG")
    return (Path(explicit), True) if explicit else (Path(SETTINGS_FILE), False)


def board_settings() -> tuple[LadderSettings, Path]:
    """The Ladder's per-board settings and their file; a malformed file is reported and every board
    stays guarded (the safe default)."""
    path, required = settings_file()
    try:
        return load_settings(path, required=required), path
    except HarnessError as error:
        st.warning(f"The board settings were not read ({plain(error.one_line())}): every board stays guarded.")
        return LadderSettings(), path


OUTSIDE = "value outside its interval"
FLAT = "no spread in the data"
INTERVAL_HELP = (
    "an interval can exclude its own value when the estimator is biased (the plug-in ECE sits below "
    "its resamples; compare ece_noise_floor and ece_sq_debiased), and has no width only when the data "
    "do not vary where it is measured: every resample gave the same value and no count of independent "
    "units bounds it (AUPR at perfect separation), or a median's central values are all equal "
    "(docs/metrics.md, Intervals)"
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
