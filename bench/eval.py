"""Bench: the evaluation spine on the digits zoo.

- zoo build time (target: the digits zoo in under 2 minutes on 2 cores);
- calib on the six balanced models, cold and cached;
- shared inference: the wall time of `harness eval --tasks calib,ood,longtail` on one model against
  `--tasks calib` alone, whole commands from a cold cache, best of 3 (target: at most 1.25x).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from common import Row, best_of, print_table, timer

from harness.runner import EvalOptions, load_models, unfit_reason
from harness.sweep import run_and_record
from harness.tasks import load_specs
from harness.zoo import zoo_models
from harness.zoo.digits import build

HARNESS = str(Path(sys.executable).with_name("harness"))


def _command(model: Path, tasks: str, root: Path) -> None:
    cache = Path(tempfile.mkdtemp(dir=root))  # cold: inference is part of the cost
    env = {**os.environ, "HARNESS_CACHE_DIR": str(cache)}
    args = [HARNESS, "eval", "--model", str(model), "--tasks", tasks, "--no-store", "--out", str(cache / "subs")]
    subprocess.run(args, env=env, check=True, capture_output=True)


def run() -> list[Row]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        with timer() as t:
            build(root / "zoo")
        rows.append(Row("eval", "digits zoo build (15 models)", t[0], "s", "< 120 s", t[0] < 120))
        spec = load_specs().get("calib")
        options = EvalOptions(cache_dir=root / "cache")
        handles = [h for h in load_models(zoo_models(root / "zoo"), options, "cpu") if "-lt" not in h.card.name]
        assert all(unfit_reason(spec, h) is None for h in handles)
        for label in ("cold cache", "warm cache"):
            with timer() as t:
                run_and_record(handles, [spec], options, out=root / "subs", store_path=root / "r.duckdb")
            rows.append(Row("eval", f"calib on {len(handles)} models, {label}", t[0], "s"))
        model = root / "zoo" / "digits-lt100-mlp-logit-adjusted"
        calib_only = best_of(lambda: _command(model, "calib", root))
        all_three = best_of(lambda: _command(model, "calib,ood,longtail", root))
        rows += [
            Row("eval", "`harness eval --tasks calib` (one model, whole command)", calib_only, "s"),
            Row("eval", "`harness eval --tasks calib,ood,longtail` (same model)", all_three, "s"),
            Row(
                "eval",
                "calib,ood,longtail / calib (shared inference)",
                all_three / calib_only,
                "x",
                "<= 1.25",
                all_three / calib_only <= 1.25,
            ),
        ]
    return rows


if __name__ == "__main__":
    print_table(run(), "bench/eval.py")
