"""The CLI end to end on the tiny zoo: eval, cache, submissions, ingest, leaderboard, demo."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import run_cli

from harness.runner import EvalOptions, Runner, load_models
from harness.store import open_store
from harness.tasks import load_specs


def test_tasks_lists_capability_and_main_metric(capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    result = run_cli(capsys, monkeypatch, "tasks")
    assert result.code == 0
    assert "calib" in result.out and "logits" in result.out and "ece (lower is better)" in result.out


def test_models_lists_kinds_and_inspects_a_checkpoint(capsys, monkeypatch, tiny_zoo: Path) -> None:  # type: ignore[no-untyped-def]
    assert "torch-classifier" in run_cli(capsys, monkeypatch, "models").out
    result = run_cli(capsys, monkeypatch, "models", str(tiny_zoo / "digits-mlp-small"))
    assert result.code == 0
    assert "harness-zoo/digits-mlp-small" in result.out and "features, logits" in result.out


def test_zoo_build_writes_cards_and_weights(capsys, monkeypatch, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = run_cli(
        capsys, monkeypatch, "zoo", "build", "--dir", str(tmp_path), "--family", "digits", "--profile", "tiny"
    )
    assert result.code == 0, result.err
    folders = sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("."))
    assert len(folders) >= 4
    for name in folders:
        card = json.loads((tmp_path / name / "card.json").read_text())
        assert card["name"] == name and card["n_parameters"] > 0 and card["train_loss_nats"] > 0
        assert {"epochs", "hidden_dims", "label_smoothing"} <= set(card["recipe"])
        assert (tmp_path / name / "model.safetensors").stat().st_size > 0
    assert run_cli(capsys, monkeypatch, "zoo", "build", "--dir", str(tmp_path), "--family", "digts").code == 2


def test_eval_writes_submissions_and_store_then_rebuild_matches(
    capsys, monkeypatch, tiny_zoo: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    models = f"{tiny_zoo / 'digits-mlp-small'},{tiny_zoo / 'digits-mlp-wide'}"
    store, out = tmp_path / "results.duckdb", tmp_path / "submissions"
    first = run_cli(
        capsys, monkeypatch, "eval", "--model", models, "--tasks", "calib", "--store", str(store), "--out", str(out)
    )
    assert first.code == 0, first.err
    assert "ece *" in first.out and "4 forward passes" in first.out
    files = sorted(out.rglob("*.json"))
    assert [f.parent.name for f in files] == ["harness-zoo__digits-mlp-small", "harness-zoo__digits-mlp-wide"]
    assert all(f.with_suffix(".parquet").exists() for f in files)
    second = run_cli(
        capsys, monkeypatch, "eval", "--model", models, "--tasks", "calib", "--store", str(store), "--out", str(out)
    )
    assert "0 forward passes, 4 reused from the cache" in second.out
    assert sorted(out.rglob("*.json")) == files  # same inputs -> same submission ids

    assert run_cli(capsys, monkeypatch, "validate", str(out)).code == 0
    rebuilt = tmp_path / "rebuilt.duckdb"
    result = run_cli(capsys, monkeypatch, "ingest", str(out), "--store", str(rebuilt), "--rebuild")
    assert result.code == 0 and "2 submissions" in result.out
    with open_store(store, read_only=True) as a, open_store(rebuilt, read_only=True) as b:
        assert a.dump() == b.dump()

    board = run_cli(capsys, monkeypatch, "leaderboard", "--store", str(store))
    assert "calib - ece (lower is better)" in board.out and "digits-mlp-wide" in board.out


def test_limited_runs_are_marked_and_never_ranked(capsys, monkeypatch, tiny_zoo: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    store = tmp_path / "results.duckdb"
    args = [
        "eval",
        "--model",
        str(tiny_zoo / "digits-mlp-deep"),
        "--tasks",
        "calib",
        "--store",
        str(store),
        "--out",
        str(tmp_path / "s"),
    ]
    result = run_cli(capsys, monkeypatch, *args, "--limit", "25")
    assert result.code == 0 and "not ranked" in result.out
    submission = json.loads(next((tmp_path / "s").rglob("*.json")).read_text())
    assert submission["sample_limit"] == 25
    assert all(m["n"] == 25 for m in submission["results"][0]["metrics"])
    with open_store(store, read_only=True) as opened:
        assert opened.leaderboard("calib").empty


def test_tasks_sharing_a_split_share_one_forward_pass(
    tiny_zoo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    specs = tmp_path / "specs"
    specs.mkdir()
    for name, bins in (("calib15", 15), ("calib10", 10)):
        (specs / f"{name}.yaml").write_text(
            f"name: {name}\nversion: 1\nadapter: calibration\ndescription: d\n"
            f"dataset: {{kind: builtin, name: digits-ood, params: {{seed: 0}}}}\nparameters: {{n_bins: {bins}}}\nmain_metric: ece\n"
        )
    registry = load_specs(specs)
    options = EvalOptions(cache_dir=tmp_path / "cache")
    handle = load_models([tiny_zoo / "digits-mlp-small"], options, "cpu")[0]
    result = Runner(options).evaluate(handle, [registry.get("calib15"), registry.get("calib10")])
    assert (result.cache_misses, result.cache_hits) == (2, 0)  # calib + test splits, once each
    bins = {r.task: len(r.artifacts["reliability"]["count"]) for r in result.submission.results}
    assert bins == {"calib15": 15, "calib10": 10}


def test_corrupt_cache_entry_is_recomputed(tiny_zoo: Path, tmp_path: Path) -> None:
    options = EvalOptions(cache_dir=tmp_path / "cache")
    handle = load_models([tiny_zoo / "digits-mlp-small"], options, "cpu")[0]
    spec = load_specs().get("calib")
    clean = Runner(options).evaluate(handle, [spec])
    entry = next((tmp_path / "cache").rglob("*.npz"))
    entry.write_bytes(entry.read_bytes()[:100])
    runner = Runner(options)
    again = runner.evaluate(handle, [spec])
    assert runner.cache.corrupt_entries == 1 and again.cache_misses == 1
    assert again.submission.results[0].metrics == clean.submission.results[0].metrics


def tree_digest(folder: Path) -> dict[str, str]:
    return {
        str(f.relative_to(folder)): hashlib.sha256(f.read_bytes()).hexdigest() for f in folder.rglob("*") if f.is_file()
    }


@pytest.mark.slow
def test_demo_writes_only_under_its_workdir(capsys, monkeypatch, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """`make demo` must leave the checkout as it was: everything goes under demo/ (ignored by git),
    the shipped submissions are read, never written. (Ten of them, copied: all 53 are re-scored by
    test_shipped_submissions_are_valid.)"""
    repo = Path(__file__).resolve().parent.parent
    shipped, work = tmp_path / "shipped", tmp_path / "work"
    for folder in (repo / "submissions").iterdir():
        if folder.name.startswith(("harness-zoo__digits-mlp-", "harness-zoo__digits-lt10-")) or folder.name.endswith(
            "4x128-adamw-step1000"
        ):
            shutil.copytree(folder, shipped / folder.name)
    work.mkdir()
    before = tree_digest(shipped)
    status = subprocess.run(["git", "status", "--porcelain"], cwd=repo, capture_output=True, text=True).stdout
    monkeypatch.chdir(work)
    result = run_cli(capsys, monkeypatch, "demo", "--profile", "tiny", "--shipped", str(shipped))
    assert result.code == 0, result.err
    assert sorted(p.name for p in work.iterdir()) == ["demo"]
    assert {"zoo", "submissions", "results.duckdb"} <= {p.name for p in (work / "demo").iterdir()}
    assert tree_digest(shipped) == before
    assert subprocess.run(["git", "status", "--porcelain"], cwd=repo, capture_output=True, text=True).stdout == status
    with open_store(work / "demo" / "results.duckdb", read_only=True) as opened:
        models = {row[0] for row in opened.connection.execute("SELECT model_id FROM models").fetchall()}
        # The shipped runs (the full zoo) and the demo's own (the tiny zoo) in one store.
        assert any("gpt2-tiny" in m for m in models) and any("gpt2-4x128" in m for m in models)
        on_calib = set(opened.leaderboard("calib")["model_id"])
        copied = {"harness-zoo/" + f.name.split("__", 1)[1] for f in shipped.iterdir() if "digits" in f.name}
        assert len(copied) == 9 and copied < on_calib  # every shipped digits model, and the demo's own
    assert "demo finished" in result.out and "shipped runs" in result.out
    assert str(Path("demo") / "results.duckdb") in result.out


@pytest.mark.slow
def test_console_script_exit_code_and_single_line(tmp_path: Path) -> None:
    script = Path(sys.executable).with_name("harness")
    env = {**os.environ, "COLUMNS": "200"}
    done = subprocess.run(
        [
            str(script),
            "eval",
            "--model",
            str(tmp_path / "nothing"),
            "--tasks",
            "calib",
            "--store",
            str(tmp_path / "r.duckdb"),
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"error: model path does not exist [at {tmp_path / 'nothing'}] -> check the --model path"
    ]
    assert not (tmp_path / "r.duckdb").exists()


def test_the_leaderboard_says_when_an_interval_excludes_its_value_or_has_no_width() -> None:
    from harness.cli import _interval_note

    assert _interval_note(0.5, 0.4, 0.6) == ""
    assert _interval_note(0.01, 0.012, 0.03) == " (excludes the value)"
    assert _interval_note(32.0, 32.0, 32.0) == " (no spread in the data)"
    assert _interval_note(0.5, float("nan"), float("nan")) == ""
