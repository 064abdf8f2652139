"""Every bad input: one clear line (what, where, what to do), exit code 2, nothing in the store."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import run_cli
from safetensors.numpy import load_file, save_file

from harness.data.arrays import ArraySplit
from harness.data.digits import ClassificationSuite
from harness.registry import DATASETS


def assert_one_line_error(result_err: str, *needles: str) -> None:
    # Progress bars may precede it; the error itself is one line and there is no traceback.
    lines = [line for line in result_err.splitlines() if line.startswith("error")]
    assert len(lines) == 1, result_err
    assert "Traceback" not in result_err
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.fixture
def model(tiny_zoo: Path) -> Path:
    return tiny_zoo / "digits-mlp-small"


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return tmp_path / "results.duckdb"


def eval_args(model: Path | str, store: Path, tasks: str = "calib", *extra: str) -> list[str]:
    return [
        "eval",
        "--model",
        str(model),
        "--tasks",
        tasks,
        "--store",
        str(store),
        "--out",
        str(store.parent / "subs"),
        *extra,
    ]


def test_missing_path(capsys, monkeypatch, store: Path) -> None:  # type: ignore[no-untyped-def]
    result = run_cli(capsys, monkeypatch, *eval_args("/no/such/model", store))
    assert result.code == 2
    assert_one_line_error(result.err, "does not exist", "/no/such/model", "--model")
    assert not store.exists()


def test_unknown_task(capsys, monkeypatch, model: Path, store: Path) -> None:  # type: ignore[no-untyped-def]
    result = run_cli(capsys, monkeypatch, *eval_args(model, store, "calib,calb"))
    assert result.code == 2
    assert_one_line_error(result.err, "unknown task 'calb'", "did you mean 'calib'")
    assert not store.exists()


def test_folder_that_is_not_a_checkpoint(capsys, monkeypatch, tmp_path: Path, store: Path) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "readme.txt").write_text("hello")
    result = run_cli(capsys, monkeypatch, *eval_args(folder, store))
    assert result.code == 2
    assert_one_line_error(result.err, "not a checkpoint", str(folder), "readme.txt", "expected one of")
    assert not store.exists()


def test_truncated_safetensors(capsys, monkeypatch, model: Path, tmp_path: Path, store: Path) -> None:  # type: ignore[no-untyped-def]
    broken = tmp_path / "broken"
    shutil.copytree(model, broken)
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    result = run_cli(capsys, monkeypatch, *eval_args(broken, store))
    assert result.code == 2
    assert_one_line_error(result.err, "truncated or corrupt", str(weights))
    assert not store.exists()


def test_store_that_is_not_duckdb(capsys, monkeypatch, model: Path, store: Path) -> None:  # type: ignore[no-untyped-def]
    store.write_bytes(b"SQLite format 3\x00 pretending")
    result = run_cli(capsys, monkeypatch, *eval_args(model, store))
    assert result.code == 2
    assert_one_line_error(result.err, "not a valid DuckDB database", str(store))
    assert store.read_bytes() == b"SQLite format 3\x00 pretending"
    assert not (store.parent / "subs").exists()


def test_empty_dataset(capsys, monkeypatch, model: Path, store: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    empty = ArraySplit("test", np.zeros((0, 64), np.float32), np.zeros(0, np.int64), [])
    suite = ClassificationSuite("empty-digits", 10, {"calib": empty, "test": empty}, "nothing")
    DATASETS.add("empty-digits", lambda: suite, replace=True)
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "calib.yaml").write_text(
        "name: calib\nversion: 1\nadapter: calibration\ndescription: d\n"
        "dataset: {kind: builtin, name: empty-digits}\nmain_metric: ece\n"
    )
    monkeypatch.setenv("HARNESS_TASKS_DIR", str(specs))
    result = run_cli(capsys, monkeypatch, *eval_args(model, store))
    assert result.code == 2
    assert_one_line_error(result.err, "split 'calib' of dataset 'empty-digits' is empty")
    assert not store.exists()


def test_pickle_weights_are_refused_unless_allowed(
    capsys, monkeypatch, model: Path, tmp_path: Path, store: Path
) -> None:  # type: ignore[no-untyped-def]
    import torch

    pickled = tmp_path / "pickled"
    shutil.copytree(model, pickled)
    state = {k: torch.from_numpy(v) for k, v in load_file(pickled / "model.safetensors").items()}
    (pickled / "model.safetensors").unlink()
    torch.save(state, pickled / "model.pt")
    result = run_cli(capsys, monkeypatch, *eval_args(pickled, store))
    assert result.code == 2
    assert_one_line_error(result.err, "pickle", "model.pt", "--allow-pickle")
    assert not store.exists()
    allowed = run_cli(capsys, monkeypatch, *eval_args(pickled, store, "calib", "--allow-pickle"))
    assert allowed.code == 0, allowed.err
    assert store.exists()


def test_nan_logits_are_a_clear_error(capsys, monkeypatch, model: Path, tmp_path: Path, store: Path) -> None:  # type: ignore[no-untyped-def]
    poisoned = tmp_path / "poisoned"
    shutil.copytree(model, poisoned)
    weights = load_file(poisoned / "model.safetensors")
    weights["head.bias"][:] = np.nan
    save_file(weights, poisoned / "model.safetensors")
    result = run_cli(capsys, monkeypatch, *eval_args(poisoned, store))
    assert result.code == 2
    assert_one_line_error(result.err, "NaN or inf logits", str(poisoned))
    assert not store.exists()


def test_invalid_model_card(capsys, monkeypatch, model: Path, tmp_path: Path, store: Path) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "badcard"
    shutil.copytree(model, bad)
    (bad / "card.json").write_text('{"name": "../escape"}')
    result = run_cli(capsys, monkeypatch, *eval_args(bad, store))
    assert result.code == 2
    assert_one_line_error(result.err, "model card field 'name'", "card.json")
