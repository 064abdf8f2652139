"""The DuckDB store (results.duckdb): schema, ingest, and the queries the CLI and the app use.

This is the one module that talks to DuckDB. The store is derived data: `harness ingest
submissions/ --rebuild` recreates it from submission files alone, and ingesting is idempotent
(a submission's rows are replaced by its id) and transactional (a batch ingests whole or not at all).

Tables
- models:      one row per model id (org/name) with the card of its newest submission
- submissions: one row per submission file (provenance, seed, limit, ranked)
- runs:        one row per (submission, task): spec hash, main metric, parameters, artifacts
- metrics:     one row per (run, metric): value, direction, CI, sample count
- metric_info: direction and convention of every metric name seen
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from harness.errors import HarnessError
from harness.metrics import metric_info
from harness.registry import METRICS
from harness.schema import Submission

STORE_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS models (
    model_id TEXT PRIMARY KEY, org TEXT, name TEXT, family TEXT, kind TEXT, n_parameters BIGINT,
    train_loss_nats DOUBLE, pretrain_loss_nats DOUBLE, reference TEXT, tags TEXT[],
    card JSON, card_created_at TEXT
);
CREATE TABLE IF NOT EXISTS submissions (
    submission_id TEXT PRIMARY KEY, model_id TEXT, checkpoint_hash TEXT, seed BIGINT, sample_limit BIGINT,
    ranked BOOLEAN, source TEXT, harness_version TEXT, git_commit TEXT, created_at TEXT,
    duration_s DOUBLE, provenance JSON, file TEXT
);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, submission_id TEXT, model_id TEXT, task TEXT, task_version INTEGER,
    spec_hash TEXT, adapter TEXT, main_metric TEXT, ranked BOOLEAN, created_at TEXT, duration_s DOUBLE,
    dataset_fingerprints JSON, parameters JSON, artifacts JSON
);
CREATE TABLE IF NOT EXISTS metrics (
    run_id TEXT, metric TEXT, value DOUBLE, higher_is_better BOOLEAN, ci_low DOUBLE, ci_high DOUBLE,
    stderr DOUBLE, ci_method TEXT, n BIGINT, PRIMARY KEY (run_id, metric)
);
CREATE TABLE IF NOT EXISTS metric_info (metric TEXT PRIMARY KEY, higher_is_better BOOLEAN, convention TEXT);
"""

TABLES = ("meta", "models", "submissions", "runs", "metrics", "metric_info")


class Store:
    """A connection to one results.duckdb file. Use `open_store` to get one."""

    def __init__(self, connection: duckdb.DuckDBPyConnection, path: Path, read_only: bool) -> None:
        self.connection = connection
        self.path = path
        self.read_only = read_only

    # ------------------------------------------------------------------ writing

    def ingest(self, submissions: Sequence[tuple[Submission, str | None]]) -> int:
        """Insert or replace each (submission, file) in one transaction; returns the runs written."""
        if self.read_only:
            raise HarnessError("the store is open read-only", where=str(self.path))
        db = self.connection
        db.begin()
        try:
            written = sum(self._ingest_one(submission, file) for submission, file in submissions)
            db.commit()
        except BaseException:
            db.rollback()
            raise
        return written

    def _ingest_one(self, sub: Submission, file: str | None) -> int:
        db = self.connection
        card = sub.model
        created = sub.provenance.created_at
        existing = db.execute("SELECT card_created_at FROM models WHERE model_id = ?", [card.model_id]).fetchone()
        if existing is None or (existing[0] or "") <= created:
            db.execute("DELETE FROM models WHERE model_id = ?", [card.model_id])
            db.execute(
                "INSERT INTO models VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    card.model_id, card.org, card.name, card.family, card.kind, card.n_parameters,
                    card.train_loss_nats, card.pretrain_loss_nats, card.reference, card.tags,
                    card.model_dump_json(), created,
                ],
            )  # fmt: skip
        old_runs = [
            r[0] for r in db.execute("SELECT run_id FROM runs WHERE submission_id = ?", [sub.submission_id]).fetchall()
        ]
        for run_id in old_runs:
            db.execute("DELETE FROM metrics WHERE run_id = ?", [run_id])
        db.execute("DELETE FROM runs WHERE submission_id = ?", [sub.submission_id])
        db.execute("DELETE FROM submissions WHERE submission_id = ?", [sub.submission_id])
        prov = sub.provenance
        db.execute(
            "INSERT INTO submissions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                sub.submission_id, card.model_id, sub.checkpoint_hash, sub.seed, sub.sample_limit, sub.ranked,
                prov.source, prov.harness_version, prov.git_commit, created, prov.duration_s,
                prov.model_dump_json(), file,
            ],
        )  # fmt: skip
        for run in sub.results:
            db.execute(
                "INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    run.run_id, sub.submission_id, card.model_id, run.task, run.task_version, run.spec_hash,
                    run.adapter, run.main_metric, sub.ranked, created, run.duration_s,
                    json.dumps(run.dataset_fingerprints), json.dumps(run.parameters), json.dumps(run.artifacts),
                ],
            )  # fmt: skip
            db.executemany(
                "INSERT INTO metrics VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    [run.run_id, m.name, m.value, m.higher_is_better, m.ci_low, m.ci_high, m.stderr, m.ci_method, m.n]
                    for m in run.metrics
                ],
            )
            for m in run.metrics:
                base = m.name.split(".", 1)[0]
                convention = metric_info(m.name).convention if base in METRICS else ""
                db.execute(
                    "INSERT OR REPLACE INTO metric_info VALUES (?, ?, ?)", [m.name, m.higher_is_better, convention]
                )
        return len(sub.results)

    # ------------------------------------------------------------------ queries

    def tasks(self) -> list[str]:
        return [r[0] for r in self.connection.execute("SELECT DISTINCT task FROM runs ORDER BY task").fetchall()]

    def leaderboard(self, task: str, metric: str | None = None) -> pd.DataFrame:
        """Latest ranked run per model on `task`, ranked by `metric` (default: the task's main metric).

        Runs made with --limit are never ranked. Ties in value share a rank.
        """
        query = """
        WITH latest AS (
            SELECT r.*, row_number() OVER (
                PARTITION BY r.model_id ORDER BY r.created_at DESC, r.run_id DESC) AS recency
            FROM runs r WHERE r.ranked AND r.task = $task
        )
        SELECT
            rank() OVER (ORDER BY CASE WHEN m.higher_is_better THEN -m.value ELSE m.value END) AS rank,
            l.model_id, md.family, m.metric, m.value, m.ci_low, m.ci_high, m.n, m.higher_is_better,
            md.n_parameters, l.run_id, l.created_at
        FROM latest l
        JOIN metrics m ON m.run_id = l.run_id AND m.metric = coalesce($metric, l.main_metric)
        JOIN models md ON md.model_id = l.model_id
        WHERE l.recency = 1
        ORDER BY rank, l.model_id
        """
        return self.connection.execute(query, {"task": task, "metric": metric}).df()

    def run_metrics(self, run_id: str) -> pd.DataFrame:
        return self.connection.execute(
            "SELECT metric, value, ci_low, ci_high, n, higher_is_better FROM metrics WHERE run_id = ? ORDER BY metric",
            [run_id],
        ).df()

    def dump(self) -> dict[str, list[tuple[Any, ...]]]:
        """Every table's rows in a canonical order (for comparing two stores)."""
        out = {}
        for table in TABLES:
            columns = [r[0] for r in self.connection.execute(f"DESCRIBE {table}").fetchall()]
            order = ", ".join(f'"{c}"' for c in columns)
            out[table] = self.connection.execute(f"SELECT * FROM {table} ORDER BY {order}").fetchall()
        return out

    def close(self) -> None:
        self.connection.close()


