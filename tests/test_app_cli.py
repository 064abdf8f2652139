"""`harness app`: a stop signal to it stops the Streamlit server it started (no orphan left serving), and
the stores it accepts (an empty DuckDB file starts the app, which says "no runs yet"; a foreign file is an
error before anything starts). harness/processes.py is tested on a plain child with a grandchild too."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import duckdb
import pytest

from harness.processes import run_forwarding_signals
from harness.store import inspect_store, open_store

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie, exited but not yet reaped, counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(") ", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def children(pid: int) -> list[int]:
    """Every descendant of `pid` (from /proc)."""
    found: list[int] = []
    pending = [pid]
    while pending:
        parent = pending.pop()
        try:
            tasks = os.listdir(f"/proc/{parent}/task")
        except FileNotFoundError:
            continue
        for task in tasks:
            try:
                text = Path(f"/proc/{parent}/task/{task}/children").read_text()
            except FileNotFoundError:
                continue
            for child in map(int, text.split()):
                found.append(child)
                pending.append(child)
    return found


def start_app(store: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "harness.cli", "app", "--store", str(store), "--port", str(port),
               "--host", "127.0.0.1", "--headless"]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    with log.open("wb") as out:
        return subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)


def wait_healthy(process: subprocess.Popen[bytes], port: int, log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as response:
                if response.read().strip() == b"ok":
                    return
        except OSError:
            pass
        if process.poll() is not None:
            break
        time.sleep(0.5)
    process.kill()
    pytest.fail(f"the app did not start (exit {process.poll()}):\n{log.read_text()[-3000:]}")


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_to_harness_app_stops_its_streamlit_server(tmp_path: Path, signum: signal.Signals) -> None:
    store = tmp_path / "results.duckdb"
    with open_store(store):
        pass
    port = free_port()
    log = tmp_path / "app.log"
    process = start_app(store, port, log)
    try:
        wait_healthy(process, port, log)
        servers = children(process.pid)
        assert servers, "harness app started no child process"
        os.kill(process.pid, signum)
        assert process.wait(timeout=60) in (0, 128 + signum, -signum), log.read_text()[-2000:]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (any(alive(pid) for pid in servers) or port_open(port)):
            time.sleep(0.2)
        assert not [pid for pid in servers if alive(pid)], "the Streamlit server outlived harness app"
        assert not port_open(port), f"port {port} still serves after harness app stopped"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


CHILD_WITH_GRANDCHILD = textwrap.dedent(
    """
    import subprocess, sys, time
    grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    print(grandchild.pid, flush=True)
    time.sleep(300)
    """
)


def test_run_forwarding_signals_stops_the_whole_group(tmp_path: Path) -> None:
    """A parent running `run_forwarding_signals` gets SIGTERM: its child and the child's own child stop."""
    pid_file = tmp_path / "pids"
    driver = textwrap.dedent(
        f"""
        import sys
        from harness.processes import run_forwarding_signals
        sys.exit(run_forwarding_signals([sys.executable, "-c", {CHILD_WITH_GRANDCHILD!r}]))
        """
    )
    with pid_file.open("w") as out:
        parent = subprocess.Popen([sys.executable, "-c", driver], cwd=ROOT, stdout=out)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not pid_file.read_text().strip():
            time.sleep(0.1)
        grandchild = int(pid_file.read_text().split()[0])
        descendants = children(parent.pid)
        assert grandchild in descendants and len(descendants) >= 2
        parent.send_signal(signal.SIGTERM)
        assert parent.wait(timeout=30) == 128 + signal.SIGTERM  # the child died of the forwarded SIGTERM
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(alive(pid) for pid in descendants):
            time.sleep(0.1)
        assert not [pid for pid in descendants if alive(pid)]
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()


def test_run_forwarding_signals_returns_the_exit_status() -> None:
    assert run_forwarding_signals([sys.executable, "-c", "import sys; sys.exit(3)"]) == 3
    assert run_forwarding_signals([sys.executable, "-c", "pass"]) == 0


def test_stores_are_classified_before_anything_queries_them(tmp_path: Path) -> None:
    assert inspect_store(tmp_path / "missing.duckdb").kind == "missing"
    zero = tmp_path / "zero.duckdb"
    zero.write_bytes(b"")
    assert inspect_store(zero).kind == "empty"
    empty = tmp_path / "empty.duckdb"
    duckdb.connect(str(empty)).close()
    assert inspect_store(empty).kind == "empty"
    foreign = tmp_path / "foreign.duckdb"
    with duckdb.connect(str(foreign)) as connection:
        connection.execute("CREATE TABLE people (name TEXT)")
    state = inspect_store(foreign)
    assert state.kind == "foreign" and state.tables == ("people",)
    fake = tmp_path / "fake-meta.duckdb"  # a meta table that claims a version, and nothing else
    with duckdb.connect(str(fake)) as connection:
        connection.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
        connection.execute("INSERT INTO meta VALUES ('store_version', '3')")
    assert inspect_store(fake).kind == "foreign"
    text = tmp_path / "text.duckdb"
    text.write_text("not a database at all")
    assert inspect_store(text).kind == "foreign"
    store = tmp_path / "store.duckdb"
    with open_store(store):
        pass
    assert inspect_store(store).kind == "ok"


def test_harness_app_refuses_a_foreign_file_before_starting(tmp_path: Path) -> None:
    foreign = tmp_path / "foreign.duckdb"
    with duckdb.connect(str(foreign)) as connection:
        connection.execute("CREATE TABLE people (name TEXT)")
    result = subprocess.run(
        [sys.executable, "-m", "harness.cli", "app", "--store", str(foreign), "--headless"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2 and "not a results store" in result.stderr


def _app_imports() -> set[str]:
    """Every module the app's pages and helpers import (app/*.py, app/views/*.py), by static reading."""
    import ast

    found: set[str] = set()
    for path in [*ROOT.glob("app/*.py"), *ROOT.glob("app/views/*.py")]:
        if path.name == "server.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                found.add(node.module)
    return found


def test_the_app_server_preloads_what_the_pages_import_and_runs_streamlit() -> None:
    """app/server.py (what `harness app` starts) imports its PRELOAD list, each an import of some page,
    then hands the command line to `streamlit` unchanged."""
    sys.path.insert(0, str(ROOT / "app"))
    try:
        import server
    finally:
        sys.path.remove(str(ROOT / "app"))
    imported = _app_imports()
    assert set(server.PRELOAD) <= imported, set(server.PRELOAD) - imported
    probe = "import sys, server; server.preload(); print(all(m in sys.modules for m in server.PRELOAD))"
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT / "app", capture_output=True, text=True, check=False)
    assert done.returncode == 0 and done.stdout.strip() == "True", done.stderr
    version = subprocess.run(
        [sys.executable, str(ROOT / "app" / "server.py"), "--version"], capture_output=True, text=True, check=False
    )
    import streamlit

    assert version.returncode == 0 and streamlit.__version__ in version.stdout, version.stdout + version.stderr
