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
- verifications: `harness verify --store` outcomes (a run whose content they checked is "verified")

Order: "newest" means last ingested. Each submission gets the next `seq` when it is first ingested
(a re-ingested id keeps its own), and `ingest submissions/ --rebuild` ingests files in the order
git first committed them (`harness.submissions.commit_order`). A free-text `created_at` never
decides which run is a model's latest or whose card the model shows.

Trust: every run has a `tier` (harness/trust.py): "re-scored" or "self-reported" from ingest,
"verified" when a verification of the same content is recorded. Boards show the ranked tiers
(`RANKED_TIERS`) unless asked for others; the tier is a column of every board.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import numpy as np
import pandas as pd
from filelock import FileLock, Timeout

from harness.errors import HarnessError
from harness.metrics import is_diagnostic, metric_info
from harness.registry import METRICS
from harness.schema import ModelCard, RunResult, Submission, canonical_hash
from harness.trust import RANKED_TIERS, Tier

if TYPE_CHECKING:
    from harness.ladder import LadderBoard

STORE_VERSION = 3

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS models (
    model_id TEXT PRIMARY KEY, org TEXT, name TEXT, family TEXT, kind TEXT, n_parameters BIGINT,
    train_loss_nats DOUBLE, pretrain_loss_nats DOUBLE, reference TEXT, tags TEXT[],
    card JSON, card_created_at TEXT, card_seq BIGINT
);
CREATE TABLE IF NOT EXISTS submissions (
    submission_id TEXT PRIMARY KEY, model_id TEXT, checkpoint_hash TEXT, seed BIGINT, sample_limit BIGINT,
    ranked BOOLEAN, source TEXT, harness_version TEXT, git_commit TEXT, created_at TEXT,
    duration_s DOUBLE, provenance JSON, file TEXT, seq BIGINT, content_hash TEXT
);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, submission_id TEXT, model_id TEXT, task TEXT, task_version INTEGER,
    spec_hash TEXT, adapter TEXT, main_metric TEXT, ranked BOOLEAN, created_at TEXT, duration_s DOUBLE,
    dataset_fingerprints JSON, parameters JSON, artifacts JSON, seq BIGINT, claimed_tier TEXT
);
CREATE TABLE IF NOT EXISTS metrics (
    run_id TEXT, metric TEXT, value DOUBLE, higher_is_better BOOLEAN, ci_low DOUBLE, ci_high DOUBLE,
    stderr DOUBLE, ci_method TEXT, n BIGINT, unit TEXT, PRIMARY KEY (run_id, metric)
);
CREATE TABLE IF NOT EXISTS metric_info (metric TEXT PRIMARY KEY, higher_is_better BOOLEAN, convention TEXT);
CREATE TABLE IF NOT EXISTS verifications (
    run_id TEXT, content_hash TEXT, ok BOOLEAN, sample_seed TEXT, samples BIGINT, detail TEXT,
    harness_version TEXT, checked_at TEXT
);
"""

# Store version 1 -> 2: ingest order (seq), tiers and content hashes; 2 -> 3: the unit of each metric's n. Old rows keep their created_at
# order and get the tier their source allows; `harness ingest --rebuild` recomputes everything.
MIGRATIONS = """
ALTER TABLE models ADD COLUMN IF NOT EXISTS card_seq BIGINT;
ALTER TABLE submissions ADD COLUMN IF NOT EXISTS seq BIGINT;
ALTER TABLE submissions ADD COLUMN IF NOT EXISTS content_hash TEXT;
ALTER TABLE runs ADD COLUMN IF NOT EXISTS seq BIGINT;
ALTER TABLE runs ADD COLUMN IF NOT EXISTS claimed_tier TEXT;
ALTER TABLE metrics ADD COLUMN IF NOT EXISTS unit TEXT;
UPDATE submissions SET seq = o.seq FROM (
    SELECT submission_id, row_number() OVER (ORDER BY created_at, submission_id) AS seq FROM submissions
) o WHERE submissions.seq IS NULL AND o.submission_id = submissions.submission_id;
UPDATE runs SET seq = s.seq, claimed_tier = CASE WHEN s.source = 'harness' THEN 're-scored' ELSE 'self-reported' END
FROM submissions s WHERE runs.seq IS NULL AND s.submission_id = runs.submission_id;
UPDATE models SET card_seq = (SELECT max(s.seq) FROM submissions s WHERE s.model_id = models.model_id)
WHERE card_seq IS NULL;
"""

# A re-scored run is "verified" when a passing verification of it matches its submission's content hash.
# (A join on the set of such runs, not a correlated EXISTS per run: 15x faster at 200,000 runs.)
VIEWS = """
CREATE OR REPLACE VIEW runs_tiered AS
SELECT r.*, CASE
    WHEN r.claimed_tier = 're-scored' AND checked.run_id IS NOT NULL THEN 'verified'
    ELSE r.claimed_tier END AS tier
