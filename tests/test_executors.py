"""Executors (harness/executors): Ray against local, faults, resume, shards, flags, Ray missing.

The Ray tests share one local cluster per module (2 CPUs, a small object store, no dashboard), whose
workers carry the fault-injection hook of tests/ray_faults.py, and compare with one local baseline.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
from cli_helpers import run_cli
from ray_faults import cluster_runtime_env, kill_once, starts

from harness.errors import HarnessError
from harness.executors import ExecutorSettings, LocalExecutor, check_address
from harness.executors.sharding import auto_shard_size, concat_shards, shard_ranges
from harness.executors.work import infer_shard
from harness.registry import INFERENCE
from harness.runner import EvalOptions
from harness.sweep import Recorded, run_and_record
from harness.tasks import load_specs

MODELS = ("digits-mlp-wide", "digits-mlp-small", "digits-lt100-mlp-none")  # not sorted: order is the given one
TASKS = ("calib", "ood")


def _specs() -> list[Any]:
    return [load_specs().get(name) for name in TASKS]


def _sweep(
    models: Sequence[Path], cache: Path, executor: Any = None, out: Path | None = None, store: Path | None = None
) -> tuple[list[Recorded], list[str]]:
    errors: list[str] = []
    recorded = run_and_record(
        models,
        _specs(),
        EvalOptions(cache_dir=cache),
        out=out,
        store_path=store,
        on_error=lambda path, error: errors.append(error.one_line()),
        on_skip=lambda handle, spec, reason: None,
        executor=executor,
    )
    return recorded, errors


def _runs(recorded: Recorded) -> list[dict[str, Any]]:
    """The model's runs as recorded, less their durations: metrics, CIs, parameters, artifacts."""
    return [run.model_dump(exclude={"duration_s"}) for run in recorded.result.submission.results]


def _samples(recorded: Recorded) -> list[tuple[str, str, list[str], bytes]]:
    """Every per-sample block of a model's result, its values as raw bytes (bit-for-bit comparison)."""
    return [(task, b.split, b.ids, np.ascontiguousarray(b.values).tobytes()) for task, b in recorded.result.samples]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A local Ray cluster for this module; yields the fault-injection folder of its workers."""
    ray = pytest.importorskip("ray")
    faults = tmp_path_factory.mktemp("faults")
    ray.init(
        num_cpus=2,
        object_store_memory=200 * 2**20,
        include_dashboard=False,
        log_to_driver=False,
        logging_level=logging.WARNING,
        runtime_env=cluster_runtime_env(faults),
    )
    try:
        yield faults
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def baseline(tiny_zoo: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Recorded]:
    """The local executor's results for MODELS, by model name."""
    root = tmp_path_factory.mktemp("local")
    recorded, errors = _sweep([tiny_zoo / m for m in MODELS], root / "cache", out=root / "subs")
    assert errors == []
    return {r.result.submission.model.name: r for r in recorded}


def _ray(**settings: Any) -> Any:
    from harness.executors.ray_cluster import RayExecutor

    return RayExecutor(ExecutorSettings(kind="ray", **settings), EvalOptions())


# ----------------------------------------------------------------------------- Ray against local


