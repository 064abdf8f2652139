"""Retrieval metrics against independent implementations: pytrec_eval (trec_eval), mteb and ranx."""

from __future__ import annotations

import math

import numpy as np
import pytest
import pytrec_eval
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.metrics import retrieval as ret
from harness.search import exact_search

TREC_MEASURES = {"ndcg_cut.1,10,100", "map_cut.1,10,100", "recall.1,10,100", "recip_rank"}
OURS_TO_TREC = {"ndcg_at": "ndcg_cut", "map_at": "map_cut", "recall_at": "recall"}
HEADLINE = ["ndcg_at_10", "map_at_100", "mrr_at_10", "recall_at_1", "recall_at_10", "recall_at_100"]


def random_case(
    seed: int, n_queries: int = 60, n_docs: int = 300, ties: bool = True
) -> tuple[dict[str, dict[str, int]], dict[str, dict[str, float]]]:
    """Adversarial qrels and run: grades -1..3, many tied scores, unjudged and unretrieved docs,
    queries without relevant docs, queries missing from the run or the qrels, empty dicts."""
    rng = np.random.default_rng(seed)
    docs = [f"d{i}" for i in range(n_docs)]
    qrels: dict[str, dict[str, int]] = {}
    run: dict[str, dict[str, float]] = {}
    for q in range(n_queries):
        qid = f"q{q}"
        if rng.random() < 0.9:
            judged = rng.choice(n_docs, size=int(rng.integers(0, 25)), replace=False)
            qrels[qid] = {docs[j]: int(rng.integers(-1, 4)) for j in judged}
        if rng.random() < 0.9:
            retrieved = rng.choice(n_docs, size=int(rng.integers(0, min(250, n_docs))), replace=False)
            scores = np.round(rng.random(len(retrieved)), 1) if ties else rng.random(len(retrieved))
            run[qid] = {docs[j]: float(s) for j, s in zip(retrieved, scores, strict=True)}
    return qrels, run


def trec_cut(run: dict[str, dict[str, float]], k: int) -> dict[str, dict[str, float]]:
    """The run cut to its top k by trec_eval's order (score desc, doc id desc), written out independently."""
    return {
        q: dict(sorted(docs.items(), key=lambda item: (item[1], item[0]), reverse=True)[:k]) for q, docs in run.items()
    }


def assert_matches_pytrec_eval(qrels: dict[str, dict[str, int]], run: dict[str, dict[str, float]]) -> None:
    ours = ret.evaluate_run(qrels, run, k_values=(1, 10, 100))
    expected = pytrec_eval.RelevanceEvaluator(qrels, TREC_MEASURES).evaluate(run)
    assert set(ours) == set(expected)  # the same queries are scored
    for qid, values in expected.items():
        for k in (1, 10, 100):
            for name, trec_name in OURS_TO_TREC.items():
                assert ours[qid][f"{name}_{k}"] == pytest.approx(values[f"{trec_name}_{k}"], abs=1e-12)
            assert 0.0 <= ours[qid][f"ndcg_at_{k}"] <= 1.0
    # MRR@k is trec_eval's (uncut) recip_rank of the run cut to its top k.
    for k in (1, 10, 100):
        cut = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(trec_cut(run, k))
        for qid, values in cut.items():
            assert ours[qid][f"mrr_at_{k}"] == pytest.approx(values["recip_rank"], abs=1e-12)


@pytest.mark.parametrize("seed", range(10))
@pytest.mark.parametrize("ties", [True, False])
def test_per_query_values_match_pytrec_eval(seed: int, ties: bool) -> None:
    qrels, run = random_case(seed, ties=ties)
    assert_matches_pytrec_eval(qrels, run)
    # Averages: trec_eval's default is the mean over the queries it scores.
    expected = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10"}).evaluate(run)
    mean = ret.mean_over_queries(ret.evaluate_run(qrels, run))
    assert mean["ndcg_at_10"] == pytest.approx(np.mean([v["ndcg_cut_10"] for v in expected.values()]), abs=1e-12)


def test_dict_order_does_not_matter() -> None:
    qrels, run = random_case(3)
    reversed_run = {q: dict(reversed(list(docs.items()))) for q, docs in reversed(list(run.items()))}
    assert ret.evaluate_run(qrels, run) == ret.evaluate_run(qrels, reversed_run)


