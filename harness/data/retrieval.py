"""Retrieval suites: a corpus, queries and relevance judgments (qrels), from three sources.

A `RetrievalSuite` has two text splits, `corpus` and `queries` (`RetrievalSplit`: texts with unique
ids and a fingerprint), and the graded judgments of one qrels split (`qrels_split`, e.g. "test").

Sources
- BEIR folders (`read_beir`, `beir_suite`): `corpus.jsonl` (one JSON object per line with `_id`,
  optional `title`, `text`), `queries.jsonl` (`_id`, `text`) and `qrels/<split>.tsv` (tab-separated,
  header `query-id corpus-id score`, integer grades). A document's text is its title and its text
  joined by one space, `(title + " " + text).strip()`, or `text.strip()` when the title is missing
  or empty: the rule of BEIR's and mteb's dense retrievers, so embeddings match theirs.
- MTEB retrieval tasks (`read_mteb_task`, `mteb_suite`) through mteb's own task objects: their data
  is read from the local Hugging Face cache (HF_DATASETS_OFFLINE=1 works once it is cached); a
  task whose data is missing is a HarnessError that says how to get it. Documents are joined the
  same way as above (mteb's own rule).
- The built-in offline suite `pydocs` (`pydocs_suite`), built from text that ships with Python;
  its construction is described below.

Conventions (every source)
- The queries split holds only the queries judged in the qrels split, in file order: a query
  without judgments is skipped, as trec_eval skips it when averaging (and mteb drops it before
  encoding); the number skipped is `notes["queries_without_qrels"]`. Judgments of grade 0 count:
  such a query is scored (0 on every metric when it has no relevant document), as in trec_eval.
- Judgments for query ids that are not in the queries file are ignored (there is nothing to run);
  they are counted in `notes["qrels_unknown_queries"]`.
- Judgments for doc ids that are not in the corpus are kept: such a document can never be
  retrieved, and it still counts in the recall denominator and the ideal DCG (trec_eval's and
  mteb's behaviour). They are counted in `notes["qrels_unknown_docs"]`.
- Duplicate document or query ids are a HarnessError naming the file, the id and both lines.
  A (query, doc) pair judged twice with different grades is an error; an identical repeat is
  accepted.
- Empty documents (empty or only whitespace once title and text are joined): by default a
  HarnessError naming the file, the count and the first ids with their lines. With
  `empty_documents="keep"` (BEIR param) they stay in the corpus as the empty string, which the
  encoder embeds like any other text (for MiniLM: the mean of its [CLS] and [SEP] token vectors),
  so they can still be retrieved, as in mteb. An empty query is always an error.
- Fingerprints: the corpus fingerprint covers its ids and texts only, so every qrels split and
  every suite with the same corpus shares its cached embeddings; the queries fingerprint also
  covers their judgments (like a classification split's labels), so the recorded fingerprints
  identify the whole evaluation data.

The built-in suite `pydocs` (params `seed`, default 0, and `size`, "full" or "small")
Two kinds of query, with documents from two sources, all English text that ships with Python:
1. Language-reference sections (`pydoc_data.topics`, the text behind `help("TOPIC")`): every topic
   is cut at its section headings (a title line underlined with `*`, `=`, `-`, `~` or `^`). A section
   whose body has at least 150 characters is a query candidate; the query is the section title (a
   title that two sections share gets the enclosing section's title in parentheses). Its body is
   packed paragraph by paragraph (whitespace collapsed) into passages of at most 400 characters (see
   `pack_passages`); its first three passages are its relevant documents, grade 2 for the first and
   1 for the others (a later passage shorter than 100 characters is dropped). Its remaining passages
   are left out of the corpus altogether: they would be relevant but unjudged. A section repeated in
   two topics (same title and body) is kept once.
2. Standard-library docstrings: the public functions, classes, methods and properties of a fixed
   list of standard-library modules (`STDLIB_MODULES`, members in sorted order; an object counts for
   a module when it is defined there or in one of its submodules, as unittest.TestCase; an object
   reached twice keeps its first name; a module that cannot be imported here is skipped and listed
   in `notes["skipped_modules"]`). A docstring (`__doc__`, never inherited) is split into its summary,
   the first sentence of its first paragraph, and its body, the rest. The document is
   "qualified.name: body", cut at a word boundary to at most 400 characters; the query is the
   summary, which the document therefore does not contain. A docstring is a document when its body
   has at least 80 characters, no earlier docstring has the same body and it holds no memory address
   (which would change between runs); it is a query candidate when, in addition, its summary has at
   least 4 words and at most 200 characters, does not look like a signature ("name(" at its start,
   or "->") and no other docstring has the same summary (ignoring case). One relevant document per
   query, grade 1.
Drawing, with numpy's PCG64 seeded by `seed`: a third of the queries (rounded down) from the
sections and the rest from the docstring candidates, each without replacement in a seeded order; then
distractors (documents of docstrings that are not queries, and passages of sections that are not
queries) until the corpus has its size. Queries keep the draw order and the corpus is shuffled with
the same generator, so `--limit` takes a random sample of both.

Sizes: "full" 500 queries and 2,000 documents, "small" 40 queries and 160 documents (for tests; it
encodes in seconds). With Python 3.11.7 on Linux (seed 0): 166 section candidates (all drawn in the
full size, 411 passages) and 1,331 docstring query candidates among 1,673 docstring documents; the
full suite has 166 section queries and 334 docstring queries over 411 passages and 1,589 docstring
documents (1,255 of them distractors). Documents are 57 to 400 characters (276 on average, about 75
MiniLM word pieces; a handful of symbol-heavy ones exceed 256 and are truncated by MiniLM's
max_seq_length), which keeps the full suite at about 40 s of MiniLM encoding on 2 otherwise idle
CPU cores (estimated from 25-30 passages of 500 characters per second; 2 to 3 times longer when the
cores are shared) and the small one at a few seconds.

The text depends on the Python version (docs and docstrings change between releases) and, a little,
on the platform: the suite's `fingerprint` and the split fingerprints recorded with every run identify
the exact data; the description names the Python version. Building the full suite takes about 0.3 s.

    >>> suite = pydocs_suite(size="small")
    >>> len(suite.queries), len(suite.corpus)
    (40, 160)
"""

