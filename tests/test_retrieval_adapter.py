"""The retrieval adapter with a fake encoder: against pytrec_eval on the full score matrix (many ties),
the trec_eval tie rule, the samples layout, skipped queries and the errors."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import pytrec_eval

from harness.data.retrieval import RetrievalSplit, RetrievalSuite
from harness.errors import HarnessError
from harness.models.base import Arrays, Capability, InferenceOptions, ModelHandle
from harness.models.encode import ENCODE, Role
from harness.registry import DATASETS
from harness.schema import DatasetSource, ModelCard, TaskSpec
from harness.tasks import retrieval
from harness.tasks.base import Samples, SplitOutputs, evaluate


class TableEncoder(ModelHandle):
    """Embeds each text by looking it up in a table; records the roles it was asked for."""

    def __init__(self, table: dict[str, np.ndarray]) -> None:
        super().__init__(
            path=Path("table"),
            kind="fake",
            card=ModelCard(name="table"),
            checkpoint_hash="0" * 64,
            capabilities=frozenset({Capability.EMBEDDINGS}),
        )
        self.table = table
        self.roles: list[str] = []

    def encode(self, texts: list[str], options: InferenceOptions, *, role: Role = "document") -> Arrays:
        self.roles.append(role)
        options.advance(len(texts))
        return {"embeddings": np.stack([self.table[t] for t in texts]).astype(np.float32)}


def register(monkeypatch: pytest.MonkeyPatch, name: str, suite: RetrievalSuite) -> TaskSpec:
    """A task spec whose builtin dataset `name` is `suite` (registered for this test only)."""
    monkeypatch.setitem(DATASETS._entries, name, lambda **params: suite)
    return TaskSpec(
        name="retr",
        version=1,
        adapter="retrieval",
        description="test",
        dataset=DatasetSource(kind="builtin", name=name),
        parameters={"k": 100, "similarity": "dot", "n_resamples": 200},
        main_metric="ndcg_at_10",
    )


def inputs_for(suite: RetrievalSuite, encoder: TableEncoder) -> dict[str, SplitOutputs]:
    return {
        name: SplitOutputs(suite.split(name), ENCODE.run(encoder, suite.split(name), InferenceOptions()))
        for name in ("corpus", "queries")
    }


def table_suite(
    name: str,
    doc_ids: list[str],
    docs: np.ndarray,
    query_ids: list[str],
    queries: np.ndarray,
    qrels: dict[str, dict[str, int]],
) -> tuple[RetrievalSuite, dict[str, np.ndarray]]:
    """A suite whose texts are "text <id>" and "query <id>", and the embedding table a TableEncoder reads."""
    table = {f"text {d}": v for d, v in zip(doc_ids, docs, strict=True)}
    table |= {f"query {q}": v for q, v in zip(query_ids, queries, strict=True)}
    suite = RetrievalSuite(
        name=name,
        corpus=RetrievalSplit("corpus", [f"text {d}" for d in doc_ids], doc_ids),
        queries=RetrievalSplit("queries", [f"query {q}" for q in query_ids], query_ids, qrels),
        qrels_split="test",
        description=name,
    )
    return suite, table


def tied_problem(seed: int) -> tuple[RetrievalSuite, dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Integer embeddings in {0, 1, 2}^3 (exact dot products, many ties), random ids and graded qrels."""
    rng = np.random.default_rng(seed)
    n_docs, n_queries = 260, 30
    doc_ids = [f"d{i}" for i in rng.choice(10_000, n_docs, replace=False)]
    query_ids = [f"q{i}" for i in range(n_queries)]
    docs = rng.integers(0, 3, (n_docs, 3)).astype(np.float32)
    queries = rng.integers(0, 3, (n_queries, 3)).astype(np.float32)
    qrels: dict[str, dict[str, int]] = {}
    for qid in query_ids[:-1]:  # the last query has no judgments
        judged = rng.choice(n_docs, 6, replace=False)
        qrels[qid] = {doc_ids[j]: int(rng.integers(0, 4)) for j in judged}
    qrels["q0"]["not-in-corpus"] = 2
    suite, table = table_suite("tied", doc_ids, docs, query_ids, queries, qrels)
    return suite, table, docs, queries


