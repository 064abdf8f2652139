"""Submissions as untrusted input: a corpus of malformed files, upgrades, ingest, imports, verify."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import run_cli
from hostile_corpus import catalog
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file, save_file

from harness.errors import HarnessError
from harness.imports import from_lm_eval, from_mteb
from harness.schema import SCHEMA_VERSION
from harness.store import open_store
from harness.submissions import read_submission, write_submission
from harness.trust import Tier
from harness.validation import validate_file, validate_files

DATA = Path(__file__).parent / "data"
CORPUS = DATA / "submissions"
EXPECTED: dict[str, str] = catalog()


def only_json(folder: Path) -> Path:
    (file,) = sorted(folder.rglob("*.json"))
    return file


def test_the_corpus_is_big_enough() -> None:
    assert len(EXPECTED) >= 80


def test_valid_submission_passes_every_check() -> None:
    valid, problems = validate_files([CORPUS / "valid"])
    assert problems == [] and len(valid) == 1


def test_schema_v1_is_upgraded_on_read() -> None:
    v1 = only_json(CORPUS / "v1")
    assert json.loads(v1.read_text())["schema_version"] == 1
    upgraded, problems = validate_file(v1)
    assert problems == []
    current = read_submission(only_json(CORPUS / "valid"))
    assert upgraded is not None and upgraded.schema_version == SCHEMA_VERSION
    # Re-scored on this machine, the corpus's file from another: numbers agree to rounding (a fitted
    # temperature differs in the last bits across CPUs), everything else exactly.
    assert same_up_to_rounding(upgraded.model_dump(), current.model_dump())


def same_up_to_rounding(a: Any, b: Any) -> bool:
    """Equal structures with equal non-float leaves and floats within 1e-12 relative (or both NaN)."""
    if isinstance(a, float) and isinstance(b, float):
        return a == pytest.approx(b, rel=1e-12, abs=1e-15, nan_ok=True)
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same_up_to_rounding(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(same_up_to_rounding(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


#: the decoded-size cap while the corpus is checked (its "decodes too big" parquet decodes to 14 MB,
#: so the corpus stays small; the harness's own cap is MAX_PARQUET_DECODED_BYTES)
TEST_DECODED_CAP = 8_000_000


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_each_hostile_submission_is_rejected_with_its_own_message(
    case: str, hostile_corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("harness.validation.MAX_PARQUET_DECODED_BYTES", TEST_DECODED_CAP)
    _valid, problems = validate_files([hostile_corpus / case])
    assert problems, f"{case} was accepted"
    text = "\n".join(p.one_line() for p in problems)
    assert EXPECTED[case] in text, text
    assert all(p.file.startswith(str(hostile_corpus)) for p in problems)  # every problem names its file
    assert all(len(p.one_line().splitlines()) == 1 for p in problems)  # one line each


def test_every_case_has_a_distinct_first_message(hostile_corpus: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("harness.validation.MAX_PARQUET_DECODED_BYTES", TEST_DECODED_CAP)
    firsts = set()
    for case in EXPECTED:
        _, problems = validate_files([hostile_corpus / case])
        firsts.add((problems[0].field, problems[0].message.split(" (")[0]))
    assert len(firsts) >= 70  # distinct problems, not one generic error


def test_worker_processes_find_what_one_process_finds(hostile_corpus: Path) -> None:
    """Re-scoring in worker processes changes nothing: the same valid files, problems (in file order,
    duplicates across files included) and tiers as in one process."""
    paths = [CORPUS / "valid", *sorted(hostile_corpus.iterdir())[:12], CORPUS / "valid"]
    one_tiers: dict[str, Tier] = {}
    many_tiers: dict[str, Tier] = {}
    one = validate_files(paths, tiers=one_tiers, workers=1)
    many = validate_files(paths, tiers=many_tiers, workers=2)
    assert many == one and many_tiers == one_tiers
    valid, problems = one
    assert len(valid) == 1 and "re-scored" in one_tiers.values()
    assert any("duplicate of" in p.message for p in problems)  # the valid file listed twice
    assert len({p.file for p in problems}) >= 12


def _die(file: Path, root: Path | None, rescore: bool) -> None:
    os._exit(1)  # a worker killed mid-file (the kernel's out-of-memory killer)


def test_a_dead_worker_process_is_an_error_that_says_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("harness.validation._validate_one", _die)  # what the spawned workers run
    monkeypatch.setattr("harness.validation.MIN_FILES_FOR_WORKERS", 1)
    with pytest.raises(HarnessError, match="worker process that re-scores submissions died") as raised:
        validate_files([CORPUS / "valid"], workers=2)
    assert "--jobs 1" in (raised.value.fix or "")


def test_oversized_and_symlinked_files_are_refused(tmp_path: Path) -> None:
    folder = tmp_path / "harness-tests__corpus-mlp"
    folder.mkdir()
    big = folder / "f71b3a9c1c3f0c58ec29.json"
    big.write_text(json.dumps({"schema_version": 2, "padding": "x" * 5_100_000}))
    assert "byte cap" in validate_file(big)[1][0].message
    big.unlink()
    big.symlink_to(only_json(CORPUS / "valid"))
    assert "symbolic link" in validate_file(big)[1][0].message


def test_a_bad_file_in_a_batch_ingests_nothing(capsys, monkeypatch, tmp_path: Path, hostile_corpus: Path) -> None:  # type: ignore[no-untyped-def]
    batch = tmp_path / "batch"
    shutil.copytree(CORPUS / "valid", batch / "valid")
    shutil.copytree(next(hostile_corpus.glob("*-forged-value")), batch / "forged")
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
        assert opened.dump() == once and len(once["runs"]) == 2  # calib and ood


def test_validate_and_ingest_of_the_whole_corpus(capsys, monkeypatch, tmp_path: Path, hostile_corpus: Path) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr("harness.validation.MAX_PARQUET_DECODED_BYTES", TEST_DECODED_CAP)
    assert run_cli(capsys, monkeypatch, "validate", str(CORPUS / "valid")).code == 0
    bad = run_cli(capsys, monkeypatch, "validate", str(hostile_corpus))
    assert bad.code == 2 and f"{len(EXPECTED)} valid" not in bad.out
    store = tmp_path / "results.duckdb"
    result = run_cli(capsys, monkeypatch, "ingest", str(hostile_corpus), "--store", str(store))
    assert result.code == 2 and "nothing was ingested" in result.err and not store.exists()


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
    full = run_cli(capsys, monkeypatch, "verify", str(file), "--model", str(model), "--samples", "0")
    assert full.code == 0 and "all metrics agree" in _row(full.out, "metrics re-run") and "tier: verified" in full.out
    different = run_cli(capsys, monkeypatch, "verify", str(file), "--model", str(other), "--samples", "20")
    assert different.code == 1 and "checkpoint sha256" in different.out and "NO" in different.out
    assert "does not match the checkpoint's behaviour" in different.out and "tier: not verified" in different.out

    # The same recipe trained on another machine: other bytes (a hash mismatch, a warning), same behaviour.
    rebuilt = tmp_path / "elsewhere" / model.name
    shutil.copytree(model, rebuilt)
    (weights,) = rebuilt.glob("*.safetensors")
    tensors = load_file(weights)
    save_file({k: v * (1 + 1e-6) if v.is_floating_point() else v for k, v in tensors.items()}, weights)
    elsewhere = run_cli(capsys, monkeypatch, "verify", str(file), "--model", str(rebuilt))
    assert elsewhere.code == 0, elsewhere.out
    assert "warning" in elsewhere.out and "all metrics agree" in elsewhere.out and "NO" not in elsewhere.out
    assert "same behaviour (another checkpoint)" in elsewhere.out and "tier: verified" in elsewhere.out


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


# ----------------------------------------------------------------------------- verify on a random subset
# (issue 12: a submitter who knows which samples are re-run can invent the others)


def _splits_of_every_type() -> dict[str, Any]:
    """One small split of every split type, 8 samples each, labels distinct from positions."""
    import numpy as np

    from harness.data.arrays import ArraySplit, TextSplit
    from harness.data.choices import ChoiceSplit
    from harness.data.language import Document, RecordSplit
    from harness.data.lm_eval_source import LMEvalTask
    from harness.data.reference import ContinuationSplit
    from harness.data.retrieval import RetrievalSplit

    rng = np.random.default_rng(0)
    ids = [f"s{i}" for i in range(8)]
    y = np.asarray([3, 1, 4, 1, 5, 2, 6, 0], dtype=np.int64)
    return {
        "array": ArraySplit("test", rng.standard_normal((8, 3)).astype(np.float32), y, ids),
        "text": TextSplit("test", [f"text {i}" for i in range(8)], y, ids),
        "choice": ChoiceSplit("test", [f"context {i}" for i in range(8)], [["a", "b", "c", "d", "e", "f", "g"]] * 8, y, ids),
        "continuation": ContinuationSplit(
            "continuations", ids, [[i, i + 1] for i in range(8)], rng.integers(0, 9, (8, 4)),
            rng.standard_normal((8, 4, 9)).astype(np.float32), "ref",
        ),
        "records": RecordSplit("heldout", tuple(Document(i, f"text of {i}", 1) for i in ids)),
        "retrieval": RetrievalSplit("queries", [f"query {i}" for i in range(8)], ids, {"s2": {"d1": 1}, "s5": {"d2": 2}}),
        "lm_eval": LMEvalTask("synth_mc", None, n_docs=8, content="fixed content: the task is not loaded"),
    }  # fmt: skip


@pytest.mark.parametrize("kind", sorted(_splits_of_every_type()))
def test_take_keeps_ids_and_labels_aligned(kind: str) -> None:
    import numpy as np

    from harness.errors import HarnessError

    split = _splits_of_every_type()[kind]
    assert split.head(5).fingerprint == split.take(range(5)).fingerprint
    assert split.take([1, 6]).fingerprint not in {split.fingerprint, split.head(2).fingerprint}
    with pytest.raises(HarnessError, match="outside split"):
        split.take([0, 8])
    with pytest.raises(HarnessError, match="repeats"):
        split.take([2, 2])
    if kind == "lm_eval":  # lm-eval evaluates documents in its own order: ascending positions
        taken = split.take([6, 1, 3])
        assert taken.samples == (1, 3, 6) and taken.limit is None and len(taken) == 3
        assert taken.take([2, 0]).samples == (1, 6) and taken.head(2).samples == (1, 3)
        assert split.take([0, 1]) == split.head(2)  # a prefix is lm-eval's limit
        return
    taken = split.take([6, 1, 3])
    assert list(taken.ids) == ["s6", "s1", "s3"] and len(taken) == 3
    if hasattr(split, "y") and kind != "retrieval":
        assert np.asarray(taken.y).tolist() == [6, 1, 1]
    if kind == "array":
        assert np.array_equal(taken.x, split.x[[6, 1, 3]])
    if kind == "choice":
        assert taken.contexts == ["context 6", "context 1", "context 3"]
    if kind == "continuation":
        assert np.array_equal(taken.reference_logprobs, split.reference_logprobs[[6, 1, 3]])
        assert taken.prompts == [[6, 7], [1, 2], [3, 4]]
    if kind == "records":
        assert [r.text for r in taken] == ["text of s6", "text of s1", "text of s3"]
    if kind == "retrieval":
        assert split.take([5, 0]).qrels == {"s5": {"d2": 2}} and taken.texts == ["query 6", "query 1", "query 3"]


def test_subset_positions_are_reproducible_and_unpredictable_without_the_seed() -> None:
    from harness.runner import subset_positions

    first = subset_positions("merge-sha", "calib", "test", 271, 64)
    assert first == subset_positions("merge-sha", "calib", "test", 271, 64)
    assert first == sorted(set(first)) and len(first) == 64 and first[0] >= 0 and first[-1] < 271
    others = [
        subset_positions("other-sha", "calib", "test", 271, 64),
        subset_positions("merge-sha", "ood", "test", 271, 64),
        subset_positions("merge-sha", "calib", "calib", 271, 64),
    ]
    assert all(other != first for other in others)
    assert first != list(range(64))
    assert subset_positions("s", "t", "x", 5, 64) == [0, 1, 2, 3, 4]  # a small split: every sample


def test_a_subset_and_a_limit_exclude_each_other() -> None:
    from harness.errors import HarnessError
    from harness.runner import EvalOptions

    with pytest.raises(HarnessError, match="exclude each other"):
        EvalOptions(limit=5, sample_subset=("seed", 3))
    with pytest.raises(HarnessError, match="empty"):
        EvalOptions(sample_subset=("seed", 0))


def test_the_plan_subsets_evaluated_samples_only() -> None:
    """Fitting data, a retrieval corpus and tasks whose samples depend on each other stay whole."""
    from harness.data import load_suite
    from harness.data.lm_eval_source import one_reading_per_command
    from harness.runner import EvalOptions, planned_split, subset_positions
    from harness.tasks import adapter_for, load_specs

    options = EvalOptions(sample_subset=("seed", 16))
    specs = load_specs()
    sizes: dict[tuple[str, str], tuple[int, int]] = {}
    with one_reading_per_command():
        for name in ("ood", "retrieval", "probe", "flatness", "lm_loss", "synth_mc"):
            spec = specs.get(name)
            suite = load_suite(spec.dataset)
            for request in adapter_for(spec).requests(spec):
                split = planned_split(suite, spec, request, options)
                sizes[(name, request.split)] = (len(split), len(suite.split(request.split)))
                if len(split) < len(suite.split(request.split)):
                    positions = subset_positions("seed", name, request.split, len(suite.split(request.split)), 16)
                    assert split.fingerprint == suite.split(request.split).take(positions).fingerprint
    whole = {("ood", "train"), ("retrieval", "corpus"), ("probe", "probe"), ("flatness", "heldout")}
    for key, (planned, full) in sizes.items():
        assert planned == (full if key in whole else 16), key
    assert ("ood", "near") in sizes and ("synth_mc", "synth_mc") in sizes


def test_verify_compares_samples_by_id_and_a_missing_id_fails() -> None:
    import numpy as np

    from harness.tasks.base import Samples
    from harness.verify import compare_samples

    theirs = Samples("test", ["a", "b", "c", "d"], np.zeros(4, np.int64), np.arange(8.0).reshape(4, 2), ["x", "y"])
    ours = Samples("test", ["d", "b"], np.zeros(2, np.int64), np.asarray([[6.0, 7.0], [2.0, 3.0]]), ["x", "y"])
    assert compare_samples("calib", ours, theirs).status == "ok"
    shifted = Samples("test", ["d", "b"], np.zeros(2, np.int64), np.asarray([[6.0, 7.0], [2.5, 3.0]]), ["x", "y"])
    assert "1 differ: b" in compare_samples("calib", shifted, theirs).detail
    assert compare_samples("calib", shifted, theirs).failed
    unknown = Samples("test", ["d", "e"], np.zeros(2, np.int64), np.zeros((2, 2)), ["x", "y"])
    missing = compare_samples("calib", unknown, theirs)
    assert missing.failed and "1 of 2 re-run samples not submitted: e" in missing.detail
    assert compare_samples("calib", ours, None).failed


@pytest.fixture(scope="module")
def genuine_and_forged(tiny_zoo: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(model, genuine calib submission, forgery). The forgery keeps the first 64 test samples real,
    invents the rest (logits halved: a better-calibrated model) and re-scores its metrics from them,
    so it passes `harness validate`; only re-running unpredictable samples catches it."""
    import dataclasses

    from harness.runner import EvalOptions, Runner, load_models
    from harness.submissions import write_submission
    from harness.tasks import adapter_for, load_specs
    from harness.tasks.base import run_artifacts, run_parameters

    work = tmp_path_factory.mktemp("forgery")
    model = tiny_zoo / "digits-mlp-wide"
    options = EvalOptions(cache_dir=work / "cache", device="cpu")
    spec = load_specs().get("calib")
    result = Runner(options).evaluate(load_models([model], options, "cpu")[0], [spec])
    genuine = write_submission(work / "genuine", result.submission, result.samples)
    forged_samples = []
    for task, block in result.samples:
        if block.split == "test":
            values = block.values.copy()
            values[64:] *= 0.5
            block = dataclasses.replace(block, values=values)
        forged_samples.append((task, block))
    seed = result.submission.seed
    outcome = adapter_for(spec).score(spec, {block.split: block for _, block in forged_samples}, seed)
    (run,) = result.submission.results
    run = run.model_copy(
        update={
            "metrics": outcome.metrics,
            "parameters": run_parameters(spec, outcome),
            "artifacts": run_artifacts(outcome, spec.main_metric, seed),
        }
    )
    forged = write_submission(work / "forged", result.submission.model_copy(update={"results": [run]}), forged_samples)
    return model, genuine, forged


