"""Exact (exhaustive) nearest-neighbour search of query embeddings over a corpus, in bounded memory.

Conventions:
- `metric="dot"`: score = query . doc. `metric="cosine"`: the dot product of L2-normalised vectors;
  a zero vector stays zero, so it scores 0 against everything (and never raises).
- Scores are computed in float32 (inputs are cast block by block) and returned as float32.
- Ties: among equal scores the document with the LOWER corpus index ranks first, so results are
  deterministic. trec_eval breaks ties by doc id descending instead; lay the corpus out in
  `harness.metrics.retrieval.trec_eval_doc_order(doc_ids)` order and both rules coincide: the
  returned top k are then exactly trec_eval's top k of the full score matrix, and evaluating them
  gives the same metrics as evaluating every score (ties at the cut-off included).
- Memory: documents are scored in blocks of `block_size` against queries in blocks of
  `query_block_size`, keeping a running top k per query (np.partition, then a stable sort). Extra
  memory is O(query_block_size x (block_size + k) + queries x (k + dim) + block_size x dim), whatever
  the corpus size; the corpus itself is only read (a memory-mapped array works).
- `backend="faiss"` (only if faiss is installed; it is not a dependency) builds a flat inner-product
  index: it holds a float32 copy of the corpus, and ties at the cut-off follow faiss, not the rule above.

Example: exact_search([[1, 0]], [[0, 1], [2, 0], [1, 0]], k=2) -> indices [[1, 2]], scores [[1, 1]]
(a tie in cosine: the lower index 1 first).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from harness.errors import HarnessError

IntArray = NDArray[np.int64]
Float32Array = NDArray[np.float32]

DEFAULT_BLOCK_SIZE = 4096
DEFAULT_QUERY_BLOCK_SIZE = 1024


def _blocks(n: int, size: int) -> Iterator[tuple[int, int]]:
    for start in range(0, n, size):
        yield start, min(start + size, n)


def _check_matrix(name: str, x: ArrayLike) -> NDArray[Any]:
    array = np.asarray(x)
    if array.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n, dim), got shape {array.shape}")
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise ValueError(f"{name} must hold real numbers, got dtype {array.dtype}")
    return array


def _check_finite(name: str, x: NDArray[Any], block_size: int) -> None:
    for start, stop in _blocks(x.shape[0], block_size):
        if not np.isfinite(x[start:stop]).all():
            raise ValueError(f"{name} contain NaN or inf (rows {start} to {stop - 1})")


def _check_positive_int(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")


def normalize_rows(x: ArrayLike) -> Float32Array:
    """Float32 copy of `x` with every row scaled to unit L2 norm; zero rows stay zero.

    Example: normalize_rows([[3, 4], [0, 0]]) -> [[0.6, 0.8], [0, 0]].
    """
    out = np.array(x, dtype=np.float32)
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    np.divide(out, norms, out=out, where=norms > 0)
    return out


def exact_search(
    query_embeddings: ArrayLike,
    doc_embeddings: ArrayLike,
    k: int = 100,
    *,
    block_size: int = DEFAULT_BLOCK_SIZE,
    query_block_size: int = DEFAULT_QUERY_BLOCK_SIZE,
    metric: Literal["cosine", "dot"] = "cosine",
    backend: Literal["numpy", "faiss"] = "numpy",
) -> tuple[IntArray, Float32Array]:
    """Top-k documents of every query by exhaustive scoring: (indices (q, k) int64, scores (q, k) float32).

    Row i lists corpus positions by score descending, ties by lower position first (see the module
    docstring). With k larger than the corpus every document is returned (k becomes the corpus size).
    Raises ValueError for mismatched dimensions, NaN/inf, an empty corpus, k or block sizes < 1.
    Example: exact_search([[1, 0], [0, 1]], [[1, 0], [0, 2]], k=1, metric="dot") -> ([[0], [1]], [[1], [2]]).
    """
    if metric not in ("cosine", "dot"):
        raise ValueError(f"metric must be 'cosine' or 'dot', got {metric!r}")
    if backend not in ("numpy", "faiss"):
        raise ValueError(f"backend must be 'numpy' or 'faiss', got {backend!r}")
    _check_positive_int("k", k)
    _check_positive_int("block_size", block_size)
    _check_positive_int("query_block_size", query_block_size)
    queries = _check_matrix("query_embeddings", query_embeddings)
    docs = _check_matrix("doc_embeddings", doc_embeddings)
    if docs.shape[0] == 0:
        raise ValueError("doc_embeddings is empty: the corpus needs at least one document")
    if queries.shape[1] != docs.shape[1]:
        raise ValueError(
            f"embedding dimensions differ: queries have {queries.shape[1]}, documents {docs.shape[1]} "
            "(encode both with the same model)"
        )
    _check_finite("query_embeddings", queries, block_size)
    _check_finite("doc_embeddings", docs, block_size)
    faiss = _import_faiss() if backend == "faiss" else None

    k = min(int(k), docs.shape[0])
    prepared = normalize_rows(queries) if metric == "cosine" else np.asarray(queries, dtype=np.float32)
    if queries.shape[0] == 0:
        return np.zeros((0, k), dtype=np.int64), np.zeros((0, k), dtype=np.float32)
    if faiss is not None:
        return _faiss_search(faiss, prepared, docs, k, metric, block_size)

    top_indices = np.zeros((queries.shape[0], 0), dtype=np.int64)
    top_scores = np.zeros((queries.shape[0], 0), dtype=np.float32)
    for start, stop in _blocks(docs.shape[0], block_size):
        block = normalize_rows(docs[start:stop]) if metric == "cosine" else np.asarray(docs[start:stop], np.float32)
        new_indices, new_scores = [], []
        for q_start, q_stop in _blocks(queries.shape[0], query_block_size):
            # The block's scores live only inside the concatenation, which the merge consumes.
            candidates = np.concatenate([top_scores[q_start:q_stop], prepared[q_start:q_stop] @ block.T], axis=1)
            merged = _merge_top_k(top_indices[q_start:q_stop], candidates, start, k)
            del candidates
            new_indices.append(merged[0])
            new_scores.append(merged[1])
        top_indices = np.concatenate(new_indices)
        top_scores = np.concatenate(new_scores)
    return top_indices, top_scores


def _merge_top_k(
    top_indices: IntArray, candidates: Float32Array, block_start: int, k: int
) -> tuple[IntArray, Float32Array]:
    """Top k of the candidates: the scores of a running top list, then of a new block of documents.

    The running list (of corpus indices `top_indices`, all < block_start) is sorted with the tie rule,
    and the block's columns follow in corpus order, so among equal scores the column order is the corpus
    order: the ties kept at the cut-off and the stable sort after both prefer the lower corpus index.
    """
    kept = top_indices.shape[1]
    rows, width = candidates.shape
    if width <= k:
        columns = np.broadcast_to(np.arange(width), (rows, width))
    else:
        kth = np.partition(candidates, width - k, axis=1)[:, [width - k]]  # a copy: the partition is freed
        above = candidates > kth
        tied = candidates == kth
        missing = k - above.sum(axis=1, keepdims=True, dtype=np.int32)
        keep = above | (tied & (np.cumsum(tied, axis=1, dtype=np.int32) <= missing))
        del above, tied
        columns = np.nonzero(keep)[1].reshape(rows, k)
    scores = np.take_along_axis(candidates, columns, axis=1)
    indices = block_start + columns.astype(np.int64) - kept
    if kept:
        earlier = np.take_along_axis(top_indices, np.minimum(columns, kept - 1), axis=1)
        indices = np.where(columns < kept, earlier, indices)
    order = np.argsort(-scores, axis=1, kind="stable")
    return np.take_along_axis(indices, order, axis=1), np.take_along_axis(scores, order, axis=1)


def _import_faiss() -> Any:
    try:
        return importlib.import_module("faiss")
    except ImportError as error:
        raise HarnessError(
            "backend='faiss' was requested but faiss is not installed",
            fix="pip install faiss-cpu, or use backend='numpy' (exact, bounded memory, no extra dependency)",
        ) from error


def _faiss_search(
    faiss: Any, queries: Float32Array, docs: NDArray[Any], k: int, metric: str, block_size: int
) -> tuple[IntArray, Float32Array]:
    index = faiss.IndexFlatIP(docs.shape[1])
    for start, stop in _blocks(docs.shape[0], block_size):
        block = normalize_rows(docs[start:stop]) if metric == "cosine" else docs[start:stop]
        index.add(np.ascontiguousarray(block, dtype=np.float32))
    scores, indices = index.search(np.ascontiguousarray(queries), k)
    order = np.lexsort((indices, -scores), axis=-1)  # score descending, then lower index
    return (
        np.take_along_axis(indices, order, axis=1).astype(np.int64),
        np.take_along_axis(scores, order, axis=1).astype(np.float32),
    )
