"""`--executor ray --address ray://HOST:PORT`: a sweep through Ray Client against a cluster started apart.

The cluster is a head node of this machine started with `ray start --head --block` in its own temp
dir (RAY_TMPDIR), so other tests' `ray.init()` never see it, and stopped with its process group. The
driver is `harness eval` in a subprocess: it connects through Ray Client, the workers run the units,
the driver alone writes the submissions. A remote cluster's workers keep Ray's thread counts, so the
per-sample outputs agree with a local run within float rounding (docs/scale.md), and the files pass
`harness validate`.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from harness.errors import HarnessError
from harness.executors import ExecutorSettings
from harness.runner import EvalOptions

MODELS = ("digits-mlp-wide", "digits-lt100-mlp-none")
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def offline_env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "RAY_AUTH_MODE": "disabled"}
    env.pop("RAY_ADDRESS", None)
    return {**env, **extra}


@pytest.fixture(scope="module")
def client_address() -> Iterator[str]:
    """A Ray head node with a Ray Client server; yields its ray:// address."""
    pytest.importorskip("grpc", reason="Ray Client (ray[client], in the dev extra) is not installed")
    temp = tempfile.mkdtemp(prefix="rc", dir="/tmp")  # short: Ray's socket paths live under it
    gcs, client = free_port(), free_port()
    head = subprocess.Popen(
        [str(BIN / "ray"), "start", "--head", "--block", "--num-cpus", "2", "--port", str(gcs),
         "--ray-client-server-port", str(client), "--include-dashboard=false", "--disable-usage-stats"],
        env=offline_env(RAY_TMPDIR=temp), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                socket.create_connection(("127.0.0.1", client), timeout=1).close()
                break
            except OSError:
                if head.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"the Ray head node did not start (exit code {head.poll()})")
                time.sleep(0.5)
        yield f"ray://127.0.0.1:{client}"
    finally:
        os.killpg(head.pid, signal.SIGTERM)  # `ray start --block` stops its node on SIGTERM
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
            head.wait()
        shutil.rmtree(temp, ignore_errors=True)


def harness_eval(zoo: Path, out: Path, cache: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    models = [arg for m in MODELS for arg in ("--model", str(zoo / m))]
    command = [str(BIN / "harness"), "eval", *models, "--tasks", "calib,ood", "--no-store", "--out", str(out),
               "--cache-dir", str(cache), *extra]  # fmt: skip
    return subprocess.run(command, env=offline_env(), capture_output=True, text=True, timeout=600)


def blocks(folder: Path) -> dict[tuple[str, str, str, str], np.ndarray]:
    """(model folder, task, split, sample id) -> per-sample values, from every parquet under `folder`."""
    out = {}
    for file in folder.rglob("*.parquet"):
        table = pq.read_table(file).to_pydict()
        for task, split, sample, values in zip(table["task"], table["split"], table["sample_id"], table["values"], strict=True):  # fmt: skip
            out[(file.parent.name, task, split, sample)] = np.asarray(values, dtype=np.float64)
    return out


@pytest.mark.slow
def test_a_sweep_through_ray_client_equals_a_local_run(client_address: str, tiny_zoo: Path, tmp_path: Path) -> None:
    remote = harness_eval(tiny_zoo, tmp_path / "ray", tmp_path / "cache-ray", "--executor", "ray", "--address", client_address)  # fmt: skip
    assert remote.returncode == 0, remote.stderr[-3000:]
    local = harness_eval(tiny_zoo, tmp_path / "local", tmp_path / "cache-local")
    assert local.returncode == 0, local.stderr[-3000:]
    ours, theirs = blocks(tmp_path / "ray"), blocks(tmp_path / "local")
    assert ours.keys() == theirs.keys() and len(ours) > 1000
    for key, values in ours.items():
        np.testing.assert_allclose(values, theirs[key], rtol=1e-9, atol=1e-12, err_msg=str(key))
    names = sorted(p.name for p in (tmp_path / "ray").rglob("*.json"))
    assert names == sorted(p.name for p in (tmp_path / "local").rglob("*.json"))  # same submission ids
    for file in (tmp_path / "ray").rglob("*.json"):
        submission = json.loads(file.read_text())
        assert submission["provenance"]["command"].count(client_address) == 1
    checked = subprocess.run([str(BIN / "harness"), "validate", str(tmp_path / "ray")], env=offline_env(),
                             capture_output=True, text=True, timeout=600)  # fmt: skip
    assert checked.returncode == 0 and f"{len(MODELS)} valid" in checked.stdout, checked.stdout + checked.stderr


def test_a_ray_address_without_ray_client_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    ray = pytest.importorskip("ray")
    from harness.executors.ray_cluster import RayExecutor

    def no_client(*args: object, **kwargs: object) -> None:
        raise ValueError("Ray Client requires pip package `ray[client]`. If you installed the minimal Ray ...")

    monkeypatch.setattr(ray, "init", no_client)
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    executor = RayExecutor(ExecutorSettings(kind="ray", address="ray://head:10001"), EvalOptions())
    with pytest.raises(HarnessError, match="needs Ray Client") as raised:
        executor.__enter__()
    assert 'pip install "harness[ray]"' in raised.value.fix


def test_a_ray_client_connection_whose_server_died_is_tried_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """The head's per-connection server process dies now and then while it starts (ray-project/ray#63202):
    the driver tries 3 times, then says what happened; other connection errors are not retried."""
    ray = pytest.importorskip("ray")
    import harness.executors.ray_cluster as ray_cluster

    calls: list[str | None] = []
    failures = {"left": 2}

    def flaky_init(address: str | None = None, **kwargs: object) -> None:
        calls.append(address)
        if failures["left"]:
            failures["left"] -= 1
            raise ConnectionAbortedError("Initialization failure from server:\nTraceback ...")

    monkeypatch.setattr(ray, "init", flaky_init)
    monkeypatch.setattr(ray, "shutdown", lambda: None)
    monkeypatch.setattr(ray_cluster.time, "sleep", lambda seconds: None)
    executor = ray_cluster.RayExecutor(ExecutorSettings(kind="ray", address="ray://head:10001"), EvalOptions())
    executor._connect(ray)
    assert calls == ["ray://head:10001"] * 3 and executor.connected_here

    calls.clear()
    failures["left"] = 10
    with pytest.raises(HarnessError, match="Initialization failure") as raised:
        executor._connect(ray)
    assert len(calls) == ray_cluster.CLIENT_ATTEMPTS == 3 and "died 3 times" in (raised.value.fix or "")

    def refused(address: str | None = None, **kwargs: object) -> None:
        calls.append(address)
        raise ConnectionError("Could not connect to the GCS at head:6379")

    calls.clear()
    monkeypatch.setattr(ray, "init", refused)
    for address in ("ray://head:10001", "head:6379"):
        with pytest.raises(HarnessError, match="cannot connect"):
            ray_cluster.RayExecutor(ExecutorSettings(kind="ray", address=address), EvalOptions())._connect(ray)
    assert calls == ["ray://head:10001", "head:6379"]  # once each
