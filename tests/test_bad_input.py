"""Every bad input: one clear line (what, where, what to do), exit code 2, nothing in the store."""

from __future__ import annotations

import os
import shutil
import signal
import stat
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from cli_helpers import run_cli
from safetensors.numpy import load_file, save_file

from harness import untrusted
from harness.data.arrays import ArraySplit
from harness.data.digits import ClassificationSuite
from harness.errors import HarnessError
from harness.registry import DATASETS
from harness.untrusted import load_json_text

VALID_SUBMISSIONS = Path(__file__).parent / "data" / "submissions" / "valid"


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


# ----------------------------------------------------------------------------- hostile store paths


@contextmanager
def fails_instead_of_hanging(seconds: int = 60) -> Iterator[None]:
    """Opening a FIFO blocks: raise after `seconds` instead of hanging the test run."""

    def give_up(signum: int, frame: object) -> None:
        raise TimeoutError(f"hung for {seconds} s")

    previous = signal.signal(signal.SIGALRM, give_up)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def special_store(kind: str, folder: Path) -> Path:
    store = folder / "results.duckdb"
    if kind == "fifo":
        os.mkfifo(store)
    elif kind == "link to a fifo":
        os.mkfifo(folder / "pipe")
        store.symlink_to(folder / "pipe")
    elif kind == "folder":
        store.mkdir()
    else:  # a device like /dev/zero, made here so that nothing outside tmp_path is at risk
        try:
            os.mknod(store, stat.S_IFCHR | 0o666, os.makedev(1, 5))
        except PermissionError:
            pytest.skip("making a device node needs root")
    return store


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("fifo", "named pipe (FIFO)"),
        ("link to a fifo", "named pipe (FIFO)"),
        ("folder", "folder"),
        ("device", "device"),
    ],
)
def test_store_that_is_not_a_regular_file(
    capsys, monkeypatch, tmp_path: Path, model: Path, kind: str, message: str
) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "stores"
    folder.mkdir()
    store = special_store(kind, folder)
    listing = sorted(p.name for p in folder.iterdir())
    commands = [
        ["leaderboard", "--store", str(store)],
        ["ingest", str(VALID_SUBMISSIONS), "--store", str(store)],
        ["ingest", str(VALID_SUBMISSIONS), "--store", str(store), "--rebuild"],
        eval_args(model, store),
    ]
    for command in commands:
        with fails_instead_of_hanging():
            result = run_cli(capsys, monkeypatch, *command)
        assert result.code == 2, command
        assert_one_line_error(result.err, f"store path is a {message}, not a regular file", str(store), "--store")
    assert sorted(p.name for p in folder.iterdir()) == listing  # nothing written beside it
    assert not store.is_file()  # not replaced either
    assert not (folder / "subs").exists()


