"""Harness leaderboard app: `harness app --store results.duckdb`, or
`streamlit run app/leaderboard.py -- --store results.duckdb` (or set HARNESS_STORE).

The store is opened read-only; every query is a parameterised `harness.store.Store` method.
Pages: Leaderboard (per task, and mean rank across tasks), Model, Correlations, Compression,
Overfitting guard (the Ladder).
Every widget that selects something is bound to a query parameter, so a URL is a deep link.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st
from common import code, query, snapshot, store_path

HERE = Path(__file__).parent

st.set_page_config(page_title="Harness leaderboard", page_icon=":material/leaderboard:", layout="wide")

pages = [
    st.Page(HERE / "pages" / "ranking.py", title="Leaderboard", icon=":material/leaderboard:", default=True),
    st.Page(HERE / "pages" / "model.py", title="Model", icon=":material/deployed_code:", url_path="model"),
    st.Page(
        HERE / "pages" / "correlations.py",
        title="Correlations",
        icon=":material/scatter_plot:",
        url_path="correlations",
    ),
    st.Page(HERE / "pages" / "compression.py", title="Compression", icon=":material/compress:", url_path="compression"),
    st.Page(HERE / "pages" / "ladder.py", title="Overfitting guard", icon=":material/stairs:", url_path="ladder"),
]
navigation = st.navigation(pages)

with st.sidebar:
    st.caption(f"Store: {code(store_path())} (read-only)")
    if store_path().is_file():
        counts = query(snapshot(), "summary")
        st.caption(
            f"{counts['models']:,} models · {counts['tasks']:,} tasks · {counts['runs']:,} runs "
            f"({counts['unranked_runs']:,} made with `--limit`: shown on model pages, never ranked)"
        )

navigation.run()
