"""Exact search against a brute-force full score matrix; ties, edge sizes, cosine zero vectors, memory."""

from __future__ import annotations

import importlib
import tracemalloc
from typing import Any

import numpy as np
import pytest

from harness.errors import HarnessError
from harness.search import exact_search, normalize_rows


def brute_force(
    queries: np.ndarray, docs: np.ndarray, k: int, metric: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Full (q, n) score matrix, then a stable sort: score descending, lower index first among ties."""
    if metric == "cosine":
        queries, docs = normalize_rows(queries), normalize_rows(docs)
    full = np.asarray(queries, np.float32) @ np.asarray(docs, np.float32).T
    order = np.argsort(-full, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(full, order, axis=1), full


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("metric", ["dot", "cosine"])
def test_equals_brute_force_on_continuous_data(seed: int, metric: str) -> None:
    rng = np.random.default_rng(seed)
    queries = rng.standard_normal((23, 16)).astype(np.float32)
    docs = rng.standard_normal((517, 16)).astype(np.float32)
    indices, scores = exact_search(queries, docs, k=50, block_size=61, query_block_size=7, metric=metric)
    expected_indices, expected_scores, full = brute_force(queries, docs, 50, metric)
    assert indices.dtype == np.int64 and scores.dtype == np.float32
    assert scores == pytest.approx(expected_scores, abs=1e-5)
    # Blocked products may round differently in the last bit; the returned docs carry their scores
    # and, away from near-ties, are exactly the brute-force ones.
    assert np.take_along_axis(full, indices, axis=1) == pytest.approx(scores, abs=1e-5)
    assert (indices == expected_indices).mean() > 0.99


@pytest.mark.parametrize("seed", range(20))
def test_ties_go_to_the_lower_index_exactly(seed: int) -> None:
    # Small integer vectors and a dot product: exact float32 arithmetic and many ties everywhere.
    rng = np.random.default_rng(seed)
    n_queries, n_docs = int(rng.integers(1, 25)), int(rng.integers(1, 300))
    queries = rng.integers(-2, 3, size=(n_queries, 4)).astype(np.float32)
    docs = rng.integers(-2, 3, size=(n_docs, 4)).astype(np.float32)
    k = int(rng.integers(1, 350))
    block_size, query_block_size = int(rng.integers(1, 90)), int(rng.integers(1, 9))
    indices, scores = exact_search(
        queries, docs, k=k, block_size=block_size, query_block_size=query_block_size, metric="dot"
    )
    expected_indices, expected_scores, _ = brute_force(queries, docs, k, "dot")
    assert indices.shape == (n_queries, min(k, n_docs))
    np.testing.assert_array_equal(indices, expected_indices)
    np.testing.assert_array_equal(scores, expected_scores)


def test_duplicate_documents_keep_corpus_order_in_cosine() -> None:
    docs = np.array([[0.0, 1.0], [2.0, 0.0], [1.0, 0.0], [3.0, 0.0], [0.0, 0.0]], dtype=np.float32)
    indices, scores = exact_search([[5.0, 0.0]], docs, k=5, block_size=2)
    assert indices.tolist() == [[1, 2, 3, 0, 4]]  # three docs at cosine 1, then two at 0
    assert scores[0, :3].tolist() == pytest.approx([1.0, 1.0, 1.0])


def test_edge_sizes() -> None:
    rng = np.random.default_rng(0)
    docs = rng.standard_normal((5, 3))
    # k larger than the corpus returns every document.
    indices, scores = exact_search(rng.standard_normal((4, 3)), docs, k=100, block_size=2)
    assert indices.shape == scores.shape == (4, 5)
    assert sorted(indices[0].tolist()) == list(range(5))
    # One document, one query.
    indices, scores = exact_search([[1.0, 2.0, 2.0]], [[2.0, 0.0, 0.0]], k=10)
    assert indices.tolist() == [[0]] and scores[0, 0] == pytest.approx(1 / 3)
    # No queries.
    indices, scores = exact_search(np.zeros((0, 3)), docs, k=3)
    assert indices.shape == scores.shape == (0, 3)
    # float64 and integer inputs are scored in float32.
    indices, scores = exact_search([[1, 0]], [[1, 0], [0, 3]], k=1, metric="dot")
    assert indices.tolist() == [[0]] and scores.dtype == np.float32


def test_cosine_zero_vectors_score_zero() -> None:
    docs = np.array([[0.0, 0.0], [1.0, 1.0], [-1.0, 0.0]], dtype=np.float32)
    indices, scores = exact_search([[0.0, 0.0], [1.0, 0.0]], docs, k=3)
    assert scores[0].tolist() == [0.0, 0.0, 0.0] and indices[0].tolist() == [0, 1, 2]
    assert indices[1].tolist() == [1, 0, 2]
    assert scores[1].tolist() == pytest.approx([np.sqrt(0.5), 0.0, -1.0])
    assert np.isfinite(scores).all()


def test_memory_stays_bounded_by_the_block_size() -> None:
    rng = np.random.default_rng(0)
    n_queries, n_docs, dim, k, block, query_block = 500, 50_000, 16, 100, 2048, 256
    queries = rng.standard_normal((n_queries, dim), dtype=np.float32)
    docs = rng.standard_normal((n_docs, dim), dtype=np.float32)
    tracemalloc.start()  # numpy reports its array buffers to tracemalloc
    try:
        indices, _ = exact_search(queries, docs, k=k, block_size=block, query_block_size=query_block)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    full_matrix = n_queries * n_docs * 4
    # 16 bytes per candidate score of one (query block x (doc block + k)) merge, float32 copies of one doc
    # block and of the queries, 32 bytes per running (query, rank) result.
    bound = 16 * query_block * (block + k) + 4 * block * dim + 4 * n_queries * dim + 32 * n_queries * k
    assert peak < bound < full_matrix / 5
    assert indices.shape == (n_queries, k)


@pytest.mark.parametrize(
    ("queries", "docs", "kwargs", "message"),
    [
        (np.ones((2, 3)), np.ones((4, 2)), {}, "dimensions differ"),
        (np.ones((2, 3)), np.zeros((0, 3)), {}, "at least one document"),
        (np.ones((2, 3)), np.full((4, 3), np.nan), {}, "NaN or inf"),
        (np.full((2, 3), np.inf), np.ones((4, 3)), {}, "NaN or inf"),
        (np.ones(3), np.ones((4, 3)), {}, "2-D"),
        (np.ones((2, 3)), np.ones((4, 3)), {"k": 0}, "k must be an integer >= 1"),
        (np.ones((2, 3)), np.ones((4, 3)), {"block_size": 0}, "block_size"),
        (np.ones((2, 3)), np.ones((4, 3)), {"metric": "l2"}, "metric must be"),
        (np.ones((2, 3)), np.ones((4, 3)), {"backend": "annoy"}, "backend must be"),
    ],
)
def test_bad_inputs_raise_clear_errors(queries: np.ndarray, docs: np.ndarray, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        exact_search(queries, docs, **kwargs)


def test_faiss_backend_missing_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = importlib.import_module

    def without_faiss(name: str, *args: Any) -> Any:
        if name == "faiss":
            raise ImportError("No module named 'faiss'")
        return real_import(name, *args)

    monkeypatch.setattr(importlib, "import_module", without_faiss)
    with pytest.raises(HarnessError, match="faiss is not installed") as raised:
        exact_search(np.ones((2, 3)), np.ones((4, 3)), backend="faiss")
    assert "pip install faiss-cpu" in str(raised.value.fix)


@pytest.mark.parametrize("metric", ["cosine", "dot"])
def test_faiss_backend_agrees_with_the_numpy_search(metric: str) -> None:
    pytest.importorskip("faiss")  # in the dev extra; optional for users
    rng = np.random.default_rng(0)
    queries, docs = rng.standard_normal((20, 8)), rng.standard_normal((3000, 8))
    indices, scores = exact_search(queries, docs, k=50, backend="faiss", metric=metric, block_size=700)
    expected_indices, expected_scores, _ = brute_force(queries, docs, 50, metric)
    assert scores == pytest.approx(expected_scores, abs=1e-4)
    assert (indices == expected_indices).mean() > 0.99  # continuous scores: only float32 near-ties may swap
