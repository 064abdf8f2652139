"""Submission files: write, read (upgrading older schema versions), find.

Layout: <out>/<org>__<model>/<submission-id>.json plus <submission-id>.parquet holding the
per-sample outputs (columns task, split, sample_id, label, values; the meaning of `values` per
task is stored in the parquet metadata under b"harness.fields").
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import ValidationError

from harness.cache import atomic_write
from harness.errors import HarnessError
from harness.schema import SCHEMA_VERSION, Submission
from harness.tasks.base import Samples
from harness.untrusted import load_json_text

MAX_SUBMISSION_BYTES = 5_000_000


def submission_folder(out: Path, submission: Submission) -> Path:
    return out / f"{submission.model.org}__{submission.model.name}"


def samples_table(samples: Sequence[tuple[str, Samples]]) -> pa.Table:
    """One long table of every task's per-sample outputs."""
    columns: dict[str, list[Any]] = {"task": [], "split": [], "sample_id": [], "label": [], "values": []}
    fields: dict[str, list[str]] = {}
    for task, block in samples:
        n = len(block.ids)
        columns["task"] += [task] * n
        columns["split"] += [block.split] * n
        columns["sample_id"] += list(block.ids)
        columns["label"] += block.labels.tolist()
        columns["values"] += list(block.values)
        fields[f"{task}/{block.split}"] = block.fields
    schema = pa.schema(
        [
            ("task", pa.string()),
            ("split", pa.string()),
            ("sample_id", pa.string()),
            ("label", pa.int64()),
            ("values", pa.list_(pa.float64())),
        ],
        metadata={b"harness.fields": json.dumps(fields).encode()},
    )
    return pa.Table.from_pydict(columns, schema=schema)


def write_submission(out: Path, submission: Submission, samples: Sequence[tuple[str, Samples]]) -> Path:
    """Write the JSON (and parquet of samples) atomically; returns the JSON path."""
    folder = submission_folder(out, submission)
    if samples:
        buffer = io.BytesIO()
        pq.write_table(samples_table(samples), buffer)
        atomic_write(folder / f"{submission.submission_id}.parquet", buffer.getvalue())
    path = folder / f"{submission.submission_id}.json"
    atomic_write(path, (submission.model_dump_json(indent=2) + "\n").encode())
    return path


def rewrite_upgraded(valid: Sequence[tuple[Submission, str]]) -> list[Path]:
    """Write each valid submission read from a file of an older schema back to that file in the current
    schema, with the numbers re-scoring gave it (`harness validate --upgrade`; harness/validation.py
    replaces an old file's intervals, units and new metrics after its point values agreed). The
    per-sample parquet is unchanged. Returns the files rewritten."""
    written = []
    for submission, file in valid:
        path = Path(file)
        raw = load_json_text(path.read_bytes(), file, max_bytes=MAX_SUBMISSION_BYTES)
        if isinstance(raw, dict) and raw.get("schema_version", SCHEMA_VERSION) < SCHEMA_VERSION:
            atomic_write(path, (submission.model_dump_json(indent=2) + "\n").encode())
            written.append(path)
    return written


def commit_order(loaded: Sequence[tuple[Submission, str]]) -> list[tuple[Submission, str]]:
    """Submissions in the order git first committed their files (then files git does not know, by path).

    This is the store's ingest order, which decides a model's latest run and card: a contributor can
    write any `created_at`, but cannot commit before the files already on main."""
    import subprocess

    by_path = sorted(loaded, key=lambda item: item[1])
    if not by_path:
        return []
    folders = sorted({str(Path(file).resolve().parent.parent) for _, file in by_path})
    first_commit: dict[str, int] = {}
    for folder in folders:
        try:
            top = subprocess.run(
                ["git", "-C", folder, "rev-parse", "--show-toplevel"], capture_output=True, text=True, check=True
            ).stdout.strip()
            log = subprocess.run(
                ["git", "-C", top, "log", "--reverse", "--format=%x00", "--name-only", "--diff-filter=A",
                 "--no-renames", "--", str(Path(folder).relative_to(top))],
                capture_output=True, text=True, check=True,
            ).stdout  # fmt: skip
        except (OSError, subprocess.CalledProcessError, ValueError):
            continue  # not in a git checkout: path order
        commit = 0
        for line in log.splitlines():
            if line == "\x00":
                commit += 1
            elif line:
                first_commit.setdefault(str(Path(top, line)), commit)
    unknown = len(first_commit) + 1
    return sorted(by_path, key=lambda item: first_commit.get(str(Path(item[1]).resolve()), unknown))


def upgrade(raw: dict[str, Any]) -> dict[str, Any]:
    """Bring a submission dict of an older schema version to the current one (see harness/schema.py)."""
    raw = dict(raw)
    if raw.get("schema_version") == 1:
        if "limit" in raw:
            raw["sample_limit"] = raw.pop("limit")
        raw["schema_version"] = 2
    if raw.get("schema_version") == 2:
        raw["schema_version"] = 3  # 3 added the optional provenance.environment
    if raw.get("schema_version") == 3:
        raw["schema_version"] = 4  # 4: the numbers are re-scored by the current code (harness.validation)
    if raw.get("schema_version") == 4:
        raw["schema_version"] = 5  # 5: the same; a proportion's interval changed at the edges (re-scored)
    if raw.get("schema_version") == 5:
        raw["schema_version"] = 6  # 6: the same; AUROC and ece intervals changed (re-scored)
    if raw.get("schema_version") == 6:
        raw["schema_version"] = 7  # 7: the same; ece_sq_debiased's interval changed (re-scored)
    if raw.get("schema_version") == 7:
        raw["schema_version"] = 8  # 8: the same; an AUROC's interval changed towards the bound (re-scored)
    return raw


def read_submission(path: Path) -> Submission:
    """Parse and validate one submission file; every problem is a HarnessError naming file and field."""
    if path.stat().st_size > MAX_SUBMISSION_BYTES:
        raise HarnessError(
            f"file is larger than the {MAX_SUBMISSION_BYTES:,} byte cap",
            where=str(path),
            fix="per-sample outputs belong in the parquet file",
        )
    raw = load_json_text(path.read_bytes(), str(path), max_bytes=MAX_SUBMISSION_BYTES)  # nesting capped too
    if not isinstance(raw, dict):
        raise HarnessError("a submission must be a JSON object", where=str(path))
    version = raw.get("schema_version")
    if not isinstance(version, int) or not 1 <= version <= SCHEMA_VERSION:
        raise HarnessError(
            f"field 'schema_version': unsupported version {version!r}",
            where=str(path),
            fix=f"this harness reads versions 1 to {SCHEMA_VERSION}; upgrade harness or fix the file",
        )
    try:
        return Submission.model_validate(upgrade(raw))
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise HarnessError(
            f"field {field!r}: {first['msg']}", where=str(path), fix="see docs/submission-format.md"
        ) from None


def find_submissions(paths: Sequence[Path]) -> list[Path]:
    """Every submission JSON under the given files and folders, sorted."""
    found: list[Path] = []
    for path in paths:
        if not path.exists():
            raise HarnessError("path does not exist", where=str(path))
        found += sorted(path.rglob("*.json")) if path.is_dir() else [path]
    return found
