from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from factories import make_submission

from harness import store as store_module
from harness.errors import HarnessError
from harness.runner import EvalOptions, load_models, unfit_reason
from harness.schema import MetricValue, Submission
from harness.store import open_store
from harness.submissions import find_submissions, read_submission
from harness.sweep import run_and_record
from harness.synthetic import synthetic_store
from harness.tasks import load_specs
from harness.zoo import zoo_models


@pytest.fixture(scope="module")
def evaluated(tiny_zoo: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The tiny zoo evaluated on calib: (submissions folder, incrementally built store)."""
    root = tmp_path_factory.mktemp("evaluated")
    options = EvalOptions(cache_dir=root / "cache")
    spec = load_specs().get("calib")
    handles = [h for h in load_models(zoo_models(tiny_zoo), options, "cpu") if unfit_reason(spec, h) is None]
    run_and_record(handles, [spec], options, out=root / "submissions", store_path=root / "incremental.duckdb")
    return root / "submissions", root / "incremental.duckdb"


def loaded(folder: Path) -> list[tuple[Submission, str | None]]:
    return [(read_submission(f), str(f)) for f in find_submissions([folder])]


def test_rebuilt_store_equals_incremental_store(evaluated: tuple[Path, Path], tmp_path: Path) -> None:
    submissions, incremental = evaluated
    rebuilt = tmp_path / "rebuilt.duckdb"
    store_module.rebuild(rebuilt, loaded(submissions))
    with open_store(incremental, read_only=True) as a, open_store(rebuilt, read_only=True) as b:
        assert a.dump() == b.dump()
        assert len(a.dump()["runs"]) == 9  # the tiny zoo: 6 balanced + 3 long-tailed classifiers
        for task in a.tasks():
            assert a.leaderboard(task).equals(b.leaderboard(task))


def test_ingest_twice_gives_the_same_store(evaluated: tuple[Path, Path], tmp_path: Path) -> None:
    submissions, _ = evaluated
    with open_store(tmp_path / "s.duckdb") as store:
        store.ingest(loaded(submissions))
        once = store.dump()
        store.ingest(loaded(submissions))
        assert store.dump() == once


def test_failed_batch_ingests_nothing(
    evaluated: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    submissions, _ = evaluated
    batch = loaded(submissions)
    original = store_module.Store._ingest_one
    calls = []

    def failing(self: store_module.Store, sub: Submission, file: str | None, tier_of: Any) -> int:
        calls.append(sub.submission_id)
        if len(calls) == 3:
            raise RuntimeError("disk on fire")
        return original(self, sub, file, tier_of)

    monkeypatch.setattr(store_module.Store, "_ingest_one", failing)
    with open_store(tmp_path / "s.duckdb") as store:
        with pytest.raises(RuntimeError):
            store.ingest(batch)
        assert all(rows == [] for table, rows in store.dump().items() if table != "meta")


def test_leaderboard_ranks_by_direction_ties_share_rank_and_skips_limited(tmp_path: Path) -> None:
    def sub(sid: str, model: str, value: float, limit: int | None = None) -> Submission:
        base = make_submission(submission_id=sid, sample_limit=limit)
        run = base.results[0].model_copy(
            update={
                "run_id": f"{sid}-calib",
                "metrics": [MetricValue(name="ece", value=value, higher_is_better=False, n=10)],
            }
        )
        return base.model_copy(update={"model": base.model.model_copy(update={"name": model}), "results": [run]})

    with open_store(tmp_path / "s.duckdb") as store:
        store.ingest(
            [
                (sub("a", "m1", 0.3), None),
                (sub("b", "m2", 0.1), None),
                (sub("c", "m3", 0.1), None),
                (sub("d", "m4", 0.0, limit=5), None),
            ]
        )
        board = store.leaderboard("calib")
    assert board["model_id"].tolist() == ["o/m2", "o/m3", "o/m1"]  # lower ECE first; m4 (--limit) absent
    assert board["rank"].tolist() == [1, 1, 3]


def test_quality_boards_are_ranked_diagnostics_are_not_and_mean_ranks_say_what_they_averaged(tmp_path: Path) -> None:
    path = synthetic_store(
        tmp_path / "s.duckdb", n_models=12, n_tasks=0, seed=3, bootstrap_values=200,
        task_names=("calib", "lm_loss", "flatness", "synth_blimp"), bulk=False,
    )  # fmt: skip
    with open_store(path, read_only=True) as store:
        flat = store.ranked_leaderboard("flatness")  # main metric hessian_trace: a diagnostic
        assert flat.diagnostic and flat.pairs == 0 and len(flat.table) == 12
        assert flat.table["rank"].isna().all() and flat.table["rank_worst"].isna().all()
        assert flat.table["value"].is_monotonic_increasing  # sorted by value (lower = flatter)
        assert store.ranked_leaderboard("calib", "temperature").diagnostic  # a fitted parameter
        ece = store.ranked_leaderboard("calib")
        assert not ece.diagnostic and ece.pairs == 12 * 11 // 2 and ece.paired_models == 12
        assert ece.table["rank"].min() == 1 and (ece.table["rank"] <= ece.table["rank_worst"]).all()
        assert ece.table["value"].is_monotonic_increasing  # ranks never contradict the values (lower ece first)
        result = store.mean_ranks(["calib", "flatness", "lm_loss"])
        assert result.excluded.to_dict("records") == [
            {"task": "flatness", "metric": "hessian_trace", "reason": "its main metric is a diagnostic"}
        ]
        assert result.averaged["task"].tolist() == ["calib", "lm_loss"]
        assert result.averaged["metric"].tolist() == ["ece", "loss_nats"]
        assert list(result.table.columns) == ["overall", "model_id", "family", "mean_rank", "calib", "lm_loss"]
        assert len(result.table) == 12 and result.missing.empty
        assert np.allclose(result.table["mean_rank"], result.table[["calib", "lm_loss"]].mean(axis=1))
        only = store.mean_ranks(["flatness"])
        assert only.table.empty and only.averaged.empty and only.excluded["task"].tolist() == ["flatness"]


def test_a_quality_board_of_equal_values_ties_everyone(tmp_path: Path) -> None:
    def sub(sid: str, model: str) -> Submission:
        base = make_submission(submission_id=sid)
        metric = MetricValue(name="ece", value=0.125, higher_is_better=False, ci_low=0.1, ci_high=0.15, n=10)
        run = base.results[0].model_copy(update={"run_id": f"{sid}-calib", "metrics": [metric]})
        return base.model_copy(update={"model": base.model.model_copy(update={"name": model}), "results": [run]})

    with open_store(tmp_path / "s.duckdb") as store:
        store.ingest([(sub(f"s{i}", f"m{i}"), None) for i in range(24)])
        board = store.ranked_leaderboard("calib")
    assert not board.diagnostic and board.significant_pairs == 0
    assert board.table["rank"].tolist() == [1] * 24 and board.table["rank_worst"].tolist() == [24] * 24


def test_a_file_that_is_not_duckdb_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "results.duckdb"
    bad.write_text("not a database")
    with pytest.raises(HarnessError, match="not a valid DuckDB database") as error:
        store_module.check_store(bad)
    assert str(bad) in str(error.value)
    assert bad.read_text() == "not a database"
    with pytest.raises(HarnessError, match="folder"):
        store_module.check_store(tmp_path)


def test_read_only_store_must_exist(tmp_path: Path) -> None:
    with pytest.raises(HarnessError, match="does not exist"), open_store(tmp_path / "missing.duckdb", read_only=True):
        pass


def test_metric_catalog_and_slim_board_rows_equal_a_pandas_reference(tmp_path: Path) -> None:
    """The catalog (every (task, metric) of the newest ranked run per model and task, with model counts)
    against the same computed in pandas from the raw tables, with and without a family filter; the slim
    board is the full board's columns."""
    path = tmp_path / "store.duckdb"
    synthetic_store(path, 30, 4, seed=3)
    synthetic_store(path, 12, 4, seed=4, replace=False)  # a second batch: newer runs of some models
    with open_store(path, read_only=True) as store:
        runs = store.connection.execute("SELECT * FROM runs_tiered").df()
        metrics = store.connection.execute("SELECT run_id, metric FROM metrics").df()
        models = store.connection.execute("SELECT model_id, family FROM models").df()
        families = sorted(models["family"].unique())
        for chosen in ([], families[:1]):
            shown = models[models["family"].isin(chosen)] if chosen else models
            ranked = runs[runs["ranked"] & runs["model_id"].isin(shown["model_id"])]
            latest = ranked.sort_values(["seq", "run_id"]).groupby(["task", "model_id"]).tail(1)
            joined = latest[["run_id", "task", "main_metric"]].merge(metrics, on="run_id")
            expected = (
                joined.assign(is_main=joined["metric"] == joined["main_metric"])
                .groupby(["task", "metric"])
                .agg(is_main=("is_main", "any"), models=("run_id", "count"))
                .reset_index()
            )
            catalog = store.metric_catalog(families=chosen)
            got = catalog[["task", "metric", "is_main", "models"]].sort_values(["task", "metric"])
            assert (
                got.reset_index(drop=True)
                .astype(expected.dtypes)
                .equals(expected.sort_values(["task", "metric"]).reset_index(drop=True))
            )
            # the main metric of each task first
            assert catalog.groupby("task")["is_main"].first().all()
        task = store.tasks()[0]
        full = store.board_rows([task], families=families[:1])
        slim = store.board_rows([task], families=families[:1], slim=True)
        assert list(slim.columns) == ["task", "model_id", "value", "ci_low", "ci_high", "tier"]
        assert slim.equals(full[list(slim.columns)])


def test_model_cards_are_model_table_without_its_counts(tmp_path: Path) -> None:
    """The Correlations page's card query: the same models, families and card texts as `model_table`
    under every filter, in model-id order."""
    path = tmp_path / "store.duckdb"
    synthetic_store(path, 25, 2, seed=5)
    with open_store(path, read_only=True) as store:
        everything = store.model_table()
        families = sorted(everything["family"].dropna().unique())
        tags = sorted({t for row in everything["tags"] for t in row})
        for kwargs in (
            {},
            {"families": families[:1]},
            {"families": families},
            {"tags": tags[:1]},
            {"families": ["none"]},
        ):
            cards = store.model_cards(**kwargs)
            expected = store.model_table(**kwargs)[["model_id", "family", "card"]]
            assert cards.equals(expected), kwargs
            assert list(cards["model_id"]) == sorted(cards["model_id"])
        assert len(store.model_cards()) == 25


def test_a_new_store_is_created_whole_or_not_at_all(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A store is made beside its path and renamed onto it: a creator that dies half way leaves no store
    file (a reader would find a DuckDB file without the store's tables), and the next writer cleans up.
    The tables equal those of a store upgraded in place from an empty DuckDB file."""
    import duckdb

    import harness.store as store_module

    def columns(path: Path) -> list[tuple[str, str, str]]:
        with duckdb.connect(str(path), read_only=True) as connection:
            rows = connection.execute(
                "SELECT table_name, column_name, data_type FROM duckdb_columns() ORDER BY ALL"
            ).fetchall()
        return [(str(a), str(b), str(c)) for a, b, c in rows]

    fresh, in_place = tmp_path / "fresh.duckdb", tmp_path / "in_place.duckdb"
    duckdb.connect(str(in_place)).close()  # an empty DuckDB file: upgraded where it is
    for path in (fresh, in_place):
        with open_store(path):
            pass
    assert columns(fresh) == columns(in_place) and len(columns(fresh)) > 40

    target = tmp_path / "killed.duckdb"
    real_connect = store_module._connect

    def dies_after_the_tables(path: Path, read_only: bool) -> Any:
        connection = real_connect(path, read_only)
        connection.execute(store_module.SCHEMA)
        raise KeyboardInterrupt  # as a SIGKILL would, after some of the tables

    monkeypatch.setattr(store_module, "_connect", dies_after_the_tables)
    with pytest.raises(KeyboardInterrupt), open_store(target):
        pass
    assert not target.exists() and list(tmp_path.glob(".killed.duckdb.*.creating*"))
    monkeypatch.setattr(store_module, "_connect", real_connect)
    with open_store(target) as store:
        assert store.summary()["runs"] == 0
    assert not list(tmp_path.glob(".killed.duckdb.*.creating*"))  # the dead creator's file is gone
    with open_store(target, read_only=True) as store:
        assert store.summary()["models"] == 0
