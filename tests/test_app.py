"""The Streamlit app page by page with streamlit.testing's AppTest (no browser), on three stores:
the tiny digits zoo evaluated for real, a synthetic store with language-model and compression
content, and an empty store."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import scipy.stats
from streamlit.testing.v1 import AppTest

from harness.runner import EvalOptions, load_models, run_and_record, unfit_reason
from harness.schema import TaskSpec
from harness.stats import significance_ranks
from harness.store import open_store
from harness.synthetic import synthetic_store, synthetic_submissions
from harness.tasks import load_specs
from harness.zoo import zoo_models

APP = Path(__file__).resolve().parents[1] / "app" / "leaderboard.py"
PAGES = ("pages/ranking.py", "pages/model.py", "pages/correlations.py", "pages/compression.py")
ZOO_TASKS = ("calib", "ood", "longtail")
#: language-model and compression tasks of the synthetic store (the real LM zoo is slow to evaluate)
LM_TASKS = ("lm_loss", "flatness", "synth_blimp", "synth_mc", "probe", "compression", "compression-components")
LIMITED_MODEL = "harness-zoo/digits-mlp-wide"


def build_zoo_store(zoo: Path, folder: Path) -> Path:
    """The tiny digits zoo evaluated on calib, ood and longtail, plus one run made with --limit."""
    store = folder / "zoo.duckdb"
    options = EvalOptions(cache_dir=folder / "cache")
    specs = load_specs()
    handles = load_models(zoo_models(zoo), options, "cpu")
    for name in ZOO_TASKS:
        spec = fast(specs.get(name))
        fitting = [h for h in handles if unfit_reason(spec, h) is None]
        run_and_record(fitting, [spec], options, out=folder / "submissions", store_path=store)
    limited = [h for h in handles if h.card.model_id == LIMITED_MODEL]
    limit_options = EvalOptions(cache_dir=folder / "cache", limit=50)
    run_and_record(limited, [fast(specs.get("calib"))], limit_options, out=folder / "submissions", store_path=store)
    return store


def fast(spec: TaskSpec) -> TaskSpec:
    """The spec with 200 bootstrap resamples instead of 1000 (the app only needs some)."""
    return spec.model_copy(update={"parameters": {**spec.parameters, "n_resamples": 200}})


def build_synthetic_store(path: Path) -> Path:
    return synthetic_store(path, n_models=40, n_tasks=0, seed=1, bootstrap_values=200, task_names=LM_TASKS, bulk=True)


@pytest.fixture(scope="module")
def zoo_store(tiny_zoo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_zoo_store(tiny_zoo, tmp_path_factory.mktemp("app-zoo"))


@pytest.fixture(scope="module")
def lm_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_synthetic_store(tmp_path_factory.mktemp("app-lm") / "lm.duckdb")


@pytest.fixture(scope="module")
def empty_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("app-empty") / "empty.duckdb"
    with open_store(path):
        pass
    return path


def render(store: Path, page: str, monkeypatch: pytest.MonkeyPatch, **params: Any) -> AppTest:
    """Run the app on `store`, switch to `page` with `params` as query parameters; no exception allowed."""
    monkeypatch.setenv("HARNESS_STORE", str(store))
    app = AppTest.from_file(str(APP), default_timeout=120)
    app.query_params.update(params)  # before the first run, as when a browser opens a deep link
    if page != PAGES[0]:
        app.switch_page(page)  # the page files are named as their URL paths
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    return app


def texts(app: AppTest) -> str:
    parts = [e.value for kind in ("markdown", "caption", "subheader", "header", "title", "info", "warning", "error")
             for e in getattr(app, kind)]  # fmt: skip
    return "\n".join(str(p) for p in parts)


def table(app: AppTest, column: str | None = None) -> pd.DataFrame:
    """The first table shown (with `column`, the first one that has it)."""
    for element in app.dataframe:
        value = element.value
        if isinstance(value, pd.DataFrame) and (column is None or column in value.columns):
            return value
    raise AssertionError(f"no table with column {column!r}")


# --------------------------------------------------------------------------- every page, every store


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_on_the_zoo_store(zoo_store: Path, page: str, monkeypatch: pytest.MonkeyPatch) -> None:
    app = render(zoo_store, page, monkeypatch)
    assert not app.error, [e.value for e in app.error]
    assert app.title
    if page != "pages/compression.py":  # the digits zoo has no compressed variants
        assert len(app.download_button) >= 1  # every table has a CSV download


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_on_a_store_with_lm_and_compression_runs(
    lm_store: Path, page: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    params = {"pages/model.py": {"model": "synth/synth-gpt-00025-int4", "task": "compression"}}.get(page, {})
    app = render(lm_store, page, monkeypatch, **params)
    assert not app.error, [e.value for e in app.error]
    assert len(app.download_button) >= 1
    assert len(app.get("plotly_chart")) >= 1


@pytest.mark.parametrize("page", PAGES)
def test_every_page_says_what_to_do_on_an_empty_store(
    empty_store: Path, page: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = render(empty_store, page, monkeypatch)
    assert not app.error
    assert app.info and ("harness" in texts(app) or "reference" in texts(app))


@pytest.mark.parametrize("page", PAGES)
def test_a_missing_store_is_an_error_on_the_page(tmp_path: Path, page: str, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "missing.duckdb"
    app = render(missing, page, monkeypatch)
    assert "No results store" in app.error[0].value
    assert "harness demo" in app.info[0].value
    assert not missing.exists()  # read-only: nothing is created


# --------------------------------------------------------------------------- leaderboard


def test_leaderboard_ranks_the_newest_ranked_run_per_model_and_never_a_limited_one(
    zoo_store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = render(zoo_store, PAGES[0], monkeypatch, task="calib")
    shown = table(app)
    with open_store(zoo_store, read_only=True) as store:
        board = store.leaderboard("calib")
    assert len(shown) == len(board) == 9  # 9 digits models; the --limit run adds no row
    assert sorted(shown["model"].str.extract(r"model=([^&]*)")[0]) == sorted(board["model_id"])
    assert shown["ece"].notna().all() and (shown["CI low"] <= shown["ece"]).all()
    assert "1 run(s) made with `--limit` are not ranked" in texts(app)
    assert "`ece`: **lower is better**" in texts(app)
    # The values are sorted within a rank, lower ECE first.
    for _, group in shown.groupby("rank"):
        assert group["ece"].is_monotonic_increasing


def test_ranks_are_one_plus_the_models_significantly_better_by_paired_bootstrap(
    zoo_store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with open_store(zoo_store, read_only=True) as store:
        board = store.ranked_leaderboard("ood").table
        boots = store.main_bootstraps(board["run_id"].tolist()).set_index("run_id")
    assert board["paired"].all()  # same data and seed: every pair is compared by a paired test
    distributions = np.stack([boots.loc[r, "values"] for r in board["run_id"]])
    for i in range(len(board)):
        better = sum(
            np.percentile(distributions[j] - distributions[i], 2.5) > 0 for j in range(len(board)) if j != i
        )  # AUROC: higher is better
        assert board["rank"].iloc[i] == 1 + better
    app = render(zoo_store, PAGES[0], monkeypatch, task="ood")
    assert table(app)["rank"].tolist() == board["rank"].tolist()
    assert "Every model was compared by a paired bootstrap test" in texts(app)


def test_another_metric_than_the_main_one_falls_back_to_confidence_intervals(
    zoo_store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = render(zoo_store, PAGES[0], monkeypatch, task="ood", metric="fpr95.energy.mean")
    shown = table(app)
    assert "ood · fpr95.energy.mean" in texts(app)
    assert "`fpr95.energy.mean`: **lower is better**" in texts(app)
    assert "non-overlapping 95% CIs" in texts(app)
    expected = significance_ranks(
        shown["fpr95.energy.mean"].to_numpy(), shown["CI low"].to_numpy(), shown["CI high"].to_numpy(),
        higher_is_better=False,
    )  # fmt: skip
    assert shown["rank"].tolist() == expected.rank.tolist()
    assert not shown["paired test"].any()


def test_family_filter_recomputes_ranks_among_the_models_shown(
    zoo_store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = render(zoo_store, PAGES[0], monkeypatch, task="calib", family="digits-lt-mlp")
    shown = table(app)
    assert len(shown) == 3 and set(shown["family"]) == {"digits-lt-mlp"}
    assert shown["rank"].min() == 1


def test_aggregate_view_means_ranks_over_tasks_every_model_ran(
    zoo_store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = render(zoo_store, PAGES[0], monkeypatch, view="Mean rank across tasks")
    shown = table(app)
    assert {"calib", "ood", "mean_rank", "overall"} <= set(shown.columns)  # default: the tasks every model ran
    assert len(shown) == 9
    assert np.allclose(shown["mean_rank"], shown[["calib", "ood"]].mean(axis=1))
    assert shown["mean_rank"].is_monotonic_increasing
    app = render(zoo_store, PAGES[0], monkeypatch, view="Mean rank across tasks", tasks=["calib", "longtail", "ood"])
    assert len(table(app)) == 3  # only the long-tail models ran all three
    assert "6 model(s) not aggregated" in app.expander[0].label


def test_hostile_query_parameters_are_ignored(zoo_store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app = render(zoo_store, PAGES[0], monkeypatch, task="calib'; DROP TABLE runs; --", family="x' OR 1=1")
    assert len(table(app)) >= 1
    app = render(zoo_store, PAGES[1], monkeypatch, model="'; DELETE FROM models; --")
    assert not app.error
    with open_store(zoo_store, read_only=True) as store:
        assert len(store.tasks()) == 3


# --------------------------------------------------------------------------- model page


def test_model_page_shows_card_runs_every_metric_and_a_reliability_diagram(
    zoo_store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = render(zoo_store, PAGES[1], monkeypatch, model=LIMITED_MODEL, task="calib")
    assert app.header[0].value == LIMITED_MODEL
    assert app.metric[0].value == "digits-mlp"
    runs = table(app, "status")
    assert "not ranked: --limit 50" in runs["status"].tolist()
    assert (runs["status"] == "ranked (newest)").sum() == 2  # calib and ood
    metrics = table(app, "convention")
    assert {"calib", "ood"} == set(metrics["task"])
    assert set(metrics.loc[metrics["metric"] == "ece", "direction"]) == {"lower is better"}
    assert (metrics.loc[metrics["metric"].str.startswith("auroc"), "direction"] == "higher is better").all()
    charts = app.get("plotly_chart")
    assert len(charts) == 1 and "Reliability" in charts[0].proto.spec
    assert "Main metric `ece`: **lower is better**" in texts(app)


def test_model_page_shows_roc_curves_per_ood_set_and_per_class_bars(
    zoo_store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = render(zoo_store, PAGES[1], monkeypatch, model=LIMITED_MODEL, task="ood", score="msp")
    spec = app.get("plotly_chart")[0].proto.spec
    assert "ROC per OOD set, score msp" in spec
    for ood_set in ("near", "noise", "patterns", "permuted"):
        assert ood_set in spec
    assert "FPR@95TPR" in texts(app) and "lower is better" in texts(app)
    app = render(zoo_store, PAGES[1], monkeypatch, model="harness-zoo/digits-lt100-mlp-none", task="longtail")
    assert "Per-class accuracy" in app.get("plotly_chart")[0].proto.spec


# --------------------------------------------------------------------------- correlations


def test_correlations_match_scipy_on_the_values_plotted(lm_store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    x, y = "lm_loss/loss_nats", "synth_blimp/lm_eval.acc"
    app = render(lm_store, PAGES[2], monkeypatch, x=x, y=y, family="synth-gpt")
    stats = table(app, "coefficient").set_index("coefficient")
    with open_store(lm_store, read_only=True) as store:
        xs = store.board_rows(["lm_loss"], "loss_nats", families=["synth-gpt"]).set_index("model_id")["value"]
        ys = store.board_rows(["synth_blimp"], "lm_eval.acc", families=["synth-gpt"]).set_index("model_id")["value"]
    pairs = pd.concat([xs, ys], axis=1, join="inner").to_numpy()
    assert stats.loc["Spearman ρ", "n models"] == len(pairs) >= 5
    assert stats.loc["Spearman ρ", "estimate"] == pytest.approx(scipy.stats.spearmanr(pairs[:, 0], pairs[:, 1])[0])
    assert stats.loc["Kendall τ-b", "estimate"] == pytest.approx(scipy.stats.kendalltau(pairs[:, 0], pairs[:, 1])[0])
    assert stats.loc["Pearson r", "estimate"] == pytest.approx(scipy.stats.pearsonr(pairs[:, 0], pairs[:, 1])[0])
    assert (stats["95% CI low"] <= stats["estimate"]).all() and (stats["estimate"] <= stats["95% CI high"]).all()
    charts = [c.proto.spec for c in app.get("plotly_chart")]
    assert "least-squares fit" in charts[0]
    assert len(charts) == 3  # the main scatter, then loss and flatness against downstream side by side


def test_correlations_accept_card_fields_and_a_log_axis(lm_store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app = render(lm_store, PAGES[2], monkeypatch, x="card.n_parameters", y="synth_mc/lm_eval.acc", logx="true")
    spec = app.get("plotly_chart")[0].proto.spec
    assert '"type":"log"' in spec.replace(" ", "")
    assert "parameters (card)" in spec


# --------------------------------------------------------------------------- compression


def test_compression_page_plots_quality_against_sparsity_and_bits_and_divergence_against_ppl(
    lm_store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reference = "synth/synth-gpt-00025"
    app = render(lm_store, PAGES[3], monkeypatch, reference=reference, quality="lm_loss/loss_nats")
    charts = [c.proto.spec for c in app.get("plotly_chart")]
    assert "Pruning: quality against sparsity" in charts[0] and "Quantization: quality against bits" in charts[0]
    assert "perplexity ratio" in charts[1] and "SDTM" in charts[1] and "JS divergence" in charts[1]
    variants = table(app, "method")
    assert len(variants) == 7  # the reference and its six variants
    assert "`lm_loss/loss_nats`: **lower is better**" in texts(app)
    links = [link.proto.page for link in app.get("page_link")]
    assert any("model" in page for page in links)  # per-component sensitivity of the reference


# --------------------------------------------------------------------------- store functions behind the pages


def test_bulk_ingest_writes_the_same_tables_as_ingest(tmp_path: Path) -> None:
    submissions = list(synthetic_submissions(14, 0, seed=3, bootstrap_values=20, task_names=["calib", "compression"]))
    with open_store(tmp_path / "one-by-one.duckdb") as a, open_store(tmp_path / "bulk.duckdb") as b:
        a.ingest([(s, None) for s in submissions])
        b.ingest_bulk([(s, None) for s in submissions])
        assert a.dump() == b.dump()
        b.ingest_bulk([(s, None) for s in submissions])  # idempotent, like ingest
        assert a.dump() == b.dump()


def test_the_app_never_writes_the_store(zoo_store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = (zoo_store.stat().st_mtime_ns, zoo_store.read_bytes())
    for page in PAGES:
        render(zoo_store, page, monkeypatch)
    assert (zoo_store.stat().st_mtime_ns, zoo_store.read_bytes()) == before
    assert not Path(str(zoo_store) + ".wal").exists()
    assert os.access(zoo_store, os.R_OK)