def test_read_only_store_is_left_intact(capsys, monkeypatch, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "stores"
    folder.mkdir()
    store = folder / "results.duckdb"
    assert run_cli(capsys, monkeypatch, "ingest", str(VALID_SUBMISSIONS), "--store", str(store)).code == 0
    before = store.read_bytes()
    listing = sorted(p.name for p in folder.iterdir())
    ingest = ["ingest", str(VALID_SUBMISSIONS), "--store", str(store)]
    try:
        store.chmod(0o444)
        for extra in (["--rebuild"], []):
            result = run_cli(capsys, monkeypatch, *ingest, *extra)
            assert result.code == 2
            assert_one_line_error(result.err, "the store file is read-only", str(store), "writable")
        assert run_cli(capsys, monkeypatch, "leaderboard", "--store", str(store)).code == 0  # reading is fine
        store.chmod(0o644)
        folder.chmod(0o555)
        for extra in (["--rebuild"], []):
            result = run_cli(capsys, monkeypatch, *ingest, *extra)
            assert result.code == 2
            assert_one_line_error(result.err, "the store's folder is read-only", f"[at {folder}]", "writable")
    finally:
        folder.chmod(0o755)
        store.chmod(0o644)
    assert store.read_bytes() == before
    assert sorted(p.name for p in folder.iterdir()) == listing


def test_rebuild_replaces_a_store_that_is_not_duckdb(capsys, monkeypatch, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    store = tmp_path / "results.duckdb"
    store.write_bytes(b"not a database")
    ingest = ["ingest", str(VALID_SUBMISSIONS), "--store", str(store)]
    result = run_cli(capsys, monkeypatch, *ingest)
    assert result.code == 2
    assert_one_line_error(result.err, "not a valid DuckDB database file", str(store), "--rebuild")
    assert store.read_bytes() == b"not a database"
    assert run_cli(capsys, monkeypatch, *ingest, "--rebuild").code == 0  # what the message says to do
    assert run_cli(capsys, monkeypatch, "leaderboard", "--store", str(store)).code == 0
    assert [p.name for p in tmp_path.iterdir()] == ["results.duckdb"]  # no leftovers of the build


# ----------------------------------------------------------------------------- hostile array files


def npz_bomb_header(file: Path) -> None:
    """An .npz whose .npy header declares a 4 TB array (the data is not there: numpy would allocate first)."""
    with zipfile.ZipFile(file, "w") as archive:
        with archive.open("test.ids.npy", "w") as member:
            np.lib.format.write_array(member, np.array(["a"]))
        with archive.open("test.logits.npy", "w") as member:
            np.lib.format.write_array_header_1_0(
                member, {"descr": "<f4", "fortran_order": False, "shape": (10**9, 1000)}
            )
            member.write(bytes(4000))


def predictions(arrays: dict[str, np.ndarray]) -> Callable[[Path], Path]:
    def write(folder: Path) -> Path:
        np.savez(folder / "predictions.npz", **arrays)  # type: ignore[arg-type]
        return folder / "predictions.npz"

    return write


def raw_file(name: str, content: bytes) -> Callable[[Path], Path]:
    def write(folder: Path) -> Path:
        (folder / name).write_bytes(content)
        return folder / name

    return write


def parquet(columns: dict[str, list[object]]) -> Callable[[Path], Path]:
    def write(folder: Path) -> Path:
        pq.write_table(pa.table(columns), folder / "predictions.parquet")
        return folder / "predictions.parquet"

    return write


def header_bomb(folder: Path) -> Path:
    npz_bomb_header(folder / "predictions.npz")
    return folder / "predictions.npz"


def compressed_bomb(folder: Path) -> Path:
    """4 MB of zeros in a few KB; the cap is lowered to 1 MB below so the test stays small."""
    ids, zeros = np.array(["a"]), np.zeros((100_000, 10), np.float32)
    np.savez_compressed(folder / "predictions.npz", **{"test.ids": ids, "test.logits": zeros})  # type: ignore[arg-type]
    return folder / "predictions.npz"


IDS = np.array(["a", "b"])
BAD_PREDICTIONS = {
    "not a zip": (raw_file("predictions.npz", b"hello, not a zip"), "not a valid .npz file"),
    "object ids": (
        predictions({"test.ids": np.array(["a", "b"], dtype=object), "test.logits": np.zeros((2, 3))}),
        "holds Python objects (pickle)",
    ),
    "string logits": (predictions({"test.ids": IDS, "test.logits": np.array([["x"], ["y"]])}), "logits must be real"),
    "complex logits": (predictions({"test.ids": IDS, "test.logits": np.zeros((2, 3), complex)}), "logits must be real"),
    "3-D logits": (predictions({"test.ids": IDS, "test.logits": np.zeros((2, 3, 4))}), "logits must have shape (2, k)"),
    "2-D ids": (predictions({"test.ids": np.zeros((2, 2)), "test.logits": np.zeros((2, 3))}), "ids must be a 1-D"),
    "corrupt parquet": (raw_file("predictions.parquet", b"PAR1 garbage PAR1"), "not a readable parquet file"),
    "string logits parquet": (
        parquet({"split": ["test"], "sample_id": ["a"], "logits": [["x", "y"]]}),
        "column 'logits' must hold lists of numbers",
    ),
    "ragged logits parquet": (
        parquet({"split": ["test", "test"], "sample_id": ["a", "b"], "logits": [[1.0], [1.0, 2.0]]}),
        "have different lengths",
    ),
    "npz header bomb": (header_bomb, "over the 2.0 GiB cap (MAX_ARRAY_BYTES)"),
    "npz zip bomb": (compressed_bomb, "decompress to 4,000,"),
}


@pytest.mark.parametrize("case", sorted(BAD_PREDICTIONS))
def test_hostile_predictions_file(capsys, monkeypatch, tmp_path: Path, store: Path, case: str) -> None:  # type: ignore[no-untyped-def]
    write, message = BAD_PREDICTIONS[case]
    monkeypatch.setattr(untrusted, "MAX_ARRAY_BYTES", 1_000_000 if case == "npz zip bomb" else 2 * 1024**3)
    folder = tmp_path / "preds"
    folder.mkdir()
    file = write(folder)
    result = run_cli(capsys, monkeypatch, *eval_args(folder, store))
    assert result.code == 2
    assert_one_line_error(result.err, message, str(file), "->")
    assert not store.exists()
    assert not (store.parent / "subs").exists()


def local_dataset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A local dataset (one .npz per split) that the calib task reads; returns its folder."""
    data = tmp_path / "data"
    data.mkdir()
    rng = np.random.default_rng(0)
    for split in ("train", "calib", "test"):
        np.savez(data / f"{split}.npz", x=rng.random((30, 64), dtype=np.float32), y=rng.integers(0, 6, 30))
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "calib.yaml").write_text(
        "name: calib\nversion: 1\nadapter: calibration\ndescription: d\n"
        f"dataset: {{kind: local, name: hostile, path: '{data}'}}\nmain_metric: ece\n"
    )
    monkeypatch.setenv("HARNESS_TASKS_DIR", str(specs))
    return data


def bad_local_split(case: str, data: Path) -> Path:
    test = data / "test.npz"
    if case == "other width":
        np.savez(test, x=np.zeros((30, 32), np.float32), y=np.zeros(30, np.int64))
        return data
    if case == "not a zip":
        test.write_bytes(b"hello, not a zip")
        return test
    if case == "zip bomb":
        np.savez_compressed(test, x=np.zeros((30_000, 64), np.float32), y=np.zeros(30_000, np.int64))
        return test
    test.unlink()
    (data / "test.parquet").write_bytes(b"PAR1 garbage PAR1")
    return data / "test.parquet"


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("other width", "splits have inputs of different shapes: calib (64,), test (32,), train (64,)"),
        ("not a zip", "not a valid .npz file"),
        ("zip bomb", "over the 1,000,000 bytes cap (MAX_ARRAY_BYTES)"),
        ("corrupt parquet", "not a readable parquet file"),
    ],
)
def test_hostile_local_dataset(
    capsys, monkeypatch, tmp_path: Path, model: Path, store: Path, case: str, message: str
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(untrusted, "MAX_ARRAY_BYTES", 1_000_000)
    where = bad_local_split(case, local_dataset(tmp_path, monkeypatch))
    result = run_cli(capsys, monkeypatch, *eval_args(model, store))
    assert result.code == 2
    assert_one_line_error(result.err, message, f"[at {where}]", "->")
    assert not store.exists()
    assert not (store.parent / "subs").exists()


# ----------------------------------------------------------------------------- hostile JSON and YAML

DEEP_JSON = "[" * 200_000 + "]" * 200_000


def test_deeply_nested_json_in_a_checkpoint(capsys, monkeypatch, model: Path, tmp_path: Path, store: Path) -> None:  # type: ignore[no-untyped-def]
    for name in ("card.json", "config.json", "tokenizer_config.json"):  # the last is parsed by libraries
        bad = tmp_path / name
        shutil.copytree(model, bad)
        (bad / name).write_text(DEEP_JSON)
        for command in (eval_args(bad, store), ["models", str(bad)]):
            result = run_cli(capsys, monkeypatch, *command)
            assert result.code == 2, command
            assert_one_line_error(result.err, "more than 64 levels deep", str(bad / name), "re-export")
    assert not store.exists()
    assert not (store.parent / "subs").exists()


def test_deeply_nested_json_imports(capsys, monkeypatch, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "out"
    lm_eval = tmp_path / "results.json"
    lm_eval.write_text('{"results": ' + DEEP_JSON + "}")
    meta = tmp_path / "mteb-meta"
    meta.mkdir()
    (meta / "model_meta.json").write_text(DEEP_JSON)
    task = tmp_path / "mteb-task"
    task.mkdir()
    (task / "model_meta.json").write_text('{"name": "org/model"}')
    (task / "SciFact.json").write_text(DEEP_JSON)
    cases = [
        (["lm-eval", str(lm_eval)], lm_eval),
        (["mteb", str(meta)], meta / "model_meta.json"),
        (["mteb", str(task)], task / "SciFact.json"),
    ]
    for command, where in cases:
        result = run_cli(capsys, monkeypatch, "import", *command, "--out", str(out))
        assert result.code == 2, command
        assert_one_line_error(result.err, "more than 64 levels deep", f"[at {where}]", "re-export")
    assert not out.exists()


def test_deeply_nested_task_spec(capsys, monkeypatch, model: Path, tmp_path: Path, store: Path) -> None:  # type: ignore[no-untyped-def]
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "calib.yaml").write_text("name: calib\nparameters: " + DEEP_JSON + "\n")
    monkeypatch.setenv("HARNESS_TASKS_DIR", str(specs))
    result = run_cli(capsys, monkeypatch, *eval_args(model, store))
    assert result.code == 2
    assert_one_line_error(result.err, "YAML nested too deeply", str(specs / "calib.yaml"), "flatten")
    assert not store.exists()


def test_load_json_text_checks_depth_without_recursing() -> None:
    assert load_json_text("[[1]]", "x", max_depth=2) == [[1]]
    assert load_json_text('{"a": "[[[\\"[[["}', "x", max_depth=1) == {"a": '[[["[[['}  # brackets in strings
    with pytest.raises(HarnessError, match="more than 2 levels deep"):
        load_json_text("[[[1]]]", "x", max_depth=2)
    with pytest.raises(HarnessError, match=r"over the 10 bytes cap \[at f.json\]"):
        load_json_text(b"[" + b" " * 20 + b"]", "f.json", max_bytes=10)
    with pytest.raises(HarnessError, match=r"invalid JSON: .* \[at f.json\] -> repair"):
        load_json_text("[1,", "f.json")
    with pytest.raises(HarnessError, match="more than 64 levels deep"):
        load_json_text(DEEP_JSON, "x")
