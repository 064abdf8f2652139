"""Task adapter `retrieval`: dense retrieval with a text encoder, scored with trec_eval conventions.

Requests: inference `encode` on the suite's `corpus` and `queries` splits (cached: a second evaluation
of the same model on the same corpus encodes nothing).

Samples: exact search (`harness.search.exact_search`, blocked matrix products in bounded memory) of
every query over the whole corpus, by `similarity` ("cosine", the default, or "dot"), keeping the top
`k` (default 100, at least 100) documents. The corpus is searched laid out in `trec_eval_doc_order`,
so documents with equal scores are ordered as trec_eval orders them (doc id descending) and the top k
are exactly trec_eval's top k of the full score matrix. `backend: faiss` (when faiss is installed)
searches a flat faiss index instead; ties at the cut-off then follow faiss. One Samples block (split
"queries", one row per query): `values` = [doc_index_0 .. doc_index_{k-1}, score_0 .. score_{k-1}]
as float32, where a doc index is the document's position in the corpus split as loaded (exact in
float32 below 2^24 documents; larger corpora are refused) and the row is ranked by score.

Score: the run is re-derived from the samples and the suite's qrels (data, not model output, read
with `load_suite(spec.dataset)`), per-query metrics come from `evaluate_topk`: ndcg_at_10 (main),
map_at_100, mrr_at_10, recall_at_1, recall_at_10, recall_at_100. With `ignore_identical_ids: true`
(ArguAna, as in BEIR and MTEB) k + 1 documents are searched and each query's own document (the one
with the query's id) is left out of its ranking before scoring. A query without judgments is not
scored and not averaged (trec_eval's default; such queries are usually already left out of the
queries split by the suite); the counts are recorded. Means over the scored queries come with
seeded percentile-bootstrap 95% CIs over queries (the same resamples for every metric).
Artifacts: a histogram of per-query nDCG@10 and the distribution of the rank of the first relevant
document (1, 2-3, 4-10, 11-100, not in the top 100).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from harness.data import load_suite
from harness.errors import HarnessError
from harness.metrics.retrieval import evaluate_topk, mean_over_queries, trec_eval_doc_order
from harness.models.base import Capability
from harness.schema import MetricValue, Scalar, TaskSpec
from harness.search import exact_search
from harness.stats import Bootstrap
from harness.tasks.base import ExpectedSamples, Outcome, Request, Samples, SplitOutputs, bootstrap_metric

METRIC_NAMES = ("ndcg_at_10", "map_at_100", "mrr_at_10", "recall_at_1", "recall_at_10", "recall_at_100")
K_VALUES = (1, 10, 100)
MIN_K = max(K_VALUES)
MAX_EXACT_INDEX = 2**24  # float32 represents every integer below this exactly
SIMILARITIES = ("cosine", "dot")
BACKENDS = ("numpy", "faiss")
HISTOGRAM_EDGES = np.linspace(0.0, 1.0, 11)
RANK_BINS = ((1, 1, "1"), (2, 3, "2-3"), (4, 10, "4-10"), (11, 100, "11-100"))


def _int_parameter(spec: TaskSpec, name: str, default: int) -> int:
    value = spec.parameters.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise HarnessError(f"parameter {name!r} must be an integer, got {value!r}", where=f"task {spec.name}")
    return value


def top_k(spec: TaskSpec) -> int:
    k = _int_parameter(spec, "k", MIN_K)
    if k < MIN_K:
        raise HarnessError(
            f"parameter 'k' is {k}, but map_at_100 and recall_at_100 need the top {MIN_K} documents",
            where=f"task {spec.name}",
            fix=f"set k to {MIN_K} or more",
        )
    return k


def similarity(spec: TaskSpec) -> str:
    value = str(spec.parameters.get("similarity", "cosine"))
    if value not in SIMILARITIES:
        raise HarnessError(f"unknown similarity {value!r}", where=f"task {spec.name}", fix="use cosine or dot")
    return value


def backend(spec: TaskSpec) -> str:
    value = str(spec.parameters.get("backend", "numpy"))
    if value not in BACKENDS:
        raise HarnessError(f"unknown search backend {value!r}", where=f"task {spec.name}", fix="use numpy or faiss")
    return value


def ignores_own_documents(spec: TaskSpec) -> bool:
    """`ignore_identical_ids: true`: a query's own document (the document with the query's id) is left
    out of its ranking, as BEIR and MTEB score ArguAna (whose queries are arguments of the corpus)."""
    value = spec.parameters.get("ignore_identical_ids", False)
    if not isinstance(value, bool):
        raise HarnessError(
            f"parameter 'ignore_identical_ids' must be true or false, got {value!r}", where=f"task {spec.name}"
        )
    return value


def searched_k(spec: TaskSpec) -> int:
    """Documents kept per query: k, and one more when the query's own document may be among them."""
    return top_k(spec) + int(ignores_own_documents(spec))


