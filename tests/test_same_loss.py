"""harness/same_loss.py (which checkpoints are at the same loss, the default family, the settings) and the
store queries behind the same-loss view, checkpoint series and boards (harness/store.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from same_loss_store import FAMILY, STEPS, add_same_loss_family

from harness.errors import HarnessError
from harness.same_loss import (
    DEFAULT_TOLERANCE_NATS,
    SameLossSettings,
    default_family,
    load_same_loss_settings,
    select_same_loss,
)
from harness.store import open_store
from harness.synthetic import synthetic_store


def losses(values: list[float], lows: list[float] | None = None, highs: list[float] | None = None) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "model_id": [f"o/m{i}" for i in range(len(values))],
            "value": values,
            "ci_low": lows if lows is not None else [np.nan] * len(values),
            "ci_high": highs if highs is not None else [np.nan] * len(values),
        }
    )


def test_the_absolute_rule_admits_losses_within_the_tolerance_of_the_best() -> None:
    frame = losses([3.10, 3.05, 3.149, 3.15, 3.2, 3.05 + 1e-13])
    selection = select_same_loss(frame, "absolute", 0.1)
    assert selection.best == "o/m1" and selection.best_loss == 3.05
    assert selection.mask.tolist() == [True, True, True, True, False, True]  # 3.15 is on the bound: in
    assert "within 0.1 nats of the best (3.05)" in selection.rule
    assert select_same_loss(frame, "absolute", 0.0).mask.sum() == 2  # the best and its rounding twin


def test_the_ci_rule_admits_losses_inside_the_best_models_interval() -> None:
    frame = losses([3.10, 3.05, 3.07, 3.08], lows=[3.0, 3.04, 3.0, 3.0], highs=[3.2, 3.075, 3.2, 3.2])
    selection = select_same_loss(frame, "ci")
    assert selection.mask.tolist() == [False, True, True, False]
    assert "inside the 95% interval of the best (3.05 [3.04, 3.075])" in selection.rule
    no_interval = select_same_loss(losses([3.1, 3.05, 3.05]), "ci")
    assert no_interval.mask.tolist() == [False, True, True] and "has no interval" in no_interval.rule


def test_ties_for_the_best_are_broken_by_model_id_and_bad_input_is_an_error() -> None:
    frame = losses([3.0, 3.0]).iloc[::-1]
    assert select_same_loss(frame).best == "o/m0"
    with pytest.raises(ValueError, match="no losses"):
        select_same_loss(losses([]))
    with pytest.raises(ValueError, match="unknown rule"):
        select_same_loss(losses([3.0]), "relative")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="tolerance_nats"):
        select_same_loss(losses([3.0]), "absolute", -0.1)


def test_the_default_family_is_the_configured_one_else_the_best_covered() -> None:
    coverage = pd.DataFrame({"family": ["a", "b", "c", "d"], "models": [12, 12, 30, 0]})
    assert default_family(coverage) == ("c", default_family(coverage)[1])
    assert default_family(coverage, "a")[0] == "a"
    family, why = default_family(coverage, "missing")
    assert family == "c" and "not in the store" in why
    assert default_family(coverage, "d")[0] == "d"  # configured: shown even with no model (the page says so)
    assert default_family(pd.DataFrame({"family": ["x"], "models": [0]}))[0] is None
    tie = pd.DataFrame({"family": ["b", "a"], "models": [5, 5]})
    assert default_family(tie)[0] == "a"


def test_settings_are_read_from_the_same_loss_table(tmp_path: Path) -> None:
    assert load_same_loss_settings(None) == SameLossSettings()
    assert load_same_loss_settings(tmp_path / "missing.toml") == SameLossSettings(None, DEFAULT_TOLERANCE_NATS)
    file = tmp_path / "leaderboard.toml"
    file.write_text('[ladder]\noff = ["calib"]\n\n[same_loss]\nfamily = "gpt"\ntolerance_nats = 0.02\n')
    assert load_same_loss_settings(file) == SameLossSettings("gpt", 0.02)
    for text, message in (
        ("[same_loss]\nfamliy = 'gpt'\n", "unknown key"),
        ("[same_loss]\nfamily = 3\n", "family must be a non-empty string"),
        ("[same_loss]\ntolerance_nats = -1\n", "tolerance_nats must be a number"),
        ("[same_loss]\ntolerance_nats = true\n", "tolerance_nats must be a number"),
        ("same_loss = 1\n", "must be a table"),
        ("[same_loss\n", "cannot read"),
    ):
        file.write_text(text)
        with pytest.raises(HarnessError, match=message):
            load_same_loss_settings(file)
    with pytest.raises(HarnessError, match="does not exist"):
        load_same_loss_settings(tmp_path / "gone.toml", required=True)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("same-loss-store") / "store.duckdb"
    synthetic_store(path, n_models=30, n_tasks=0, seed=4, task_names=("ood", "lm_loss", "flatness", "compression"))
    return add_same_loss_family(path, runs_per_optimizer=1)


def test_family_coverage_counts_models_with_every_task(store: Path) -> None:
    with open_store(store, read_only=True) as db:
        coverage = db.family_coverage(["lm_loss", "flatness"]).set_index("family")["models"]
        rows = db.board_rows(["lm_loss", "flatness"])
        both = rows.groupby("model_id")["task"].nunique().eq(2)
        expected = rows.drop_duplicates("model_id").set_index("model_id")["family"][both[both].index]
        assert coverage.to_dict() == {f: int(n) for f, n in expected.value_counts().items()} | {
            f: 0 for f in coverage.index if f not in set(expected)
        }
        assert coverage[FAMILY] == 4 * len(STEPS)
        assert db.family_coverage(["lm_loss", "flatness"], tiers=["verified"])["models"].sum() == 0


def test_checkpoint_series_reads_training_run_step_and_tokens_from_the_cards(store: Path) -> None:
    with open_store(store, read_only=True) as db:
        series = db.checkpoint_series()
        assert set(series["family"]) == {FAMILY} and len(series) == 4 * len(STEPS)
        for _, run in series.groupby("training_run"):
            assert run["step"].tolist() == list(STEPS)  # ordered by step
            assert (run["tokens_seen"] == run["step"] * 32 * 128).all()
        one = db.checkpoint_series(training_runs=[f"{FAMILY}-adam-b0"])
        assert len(one) == len(STEPS) and db.checkpoint_series(families=["synth-gpt"]).empty


def test_board_metric_values_and_task_versions(store: Path) -> None:
    with open_store(store, read_only=True) as db:
        values = db.board_metric_values("ood", ["auroc.energy.near", "auroc.energy.far"])
        board = db.board_rows(["ood"], "auroc.energy.near").set_index("model_id")["value"]
        near = values[values["metric"] == "auroc.energy.near"].set_index("model_id")["value"]
        assert near.sort_index().equals(board.sort_index())
        versions = db.task_versions("ood")
        assert len(versions) == 1 and list(versions["splits"].iloc[0]) == ["test"]
        assert versions["models"].iloc[0] == len(board)


def test_ranked_by_reference_ranks_each_reference_apart(store: Path) -> None:
    with open_store(store, read_only=True) as db:
        grouped = db.ranked_by_reference("compression")
        table = grouped.table
        assert table["reference"].notna().all() and table["reference"].is_monotonic_increasing
        for _, part in table.groupby("reference"):
            alone = db.ranked_leaderboard("compression", models=part["model_id"].tolist()).table
            assert (
                part["rank"].tolist() == alone["rank"].tolist()
                and part["model_id"].tolist() == alone["model_id"].tolist()
            )
        assert grouped.pairs == sum(
            db.ranked_leaderboard("compression", models=p["model_id"].tolist()).pairs
            for _, p in table.groupby("reference")
        )