from __future__ import annotations

import functools
import hashlib
import json
import platform
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from harness.data import checked_positions, stdlib_docstrings
from harness.data.stdlib_docstrings import MAX_DOC_CHARS, collapse, cut_at_word
from harness.errors import HarnessError
from harness.schema import DatasetSource
from harness.untrusted import MAX_JSON_DEPTH, json_depth_exceeds, regular_file

Qrels = dict[str, dict[str, int]]
EmptyDocuments = Literal["error", "keep"]
SPLIT_NAMES = ("corpus", "queries")


# --------------------------------------------------------------------------- splits and suites


def _fingerprint(name: str, ids: list[str], texts: list[str], qrels: Mapping[str, Mapping[str, int]]) -> str:
    """sha256 over the split name, ids, texts and judgments (canonical JSON, so no separator is ambiguous)."""
    payload = json.dumps(
        {
            "name": name,
            "ids": ids,
            "texts": texts,
            "qrels": {q: dict(sorted(d.items())) for q, d in sorted(qrels.items())},
        },
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(payload.encode()).hexdigest()


@dataclass(frozen=True)
class RetrievalSplit:
    """Texts with unique string ids: the corpus or the queries of a retrieval suite.

    `qrels` (queries only) maps each query id of the split to its judged doc ids and grades; it is
    part of the fingerprint. `y` is all zeros (retrieval has no class labels); it is there so code
    written for labelled splits can read it.
    """

    name: str
    texts: list[str]
    ids: list[str]
    qrels: Qrels = field(default_factory=dict)
    y: NDArray[np.int64] = field(init=False, repr=False)
    fingerprint: str = field(init=False)

    def __post_init__(self) -> None:
        if len(self.texts) != len(self.ids):
            raise HarnessError(
                f"split {self.name!r} has {len(self.texts)} texts and {len(self.ids)} ids", where=f"split {self.name}"
            )
        repeated = [i for i, n in Counter(self.ids).items() if n > 1]
        if repeated:
            raise HarnessError(f"split {self.name!r} has duplicate ids {repeated[:5]}", where=f"split {self.name}")
        unknown = sorted(set(self.qrels) - set(self.ids))
        if unknown:
            raise HarnessError(f"judgments for queries not in split {self.name!r}: {unknown[:5]}")
        object.__setattr__(self, "y", np.zeros(len(self.ids), dtype=np.int64))
        object.__setattr__(self, "fingerprint", _fingerprint(self.name, self.ids, self.texts, self.qrels))

    def __len__(self) -> int:
        return len(self.ids)

    def head(self, n: int) -> RetrievalSplit:
        """The first n texts (and their judgments)."""
        ids = self.ids[:n]
        return RetrievalSplit(self.name, self.texts[:n], ids, {q: self.qrels[q] for q in ids if q in self.qrels})

    def take(self, indices: Sequence[int]) -> RetrievalSplit:
        """The texts at `indices`, in that order (and their judgments)."""
        rows = checked_positions(indices, len(self), self.name)
        ids = [self.ids[i] for i in rows]
        texts = [self.texts[i] for i in rows]
        return RetrievalSplit(self.name, texts, ids, {q: self.qrels[q] for q in ids if q in self.qrels})


@dataclass(frozen=True)
class RetrievalSuite:
    """A corpus, judged queries and their qrels split. See the module docstring for the conventions.

    `notes` counts what the readers skipped or kept (queries_without_qrels, qrels_unknown_queries,
    qrels_unknown_docs, empty_documents) and anything else worth recording with a run.
    """

    name: str
    corpus: RetrievalSplit
    queries: RetrievalSplit
    qrels_split: str
    description: str
    notes: dict[str, int | str | list[str]] = field(default_factory=dict)

    @property
    def qrels(self) -> Qrels:
        """query id -> doc id -> grade, for every query of the queries split."""
        return self.queries.qrels

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(f"{self.corpus.fingerprint}|{self.queries.fingerprint}".encode()).hexdigest()

    def split(self, name: str) -> RetrievalSplit:
        if name == "corpus":
            return self.corpus
        if name == "queries":
            return self.queries
        raise HarnessError(
            f"retrieval dataset {self.name!r} has no split {name!r}", fix="its splits are corpus and queries"
        )


def make_suite(
    name: str,
    corpus: Iterable[tuple[str, str]],
    queries: Iterable[tuple[str, str]],
    qrels: Mapping[str, Mapping[str, int]],
    *,
    qrels_split: str,
    description: str,
    where: str,
    notes: Mapping[str, int | str | list[str]] | None = None,
) -> RetrievalSuite:
    """A suite from (id, text) pairs and qrels, applying the conventions of the module docstring.

    Readers check duplicates and empty texts first (they know the file and the line); this keeps the
    judged queries, drops judgments of unknown queries and counts judgments of unknown documents.
    """
    doc_ids, doc_texts = _unzip(corpus)
    query_pairs = list(queries)
    known_queries = {qid for qid, _ in query_pairs}
    judged = {qid: dict(docs) for qid, docs in qrels.items() if docs}
    kept = [(qid, text) for qid, text in query_pairs if qid in judged]
    if not kept:
        raise HarnessError(
            f"no query of the queries file has judgments in the {qrels_split!r} qrels",
            where=where,
            fix="check that the query ids of the qrels file match those of the queries file",
        )
    query_ids, query_texts = _unzip(kept)
    known_docs = set(doc_ids)
    counts: dict[str, int | str | list[str]] = {
        "queries_without_qrels": len(query_pairs) - len(kept),
        "qrels_unknown_queries": sum(1 for qid in judged if qid not in known_queries),
        "qrels_unknown_docs": sum(1 for qid in query_ids for doc in judged[qid] if doc not in known_docs),
        **(notes or {}),
    }
    return RetrievalSuite(
        name=name,
        corpus=RetrievalSplit("corpus", doc_texts, doc_ids),
        queries=RetrievalSplit("queries", query_texts, query_ids, {qid: judged[qid] for qid in query_ids}),
        qrels_split=qrels_split,
        description=description,
        notes=counts,
    )


def _unzip(pairs: Iterable[tuple[str, str]]) -> tuple[list[str], list[str]]:
    ids, texts = [], []
    for doc_id, text in pairs:
        ids.append(doc_id)
        texts.append(text)
    return ids, texts


def join_title_text(title: Any, text: Any) -> str:
    """The text a model reads for a document: title and text joined by a space (BEIR's and mteb's rule).

    Example: join_title_text("Python", " A language. ") -> "Python  A language." (then stripped at both ends);
    join_title_text("", "x") -> "x".
    """
    body = "" if text is None else str(text)
    heading = "" if title is None else str(title)
    return (heading + " " + body).strip() if heading else body.strip()


# --------------------------------------------------------------------------- BEIR folders


def beir_suite(source: DatasetSource) -> RetrievalSuite:
    """A DatasetSource of kind "beir": `path` is the folder; params `split` (default "test") and
    `empty_documents` ("error", the default, or "keep")."""
    if not source.path:
        raise HarnessError("a BEIR dataset source needs a 'path' (the folder with corpus.jsonl)", where=source.name)
    split = str(source.params.get("split", "test"))
    empty = str(source.params.get("empty_documents", "error"))
    if empty not in ("error", "keep"):
        raise HarnessError(f"param empty_documents must be 'error' or 'keep', got {empty!r}", where=source.name)
    return read_beir(source.path, split, name=source.name, empty_documents=empty)  # type: ignore[arg-type]


def read_beir(
    folder: str | Path, split: str = "test", *, name: str | None = None, empty_documents: EmptyDocuments = "error"
) -> RetrievalSuite:
    """Read a BEIR folder: corpus.jsonl, queries.jsonl and qrels/<split>.tsv (see the module docstring)."""
    root = Path(folder)
    if not root.is_dir():
        raise HarnessError("BEIR folder does not exist", where=str(root), fix="check the dataset path")
    for required in ("corpus.jsonl", "queries.jsonl"):
        if not (root / required).is_file():
            raise HarnessError(
                f"not a BEIR folder: {required} is missing",
                where=str(root),
                fix="a BEIR folder holds corpus.jsonl, queries.jsonl and qrels/<split>.tsv",
            )
    qrels_file = root / "qrels" / f"{split}.tsv"
    if not qrels_file.is_file():
        found = sorted(p.stem for p in (root / "qrels").glob("*.tsv"))
        raise HarnessError(
            f"no qrels for split {split!r}",
            where=str(qrels_file),
            fix=f"choose one of the qrels splits {found}" if found else "add qrels/<split>.tsv",
        )
    corpus, empty = _read_beir_corpus(root / "corpus.jsonl")
    if empty and empty_documents == "error":
        shown = ", ".join(f"{doc_id!r} (line {line})" for doc_id, line in empty[:5])
        raise HarnessError(
            f"{len(empty)} empty document(s) (no text once title and text are joined): {shown}",
            where=str(root / "corpus.jsonl"),
            fix="remove them, or set the dataset param empty_documents: keep (they are then embedded as '')",
        )
    queries = _read_beir_queries(root / "queries.jsonl")
    qrels = _read_qrels(qrels_file)
    return make_suite(
        name or root.name,
        corpus,
        queries,
        qrels,
        qrels_split=split,
        description=f"BEIR folder {root} (qrels/{split}.tsv)",
        where=str(root),
        notes={"empty_documents": len(empty)},
    )


def _jsonl(file: Path) -> Iterable[tuple[int, dict[str, Any]]]:
    """(line number, object) for every non-blank line; invalid JSON names the line."""
    regular_file(file, "JSON lines file")  # a FIFO would block the read
    with file.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            if json_depth_exceeds(line, MAX_JSON_DEPTH):  # json.loads would recurse that deep
                raise HarnessError(
                    f"line {number} nests arrays or objects more than {MAX_JSON_DEPTH} levels deep",
                    where=str(file),
                    fix="one flat JSON object per line",
                )
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise HarnessError(f"line {number} is not valid JSON: {error.msg}", where=str(file)) from None
            if not isinstance(record, dict):
                raise HarnessError(f"line {number} is not a JSON object", where=str(file))
            yield number, record


def _record_id(record: dict[str, Any], number: int, file: Path) -> str:
    raw = record.get("_id")
    if raw is None or isinstance(raw, bool) or not isinstance(raw, str | int) or str(raw) == "":
        raise HarnessError(f"line {number} has no '_id' (a string)", where=str(file), fix="every line needs an _id")
    return str(raw)


def _check_new(doc_id: str, number: int, seen: dict[str, int], file: Path, what: str) -> None:
    if doc_id in seen:
        raise HarnessError(
            f"duplicate {what} id {doc_id!r} (lines {seen[doc_id]} and {number})",
            where=str(file),
            fix=f"every {what} needs a distinct _id",
        )
    seen[doc_id] = number


def _read_beir_corpus(file: Path) -> tuple[list[tuple[str, str]], list[tuple[str, int]]]:
    """(id, joined text) pairs and the (id, line) of every empty document."""
    corpus: list[tuple[str, str]] = []
    empty: list[tuple[str, int]] = []
    seen: dict[str, int] = {}
    for number, record in _jsonl(file):
        doc_id = _record_id(record, number, file)
        _check_new(doc_id, number, seen, file, "document")
        for key in ("title", "text"):
            if record.get(key) is not None and not isinstance(record[key], str):
                raise HarnessError(f"line {number}: '{key}' must be a string", where=str(file))
        text = join_title_text(record.get("title"), record.get("text"))
        if not text:
            empty.append((doc_id, number))
        corpus.append((doc_id, text))
    if not corpus:
        raise HarnessError("the corpus is empty", where=str(file), fix="add documents, one JSON object per line")
    return corpus, empty


def _read_beir_queries(file: Path) -> list[tuple[str, str]]:
    queries: list[tuple[str, str]] = []
    seen: dict[str, int] = {}
    for number, record in _jsonl(file):
        query_id = _record_id(record, number, file)
        _check_new(query_id, number, seen, file, "query")
        text = record.get("text")
        if not isinstance(text, str) or not text.strip():
            raise HarnessError(f"query {query_id!r} (line {number}) has no text", where=str(file))
        queries.append((query_id, text))
    return queries


def _read_qrels(file: Path) -> Qrels:
    """query id -> doc id -> integer grade from a BEIR qrels TSV (header line optional)."""
    qrels: Qrels = {}
    lines: dict[tuple[str, str], int] = {}
    with file.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            fields = line.rstrip("\r\n").split("\t")
            if len(fields) != 3:
                raise HarnessError(
                    f"line {number} has {len(fields)} tab-separated fields, expected 3 (query-id, corpus-id, score)",
                    where=str(file),
                )
            query_id, doc_id, raw = (f.strip() for f in fields)
            grade = _grade(raw)
            if grade is None:
                if number == 1:  # the header
                    continue
                raise HarnessError(f"line {number}: score {raw!r} is not an integer grade", where=str(file))
            previous = qrels.setdefault(query_id, {}).get(doc_id)
            if previous is not None and previous != grade:
                raise HarnessError(
                    f"query {query_id!r} judges doc {doc_id!r} twice with different grades "
                    f"(lines {lines[(query_id, doc_id)]} and {number})",
                    where=str(file),
                )
            qrels[query_id][doc_id] = grade
            lines[(query_id, doc_id)] = number
    return qrels


def _grade(raw: str) -> int | None:
    try:
        value = float(raw)
    except ValueError:
        return None
    return int(value) if value.is_integer() else None


# --------------------------------------------------------------------------- MTEB tasks


def mteb_suite(source: DatasetSource, task: Any = None) -> RetrievalSuite:
    """A DatasetSource of kind "mteb": `name` is the MTEB task name; params `split` (default: the
    task's first eval split) and `subset` (default: "default", else the task's first subset).
    `task` (an mteb task object) replaces the lookup by name (tests pass mteb's mock tasks)."""
    split = source.params.get("split")
    subset = source.params.get("subset")
    split_name = None if split is None else str(split)
    subset_name = None if subset is None else str(subset)
    if task is not None:
        return suite_from_mteb_task(task, split_name, subset_name)
    return read_mteb_task(source.name, split_name, subset_name)


def read_mteb_task(name: str, split: str | None = None, subset: str | None = None) -> RetrievalSuite:
    """The data of an MTEB retrieval task, read through mteb's task object from the local cache."""
    try:
        import mteb
    except ImportError as error:
        raise HarnessError("MTEB tasks need the mteb package", fix="pip install mteb") from error
    try:
        task = mteb.get_task(name)
    except (KeyError, ValueError) as error:
        raise HarnessError(
            f"unknown MTEB task {name!r}: {error}", fix="see mteb.get_tasks(task_types=['Retrieval'])"
        ) from None
    return suite_from_mteb_task(task, split, subset)


def suite_from_mteb_task(task: Any, split: str | None = None, subset: str | None = None) -> RetrievalSuite:
    """A suite from an mteb retrieval task object (its `load_data` reads the data; nothing is downloaded
    when HF_DATASETS_OFFLINE=1)."""
    from mteb.abstasks.retrieval import AbsTaskRetrieval

    name = task.metadata.name
    if not isinstance(task, AbsTaskRetrieval):
        raise HarnessError(f"MTEB task {name!r} is a {task.metadata.type} task, not a retrieval task")
    try:
        task.load_data()
        task.convert_v1_dataset_format_to_v2(num_proc=None)
    except Exception as error:  # datasets and the hub raise many types; all mean "not available here"
        raise HarnessError(
            f"the data of MTEB task {name!r} is not available locally ({type(error).__name__}: "
            f"{str(error).splitlines()[0] if str(error) else ''})",
            where=f"mteb task {name}",
            fix=f"download it once with network access (python -c \"import mteb; mteb.get_task('{name}').load_data()\" "
            "without HF_DATASETS_OFFLINE), or export it as a BEIR folder and use a source of kind beir",
        ) from None
    subsets = list(task.dataset)
    subset = subset or ("default" if "default" in subsets else subsets[0])
    if subset not in task.dataset:
        raise HarnessError(f"MTEB task {name!r} has no subset {subset!r}", fix=f"choose one of {subsets}")
    split = split or task.metadata.eval_splits[0]
    if split not in task.dataset[subset]:
        raise HarnessError(
            f"MTEB task {name!r} has no split {split!r}", fix=f"choose one of {list(task.dataset[subset])}"
        )
    data = task.dataset[subset][split]
    if data.get("top_ranked"):
        raise HarnessError(
            f"MTEB task {name!r} re-ranks given candidates (top_ranked); only full-corpus retrieval is supported"
        )
    where = f"mteb task {name} ({subset}/{split})"
    corpus, queries = data["corpus"], data["queries"]
    titles = corpus["title"] if "title" in corpus.column_names else [None] * len(corpus)
    doc_pairs = [(str(i), join_title_text(t, x)) for i, t, x in zip(corpus["id"], titles, corpus["text"], strict=True)]
    _check_unique([d for d, _ in doc_pairs], where, "document")
    query_texts = queries["text"]
    if "instruction" in queries.column_names or (len(queries) and not isinstance(query_texts[0], str)):
        raise HarnessError(f"MTEB task {name!r} has instructions or conversations as queries; they are not supported")
    query_pairs = [(str(i), str(t)) for i, t in zip(queries["id"], query_texts, strict=True)]
    _check_unique([q for q, _ in query_pairs], where, "query")
    qrels = {str(q): {str(d): int(g) for d, g in docs.items()} for q, docs in data["relevant_docs"].items()}
    empty = [doc_id for doc_id, text in doc_pairs if not text]
    return make_suite(
        name,
        doc_pairs,
        query_pairs,
        qrels,
        qrels_split=split,
        description=f"MTEB task {name} ({subset}/{split}), read through mteb {mteb_version()}",
        where=where,
        notes={"empty_documents": len(empty)},
    )


def mteb_version() -> str:
    from importlib.metadata import version

    return version("mteb")


def _check_unique(ids: list[str], where: str, what: str) -> None:
    repeated = [i for i, n in Counter(ids).items() if n > 1]
    if repeated:
        raise HarnessError(f"duplicate {what} ids {repeated[:5]}", where=where)


# --------------------------------------------------------------------------- the built-in suite

SIZES = {"full": (500, 2000), "small": (40, 160)}
MIN_SECTION_CHARS = 150
MIN_PASSAGE_CHARS = 100
PASSAGES_PER_SECTION = 3
MAX_SUMMARY_CHARS = 200
MIN_SUMMARY_WORDS = 4
_UNDERLINES = "*=-~^"
_SIGNATURE = re.compile(r"^[\w.]+\(|->")


@dataclass(frozen=True)
class _Section:
    """A language-reference section: its query and its relevant passages (first one first)."""

    key: str
    title: str
    parent: str
    passages: tuple[str, ...]


@dataclass(frozen=True)
class _Entry:
    """A standard-library object's docstring: `summary` (the query) and `document`."""

    name: str
    summary: str
    document: str
    body: str


def _fit_words(words: str, room: int) -> str:
    """The longest prefix of whole words of `words` with at most `room` characters ("" when none fits)."""
    if len(words) <= room:
        return words
    if room <= 0:
        return ""
    head = words[: room + 1]
    space = head.rfind(" ")
    return head[:space].rstrip() if space > 0 else ""


def pack_passages(paragraphs: Iterable[str], limit: int = MAX_DOC_CHARS) -> list[str]:
    """Paragraphs (whitespace collapsed) packed greedily into passages of at most `limit` characters.

    A paragraph that fits into the current passage joins it; one that fits into a passage of its own
    starts a new one; a longer paragraph first fills the current passage, then continues in new ones
    (cut at word boundaries; a single word longer than `limit` is cut hard). Examples:
    pack_passages(["a b", "c"], limit=5) -> ["a b c"]; pack_passages(["a b", "c d"], limit=4) -> ["a b", "c d"].
    """
    passages: list[str] = []
    current = ""
    for paragraph in paragraphs:
        words = collapse(paragraph)
        while words:
            room = limit - len(current) - 1 if current else limit
            if current and room < len(words) <= limit:
                passages.append(current)
                current = ""
                continue
            chunk = _fit_words(words, room) or ("" if current else cut_at_word(words, limit))
            if not chunk:
                passages.append(current)
                current = ""
                continue
            current = f"{current} {chunk}" if current else chunk
            words = words[len(chunk) :].strip()
    if current:
        passages.append(current)
    return passages


def _headings(lines: list[str]) -> list[tuple[int, int]]:
    """(line index of the title, level) of every underlined heading, in order."""
    found = []
    for i in range(1, len(lines)):
        line, title = lines[i], lines[i - 1].rstrip()
        if len(line) >= 3 and line[0] in _UNDERLINES and set(line) == {line[0]} and len(line) == len(title) and title:
            found.append((i - 1, _UNDERLINES.index(line[0])))
    return found


def reference_sections() -> list[_Section]:
    """The eligible language-reference sections of pydoc_data.topics, in topic order (see the module docstring)."""
    from pydoc_data.topics import topics

    sections: list[_Section] = []
    seen: set[tuple[str, str]] = set()
    for key in sorted(topics):
        lines = str(topics[key]).split("\n")
        heads = _headings(lines)
        stack: list[tuple[int, str]] = []
        for n, (start, level) in enumerate(heads):
            end = heads[n + 1][0] if n + 1 < len(heads) else len(lines)
            title = collapse(lines[start])
            stack = [(lvl, t) for lvl, t in stack if lvl < level]
            parent = stack[-1][1] if stack else ""
            stack.append((level, title))
            paragraphs = [p for p in "\n".join(lines[start + 2 : end]).split("\n\n") if p.strip()]
            body = collapse(" ".join(paragraphs))
            if len(body) < MIN_SECTION_CHARS or (title, body) in seen:
                continue
            seen.add((title, body))
            passages = pack_passages(paragraphs)[:PASSAGES_PER_SECTION]
            kept = passages[:1] + [p for p in passages[1:] if len(p) >= MIN_PASSAGE_CHARS]
            sections.append(_Section(f"{key}-{n}", title, parent, tuple(kept)))
    return sections


def docstring_entries() -> tuple[list[_Entry], list[str]]:
    """Docstring entries usable as documents, and the modules that could not be imported.

    Computed by harness/data/stdlib_docstrings.py in a fresh interpreter without site-packages
    (`python -I -S`): what a module holds must not depend on what this process has imported (torch,
    for one, registers objects with multiprocessing's modules), so the suite is the same everywhere.
    """
    return _docstring_entries()


@functools.cache
def _docstring_entries() -> tuple[list[_Entry], list[str]]:
    script = Path(stdlib_docstrings.__file__)
    done = subprocess.run([sys.executable, "-I", "-S", str(script)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise HarnessError(
            f"reading the standard library's docstrings failed: {done.stderr.strip().splitlines()[-1:]}",
            where=str(script),
        )
    payload = json.loads(done.stdout)
    return [_Entry(**entry) for entry in payload["entries"]], list(payload["skipped"])


def _query_worthy(entry: _Entry, summaries: Counter[str]) -> bool:
    summary = entry.summary
    return (
        len(summary.split()) >= MIN_SUMMARY_WORDS
        and len(summary) <= MAX_SUMMARY_CHARS
        and not _SIGNATURE.search(summary)
        and summaries[summary.casefold()] == 1
    )


def _section_queries(sections: list[_Section]) -> list[str]:
    """The query text of each section: its title, qualified by its parent when the title is shared."""
    titles = Counter(s.title.casefold() for s in sections)
    return [
        f"{s.title} ({s.parent or s.key.rsplit('-', 1)[0]})" if titles[s.title.casefold()] > 1 else s.title
        for s in sections
    ]


def pydocs_suite(seed: int = 0, size: str = "full") -> RetrievalSuite:
    """The built-in offline retrieval suite (construction in the module docstring)."""
    if size not in SIZES:
        raise HarnessError(f"unknown pydocs size {size!r}", fix="use one of " + ", ".join(SIZES))
    n_queries, n_docs = SIZES[size]
    rng = np.random.default_rng(seed)
    sections = reference_sections()
    section_texts = _section_queries(sections)
    entries, skipped = docstring_entries()
    summaries = Counter(e.summary.casefold() for e in entries)
    worthy = [e for e in entries if _query_worthy(e, summaries)]

    n_sections = min(len(sections), n_queries // 3)
    chosen_sections = [int(i) for i in rng.permutation(len(sections))[:n_sections]]
    n_api = n_queries - n_sections
    if len(worthy) < n_api:
        raise HarnessError(
            f"this Python has only {len(worthy)} usable docstrings, {n_api} are needed for size {size!r}"
        )
    chosen_entries = [worthy[int(i)] for i in rng.permutation(len(worthy))[:n_api]]

    queries: list[tuple[str, str]] = []
    qrels: Qrels = {}
    docs: dict[str, str] = {}
    for i in chosen_sections:
        section, qid = sections[i], f"q-ref-{sections[i].key}"
        queries.append((qid, section_texts[i]))
        qrels[qid] = {}
        for j, passage in enumerate(section.passages):
            docs[f"ref-{section.key}-p{j}"] = passage
            qrels[qid][f"ref-{section.key}-p{j}"] = 2 if j == 0 else 1
    for entry in chosen_entries:
        queries.append((f"q-api-{entry.name}", entry.summary))
        qrels[f"q-api-{entry.name}"] = {f"api-{entry.name}": 1}
        docs[f"api-{entry.name}"] = entry.document
    # Distractors: docstrings that are not queries, then (small size) passages of unused sections.
    taken = set(chosen_sections)
    pool = [(f"api-{e.name}", e.document) for e in entries if f"api-{e.name}" not in docs]
    pool += [
        (f"ref-{s.key}-p{j}", passage)
        for i, s in enumerate(sections)
        if i not in taken
        for j, passage in enumerate(s.passages)
    ]
    needed = n_docs - len(docs)
    if needed < 0 or len(pool) < needed:
        raise HarnessError(f"cannot build pydocs size {size!r}: {len(docs)} judged documents, {len(pool)} distractors")
    for k in rng.permutation(len(pool))[:needed]:
        doc_id, text = pool[int(k)]
        docs[doc_id] = text
    order = rng.permutation(len(docs))
    ids = list(docs)
    corpus = [(ids[int(k)], docs[ids[int(k)]]) for k in order]
    version = platform.python_version()
    return make_suite(
        "pydocs",
        corpus,
        queries,
        qrels,
        qrels_split="test",
        description=(
            f"pydocs ({size}, seed {seed}): {len(queries)} queries ({n_sections} language-reference section titles, "
            f"{n_api} standard-library docstring summaries) over {len(corpus)} passages of Python {version}'s "
            "reference docs and docstrings"
        ),
        where="builtin dataset pydocs",
        notes={"python_version": version, "skipped_modules": skipped, "empty_documents": 0},
    )
