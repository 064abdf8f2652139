"""Retrieval end to end with the packaged all-MiniLM-L6-v2: equal to mteb's evaluator on a BEIR folder
the test writes, the embedding cache, the sentence-transformers loader, MTEB task sources and the zoo."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from mteb_reference import mteb_beir_scores
from safetensors.numpy import load_file

from harness.data.retrieval import mteb_suite, pydocs_suite, read_beir, read_mteb_task, suite_from_mteb_task
from harness.errors import HarnessError
from harness.models import load_model
from harness.models.base import InferenceOptions, LoadOptions
from harness.models.encode import ENCODE
from harness.models.sentence_encoder import SentenceEncoderHandle, packaged_minilm_path
from harness.registry import DATASETS
from harness.runner import EvalOptions, Runner
from harness.schema import DatasetSource, TaskSpec
from harness.tasks.base import SplitOutputs, evaluate
from harness.tasks.retrieval import ADAPTER, METRIC_NAMES
from harness.zoo import zoo_models
from harness.zoo.minilm import BASE, build, fake_quantize_int8, magnitude_prune


@pytest.fixture(scope="module")
def minilm() -> SentenceEncoderHandle:
    handle = load_model(packaged_minilm_path())
    assert isinstance(handle, SentenceEncoderHandle)
    return handle


def spec_for(name: str, **params: Any) -> TaskSpec:
    return TaskSpec(
        name="retr",
        version=1,
        adapter="retrieval",
        description="test",
        dataset=DatasetSource(kind="builtin", name=name, params=params),
        parameters={"k": 100, "n_resamples": 200},
        main_metric="ndcg_at_10",
    )


def write_beir_from_pydocs(folder: Path) -> Path:
    """A small BEIR folder from the pydocs suite: docstring documents get their qualified name as title;
    plus a query without judgments and a judgment of a document that is not in the corpus."""
    suite = pydocs_suite(seed=3, size="small")
    queries = list(zip(suite.queries.ids, suite.queries.texts, strict=True))[:12]
    judged = {doc for qid, _ in queries for doc in suite.qrels[qid]}
    texts = dict(zip(suite.corpus.ids, suite.corpus.texts, strict=True))
    chosen = [d for d in suite.corpus.ids if d in judged] + [d for d in suite.corpus.ids if d not in judged][:40]
    (folder / "qrels").mkdir(parents=True)
    with (folder / "corpus.jsonl").open("w") as out:
        for doc in chosen:
            title, _, text = texts[doc].partition(": ") if doc.startswith("api-") else ("", "", texts[doc])
            out.write(json.dumps({"_id": doc, "title": title, "text": text}) + "\n")
    with (folder / "queries.jsonl").open("w") as out:
        for qid, text in [*queries, ("unjudged", "how do I open a file")]:
            out.write(json.dumps({"_id": qid, "text": text}) + "\n")
    with (folder / "qrels" / "test.tsv").open("w") as out:
        out.write("query-id\tcorpus-id\tscore\n")
        for qid, _ in queries:
            for doc, grade in suite.qrels[qid].items():
                out.write(f"{qid}\t{doc}\t{grade}\n")
        out.write(f"{queries[0][0]}\tmissing-doc\t1\n")
    return folder


def mteb_scores(folder: Path, *, ignore_identical_ids: bool = False) -> dict[str, float]:
    """mteb's own retrieval evaluation of the packaged MiniLM on a BEIR folder (tests/mteb_reference.py)."""
    _, scores = mteb_beir_scores(folder, packaged_minilm_path(), ignore_identical_ids=ignore_identical_ids)
    return {name: float(scores[name]) for name in METRIC_NAMES}