@pytest.mark.slow
def test_ray_equals_local_bit_for_bit_with_the_driver_the_single_writer_in_model_order(
    cluster: Path, tiny_zoo: Path, baseline: dict[str, Recorded], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import harness.submissions

    writes: list[tuple[int, str]] = []
    write = harness.submissions.write_submission

    def recording_write(out: Path, submission: Any, samples: Any) -> Path:
        writes.append((os.getpid(), submission.model.name))
        return write(out, submission, samples)

    monkeypatch.setattr(harness.submissions, "write_submission", recording_write)
    out, store = tmp_path / "subs", tmp_path / "results.duckdb"
    with _ray() as executor:
        recorded, errors = _sweep([tiny_zoo / m for m in MODELS], tmp_path / "cache", executor, out, store)
    assert errors == []
    assert writes == [(os.getpid(), m) for m in MODELS]  # this process wrote every file, in the given order
    assert sorted(p.parent.name for p in out.rglob("*.json")) == sorted(f"harness-zoo__{m}" for m in MODELS)
    for item in recorded:
        local = baseline[item.result.submission.model.name]
        assert item.result.submission.submission_id == local.result.submission.submission_id
        assert _samples(item) == _samples(local)  # per-sample outputs, bit for bit
        assert _runs(item) == _runs(local)  # metrics and CIs too
        local_file = local.submission_path
        assert local_file is not None and item.submission_path is not None
        assert pq.read_table(item.submission_path.with_suffix(".parquet")).equals(
            pq.read_table(local_file.with_suffix(".parquet"))
        )
    from harness.store import open_store

    with open_store(store, read_only=True) as opened:
        assert len(opened.dump()["submissions"]) == len(MODELS)


@pytest.mark.slow
def test_a_failing_model_reports_one_line_and_the_others_complete(
    cluster: Path, tiny_zoo: Path, tmp_path: Path
) -> None:
    broken = tmp_path / "digits-broken"
    shutil.copytree(tiny_zoo / "digits-mlp-small", broken)
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])  # truncated: a HarnessError on the worker
    kill_once(cluster, "digits-mlp-wide")  # and a worker that dies, with no retry left
    models = [tiny_zoo / "digits-mlp-small", broken, tiny_zoo / "digits-mlp-wide", tiny_zoo / "digits-lt100-mlp-none"]
    with _ray(max_retries=0) as executor:
        recorded, errors = _sweep(models, tmp_path / "cache", executor)
    assert [r.result.submission.model.name for r in recorded] == ["digits-mlp-small", "digits-lt100-mlp-none"]
    assert len(errors) == 2 and all("\n" not in e for e in errors)
    assert "safetensors" in errors[0] and str(broken) in errors[0]
    assert "WorkerCrashedError" in errors[1] and "digits-mlp-wide" in errors[1]


@pytest.mark.slow
def test_a_killed_worker_is_retried_and_nothing_finished_is_recomputed(
    cluster: Path, tiny_zoo: Path, baseline: dict[str, Recorded], tmp_path: Path
) -> None:
    (cluster / "starts.log").unlink(missing_ok=True)
    kill_once(cluster, "digits-mlp-small")
    with _ray() as executor:
        recorded, errors = _sweep([tiny_zoo / m for m in MODELS], tmp_path / "cache", executor)
    assert errors == [] and (cluster / "killed").exists()
    log = starts(cluster)
    assert sorted(log) == sorted([*MODELS, "digits-mlp-small"])  # the killed unit ran twice, every other once
    by_name = {r.result.submission.model.name: r for r in recorded}
    killed = by_name["digits-mlp-small"].result
    assert killed.cache_hits == 1  # its forward pass before the kill came back from the cache
    passes = sum(r.result.cache_misses + r.result.cache_hits for r in baseline.values())
    assert sum(r.result.cache_misses for r in recorded) == passes - 1
    for name, item in by_name.items():
        assert _samples(item) == _samples(baseline[name])


@pytest.mark.slow
def test_a_restarted_driver_resumes_from_the_cache(cluster: Path, tiny_zoo: Path, tmp_path: Path) -> None:
    import ray

    out, cache = tmp_path / "subs", tmp_path / "cache"
    models = ",".join(str(tiny_zoo / m) for m in MODELS)
    command = [
        str(Path(sys.executable).with_name("harness")), "eval", "--model", models, "--tasks", ",".join(TASKS),
        "--executor", "ray", "--address", ray.get_runtime_context().gcs_address, "--no-store",
        "--out", str(out), "--cache-dir", str(cache),
    ]  # fmt: skip
    driver = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 180
    while not list(out.rglob("*.json")) and driver.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    driver.send_signal(signal.SIGKILL)  # the driver dies mid-sweep (or just after it)
    driver.wait()
    written = {p.parent.name.split("__")[1]: p.stem for p in out.rglob("*.json")}
    assert written, driver.stderr.read().decode() if driver.stderr else ""
    with _ray() as executor:
        recorded, errors = _sweep([tiny_zoo / m for m in MODELS], cache, executor, out)
    assert errors == []
    for item in recorded:
        name = item.result.submission.model.name
        if name in written:  # finished before the restart: every forward pass from the cache, same id
            assert item.result.cache_misses == 0
            assert item.result.submission.submission_id == written[name]


# ----------------------------------------------------------------------------- shards


@pytest.mark.slow
def test_sharded_inference_equals_unsharded(
    cluster: Path, tiny_zoo: Path, baseline: dict[str, Recorded], tmp_path: Path
) -> None:
    with _ray(shard_size=256) as executor:  # the train split (650 samples) runs as 3 shards
        (recorded,), errors = _sweep([tiny_zoo / "digits-mlp-wide"], tmp_path / "cache", executor)
    assert errors == []
    assert _samples(recorded) == _samples(baseline["digits-mlp-wide"])
    assert _runs(recorded) == _runs(baseline["digits-mlp-wide"])


