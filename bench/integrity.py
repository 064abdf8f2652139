"""Integrity bench: every hostile submission of tests/hostile_corpus.py through `harness ingest`.

Each case is ingested by its own `harness ingest CASE --store S` process (as CI would), with the
harness's real caps; the table reports, per attack, the exit code, whether anything reached the
store, the wall time and the peak memory (max RSS of the process, interpreter included), and a
summary: cases tried, rejected, ingested (must be 0), worst time and memory (targets: under 10 s and
500 MB per file on 2 cores). The valid submission is run the same way as a baseline.

    python bench/integrity.py [--cases N] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

TIME_TARGET_S = 10.0
MEMORY_TARGET_MB = 500.0


def run_ingest(case: Path, store: Path) -> tuple[int, float, float, str]:
    """(exit code, seconds, peak MB, first stderr line) of `harness ingest case --store store`."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    with tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        process = subprocess.Popen(
            [sys.executable, "-m", "harness.cli", "ingest", str(case), "--store", str(store)],
            stdout=subprocess.DEVNULL,
            stderr=err,
            env=env,
            cwd=ROOT,
        )
        _, status, usage = os.wait4(process.pid, 0)  # this child's own peak memory
        seconds = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        lines = [line for line in err.read().decode(errors="replace").splitlines() if line.strip()]
    return process.returncode, seconds, usage.ru_maxrss / 1024, (lines[0] if lines else "")


def stored_runs(store: Path) -> int:
    if not store.exists():
        return 0
    from harness.store import open_store

    with open_store(store, read_only=True) as opened:
        return opened.summary()["runs"]


def main() -> int:
    from hostile_corpus import BASE, write_corpus

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=0, help="only the first N cases (0: all)")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        expected = write_corpus(work / "corpus")
        names = sorted(expected)[: args.cases or None]
        rows = []
        code, seconds, peak, _ = run_ingest(BASE, work / "baseline.duckdb")
        baseline = {"case": "(valid submission)", "code": code, "runs": stored_runs(work / "baseline.duckdb"),
                    "seconds": seconds, "peak_mb": peak, "message": ""}  # fmt: skip
        for index, name in enumerate(names):
            store = work / f"store-{index}.duckdb"
            code, seconds, peak, message = run_ingest(work / "corpus" / name, store)
            rows.append({"case": name, "code": code, "runs": stored_runs(store), "seconds": seconds,
                         "peak_mb": peak, "message": message})  # fmt: skip
            print(f"{name:40s} exit {code}  runs {rows[-1]['runs']}  {seconds:5.1f} s  {peak:6.0f} MB", flush=True)
    rejected = sum(1 for r in rows if r["code"] == 2 and r["runs"] == 0)
    ingested = sum(1 for r in rows if r["runs"] > 0)
    worst_time = max(rows, key=lambda r: r["seconds"])
    worst_memory = max(rows, key=lambda r: r["peak_mb"])
    print()
    print("| measure | value | target |")
    print("|---|---|---|")
    print(f"| hostile cases tried | {len(rows)} | |")
    print(f"| rejected (exit 2, nothing stored) | {rejected} | all |")
    print(f"| ingested | {ingested} | 0 |")
    print(f"| worst time per file | {worst_time['seconds']:.1f} s ({worst_time['case']}) | < {TIME_TARGET_S:.0f} s |")
    print(
        f"| worst peak memory per file | {worst_memory['peak_mb']:.0f} MB ({worst_memory['case']}) "
        f"| < {MEMORY_TARGET_MB:.0f} MB |"
    )
    print(
        f"| valid submission (baseline) | exit {baseline['code']}, {baseline['runs']} runs, "
        f"{baseline['seconds']:.1f} s, {baseline['peak_mb']:.0f} MB | |"
    )
    if args.json:
        args.json.write_text(json.dumps({"baseline": baseline, "cases": rows}, indent=1))
    return 0 if ingested == 0 and rejected == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