def test_ties_are_broken_by_doc_id_descending_as_trec_eval() -> None:
    ids = ["a", "b", "B", "aa", "10", "9", "é", "z"]
    run = {"q": dict.fromkeys(ids, 1.0) | {"top": 2.0, "low": 0.0}}
    expected_order = ["top", *sorted(ids, reverse=True), "low"]  # é, z, b, aa, a, B, 9, 10
    assert ret.rank_docs(run["q"]) == expected_order
    for rank, doc in enumerate(expected_order, start=1):
        qrels = {"q": {doc: 1}}
        trec = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(run)["q"]["recip_rank"]
        assert trec == pytest.approx(1.0 / rank)
        assert ret.evaluate_run(qrels, run, [100])["q"]["mrr_at_100"] == pytest.approx(1.0 / rank)
    # 0.0 and -0.0 tie (so "c" > "b" > "a" decides).
    assert ret.rank_docs({"a": 0.0, "b": -0.0, "c": 0.0}) == ["c", "b", "a"]


def test_known_values() -> None:
    # The module docstring's example: the relevant doc at rank 2.
    per_query = ret.evaluate_run({"q": {"d1": 1, "d2": 0}}, {"q": {"d2": 0.9, "d1": 0.5}})["q"]
    assert per_query["ndcg_at_10"] == pytest.approx(1 / math.log2(3))
    assert per_query["map_at_100"] == pytest.approx(0.5)
    assert per_query["mrr_at_10"] == pytest.approx(0.5)
    assert per_query["recall_at_1"] == 0.0
    assert per_query["recall_at_10"] == 1.0
    # Graded: ranking a(-1), x(unjudged), b(2), c(1) against ideal [3, 2, 1] (e = 3 never retrieved).
    qrels = {"q": {"a": -1, "b": 2, "c": 1, "e": 3}}
    run = {"q": {"a": 4.0, "x": 3.0, "b": 2.0, "c": 1.0}}
    dcg = 2 / math.log2(4) + 1 / math.log2(5)
    ideal = 3 + 2 / math.log2(3) + 1 / math.log2(4)
    per_query = ret.evaluate_run(qrels, run, [10])["q"]
    assert per_query["ndcg_at_10"] == pytest.approx(dcg / ideal)
    assert per_query["map_at_10"] == pytest.approx((1 / 3 + 2 / 4) / 3)  # denominator: 3 relevant in qrels
    assert per_query["mrr_at_10"] == pytest.approx(1 / 3)
    assert per_query["recall_at_10"] == pytest.approx(2 / 3)
    # MAP@k keeps the full denominator: 4 relevant, only 1 fits in the top 1.
    assert ret.average_precision_at_k({"q": dict.fromkeys("abcd", 1)}, {"q": {"a": 1.0}}, k=1) == pytest.approx(0.25)
    # MRR@10 is 0 when the first relevant doc is at rank 11.
    run_11 = {"q": {f"x{i:02d}": 1.0 - i / 100 for i in range(10)} | {"rel": 0.0}}
    assert ret.mrr_at_k({"q": {"rel": 1}}, run_11, k=10) == 0.0
    assert ret.mrr_at_k({"q": {"rel": 1}}, run_11, k=11) == pytest.approx(1 / 11)
    assert ret.recall_at_k({"q": {"a": 1, "b": 2}}, {"q": {"a": 1.0, "x": 0.5}}, k=10) == 0.5
    assert ret.ndcg_at_k({"q": {"d1": 1}}, {"q": {"d2": 0.9, "d1": 0.5}}) == pytest.approx(0.6309297535714575)


def test_which_queries_are_scored_and_averaged() -> None:
    qrels = {
        "both": {"a": 1},
        "no_relevant": {"a": 0},
        "not_run": {"a": 1},
        "empty_judgments": {},
        "empty_run": {"a": 1},
    }
    run = {"both": {"a": 1.0}, "no_relevant": {"a": 1.0}, "not_judged": {"a": 1.0}, "empty_judgments": {"a": 1.0}}
    run |= {"empty_run": {}}
    per_query = ret.evaluate_run(qrels, run)
    expected = pytrec_eval.RelevanceEvaluator(qrels, TREC_MEASURES).evaluate(run)
    assert set(per_query) == set(expected) == {"both", "no_relevant", "empty_run"}
    assert per_query["no_relevant"] == dict.fromkeys(per_query["both"], 0.0)
    assert ret.mean_over_queries(per_query)["ndcg_at_10"] == pytest.approx(1 / 3)
    # trec_eval -c / ranx make_comparable: over all judged queries, missing ones count 0.
    assert ret.mean_over_queries(per_query, queries=["both", "no_relevant", "not_run", "empty_run"])[
        "ndcg_at_10"
    ] == pytest.approx(1 / 4)
    with pytest.raises(ValueError, match="no evaluated query"):
        ret.mean_over_queries(ret.evaluate_run(qrels, {"not_judged": {"a": 1.0}}))


