"""Retrieval metrics of a ranked run against graded relevance judgments, with trec_eval conventions.

Values are identical (to float rounding, ~1e-15) to trec_eval / pytrec_eval on the same inputs.

Conventions (shared by every function here):
- `qrels` maps query id -> doc id -> integer relevance grade; 0 (or a negative grade) means judged
  non-relevant. A doc is relevant when its grade is >= 1 (trec_eval's default relevance_level=1).
  Docs missing from a query's qrels are non-relevant.
- `run` maps query id -> doc id -> score (higher = better). Ranking: score descending, ties broken by
  doc id in DESCENDING lexical order (Python `str` order = strcmp on UTF-8 bytes), exactly as
  trec_eval sorts (checked against pytrec_eval with many ties; 0.0 and -0.0 tie). The order in which
  a dict lists its docs never matters.
- Gains are the grades (negative grades count as 0); the discount of rank r (1-based) is log2(r + 1).
  nDCG@k divides the DCG of the top k by the DCG of the top k grades in the query's qrels
  (trec_eval `ndcg_cut.k`, Järvelin-Kekäläinen linear gain, not the 2^rel - 1 variant).
- AP@k (trec_eval `map_cut.k`): sum over relevant docs in the top k of precision at their rank,
  divided by the number of relevant docs in the qrels (NOT by min(k, that number)).
- RR@k (MRR@k per query): 1 / rank of the first relevant doc within the top k, 0 if none. trec_eval
  has no cut version (its `recip_rank` is uncut); this is what mteb (`mrr` in its retrieval metrics,
  same tie rule) and ranx (`mrr@k`) compute as MRR@k.
- Recall@k (trec_eval `recall.k`): relevant docs in the top k / relevant docs in the qrels.
- A query with judgments but no relevant doc scores 0 on every metric (as trec_eval).

Which queries are evaluated and averaged:
- `evaluate_run` scores exactly the queries trec_eval scores: those present in the run (even with no
  retrieved doc) AND in the qrels with at least one judgment (of any grade, 0 included). Run queries
  without judgments and judged queries missing from the run are left out.
- `mean_over_queries(per_query)` averages over those queries: trec_eval's default, and what mteb
  reports for ndcg_at_k / map_at_k / recall_at_k (mean of pytrec_eval's per-query output, which mteb
  then rounds to 5 decimals) and for mrr_at_k (its own mean over the run's queries: the same set, as
  mteb needs every run query to have judgments; it fails otherwise).
- `mean_over_queries(per_query, queries=qrels.keys())` averages over a fixed query set, counting a
  query missing from `per_query` as 0 on every metric: trec_eval -c, and ranx with
  `make_comparable=True` (ranx averages over its Qrels' queries).

ranx agrees with these values except on ties: it orders tied docs by numba's (non-stable) argsort
of the scores, not by doc id.

`evaluate_topk` scores the (queries, k) output of `harness.search.exact_search` directly, with the
same values; `trec_eval_doc_order` makes that search's tie rule trec_eval's.

Example: qrels {"q": {"d1": 1, "d2": 0}}, run {"q": {"d2": 0.9, "d1": 0.5}} -> the relevant doc is at
rank 2: ndcg_at_10 = 1 / log2(3) = 0.631, map_at_100 = mrr_at_10 = 0.5, recall_at_1 = 0, recall_at_10 = 1.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

from harness.metrics import MetricInfo

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
Qrels = Mapping[str, Mapping[str, int]]
Run = Mapping[str, Mapping[str, float]]

#: the cut-offs of the headline metrics; `evaluate_run` computes every metric at every cut-off
DEFAULT_K_VALUES = (1, 10, 100)

_TREC = (
    "mean over queries in both run and qrels; trec_eval conventions: relevant = grade >= 1, "
    "ties in score broken by doc id descending"
)
NDCG_AT_10 = MetricInfo(
    "ndcg_at_10",
    True,
    "nDCG@10 (trec_eval ndcg_cut.10): gain = relevance grade, discount log2(rank + 1), ideal DCG from the "
    f"query's judged grades; {_TREC}",
)
MAP_AT_100 = MetricInfo(
    "map_at_100",
    True,
    "MAP@100 (trec_eval map_cut.100): sum of precision at each relevant doc in the top 100, divided by the "
    f"number of relevant docs in the qrels; {_TREC}",
)
MRR_AT_10 = MetricInfo(
    "mrr_at_10",
    True,
    f"MRR@10: 1 / rank of the first relevant doc in the top 10, 0 if none (as mteb and ranx mrr@10); {_TREC}",
)
RECALL_AT_1 = MetricInfo(
    "recall_at_1",
    True,
    f"Recall@1 (trec_eval recall.1): relevant docs in the top 1 / relevant docs in the qrels; {_TREC}",
)
RECALL_AT_10 = MetricInfo(
    "recall_at_10",
    True,
    f"Recall@10 (trec_eval recall.10): relevant docs in the top 10 / relevant docs in the qrels; {_TREC}",
)
RECALL_AT_100 = MetricInfo(
    "recall_at_100",
    True,
    f"Recall@100 (trec_eval recall.100): relevant docs in the top 100 / relevant docs in the qrels; {_TREC}",
)
#: the headline retrieval metrics, nDCG@10 first
MTEB = MetricInfo(
    "mteb", True, "a score imported from MTEB results (mteb.main_score: the task's main score, mean over subsets)"
)
RETRIEVAL_METRICS = (NDCG_AT_10, MAP_AT_100, MRR_AT_10, RECALL_AT_1, RECALL_AT_10, RECALL_AT_100)


def check_k_values(k_values: Iterable[int]) -> list[int]:
    """Sorted distinct cut-offs; raises ValueError unless all are integers >= 1."""
    ks = list(k_values)
    if not ks:
        raise ValueError("k_values is empty: give at least one cut-off, e.g. (1, 10, 100)")
    for k in ks:
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
            raise ValueError(f"cut-offs must be integers >= 1, got {k!r} in k_values")
    return sorted({int(k) for k in ks})


def check_qrels_run(qrels: Qrels, run: Run) -> None:
    """Validate qrels and run once; raises ValueError naming the query and doc that is wrong."""
    if not isinstance(qrels, Mapping) or not isinstance(run, Mapping):
        raise ValueError("qrels and run must be dicts: query id -> doc id -> relevance / score")
    for qid, judged in qrels.items():
        if not isinstance(judged, Mapping):
            raise ValueError(f"qrels[{qid!r}] must be a dict doc id -> relevance, got {type(judged).__name__}")
        if not all(map(_is_grade_type, set(map(type, judged.values())))):
            doc, grade = next((d, g) for d, g in judged.items() if not _is_grade_type(type(g)))
            raise ValueError(f"qrels[{qid!r}][{doc!r}] must be an integer relevance grade, got {grade!r}")
    for qid, scored in run.items():
        if not isinstance(scored, Mapping):
            raise ValueError(f"run[{qid!r}] must be a dict doc id -> score, got {type(scored).__name__}")
        if not all(map(_is_score_type, set(map(type, scored.values())))):
            doc, score = next((d, s) for d, s in scored.items() if not _is_score_type(type(s)))
            raise ValueError(f"run[{qid!r}][{doc!r}] must be a number, got {score!r}")
        if np.isnan(np.fromiter(scored.values(), dtype=np.float64, count=len(scored))).any():
            doc = next(d for d, s in scored.items() if math.isnan(s))
            raise ValueError(f"run[{qid!r}][{doc!r}] is NaN: scores must be comparable numbers")


def _is_grade_type(kind: type) -> bool:
    return issubclass(kind, int | np.integer) and not issubclass(kind, bool | np.bool_)


def _is_score_type(kind: type) -> bool:
    return issubclass(kind, int | float | np.integer | np.floating) and not issubclass(kind, bool | np.bool_)


def _trec_key(item: tuple[str, float]) -> tuple[float, str]:
    return item[1], item[0]


def rank_docs(scored: Mapping[str, float], depth: int | None = None) -> list[str]:
    """Doc ids in trec_eval order (score descending, then doc id descending), the first `depth` only.

    Example: rank_docs({"a": 1.0, "b": 1.0, "c": 2.0}) -> ["c", "b", "a"].
    """
    items = scored.items()
    if depth is not None and len(scored) > 4 * depth:
        top = heapq.nlargest(depth, items, key=_trec_key)
    else:
        top = sorted(items, key=_trec_key, reverse=True)[:depth]
    return [doc for doc, _ in top]


def _ideal_grades(judged: Mapping[str, int], depth: int) -> list[int]:
    return sorted((g for g in judged.values() if g > 0), reverse=True)[:depth]


def _metrics_from_grades(
    grades: FloatArray, ideal: FloatArray, n_relevant: FloatArray, ks: list[int]
) -> dict[str, FloatArray]:
    """Every metric at every cut-off, vectorised over queries.

    `grades` (n, D): grade of the doc at rank r (0 past the end of the ranking or for unjudged docs);
    `ideal` (n, D): the query's positive grades sorted descending, 0-padded; `n_relevant` (n,): number
    of docs with grade >= 1 in the qrels; D = max(ks).
    """
    depth = grades.shape[1]
    ranks = np.arange(1, depth + 1, dtype=np.float64)
    discount = np.log2(ranks + 1.0)
    dcg = np.cumsum(np.maximum(grades, 0.0) / discount, axis=1)
    ideal_dcg = np.cumsum(ideal / discount, axis=1)
    relevant = grades >= 1.0
    hits = np.cumsum(relevant, axis=1, dtype=np.float64)
    precision_sum = np.cumsum(np.where(relevant, hits / ranks, 0.0), axis=1)
    any_relevant = relevant.any(axis=1)
    first_rank = np.where(any_relevant, relevant.argmax(axis=1) + 1, depth + 1).astype(np.float64)
    safe_relevant = np.maximum(n_relevant, 1.0)
    out: dict[str, FloatArray] = {}
    for k in ks:
        column = k - 1
        with np.errstate(divide="ignore", invalid="ignore"):
            ndcg = np.where(ideal_dcg[:, column] > 0, dcg[:, column] / ideal_dcg[:, column], 0.0)
        out[f"ndcg_at_{k}"] = ndcg
        out[f"map_at_{k}"] = precision_sum[:, column] / safe_relevant
        out[f"mrr_at_{k}"] = np.where(first_rank <= k, 1.0 / first_rank, 0.0)
        out[f"recall_at_{k}"] = hits[:, column] / safe_relevant
    return out


def _per_query(query_ids: list[str], metrics: dict[str, FloatArray]) -> dict[str, dict[str, float]]:
    names = list(metrics)
    columns = [metrics[name].tolist() for name in names]
    return {
        qid: {name: column[i] for name, column in zip(names, columns, strict=True)} for i, qid in enumerate(query_ids)
    }


def _judgment_arrays(qrels: Qrels, query_ids: list[str], depth: int) -> tuple[FloatArray, FloatArray]:
    ideal = np.zeros((len(query_ids), depth))
    n_relevant = np.zeros(len(query_ids))
    for row, qid in enumerate(query_ids):
        best = _ideal_grades(qrels[qid], depth)
        ideal[row, : len(best)] = best
        n_relevant[row] = sum(1 for g in qrels[qid].values() if g >= 1)
    return ideal, n_relevant


def evaluate_run(qrels: Qrels, run: Run, k_values: Iterable[int] = DEFAULT_K_VALUES) -> dict[str, dict[str, float]]:
    """Per-query ndcg_at_k, map_at_k, mrr_at_k and recall_at_k for every k in `k_values`.

    Scores the queries trec_eval scores: in the run (possibly with no doc) and with at least one
    judgment in the qrels; others are left out (see the module docstring for averaging). Only the top
    max(k_values) docs of each query matter. Keys follow mteb's names ("ndcg_at_10", "map_at_100", ...).
    Equals pytrec_eval's ndcg_cut.k, map_cut.k, recall.k, and recip_rank on the run cut to its top k.

    Example: evaluate_run({"q": {"d1": 1}}, {"q": {"d2": 0.9, "d1": 0.5}}, k_values=[1])
    -> {"q": {"ndcg_at_1": 0.0, "map_at_1": 0.0, "mrr_at_1": 0.0, "recall_at_1": 0.0}}.
    """
    ks = check_k_values(k_values)
    check_qrels_run(qrels, run)
    depth = ks[-1]
    query_ids = [qid for qid in run if len(qrels.get(qid, {})) > 0]
    grades = np.zeros((len(query_ids), depth))
    for row, qid in enumerate(query_ids):
        judged = qrels[qid]
        ranked = rank_docs(run[qid], depth)
        grades[row, : len(ranked)] = [judged.get(doc, 0) for doc in ranked]
    ideal, n_relevant = _judgment_arrays(qrels, query_ids, depth)
    return _per_query(query_ids, _metrics_from_grades(grades, ideal, n_relevant, ks))


def mean_over_queries(
    per_query: Mapping[str, Mapping[str, float]], queries: Iterable[str] | None = None
) -> dict[str, float]:
    """Mean of each metric over queries.

    `queries=None`: over the queries of `per_query` (trec_eval's default, mteb's numbers before its
    rounding to 5 decimals). With `queries`: over exactly those, a query absent from `per_query`
    counting 0 on every metric (trec_eval -c; ranx with make_comparable=True over its qrels' queries).
    Raises ValueError when there is nothing to average.

    Example: mean_over_queries({"a": {"ndcg_at_10": 1.0}}, queries=["a", "b"]) -> {"ndcg_at_10": 0.5}.
    """
    if not per_query:
        raise ValueError("no evaluated query: no query of the run has judgments in the qrels (check the query ids)")
    names = list(next(iter(per_query.values())))
    chosen = list(per_query) if queries is None else list(dict.fromkeys(queries))
    if not chosen:
        raise ValueError("queries is empty: give the query ids to average over, or None for all evaluated ones")
    zeros = dict.fromkeys(names, 0.0)
    return {name: math.fsum(per_query.get(qid, zeros)[name] for qid in chosen) / len(chosen) for name in names}


def ndcg_at_k(qrels: Qrels, run: Run, k: int = 10) -> float:
    """Mean nDCG@k (trec_eval ndcg_cut.k) over queries in both run and qrels.

    Example: ndcg_at_k({"q": {"d1": 1}}, {"q": {"d2": 0.9, "d1": 0.5}}) -> 1 / log2(3) = 0.6309.
    """
    return mean_over_queries(evaluate_run(qrels, run, [k]))[f"ndcg_at_{k}"]


def average_precision_at_k(qrels: Qrels, run: Run, k: int = 100) -> float:
    """MAP@k: mean over queries in both run and qrels of AP@k (trec_eval map_cut.k).

    The denominator of AP@k is the number of relevant docs in the qrels, even when it exceeds k.
    Example: qrels {"q": {"a": 1, "b": 1}}, run {"q": {"a": 1.0}} -> (1 / 1) / 2 = 0.5.
    """
    return mean_over_queries(evaluate_run(qrels, run, [k]))[f"map_at_{k}"]


def mrr_at_k(qrels: Qrels, run: Run, k: int = 10) -> float:
    """MRR@k: mean over queries in both run and qrels of 1 / rank of the first relevant doc in the top k.

    0 for a query without a relevant doc in its top k. Example: relevant doc at rank 3 -> 1/3; at rank
    11 with k = 10 -> 0.
    """
    return mean_over_queries(evaluate_run(qrels, run, [k]))[f"mrr_at_{k}"]


def recall_at_k(qrels: Qrels, run: Run, k: int = 10) -> float:
    """Mean Recall@k (trec_eval recall.k) over queries in both run and qrels.

    Relevant docs in the top k / relevant docs in the qrels; 0 for a query without relevant docs.
    Example: qrels {"q": {"a": 1, "b": 2}}, run {"q": {"a": 1.0, "x": 0.5}}, k = 10 -> 0.5.
    """
    return mean_over_queries(evaluate_run(qrels, run, [k]))[f"recall_at_{k}"]


def trec_eval_doc_order(doc_ids: Sequence[str]) -> IntArray:
    """Positions of `doc_ids` sorted by doc id descending: trec_eval's preference among tied scores.

    `harness.search.exact_search` breaks score ties by the lower corpus index. Searching a corpus laid
    out in this order (`embeddings[order]`, `[doc_ids[i] for i in order]`) makes that rule trec_eval's
    rule, so its top k are exactly trec_eval's top k of the full score matrix, boundary ties included.
    Example: trec_eval_doc_order(["a", "c", "b"]) -> [1, 2, 0].
    """
    ids = _check_doc_ids(doc_ids)
    return np.asarray(sorted(range(len(ids)), key=ids.__getitem__, reverse=True), dtype=np.int64)


def _check_doc_ids(doc_ids: Sequence[str]) -> list[str]:
    ids = list(doc_ids)
    if len(set(ids)) != len(ids):
        raise ValueError("doc_ids contain duplicates: every document needs a distinct id")
    return ids


def topk_to_run(
    query_ids: Sequence[str], doc_ids: Sequence[str], topk_indices: ArrayLike, topk_scores: ArrayLike
) -> dict[str, dict[str, float]]:
    """The dict run of a top-k search result: query id -> doc id -> score (float32 scores widened exactly).

    Example: topk_to_run(["q"], ["a", "b"], [[1, 0]], [[0.9, 0.1]]) -> {"q": {"b": 0.9, "a": 0.1}}.
    """
    indices, scores = _check_topk(query_ids, doc_ids, topk_indices, topk_scores)
    ids = list(doc_ids)
    return {
        qid: {ids[j]: s for j, s in zip(row_i, row_s, strict=True)}
        for qid, row_i, row_s in zip(query_ids, indices.tolist(), scores.tolist(), strict=True)
    }


def _check_topk(
    query_ids: Sequence[str], doc_ids: Sequence[str], topk_indices: ArrayLike, topk_scores: ArrayLike
) -> tuple[IntArray, FloatArray]:
    indices = np.asarray(topk_indices)
    scores = np.asarray(topk_scores, dtype=np.float64)
    if indices.ndim != 2 or scores.shape != indices.shape:
        raise ValueError(
            f"topk_indices and topk_scores must be 2-D arrays of one shape (queries, k), got {indices.shape} "
            f"and {scores.shape}"
        )
    if not np.issubdtype(indices.dtype, np.integer):
        raise ValueError(f"topk_indices must hold integers, got dtype {indices.dtype}")
    if indices.shape[0] != len(query_ids):
        raise ValueError(f"topk arrays have {indices.shape[0]} rows but query_ids has {len(query_ids)} ids")
    if len(set(query_ids)) != len(query_ids):
        raise ValueError("query_ids contain duplicates: every query needs a distinct id")
    if indices.size and (indices.min() < 0 or indices.max() >= len(doc_ids)):
        raise ValueError(f"topk_indices must lie in [0, {len(doc_ids)}) (positions in doc_ids)")
    if np.isnan(scores).any():
        raise ValueError("topk_scores contain NaN")
    if indices.shape[1] > 1:
        ordered = np.sort(indices, axis=1)
        if (ordered[:, 1:] == ordered[:, :-1]).any():
            raise ValueError("a row of topk_indices lists the same document twice")
    return indices.astype(np.int64), scores


def evaluate_topk(
    qrels: Qrels,
    query_ids: Sequence[str],
    doc_ids: Sequence[str],
    topk_indices: ArrayLike,
    topk_scores: ArrayLike,
    k_values: Iterable[int] = DEFAULT_K_VALUES,
) -> dict[str, dict[str, float]]:
    """`evaluate_run` of a top-k search result, vectorised (no dict run is built).

    Row i of `topk_indices` / `topk_scores` (shape (queries, k)) lists positions in `doc_ids` and the
    scores retrieved for `query_ids[i]`, in any order: each row is re-ranked with the trec_eval rule.
    Returns exactly `evaluate_run(qrels, topk_to_run(...), k_values)`. That also equals evaluating
    the full score matrix when the row holds trec_eval's top k (see `trec_eval_doc_order`).
    """
    ks = check_k_values(k_values)
    check_qrels_run(qrels, {})
    indices, scores = _check_topk(query_ids, doc_ids, topk_indices, topk_scores)
    depth = ks[-1]
    keep = [row for row, qid in enumerate(query_ids) if len(qrels.get(qid, {})) > 0]
    kept_ids = [query_ids[row] for row in keep]
    indices, scores = indices[keep], scores[keep]

    # Only retrieved docs matter: work on their distinct corpus positions, numbered 0..m-1 ("slots").
    retrieved, slots = np.unique(indices, return_inverse=True)
    slots = slots.reshape(indices.shape)
    names = [doc_ids[j] for j in retrieved.tolist()]
    if len(set(names)) != len(names):
        raise ValueError("doc_ids give one id to two retrieved documents: every document needs a distinct id")
    # Rank of each retrieved doc id in ascending lexical order; ties in score go to the higher rank first.
    id_rank = np.empty(len(names), dtype=np.int64)
    id_rank[np.asarray(sorted(range(len(names)), key=names.__getitem__), dtype=np.int64)] = np.arange(len(names))
    order = np.lexsort((-id_rank[slots], -scores), axis=-1)[:, :depth]
    ranked = np.take_along_axis(slots, order, axis=1)

    # Grades by a sorted lookup of (query row, slot) keys among the judged pairs; the sentinel key -1
    # keeps the lookup arrays non-empty.
    slot_of = {doc: slot for slot, doc in enumerate(names)}
    keys, values = [-1], [0]
    for row, qid in enumerate(kept_ids):
        for doc, grade in qrels[qid].items():
            slot = slot_of.get(doc)
            if slot is not None and grade != 0:
                keys.append(row * len(names) + slot)
                values.append(int(grade))
    sorter = np.argsort(np.asarray(keys, dtype=np.int64))
    judged_keys = np.asarray(keys, dtype=np.int64)[sorter]
    judged_grades = np.asarray(values, dtype=np.float64)[sorter]
    wanted = np.arange(len(kept_ids), dtype=np.int64)[:, None] * len(names) + ranked
    found = np.minimum(np.searchsorted(judged_keys, wanted), len(judged_keys) - 1)
    grades = np.zeros((len(kept_ids), depth))
    grades[:, : ranked.shape[1]] = np.where(judged_keys[found] == wanted, judged_grades[found], 0.0)

    ideal, n_relevant = _judgment_arrays(qrels, kept_ids, depth)
    return _per_query(kept_ids, _metrics_from_grades(grades, ideal, n_relevant, ks))
