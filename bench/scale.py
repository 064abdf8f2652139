"""Bench: a sweep on Ray against the local executor, and a worker killed mid-sweep (issue 18).

The sweep: 8 models of the digits zoo (tiny profile, built in a temporary folder; the profile changes
training epochs only, evaluation costs what it costs on the full zoo) on calib, ood and longtail (each
model runs the tasks that fit it: the balanced models skip longtail), each from a cold cache:
- local executor: the whole sweep in this process;
- Ray, 2 workers: a local cluster of 2 CPUs, one CPU per model; its start-up (ray.init, then one worker
  per slot readied: imports, then gc.freeze, docs/scale.md#worker-processes) is measured apart, and the sweep once the cluster is up. Target: Ray at
  most 0.7x the local wall time;
- the same Ray sweep with one worker killed mid-run (SIGKILL right after its first forward pass is
  cached, by the fault hook of tests/ray_faults.py): units started more than once besides the killed
  one (target 0), the killed unit's forward passes that came back from the cache on its retry, and
  whether every model's per-sample outputs equal the local run's bit for bit (target: yes).
Both Ray sweeps are checked bit for bit against the local one. Wall times on a shared machine are
noisy: rerun on a quiet one before reading the ratio.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from common import Row, print_table, timer

REPO = Path(__file__).resolve().parent.parent
TASKS = ("calib", "ood", "longtail")
N_MODELS = 8
#: the model whose worker is killed in the fault run (one in the middle of the sweep)
KILLED = "digits-mlp-deep"


def _samples(recorded: Any) -> dict[str, list[bytes]]:
    return {
        item.result.submission.model.name: [np.ascontiguousarray(b.values).tobytes() for _, b in item.result.samples]
        for item in recorded
    }


def _sweep(models: list[Path], cache: Path, out: Path, executor: Any = None) -> list[Any]:
    from harness.runner import EvalOptions
    from harness.sweep import run_and_record
    from harness.tasks import load_specs

    errors: list[str] = []
    recorded = run_and_record(
        models,
        [load_specs().get(name) for name in TASKS],
        EvalOptions(cache_dir=cache),
        out=out,
        store_path=out / "results.duckdb",
        on_error=lambda path, error: errors.append(error.one_line()),
        on_skip=lambda handle, spec, reason: None,
        executor=executor,
    )
    if errors:
        raise RuntimeError("; ".join(errors))
    return recorded


def run() -> list[Row]:
    import ray

    sys.path.insert(0, str(REPO / "tests"))
    from ray_faults import cluster_runtime_env, kill_once, starts

    from harness.executors import ExecutorSettings
    from harness.executors.ray_cluster import RayExecutor
    from harness.runner import EvalOptions
    from harness.tasks import load_specs
    from harness.zoo import zoo_models
    from harness.zoo.digits import build

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        build(root / "zoo", profile="tiny")
        models = zoo_models(root / "zoo")[:N_MODELS]
        assert KILLED in [m.name for m in models]

        with timer() as t:
            local = _sweep(models, root / "cache-local", root / "local")
        local_s = t[0]
        expected = _samples(local)
        faults = root / "faults"
        faults.mkdir()
        with timer() as t:
            ray.init(
                num_cpus=2, object_store_memory=200 * 2**20, include_dashboard=False, log_to_driver=False,
                logging_level=logging.WARNING, runtime_env=cluster_runtime_env(faults),
            )  # fmt: skip
        init_s = t[0]
        try:
            with RayExecutor(ExecutorSettings(kind="ray"), EvalOptions()) as executor:
                warm_s = executor.warm_up([load_specs().get(name) for name in TASKS])
                with timer() as t:
                    on_ray = _sweep(models, root / "cache-ray", root / "ray", executor)
                ray_s = t[0]
                kill_once(faults, KILLED)
                (faults / "starts.log").unlink(missing_ok=True)
                with timer() as t:
                    faulty = _sweep(models, root / "cache-fault", root / "fault", executor)
                fault_s = t[0]
        finally:
            ray.shutdown()
        log = starts(faults)  # before the temporary folder goes

    again = sum(log.count(name) - 1 for name in set(log) if name != KILLED)
    retried = next(item.result for item in faulty if item.result.submission.model.name == KILLED)
    ratio = ray_s / local_s
    rows += [
        Row("scale", f"local executor: {len(models)} models x {', '.join(TASKS)} (cold cache)", local_s, "s"),
        Row("scale", "ray: local cluster start (ray.init, 2 CPUs)", init_s, "s"),
        Row("scale", "ray: 2 workers started and readied (imports, gc.freeze)", warm_s, "s"),
        Row("scale", "ray: the same sweep, 2 workers, cluster up (cold cache)", ray_s, "s"),
        Row("scale", "ray / local wall time (cluster up)", ratio, "x", "<= 0.7", ratio <= 0.7),
        Row("scale", "ray: per-sample outputs equal local, bit for bit", float(_samples(on_ray) == expected), "",
            "1", _samples(on_ray) == expected),
        Row("scale", f"ray, a worker killed mid-run ({KILLED}): wall time", fault_s, "s"),
        Row("scale", "killed worker: unit started again (retried by Ray)", log.count(KILLED) - 1, "", "1",
            log.count(KILLED) == 2),
        Row("scale", "killed worker: its forward passes reused from the cache on retry", retried.cache_hits, ""),
        Row("scale", "units recomputed beyond the killed one", again, "", "0", again == 0),
        Row("scale", "killed run: per-sample outputs equal local, bit for bit", float(_samples(faulty) == expected),
            "", "1", _samples(faulty) == expected),
    ]  # fmt: skip
    return rows


if __name__ == "__main__":
    print_table(run(), "bench/scale.py")