FROM runs r LEFT JOIN (
    SELECT DISTINCT v.run_id FROM verifications v
    JOIN runs vr ON vr.run_id = v.run_id
    JOIN submissions s ON s.submission_id = vr.submission_id
    WHERE v.ok AND v.content_hash = s.content_hash
) checked ON checked.run_id = r.run_id;
"""

TABLES = ("meta", "models", "submissions", "runs", "metrics", "metric_info", "verifications")


def board_card(sub: Submission) -> ModelCard:
    """The card a submission's runs are stored under: the model's own, or, for runs in another dtype
    than float32, the same card named "<name>@<dtype>", so a bfloat16 run sits beside the float32
    one on every board instead of replacing it."""
    dtype = sub.settings.get("dtype", "float32")
    if dtype == "float32":
        return sub.model
    return sub.model.model_copy(update={"name": f"{sub.model.name}@{dtype}"})


TierOf = Callable[[Submission, RunResult], Tier]


def default_tier(sub: Submission, run: RunResult) -> Tier:
    """The tier a run claims when nothing validated it here (see `harness.validation.claimed_tier`)."""
    from harness.validation import claimed_tier, current_spec

    try:
        spec = current_spec(run)
    except HarnessError:
        spec = None
    return claimed_tier(sub, run, spec)


#: rows per multi-row INSERT in `_insert_rows` (bounded statement size)
_ROWS_PER_INSERT = 500


def _insert_rows(db: duckdb.DuckDBPyConnection, insert: str, rows: Sequence[Sequence[object]]) -> None:
    """`insert` (e.g. "INSERT INTO metrics VALUES") with every row, as multi-row statements.

    One statement per 500 rows rather than one per row: DuckDB's executemany runs a statement per row,
    about a millisecond each, which made ingest cost 0.3 s per submission (bench/scale.py's driver)."""
    for start in range(0, len(rows), _ROWS_PER_INSERT):
        batch = rows[start : start + _ROWS_PER_INSERT]
        placeholders = ", ".join("(" + ", ".join("?" * len(row)) + ")" for row in batch)
        db.execute(f"{insert} {placeholders}", [value for row in batch for value in row])


def content_hash(sub: Submission) -> str:
    """What a verification is tied to: the submission's content (a changed file needs verifying again)."""
    return canonical_hash(sub.model_dump(mode="json"))


class Store:
    """A connection to one results.duckdb file. Use `open_store` to get one."""

    def __init__(self, connection: duckdb.DuckDBPyConnection, path: Path, read_only: bool) -> None:
        self.connection = connection
        self.path = path
        self.read_only = read_only

    # ------------------------------------------------------------------ writing

    def ingest(self, submissions: Sequence[tuple[Submission, str | None]], tiers: TierOf | None = None) -> int:
        """Insert or replace each (submission, file) in one transaction, in order; returns the runs written.

        `tiers` gives each run's tier (default `trust.claimed_tier`: callers that validated and
        re-scored the files pass what validation established)."""
        if self.read_only:
            raise HarnessError("the store is open read-only", where=str(self.path))
        db = self.connection
        tier_of = tiers or default_tier
        db.begin()
        try:
            written = sum(self._ingest_one(submission, file, tier_of) for submission, file in submissions)
            db.commit()
        except duckdb.Error as error:
            db.rollback()
            raise HarnessError(
                f"the store could not be written ({str(error).splitlines()[0]}); nothing of this batch was stored",
                where=str(self.path),
                fix="free disk space or check the store's permissions; earlier results are intact",
            ) from None
        except BaseException:
            db.rollback()
            raise
        return written

    def _next_seq(self, submission_id: str) -> int:
        """The submission's own sequence number when it is already stored, else the next one."""
        db = self.connection
        row = db.execute("SELECT seq FROM submissions WHERE submission_id = ?", [submission_id]).fetchone()
        if row is not None and row[0] is not None:
            return int(row[0])
        top = db.execute("SELECT coalesce(max(seq), 0) FROM submissions").fetchone()
        return int(top[0] if top else 0) + 1

    def _ingest_one(self, sub: Submission, file: str | None, tier_of: TierOf) -> int:
        db = self.connection
        card = board_card(sub)
        created = sub.provenance.created_at
        seq = self._next_seq(sub.submission_id)
        existing = db.execute("SELECT card_seq FROM models WHERE model_id = ?", [card.model_id]).fetchone()
        if existing is None or (existing[0] or 0) <= seq:
            db.execute("DELETE FROM models WHERE model_id = ?", [card.model_id])
            db.execute(
                "INSERT INTO models VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    card.model_id, card.org, card.name, card.family, card.kind, card.n_parameters,
                    card.train_loss_nats, card.pretrain_loss_nats, card.reference, card.tags,
                    card.model_dump_json(), created, seq,
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
            "INSERT INTO submissions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                sub.submission_id, card.model_id, sub.checkpoint_hash, sub.seed, sub.sample_limit, sub.ranked,
                prov.source, prov.harness_version, prov.git_commit, created, prov.duration_s,
                prov.model_dump_json(), file, seq, content_hash(sub),
            ],
        )  # fmt: skip
        for run in sub.results:
            db.execute(
                "INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    run.run_id, sub.submission_id, card.model_id, run.task, run.task_version, run.spec_hash,
                    run.adapter, run.main_metric, sub.ranked, created, run.duration_s,
                    json.dumps(run.dataset_fingerprints), json.dumps(run.parameters), json.dumps(run.artifacts),
                    seq, tier_of(sub, run),
                ],
            )  # fmt: skip
            _insert_rows(
                db,
                "INSERT INTO metrics VALUES",
                [
                    (run.run_id, m.name, m.value, m.higher_is_better, m.ci_low, m.ci_high, m.stderr, m.ci_method, m.n,
                     m.unit)
                    for m in run.metrics
                ],
            )  # fmt: skip
            info: dict[str, tuple[object, ...]] = {}  # one row per name, the last one winning as row by row
            for m in run.metrics:
                base = m.name.split(".", 1)[0]
                convention = metric_info(m.name).convention if base in METRICS else ""
                info[m.name] = (m.name, m.higher_is_better, convention)
            _insert_rows(db, "INSERT OR REPLACE INTO metric_info VALUES", list(info.values()))
        return len(sub.results)

    def record_verification(
        self, run_id: str, *, ok: bool, sample_seed: str, samples: int, detail: str, harness_version: str
    ) -> None:
        """Record `harness verify`'s outcome for a stored run (tied to the submission's current content)."""
        if self.read_only:
            raise HarnessError("the store is open read-only", where=str(self.path))
        row = self.connection.execute(
            "SELECT s.content_hash FROM runs r JOIN submissions s USING (submission_id) WHERE r.run_id = ?", [run_id]
        ).fetchone()
        if row is None:
            raise HarnessError(
                f"run {run_id} is not in the store", where=str(self.path), fix="ingest the submission first"
            )
        self.connection.execute(
            "INSERT INTO verifications VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [run_id, row[0], ok, sample_seed, samples, detail, harness_version,
             datetime.now(UTC).isoformat(timespec="seconds")],
        )  # fmt: skip

    # ------------------------------------------------------------------ queries

    def tasks(self) -> list[str]:
        return [r[0] for r in self.connection.execute("SELECT DISTINCT task FROM runs ORDER BY task").fetchall()]

    def leaderboard(self, task: str, metric: str | None = None, *, tiers: Sequence[str] = RANKED_TIERS) -> pd.DataFrame:
        """Latest ranked run per model on `task` among runs of `tiers`, ranked by `metric` (default:
        the task's main metric).

        Runs made with --limit are never ranked. Ties in value share a rank.
        """
        query = """
        WITH latest AS (
            SELECT r.*, row_number() OVER (
                PARTITION BY r.model_id ORDER BY r.seq DESC, r.run_id DESC) AS recency
            FROM runs_tiered r WHERE r.ranked AND r.task = $task AND list_contains($tiers, r.tier)
        )
        SELECT
            rank() OVER (ORDER BY CASE WHEN m.higher_is_better THEN -m.value ELSE m.value END) AS rank,
            l.model_id, md.family, m.metric, m.value, m.ci_low, m.ci_high, m.n, m.higher_is_better,
            md.n_parameters, l.run_id, l.created_at, l.tier
        FROM latest l
        JOIN metrics m ON m.run_id = l.run_id AND m.metric = coalesce($metric, l.main_metric)
        JOIN models md ON md.model_id = l.model_id
        WHERE l.recency = 1
        ORDER BY rank, l.model_id
        """
        return self.connection.execute(query, {"task": task, "metric": metric, "tiers": list(tiers)}).df()

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

    # ------------------------------------------------------------------ bulk writing (synthetic stores)

    def ingest_bulk(self, submissions: Sequence[tuple[Submission, str | None]], tiers: TierOf | None = None) -> int:
        """The same rows as `ingest`, written with one column-wise insert per table (one transaction).

        For large generated batches (harness.synthetic): `ingest` runs a few statements per run
        and metric, which takes minutes at a million metric rows. Semantics are those of `ingest`
        applied in order: a submission id replaces its earlier rows (keeping its sequence number), a
        model's card is the one of its last ingested submission, the last direction seen of a metric
        name wins.
        """
        import pyarrow as pa

        if self.read_only:
            raise HarnessError("the store is open read-only", where=str(self.path))
        tier_of = tiers or default_tier
        batch: dict[str, tuple[Submission, str | None]] = {}
        for submission, file in submissions:  # a repeated id: the last one wins, as in `ingest`
            batch.pop(submission.submission_id, None)
            batch[submission.submission_id] = (submission, file)
        db = self.connection
        ids = list(batch)
        stored = dict(
            db.execute(
                "SELECT submission_id, seq FROM submissions WHERE list_contains($ids, submission_id)", {"ids": ids}
            ).fetchall()
        )
        top_row = db.execute("SELECT coalesce(max(seq), 0) FROM submissions").fetchone()
        top = int(top_row[0]) if top_row else 0
        seqs: dict[str, int] = {}
        for sid in [s.submission_id for s, _ in submissions]:
            if sid not in seqs:
                if stored.get(sid) is not None:
                    seqs[sid] = int(stored[sid])
                else:
                    top += 1
                    seqs[sid] = top
        model_ids = sorted({board_card(s).model_id for s, _ in batch.values()})
        existing = dict(
            db.execute(
                "SELECT model_id, card_seq FROM models WHERE list_contains($ids, model_id)", {"ids": model_ids}
            ).fetchall()
        )
        cards: dict[str, Submission] = {}
        for submission, _ in batch.values():
            card_id = board_card(submission).model_id
            seq = seqs[submission.submission_id]
            current = seqs[cards[card_id].submission_id] if card_id in cards else existing.get(card_id)
            if current is None or current <= seq:
                cards[card_id] = submission
        columns: dict[str, dict[str, list[Any]]] = {t: {} for t in ("models", "submissions", "runs", "metrics")}

        def add(table: str, **values: Any) -> None:
            for key, value in values.items():
                columns[table].setdefault(key, []).append(value)

        for sub in cards.values():
            card = board_card(sub)
            add(
                "models", model_id=card.model_id, org=card.org, name=card.name, family=card.family, kind=card.kind,
                n_parameters=card.n_parameters, train_loss_nats=card.train_loss_nats,
                pretrain_loss_nats=card.pretrain_loss_nats, reference=card.reference, tags=list(card.tags),
                card=card.model_dump_json(), card_created_at=sub.provenance.created_at,
                card_seq=seqs[sub.submission_id],
            )  # fmt: skip
        info: dict[str, bool] = {}
        conventions: dict[str, str] = {}
        runs = 0
        for sub, file in batch.values():
            prov = sub.provenance
            add(
                "submissions", submission_id=sub.submission_id, model_id=board_card(sub).model_id,
                checkpoint_hash=sub.checkpoint_hash, seed=sub.seed, sample_limit=sub.sample_limit, ranked=sub.ranked,
                source=prov.source, harness_version=prov.harness_version, git_commit=prov.git_commit,
                created_at=prov.created_at, duration_s=prov.duration_s, provenance=prov.model_dump_json(), file=file,
                seq=seqs[sub.submission_id], content_hash=content_hash(sub),
            )  # fmt: skip
            for run in sub.results:
                runs += 1
                add(
                    "runs", run_id=run.run_id, submission_id=sub.submission_id, model_id=board_card(sub).model_id,
                    task=run.task, task_version=run.task_version, spec_hash=run.spec_hash, adapter=run.adapter,
                    main_metric=run.main_metric, ranked=sub.ranked, created_at=prov.created_at,
                    duration_s=run.duration_s, dataset_fingerprints=json.dumps(run.dataset_fingerprints),
                    parameters=json.dumps(run.parameters), artifacts=json.dumps(run.artifacts),
                    seq=seqs[sub.submission_id], claimed_tier=tier_of(sub, run),
                )  # fmt: skip
                for m in run.metrics:
                    add(
                        "metrics", run_id=run.run_id, metric=m.name, value=m.value,
                        higher_is_better=m.higher_is_better, ci_low=m.ci_low, ci_high=m.ci_high, stderr=m.stderr,
                        ci_method=m.ci_method, n=m.n, unit=m.unit,
                    )  # fmt: skip
                    info[m.name] = m.higher_is_better
                    if m.name not in conventions:
                        base = m.name.split(".", 1)[0]
                        conventions[m.name] = metric_info(m.name).convention if base in METRICS else ""
        columns["metric_info"] = {
            "metric": list(info),
            "higher_is_better": list(info.values()),
            "convention": [conventions[name] for name in info],
        }
        types = {
            "tags": pa.list_(pa.string()), "n_parameters": pa.int64(), "seed": pa.int64(), "sample_limit": pa.int64(),
            "n": pa.int64(), "task_version": pa.int32(), "seq": pa.int64(), "card_seq": pa.int64(), "ranked": pa.bool_(), "higher_is_better": pa.bool_(),
        }  # fmt: skip
        floats = {"train_loss_nats", "pretrain_loss_nats", "duration_s", "value", "ci_low", "ci_high", "stderr"}
        db.begin()
        try:
            db.execute(
                "DELETE FROM metrics WHERE run_id IN (SELECT run_id FROM runs WHERE list_contains($ids, submission_id))",
                {"ids": ids},
            )
            db.execute("DELETE FROM runs WHERE list_contains($ids, submission_id)", {"ids": ids})
            db.execute("DELETE FROM submissions WHERE list_contains($ids, submission_id)", {"ids": ids})
            db.execute("DELETE FROM models WHERE list_contains($ids, model_id)", {"ids": list(cards)})
            db.execute("DELETE FROM metric_info WHERE list_contains($names, metric)", {"names": list(info)})
            for table, data in columns.items():
                if not data or not next(iter(data.values())):
                    continue
                arrays = {
                    key: pa.array(values, type=types.get(key, pa.float64() if key in floats else pa.string()))
                    for key, values in data.items()
                }
                order = ", ".join(f'"{c}"' for c in data)
                db.register("bulk_rows", pa.table(arrays))
                try:
                    db.execute(f"INSERT INTO {table} ({order}) SELECT {order} FROM bulk_rows")
                finally:
                    db.unregister("bulk_rows")
            db.commit()
        except BaseException:
            db.rollback()
            raise
        return runs

    # ------------------------------------------------------------------ queries for the app (read-only)
    # Every query below is parameterised. "Latest ranked run" means what `leaderboard` means: per
    # model and task, the newest run of a submission made without --limit.

    def summary(self) -> dict[str, int]:
        """Counts: models, tasks, runs, unranked_runs (made with --limit), metric rows."""
        row = self.connection.execute(
            """
            SELECT (SELECT count(*) FROM models), (SELECT count(DISTINCT task) FROM runs), (SELECT count(*) FROM runs),
                (SELECT count(*) FROM runs WHERE NOT ranked), (SELECT count(*) FROM metrics)
            """
        ).fetchone()
        assert row is not None
        return dict(zip(("models", "tasks", "runs", "unranked_runs", "metrics"), map(int, row), strict=True))

    def task_overview(self) -> pd.DataFrame:
        """One row per task: main metric (of the newest run), its direction and convention, counts."""
        return self.connection.execute(
            """
            WITH per_task AS (
                SELECT task, arg_max(main_metric, seq) AS main_metric, arg_max(adapter, seq) AS adapter,
                    count(DISTINCT model_id) FILTER (WHERE ranked) AS ranked_models,
                    count(*) FILTER (WHERE NOT ranked) AS unranked_runs, arg_max(created_at, seq) AS last_run
                FROM runs GROUP BY task
            )
            SELECT p.*, i.higher_is_better, i.convention
            FROM per_task p LEFT JOIN metric_info i ON i.metric = p.main_metric
            ORDER BY p.task
            """
        ).df()

    def task_metrics(self, task: str) -> pd.DataFrame:
        """Every metric the ranked runs of `task` report, with its direction and convention."""
        return self.connection.execute(
            """
            SELECT DISTINCT m.metric, i.higher_is_better, i.convention
            FROM runs r JOIN metrics m ON m.run_id = r.run_id LEFT JOIN metric_info i ON i.metric = m.metric
            WHERE r.task = $task AND r.ranked
            ORDER BY m.metric
            """,
            {"task": task},
        ).df()

    def families(self) -> list[str]:
        rows = self.connection.execute("SELECT DISTINCT family FROM models WHERE family IS NOT NULL ORDER BY 1")
        return [r[0] for r in rows.fetchall()]

    def tags(self) -> list[str]:
        rows = self.connection.execute("SELECT DISTINCT unnest(tags) AS tag FROM models ORDER BY 1")
        return [r[0] for r in rows.fetchall()]

    def board_rows(
        self,
        tasks: Sequence[str] | None = None,
        metric: str | None = None,
        *,
        families: Sequence[str] = (),
        tags: Sequence[str] = (),
        models: Sequence[str] | None = None,
        tiers: Sequence[str] = RANKED_TIERS,
        slim: bool = False,
    ) -> pd.DataFrame:
        """The latest ranked run per model and task, with `metric` (default: the task's main metric).

        Filters: `tasks` (None: all), model `families`, `tags` (a model with any of them), `models`
        (ids; None: all), `tiers` (trust tiers; default the ranked ones, see harness/trust.py).
        Columns: task, model_id, family, tags, n_parameters, metric, value, ci_low, ci_high, n, unit,
        ci_method, higher_is_better, is_main, run_id, created_at, tier; with slim=True only task,
        model_id, value, ci_low, ci_high, tier (a scatter's values: a tenth of the bytes to cache).
        """
        columns = (
            "l.task, l.model_id, m.value, m.ci_low, m.ci_high, l.tier"
            if slim
            else """l.task, l.model_id, md.family, md.tags, md.n_parameters, m.metric, m.value, m.ci_low, m.ci_high,
            m.n, m.unit, m.ci_method, m.higher_is_better, m.metric = l.main_metric AS is_main, l.run_id, l.created_at,
            l.tier"""
        )
        query = f"""
        WITH latest AS (
            SELECT r.run_id, r.model_id, r.task, r.main_metric, r.created_at, r.tier, row_number() OVER (
                PARTITION BY r.task, r.model_id ORDER BY r.seq DESC, r.run_id DESC) AS recency
            FROM runs_tiered r
            WHERE r.ranked AND ($tasks IS NULL OR list_contains($tasks, r.task)) AND list_contains($tiers, r.tier)
        )
        SELECT {columns}
        FROM latest l
        JOIN metrics m ON m.run_id = l.run_id AND m.metric = coalesce($metric, l.main_metric)
        JOIN models md ON md.model_id = l.model_id
        WHERE l.recency = 1
            AND (len($families) = 0 OR list_contains($families, md.family))
            AND (len($tags) = 0 OR list_has_any(md.tags, $tags))
            AND ($models IS NULL OR list_contains($models, l.model_id))
        ORDER BY l.task, l.model_id
        """
        params = {
            "tasks": list(tasks) if tasks is not None else None,
            "metric": metric,
            "families": list(families),
            "tags": list(tags),
            "models": list(models) if models is not None else None,
            "tiers": list(tiers),
        }
        return self.connection.execute(query, params).df()

    def task_sets(
        self, *, families: Sequence[str] = (), tags: Sequence[str] = (), tiers: Sequence[str] = RANKED_TIERS
    ) -> pd.DataFrame:
        """The distinct sets of tasks models have ranked runs on: tasks (sorted list), models (count)."""
        return self.connection.execute(
            """
            WITH per_model AS (
                SELECT r.model_id, list(DISTINCT r.task ORDER BY r.task) AS tasks
                FROM runs_tiered r JOIN models md ON md.model_id = r.model_id
                WHERE r.ranked AND list_contains($tiers, r.tier)
                    AND (len($families) = 0 OR list_contains($families, md.family))
                    AND (len($tags) = 0 OR list_has_any(md.tags, $tags))
                GROUP BY r.model_id
            )
            SELECT tasks, count(*) AS models FROM per_model GROUP BY tasks ORDER BY models DESC, len(tasks) DESC, tasks
            """,
            {"families": list(families), "tags": list(tags), "tiers": list(tiers)},
        ).df()

    def main_bootstraps(self, run_ids: Sequence[str]) -> pd.DataFrame:
        """Stored main-metric bootstrap distributions: run_id, seed, values (array), fingerprints (JSON text).

        Runs without one are absent. Two runs pair up when seed, len(values) and fingerprints agree.
        """
        frame = self.connection.execute(
            """
            SELECT run_id, CAST(json_extract(artifacts, '$.main_bootstrap.seed') AS BIGINT) AS seed,
                CAST(json_extract(artifacts, '$.main_bootstrap.values') AS DOUBLE[]) AS "values",
                CAST(dataset_fingerprints AS VARCHAR) AS fingerprints
            FROM runs
            WHERE list_contains($ids, run_id) AND json_exists(artifacts, '$.main_bootstrap.values')
            """,
            {"ids": list(run_ids)},
        ).df()
        return frame

    def ranked_leaderboard(
        self,
        task: str,
        metric: str | None = None,
        *,
        families: Sequence[str] = (),
        tags: Sequence[str] = (),
        models: Sequence[str] | None = None,
        paired_limit: int | None = None,
        tiers: Sequence[str] = RANKED_TIERS,
    ) -> RankedBoard:
        """`board_rows` of one task with ranks under family-wise error control (see `rank_rows`)."""
        rows = self.board_rows([task], metric, families=families, tags=tags, models=models, tiers=tiers)
        return self.rank_rows(rows, paired_limit=paired_limit)

    def rank_rows(
        self, rows: pd.DataFrame, *, paired_limit: int | None = None, bootstraps: pd.DataFrame | None = None
    ) -> RankedBoard:
        """Rank `board_rows` of one task and metric with family-wise error control (stats.significance_ranks).

        Every pair of models is tested, and Holm's procedure keeps the chance of any false
        "better" verdict on the board at or below 5%. Pairs are tested by paired bootstrap between
        runs whose main-metric distributions pair up (same seed, same number of values, same dataset
        fingerprints), when the ranked metric is the main one and there are at most `paired_limit`
        (default PAIRED_LIMIT) models; every other pair conservatively from the two 95% CIs. rank is
        a lower and rank_worst an upper bound of the true rank, simultaneously 95% for the board,
        and a better value never gets a worse rank. Sorted by rank, then value (best first), then
        model id. A diagnostic metric (`MetricInfo.diagnostic`: a fitted parameter or a property,
        not a quality) is never ranked: rank and rank_worst are missing, rows sorted by value.
        `bootstraps`: `main_bootstraps` of (at least) these rows' runs, when the caller has them.
        """
        from harness.stats import significance_ranks

        limit = PAIRED_LIMIT if paired_limit is None else paired_limit
        rows = rows.reset_index(drop=True)
        if rows.empty:
            return RankedBoard(rows.assign(rank=[], rank_worst=[], paired=[]), 0, False)
        higher = bool(rows["higher_is_better"].iloc[0])
        if is_diagnostic(str(rows["metric"].iloc[0])):
            missing = pd.array([pd.NA] * len(rows), dtype="Int64")
            key = -rows["value"] if higher else rows["value"]
            table = rows.assign(rank=missing, rank_worst=missing, paired=False, _key=key)
            table = table.sort_values(["_key", "model_id"]).drop(columns="_key").reset_index(drop=True)
            return RankedBoard(table, 0, False, diagnostic=True)
        groups: list[tuple[Any, Any]] = []
        too_many = len(rows) > limit
        main_rows = rows[rows["is_main"].astype(bool)]
        if not too_many and not main_rows.empty:
            run_ids = main_rows["run_id"].tolist()
            boots = self.main_bootstraps(run_ids) if bootstraps is None else bootstraps
            groups = _paired_groups(rows["run_id"].tolist(), _bootstrap_index(boots), set(run_ids))
        ranks = significance_ranks(
            rows["value"].to_numpy(np.float64),
            rows["ci_low"].to_numpy(np.float64, na_value=np.nan),
            rows["ci_high"].to_numpy(np.float64, na_value=np.nan),
            higher_is_better=higher,
            paired_groups=groups,
            n_samples=rows["n"].to_numpy(np.float64, na_value=np.nan),
        )
        table = rows.assign(rank=ranks.rank, rank_worst=ranks.rank_worst, paired=ranks.paired)
        table = table.assign(_key=-table["value"] if higher else table["value"])
        table = table.sort_values(["rank", "_key", "model_id"]).drop(columns="_key").reset_index(drop=True)
        return RankedBoard(
            table, int(ranks.paired.sum()), too_many, pairs=ranks.pairs, significant_pairs=ranks.significant_pairs
        )

    def mean_ranks(
        self,
        tasks: Sequence[str],
        *,
        families: Sequence[str] = (),
        tags: Sequence[str] = (),
        paired_limit: int | None = None,
        tiers: Sequence[str] = RANKED_TIERS,
    ) -> MeanRanks:
        """Aggregate view: each model's mean rank over the quality tasks among `tasks` (main metrics).

        A task whose main metric is a diagnostic (`MetricInfo.diagnostic`, e.g. flatness's
        hessian_trace) is left out of the mean and listed in `excluded`: a mean rank claims
        quality. Only models with a ranked run on every averaged task are aggregated, and each
        task's ranks (`rank_rows`: family-wise error controlled per board) are computed among
        those models alone, so every mean is over the same tasks and competitors. The mean itself
        has no error guarantee across tasks. `overall` is the competition rank of the mean.
        """
        rows = self.board_rows(list(tasks), families=families, tags=tags, tiers=tiers)
        metric_of = rows.drop_duplicates("task").set_index("task")
        diagnostic = {t for t, m in zip(rows["task"], rows["metric"], strict=True) if is_diagnostic(str(m))}
        excluded = pd.DataFrame(
            [
                {"task": t, "metric": metric_of.loc[t, "metric"], "reason": "its main metric is a diagnostic"}
                for t in tasks
                if t in diagnostic
            ],
            columns=["task", "metric", "reason"],
        )
        quality = [t for t in tasks if t not in diagnostic]
        averaged = pd.DataFrame(
            [
                {
                    "task": t,
                    "metric": metric_of.loc[t, "metric"] if t in metric_of.index else None,
                    "higher_is_better": metric_of.loc[t, "higher_is_better"] if t in metric_of.index else None,
                }
                for t in quality
            ],
            columns=["task", "metric", "higher_is_better"],
        )
        empty = pd.DataFrame(columns=["overall", "model_id", "family", "mean_rank", *quality])
        no_missing = pd.DataFrame(columns=["model_id", "family", "missing"])
        if rows.empty or not quality:
            return MeanRanks(empty, no_missing, averaged, excluded)
        family = rows.drop_duplicates("model_id").set_index("model_id")["family"]
        rows = rows[rows["task"].isin(quality)]
        coverage = rows.groupby("model_id")["task"].agg(set)
        have = {m: coverage.get(m, set()) for m in sorted(family.index)}
        complete = [m for m, tasks_run in have.items() if tasks_run >= set(quality)]
        missing = pd.DataFrame(
            [
                {"model_id": m, "family": family[m], "missing": ", ".join(sorted(set(quality) - tasks_run))}
                for m, tasks_run in have.items()
                if not tasks_run >= set(quality)
            ],
            columns=["model_id", "family", "missing"],
        )
        if not complete:
            return MeanRanks(empty, missing, averaged, excluded)
        rows = rows[rows["model_id"].isin(complete)]
        table = pd.DataFrame({"model_id": complete, "family": [family[m] for m in complete]})
        for task in quality:
            board = self.rank_rows(rows[rows["task"] == task], paired_limit=paired_limit).table
            table[task] = table["model_id"].map(dict(zip(board["model_id"], board["rank"], strict=True)))
        table["mean_rank"] = table[quality].mean(axis=1)
        table["overall"] = table["mean_rank"].rank(method="min").astype(int)
        table = table.sort_values(["overall", "model_id"]).reset_index(drop=True)
        return MeanRanks(table[["overall", "model_id", "family", "mean_rank", *quality]], missing, averaged, excluded)

    def model_table(self, *, families: Sequence[str] = (), tags: Sequence[str] = (), card: bool = True) -> pd.DataFrame:
        """Models with their card fields (card: the JSON text; None with card=False) and run counts."""
        card_column = "CAST(md.card AS VARCHAR)" if card else "NULL"
        return self.connection.execute(
            f"""
            SELECT md.model_id, md.org, md.name, md.family, md.kind, md.n_parameters, md.train_loss_nats,
                md.pretrain_loss_nats, md.reference, md.tags, {card_column} AS card,
                md.card_created_at,
                (SELECT count(*) FROM runs r WHERE r.model_id = md.model_id) AS runs,
                (SELECT count(*) FROM runs r WHERE r.model_id = md.model_id AND NOT r.ranked) AS unranked_runs
            FROM models md
            WHERE (len($families) = 0 OR list_contains($families, md.family))
                AND (len($tags) = 0 OR list_has_any(md.tags, $tags))
            ORDER BY md.model_id
            """,
            {"families": list(families), "tags": list(tags)},
        ).df()

    def model_cards(self, *, families: Sequence[str] = (), tags: Sequence[str] = ()) -> pd.DataFrame:
        """model_id, family and card (the JSON text) of the models, filtered as `model_table`, by model id.
        Without `model_table`'s run counts: a fifth of its time at 10,000 models."""
        return self.connection.execute(
            """
            SELECT model_id, family, CAST(card AS VARCHAR) AS card FROM models
            WHERE (len($families) = 0 OR list_contains($families, family))
                AND (len($tags) = 0 OR list_has_any(tags, $tags))
            ORDER BY model_id
            """,
            {"families": list(families), "tags": list(tags)},
        ).df()

    def model_card(self, model_id: str) -> dict[str, Any] | None:
        """The stored card of `model_id` (its newest submission's), or None when unknown."""
        row = self.connection.execute(
            "SELECT CAST(card AS VARCHAR) FROM models WHERE model_id = ?", [model_id]
        ).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def model_runs(self, model_id: str) -> pd.DataFrame:
        """Every run of `model_id`, ranked or not, newest first, with its main metric and submission."""
        return self.connection.execute(
            """
            SELECT r.task, r.run_id, r.ranked, s.sample_limit, s.seed, r.submission_id, r.created_at,
                r.main_metric, m.value, m.ci_low, m.ci_high, m.n, m.higher_is_better, r.spec_hash, r.adapter,
                r.task_version, r.duration_s, r.tier, r.seq,
                row_number() OVER (PARTITION BY r.task, r.ranked ORDER BY r.seq DESC, r.run_id DESC) = 1
                    AND r.ranked AS latest_ranked
            FROM runs_tiered r
            JOIN submissions s ON s.submission_id = r.submission_id
            LEFT JOIN metrics m ON m.run_id = r.run_id AND m.metric = r.main_metric
            WHERE r.model_id = ?
            ORDER BY r.task, r.seq DESC, r.run_id DESC
            """,
            [model_id],
        ).df()

    def run_metric_table(self, run_id: str) -> pd.DataFrame:
        """Every metric of one run with its interval, direction and convention."""
        return self.connection.execute(
            """
            SELECT m.metric, m.value, m.ci_low, m.ci_high, m.ci_method, m.stderr, m.n, m.unit, m.higher_is_better,
                i.convention
            FROM metrics m LEFT JOIN metric_info i ON i.metric = m.metric
            WHERE m.run_id = ?
            ORDER BY m.metric
            """,
            [run_id],
        ).df()

    def run_details(self, run_id: str) -> dict[str, Any] | None:
        """Parameters, dataset fingerprints, artifact names and the submission's provenance of a run."""
        row = self.connection.execute(
            """
            SELECT CAST(r.parameters AS VARCHAR), CAST(r.dataset_fingerprints AS VARCHAR), json_keys(r.artifacts),
                CAST(s.provenance AS VARCHAR), s.checkpoint_hash, s.file, s.seed, s.sample_limit, r.spec_hash
            FROM runs r JOIN submissions s ON s.submission_id = r.submission_id
            WHERE r.run_id = ?
            """,
            [run_id],
        ).fetchone()
        if row is None:
            return None
        return {
            "parameters": json.loads(row[0]),
            "dataset_fingerprints": json.loads(row[1]),
            "artifacts": list(row[2] or []),
            "provenance": json.loads(row[3]),
            "checkpoint_hash": row[4],
            "file": row[5],
            "seed": row[6],
            "sample_limit": row[7],
            "spec_hash": row[8],
        }

    def run_artifact(self, run_id: str, key: str) -> Any:
        """artifacts[key] of a run (parsed JSON), or None when the run or the artifact is absent."""
        if not re.fullmatch(r"[A-Za-z0-9_]+", key):
            raise ValueError(f"artifact names are letters, digits and '_', got {key!r}")
        row = self.connection.execute(
            "SELECT CAST(json_extract(artifacts, '$.' || $key) AS VARCHAR) FROM runs WHERE run_id = $run",
            {"key": key, "run": run_id},
        ).fetchone()
        return None if row is None or row[0] is None else json.loads(row[0])

    def metric_catalog(
        self,
        *,
        families: Sequence[str] = (),
        tags: Sequence[str] = (),
        models: Sequence[str] | None = None,
        tiers: Sequence[str] = RANKED_TIERS,
    ) -> pd.DataFrame:
        """Every (task, metric) of latest ranked runs: models reporting it, direction, convention.

        Filters as in `board_rows`; the main metric of each task comes first.
        """
        # The models shown first, then each (task, model)'s newest ranked run (arg_max: no window over every
        # run), then the metrics of those runs only: 4x faster than filtering after the join on one family.
        return self.connection.execute(
            """
            WITH shown AS (
                SELECT md.model_id FROM models md
                WHERE (len($families) = 0 OR list_contains($families, md.family))
                    AND (len($tags) = 0 OR list_has_any(md.tags, $tags))
                    AND ($models IS NULL OR list_contains($models, md.model_id))
            ), latest AS (
                SELECT r.task, arg_max(r.run_id, (r.seq, r.run_id)) AS run_id,
                    arg_max(r.main_metric, (r.seq, r.run_id)) AS main_metric
                FROM runs_tiered r SEMI JOIN shown ON shown.model_id = r.model_id
                WHERE r.ranked AND list_contains($tiers, r.tier)
                GROUP BY r.task, r.model_id
            ), counted AS (
                SELECT l.task, m.metric, bool_or(m.metric = l.main_metric) AS is_main, count(*) AS models
                FROM latest l JOIN metrics m ON m.run_id = l.run_id
                GROUP BY l.task, m.metric
            )
            SELECT c.task, c.metric, c.is_main, c.models, i.higher_is_better, i.convention
            FROM counted c LEFT JOIN metric_info i ON i.metric = c.metric
            ORDER BY c.task, NOT c.is_main, c.metric
            """,
            {
                "families": list(families),
                "tags": list(tags),
                "models": list(models) if models is not None else None,
                "tiers": list(tiers),
            },
        ).df()

    def compression_references(self) -> pd.DataFrame:
        """References of compressed models (cards with `reference` and a `compression` object).

        Columns: reference, variants (count), families of the variants, in_store (the reference's own runs).
        """
        return self.connection.execute(
            """
            SELECT v.reference, count(*) AS variants, list(DISTINCT v.family ORDER BY v.family) AS families,
                bool_or(r.model_id IS NOT NULL) AS in_store
            FROM models v LEFT JOIN models r ON r.model_id = v.reference
            WHERE v.reference IS NOT NULL AND json_type(v.card, '$.compression') = 'OBJECT'
            GROUP BY v.reference
            ORDER BY variants DESC, v.reference
            """
        ).df()

    def compression_variants(self, reference: str) -> pd.DataFrame:
        """The reference (method "none") and every compressed model whose card names it, with its compression fields."""
        return self.connection.execute(
            """
            SELECT model_id, name, family, reference IS NULL AS is_reference,
                coalesce(json_extract_string(card, '$.compression.method'), 'none') AS method,
                TRY_CAST(json_extract_string(card, '$.compression.sparsity') AS DOUBLE) AS sparsity,
                TRY_CAST(json_extract_string(card, '$.compression.achieved_sparsity') AS DOUBLE) AS achieved_sparsity,
                TRY_CAST(json_extract_string(card, '$.compression.bits') AS DOUBLE) AS bits,
                json_extract_string(card, '$.compression.scope') AS scope,
                json_extract_string(card, '$.compression.granularity') AS granularity,
                CAST(json_extract(card, '$.compression') AS VARCHAR) AS compression
            FROM models
            WHERE (reference = $reference AND json_type(card, '$.compression') = 'OBJECT') OR model_id = $reference
            ORDER BY is_reference DESC, method, sparsity, bits DESC, model_id
            """,
            {"reference": reference},
        ).df()

    def ranked_by_reference(
        self,
        task: str,
        metric: str | None = None,
        *,
        families: Sequence[str] = (),
        tags: Sequence[str] = (),
        tiers: Sequence[str] = RANKED_TIERS,
        paired_limit: int | None = None,
    ) -> RankedBoard:
        """`ranked_leaderboard` with each model ranked among the models that share its card's
        `reference` (compression boards: a variant is measured against its own reference, so variants
        of different references are not competitors): per reference, exactly what `rank_rows` gives
        for that reference's rows alone. The table gets a `reference` column (None for models
        without one, ranked together) and is sorted by reference, then rank, value and model id; the
        counts add up over the groups, and `over_paired_limit` says whether any group was over the
        limit. One pass over numpy arrays: hundreds of references cost milliseconds each."""
        from harness.stats import significance_ranks

        rows = self.board_rows([task], metric, families=families, tags=tags, tiers=tiers).reset_index(drop=True)
        references = dict(
            self.connection.execute(
                "SELECT model_id, reference FROM models WHERE list_contains($ids, model_id)",
                {"ids": rows["model_id"].tolist()},
            ).fetchall()
        )
        rows = rows.assign(reference=rows["model_id"].map(references))
        if rows.empty or is_diagnostic(str(rows["metric"].iloc[0])):
            board = self.rank_rows(rows, paired_limit=paired_limit)
            order = board.table.assign(_ref=board.table["reference"].fillna("")).sort_values("_ref", kind="stable")
            return RankedBoard(order.drop(columns="_ref").reset_index(drop=True), 0, False, board.diagnostic)
        limit = PAIRED_LIMIT if paired_limit is None else paired_limit
        higher = bool(rows["higher_is_better"].iloc[0])
        value = rows["value"].to_numpy(np.float64)
        low = rows["ci_low"].to_numpy(np.float64, na_value=np.nan)
        high = rows["ci_high"].to_numpy(np.float64, na_value=np.nan)
        count = rows["n"].to_numpy(np.float64, na_value=np.nan)
        run_ids = rows["run_id"].tolist()
        main = {r for r, m in zip(run_ids, rows["is_main"].astype(bool), strict=True) if m}
        index = _bootstrap_index(self.main_bootstraps(sorted(main))) if main else {}
        rank = np.zeros(len(rows), dtype=np.int64)
        worst = np.zeros(len(rows), dtype=np.int64)
        paired = np.zeros(len(rows), dtype=bool)
        pairs = significant = 0
        over = False
        for positions in rows.groupby(rows["reference"].fillna(""), sort=True).indices.values():
            too_many = len(positions) > limit
            over |= too_many
            group_runs = [run_ids[p] for p in positions]
            groups = [] if too_many else _paired_groups(group_runs, index, main)
            ranks = significance_ranks(
                value[positions], low[positions], high[positions], higher_is_better=higher, paired_groups=groups,
                n_samples=count[positions],
            )  # fmt: skip
            rank[positions], worst[positions], paired[positions] = ranks.rank, ranks.rank_worst, ranks.paired
            pairs += ranks.pairs
            significant += ranks.significant_pairs
        table = rows.assign(
            rank=rank,
            rank_worst=worst,
            paired=paired,
            _ref=rows["reference"].fillna(""),
            _key=-value if higher else value,
        )
        table = table.sort_values(["_ref", "rank", "_key", "model_id"]).drop(columns=["_ref", "_key"])
        return RankedBoard(
            table.reset_index(drop=True), int(paired.sum()), over, pairs=pairs, significant_pairs=significant
        )

    def board_metric_values(
        self,
        task: str,
        metrics: Sequence[str],
        *,
        families: Sequence[str] = (),
        tags: Sequence[str] = (),
        tiers: Sequence[str] = RANKED_TIERS,
    ) -> pd.DataFrame:
        """Several metrics of the runs `board_rows` shows for `task` (the newest ranked run per model
        among `tiers`), in long form: model_id, run_id, metric, value, ci_low, ci_high (e.g. an OOD
        board's per-set columns: auroc.energy.near, .noise, .far, ...)."""
        return self.connection.execute(
            """
            WITH latest AS (
                SELECT r.run_id, r.model_id, row_number() OVER (
                    PARTITION BY r.model_id ORDER BY r.seq DESC, r.run_id DESC) AS recency
                FROM runs_tiered r WHERE r.ranked AND r.task = $task AND list_contains($tiers, r.tier)
            )
            SELECT l.model_id, l.run_id, m.metric, m.value, m.ci_low, m.ci_high
            FROM latest l
            JOIN metrics m ON m.run_id = l.run_id AND list_contains($metrics, m.metric)
            JOIN models md ON md.model_id = l.model_id
            WHERE l.recency = 1
                AND (len($families) = 0 OR list_contains($families, md.family))
                AND (len($tags) = 0 OR list_has_any(md.tags, $tags))
            ORDER BY l.model_id, m.metric
            """,
            {"task": task, "metrics": list(metrics), "families": list(families), "tags": list(tags),
             "tiers": list(tiers)},
        ).df()  # fmt: skip

    def task_versions(self, task: str, *, tiers: Sequence[str] = RANKED_TIERS) -> pd.DataFrame:
        """What the ranked runs of `task` were made with: one row per (task_version, spec_hash) with the
        adapter, the splits scored (the keys of the dataset fingerprints), the newest run's id and
        parameters (JSON text), the runs and models, newest first (a board's header names them)."""
        return self.connection.execute(
            """
            SELECT task_version, spec_hash, arg_max(adapter, seq) AS adapter,
                arg_max(CAST(json_keys(dataset_fingerprints) AS VARCHAR[]), seq) AS splits,
                arg_max(run_id, seq) AS newest_run, arg_max(CAST(parameters AS VARCHAR), seq) AS parameters,
                count(*) AS runs, count(DISTINCT model_id) AS models, max(seq) AS newest
            FROM runs_tiered
            WHERE task = $task AND ranked AND list_contains($tiers, tier)
            GROUP BY task_version, spec_hash
            ORDER BY newest DESC
            """,
            {"task": task, "tiers": list(tiers)},
        ).df()

    def family_coverage(self, tasks: Sequence[str], *, tiers: Sequence[str] = RANKED_TIERS) -> pd.DataFrame:
        """Per family, how many models have ranked runs (of `tiers`) of every one of `tasks`:
        family, models (0 when none), sorted by models (most first), then family."""
        return self.connection.execute(
            """
            WITH covered AS (
                SELECT r.model_id FROM runs_tiered r
                WHERE r.ranked AND list_contains($tiers, r.tier) AND list_contains($tasks, r.task)
                GROUP BY r.model_id HAVING count(DISTINCT r.task) = len(list_distinct($tasks))
            )
            SELECT md.family, count(c.model_id) AS models
            FROM models md LEFT JOIN covered c ON c.model_id = md.model_id
            WHERE md.family IS NOT NULL
            GROUP BY md.family
            ORDER BY models DESC, md.family
            """,
            {"tasks": list(tasks), "tiers": list(tiers)},
        ).df()

    def checkpoint_series(
        self, *, families: Sequence[str] = (), training_runs: Sequence[str] | None = None
    ) -> pd.DataFrame:
        """Checkpoints of training runs: models whose card names a `training_run`, with the card's
        `step` and `tokens_seen` (None when the card leaves them out): model_id, family, training_run,
        step, tokens_seen, sorted by training run, then step (checkpoints without a step last)."""
        return self.connection.execute(
            """
            SELECT model_id, family, card->>'training_run' AS training_run,
                TRY_CAST(card->>'step' AS BIGINT) AS step, TRY_CAST(card->>'tokens_seen' AS BIGINT) AS tokens_seen
            FROM models
            WHERE card->>'training_run' IS NOT NULL
                AND (len($families) = 0 OR list_contains($families, family))
                AND ($runs IS NULL OR list_contains($runs, card->>'training_run'))
            ORDER BY training_run, step NULLS LAST, model_id
            """,
            {"families": list(families), "runs": list(training_runs) if training_runs is not None else None},
        ).df()

    # ------------------------------------------------------------------ the adaptive-overfitting guard

    def ladder_runs(self, task: str, metric: str | None = None, *, tiers: Sequence[str] = RANKED_TIERS) -> pd.DataFrame:
        """Every ranked run of `task` among `tiers`, per org in ingest order (seq, then run id): the
        submissions the Ladder (harness/ladder.py) reads. Superseded runs count (each was a look at
        the test set); runs made with --limit do not (never ranked).

        Columns: org (the part of the model id before "/"), model_id, run_id, seq, tier, metric,
        value, higher_is_better, ci_low, ci_high, stderr, n, is_main, and, for the main metric,
        boot_seed, boot_values (the stored main_bootstrap distribution, or None) and fingerprints
        (the dataset fingerprints' JSON text): runs pair when these three agree.
        """
        return self.connection.execute(
            """
            SELECT split_part(r.model_id, '/', 1) AS org, r.model_id, r.run_id, r.seq, r.tier, m.metric, m.value,
                m.higher_is_better, m.ci_low, m.ci_high, m.stderr, m.n, m.metric = r.main_metric AS is_main,
                CASE WHEN m.metric = r.main_metric
                    THEN TRY_CAST(json_extract(r.artifacts, '$.main_bootstrap.seed') AS BIGINT) END AS boot_seed,
                CASE WHEN m.metric = r.main_metric
                    THEN TRY_CAST(json_extract(r.artifacts, '$.main_bootstrap.values') AS DOUBLE[]) END AS boot_values,
                CAST(r.dataset_fingerprints AS VARCHAR) AS fingerprints
            FROM runs_tiered r
            JOIN metrics m ON m.run_id = r.run_id AND m.metric = coalesce($metric, r.main_metric)
            WHERE r.ranked AND r.task = $task AND list_contains($tiers, r.tier)
            ORDER BY org, r.seq, r.run_id
            """,
            {"task": task, "metric": metric, "tiers": list(tiers)},
        ).df()

    def ladder_board(self, task: str, metric: str | None = None, *, tiers: Sequence[str] = RANKED_TIERS) -> LadderBoard:
        """The board of `task` under the Ladder, one ladder per org: a `harness.ladder.LadderBoard`
        (per org the guarded and the raw best; per submission its threshold, whether it was
        accepted and the value shown after it)."""
        from harness.ladder import ladder_tables

        return ladder_tables(self.ladder_runs(task, metric, tiers=tiers))


