"""Crash and resume, concurrent writers, corrupt cache entries, disk full and unwritable stores."""

from __future__ import annotations

import errno
import hashlib
import random
import signal
import time
from pathlib import Path

import numpy as np
import pytest
from processes import harness_env, start

from harness.cache import OutputCache
from harness.errors import HarnessError
from harness.store import open_store
from harness.submissions import find_submissions, read_submission
from harness.validation import validate_files
from harness.zoo import zoo_models


def eval_args(models: list[Path], store: Path, out: Path) -> list[str]:
    return [
        "eval",
        "--model",
        ",".join(map(str, models)),
        "--tasks",
        "calib,ood",
        "--store",
        str(store),
        "--out",
        str(out),
    ]


def metrics_by_run(store: Path) -> dict[str, list[tuple[object, ...]]]:
    with open_store(store, read_only=True) as opened:
        rows = opened.connection.execute(
            "SELECT run_id, metric, value, ci_low, ci_high FROM metrics ORDER BY run_id, metric"
        ).fetchall()
    out: dict[str, list[tuple[object, ...]]] = {}
    for row in rows:
        out.setdefault(str(row[0]), []).append(row[1:])
    return out


def check_consistent(store: Path, out: Path) -> int:
    """The store opens and every run in it has a valid submission file; returns the number of runs."""
    runs = 0
    if store.exists():
        with open_store(store, read_only=True) as opened:
            runs = len(opened.dump()["runs"])
    if out.exists():
        _, problems = validate_files([out], rescore=False)
        assert problems == [], problems
    return runs


@pytest.mark.slow
def test_killed_evaluations_resume_to_identical_results(tiny_zoo: Path, tmp_path: Path) -> None:
    models = [m for m in zoo_models(tiny_zoo) if "-lt" not in m.name]
    # Reference: one uninterrupted run.
    reference = tmp_path / "reference"
    done = start(eval_args(models, reference / "r.duckdb", reference / "subs"), reference / "cache")
    started = time.monotonic()
    assert done.wait(timeout=600) == 0, done.stderr.read() if done.stderr else ""
    duration = time.monotonic() - started
    # Interrupted: SIGKILL at random points, then resume, several times over the same folders.
    work = tmp_path / "work"
    rng = random.Random(7)
    kills = 0
    for _ in range(4):
        process = start(eval_args(models, work / "r.duckdb", work / "subs"), work / "cache")
        time.sleep(rng.uniform(0.3, max(0.5, duration * 0.9)))
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            kills += 1
        process.wait()
        check_consistent(work / "r.duckdb", work / "subs")
    final = start(eval_args(models, work / "r.duckdb", work / "subs"), work / "cache")
    assert final.wait(timeout=600) == 0
    assert kills >= 2
    check_consistent(work / "r.duckdb", work / "subs")
    assert metrics_by_run(work / "r.duckdb") == metrics_by_run(reference / "r.duckdb")


@pytest.mark.slow
def test_four_concurrent_writers_lose_no_run(tiny_zoo: Path, tmp_path: Path) -> None:
    models = zoo_models(tiny_zoo)[:8]
    store, out = tmp_path / "r.duckdb", tmp_path / "subs"
    processes = [
        start(
            [
                "eval",
                "--model",
                ",".join(map(str, models[i::4])),
                "--tasks",
                "calib",
                "--store",
                str(store),
                "--out",
                str(out),
            ],
            tmp_path / f"cache-{i}",
        )
        for i in range(4)
    ]
    for process in processes:
        assert process.wait(timeout=600) == 0, process.stderr.read() if process.stderr else ""
    with open_store(store, read_only=True) as opened:
        runs = opened.dump()["runs"]
    assert len(runs) == len(models) == len(find_submissions([out]))


