"""`harness app`'s Streamlit server: `streamlit run` with the app's heavy modules imported first.

Streamlit runs a page's script for each visit, in the server's process, and a module stays imported once
it is. Imported here before the server starts (`preload`), pandas (0.45 s on a 2-core machine), plotly,
DuckDB and Harness's store and statistics are no longer imported by the first visitor's page: the
Correlations page's first visit after a start went from 1.9-3.1 s to 1.4-1.5 s (bench/app.py). The server
then takes that much longer to start listening.

Run as `python app/server.py run app/leaderboard.py [streamlit options] -- --store PATH` (the arguments of
`streamlit run`); `harness app` does.
"""

from __future__ import annotations

import importlib
import sys

#: what the pages import, slowest first: third-party libraries and the Harness modules they read
PRELOAD = (
    "pandas",
    "plotly.graph_objects",
    "plotly.subplots",
    "duckdb",
    "harness.store",
    "harness.stats",
    "harness.same_loss",
    "harness.ladder",
    "harness.trust",
    "harness.metrics",
)


def preload() -> None:
    """Import every module of PRELOAD (once per process)."""
    for name in PRELOAD:
        importlib.import_module(name)


def main() -> None:
    preload()
    from streamlit.web.cli import main as streamlit_main

    streamlit_main(prog_name="streamlit")  # the command line `python -m streamlit` would see


if __name__ == "__main__":
    sys.exit(main())
