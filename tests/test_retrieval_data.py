"""Retrieval data: BEIR folders the tests write (and their error cases), the built-in pydocs suite."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from harness.data.retrieval import (
    RetrievalSplit,
    beir_suite,
    cut_at_word,
    join_title_text,
    pack_passages,
    pydocs_suite,
    read_beir,
)
from harness.errors import HarnessError
from harness.registry import DATASETS
from harness.schema import DatasetSource

CORPUS: list[dict[str, Any]] = [
    {"_id": "d1", "title": "Lists", "text": "Lists are mutable sequences."},
    {"_id": "d2", "title": "", "text": "  Tuples are immutable sequences. "},
    {"_id": 3, "text": "Dictionaries map keys to values."},
    {"_id": "d4", "title": "Sets", "text": None},
]
QUERIES: list[dict[str, Any]] = [
    {"_id": "q1", "text": "mutable sequence"},
    {"_id": "q2", "text": "immutable sequence"},
    {"_id": "q3", "text": "a query nobody judged"},
    {"_id": "q4", "text": "mapping type"},
]
QRELS = "query-id\tcorpus-id\tscore\nq1\td1\t2\nq2\td2\t1\nq2\td1\t0\nq4\t3\t1\nq4\tgone\t1\nq9\td1\t1\n"


def write_beir(
    folder: Path,
    corpus: list[dict[str, Any]] | None = None,
    queries: list[dict[str, Any]] | None = None,
    qrels: str = QRELS,
    split: str = "test",
) -> Path:
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    lines = [json.dumps(r) for r in (CORPUS if corpus is None else corpus)]
    (folder / "corpus.jsonl").write_text("\n".join(lines) + "\n")
    (folder / "queries.jsonl").write_text("\n".join(json.dumps(r) for r in (queries or QUERIES)) + "\n")
    (folder / "qrels" / f"{split}.tsv").write_text(qrels)
    return folder


def test_beir_folder_is_read_with_documented_conventions(tmp_path: Path) -> None:
    suite = read_beir(write_beir(tmp_path / "b"), "test")
    corpus = suite.split("corpus")
    assert corpus.ids == ["d1", "d2", "3", "d4"]
    # title + " " + text, stripped; no title -> the text; an int _id becomes a string
    assert corpus.texts == [
        "Lists Lists are mutable sequences.",
        "Tuples are immutable sequences.",
        "Dictionaries map keys to values.",
        "Sets",
    ]
    queries = suite.split("queries")
    assert queries.ids == ["q1", "q2", "q4"]  # q3 has no judgments: skipped (trec_eval does not average it)
    assert suite.qrels == {"q1": {"d1": 2}, "q2": {"d2": 1, "d1": 0}, "q4": {"3": 1, "gone": 1}}
    assert suite.notes["queries_without_qrels"] == 1
    assert suite.notes["qrels_unknown_queries"] == 1  # q9
    assert suite.notes["qrels_unknown_docs"] == 1  # "gone" is kept: it counts in recall denominators
    assert (queries.y == 0).all() and len(queries) == 3 and queries.head(2).ids == ["q1", "q2"]
    assert queries.head(2).qrels == {"q1": {"d1": 2}, "q2": {"d2": 1, "d1": 0}}
    with pytest.raises(HarnessError, match="no split 'train'"):
        suite.split("train")


def test_fingerprints_cover_corpus_and_judgments(tmp_path: Path) -> None:
    first = read_beir(write_beir(tmp_path / "a"))
    again = read_beir(write_beir(tmp_path / "b"))
    changed = read_beir(write_beir(tmp_path / "c", qrels=QRELS.replace("q1\td1\t2", "q1\td1\t1")))
    assert first.corpus.fingerprint == again.corpus.fingerprint == changed.corpus.fingerprint
    assert first.queries.fingerprint == again.queries.fingerprint != changed.queries.fingerprint
    assert first.fingerprint != changed.fingerprint


def test_beir_source_params_and_qrels_splits(tmp_path: Path) -> None:
    folder = write_beir(tmp_path / "b", split="dev")
    suite = beir_suite(DatasetSource(kind="local", name="mine", path=str(folder), params={"split": "dev"}))
    assert suite.name == "mine" and suite.qrels_split == "dev"
    with pytest.raises(HarnessError, match=r"no qrels for split 'test'.*\['dev'\]"):
        read_beir(folder, "test")
    with pytest.raises(HarnessError, match="empty_documents must be"):
        beir_suite(DatasetSource(kind="local", name="m", path=str(folder), params={"empty_documents": "drop"}))


@pytest.mark.parametrize(
    ("corpus", "queries", "qrels", "message"),
    [
        (
            [*CORPUS, {"_id": "d1", "text": "again"}],
            None,
            QRELS,
            r"duplicate document id 'd1' \(lines 1 and 5\).*corpus.jsonl",
        ),
        (
            None,
            [*QUERIES, {"_id": "q2", "text": "x"}],
            QRELS,
            r"duplicate query id 'q2' \(lines 2 and 5\).*queries.jsonl",
        ),
        (
            [*CORPUS, {"_id": "e", "title": " ", "text": "  "}],
            None,
            QRELS,
            r"1 empty document.*'e' \(line 5\).*empty_documents: keep",
        ),
        (None, [*QUERIES, {"_id": "q5", "text": " "}], QRELS, r"query 'q5' \(line 5\) has no text"),
        ([{"text": "no id"}], None, QRELS, r"line 1 has no '_id'"),
        (None, None, QRELS + "q1\td1\t1\n", r"judges doc 'd1' twice with different grades \(lines 2 and 8\)"),
        (None, None, QRELS + "q1\td1\n", r"line 8 has 2 tab-separated fields"),
        (None, None, QRELS + "q1\td3\thigh\n", r"line 8: score 'high' is not an integer"),
        (None, None, "query-id\tcorpus-id\tscore\nzz\td1\t1\n", r"no query of the queries file has judgments"),
        ([], None, QRELS, r"the corpus is empty"),
    ],
)
def test_beir_errors_name_file_line_and_id(
    tmp_path: Path, corpus: list[dict[str, Any]] | None, queries: list[dict[str, Any]] | None, qrels: str, message: str
) -> None:
    folder = write_beir(tmp_path / "b", corpus, queries, qrels)
    with pytest.raises(HarnessError, match=message):
        read_beir(folder)


def test_invalid_json_and_missing_files(tmp_path: Path) -> None:
    folder = write_beir(tmp_path / "b")
    (folder / "corpus.jsonl").write_text('{"_id": "d1", "text": "ok"}\n{"_id": \n')
    with pytest.raises(HarnessError, match="line 2 is not valid JSON"):
        read_beir(folder)
    (folder / "queries.jsonl").unlink()
    with pytest.raises(HarnessError, match=r"queries\.jsonl is missing"):
        read_beir(folder)
    with pytest.raises(HarnessError, match="does not exist"):
        read_beir(tmp_path / "nowhere")


def test_empty_documents_can_be_kept_as_empty_text(tmp_path: Path) -> None:
    folder = write_beir(tmp_path / "b", [*CORPUS, {"_id": "e", "title": "", "text": ""}])
    suite = beir_suite(DatasetSource(kind="local", name="m", path=str(folder), params={"empty_documents": "keep"}))
    assert suite.corpus.texts[-1] == "" and suite.notes["empty_documents"] == 1


def test_split_validation() -> None:
    with pytest.raises(HarnessError, match="duplicate ids"):
        RetrievalSplit("corpus", ["a", "b"], ["x", "x"])
    with pytest.raises(HarnessError, match="judgments for queries not in split"):
        RetrievalSplit("queries", ["a"], ["q1"], {"q2": {"d": 1}})


def test_text_helpers() -> None:
    assert join_title_text("T", "body ") == "T body" and join_title_text(None, " x ") == "x"
    assert cut_at_word("alpha beta gamma", 12) == "alpha beta" and cut_at_word("abcdef", 3) == "abc"
    assert pack_passages(["a b", "c"], limit=5) == ["a b c"]
    assert pack_passages(["a b", "c d"], limit=4) == ["a b", "c d"]
    passages = pack_passages(["short", "word " * 200], limit=50)
    assert passages[0].startswith("short word") and all(len(p) <= 50 for p in passages)


# --------------------------------------------------------------------------- the built-in suite


@pytest.mark.parametrize(("size", "n_queries", "n_docs"), [("full", 500, 2000), ("small", 40, 160)])
def test_pydocs_sizes_and_structure(size: str, n_queries: int, n_docs: int) -> None:
    suite = pydocs_suite(seed=0, size=size)
    corpus, queries = suite.split("corpus"), suite.split("queries")
    assert (len(queries), len(corpus)) == (n_queries, n_docs)
    assert all(0 < len(text) <= 400 for text in corpus.texts)
    texts = dict(zip(corpus.ids, corpus.texts, strict=True))
    reference = [q for q in queries.ids if q.startswith("q-ref-")]
    assert len(reference) == n_queries // 3
    for qid, text in zip(queries.ids, queries.texts, strict=True):
        judged = suite.qrels[qid]
        assert judged and all(doc in texts for doc in judged)  # every judged doc is in the corpus
        if qid.startswith("q-api-"):
            (doc,) = judged
            # the query is the docstring's summary, which the document leaves out
            assert judged[doc] == 1 and text not in texts[doc] and texts[doc].startswith(qid[len("q-api-") :] + ": ")
        else:
            assert sorted(judged.values(), reverse=True)[0] == 2 and len(judged) <= 3
    assert suite.notes["queries_without_qrels"] == 0 and suite.notes["qrels_unknown_docs"] == 0


def test_pydocs_is_deterministic_and_seeded() -> None:
    first, again, other = (
        pydocs_suite(seed=0, size="small"),
        pydocs_suite(seed=0, size="small"),
        pydocs_suite(seed=1, size="small"),
    )
    assert first.fingerprint == again.fingerprint and first.corpus.texts == again.corpus.texts
    assert first.fingerprint != other.fingerprint
    assert DATASETS.get("pydocs") is pydocs_suite
    with pytest.raises(HarnessError, match="unknown pydocs size"):
        pydocs_suite(size="huge")


def test_beir_and_mteb_source_kinds_reach_the_readers(tmp_path: Path) -> None:
    from pydantic import ValidationError

    from harness.data import load_suite

    folder = write_beir(tmp_path / "b")
    try:
        source = DatasetSource.model_validate({"kind": "beir", "name": "mine", "path": str(folder)})
    except ValidationError:
        pytest.skip("DatasetSource has no kind 'beir' yet (schema change requested)")
    suite = load_suite(source)
    assert suite.name == "mine" and suite.split("queries").ids == ["q1", "q2", "q4"]
    with pytest.raises(HarnessError, match="not available locally"):
        load_suite(DatasetSource.model_validate({"kind": "mteb", "name": "SciFact"}))
