"""Bench: the foundation's end-to-end costs on the digits zoo (zoo build, cold and cached eval).

Targets (issue 2): the whole `make demo` under 10 minutes on 2 cores; the zoo under 2 minutes.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from common import Row, print_table, timer

from harness.runner import EvalOptions, load_models, run_and_record
from harness.tasks import load_specs
from harness.zoo import zoo_models
from harness.zoo.digits import build


def run() -> list[Row]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        with timer() as t:
            build(root / "zoo")
        rows.append(Row("eval", "digits zoo build (6 models)", t[0], "s", "< 120 s", t[0] < 120))
        specs = [load_specs().get("calib")]
        options = EvalOptions(cache_dir=root / "cache")
        handles = load_models(zoo_models(root / "zoo"), options, "cpu")
        for label in ("cold cache", "warm cache"):
            with timer() as t:
                run_and_record(handles, specs, options, out=root / "subs", store_path=root / "r.duckdb")
            rows.append(Row("eval", f"calib on 6 models, {label}", t[0], "s"))
    return rows


if __name__ == "__main__":
    print_table(run(), "bench/eval.py")