@pytest.mark.parametrize("seed", range(4))
def test_means_match_mteb(seed: int) -> None:
    # mteb's retrieval scoring (a private module of mteb 2.x): pytrec_eval for nDCG/MAP/recall averaged
    # over pytrec_eval's queries and rounded to 5 decimals; its own MRR@k over the run's queries.
    from mteb._evaluators.retrieval_metrics import calculate_retrieval_scores

    qrels, run = random_case(seed)
    qrels = {q: judged for q, judged in qrels.items() if judged}
    run = {q: docs for q, docs in run.items() if q in qrels}  # mteb needs every run query judged
    mteb = calculate_retrieval_scores(run, qrels, [1, 10, 100])
    ours = ret.mean_over_queries(ret.evaluate_run(qrels, run))
    for k in (1, 10, 100):
        assert ours[f"ndcg_at_{k}"] == pytest.approx(mteb.ndcg[f"NDCG@{k}"], abs=5.1e-6)
        assert ours[f"map_at_{k}"] == pytest.approx(mteb.map[f"MAP@{k}"], abs=5.1e-6)
        assert ours[f"recall_at_{k}"] == pytest.approx(mteb.recall[f"Recall@{k}"], abs=5.1e-6)
        assert ours[f"mrr_at_{k}"] == pytest.approx(mteb.mrr[f"MRR@{k}"], abs=1e-12)  # not rounded by mteb


@pytest.mark.slow  # ranx compiles its numba kernels on first use (~30 s without its on-disk cache)
def test_means_match_ranx_without_ties() -> None:
    # ranx orders tied docs by numba's non-stable argsort of the scores (insertion order for short tie
    # groups, unspecified for long ones), not by doc id, so it is compared on runs with distinct scores.
    # With make_comparable=True it averages over its Qrels' queries, a missing run counting 0: our
    # mean over `queries=` the judged queries. Its MAP@k divides by all relevant docs, as trec_eval.
    from ranx import Qrels, Run, evaluate

    for seed in range(3):
        qrels, run = random_case(seed, ties=False)
        qrels = {q: judged for q, judged in qrels.items() if judged}
        run = {q: docs for q, docs in run.items() if docs}
        names = ["ndcg@10", "map@100", "mrr@10", "recall@1", "recall@10", "recall@100", "ndcg@1", "map@10"]
        expected = evaluate(Qrels(qrels), Run(run), names, make_comparable=True)
        ours = ret.mean_over_queries(ret.evaluate_run(qrels, run), queries=qrels)
        for name in names:
            assert ours[name.replace("@", "_at_")] == pytest.approx(expected[name], abs=1e-12)


