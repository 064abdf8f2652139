"""Bench: reliability under fault (issue 8).

- kill and resume: `harness eval` on the digits zoo killed with SIGKILL at random points, resumed
  each time; after every kill the store opens and every submission file is valid, and the final
  metrics equal those of an uninterrupted run;
- concurrent writers: 4 `harness eval` processes writing to one store at once; runs written (by
  the processes) against runs found (in the store and as files);
- cache corruption: cache entries damaged on disk (truncated, a flipped byte, a wrong checksum);
  how many are detected (never used) and recomputed.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import Row, print_table

from harness.cache import OutputCache
from harness.store import open_store
from harness.submissions import find_submissions
from harness.validation import validate_files
from harness.zoo import zoo_models
from harness.zoo.digits import build

HARNESS = str(Path(sys.executable).with_name("harness"))


def _start(args: list[str], cache: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "HARNESS_CACHE_DIR": str(cache), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    return subprocess.Popen([HARNESS, *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _metrics(store: Path) -> list[tuple[object, ...]]:
    with open_store(store, read_only=True) as opened:
        return opened.connection.execute(
            "SELECT run_id, metric, value, ci_low, ci_high FROM metrics ORDER BY 1, 2"
        ).fetchall()


def _consistent(store: Path, out: Path) -> bool:
    try:
        if store.exists():
            with open_store(store, read_only=True):
                pass
        return not out.exists() or not validate_files([out], rescore=False)[1]
    except Exception:
        return False


def run(n_kills: int = 8) -> list[Row]:
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        build(root / "zoo", profile="tiny")
        models = ",".join(str(m) for m in zoo_models(root / "zoo"))

        def args(folder: Path) -> list[str]:
            return [
                "eval",
                "--model",
                models,
                "--tasks",
                "calib,ood",
                "--store",
                str(folder / "r.duckdb"),
                "--out",
                str(folder / "subs"),
            ]

        started = time.monotonic()
        assert _start(args(root / "reference"), root / "reference-cache").wait() == 0
        duration = time.monotonic() - started
        rng = random.Random(0)
        survived = 0
        for _ in range(n_kills):
            process = _start(args(root / "work"), root / "work-cache")
            time.sleep(rng.uniform(0.3, duration))
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
            process.wait()
            survived += _consistent(root / "work" / "r.duckdb", root / "work" / "subs")
        assert _start(args(root / "work"), root / "work-cache").wait() == 0
        identical = _metrics(root / "work" / "r.duckdb") == _metrics(root / "reference" / "r.duckdb")
        rows += [
            Row(
                "reliability",
                f"kills (SIGKILL at random points) survived, of {n_kills}",
                survived,
                "",
                f"= {n_kills}",
                survived == n_kills,
            ),
            Row(
                "reliability",
                "resumed metrics identical to an uninterrupted run",
                float(identical),
                "bool",
                "= 1",
                identical,
            ),
        ]

        listed = zoo_models(root / "zoo")
        store, out = root / "concurrent" / "r.duckdb", root / "concurrent" / "subs"
        processes = [
            _start(
                [
                    "eval",
                    "--model",
                    ",".join(map(str, listed[i::4])),
                    "--tasks",
                    "calib",
                    "--store",
                    str(store),
                    "--out",
                    str(out),
                ],
                root / f"cc-{i}",
            )
            for i in range(4)
        ]
        ok = all(p.wait() == 0 for p in processes)
        with open_store(store, read_only=True) as opened:
            found = len(opened.dump()["runs"])
        files = len(find_submissions([out]))
        rows += [
            Row("reliability", "4 concurrent writers: runs written", len(listed), "runs"),
            Row(
                "reliability",
                "4 concurrent writers: runs found in the store",
                found,
                "runs",
                f"= {len(listed)}",
                ok and found == len(listed),
            ),
            Row(
                "reliability",
                "4 concurrent writers: submission files found",
                files,
                "files",
                f"= {len(listed)}",
                files == len(listed),
            ),
        ]

        cache = OutputCache(root / "work-cache")
        entries = sorted((root / "work-cache" / "outputs").rglob("*.npz"))
        damaged = 0
        for index, entry in enumerate(entries):
            payload = entry.read_bytes()
            if index % 3 == 0:
                entry.write_bytes(payload[: len(payload) // 2])
            elif index % 3 == 1:
                middle = len(payload) // 2
                entry.write_bytes(payload[:middle] + bytes([payload[middle] ^ 0xFF]) + payload[middle + 1 :])
            else:
                entry.with_suffix(".sha256").write_text("0" * 64)
            damaged += 1
        for entry in entries:
            cache.get(entry.stem)
        rows.append(
            Row(
                "reliability",
                f"corrupt cache entries detected, of {damaged}",
                cache.corrupt_entries,
                "",
                f"= {damaged}",
                cache.corrupt_entries == damaged,
            )
        )
        resumed = _start(args(root / "work"), root / "work-cache").wait() == 0
        identical = _metrics(root / "work" / "r.duckdb") == _metrics(root / "reference" / "r.duckdb")
        rows.append(
            Row(
                "reliability",
                "after corruption: recomputed metrics identical",
                float(resumed and identical),
                "bool",
                "= 1",
                resumed and identical,
            )
        )
    return rows


if __name__ == "__main__":
    print_table(run(), "bench/reliability.py")