def _row(out: str, what: str) -> str:
    return next(line for line in out.splitlines() if what in line)


@pytest.mark.slow
def test_the_forgery_is_consistent_and_passes_the_first_n(
    capsys, monkeypatch, genuine_and_forged: tuple[Path, Path, Path]
) -> None:  # type: ignore[no-untyped-def]
    model, genuine, forged = genuine_and_forged
    assert validate_file(forged)[1] == [] and validate_file(genuine)[1] == []
    ece = {p: read_submission(p).results[0].metric("ece").value for p in (genuine, forged)}
    assert ece[forged] != pytest.approx(ece[genuine], rel=1e-3)
    # --limit re-runs the first N samples, which the forger knew: it passes, and is not "verified"
    first = run_cli(capsys, monkeypatch, "verify", str(forged), "--model", str(model), "--limit", "64")
    assert first.code == 0, first.out
    assert "tier: not verified (--limit re-runs the first N samples" in first.out


@pytest.mark.slow
@pytest.mark.parametrize("seed", ["0", "merge-4f2a9c1", "pull/17/head"])
def test_verify_on_random_samples_catches_the_forgery(
    capsys, monkeypatch, genuine_and_forged: tuple[Path, Path, Path], seed: str
) -> None:  # type: ignore[no-untyped-def]
    model, genuine, forged = genuine_and_forged
    args = ["--model", str(model), "--samples", "64", "--sample-seed", seed]
    caught = run_cli(capsys, monkeypatch, "verify", str(forged), *args)
    assert caught.code == 1, caught.out
    assert "NO" in _row(caught.out, "samples test") and "differ" in _row(caught.out, "samples test")
    assert "yes" in _row(caught.out, "samples calib") and "yes" in _row(caught.out, "metrics re-scored")
    assert "tier: not verified (a check failed)" in caught.out and f"sample seed: {seed}" in caught.out
    honest = run_cli(capsys, monkeypatch, "verify", str(genuine), *args)
    assert honest.code == 0, honest.out
    assert "64 samples by id" in _row(honest.out, "samples test") and "NO" not in honest.out
    assert "all metrics agree" in _row(honest.out, "metrics re-scored") and "tier: verified" in honest.out