#: the id of a query's own document once it is left out of the ranking (ranked last, never relevant)
REMOVED_ID = "\x00removed: the query's own document"


def without_own_documents(
    query_ids: list[str], doc_ids: list[str], indices: np.ndarray, scores: np.ndarray
) -> tuple[list[str], np.ndarray, np.ndarray, int]:
    """The ranking with each query's own document left out (MTEB's `ignore_identical_ids`): its entry
    points at a phantom document (REMOVED_ID, no judgment) with score -inf, so it ranks below every
    document and counts for no metric; with k + 1 documents searched, the first k others remain.
    Returns (doc ids with the phantom appended, indices, scores, number of entries left out)."""
    if REMOVED_ID in doc_ids:
        raise HarnessError("a corpus document has the reserved id of a removed document")
    position = {doc: i for i, doc in enumerate(doc_ids)}
    own = np.asarray([position.get(qid, -1) for qid in query_ids], dtype=np.int64)
    is_own = indices == own[:, None]
    if not is_own.any():
        return doc_ids, indices, scores, 0
    indices = np.where(is_own, len(doc_ids), indices)
    scores = np.where(is_own, np.float32(-np.inf), scores)
    return [*doc_ids, REMOVED_ID], indices, scores, int(is_own.sum())


def _embeddings(outputs: SplitOutputs, what: str) -> np.ndarray:
    embeddings = np.asarray(outputs.outputs["embeddings"], dtype=np.float32)
    if embeddings.ndim != 2 or embeddings.shape[0] != len(outputs.split):
        raise HarnessError(f"the {what} embeddings have shape {embeddings.shape} for {len(outputs.split)} texts")
    if not np.isfinite(embeddings).all():
        raise HarnessError(
            f"the model produced NaN or inf embeddings for the {what}",
            fix="check the checkpoint's weights (a broken quantisation or a diverged run?)",
        )
    return embeddings


def run_from_samples(block: Samples) -> tuple[np.ndarray, np.ndarray]:
    """(doc indices int64 (q, k), scores float32 (q, k)) of a retrieval Samples block."""
    k = len(block.fields) // 2
    if k == 0 or len(block.fields) != 2 * k or block.values.shape[1] != 2 * k:
        raise HarnessError(
            f"a retrieval samples block has {len(block.fields)} fields; expected doc indices then scores"
        )
    raw = np.asarray(block.values[:, :k], dtype=np.float64)
    indices = np.rint(raw).astype(np.int64)
    if (indices != raw).any() or (indices < 0).any():
        raise HarnessError("the doc indices of the retrieval samples are not non-negative integers")
    return indices, np.asarray(block.values[:, k:], dtype=np.float32)