def test_shards_of_a_split_concatenate_to_the_whole_split(tiny_zoo: Path) -> None:
    from harness.data import get_split, load_suite

    split = get_split(load_suite(load_specs().get("ood").dataset), "train")
    options = EvalOptions()
    path = tiny_zoo / "digits-mlp-deep"
    from harness.executors.work import loaded_model
    from harness.runner import load_options

    identity = loaded_model(path, load_options(options, "cpu")).identity
    whole = infer_shard(path, options, identity, split, None, "classify", {})
    for size, exact in ((256, True), (100, False)):
        parts = [
            infer_shard(path, options, identity, split, (r.start, r.stop), "classify", {})
            for r in shard_ranges(len(split), size)
        ]
        merged = concat_shards(parts)
        assert set(merged) == set(whole)
        for name in whole:
            if exact:  # shards aligned with the batches: the same batches, the same bits
                assert merged[name].tobytes() == whole[name].tobytes()
            else:
                np.testing.assert_allclose(merged[name], whole[name], rtol=1e-5, atol=1e-6)
    with pytest.raises(HarnessError, match="not the one the driver planned"):
        infer_shard(path, options, "0" * 64, split, None, "classify", {})


@pytest.mark.slow
def test_language_model_shards_match_and_ragged_choices_are_padded(lm_zoo: Path) -> None:
    from harness.data import get_split, load_suite
    from harness.executors.work import loaded_model
    from harness.runner import load_options

    options = EvalOptions()
    path = next(p for p in sorted(lm_zoo.iterdir()) if (p / "config.json").exists())
    identity = loaded_model(path, load_options(options, "cpu")).identity
    for task, split_name, inference in (("lm_loss", "heldout", "lm-rolling-nll"), ("calib-lm", "test", "classify")):
        split = get_split(load_suite(load_specs().get(task).dataset), split_name)
        assert INFERENCE.get(inference).shardable
        whole = infer_shard(path, options, identity, split, None, inference, {})
        parts = [
            infer_shard(path, options, identity, split, (r.start, r.stop), inference, {})
            for r in shard_ranges(len(split), max(1, len(split) // 3))
        ]
        merged = concat_shards(parts)
        for name in whole:
            assert merged[name].shape == whole[name].shape
            np.testing.assert_allclose(merged[name], whole[name], rtol=1e-5, atol=1e-5)


def test_shard_ranges_auto_size_and_concatenation_rules() -> None:
    assert shard_ranges(5, 2) == [range(0, 2), range(2, 4), range(4, 5)]
    assert shard_ranges(0, 3) == [range(0, 0)]
    assert [len(r) for r in shard_ranges(650, 256)] == [256, 256, 138]
    with pytest.raises(ValueError):
        shard_ranges(5, 0)
    assert auto_shard_size(10_000, slots=4, batch_size=256) == 2560  # ceil(10000 / 4) up to a batch multiple
    assert auto_shard_size(10_000, slots=1, batch_size=256) is None  # one slot: the split runs whole
    assert auto_shard_size(600, slots=8, batch_size=256) == 512  # never below the minimum
    assert auto_shard_size(400, slots=8, batch_size=256) is None
    ragged = concat_shards([{"logits": np.zeros((2, 3))}, {"logits": np.ones((1, 2))}])
    assert ragged["logits"].shape == (3, 3) and ragged["logits"][2, 2] == -np.inf
    with pytest.raises(HarnessError, match="different outputs"):
        concat_shards([{"a": np.zeros(2)}, {"b": np.zeros(2)}])
    with pytest.raises(HarnessError, match="do not concatenate"):
        concat_shards([{"a": np.zeros((1, 2), dtype=np.int64)}, {"a": np.zeros((1, 3), dtype=np.int64)}])


# ----------------------------------------------------------------------------- the command line


@pytest.mark.slow
def test_cli_runs_a_sweep_on_ray_with_the_exit_codes_of_local(
    cluster: Path, tiny_zoo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    models = f"{tiny_zoo / 'digits-lt100-mlp-none'},{tiny_zoo / 'digits-mlp-small'}"
    args = ["eval", "--model", models, "--tasks", "calib,longtail", "--out", str(tmp_path / "subs")]
    args += ["--store", str(tmp_path / "r.duckdb"), "--cache-dir", str(tmp_path / "cache"), "--executor", "ray"]
    result = run_cli(capsys, monkeypatch, *args)
    assert result.code == 1, result.err  # digits-mlp-small does not fit longtail: skipped, as locally
    assert "ray: 2 models as Ray tasks" in result.out and "digits-mlp-small: skipped longtail" in result.out
    assert len(list((tmp_path / "subs").rglob("*.json"))) == 2
    single = run_cli(capsys, monkeypatch, *args[:2], str(tiny_zoo / "digits-mlp-small"), *args[3:4], "calib", *args[5:])
    assert single.code == 0, single.err
    assert "1 model, its forward passes in Ray shards" in single.out and "0 forward passes" in single.out


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--executor", "dask"], "unknown executor"),
        (["--address", "auto"], "only apply to the Ray executor"),
        (["--shard-size", "10"], "only apply to the Ray executor"),
        (["--executor", "ray", "--address", "not an address"], "not a Ray cluster address"),
        (["--executor", "ray", "--address", "ray://head:99999"], "not a Ray cluster address"),
        (["--executor", "ray", "--gpus-per-model", "-1"], "--gpus-per-model must be 0 or more"),
        (["--executor", "ray", "--gpus-per-model", "1", "--device", "cpu"], "reserves GPUs, but --device cpu"),
        (["--executor", "ray", "--cpus-per-model", "0"], "--cpus-per-model must be more than 0"),
        (["--executor", "ray", "--shard-size", "0"], "--shard-size must be 1 or more"),
    ],
)
def test_cli_refuses_bad_executor_flags_before_anything_runs(
    flags: list[str],
    message: str,
    tiny_zoo: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    args = ["eval", "--model", str(tiny_zoo / "digits-mlp-small"), "--tasks", "calib", "--no-store"]
    result = run_cli(capsys, monkeypatch, *args, "--out", str(tmp_path / "subs"), *flags)
    assert result.code == 2 and message in result.err, result.err
    assert not (tmp_path / "subs").exists()


def test_without_ray_the_ray_executor_says_how_to_install_it(
    tiny_zoo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    args = ["eval", "--model", str(tiny_zoo / "digits-mlp-small"), "--tasks", "calib", "--no-store"]
    result = run_cli(capsys, monkeypatch, *args, "--out", str(tmp_path / "subs"), "--executor", "ray")
    assert result.code == 2 and "pip install 'harness[ray]'" in result.err, result.err
    assert not (tmp_path / "subs").exists()


def test_addresses_and_the_local_executor_default() -> None:
    for good in ("auto", "ray://10.0.0.1:10001", "head-node.example:6379", "ray://[::1]:10001"):
        check_address(good)
    for bad in ("", "ray://", "head", "ray://head:0", "http://head:80", "head:port"):
        with pytest.raises(HarnessError, match="not a Ray cluster address"):
            check_address(bad)
    ExecutorSettings().check()
    assert isinstance(LocalExecutor(), LocalExecutor)


READY_PROBE = """
import gc, sys
from harness.executors.work import on_worker, readiness
from harness.tasks import load_specs

ready = readiness([load_specs().get(name) for name in ("calib", "ood")])
assert gc.get_freeze_count() == 0 and "harness.data.digits" not in sys.modules
assert on_worker(sorted, [3, 1, 2], **ready) == [1, 2, 3]
frozen = gc.get_freeze_count()
print(frozen, "harness.data.digits" in sys.modules, "harness.tasks.ood" in sys.modules)
on_worker(len, [1], **ready)
cycle = []
cycle.append(cycle)
del cycle
print(gc.get_freeze_count() == frozen, gc.collect() >= 1)
"""


def test_a_worker_process_is_readied_once_and_its_imports_are_frozen() -> None:
    """`on_worker` (every Ray task) imports what the specs' units need, then freezes the long-lived objects
    once per process; objects made afterwards are collected as usual. Run in a fresh interpreter: the
    test process itself must not be frozen."""
    done = subprocess.run([sys.executable, "-c", READY_PROBE], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    first, second = (line.split() for line in done.stdout.strip().splitlines())
    assert int(first[0]) > 50_000 and first[1:] == ["True", "True"], first  # torch and scikit-learn alone: 1e5+
    assert second == ["True", "True"]