@pytest.mark.parametrize("seed", range(5))
def test_evaluate_topk_equals_the_dict_path(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n_queries, n_docs, depth = 40, 150, 30
    doc_ids = [f"doc{i}" for i in rng.permutation(n_docs)]
    query_ids = [f"q{i}" for i in range(n_queries)]
    qrels, _ = random_case(seed, n_queries=n_queries, n_docs=n_docs)
    qrels = {q: {doc_ids[int(d[1:])]: g for d, g in judged.items()} for q, judged in qrels.items()}
    indices = np.stack([rng.choice(n_docs, size=depth, replace=False) for _ in range(n_queries)])
    scores = np.round(rng.random((n_queries, depth)), 1).astype(np.float32)  # rows unsorted, with ties
    k_values = (1, 5, 10, 100)
    fast = ret.evaluate_topk(qrels, query_ids, doc_ids, indices, scores, k_values)
    run = ret.topk_to_run(query_ids, doc_ids, indices, scores)
    assert fast == ret.evaluate_run(qrels, run, k_values)  # the same core on the same grades: bit-identical
    assert_matches_pytrec_eval(qrels, run)


def test_search_in_trec_eval_doc_order_gives_the_full_run_values() -> None:
    # Integer embeddings and a dot product: exact scores, many ties across the top-k cut-off.
    rng = np.random.default_rng(0)
    n_docs, k = 400, 10
    doc_ids = [f"d{rng.integers(10**6)}-{i}" for i in range(n_docs)]
    queries = rng.integers(-1, 2, size=(30, 3)).astype(np.float32)
    docs = rng.integers(-1, 2, size=(n_docs, 3)).astype(np.float32)
    query_ids = [f"q{i}" for i in range(30)]
    qrels = {q: {doc_ids[int(j)]: int(rng.integers(0, 4)) for j in rng.choice(n_docs, 40)} for q in query_ids}
    full_run = {q: dict(zip(doc_ids, (docs @ queries[i]).tolist(), strict=True)) for i, q in enumerate(query_ids)}
    expected = ret.evaluate_run(qrels, full_run, [1, 10])

    order = ret.trec_eval_doc_order(doc_ids)
    indices, scores = exact_search(queries, docs[order], k=k, metric="dot", block_size=37)
    ordered_ids = [doc_ids[i] for i in order]
    assert ret.evaluate_topk(qrels, query_ids, ordered_ids, indices, scores, [1, 10]) == expected
    # In the caller's own order the lower-index tie rule picks other tied docs at the cut-off.
    indices, scores = exact_search(queries, docs, k=k, metric="dot", block_size=37)
    assert ret.evaluate_topk(qrels, query_ids, doc_ids, indices, scores, [1, 10]) != expected


def test_trec_eval_doc_order() -> None:
    assert ret.trec_eval_doc_order(["a", "c", "b"]).tolist() == [1, 2, 0]
    with pytest.raises(ValueError, match="duplicates"):
        ret.trec_eval_doc_order(["a", "a"])


grades = st.integers(min_value=-1, max_value=3)
scores = st.sampled_from([0.0, 0.1, 0.5, 0.5, 1.0, -0.3, 2.0])
doc_names = st.sampled_from([f"d{i}" for i in range(12)])


@settings(max_examples=150, deadline=None)
@given(
    qrels=st.dictionaries(st.sampled_from(["q1", "q2", "q3"]), st.dictionaries(doc_names, grades, max_size=8)),
    run=st.dictionaries(st.sampled_from(["q1", "q2", "q4"]), st.dictionaries(doc_names, scores, max_size=12)),
)
def test_property_bounded_and_equal_to_pytrec_eval(
    qrels: dict[str, dict[str, int]], run: dict[str, dict[str, float]]
) -> None:
    per_query = ret.evaluate_run(qrels, run, k_values=(1, 10, 100))
    for values in per_query.values():
        assert all(0.0 <= v <= 1.0 for v in values.values())
    assert_matches_pytrec_eval(qrels, run)


def test_metric_infos() -> None:
    assert [m.name for m in ret.RETRIEVAL_METRICS] == HEADLINE
    assert all(m.higher_is_better and "trec_eval" in m.convention for m in ret.RETRIEVAL_METRICS)
    per_query = ret.evaluate_run({"q": {"a": 1}}, {"q": {"a": 1.0}})
    assert set(HEADLINE) <= set(per_query["q"])


@pytest.mark.parametrize(
    ("qrels", "run", "k_values", "message"),
    [
        ({"q": {"a": 1.5}}, {"q": {"a": 1.0}}, (10,), "integer relevance grade"),
        ({"q": {"a": True}}, {"q": {"a": 1.0}}, (10,), "integer relevance grade"),
        ({"q": {"a": 1}}, {"q": {"b": 0.5, "a": float("nan")}}, (10,), "run\\['q'\\]\\['a'\\] is NaN"),
        ({"q": {"a": 1}}, {"q": {"a": "high"}}, (10,), "must be a number"),
        ({"q": [("a", 1)]}, {"q": {"a": 1.0}}, (10,), "must be a dict"),
        ({"q": {"a": 1}}, {"q": {"a": 1.0}}, (0,), "integers >= 1"),
        ({"q": {"a": 1}}, {"q": {"a": 1.0}}, (), "k_values is empty"),
    ],
)
def test_bad_inputs_raise_clear_errors(qrels: object, run: object, k_values: tuple[int, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ret.evaluate_run(qrels, run, k_values)  # type: ignore[arg-type]


def test_bad_topk_inputs_raise_clear_errors() -> None:
    qrels = {"q": {"a": 1}}
    with pytest.raises(ValueError, match="rows but query_ids"):
        ret.evaluate_topk(qrels, ["q", "r"], ["a", "b"], np.array([[0, 1]]), np.array([[1.0, 0.5]]))
    with pytest.raises(ValueError, match="must lie in"):
        ret.evaluate_topk(qrels, ["q"], ["a", "b"], np.array([[0, 2]]), np.array([[1.0, 0.5]]))
    with pytest.raises(ValueError, match="same document twice"):
        ret.evaluate_topk(qrels, ["q"], ["a", "b"], np.array([[1, 1]]), np.array([[1.0, 0.5]]))
    with pytest.raises(ValueError, match="one id to two retrieved documents"):
        ret.evaluate_topk(qrels, ["q"], ["a", "a"], np.array([[0, 1]]), np.array([[1.0, 0.5]]))
    with pytest.raises(ValueError, match="one shape"):
        ret.evaluate_topk(qrels, ["q"], ["a", "b"], np.array([[0, 1]]), np.array([1.0, 0.5]))
