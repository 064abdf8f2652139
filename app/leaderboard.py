"""Harness leaderboard app: `harness app --store results.duckdb`, or
`streamlit run app/leaderboard.py -- --store results.duckdb` (or set HARNESS_STORE).

The store is opened read-only; every query is a parameterised `harness.store.Store` method.
Pages: Leaderboard (per task, and mean rank across tasks), Model, Correlations (the same-loss view first),
Compression, Overfitting guard (the Ladder), Tasks (what each task measures, from tasks/*.yaml and docs/tasks.md).
Every widget that selects something writes its value to the URL, defaults included (app/widgets.py), so a
URL is a deep link that pins what is on screen.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st
from common import code, query, snapshot, store_path, store_state

HERE = Path(__file__).parent
# The pages live in views/, not pages/: with a pages/ folder beside this script, Streamlit runs a fresh
# server's first request for a deep link (/correlations?...) as an old-style page without this script,
# so that visitor got no navigation, no wide layout and no sidebar (tests/test_app_browser.py checks it).

# Navigation in the top bar and the sidebar (the store and its counts) collapsed: the tables get the page's
# whole width, so none is cut on a 1280-pixel screen.
st.set_page_config(
    page_title="Harness leaderboard",
    page_icon=":material/leaderboard:",
    layout="wide",
    initial_sidebar_state="collapsed",
)

pages = [
    st.Page(HERE / "views" / "ranking.py", title="Leaderboard", icon=":material/leaderboard:", default=True),
    st.Page(HERE / "views" / "model.py", title="Model", icon=":material/deployed_code:", url_path="model"),
    st.Page(
        HERE / "views" / "correlations.py",
        title="Correlations",
        icon=":material/scatter_plot:",
        url_path="correlations",
    ),
    st.Page(HERE / "views" / "compression.py", title="Compression", icon=":material/compress:", url_path="compression"),
    st.Page(HERE / "views" / "ladder.py", title="Overfitting guard", icon=":material/stairs:", url_path="ladder"),
    st.Page(HERE / "views" / "tasks.py", title="Tasks", icon=":material/description:", url_path="tasks"),
]
navigation = st.navigation(pages, position="top")

with st.sidebar:
    st.caption(f"Store: {code(store_path())} (read-only)")
    if store_state().kind == "ok":  # anything else: the page itself says what the file is and what to do
        counts = query(snapshot(), "summary")
        st.caption(
            f"{counts['models']:,} models · {counts['tasks']:,} tasks · {counts['runs']:,} runs "
            f"({counts['unranked_runs']:,} made with `--limit`: shown on model pages, never ranked)"
        )

navigation.run()
