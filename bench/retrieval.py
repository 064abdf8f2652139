"""Bench: retrieval end to end with the packaged all-MiniLM-L6-v2 (encoding is the cost to avoid).

Rows:
- encoding speed: documents per second for 256 passages of about 500 characters (language-reference
  text from pydoc_data, packed to at most 500 characters), batches of 64, longest first, on the CPU;
- the `retrieval` task on the built-in pydocs suite (500 queries, 2,000 passages), end to end from
  the checkpoint path (model load, suite build, encoding or cache read, exact search, metrics with
  1,000 bootstrap resamples): a first run with an empty cache against a second run that reads the
  cached embeddings (a fresh handle and a fresh suite, as a second `harness eval` would have).
  Target: the cached run at least 10x faster;
- exact search over 200,000 synthetic 384-d documents (time and peak memory, bounded by the block
  size) and metric speed: the rows of bench/retrieval_search.py, whose run() `make bench` also calls,
  so they are printed here only when this file is run as a script.

Timings share the machine with whatever else runs (2 cores here): read them as orders of magnitude.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from common import Row, print_table, timer

import harness.data
from harness.data.retrieval import pack_passages
from harness.models import load_model
from harness.models.base import InferenceOptions
from harness.models.sentence_encoder import SentenceEncoderHandle, packaged_minilm_path
from harness.runner import EvalOptions, Runner
from harness.tasks import load_specs

N_PASSAGES = 256
PASSAGE_CHARS = 500


def passages_of_500_chars(n: int = N_PASSAGES) -> list[str]:
    """`n` passages of 450 to 500 characters from the language reference (deterministic)."""
    from pydoc_data.topics import topics

    packed = [p for key in sorted(topics) for p in pack_passages(str(topics[key]).split("\n\n"), PASSAGE_CHARS)]
    long = [p for p in packed if len(p) >= 450]
    if len(long) < n:
        raise RuntimeError(f"only {len(long)} passages of 450-500 characters")
    return long[:n]


def encoding_rows(handle: SentenceEncoderHandle) -> list[Row]:
    texts = passages_of_500_chars()
    handle.encode(texts[:8], InferenceOptions())  # warm-up (first-call allocations)
    with timer() as t:
        handle.encode(texts, InferenceOptions(batch_size=64))
    tokens = sum(len(ids) for ids in handle.model.tokenizer(texts, truncation=True)["input_ids"]) / len(texts)
    return [
        Row(
            "retrieval",
            f"MiniLM encoding, {len(texts)} passages of ~{PASSAGE_CHARS} chars (~{tokens:.0f} tokens), batch 64",
            len(texts) / t[0],
            "docs/s",
        )
    ]


def end_to_end_rows(cache_dir: Path) -> list[Row]:
    spec = load_specs().get("retrieval")
    options = EvalOptions(cache_dir=cache_dir)
    rows, times = [], []
    for label in ("first run (empty cache)", "second run (cached embeddings)"):
        harness.data._SUITES.clear()  # a fresh process would rebuild the suite
        with timer() as t:
            handle = load_model(packaged_minilm_path())
            result = Runner(options).evaluate(handle, [spec])
        times.append(t[0])
        ndcg = result.submission.results[0].metric("ndcg_at_10").value
        rows.append(
            Row(
                "retrieval",
                f"retrieval task (pydocs full), {label}: {result.cache_misses} encodings, nDCG@10 {ndcg:.4f}",
                t[0],
                "s",
            )
        )
    speedup = times[0] / times[1]
    rows.append(Row("retrieval", "first run / cached run", speedup, "x", ">= 10x", speedup >= 10))
    return rows


def run() -> list[Row]:
    handle = load_model(packaged_minilm_path())
    assert isinstance(handle, SentenceEncoderHandle)
    rows = encoding_rows(handle)
    with tempfile.TemporaryDirectory() as tmp:
        rows += end_to_end_rows(Path(tmp) / "cache")
    return rows


if __name__ == "__main__":
    import retrieval_search

    print_table(run() + retrieval_search.run(), "bench/retrieval.py")