@pytest.mark.parametrize("seed", range(3))
def test_metrics_equal_pytrec_eval_on_the_full_score_matrix_with_ties(
    monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    suite, table, docs, queries = tied_problem(seed)
    spec = register(monkeypatch, f"tied-{seed}", suite)
    blocks, outcome = evaluate(retrieval.ADAPTER, spec, inputs_for(suite, TableEncoder(table)), seed=0)

    full = (queries.astype(np.float64) @ docs.astype(np.float64).T).tolist()
    run = {q: dict(zip(suite.corpus.ids, row, strict=True)) for q, row in zip(suite.queries.ids, full, strict=True)}
    measures = {"ndcg_cut.10", "map_cut.100", "recall.1,10,100"}
    trec = pytrec_eval.RelevanceEvaluator(suite.qrels, measures).evaluate(run)
    top10 = {q: dict(sorted(s.items(), key=lambda i: (i[1], i[0]), reverse=True)[:10]) for q, s in run.items()}
    reciprocal = pytrec_eval.RelevanceEvaluator(suite.qrels, {"recip_rank"}).evaluate(top10)
    expected = {
        "ndcg_at_10": np.mean([v["ndcg_cut_10"] for v in trec.values()]),
        "map_at_100": np.mean([v["map_cut_100"] for v in trec.values()]),
        "mrr_at_10": np.mean([v["recip_rank"] for v in reciprocal.values()]),
        "recall_at_1": np.mean([v["recall_1"] for v in trec.values()]),
        "recall_at_10": np.mean([v["recall_10"] for v in trec.values()]),
        "recall_at_100": np.mean([v["recall_100"] for v in trec.values()]),
    }
    got = {m.name: m for m in outcome.metrics}
    assert list(got) == list(retrieval.METRIC_NAMES)
    for name, value in expected.items():
        assert got[name].value == pytest.approx(value, abs=1e-12), name
        low, high = got[name].ci_low, got[name].ci_high
        assert low is not None and high is not None and low <= got[name].value <= high and got[name].n == 29
    assert outcome.parameters["n_queries_scored"] == 29 and outcome.parameters["n_queries_skipped"] == 1
    assert sum(outcome.artifacts["ndcg_at_10_histogram"]["counts"]) == 29
    assert sum(outcome.artifacts["first_relevant_rank"].values()) == 29
    (block,) = blocks
    assert block.split == "queries" and block.values.dtype == np.float32 and block.values.shape == (30, 200)


def test_ties_follow_trec_eval_and_indices_point_into_the_loaded_corpus(monkeypatch: pytest.MonkeyPatch) -> None:
    ids = ["b", "a", "c", "e", "d"]
    same = np.array([1.0, 0.0], dtype=np.float32)
    table = {f"t{i}": same for i in ids} | {"query": same}
    suite = RetrievalSuite(
        name="ties",
        corpus=RetrievalSplit("corpus", [f"t{i}" for i in ids], ids),
        queries=RetrievalSplit("queries", ["query"], ["q"], {"q": {"a": 1}}),
        qrels_split="test",
        description="all tied",
    )
    spec = register(monkeypatch, "all-tied", suite)
    encoder = TableEncoder(table)
    (block,), outcome = evaluate(retrieval.ADAPTER, spec, inputs_for(suite, encoder), seed=0)
    assert encoder.roles == ["document", "query"]
    k = len(block.fields) // 2
    assert block.fields[:2] == ["doc_index_0", "doc_index_1"] and block.fields[k] == "score_0" and k == 5
    ranked = [ids[int(i)] for i in block.values[0, :k]]
    assert ranked == ["e", "d", "c", "b", "a"]  # every score ties: doc id descending, as trec_eval
    got = {m.name: m.value for m in outcome.metrics}
    assert got["mrr_at_10"] == pytest.approx(1 / 5) and got["recall_at_1"] == 0.0 and got["recall_at_10"] == 1.0


def small_problem() -> tuple[RetrievalSuite, dict[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    ids = [f"d{i}" for i in range(20)]
    table = {f"t{i}": rng.standard_normal(4) for i in ids} | {"query": rng.standard_normal(4)}
    suite = RetrievalSuite(
        name="small",
        corpus=RetrievalSplit("corpus", [f"t{i}" for i in ids], ids),
        queries=RetrievalSplit("queries", ["query"], ["q"], {"q": {"d3": 1}}),
        qrels_split="test",
        description="small",
    )
    return suite, table


def with_parameters(spec: TaskSpec, **parameters: Any) -> TaskSpec:
    return spec.model_copy(update={"parameters": {**spec.parameters, **parameters}})


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda spec: with_parameters(spec, k=10), "map_at_100 and recall_at_100 need the top 100"),
        (lambda spec: with_parameters(spec, similarity="l2"), "unknown similarity 'l2'"),
        (lambda spec: with_parameters(spec, k="many"), "parameter 'k' must be an integer"),
        (lambda spec: with_parameters(spec, backend="annoy"), "unknown search backend 'annoy'"),
    ],
)
def test_bad_parameters(monkeypatch: pytest.MonkeyPatch, change: Callable[[TaskSpec], TaskSpec], message: str) -> None:
    suite, _ = small_problem()
    with pytest.raises(HarnessError, match=message):
        retrieval.ADAPTER.requests(change(register(monkeypatch, "small-params", suite)))