@contextmanager
def open_store(path: str | Path, *, read_only: bool = False) -> Iterator[Store]:
    """Open (and, for writing, create) the store at `path`; a file that is not DuckDB is a HarnessError."""
    path = Path(path)
    exists = _existing_store_file(path)  # before anything opens it: opening a FIFO would block
    if read_only and not exists:
        raise HarnessError(
            "store file does not exist", where=str(path), fix="run `harness demo` or `harness ingest` first"
        )
    if exists and not is_duckdb_file(path):
        raise HarnessError(
            "not a valid DuckDB database file",
            where=str(path),
            fix="pass a DuckDB file written by harness (or a new path); `harness ingest --rebuild` recreates one",
        )
    if not read_only:
        _check_writable(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise HarnessError(f"cannot create the store's folder: {error.strerror}", where=str(path.parent)) from None
    # Writers take a cross-process file lock (released by the OS if the process dies), so several
    # `harness eval` processes sharing one store take turns instead of failing.
    lock = FileLock(f"{path}.lock") if not read_only else None
    if lock is not None:
        try:
            lock.acquire(timeout=LOCK_TIMEOUT_S)
        except Timeout:
            raise HarnessError(
                f"another process has held the store for more than {LOCK_TIMEOUT_S:.0f} s",
                where=str(path),
                fix="wait for it to finish, or raise HARNESS_STORE_LOCK_TIMEOUT",
            ) from None
        except OSError as error:
            raise HarnessError(
                f"cannot write next to the store ({error.strerror})",
                where=str(path),
                fix="the store's folder must be writable; use --store with a writable path",
            ) from None
    try:
        if not read_only and not path.exists():  # checked again under the lock: another writer may have made it
            _create_store_file(path)
        connection = _connect(path, read_only)
        store = Store(connection, path, read_only)
        try:
            if not read_only:
                _bring_up_to_date(connection)
            elif _version(connection) == 0:
                raise HarnessError(
                    "the file is a DuckDB database but not a results store (it has no harness tables)",
                    where=str(path),
                    fix="pass the store `harness ingest` or `harness demo` wrote, or ingest into this file first",
                )
            elif _version(connection) < STORE_VERSION:
                raise HarnessError(
                    f"the store was written by an older harness (store version {_version(connection)})",
                    where=str(path),
                    fix="open it once for writing (`harness ingest` upgrades it) or rebuild it: "
                    "`harness ingest submissions/ --store PATH --rebuild`",
                )
            elif missing := _missing_tables(connection):
                raise HarnessError(
                    f"the file records a store version but lacks the harness table(s) {', '.join(missing)}",
                    where=str(path),
                    fix="pass the store `harness ingest` or `harness demo` wrote, or rebuild it: "
                    "`harness ingest submissions/ --store PATH --rebuild`",
                )
            yield store
        finally:
            store.close()
    finally:
        if lock is not None:
            lock.release()


def _missing_tables(connection: duckdb.DuckDBPyConnection) -> list[str]:
    """The harness tables (and the runs_tiered view) the open database lacks."""
    present = {row[0] for row in connection.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    return [name for name in (*TABLES, "runs_tiered") if name not in present]


@dataclass(frozen=True)
class StoreState:
    """What is at a store path, before anything queries it (the app picks its page from `kind`).

    kind: "missing" (no file), "empty" (a zero-byte file or a DuckDB database without tables: no runs
    yet), "foreign" (a DuckDB database of something else, or not a DuckDB file at all), "outdated"
    (a store of an older version: open it for writing once), "ok" (a results store). tables: the
    tables the database holds (for "foreign", to say what it is); detail: the reason, for "foreign".
    """

    kind: str
    tables: tuple[str, ...] = ()
    version: int = 0
    detail: str = ""


def inspect_store(path: str | Path) -> StoreState:
    """Classify the file at `path` without writing it (see `StoreState`); never raises for a bad file."""
    path = Path(path)
    try:
        if not _existing_store_file(path):
            return StoreState("missing")
        if path.stat().st_size == 0:
            return StoreState("empty")
        if not is_duckdb_file(path):
            return StoreState("foreign", detail="not a DuckDB database file")
        connection = _connect(path, read_only=True)
    except (HarnessError, OSError) as error:
        detail = error.one_line() if isinstance(error, HarnessError) else str(error)
        return StoreState("foreign", detail=detail)
    try:
        tables = tuple(
            sorted(r[0] for r in connection.execute("SELECT table_name FROM information_schema.tables").fetchall())
        )
        version = _version(connection)
        if not tables:
            return StoreState("empty")
        if version == 0 or (version >= STORE_VERSION and _missing_tables(connection)):
            return StoreState("foreign", tables, version, "it has no (or not all) harness tables")
        if version < STORE_VERSION:
            return StoreState("outdated", tables, version)
        return StoreState("ok", tables, version)
    except duckdb.Error as error:
        return StoreState("foreign", detail=str(error).splitlines()[0])
    finally:
        connection.close()


def _version(connection: duckdb.DuckDBPyConnection) -> int:
    """The store version recorded in `meta` (0: no meta table or no version, e.g. an empty file)."""
    try:
        row = connection.execute("SELECT value FROM meta WHERE key = 'store_version'").fetchone()
    except duckdb.CatalogException:
        return 0
    return int(row[0]) if row is not None and str(row[0]).isdigit() else 0


#: how long a writer waits for the store (another writer, or a reader holding DuckDB's file lock)
LOCK_TIMEOUT_S = float(os.environ.get("HARNESS_STORE_LOCK_TIMEOUT", "600"))


def _bring_up_to_date(connection: duckdb.DuckDBPyConnection) -> None:
    """Tables, migrations (for a store below STORE_VERSION, a new one included), views and the version
    mark: what a writer does to every store it opens, and to a new one before it is renamed into place."""
    connection.execute(SCHEMA)
    if _version(connection) < STORE_VERSION:
        connection.execute(MIGRATIONS)
    connection.execute(VIEWS)
    connection.execute("INSERT OR REPLACE INTO meta VALUES ('store_version', ?)", [str(STORE_VERSION)])


def _create_store_file(path: Path) -> None:
    """A new, empty store at `path`, created whole or not at all: the tables are made in a file beside
    it, then renamed onto `path` (atomic), so a process killed while creating a store never leaves a
    DuckDB file without the store's tables there. Called with the writer lock held; a file left
    beside it by a killed creator is removed first."""
    for stale in path.parent.glob(f".{path.name}.*.creating*"):
        stale.unlink(missing_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.creating")
    connection = _connect(temporary, read_only=False)
    try:
        _bring_up_to_date(connection)
        connection.execute("CHECKPOINT")
    finally:
        connection.close()
    Path(f"{temporary}.wal").unlink(missing_ok=True)  # checkpointed: nothing in it
    os.replace(temporary, path)


def _connect(path: Path, read_only: bool) -> duckdb.DuckDBPyConnection:
    """Connect, retrying while another process holds DuckDB's own file lock (e.g. the app reading)."""
    # Never let DuckDB fetch extensions (it would, for example, to read a SQLite file).
    config: dict[str, str | bool | int | float | list[str]] = {
        "autoinstall_known_extensions": False,
        "autoload_known_extensions": False,
    }
    deadline = time.monotonic() + LOCK_TIMEOUT_S
    delay = 0.05
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only, config=config)
        except duckdb.Error as error:
            message = str(error).splitlines()[0]
            # "lock": another process holds the file; "different configuration": a connection of this
            # process does (the app's shared read-only connection, closed when idle)
            busy = "lock" in message.lower() or "different configuration" in message.lower()
            if busy and time.monotonic() < deadline:
                time.sleep(delay)
                delay = min(delay * 2, 1.0)
                continue
            if "read-only" in message.lower() or "permission" in message.lower():
                raise HarnessError(
                    f"the store is not writable: {message}",
                    where=str(path),
                    fix="use --store with a writable path (earlier results in this file are untouched)",
                ) from None
            raise HarnessError(
                f"cannot open the results store: {message}",
                where=str(path),
                fix="pass a DuckDB file written by harness (or a new path); `harness ingest --rebuild` recreates one",
            ) from None


def is_duckdb_file(path: Path) -> bool:
    """True for DuckDB's file format (magic bytes "DUCK" at offset 8) or an empty file."""
    with path.open("rb") as handle:
        header = handle.read(12)
    return len(header) == 0 or header[8:12] == b"DUCK"


def _special_kind(path: Path) -> str:
    if path.is_dir():
        return "folder"
    if path.is_fifo():
        return "named pipe (FIFO)"
    if path.is_char_device() or path.is_block_device():
        return "device"
    return "socket" if path.is_socket() else "special file"


def _existing_store_file(path: Path) -> bool:
    """Whether a store file exists at `path` (links followed). Anything else there (a folder, a FIFO,
    a device, a socket, a broken link; for the file or its DuckDB WAL) is a HarnessError, raised
    before anything opens it: reading a FIFO or a device would block or never end."""
    for file in (path, Path(f"{path}.wal")):
        try:
            if file.is_symlink() and not file.exists():
                raise HarnessError(
                    "store path is a broken symbolic link",
                    where=str(file),
                    fix="remove the link or pass another --store",
                )
            if file.exists() and not file.is_file():
                raise HarnessError(
                    f"store path is a {_special_kind(file)}, not a regular file",
                    where=str(file),
                    fix="pass --store with a .duckdb file path (an existing store or a new path)",
                )
        except OSError as error:
            raise HarnessError(f"cannot inspect the store path: {error.strerror}", where=str(file)) from None
    return path.is_file()


def _check_writable(path: Path) -> None:
    """A read-only store file, or a read-only folder it is in, is a HarnessError. The mode bits count
    even for root (who could write anyway): chmod a-w says "leave this store alone"."""
    for target, what, access in ((path, "store file", os.W_OK), (path.parent, "store's folder", os.W_OK | os.X_OK)):
        if target.exists() and (not os.access(target, access) or not target.stat().st_mode & 0o222):
            raise HarnessError(
                f"the {what} is read-only; nothing was written",
                where=str(target),
                fix="make it writable (chmod u+w) or pass --store with a writable path",
            )


def check_store(path: str | Path, *, replacing: bool = False) -> None:
    """Fail early (before any evaluation or validation) if `path` cannot be written as a store; writes
    nothing. An existing file must be DuckDB unless `replacing` it (`harness ingest --rebuild`)."""
    path = Path(path)
    exists = _existing_store_file(path)
    _check_writable(path)
    if exists and not replacing:
        with open_store(path, read_only=True):
            pass


def rebuild(path: Path, submissions: Sequence[tuple[Submission, str | None]], tiers: TierOf | None = None) -> int:
    """Build a fresh store from `submissions` beside `path`, then atomically replace `path` (the file a
    link points to: the link stays). On any error the existing store is left as it was."""
    check_store(path, replacing=True)
    path = Path(os.path.realpath(path))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".building", dir=path.parent)
    except OSError as error:
        raise HarnessError(
            f"cannot write beside the store: {error.strerror}; nothing was written",
            where=str(path.parent),
            fix="the store's folder must be writable; use --store with a writable path",
        ) from None
    os.close(fd)
    os.unlink(tmp)  # DuckDB must create the file itself
    try:
        with open_store(tmp) as store:
            written = store.ingest(submissions, tiers=tiers)
        try:
            os.replace(tmp, path)
        except OSError as error:
            raise HarnessError(
                f"cannot replace the store: {error.strerror}; the existing store is unchanged",
                where=str(path),
                fix="the store and its folder must be writable; use --store with a writable path",
            ) from None
    finally:
        for leftover in (tmp, tmp + ".wal", tmp + ".lock"):
            Path(leftover).unlink(missing_ok=True)
    return written


#: the largest leaderboard whose ranks use paired bootstrap tests (cost: O(models^2 x resamples))
PAIRED_LIMIT = 300


def _bootstrap_index(boots: pd.DataFrame) -> dict[str, tuple[tuple[Any, int, Any], Any]]:
    """run_id -> (pairing key, values) of `main_bootstraps` rows. Two runs pair when their keys agree:
    the same seed, number of values and dataset fingerprints (missing ones count as equal)."""

    def plain(value: Any) -> Any:
        return None if value is None or (not isinstance(value, str) and pd.isna(value)) else value

    return {
        str(run): ((plain(seed), len(values), plain(prints)), values)
        for run, seed, values, prints in zip(boots["run_id"], boots["seed"], boots["values"], boots["fingerprints"], strict=True)
    }  # fmt: skip


def _paired_groups(
    run_ids: Sequence[str], index: dict[str, tuple[tuple[Any, int, Any], Any]], eligible: set[str]
) -> list[tuple[Any, Any]]:
    """(positions in `run_ids`, stacked distributions) of every set of two or more runs among
    `eligible` whose main-metric bootstraps pair up (`significance_ranks`' paired_groups)."""
    members: dict[tuple[Any, int, Any], list[tuple[int, Any]]] = {}
    for position, run in enumerate(run_ids):
        if run in eligible and run in index:
            key, values = index[run]
            members.setdefault(key, []).append((position, values))
    return [
        (np.asarray([p for p, _ in group], dtype=np.int64), np.stack([np.asarray(v) for _, v in group]))
        for _, group in sorted(members.items(), key=lambda item: repr(item[0]))
        if len(group) >= 2
    ]


@dataclass(frozen=True)
class RankedBoard:
    """A leaderboard with ranks under family-wise error control (`Store.rank_rows`).

    table: board_rows columns plus rank and rank_worst (a simultaneous 95% interval of each
    model's true rank, see `harness.stats.significance_ranks`; missing on a diagnostic board) and
    paired (whether the row was compared by paired bootstrap with others); paired_models: how
    many rows were; over_paired_limit: True when the board was too large for paired tests (CIs
    only); diagnostic: the metric is a diagnostic, shown but not ranked; pairs and
    significant_pairs: the tests Holm's procedure ran and how many it found significant.
    """

    table: pd.DataFrame
    paired_models: int
    over_paired_limit: bool
    diagnostic: bool = False
    pairs: int = 0
    significant_pairs: int = 0


@dataclass(frozen=True)
class MeanRanks:
    """The aggregate view (`Store.mean_ranks`).

    table: overall, model_id, family, mean_rank and one rank column per averaged task; missing:
    the models left out and the tasks they lack; averaged: task, metric (its main metric) and
    higher_is_better of each task in the mean; excluded: task, metric and reason of each
    selected task left out (its main metric is a diagnostic).
    """

    table: pd.DataFrame
    missing: pd.DataFrame
    averaged: pd.DataFrame
    excluded: pd.DataFrame
