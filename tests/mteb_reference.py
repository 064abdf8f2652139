"""MTEB's own retrieval evaluation (its encoding, search and scoring) of a sentence-transformers model on
a BEIR folder, read here with plain json/csv, independently of Harness's reader: the reference of
tests/test_retrieval_integration.py and bench/catalog.py."""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path
from typing import Any


def mteb_beir_scores(
    folder: Path, model_path: Path, *, ignore_identical_ids: bool = False
) -> tuple[float, dict[str, Any]]:
    """(seconds of MTEB's evaluation, encoding included; MTEB's scores of the test split). With
    `ignore_identical_ids`, MTEB leaves a query's own document out of its ranking (its ArguAna rule)."""
    from datasets import Dataset
    from mteb.abstasks.retrieval import AbsTaskRetrieval
    from mteb.abstasks.task_metadata import TaskMetadata
    from mteb.models.sentence_transformer_wrapper import SentenceTransformerEncoderWrapper
    from sentence_transformers import SentenceTransformer

    corpus = [json.loads(line) for line in (folder / "corpus.jsonl").read_text().splitlines()]
    queries = [json.loads(line) for line in (folder / "queries.jsonl").read_text().splitlines()]
    qrels: dict[str, dict[str, int]] = {}
    with (folder / "qrels" / "test.tsv").open() as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            qrels.setdefault(row["query-id"], {})[row["corpus-id"]] = int(row["score"])

    class FolderTask(AbsTaskRetrieval):
        metadata = TaskMetadata(
            name="HarnessWrittenBeirFolder", description="a BEIR folder written by a Harness test or bench",
            reference=None, dataset={"path": str(folder), "revision": "local"}, type="Retrieval", category="t2t",
            modalities=["text"], eval_splits=["test"], eval_langs=["eng-Latn"], main_score="ndcg_at_10",
            date=None, domains=None, task_subtypes=None, license=None, annotations_creators=None, dialect=None,
            sample_creation=None, bibtex_citation=None,
        )  # fmt: skip

        def load_data(self, num_proc: int | None = None, **kwargs: Any) -> None:
            split = {
                "corpus": Dataset.from_list([{"id": d["_id"], "title": d["title"], "text": d["text"]} for d in corpus]),
                "queries": Dataset.from_list([{"id": q["_id"], "text": q["text"]} for q in queries]),
                "relevant_docs": qrels,
                "top_ranked": None,
            }
            self.dataset = {"default": {"test": split}}  # type: ignore[dict-item]
            self.data_loaded = True

    FolderTask.ignore_identical_ids = ignore_identical_ids

    model = SentenceTransformer(str(model_path), device="cpu", local_files_only=True)
    started = time.perf_counter()
    scores = FolderTask().evaluate(
        SentenceTransformerEncoderWrapper(model), split="test", encode_kwargs={"batch_size": 32}
    )
    return time.perf_counter() - started, dict(scores["default"])