def encoded(
    suite: Any, name: str, minilm: SentenceEncoderHandle, monkeypatch: pytest.MonkeyPatch
) -> tuple[TaskSpec, dict[str, SplitOutputs]]:
    """A retrieval spec on `suite` (registered as dataset `name` for the test) and MiniLM's embeddings of it."""
    monkeypatch.setitem(DATASETS._entries, name, lambda **params: suite)
    inputs = {
        split: SplitOutputs(suite.split(split), ENCODE.run(minilm, suite.split(split), InferenceOptions(batch_size=16)))
        for split in ("corpus", "queries")
    }
    return spec_for(name), inputs


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::DeprecationWarning")  # inside mteb
def test_minilm_scores_equal_mteb_on_a_beir_folder(
    tmp_path: Path, minilm: SentenceEncoderHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = write_beir_from_pydocs(tmp_path / "beir")
    suite = read_beir(folder)
    assert suite.notes["queries_without_qrels"] == 1 and suite.notes["qrels_unknown_docs"] == 1
    spec, inputs = encoded(suite, "written-beir", minilm, monkeypatch)
    _, outcome = evaluate(ADAPTER, spec, inputs, seed=0)
    ours = {m.name: m.value for m in outcome.metrics}
    theirs = mteb_scores(folder)
    # mteb rounds ndcg, map and recall to 5 decimals; its queries are the 12 judged ones, as ours
    for name in METRIC_NAMES:
        assert ours[name] == pytest.approx(theirs[name], abs=1e-5), (name, ours[name], theirs[name])
    assert 0.3 < ours["ndcg_at_10"] < 1.0 and outcome.parameters["n_queries_scored"] == 12


def write_arguana_like(folder: Path) -> Path:
    """A BEIR folder shaped like ArguAna: every query is a document of the corpus (same id, same text),
    judged against two other documents; its own document is not judged."""
    texts = pydocs_suite(seed=5, size="small").corpus.texts[:60]
    (folder / "qrels").mkdir(parents=True)
    with (folder / "corpus.jsonl").open("w") as out:
        for i, text in enumerate(texts):
            out.write(json.dumps({"_id": f"arg{i}", "title": "", "text": text}) + "\n")
    with (folder / "queries.jsonl").open("w") as out:
        for q in range(0, 60, 4):
            out.write(json.dumps({"_id": f"arg{q}", "text": texts[q]}) + "\n")
    with (folder / "qrels" / "test.tsv").open("w") as out:
        out.write("query-id\tcorpus-id\tscore\n")
        for q in range(0, 60, 4):
            out.write(f"arg{q}\targ{q + 1}\t1\narg{q}\targ{q + 2}\t1\n")
    return folder


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::DeprecationWarning")  # inside mteb
def test_a_querys_own_document_is_left_out_as_mteb_does_for_arguana(
    tmp_path: Path, minilm: SentenceEncoderHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = write_arguana_like(tmp_path / "arguana")
    suite = read_beir(folder)
    spec, inputs = encoded(suite, "arguana-like", minilm, monkeypatch)
    rule = spec.model_copy(update={"parameters": {**spec.parameters, "ignore_identical_ids": True}})
    _, outcome = evaluate(ADAPTER, rule, inputs, seed=0)
    ours = {m.name: m.value for m in outcome.metrics}
    theirs = mteb_scores(folder, ignore_identical_ids=True)
    for name in METRIC_NAMES:  # mteb rounds ndcg, map and recall to 5 decimals
        assert ours[name] == pytest.approx(theirs[name], abs=1e-5), (name, ours[name], theirs[name])
    assert outcome.parameters["own_documents_removed"] == 15  # each query's own text ranks it first
    _, kept = evaluate(ADAPTER, spec, inputs, seed=0)  # without the rule the own document takes rank 1
    assert {m.name: m.value for m in kept.metrics}["mrr_at_10"] < ours["mrr_at_10"]


@pytest.mark.slow
def test_second_evaluation_reads_embeddings_from_the_cache(
    tmp_path: Path, minilm: SentenceEncoderHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = spec_for("pydocs", seed=0, size="small")
    options = EvalOptions(cache_dir=tmp_path / "cache", batch_size=64)
    first = Runner(options).evaluate(minilm, [spec])
    assert (first.cache_hits, first.cache_misses) == (0, 2)

    def no_encoding(*args: object, **kwargs: object) -> None:
        raise AssertionError("a cached evaluation must not encode")

    monkeypatch.setattr(minilm, "encode", no_encoding)
    second = Runner(options).evaluate(minilm, [spec])
    assert (second.cache_hits, second.cache_misses) == (2, 0)
    assert second.submission.results[0].metrics == first.submission.results[0].metrics
    assert first.submission.results[0].metric("ndcg_at_10").value > 0.6
    assert minilm.settings == {"dtype": "float32", "device": "cpu", "max_seq_length": str(minilm.model.max_seq_length)}


@pytest.mark.slow
def test_packaged_minilm_is_detected_with_its_card(minilm: SentenceEncoderHandle) -> None:
    assert minilm.kind == "sentence-transformers" and minilm.card.model_id == "sentence-transformers/all-MiniLM-L6-v2"
    assert minilm.card.family == "minilm" and minilm.card.n_parameters == 22_713_216
    assert [c.value for c in minilm.capabilities] == ["embeddings"]
    out = minilm.encode(["a short text", "x"], InferenceOptions(), role="query")["embeddings"]
    assert out.shape == (2, 384) and out.dtype == np.float32
    assert np.allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)


def test_pickle_weights_are_refused(tmp_path: Path) -> None:
    folder = tmp_path / "pickled"
    folder.mkdir()
    (folder / "modules.json").write_text("[]")
    (folder / "pytorch_model.bin").write_bytes(b"not really a pickle")
    with pytest.raises(HarnessError, match="pickle weight files"):
        load_model(folder)
    (folder / "pytorch_model.bin").unlink()
    with pytest.raises(HarnessError, match="no weight files"):
        load_model(folder, LoadOptions())


@pytest.mark.slow
def test_mteb_task_objects_as_sources() -> None:
    from mteb.mocks.mock_tasks.retrieval import MockRetrievalTask

    suite = suite_from_mteb_task(MockRetrievalTask(), split="test")
    assert suite.corpus.ids == ["d2", "d1"] and suite.corpus.texts[0] == "Title of d1 This is a positive sentence"
    assert suite.qrels == {"q1": {"d1": 1, "d2": 0}, "q2": {"d1": 0, "d2": 1}} and suite.qrels_split == "test"
    with pytest.raises(HarnessError, match=r"SciFact' is not available locally.*load_data"):
        read_mteb_task("SciFact")  # HF_DATASETS_OFFLINE=1 and nothing cached
    with pytest.raises(HarnessError, match="unknown MTEB task"):
        read_mteb_task("NoSuchRetrievalTask")
    with pytest.raises(HarnessError, match="no split 'dev'"):
        mteb_suite(DatasetSource(kind="hf", name="x", params={"split": "dev"}), task=MockRetrievalTask())


@pytest.mark.slow
def test_zoo_builds_sentence_transformers_folders_whose_cards_name_the_base(tmp_path: Path) -> None:
    names = [p.name for p in build(tmp_path / "zoo", "full")]
    assert names == ["minilm-l6", "minilm-l3", "minilm-l6-int8", "minilm-l6-pruned50"]
    assert [p.name for p in zoo_models(tmp_path / "zoo")] == sorted(names)
    for name in names:
        folder = tmp_path / "zoo" / name
        card = json.loads((folder / "card.json").read_text())
        assert card["reference"] == BASE == "sentence-transformers/all-MiniLM-L6-v2"
        assert card["family"] == "minilm" and card["kind"] == "sentence-transformers" and card["compression"]["method"]
        assert (folder / "modules.json").exists() and (folder / "model.safetensors").exists()
        assert not [p for p in folder.rglob("*") if p.suffix in (".bin", ".pt", ".pth", ".pkl")]
    weights = {name: load_file(str(tmp_path / "zoo" / name / "model.safetensors")) for name in names}
    assert json.loads((tmp_path / "zoo" / "minilm-l3" / "config.json").read_text())["num_hidden_layers"] == 3
    assert not any(".layer.3." in key for key in weights["minilm-l3"])
    query = "encoder.layer.0.attention.self.query.weight"
    key = next(k for k in weights["minilm-l6-int8"] if k.endswith(query))
    row = weights["minilm-l6-int8"][key][0]
    assert len(np.unique(np.round(row / (np.abs(row).max() / 127.0)))) <= 255  # int8 levels
    assert np.mean(weights["minilm-l6-pruned50"][key] == 0) == pytest.approx(0.5, abs=1e-3)
    base_key = next(k for k in weights["minilm-l6"] if k.endswith(query))
    assert np.array_equal(
        weights["minilm-l6"][base_key], load_file(str(packaged_minilm_path() / "model.safetensors"))[base_key]
    )

    # the copy of the base shares its checkpoint hash (and so its cached embeddings) with the packaged folder
    copy = load_model(tmp_path / "zoo" / "minilm-l6")
    packaged = load_model(packaged_minilm_path())
    assert copy.checkpoint_hash == packaged.checkpoint_hash and copy.settings == packaged.settings
    assert copy.card.model_id == "harness-zoo/minilm-l6"

    # a folder without card.json is named after itself, family sentence-transformers
    bare = tmp_path / "my encoder"
    shutil.copytree(tmp_path / "zoo" / "minilm-l6-int8", bare)
    (bare / "card.json").unlink()
    handle = load_model(bare)
    assert handle.card.name == "my-encoder" and handle.card.family == "sentence-transformers"
    texts = ["Return the number of items in a container.", "Open a file and return a stream."]
    quantized = handle.encode(texts, InferenceOptions())["embeddings"]  # type: ignore[attr-defined]
    exact = packaged.encode(texts, InferenceOptions())["embeddings"]  # type: ignore[attr-defined]
    assert np.all(np.sum(quantized * exact, axis=1) > 0.98)


def test_compression_transforms() -> None:
    import torch

    weight = torch.tensor([[1.0, -0.5, 0.001], [0.0, 0.0, 0.0]])
    quantized = fake_quantize_int8(weight)
    assert torch.allclose(quantized[0], torch.tensor([1.0, -64 / 127, 0.0])) and (quantized[1] == 0).all()
    pruned = magnitude_prune(torch.tensor([[3.0, -1.0], [0.5, 2.0]]), 0.5)
    assert pruned.tolist() == [[3.0, 0.0], [0.0, 2.0]]
