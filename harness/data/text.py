"""Plain-text documents: the split type of language-model tasks on a user's own text.

A split is either one `<split>.txt` file, whose documents are separated by blank lines (a line
that is empty or holds only whitespace), or a `<split>/` folder of `*.txt` files, one document per
file. Files must be UTF-8 (a leading byte-order mark is dropped); line endings become "\\n" and each
document is stripped of the whitespace around it, its inner newlines kept. Ids are `<split>-<i>`
(documents of a file, counted from 0) or `<split>/<file name>` (one file per document).
A file is capped at MAX_ARRAY_BYTES (harness.untrusted) before it is read.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from harness.data import checked_positions
from harness.errors import HarnessError

#: one or more blank lines (empty or whitespace only) separate the documents of a .txt file
BLANK_LINES = re.compile(r"\n[^\S\n]*\n\s*")


@dataclass(frozen=True)
class TextDocument:
    """One document: its id and its text (the records `DocumentSplit` iterates over)."""

    id: str
    text: str


@dataclass(frozen=True)
class DocumentSplit:
    """Unlabelled documents `texts` (n) with unique `ids` (n), for language-model tasks (lm_loss, flatness)."""

    name: str
    texts: list[str]
    ids: list[str]
    source: str = field(default="", compare=False)
    fingerprint: str = field(init=False)
    has_inputs = True

    def __post_init__(self) -> None:
        where = self.source or f"split {self.name}"
        if len(self.texts) != len(self.ids):
            raise HarnessError(f"split {self.name!r} has {len(self.texts)} texts and {len(self.ids)} ids", where=where)
        if len(set(self.ids)) != len(self.ids):
            raise HarnessError(
                f"split {self.name!r} has duplicate document ids", where=where, fix="one id per document"
            )
        digest = hashlib.sha256(b"documents\x00" + self.name.encode())
        digest.update("\x00".join(self.texts).encode())
        digest.update(b"\x01" + "\x00".join(self.ids).encode())
        object.__setattr__(self, "fingerprint", digest.hexdigest())

    def __len__(self) -> int:
        return len(self.ids)

    def __iter__(self) -> Iterator[TextDocument]:
        return (TextDocument(i, t) for i, t in zip(self.ids, self.texts, strict=True))

    def head(self, n: int) -> DocumentSplit:
        return DocumentSplit(self.name, self.texts[:n], self.ids[:n], self.source)

    def take(self, indices: Sequence[int]) -> DocumentSplit:
        """The documents at `indices`, in that order."""
        rows = checked_positions(indices, len(self), self.name)
        return DocumentSplit(self.name, [self.texts[i] for i in rows], [self.ids[i] for i in rows], self.source)


def read_text(file: Path) -> str:
    """The UTF-8 text of `file` (size capped, BOM dropped, newlines normalised); anything else is a HarnessError."""
    from harness import untrusted

    size = untrusted.regular_file(file, "text file")
    if size > untrusted.MAX_ARRAY_BYTES:
        raise HarnessError(
            f"the text file has {size:,} bytes, over the {untrusted.MAX_ARRAY_BYTES:,} bytes cap (MAX_ARRAY_BYTES)",
            where=str(file),
            fix="split it into several files, or raise HARNESS_MAX_ARRAY_BYTES",
        )
    raw = file.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise HarnessError(
            f"not UTF-8 text: byte 0x{raw[error.start]:02x} at offset {error.start} (line {line}) cannot be decoded",
            where=str(file),
            fix="re-encode the file as UTF-8 (e.g. `iconv -f latin1 -t utf-8 in.txt > out.txt`)",
        ) from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def documents_in_file(file: Path, split: str) -> DocumentSplit:
    """The documents of one .txt file, separated by blank lines."""
    parts = [part.strip() for part in BLANK_LINES.split(read_text(file))]
    texts = [part for part in parts if part]
    return DocumentSplit(split, texts, [f"{split}-{i}" for i in range(len(texts))], str(file))


def documents_in_folder(folder: Path, split: str) -> DocumentSplit:
    """One document per .txt file of `folder` (sorted by name); an empty file is an error."""
    files = sorted(f for f in folder.iterdir() if f.suffix == ".txt" and not f.name.startswith("."))
    texts = []
    for file in files:
        text = read_text(file).strip()
        if not text:
            raise HarnessError(
                "the document is empty", where=str(file), fix="remove the file or put the document's text in it"
            )
        texts.append(text)
    return DocumentSplit(split, texts, [f"{split}/{f.name}" for f in files], str(folder))


def split_texts(split: object, task: str = "") -> list[str]:
    """The texts of a split a language model reads: documents, a text-classification split's texts,
    or the synthetic language's records with a `.text`; anything else is a HarnessError."""
    texts = getattr(split, "texts", None)
    if texts is not None:
        return list(texts)
    records = list(split) if hasattr(split, "__iter__") else []
    if records and all(isinstance(getattr(record, "text", None), str) for record in records):
        return [record.text for record in records]
    name = getattr(split, "name", "?")
    raise HarnessError(
        f"{task + ' reads' if task else 'a language model reads'} text, but split {name!r} holds "
        f"{'labels only' if not getattr(split, 'has_inputs', True) else 'no text'}",
        where=getattr(split, "source", "") or f"split {name}",
        fix=f"give the split as plain text: {name}.txt (documents separated by blank lines) or {name}/*.txt",
    )
