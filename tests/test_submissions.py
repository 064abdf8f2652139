"""Submissions as untrusted input: a corpus of malformed files, upgrades, ingest, imports, verify."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import run_cli
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file, save_file

from harness.imports import from_lm_eval, from_mteb
from harness.store import open_store
from harness.submissions import read_submission, write_submission
from harness.validation import validate_file, validate_files

DATA = Path(__file__).parent / "data"
CORPUS = DATA / "submissions"
EXPECTED: dict[str, str] = json.loads((CORPUS / "malformed-expected.json").read_text())


def only_json(folder: Path) -> Path:
    (file,) = sorted(folder.rglob("*.json"))
    return file


def test_the_corpus_is_big_enough() -> None:
    assert len(EXPECTED) >= 30


def test_valid_submission_passes_every_check() -> None:
    valid, problems = validate_files([CORPUS / "valid"])
    assert problems == [] and len(valid) == 1


def test_schema_v1_is_upgraded_on_read() -> None:
    v1 = only_json(CORPUS / "v1")
    assert json.loads(v1.read_text())["schema_version"] == 1
    upgraded, problems = validate_file(v1)
    assert problems == []
    current = read_submission(only_json(CORPUS / "valid"))
    assert upgraded == current and upgraded is not None and upgraded.schema_version == 3


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_each_malformed_submission_is_rejected_with_its_own_message(case: str) -> None:
    _valid, problems = validate_files([CORPUS / "malformed" / case])
    assert problems, f"{case} was accepted"
    text = "\n".join(p.one_line() for p in problems)
    assert EXPECTED[case] in text, text
    assert all(p.file.startswith(str(CORPUS)) for p in problems)  # every problem names its file


def test_every_case_has_a_distinct_first_message() -> None:
    firsts = set()
    for case in EXPECTED:
        _, problems = validate_files([CORPUS / "malformed" / case])
        firsts.add((problems[0].field, problems[0].message.split(" (")[0]))
    assert len(firsts) >= 25  # distinct problems, not one generic error


def test_oversized_and_symlinked_files_are_refused(tmp_path: Path) -> None:
    folder = tmp_path / "harness-tests__corpus-mlp"
    folder.mkdir()
    big = folder / "f71b3a9c1c3f0c58ec29.json"
    big.write_text(json.dumps({"schema_version": 2, "padding": "x" * 5_100_000}))
    assert "byte cap" in validate_file(big)[1][0].message
    big.unlink()
    big.symlink_to(only_json(CORPUS / "valid"))
    assert "symbolic link" in validate_file(big)[1][0].message


def test_a_bad_file_in_a_batch_ingests_nothing(capsys, monkeypatch, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    batch = tmp_path / "batch"
    shutil.copytree(CORPUS / "valid", batch / "valid")
    shutil.copytree(next((CORPUS / "malformed").glob("*-forged-value")), batch / "forged")
    store = tmp_path / "results.duckdb"
    result = run_cli(capsys, monkeypatch, "ingest", str(batch), "--store", str(store), "--rescore")
    assert result.code == 2 and "nothing was ingested" in result.err
    assert not store.exists()
    result = run_cli(capsys, monkeypatch, "ingest", str(CORPUS / "valid"), "--store", str(store))
    assert result.code == 0
    with open_store(store, read_only=True) as opened:
        once = opened.dump()
    run_cli(capsys, monkeypatch, "ingest", str(CORPUS / "valid"), "--store", str(store))
    with open_store(store, read_only=True) as opened:
        assert opened.dump() == once and len(once["runs"]) == 1


def test_validate_cli_exit_codes(capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    assert run_cli(capsys, monkeypatch, "validate", str(CORPUS / "valid")).code == 0
    bad = run_cli(capsys, monkeypatch, "validate", str(CORPUS / "malformed"))
    assert bad.code == 1 and f"{len(EXPECTED) + 1} invalid" in bad.out  # the duplicate case has two files


JSON = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=True) | st.integers() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += paths(item, (*prefix, index))
    return found


BASE = json.loads(only_json(CORPUS / "valid").read_text())
BASE_PATHS = [p for p in paths(BASE) if p]


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(where=st.sampled_from(BASE_PATHS), replacement=JSON, delete=st.booleans())
def test_validator_never_crashes_on_mutated_submissions(
    tmp_path: Path, where: tuple[Any, ...], replacement: Any, delete: bool
) -> None:
    mutated = json.loads(json.dumps(BASE))
    parent = mutated
    for key in where[:-1]:
        parent = parent[key]
    if delete and isinstance(parent, dict):
        del parent[where[-1]]
    else:
        parent[where[-1]] = replacement
    folder = tmp_path / "harness-tests__corpus-mlp"
    folder.mkdir(exist_ok=True)
    file = folder / f"{BASE['submission_id']}.json"
    file.write_text(json.dumps(mutated))
    shutil.copyfile(only_json(CORPUS / "valid").with_suffix(".parquet"), folder / f"{BASE['submission_id']}.parquet")
    submission, problems = validate_file(file, tmp_path)  # any exception here fails the test
    assert submission is not None or problems


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payload=st.binary(max_size=2000))
def test_validator_never_crashes_on_arbitrary_bytes(tmp_path: Path, payload: bytes) -> None:
    folder = tmp_path / "harness-tests__corpus-mlp"
    folder.mkdir(exist_ok=True)
    file = folder / "f71b3a9c1c3f0c58ec29.json"
    file.write_bytes(payload)
    submission, problems = validate_file(file)
    assert submission is None and problems


def test_lm_eval_results_import(tmp_path: Path) -> None:
    submission = from_lm_eval(DATA / "imports" / "lm_eval_results.json", org="someone")
    assert submission.provenance.source == "imported" and submission.samples_file is None
    tasks = {run.task: run for run in submission.results}
    assert set(tasks) == {"lm_eval.synth_mc", "lm_eval.synth_heldout"}
    acc = tasks["lm_eval.synth_mc"].metric("lm_eval.acc")
    assert acc.value == 0.125 and acc.stderr == 0.125 and acc.ci_method == "stderr" and acc.n == 8
    assert not tasks["lm_eval.synth_heldout"].metric("lm_eval.word_perplexity").higher_is_better
    assert submission.sample_limit == 8  # lm-eval ran with --limit 8: kept, so never ranked
    path = write_submission(tmp_path, submission, [])
    problems = validate_file(path)[1]
    assert [p.field for p in problems] == ["sample_limit"]
    # Aligned with native runs: the native task name and main metric (the config's first metric), the real name.
    assert tasks["lm_eval.synth_heldout"].main_metric == "lm_eval.word_perplexity"
    assert tasks["lm_eval.synth_mc"].main_metric == "lm_eval.acc"
    assert submission.model.name == "rand"


def test_an_import_that_does_not_name_its_model_is_refused(tmp_path: Path) -> None:
    from harness.errors import HarnessError

    raw = json.loads((DATA / "imports" / "lm_eval_results.json").read_text())
    raw.pop("model_name")
    raw["config"]["model_args"] = "dtype=float32"
    file = tmp_path / "results.json"
    file.write_text(json.dumps(raw))
    with pytest.raises(HarnessError, match="does not name the model"):
        from_lm_eval(file)
    assert from_lm_eval(file, name="my-model").model.name == "my-model"
    raw["config"]["model_args"] = "pretrained=org/from-args,dtype=float32"
    file.write_text(json.dumps(raw))
    assert from_lm_eval(file).model.name == "from-args"


def test_mteb_results_import(tmp_path: Path) -> None:
    from mteb.results.task_result import TaskResult

    folder = tmp_path / "mteb-results"
    folder.mkdir()
    for task, score in (("SciFact", 0.61), ("NFCorpus", 0.33)):
        result = TaskResult.model_validate(
            {
                "dataset_revision": "abc",
                "task_name": task,
                "mteb_version": "2.0.0",
                "evaluation_time": 12.5,
                "scores": {
                    "test": [
                        {"hf_subset": "default", "languages": ["eng-Latn"], "main_score": score, "ndcg_at_10": score,
                         "map_at_100": score - 0.05, "recall_at_100": 0.9}
                    ]
                },
            }
        )  # fmt: skip
        result.to_disk(folder / f"{task}.json")
    (folder / "model_meta.json").write_text(json.dumps({"name": "sentence-transformers/all-MiniLM-L6-v2"}))
    submission = from_mteb(folder)
    assert submission.model.name == "all-MiniLM-L6-v2"
    runs = {run.task: run for run in submission.results}
    assert runs["mteb.SciFact"].metric("ndcg_at_10").value == pytest.approx(0.61)
    assert runs["mteb.NFCorpus"].metric("mteb.main_score").value == pytest.approx(0.33)
    path = write_submission(tmp_path / "subs", submission, [])
    assert validate_file(path)[1] == []
    # The sample count is MTEB's own: SciFact's test split has 300 queries.
    assert runs["mteb.SciFact"].metric("ndcg_at_10").n == 300
    # mteb's placeholder for an unnamed model is not a name.
    (folder / "model_meta.json").write_text(json.dumps({"name": "no_model_name/available"}))
    from harness.errors import HarnessError

    with pytest.raises(HarnessError, match="do not name the model"):
        from_mteb(folder)
    assert from_mteb(folder, name="my-encoder").model.name == "my-encoder"


@pytest.mark.slow
def test_verify_recognises_the_checkpoint_and_catches_another(
    capsys, monkeypatch, tiny_zoo: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    model, other = tiny_zoo / "digits-mlp-wide", tiny_zoo / "digits-mlp-deep"
    out = tmp_path / "subs"
    assert (
        run_cli(
            capsys, monkeypatch, "eval", "--model", str(model), "--tasks", "calib,ood", "--no-store", "--out", str(out)
        ).code
        == 0
    )
    (file,) = out.rglob("*.json")
    same = run_cli(capsys, monkeypatch, "verify", str(file), "--model", str(model), "--limit", "20")
    assert same.code == 0 and "NO" not in same.out
    full = run_cli(capsys, monkeypatch, "verify", str(file), "--model", str(model))
    assert full.code == 0 and "all metrics agree" in full.out
    different = run_cli(capsys, monkeypatch, "verify", str(file), "--model", str(other), "--limit", "20")
    assert different.code == 1 and "checkpoint sha256" in different.out and "NO" in different.out
    assert "the behaviour differs" in different.out

    # The same recipe trained on another machine: other bytes (a hash mismatch, a warning), same behaviour.
    rebuilt = tmp_path / "elsewhere" / model.name
    shutil.copytree(model, rebuilt)
    (weights,) = rebuilt.glob("*.safetensors")
    tensors = load_file(weights)
    save_file({k: v * (1 + 1e-6) if v.is_floating_point() else v for k, v in tensors.items()}, weights)
    elsewhere = run_cli(capsys, monkeypatch, "verify", str(file), "--model", str(rebuilt))
    assert elsewhere.code == 0, elsewhere.out
    assert "warning" in elsewhere.out and "all metrics agree" in elsewhere.out and "NO" not in elsewhere.out
    assert "same behaviour (another checkpoint)" in elsewhere.out


@pytest.mark.slow
def test_shipped_submissions_are_valid(tmp_path: Path) -> None:
    """submissions/ ships the zoo's evaluated results; CI re-validates them like any contribution."""
    shipped = Path(__file__).resolve().parent.parent / "submissions"
    valid, problems = validate_files([shipped])
    assert problems == [], "\n".join(p.one_line() for p in problems[:20])
    assert len(valid) >= 30
    with open_store(tmp_path / "r.duckdb") as store:
        store.ingest(valid)
        tasks = store.tasks()
        assert {"calib", "ood", "longtail", "retrieval", "lm_loss", "flatness", "compression"} <= set(tasks)
        assert all(len(store.leaderboard(task)) >= 1 for task in tasks)


@pytest.mark.parametrize(
    ("settings_", "field"),
    [
        ({"dtype": "float32x"}, "settings.dtype"),
        ({"device": "tpu"}, "settings.device"),
        ({"max_length": "lots"}, "settings.max_length"),
    ],
)
def test_settings_outside_what_harness_runs_are_rejected(tmp_path: Path, settings_: dict[str, str], field: str) -> None:
    """A made-up dtype would open a board row of its own (`name@<dtype>`): only real settings pass."""
    raw = json.loads(json.dumps(BASE))
    raw["settings"] = {"dtype": "float32", "device": "cpu", **settings_}
    folder = tmp_path / "harness-tests__corpus-mlp"
    folder.mkdir()
    file = folder / f"{BASE['submission_id']}.json"
    file.write_text(json.dumps(raw))
    shutil.copyfile(only_json(CORPUS / "valid").with_suffix(".parquet"), folder / f"{BASE['submission_id']}.parquet")
    assert [p.field for p in validate_file(file, tmp_path)[1]] == [field]
    raw["settings"] = {"dtype": "bfloat16", "device": "cuda", "max_length": "1024"}
    file.write_text(json.dumps(raw))
    assert validate_file(file, tmp_path)[1] == []
