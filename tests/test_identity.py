"""Run identity: every input that changes a result is in the cache key and the submission id.

For each input (weights, config, tokenizer, data files wherever they live, the task spec, the dtype):
change it, run again, and the forward pass runs again (or, for the spec, the scoring), the numbers
and the submission id change. Change an irrelevant file (the card, a README): everything is reused.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import run_cli
from safetensors.numpy import load_file, save_file

from harness.models import load_model
from harness.models.base import LoadOptions
from harness.runner import EvalOptions, ModelResult, Runner
from harness.schema import DatasetSource, TaskSpec
from harness.store import open_store
from harness.submissions import write_submission
from harness.tasks import load_specs
from harness.validation import read_samples
from harness.zoo import zoo_models


def evaluate(path: Path, spec: TaskSpec, cache: Path, dtype: str = "float32") -> ModelResult:
    handle = load_model(path, LoadOptions(dtype=dtype))
    return Runner(EvalOptions(cache_dir=cache, batch_size=64, dtype=dtype)).evaluate(handle, [spec])


def main_value(result: ModelResult) -> float:
    run = result.submission.results[0]
    return run.metric(run.main_metric).value


def assert_recomputed(before: ModelResult, after: ModelResult) -> None:
    assert after.cache_misses >= 1, "the changed input must run the forward pass again"
    assert main_value(after) != main_value(before)
    assert after.submission.submission_id != before.submission.submission_id


def assert_reused(before: ModelResult, after: ModelResult) -> None:
    assert after.cache_misses == 0 and after.cache_hits >= 1
    assert main_value(after) == main_value(before)
    assert after.submission.submission_id == before.submission.submission_id


def copy_of(folder: Path, tmp_path: Path) -> Path:
    target = tmp_path / "model" / folder.name
    shutil.copytree(folder, target)
    return target


def lm_reference(lm_zoo: Path) -> Path:
    return next(p for p in zoo_models(lm_zoo) if "compression-reference" in (p / "card.json").read_text())


# ----------------------------------------------------------------------------- the checkpoint


def test_weights(tiny_zoo: Path, tmp_path: Path) -> None:
    model = copy_of(tiny_zoo / "digits-mlp-small", tmp_path)
    spec = load_specs().get("calib")
    before = evaluate(model, spec, tmp_path / "cache")
    weights = model / "model.safetensors"
    tensors = load_file(weights)
    save_file({k: v * np.float32(1.5) for k, v in tensors.items()}, weights)
    assert_recomputed(before, evaluate(model, spec, tmp_path / "cache"))


def test_irrelevant_files_are_reused(tiny_zoo: Path, tmp_path: Path) -> None:
    model = copy_of(tiny_zoo / "digits-mlp-small", tmp_path)
    spec = load_specs().get("calib")
    before = evaluate(model, spec, tmp_path / "cache")
    (model / "README.md").write_text("# notes\nnothing that changes outputs\n")
    card = json.loads((model / "card.json").read_text())
    card["description"] = "reworded"
    (model / "card.json").write_text(json.dumps(card))
    (model / ".cache").mkdir()
    (model / ".cache" / "x.json").write_text("{}")
    assert_reused(before, evaluate(model, spec, tmp_path / "cache"))


@pytest.mark.slow
def test_config(lm_zoo: Path, tmp_path: Path) -> None:
    model = copy_of(lm_reference(lm_zoo), tmp_path)
    spec = load_specs().get("lm_loss")
    before = evaluate(model, spec, tmp_path / "cache")
    config = json.loads((model / "config.json").read_text())
    config["layer_norm_epsilon"] = 0.5  # same weights, other outputs
    (model / "config.json").write_text(json.dumps(config))
    assert_recomputed(before, evaluate(model, spec, tmp_path / "cache"))


@pytest.mark.slow
def test_tokenizer(lm_zoo: Path, tmp_path: Path) -> None:
    """Same weights, a retrained tokenizer (two words swap ids): the old outputs must not be reused."""
    model = copy_of(lm_reference(lm_zoo), tmp_path)
    spec = load_specs().get("lm_loss")
    before = evaluate(model, spec, tmp_path / "cache")
    tokenizer = json.loads((model / "tokenizer.json").read_text())
    vocab = tokenizer["model"]["vocab"]
    words = sorted(w for w in vocab if w.isalpha())[:2]
    vocab[words[0]], vocab[words[1]] = vocab[words[1]], vocab[words[0]]
    (model / "tokenizer.json").write_text(json.dumps(tokenizer))
    assert_recomputed(before, evaluate(model, spec, tmp_path / "cache"))


# ----------------------------------------------------------------------------- inference settings


def test_dtype_is_part_of_the_identity_and_the_board(tiny_zoo: Path, tmp_path: Path) -> None:
    model = tiny_zoo / "digits-mlp-small"
    spec = load_specs().get("calib")
    fp32 = evaluate(model, spec, tmp_path / "cache")
    bf16 = evaluate(model, spec, tmp_path / "cache", dtype="bfloat16")
    assert_recomputed(fp32, bf16)
    assert fp32.submission.settings["dtype"] == "float32" and bf16.submission.settings["dtype"] == "bfloat16"
    assert fp32.submission.settings["device"] == "cpu"
    # Both land in the store and sit side by side on the board: the bf16 run replaces nothing.
    out = tmp_path / "subs"
    files = [write_submission(out, r.submission, r.samples) for r in (fp32, bf16)]
    assert len({f.name for f in files}) == 2
    with open_store(tmp_path / "r.duckdb") as store:
        store.ingest([(fp32.submission, None), (bf16.submission, None)])
        board = store.leaderboard("calib")
    assert set(board["model_id"]) == {"harness-zoo/digits-mlp-small", "harness-zoo/digits-mlp-small@bfloat16"}


def test_dtype_is_refused_where_it_cannot_apply(capsys, monkeypatch, tiny_zoo: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from harness.data.digits import digits_ood_suite

    suite = digits_ood_suite()
    preds = tmp_path / "preds"
    preds.mkdir()
    arrays = {}
    for split in ("calib", "test", "train"):
        data = suite.split(split)
        arrays[f"{split}.ids"] = np.asarray(data.ids)
        arrays[f"{split}.logits"] = np.random.default_rng(0).normal(size=(len(data.ids), 6)).astype(np.float32)
    np.savez(preds / "predictions.npz", **arrays)
    common = ("--tasks", "calib", "--no-store", "--out", str(tmp_path / "subs"))
    refused = run_cli(capsys, monkeypatch, "eval", "--model", str(preds), "--dtype", "bfloat16", *common)
    assert refused.code == 2 and "cannot run in bfloat16" in refused.err and "--dtype float32" in refused.err
    unknown = run_cli(
        capsys, monkeypatch, "eval", "--model", str(tiny_zoo / "digits-mlp-small"), "--dtype", "float64", *common
    )
    assert unknown.code == 2 and "unknown dtype 'float64'" in unknown.err
    assert not (tmp_path / "subs").exists()


# ----------------------------------------------------------------------------- the task spec


def test_spec_hash(tiny_zoo: Path, tmp_path: Path) -> None:
    """Scoring parameters change the numbers and the id; the model's outputs do not depend on them
    and are reused (the cache key is the model, the data and the inference, not the scoring)."""
    model = tiny_zoo / "digits-mlp-small"
    spec = load_specs().get("calib")
    before = evaluate(model, spec, tmp_path / "cache")
    coarser = spec.model_copy(update={"parameters": {**spec.parameters, "n_bins": 5}})
    after = evaluate(model, coarser, tmp_path / "cache")
    assert coarser.spec_hash() != spec.spec_hash()
    assert after.cache_misses == 0 and main_value(after) != main_value(before)
    assert after.submission.submission_id != before.submission.submission_id


# ----------------------------------------------------------------------------- data files


def write_mc_task(include: Path, data: Path, fmt: str) -> None:
    """A multiple-choice lm-eval task whose data file may live anywhere, in json lines or CSV."""
    include.mkdir(parents=True, exist_ok=True)
    builder = "json" if fmt == "jsonl" else "csv"
    (include / "tiny_mc.yaml").write_text(
        "task: tiny_mc\n"
        f"dataset_path: {builder}\n"
        f"dataset_kwargs:\n  data_files:\n    test: {data}\n"
        "test_split: test\n"
        "output_type: multiple_choice\n"
        'doc_to_text: "{{context}}"\n'
        'doc_to_choice: "{{[first, second]}}"\n'
        "doc_to_target: 0\n"
        "metric_list:\n  - metric: acc\n"
        "metadata:\n  version: 1.0\n"
    )


def write_items(data: Path, fmt: str, n: int) -> None:
    rng = np.random.default_rng(0)
    words = ["the", "cat", "dog", "saw", "a", "bird", "ran", "."]
    rows = [
        {"context": " ".join(rng.choice(words, 4)), "first": str(rng.choice(words)), "second": str(rng.choice(words))}
        for _ in range(n)
    ]
    data.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "jsonl":
        data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    else:
        data.write_text(
            "context,first,second\n" + "".join(f"{r['context']},{r['first']},{r['second']}\n" for r in rows)
        )


@pytest.mark.slow
@pytest.mark.parametrize(("fmt", "inside"), [("jsonl", False), ("csv", True)])
def test_lm_eval_data_files_wherever_they_live(lm_zoo: Path, tmp_path: Path, fmt: str, inside: bool) -> None:
    include = tmp_path / "tasks"
    data = (include if inside else tmp_path / "elsewhere") / f"items.{fmt}"
    write_mc_task(include, data, fmt)
    write_items(data, fmt, 40)
    spec = TaskSpec(
        name="tiny_mc",
        version=1,
        adapter="lm_eval",
        description="a local multiple-choice task",
        dataset=DatasetSource(kind="builtin", name="lm-eval", params={"include_path": str(include)}),
        parameters={"task": "tiny_mc", "metrics": ["acc"]},
        main_metric="lm_eval.acc",
    )
    model = lm_reference(lm_zoo)
    before = evaluate(model, spec, tmp_path / "cache")
    again = evaluate(model, spec, tmp_path / "cache")
    assert again.cache_misses == 0, "unchanged data must be reused"
    write_items(data, fmt, 25)  # the file cut to 25 items, its name and folder unchanged
    after = evaluate(model, spec, tmp_path / "cache")
    assert after.cache_misses >= 1
    assert (
        after.submission.results[0].metric("lm_eval.acc").n
        == 25
        != before.submission.results[0].metric("lm_eval.acc").n
    )
    assert after.submission.submission_id != before.submission.submission_id


@pytest.mark.slow
def test_rolling_perplexity_without_stderr_is_written_and_read_back(lm_zoo: Path, tmp_path: Path) -> None:
    """lm-eval reports no stderr (N/A) for rolling perplexities: it is stored as null, never NaN."""
    from test_lm_tasks import heldout_spec

    result = evaluate(lm_reference(lm_zoo), heldout_spec(), tmp_path / "cache")
    run = result.submission.results[0]
    declared = run.artifacts["lm_eval"]
    assert declared["word_perplexity"]["stderr"] is None
    file = write_submission(tmp_path / "subs", result.submission, result.samples)
    samples = read_samples(file.with_suffix(".parquet"))  # raised "contain NaN or inf" before
    assert np.isfinite(samples[run.task]["lm_eval"].values).all()


# ----------------------------------------------------------------------------- sweeps


def test_a_folder_of_checkpoints_is_a_sweep(capsys, monkeypatch, tiny_zoo: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    sweep = tmp_path / "sweep"
    for name in ("digits-mlp-small", "digits-lt100-mlp-none"):
        shutil.copytree(tiny_zoo / name, sweep / name)
    (sweep / "notes").mkdir()
    (sweep / "notes" / "todo.txt").write_text("not a checkpoint")
    shutil.copytree(tiny_zoo / "digits-mlp-wide", sweep / ".partial")  # hidden: being written
    out = tmp_path / "subs"
    args = ("eval", "--model", str(sweep), "--tasks", "calib,longtail", "--no-store", "--out", str(out))
    result = run_cli(capsys, monkeypatch, *args)
    assert result.code == 1, result.err  # ran, with a skipped pair
    assert "digits-mlp-small: skipped longtail" in result.out and "trained on digits-lt100" in result.out
    written = {f.parent.name: json.loads(f.read_text()) for f in out.rglob("*.json")}
    assert set(written) == {"harness-zoo__digits-mlp-small", "harness-zoo__digits-lt100-mlp-none"}
    assert [r["task"] for r in written["harness-zoo__digits-mlp-small"]["results"]] == ["calib"]
    assert len(written["harness-zoo__digits-lt100-mlp-none"]["results"]) == 2

    empty = tmp_path / "empty"
    (empty / "notes").mkdir(parents=True)
    nothing = run_cli(capsys, monkeypatch, "eval", "--model", str(empty), "--tasks", "calib", "--no-store")
    assert nothing.code == 2 and "not a checkpoint" in nothing.err


def test_data_errors_come_before_any_model_loads(capsys, monkeypatch, tiny_zoo: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import harness.models as models

    def no_loading(*args: object, **kwargs: object) -> None:
        raise AssertionError("a model was loaded before the data was checked")

    monkeypatch.setattr(models, "load_model", no_loading)
    monkeypatch.setattr("harness.runner.load_model", no_loading)
    tasks_dir = tmp_path / "tasks"
    tasks_dir.mkdir()
    (tasks_dir / "mine.yaml").write_text(
        "name: mine\nversion: 1\nadapter: calibration\ndescription: my data\n"
        f"dataset: {{kind: local, name: mine, path: {tmp_path / 'no-such-folder'}}}\n"
        "main_metric: ece\n"
    )
    monkeypatch.setenv("HARNESS_TASKS_DIR", str(tasks_dir))
    result = run_cli(
        capsys, monkeypatch, "eval", "--model", str(tiny_zoo / "digits-mlp-small"), "--tasks", "mine", "--no-store"
    )
    assert result.code == 2 and "Traceback" not in result.err
    assert "dataset path does not exist" in result.err and "Results" not in result.out


def test_a_label_space_mismatch_fails_before_any_forward_pass(
    capsys, monkeypatch, tiny_zoo: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """A 6-class model on the 10-class digits suite: refused from the model's config, not after inference."""
    from harness.models.torch_classifier import TorchClassifierHandle

    def no_inference(*args: object, **kwargs: object) -> None:
        raise AssertionError("the model ran before its label space was checked")

    monkeypatch.setattr(TorchClassifierHandle, "classify", no_inference)
    tasks_dir = tmp_path / "tasks"
    tasks_dir.mkdir()
    (tasks_dir / "ten.yaml").write_text(
        "name: ten\nversion: 1\nadapter: calibration\ndescription: ten classes\n"
        "dataset: {kind: builtin, name: digits}\nmain_metric: ece\n"
    )
    monkeypatch.setenv("HARNESS_TASKS_DIR", str(tasks_dir))
    out = tmp_path / "subs"
    result = run_cli(
        capsys, monkeypatch, "eval", "--model", str(tiny_zoo / "digits-mlp-small"), "--tasks", "ten", "--no-store",
        "--out", str(out),
    )  # fmt: skip
    assert result.code == 2, result.out
    assert "has 6 outputs but split 'calib' of task 'ten' has labels up to 9" in result.err
    assert not out.exists()


def test_one_command_reads_each_lm_eval_tasks_data_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The checks before the run and the run share one reading of a task's documents; outside a
    command every fingerprint reads them again (a long-lived process never reuses a stale digest)."""
    from harness.data import lm_eval_source

    reads: list[str] = []

    def counting_digest(name: str, include_path: str | None) -> tuple[str, int]:
        reads.append(name)
        return f"documents of {name}", 3

    monkeypatch.setattr(lm_eval_source, "documents_digest", counting_digest)
    with lm_eval_source.one_reading_per_command():
        first = lm_eval_source.LMEvalTask("tiny_mc", None)
        again = lm_eval_source.LMEvalTask("tiny_mc", None)
        assert first.fingerprint == again.fingerprint and reads == ["tiny_mc"]
    lm_eval_source.LMEvalTask("tiny_mc", None)
    lm_eval_source.LMEvalTask("tiny_mc", None)
    assert reads == ["tiny_mc"] * 3