class RetrievalAdapter:
    name = "retrieval"
    description = (
        "dense retrieval: exact top-k search; nDCG@10, MAP@100, MRR@10, Recall@1/10/100 (trec_eval conventions)"
    )
    capability = Capability.EMBEDDINGS

    def metric_names(self, spec: TaskSpec) -> list[str]:
        return list(METRIC_NAMES)

    def requests(self, spec: TaskSpec) -> list[Request]:
        searched_k(spec)
        similarity(spec)
        backend(spec)
        # every query is ranked against the whole corpus: a subset of queries keeps the corpus whole
        return [Request("encode", "corpus", per_sample=False), Request("encode", "queries")]

    def expected_samples(self, spec: TaskSpec) -> dict[str, ExpectedSamples]:
        """One row per judged query: the top-k corpus positions (whole numbers) and their scores."""
        from harness.data import get_split

        suite = load_suite(spec.dataset)
        queries = get_split(suite, "queries")
        k = min(searched_k(spec), len(get_split(suite, "corpus")))
        fields = [f"doc_index_{r}" for r in range(k)] + [f"score_{r}" for r in range(k)]
        zeros = np.zeros(len(queries), np.int64)
        return {"queries": ExpectedSamples(list(queries.ids), zeros, fields, whole=frozenset(fields[:k]))}

    def samples(self, spec: TaskSpec, inputs: dict[str, SplitOutputs]) -> list[Samples]:
        """Per query: the top-k corpus positions and scores, ranked (trec_eval's order among ties)."""
        corpus, queries = inputs["corpus"], inputs["queries"]
        doc_embeddings = _embeddings(corpus, "corpus")
        query_embeddings = _embeddings(queries, "queries")
        if len(corpus.split) >= MAX_EXACT_INDEX:
            raise HarnessError(
                f"the corpus has {len(corpus.split):,} documents; doc indices are stored as float32, exact below 2^24",
                fix="split the corpus into several suites",
            )
        if doc_embeddings.shape[1] != query_embeddings.shape[1]:
            raise HarnessError(
                f"query embeddings have {query_embeddings.shape[1]} dimensions, documents {doc_embeddings.shape[1]}"
            )
        order = trec_eval_doc_order(list(corpus.split.ids))
        positions, scores = exact_search(
            query_embeddings,
            doc_embeddings[order],
            k=searched_k(spec),
            metric=similarity(spec),  # type: ignore[arg-type]
            backend=backend(spec),  # type: ignore[arg-type]
        )
        indices = order[positions]
        k = indices.shape[1]
        return [
            Samples(
                split="queries",
                ids=list(queries.split.ids),
                labels=np.zeros(len(queries.split), dtype=np.int64),
                values=np.concatenate([indices.astype(np.float32), scores.astype(np.float32)], axis=1),
                fields=[f"doc_index_{r}" for r in range(k)] + [f"score_{r}" for r in range(k)],
            )
        ]

    def score(self, spec: TaskSpec, samples: dict[str, Samples], seed: int) -> Outcome:
        n_resamples = _int_parameter(spec, "n_resamples", 1000)
        block = samples["queries"]
        indices, scores = run_from_samples(block)
        suite = load_suite(spec.dataset)
        doc_ids = list(suite.split("corpus").ids)
        if indices.size and int(indices.max()) >= len(doc_ids):
            raise HarnessError(
                f"the samples point at document {int(indices.max())}, but the corpus has {len(doc_ids)}",
                fix="the samples were made on other data: check the dataset fingerprints",
            )
        qrels = suite.qrels
        removed = None
        if ignores_own_documents(spec):
            doc_ids, indices, scores, removed = without_own_documents(block.ids, doc_ids, indices, scores)
        per_query = evaluate_topk(qrels, block.ids, doc_ids, indices, scores, k_values=K_VALUES)
        scored = [qid for qid in block.ids if qid in per_query]
        if not scored:
            raise HarnessError(
                "no query of the samples has judgments in the qrels", fix="check that query ids match the qrels"
            )
        point = mean_over_queries(per_query)
        bootstrap = Bootstrap(n=len(scored), n_resamples=n_resamples, seed=seed)
        metrics: list[MetricValue] = []
        for name in METRIC_NAMES:
            values = np.asarray([per_query[qid][name] for qid in scored], dtype=np.float64)
            distribution = bootstrap.mean_distribution(values)
            metrics.append(bootstrap_metric(name, point[name], distribution, len(scored), "queries"))
        parameters: dict[str, Scalar | list[Scalar]] = {
            "k": int(indices.shape[1]),
            "similarity": similarity(spec),
            "backend": backend(spec),
            "n_resamples": n_resamples,
            "qrels_split": str(getattr(suite, "qrels_split", "test")),
            "n_documents": len(doc_ids),
            "n_queries_scored": len(scored),
            "n_queries_skipped": len(block.ids) - len(scored),
            "queries_without_qrels_in_source": int(getattr(suite, "notes", {}).get("queries_without_qrels", 0)),
            "qrels_unknown_docs": int(getattr(suite, "notes", {}).get("qrels_unknown_docs", 0)),
            "tie_rule": "trec_eval: score descending, then doc id descending",
            "averaging": "mean over queries with judgments (trec_eval default)",
        }
        if removed is not None:  # only then: the parameters of other runs stay as they were
            parameters["k"] = top_k(spec)
            parameters["ignore_identical_ids"] = True
            parameters["own_documents_removed"] = removed
        return Outcome(metrics=metrics, artifacts=_artifacts(per_query, scored), parameters=parameters)


def _artifacts(per_query: dict[str, dict[str, float]], scored: list[str]) -> dict[str, Any]:
    """A histogram of per-query nDCG@10 and where the first relevant document ranks (from MRR@100)."""
    ndcg = np.asarray([per_query[qid]["ndcg_at_10"] for qid in scored])
    counts, _ = np.histogram(ndcg, bins=HISTOGRAM_EDGES)
    first = dict.fromkeys([label for *_, label in RANK_BINS] + ["not in top 100"], 0)
    for qid in scored:
        reciprocal = per_query[qid]["mrr_at_100"]
        rank = round(1.0 / reciprocal) if reciprocal > 0 else None
        label = next(
            (lbl for low, high, lbl in RANK_BINS if rank is not None and low <= rank <= high), "not in top 100"
        )
        first[label] += 1
    return {
        "ndcg_at_10_histogram": {"edges": HISTOGRAM_EDGES.round(2).tolist(), "counts": counts.tolist()},
        "first_relevant_rank": first,
    }


ADAPTER = RetrievalAdapter()
