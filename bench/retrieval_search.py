"""Bench: exact search of 1,000 queries over 200,000 documents (384-d float32) and retrieval metrics.

Targets:
- Memory bounded by the block size: the peak extra memory of `exact_search` stays below
  16 B x query_block x (block + k) + 4 B x block x dim + 4 B x queries x dim + 32 B x queries x k
  (the candidate scores of one merge and its masks, float32 copies of one document block and of the
  queries, the running top k), whatever the corpus size. The full (queries x docs) float32 score
  matrix, 763 MiB here, is never built.
- Metrics on 1,000 queries x top-100 equal pytrec_eval's (< 1e-12) at no more than 3x its time.

Peak memory is measured with tracemalloc: numpy reports every array buffer to it, it starts from zero
when started after the data is built, and it counts only allocations during the call. The
alternative, resource.getrusage's ru_maxrss, is the process's lifetime high-water mark (it cannot be
reset, so it stays at the ~300 MiB of the corpus built before) and counts pages, not allocations.
Search time is one call (best of 1): other processes may share the CPU. The whole bench takes ~20 s.
`python bench/retrieval.py` prints these rows after its encoding and end-to-end rows (retrieval end
to end); `make bench` runs each file once.
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytrec_eval
from common import Row, best_of, print_table, timer

from harness.metrics.retrieval import evaluate_run, evaluate_topk, topk_to_run
from harness.search import DEFAULT_QUERY_BLOCK_SIZE, exact_search

N_QUERIES, N_DOCS, DIM, K = 1_000, 200_000, 384, 100
BLOCK_SIZES = (2048, 8192)
MIB = 2**20


def memory_bound_bytes(n_queries: int, dim: int, k: int, block_size: int, query_block_size: int) -> int:
    """The stated bound on exact_search's peak extra memory (see the module docstring)."""
    query_block = min(query_block_size, n_queries)
    return 16 * query_block * (block_size + k) + 4 * block_size * dim + 4 * n_queries * dim + 32 * n_queries * k


def synthetic_qrels(
    indices: np.ndarray, doc_ids: list[str], query_ids: list[str], rng: np.random.Generator
) -> dict[str, dict[str, int]]:
    """Per query: 3 judged docs among its retrieved top 100 and 3 anywhere in the corpus, grades 0..3."""
    qrels = {}
    for row, qid in enumerate(query_ids):
        judged = [*rng.choice(indices[row], 3, replace=False), *rng.integers(0, len(doc_ids), 3)]
        qrels[qid] = {doc_ids[j]: int(rng.integers(0, 4)) for j in judged}
    return qrels


def run() -> list[Row]:
    rng = np.random.default_rng(0)
    docs = rng.standard_normal((N_DOCS, DIM), dtype=np.float32)
    queries = rng.standard_normal((N_QUERIES, DIM), dtype=np.float32)
    case = f"{N_QUERIES:,} q x {N_DOCS:,} docs x {DIM}-d, k={K}"
    rows = [Row("retrieval_search", f"full score matrix (not built), {case}", N_QUERIES * N_DOCS * 4 / MIB, "MiB")]

    indices = np.zeros((0, K), dtype=np.int64)
    scores = np.zeros((0, K), dtype=np.float32)
    for block_size in BLOCK_SIZES:
        with timer() as t:
            indices, scores = exact_search(queries, docs, k=K, block_size=block_size)
        rows.append(Row("retrieval_search", f"exact_search cosine, block {block_size}, {case}", t[0], "s"))
        tracemalloc.start()
        try:
            exact_search(queries, docs, k=K, block_size=block_size)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        bound = memory_bound_bytes(N_QUERIES, DIM, K, block_size, DEFAULT_QUERY_BLOCK_SIZE)
        rows.append(
            Row(
                "retrieval_search",
                f"exact_search peak extra memory (tracemalloc), block {block_size}",
                peak / MIB,
                "MiB",
                f"< {bound / MIB:.1f} MiB (bound from block size)",
                peak < bound,
            )
        )
    del docs

    doc_ids = [f"doc{i}" for i in range(N_DOCS)]
    query_ids = [f"q{i}" for i in range(N_QUERIES)]
    qrels = synthetic_qrels(indices, doc_ids, query_ids, rng)
    dict_run = topk_to_run(query_ids, doc_ids, indices, scores)
    measures = {"ndcg_cut.1,10,100", "map_cut.1,10,100", "recall.1,10,100"}

    def trec() -> dict[str, dict[str, float]]:
        return pytrec_eval.RelevanceEvaluator(qrels, measures).evaluate(dict_run)

    trec_s = best_of(trec)
    topk_s = best_of(lambda: evaluate_topk(qrels, query_ids, doc_ids, indices, scores))
    run_s = best_of(lambda: evaluate_run(qrels, dict_run))
    eval_case = f"{N_QUERIES:,} q x top-{K}, k = 1, 10, 100"
    rows.append(Row("retrieval_search", f"pytrec_eval (build + evaluate), {eval_case}", trec_s, "s"))
    target = f"<= 3x pytrec_eval ({3 * trec_s:.3f} s)"
    rows.append(Row("retrieval_search", f"evaluate_topk, {eval_case}", topk_s, "s", target, topk_s <= 3 * trec_s))
    rows.append(
        Row("retrieval_search", f"evaluate_run (dict run), {eval_case}", run_s, "s", target, run_s <= 3 * trec_s)
    )

    expected = trec()
    ours = evaluate_topk(qrels, query_ids, doc_ids, indices, scores)
    names = {"ndcg_at": "ndcg_cut", "map_at": "map_cut", "recall_at": "recall"}
    worst = max(
        abs(ours[qid][f"{name}_{k}"] - values[f"{trec_name}_{k}"])
        for qid, values in expected.items()
        for name, trec_name in names.items()
        for k in (1, 10, 100)
    )
    rows.append(
        Row(
            "retrieval_search",
            "max |evaluate_topk - pytrec_eval| over queries and metrics",
            worst,
            "",
            "< 1e-12",
            worst < 1e-12,
        )
    )
    return rows


if __name__ == "__main__":
    print_table(run(), "bench/retrieval_search.py")