def test_corrupt_cache_entries_are_detected_and_recomputed(tmp_path: Path) -> None:
    cache = OutputCache(tmp_path)
    arrays = {"logits": np.arange(12, dtype=np.float32).reshape(3, 4)}
    damages = {
        "truncated": lambda data, sums: data.write_bytes(data.read_bytes()[:40]),
        "flipped byte": lambda data, sums: data.write_bytes(_flip(data.read_bytes())),
        "missing checksum": lambda data, sums: sums.unlink(),
        "wrong checksum": lambda data, sums: sums.write_text("0" * 64),
        "empty file": lambda data, sums: data.write_bytes(b""),
    }
    detected = 0
    for name, damage in damages.items():
        key = hashlib.sha256(name.encode()).hexdigest()
        cache.put(key, arrays)
        data, sums = cache._paths(key)
        assert np.array_equal(cache.get(key)["logits"], arrays["logits"])  # type: ignore[index]
        damage(data, sums)
        before = cache.corrupt_entries
        assert cache.get(key) is None, name  # never used
        detected += cache.corrupt_entries - before
        cache.put(key, arrays)  # recomputed and written again
        assert np.array_equal(cache.get(key)["logits"], arrays["logits"])  # type: ignore[index]
    assert detected == 4  # every damage but a missing checksum, which is a plain miss


def _flip(payload: bytes) -> bytes:
    middle = len(payload) // 2
    return payload[:middle] + bytes([payload[middle] ^ 0xFF]) + payload[middle + 1 :]


def test_disk_full_gives_a_clear_error_and_keeps_earlier_results(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tiny_zoo: Path, tmp_path: Path
) -> None:
    from cli_helpers import run_cli

    store, out = tmp_path / "r.duckdb", tmp_path / "subs"
    first, second = zoo_models(tiny_zoo)[:2]
    assert run_cli(capsys, monkeypatch, *eval_args([first], store, out)).code == 0
    before = metrics_by_run(store)

    def full(path: Path, payload: bytes) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr("harness.submissions.atomic_write", full)
    result = run_cli(capsys, monkeypatch, *eval_args([second], store, out))
    assert result.code == 2 and "No space left on device" in result.err and "intact" in result.err
    assert metrics_by_run(store) == before
    assert all(read_submission(f) for f in find_submissions([out]))


def test_unwritable_store_paths_give_clear_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import duckdb

    with (
        pytest.raises(HarnessError, match="cannot create the store's folder"),
        open_store(Path("/proc/harness-x/r.duckdb")),
    ):
        pass
    store = tmp_path / "r.duckdb"
    with open_store(store) as opened:
        assert opened.tasks() == []
    real_connect = duckdb.connect

    def read_only_filesystem(*args: object, **kwargs: object) -> object:
        if not kwargs.get("read_only"):
            raise duckdb.IOException(f'IO Error: Cannot open file "{store}": Read-only file system')
        return real_connect(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(duckdb, "connect", read_only_filesystem)
    with pytest.raises(HarnessError, match="not writable") as error, open_store(store):
        pass
    assert "untouched" in str(error.value)
    with open_store(store, read_only=True) as opened:  # earlier data still readable
        assert opened.tasks() == []


def test_a_held_store_makes_writers_wait_not_fail(tmp_path: Path, tiny_zoo: Path) -> None:
    import threading

    store = tmp_path / "r.duckdb"
    with open_store(store):
        pass
    released = threading.Event()

    def hold() -> None:
        with open_store(store, read_only=True):  # e.g. the app reading
            time.sleep(1.5)
        released.set()

    holder = threading.Thread(target=hold)
    holder.start()
    time.sleep(0.2)
    process = start(
        [
            "eval",
            "--model",
            str(zoo_models(tiny_zoo)[0]),
            "--tasks",
            "calib",
            "--store",
            str(store),
            "--out",
            str(tmp_path / "subs"),
        ],
        tmp_path / "cache",
    )
    assert process.wait(timeout=300) == 0, process.stderr.read() if process.stderr else ""
    holder.join()
    assert released.is_set()
    assert harness_env(tmp_path)["HF_HUB_OFFLINE"] == "1"