@pytest.mark.slow
def test_verify_submission_returns_the_tier_and_the_verified_runs(
    genuine_and_forged: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    from harness.runner import EvalOptions, load_models
    from harness.verify import verify_submission

    model, genuine, forged = genuine_and_forged
    options = EvalOptions(cache_dir=tmp_path / "cache", device="cpu", sample_subset=("seed", 64))
    handle = load_models([model], options, "cpu")[0]
    honest = verify_submission(genuine, handle, options)
    assert honest.tier == "verified" and honest.verified_tasks == ["calib"] and not honest.failed
    assert honest.sample_subset == ("seed", 64) and honest.why_not_verified == ""
    caught = verify_submission(forged, handle, options)
    assert caught.tier == "not verified" and caught.verified_tasks == [] and caught.failed
    assert [c.what for c in caught.checks if c.failed] == ["samples test"]


@pytest.mark.slow
def test_verify_draws_a_fresh_seed_prints_it_and_repeats_with_it(
    capsys, monkeypatch, genuine_and_forged: tuple[Path, Path, Path]
) -> None:  # type: ignore[no-untyped-def]
    import re

    model, genuine, _forged = genuine_and_forged
    first = run_cli(capsys, monkeypatch, "verify", str(genuine), "--model", str(model))
    assert first.code == 0 and "tier: verified" in first.out
    match = re.search(r"sample seed: (\S+)", first.out)
    assert match is not None and f"--sample-seed {match.group(1)}" in first.out
    again = run_cli(capsys, monkeypatch, "verify", str(genuine), "--model", str(model), "--sample-seed", match.group(1))
    assert _row(again.out, "samples test") == _row(first.out, "samples test")
    both = run_cli(capsys, monkeypatch, "verify", str(genuine), "--model", str(model), "--limit", "5", "--samples", "9")
    assert both.code == 2 and "excludes --samples" in both.err


@pytest.mark.slow
def test_subset_outputs_equal_the_full_runs(tiny_zoo: Path, tmp_path: Path) -> None:
    """Per-sample outputs on a random subset are those of a full run, sample by sample (same ids)."""
    import dataclasses

    import numpy as np

    from harness.runner import EvalOptions, Runner, load_models, subset_positions
    from harness.tasks import load_specs

    options = EvalOptions(cache_dir=tmp_path / "cache", device="cpu")
    handle = load_models([tiny_zoo / "digits-mlp-wide"], options, "cpu")[0]
    specs = [load_specs().get("calib"), load_specs().get("ood")]
    full = {(task, block.split): block for task, block in Runner(options).evaluate(handle, specs).samples}
    subset = Runner(dataclasses.replace(options, sample_subset=("seed", 40))).evaluate(handle, specs)
    assert {(task, block.split) for task, block in subset.samples} == set(full)
    for task, block in subset.samples:
        whole = full[(task, block.split)]
        expected = [whole.ids[i] for i in subset_positions("seed", task, block.split, len(whole.ids), 40)]
        assert block.ids == expected
        rows = [whole.ids.index(sample) for sample in block.ids]
        assert np.array_equal(block.labels, whole.labels[rows])
        np.testing.assert_allclose(block.values, whole.values[rows], rtol=1e-6, atol=1e-6)
    assert subset.submission.sample_limit == 40


def test_validate_upgrade_rewrites_older_files_with_re_scored_numbers(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`harness validate --upgrade`: a file of an older schema (percentile intervals, no units) is
    written back in the current schema with the numbers re-scoring gives; its point values are
    unchanged, it validates as a current file, and a second run rewrites nothing. With a problem in
    any file nothing is written."""
    from harness.schema import SCHEMA_VERSION

    folder = only_json(CORPUS / "v1").parent  # the corpus's submission in schema version 1
    copy = tmp_path / "subs" / folder.name
    shutil.copytree(folder, copy)
    file = next(copy.glob("*.json"))
    before = json.loads(file.read_text())
    assert before["schema_version"] < SCHEMA_VERSION
    bad = tmp_path / "bad" / folder.name
    shutil.copytree(folder, bad)
    broken = json.loads(file.read_text())
    broken["results"][0]["metrics"][0]["value"] += 0.01
    (next(bad.glob("*.json"))).write_text(json.dumps(broken))
    result = run_cli(capsys, monkeypatch, "validate", str(tmp_path / "subs"), str(tmp_path / "bad"), "--upgrade")
    assert result.code == 2 and "nothing rewritten" in result.err
    assert json.loads(file.read_text()) == before

    result = run_cli(capsys, monkeypatch, "validate", str(tmp_path / "subs"), "--upgrade")
    assert result.code == 0, result.err
    assert "1 files rewritten" in result.out
    after = json.loads(file.read_text())
    assert after["schema_version"] == SCHEMA_VERSION
    old = {(r["task"], m["name"]): m for r in before["results"] for m in r["metrics"]}
    new = {(r["task"], m["name"]): m for r in after["results"] for m in r["metrics"]}
    assert set(old) <= set(new)
    assert all(new[key]["value"] == pytest.approx(old[key]["value"], rel=1e-6, abs=1e-12) for key in old)
    assert all(m["unit"] for m in new.values())
    valid, problems = validate_files([tmp_path / "subs"])
    assert problems == [] and len(valid) == 1
    result = run_cli(capsys, monkeypatch, "validate", str(tmp_path / "subs"), "--upgrade")
    assert result.code == 0 and "0 files rewritten" in result.out


def test_shipped_submissions_keep_every_point_in_its_interval_and_width_where_the_data_vary() -> None:
    """What the demo's leaderboards show (issue 13's bar): no point outside its interval, and an interval of
    no width only where the data do not vary: AUPR at perfect separation, or a median whose central
    values tie (first divergent tokens at the window's end)."""
    from harness.submissions import find_submissions

    shipped = find_submissions([Path(__file__).parent.parent / "submissions"])
    assert len(shipped) >= 50
    intervals = 0
    for path in shipped:
        for run in read_submission(path).results:
            for metric in run.metrics:
                if metric.ci_low is None or metric.ci_high is None:
                    continue
                intervals += 1
                assert metric.ci_low <= metric.value <= metric.ci_high, (path.name, metric.name)
                if metric.ci_low == metric.ci_high:
                    allowed = metric.name.startswith("aupr_") or metric.ci_method == "order-statistic"
                    assert allowed, (path.name, metric.name, metric.ci_method)
    assert intervals > 3000