def test_bad_embeddings_and_corpus_size(monkeypatch: pytest.MonkeyPatch) -> None:
    suite, table = small_problem()
    spec = register(monkeypatch, "small-bad", suite)
    inputs = inputs_for(suite, TableEncoder(table))
    broken = dict(inputs["corpus"].outputs)
    broken["embeddings"] = broken["embeddings"].copy()
    broken["embeddings"][3, 1] = np.nan
    with pytest.raises(HarnessError, match="NaN or inf embeddings for the corpus"):
        retrieval.ADAPTER.samples(spec, {**inputs, "corpus": SplitOutputs(suite.corpus, broken)})
    narrow = {"embeddings": inputs["queries"].outputs["embeddings"][:, :2]}
    with pytest.raises(HarnessError, match="query embeddings have 2 dimensions, documents 4"):
        retrieval.ADAPTER.samples(spec, {**inputs, "queries": SplitOutputs(suite.queries, narrow)})
    monkeypatch.setattr(retrieval, "MAX_EXACT_INDEX", 10)
    with pytest.raises(HarnessError, match="exact below 2\\^24"):
        retrieval.ADAPTER.samples(spec, inputs)


def test_samples_with_non_integer_indices_are_refused() -> None:
    block = Samples(
        "queries", ["q"], np.zeros(1, np.int64), np.array([[0.5, 0.9]], np.float32), ["doc_index_0", "score_0"]
    )
    with pytest.raises(HarnessError, match="not non-negative integers"):
        retrieval.run_from_samples(block)


def test_encode_needs_texts() -> None:
    class Arrays:
        name = "test"

    with pytest.raises(HarnessError, match="an encoder embeds texts"):
        ENCODE.run(TableEncoder({}), Arrays(), InferenceOptions())


def test_rescoring_from_the_submission_parquet_gives_the_same_metrics(monkeypatch: pytest.MonkeyPatch) -> None:
    import io
    import json

    import pyarrow.parquet as pq

    from harness.submissions import samples_table

    suite, table, _, _ = tied_problem(7)
    spec = register(monkeypatch, "tied-parquet", suite)
    (block,), outcome = evaluate(retrieval.ADAPTER, spec, inputs_for(suite, TableEncoder(table)), seed=5)
    buffer = io.BytesIO()
    pq.write_table(samples_table([("retr", block)]), buffer)
    parquet = pq.read_table(io.BytesIO(buffer.getvalue()))
    read = parquet.to_pydict()
    fields = json.loads(parquet.schema.metadata[b"harness.fields"])["retr/queries"]
    rebuilt = Samples(
        "queries",
        read["sample_id"],
        np.asarray(read["label"], dtype=np.int64),
        np.asarray(read["values"], dtype=np.float32),
        fields,
    )
    again = retrieval.ADAPTER.score(spec, {"queries": rebuilt}, seed=5)
    assert again.metrics == outcome.metrics and again.artifacts == outcome.artifacts