@contextmanager
def open_store(path: str | Path, *, read_only: bool = False) -> Iterator[Store]:
    """Open (and, for writing, create) the store at `path`; a file that is not DuckDB is a HarnessError."""
    path = Path(path)
    if read_only and not path.exists():
        raise HarnessError(
            "store file does not exist", where=str(path), fix="run `harness demo` or `harness ingest` first"
        )
    if path.exists() and path.is_dir():
        raise HarnessError("store path is a folder, not a file", where=str(path), fix="pass a .duckdb file path")
    if path.exists() and not is_duckdb_file(path):
        raise HarnessError(
            "not a valid DuckDB database file",
            where=str(path),
            fix="pass a DuckDB file written by harness (or a new path); `harness ingest --rebuild` recreates one",
        )
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    try:
        # Never let DuckDB fetch extensions (it would, for example, to read a SQLite file).
        config: dict[str, str | bool | int | float | list[str]] = {
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
        }
        connection = duckdb.connect(str(path), read_only=read_only, config=config)
    except duckdb.Error as error:
        raise HarnessError(
            f"cannot open the results store: {str(error).splitlines()[0]}",
            where=str(path),
            fix="pass a DuckDB file written by harness (or a new path); `harness ingest --rebuild` recreates one",
        ) from None
    store = Store(connection, path, read_only)
    try:
        if not read_only:
            connection.execute(SCHEMA)
            connection.execute("INSERT OR REPLACE INTO meta VALUES ('store_version', ?)", [str(STORE_VERSION)])
        yield store
    finally:
        store.close()


def is_duckdb_file(path: Path) -> bool:
    """True for DuckDB's file format (magic bytes "DUCK" at offset 8) or an empty file."""
    with path.open("rb") as handle:
        header = handle.read(12)
    return len(header) == 0 or header[8:12] == b"DUCK"


def check_store(path: str | Path) -> None:
    """Fail early (before any evaluation) if `path` cannot be used as a store; writes nothing."""
    path = Path(path)
    if path.is_dir():
        raise HarnessError("store path is a folder, not a file", where=str(path), fix="pass a .duckdb file path")
    if path.exists():
        with open_store(path, read_only=True):
            pass


def rebuild(path: Path, submissions: Sequence[tuple[Submission, str | None]]) -> int:
    """Build a fresh store from `submissions` beside `path`, then atomically replace `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".building", dir=path.parent)
    os.close(fd)
    os.unlink(tmp)  # DuckDB must create the file itself
    try:
        with open_store(tmp) as store:
            written = store.ingest(submissions)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
        Path(tmp + ".wal").unlink(missing_ok=True)
    return written
