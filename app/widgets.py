"""Widgets whose values live in the URL, and tables that show every row.

URL state. Every widget that selects something writes its value to the address bar on every run,
*defaults included*, so a shared link pins everything on screen (a default chosen from the data, such
as the first task or the same-loss family, could change as the store grows). A value arriving in the
URL (a page load, a shared link, a link from another page) wins over the widget's state; one that is
not among the options is reported on the page (`st.warning` naming the parameter and the value) and
the default is shown. The session remembers what the app itself last wrote to the URL, so a changed
URL is told apart from a widget the user just moved. Values never reach SQL text.

Tables. `show_table` shows every row: the table is as tall as its rows (no inner scroll box hiding
rows) up to `PAGE_SIZE` rows, and longer tables are paginated with a page number in the URL and a
caption "rows X–Y of N". Missing cells show "-". A model column is a column of buttons that open the
model's page in the same tab and session (`st.switch_page`), never a link to a new tab.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd
import streamlit as st
from common import SELF_REPORTED_NOTE, TIER_HELP, StoreSnapshot, code, query

from harness.trust import RANKED_TIERS, TIERS

#: session key: {query parameter: the values the app last wrote to the URL}
_WRITTEN = "_harness_url_written"
#: rows per page of a long table
PAGE_SIZE = 50
TRUE_VALUES, FALSE_VALUES = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


def _written() -> dict[str, tuple[str, ...]]:
    written: dict[str, tuple[str, ...]] = st.session_state.setdefault(_WRITTEN, {})
    return written


def _from_url(key: str) -> tuple[bool, list[str]]:
    """(whether to take the value from the URL, the URL's values): yes when the widget has no state yet
    or the URL holds something else than what the app last wrote (a link was followed)."""
    raw = [str(v) for v in st.query_params.get_all(key)]
    changed = key not in st.session_state or tuple(raw) != _written().get(key, ())
    return changed, raw


def _write(key: str, values: Sequence[str]) -> None:
    st.query_params[key] = list(values)
    _written()[key] = tuple(values)


def report_invalid(key: str, value: str, shown: object, what: str = "options") -> None:
    """The warning for a link's query value that is not one of the page's options."""
    text = value if len(value) <= 80 else value[:79] + "…"
    st.warning(
        f"The link's `?{key}=` value {code(text) or '(empty)'} is not one of the {what} here; "
        f"showing {code(shown) or 'the default'} instead."
    )


def url_choice(
    label: str,
    options: Sequence[Any],
    *,
    key: str,
    default: Any = None,
    container: Any = None,
    widget: str = "selectbox",
    what: str = "options",
    **kwargs: Any,
) -> Any:
    """A selectbox (or `widget="segmented_control"` / "radio") bound to `?key=`. `default`: the value
    shown without a URL value (the first option when None or not an option)."""
    place = container if container is not None else st
    options = list(options)
    if not options:
        raise ValueError(f"{key}: no options")
    fallback = default if default in options else options[0]
    by_text = {str(o): o for o in options}
    take, raw = _from_url(key)
    if take:
        value = fallback
        if raw:
            if raw[-1] in by_text:
                value = by_text[raw[-1]]
            else:
                report_invalid(key, raw[-1], fallback, what)
        st.session_state[key] = value
    elif st.session_state.get(key) not in options:  # the options changed under the widget
        st.session_state[key] = fallback
    if widget == "segmented_control":
        chosen = place.segmented_control(label, options, key=key, required=True, **kwargs)
    elif widget == "radio":
        chosen = place.radio(label, options, key=key, **kwargs)
    else:
        chosen = place.selectbox(label, options, key=key, **kwargs)
    _write(key, [str(chosen)])
    return chosen


def url_multichoice(
    label: str,
    options: Sequence[Any],
    *,
    key: str,
    default: Sequence[Any] = (),
    container: Any = None,
    what: str = "options",
    **kwargs: Any,
) -> list[Any]:
    """A multiselect bound to a repeated `?key=` (every chosen value, in the order of the options)."""
    place = container if container is not None else st
    options = list(options)
    by_text = {str(o): o for o in options}
    take, raw = _from_url(key)
    if take:
        if raw:
            unknown = [v for v in raw if v not in by_text]
            value = [by_text[v] for v in dict.fromkeys(raw) if v in by_text]
            if not value:  # nothing usable in the link: the default, not an empty selection
                value = [o for o in default if o in by_text.values()]
            for item in unknown:
                report_invalid(key, item, ", ".join(map(str, value)) or "none of them", what)
        else:
            value = [o for o in default if o in by_text.values()]
        st.session_state[key] = value
    else:
        st.session_state[key] = [o for o in st.session_state.get(key, []) if o in options]
    chosen = list(place.multiselect(label, options, key=key, **kwargs))
    _write(key, [str(o) for o in options if o in chosen])
    return chosen


def url_flag(
    label: str, *, key: str, default: bool = False, container: Any = None, widget: str = "checkbox", **kwargs: Any
) -> bool:
    """A checkbox (or `widget="toggle"`) bound to `?key=true|false`."""
    place = container if container is not None else st
    take, raw = _from_url(key)
    if take:
        value = default
        if raw:
            text = raw[-1].lower()
            if text in TRUE_VALUES or text in FALSE_VALUES:
                value = text in TRUE_VALUES
            else:
                report_invalid(key, raw[-1], str(default).lower(), "values true or false")
        st.session_state[key] = value
    chosen = bool((place.toggle if widget == "toggle" else place.checkbox)(label, key=key, **kwargs))
    _write(key, [str(chosen).lower()])
    return chosen


def url_number(
    label: str,
    *,
    key: str,
    default: float,
    min_value: float,
    max_value: float,
    container: Any = None,
    integer: bool = False,
    **kwargs: Any,
) -> float:
    """A number input bound to `?key=`; a value that is not a number in [min_value, max_value] is reported."""
    place = container if container is not None else st
    cast: Callable[[Any], Any] = int if integer else float
    take, raw = _from_url(key)
    if take:
        value = cast(default)
        if raw:
            try:
                parsed = float(raw[-1])
                if not (math.isfinite(parsed) and min_value <= parsed <= max_value) or (
                    integer and parsed != int(parsed)
                ):
                    raise ValueError(raw[-1])
                value = cast(parsed)
            except ValueError:
                report_invalid(key, raw[-1], value, f"numbers from {min_value:g} to {max_value:g}")
        st.session_state[key] = value
    elif not min_value <= float(st.session_state.get(key, default)) <= max_value:
        st.session_state[key] = cast(default)
    chosen = place.number_input(label, min_value=cast(min_value), max_value=cast(max_value), key=key, **kwargs)
    _write(key, [f"{chosen:g}" if not integer else str(int(chosen))])
    return float(chosen)


# --------------------------------------------------------------------------- tables


def _click_key(key: str, column: str) -> str:
    return f"{key}-{column}-open"


def open_model_on_click(key: str, columns: Sequence[str], **params: Any) -> None:
    """If a model button of the table `key` was clicked in this run, open that model's page (same tab)."""
    for column in columns:
        click = st.session_state.get(_click_key(key, column))
        label = click.get("label") if isinstance(click, dict) else getattr(click, "label", None)
        if label:
            query = {"model": str(label), **{k: v for k, v in params.items() if v}}
            st.switch_page("views/model.py", query_params=query)


def model_column(column: str, *, key: str, longest: int = 30, help: str | None = None) -> Any:
    """A column of buttons, one per model id, that open the model's page in this tab (see `show_table`).
    Buttons do not size to their text: the column is made as wide as the longest id (`longest`
    characters), left-aligned, so no id is cut."""
    return st.column_config.ButtonColumn(
        column,
        type="tertiary",
        key=_click_key(key, column),
        help=help or "open the model's page (in this tab)",
        alignment="left",
        width=int(min(max(7.4 * longest + 28, 90), 480)),
    )


def show_table(
    frame: pd.DataFrame,
    *,
    key: str,
    column_config: dict[str, Any] | None = None,
    page_size: int = PAGE_SIZE,
    model_columns: Sequence[str] = (),
    model_params: dict[str, Any] | None = None,
    page_key: str | None = None,
    caption: str = "",
    **kwargs: Any,
) -> pd.DataFrame:
    """Show `frame` with every row reachable: all of them up to `page_size`, else one page at a time
    (page number in the URL as `?<page_key>=`, default "<key>_page") with "rows X–Y of N". Columns in
    `model_columns` hold model ids and become buttons that open the model page (with `model_params`,
    e.g. the task, in its URL). Returns the rows shown."""
    config = dict(column_config or {})
    for column in model_columns:
        longest = int(frame[column].astype("string").str.len().max()) if len(frame) else 10
        config[column] = model_column(column, key=key, longest=longest)
    if model_columns:
        open_model_on_click(key, model_columns, **(model_params or {}))
    total = len(frame)
    shown = frame
    if total > page_size:
        pages = math.ceil(total / page_size)
        left, right = st.columns([1, 3], vertical_alignment="bottom")
        page = int(
            url_number(
                f"Page (of {pages:,})",
                key=page_key or f"{key}_page",
                default=1,
                min_value=1,
                max_value=pages,
                integer=True,
                step=1,
                container=left,
            )
        )
        start = (page - 1) * page_size
        shown = frame.iloc[start : start + page_size]
        right.caption(
            f"Rows {start + 1:,}–{start + len(shown):,} of {total:,} ({page_size} per page; "
            "every row is in the CSV download)" + (f". {caption}" if caption else "")
        )
    elif caption:
        st.caption(caption)
    st.dataframe(
        shown,
        hide_index=True,
        width="stretch",
        height="content",
        placeholder="-",
        column_config=config,
        **kwargs,
    )
    return shown


# --------------------------------------------------------------------------- filters shared by pages


def family_filters(snap: StoreSnapshot, *, key_prefix: str = "") -> tuple[list[str], list[str]]:
    """Model family and tag filters (?family=...&tag=..., repeatable; empty: all)."""
    families = query(snap, "families")
    tags = query(snap, "tags")
    left, right = st.columns(2)
    chosen_families = url_multichoice(
        "Model family", families, key=f"{key_prefix}family", container=left, placeholder="all families",
        what="families in the store",
    )  # fmt: skip
    chosen_tags = url_multichoice(
        "Tags (any of)", tags, key=f"{key_prefix}tag", container=right, placeholder="any tags", what="tags in the store"
    )
    return chosen_families, chosen_tags


def tier_filter(*, key: str = "tier", container: Any = None) -> list[str]:
    """The trust tiers to show (?tier=..., repeatable; default verified and re-scored, see
    harness/trust.py). Self-reported results appear only when the user adds them, with a warning."""
    chosen = url_multichoice(
        "Trust tiers", TIERS, key=key, default=RANKED_TIERS, container=container,
        placeholder="choose at least one tier", help=TIER_HELP, what="trust tiers",
    )  # fmt: skip
    if not chosen:
        st.info("Choose at least one trust tier.")
        st.stop()
    if "self-reported" in chosen:
        st.caption(SELF_REPORTED_NOTE)
    return [t for t in TIERS if t in chosen]  # one order, so cached queries share entries