def test_faiss_backend_gives_the_numpy_backends_metrics(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("faiss")  # in the dev extra; optional for users
    rng = np.random.default_rng(3)
    doc_ids, query_ids = [f"d{i}" for i in range(400)], [f"q{i}" for i in range(25)]
    docs, queries = rng.standard_normal((400, 12)), rng.standard_normal((25, 12))
    qrels = {q: {doc_ids[j]: int(rng.integers(1, 3)) for j in rng.choice(400, 5, replace=False)} for q in query_ids}
    suite, table = table_suite("continuous", doc_ids, docs, query_ids, queries, qrels)  # no ties
    spec = register(monkeypatch, "continuous", suite)
    values = {}
    for name in ("numpy", "faiss"):
        inputs = inputs_for(suite, TableEncoder(table))
        _, outcome = evaluate(retrieval.ADAPTER, with_parameters(spec, backend=name), inputs, seed=0)
        values[name] = {m.name: m.value for m in outcome.metrics}
        assert outcome.parameters["backend"] == name
    assert values["faiss"] == pytest.approx(values["numpy"], abs=1e-9)


def trec_means(qrels: dict[str, dict[str, int]], run: dict[str, dict[str, float]]) -> dict[str, float]:
    """The adapter's metrics of a full run (query -> doc -> score), by pytrec_eval."""
    measures = {"ndcg_cut.10", "map_cut.100", "recall.1,10,100"}
    trec = pytrec_eval.RelevanceEvaluator(qrels, measures).evaluate(run)
    top10 = {q: dict(sorted(s.items(), key=lambda i: (i[1], i[0]), reverse=True)[:10]) for q, s in run.items()}
    reciprocal = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(top10)
    return {
        "ndcg_at_10": float(np.mean([v["ndcg_cut_10"] for v in trec.values()])),
        "map_at_100": float(np.mean([v["map_cut_100"] for v in trec.values()])),
        "mrr_at_10": float(np.mean([v["recip_rank"] for v in reciprocal.values()])),
        "recall_at_1": float(np.mean([v["recall_1"] for v in trec.values()])),
        "recall_at_10": float(np.mean([v["recall_10"] for v in trec.values()])),
        "recall_at_100": float(np.mean([v["recall_100"] for v in trec.values()])),
    }


@pytest.mark.parametrize(("seed", "n_docs"), [(0, 260), (1, 260), (2, 60)])
def test_a_querys_own_document_is_left_out_as_mteb_leaves_it_out(
    monkeypatch: pytest.MonkeyPatch, seed: int, n_docs: int
) -> None:
    """ArguAna's rule (MTEB's ignore_identical_ids): the full score matrix, each query's own document
    popped from its scores, scored by pytrec_eval; ties, graded qrels that judge the own document, a
    query without its own document, and a corpus smaller than k."""
    rng = np.random.default_rng(seed)
    doc_ids = [f"a{i}" for i in rng.choice(10_000, n_docs, replace=False)]
    query_ids = [*doc_ids[:24], "not-a-document"]  # the queries are arguments of the corpus
    docs = rng.integers(0, 3, (n_docs, 3)).astype(np.float32)
    queries = np.concatenate([docs[:24], rng.integers(0, 3, (1, 3))]).astype(np.float32)  # own doc scores high
    qrels = {qid: {doc_ids[j]: int(rng.integers(1, 3)) for j in rng.choice(n_docs, 5, replace=False)}
             for qid in query_ids}  # fmt: skip
    qrels[query_ids[0]][query_ids[0]] = 2  # a judged own document can never be found
    suite, table = table_suite(f"own-{seed}", doc_ids, docs, query_ids, queries, qrels)
    spec = with_parameters(register(monkeypatch, f"own-{seed}", suite), ignore_identical_ids=True)
    blocks, outcome = evaluate(retrieval.ADAPTER, spec, inputs_for(suite, TableEncoder(table)), seed=0)

    full = (queries.astype(np.float64) @ docs.astype(np.float64).T).tolist()
    run = {q: dict(zip(doc_ids, row, strict=True)) for q, row in zip(query_ids, full, strict=True)}
    plain_expected = trec_means(qrels, run)
    for qid, scores in run.items():
        scores.pop(qid, None)  # what MTEB's RetrievalEvaluator.evaluate does with ignore_identical_ids
    expected = trec_means(qrels, run)
    got = {m.name: m.value for m in outcome.metrics}
    for name, value in expected.items():
        assert got[name] == pytest.approx(value, abs=1e-12), name
    (block,) = blocks
    assert block.values.shape == (25, 2 * min(101, n_docs))  # k + 1 searched
    width = block.values.shape[1] // 2
    retrieved_own = sum(doc_ids.index(q) in block.values[row, :width] for row, q in enumerate(query_ids[:24]))
    assert outcome.parameters["k"] == 100 and outcome.parameters["own_documents_removed"] == retrieved_own > 0
    assert n_docs > 101 or retrieved_own == 24  # a corpus smaller than k: every own document was retrieved
    # Without the rule the own documents are ranked like any other.
    _, plain_outcome = evaluate(retrieval.ADAPTER, with_parameters(spec, ignore_identical_ids=False),
                                inputs_for(suite, TableEncoder(table)), seed=0)  # fmt: skip
    plain = {m.name: m.value for m in plain_outcome.metrics}
    assert all(plain[name] == pytest.approx(value, abs=1e-12) for name, value in plain_expected.items())
    assert "ignore_identical_ids" not in plain_outcome.parameters
    # In the small corpus every document is retrieved: the judged own document is found without the rule.
    assert n_docs > 101 or expected["recall_at_100"] < plain_expected["recall_at_100"]
    with pytest.raises(HarnessError, match="ignore_identical_ids"):
        retrieval.ADAPTER.requests(with_parameters(spec, ignore_identical_ids="yes"))
