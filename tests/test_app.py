"""The Streamlit app page by page with streamlit.testing's AppTest (no browser), on four stores:
the tiny digits zoo evaluated for real, a synthetic store with language-model and compression
content, an empty store, and a store of hostile submissions (Markdown, HTML, links and LaTeX in
every text field) of every trust tier."""

from __future__ import annotations

import json
import os
import random
import re
import string
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pandas as pd
import pytest
import scipy.stats
from factories import SHA, make_submission
from markdown_it import MarkdownIt
from rank_reference import ranks_reference
from streamlit.testing.v1 import AppTest

from harness.runner import EvalOptions, load_models, unfit_reason
from harness.schema import MetricValue, ModelCard, RunResult, Submission, TaskSpec
from harness.stats import significance_ranks
from harness.store import open_store
from harness.sweep import run_and_record
from harness.synthetic import synthetic_store, synthetic_submissions
from harness.tasks import load_specs
from harness.trust import BADGES, TIERS, Tier
from harness.zoo import zoo_models

APP = Path(__file__).resolve().parents[1] / "app" / "leaderboard.py"
sys.path.insert(0, str(APP.parent))  # the app's own modules, as `streamlit run` finds them
from common import SELF_REPORTED_NOTE, code, plain  # noqa: E402

PAGES = ("views/ranking.py", "views/model.py", "views/correlations.py", "views/compression.py")
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
    if page != "views/compression.py":  # the digits zoo has no compressed variants
        assert len(app.download_button) >= 1  # every table has a CSV download


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_on_a_store_with_lm_and_compression_runs(
    lm_store: Path, page: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    params = {"views/model.py": {"model": "synth/synth-gpt-00025-int4", "task": "compression"}}.get(page, {})
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
    assert sorted(shown["model"]) == sorted(board["model_id"])  # model ids: buttons that open their pages
    assert shown["ece"].notna().all() and (shown["CI low"] <= shown["ece"]).all()
    assert "1 run(s) made with `--limit` are not ranked" in texts(app)
    assert "`ece`: **lower is better**" in texts(app)
    # The values are sorted within a rank, lower ECE first.
    for _, group in shown.groupby("rank"):
        assert group["ece"].is_monotonic_increasing


def test_ranks_control_the_family_wise_error_with_paired_bootstraps(
    zoo_store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with open_store(zoo_store, read_only=True) as store:
        ranked = store.ranked_leaderboard("ood")
        boots = store.main_bootstraps(ranked.table["run_id"].tolist()).set_index("run_id")
    board = ranked.table
    assert board["paired"].all()  # same data and seed: every pair is compared by a paired test
    distributions = np.stack([boots.loc[r, "values"] for r in board["run_id"]])
    expected = ranks_reference(
        board["value"].to_numpy(), board["ci_low"].to_numpy(), board["ci_high"].to_numpy(), True,
        [(np.arange(len(board)), distributions)], n_samples=board["n"].to_numpy(np.float64),
    )  # fmt: skip  # AUROC: higher is better
    assert board["rank"].tolist() == expected["rank"]
    assert board["rank_worst"].tolist() == expected["rank_worst"]
    assert ranked.significant_pairs == expected["significant_pairs"]
    app = render(zoo_store, PAGES[0], monkeypatch, task="ood")
    shown = table(app)
    assert shown["rank"].tolist() == board["rank"].tolist()
    assert shown["worst rank"].tolist() == board["rank_worst"].tolist()
    assert shown["auroc.energy.mean"].is_monotonic_decreasing  # a better value is never listed below a worse one
    assert "Every pair was compared by a paired bootstrap test" in texts(app)
    assert f"(Holm, 5%: {ranked.significant_pairs} of {ranked.pairs} pairs significant)" in texts(app)


def test_diagnostics_are_shown_without_ranks_and_never_enter_the_mean_rank(
    zoo_store: Path, lm_store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = render(zoo_store, PAGES[0], monkeypatch, task="calib", metric="temperature")
    shown = table(app)
    assert set(shown["rank"]) == {"—"} and set(shown["worst rank"]) == {"—"}
    assert "`temperature` is a **diagnostic**" in texts(app)
    app = render(lm_store, PAGES[0], monkeypatch, task="flatness")  # its main metric, hessian_trace
    shown = table(app)
    assert set(shown["rank"]) == {"—"} and shown["hessian_trace"].is_monotonic_increasing
    assert "`hessian_trace` is a **diagnostic**" in texts(app)
    # Asked for, flatness is left out of the mean with a note; the default never proposes it.
    app = render(lm_store, PAGES[0], monkeypatch, view="Mean rank across tasks", tasks=["lm_loss", "flatness"])
    shown = table(app)
    assert "flatness" not in shown.columns and np.allclose(shown["mean_rank"], shown["lm_loss"])
    assert "Not averaged" in texts(app) and "`flatness` (`hessian_trace`)" in texts(app)
    assert "Mean rank over 1 task" in texts(app) and "`lm_loss`: loss\\_nats" in texts(app)
    app = render(lm_store, PAGES[0], monkeypatch, view="Mean rank across tasks")
    chosen = list(app.multiselect(key="tasks").value)
    assert chosen and "flatness" not in chosen and "Not averaged" not in texts(app)
    app = render(lm_store, PAGES[0], monkeypatch, view="Mean rank across tasks", tasks=["flatness"])
    assert "None of the selected tasks has a quality metric" in texts(app)


def test_another_metric_than_the_main_one_falls_back_to_confidence_intervals(
    zoo_store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = render(zoo_store, PAGES[0], monkeypatch, task="ood", metric="fpr95.energy.mean", details="true")
    shown = table(app)
    assert f"ood · {plain('fpr95.energy.mean')}" in texts(app)
    assert "`fpr95.energy.mean`: **lower is better**" in texts(app)
    assert "pairs are tested from their 95% CIs" in texts(app)
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
    assert app.header[0].value == plain(LIMITED_MODEL)
    assert app.metric[0].value == plain("digits-mlp")
    runs = table(app, "status")
    assert "not ranked: --limit 50" in runs["status"].tolist()
    assert (runs["status"] == "ranked (newest)").sum() == 2  # calib and ood
    metrics = table(app, "direction")
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
    assert sum("least-squares fit" in c for c in charts) == 1  # the main scatter
    assert any("Loss against downstream, coloured by flatness" in c for c in charts)  # the same-loss view first


def test_correlations_accept_card_fields_and_a_log_axis(lm_store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app = render(lm_store, PAGES[2], monkeypatch, x="card.n_parameters", y="synth_mc/lm_eval.acc", logx="true")
    spec = next(c.proto.spec for c in app.get("plotly_chart") if "least-squares fit" in c.proto.spec)
    assert '"type":"log"' in spec.replace(" ", "")
    assert "Parameters (card, count)" in spec


# --------------------------------------------------------------------------- compression


def test_compression_page_plots_quality_against_sparsity_and_bits_and_divergence_against_ppl(
    lm_store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reference = "synth/synth-gpt-00025"
    app = render(lm_store, PAGES[3], monkeypatch, reference=reference, quality="lm_loss/loss_nats")
    charts = [c.proto.spec for c in app.get("plotly_chart")]
    assert "Pruning: quality against sparsity" in charts[0] and "Quantization: quality against bits" in charts[0]
    assert "perplexity ratio" in charts[1] and "SDTM" in charts[1] and "JS divergence" in charts[1]
    variants = table(app, "compression")
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


def test_a_page_run_opens_the_store_once_and_lets_a_writer_in_when_idle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import common

    path = tmp_path / "store.duckdb"
    synthetic_store(path, 5, 2, seed=0)
    opened: list[str] = []
    real_open = common.open_store

    def counting_open(*args: Any, **kwargs: Any) -> Any:
        opened.append(str(args[0]))
        return real_open(*args, **kwargs)

    monkeypatch.setattr(common, "open_store", counting_open)
    monkeypatch.setattr(common, "IDLE_CLOSE_S", 0.2)
    common.SHARED.close()
    render(path, "views/correlations.py", monkeypatch)
    assert opened == [str(path)]  # every query of the page run on one connection
    assert common.SHARED.is_open
    # A writer (this process, or another one) waits for the idle close instead of failing.
    started = time.monotonic()
    with open_store(path) as store:
        assert store.summary()["models"] == 5
    assert time.monotonic() - started < 5
    assert not common.SHARED.is_open
    # The next page run opens it again; a failing query closes it.
    render(path, "views/correlations.py", monkeypatch)
    assert len(opened) == 2
    snap = common.snapshot()
    with pytest.raises(AttributeError):
        common.SHARED.run(snap, "no_such_query", (), {})
    assert not common.SHARED.is_open


# --------------------------------------------------------------------------- hostile submissions and trust tiers

#: what a stranger can put in any text field of a submission
HOSTILE = (
    "[click](https://evil.example) ![x](https://evil.example/img.png) <img src=x onerror=alert(1)> $\\LaTeX$ "
    "www.evil.example me@evil.example :smile: :red[red] `tick` *em* __strong__ | a | b |\n\n# heading\n- item"
)
HOSTILE_MODEL, HOSTILE_REFERENCE_MODEL, SELF_REPORTED_MODEL, VERIFIED_MODEL = (
    "o/hostile", "o/hostile-reference", "o/imported", "o/checked",
)  # fmt: skip
#: what GFM (Streamlit's remark-gfm, after escapes are resolved) turns into a link, and Streamlit's shortcodes
AUTOLINK = re.compile(r"(?i)(https?://|www(?=\.))[-.\w]+|[-.\w+]+@[-\w]+(\.[-\w]+)+")
SHORTCODE = re.compile(r":[\w/+-]+:|:\w+(-\w+)*\[")
MARKDOWN = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])


def hostile_submission(
    name: str, *, value: float, card: dict[str, Any] | None = None, hostile: bool = False
) -> Submission:
    """One calib run of model o/<name>; `hostile`: Markdown, HTML, links and LaTeX in every free-text field."""
    provenance: dict[str, Any] = {}
    metrics = [MetricValue(name="ece", value=value, higher_is_better=False, ci_low=value - 0.01,
                           ci_high=value + 0.01, ci_method="bootstrap", n=100)]  # fmt: skip
    if hostile:
        provenance = {
            "command": HOSTILE, "platform": HOSTILE, "harness_version": HOSTILE, "git_commit": HOSTILE,
            "packages": {HOSTILE: HOSTILE}, "hardware": {HOSTILE: HOSTILE},
        }  # fmt: skip
        metrics.append(MetricValue(name=HOSTILE, value=0.5, higher_is_better=True, n=100))
    base = make_submission()
    run = base.results[0].model_copy(update={"run_id": f"{name}-calib", "metrics": metrics})
    return make_submission(
        submission_id=name,
        model=ModelCard.model_validate({"name": name, "org": "o", "family": "f", "n_parameters": 10, **(card or {})}),
        provenance=base.provenance.model_copy(update=provenance),
        results=[RunResult.model_validate(run.model_dump())],
        checkpoint_hash=SHA,
    )


def ingest_hostile(path: Path) -> Path:
    """Add five models on calib to the store at `path`: a reference, a hostile variant of it, a variant
    whose reference is hostile text, a self-reported model (the best ECE, hidden by default) and a verified one."""
    hostile_card = {
        "family": HOSTILE, "kind": HOSTILE, "trained_on": HOSTILE, "description": HOSTILE, "tags": [HOSTILE, "safe"],
        "recipe": {HOSTILE: HOSTILE, "lr": 0.1}, "reference": "o/ref",
        "compression": {"method": HOSTILE, "sparsity": 0.5, "scope": HOSTILE},
    }  # fmt: skip
    dangling = {"reference": HOSTILE, "compression": {"method": "prune", "sparsity": 0.3}}
    submissions: list[tuple[Submission, Tier]] = [
        (hostile_submission("ref", value=0.10, card={"recipe": {"lr": 0.2}}), "re-scored"),
        (hostile_submission("hostile", value=0.12, card=hostile_card, hostile=True), "re-scored"),
        (hostile_submission("hostile-reference", value=0.2, card=dangling), "re-scored"),
        (hostile_submission("imported", value=0.01, card={"recipe": {"lr": 0.3}}), "self-reported"),
        (hostile_submission("checked", value=0.3, card={"recipe": {"lr": 0.4}}), "re-scored"),
    ]
    tiers = {sub.results[0].run_id: tier for sub, tier in submissions}
    with open_store(path) as store:
        store.ingest([(sub, None) for sub, _ in submissions], tiers=lambda sub, run: tiers[run.run_id])
        store.record_verification(
            "checked-calib", ok=True, sample_seed="seed", samples=10, detail="", harness_version="0.1.0"
        )
    return path


@pytest.fixture(scope="module")
def hostile_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ingest_hostile(tmp_path_factory.mktemp("app-hostile") / "hostile.duckdb")


def markdown_sources(app: AppTest) -> list[str]:
    """Every string the page hands to Streamlit's Markdown renderer: text elements, metric labels and
    values, expander and page-link labels, and the tooltips of table columns."""
    sources = [str(e.value) for kind in ("markdown", "caption", "header", "subheader", "title", "info", "warning",
                                         "error", "success") for e in getattr(app, kind)]  # fmt: skip
    sources += [str(m.label) for m in app.metric] + [str(m.value) for m in app.metric]
    sources += [str(e.label) for e in app.expander] + [str(link.proto.label) for link in app.get("page_link")]
    for frame in app.dataframe:
        columns = json.loads(frame.proto.columns or "{}")
        sources += [str(c["help"]) for c in columns.values() if isinstance(c, dict) and c.get("help")]
    return sources


def active_content(source: str) -> list[str]:
    """What a GFM renderer would make of `source` beyond text: links away from this app, images, raw HTML,
    bare URLs and e-mail addresses (Streamlit links them after escapes are resolved), shortcodes, LaTeX."""
    found: list[str] = []
    for token in MARKDOWN.parse(source):
        if token.type == "html_block":
            found.append(f"HTML {token.content!r}")
        for child in token.children or []:
            if child.type == "link_open":
                href = urlsplit(str(child.attrGet("href")))
                if href.scheme or href.netloc:
                    found.append(f"link to {href.geturl()}")
            elif child.type in ("image", "html_inline"):
                found.append(f"{child.type} {child.content!r}")
            elif child.type == "text" and (AUTOLINK.search(child.content) or SHORTCODE.search(child.content)):
                found.append(f"autolink or shortcode in {child.content!r}")
    if unescaped_dollar(source):
        found.append(f"LaTeX in {source!r}")
    return found


def unescaped_dollar(source: str) -> bool:
    """Whether a "$" outside code spans is not backslash-escaped (remark-math would start LaTeX there)."""
    i = 0
    while i < len(source):
        if source[i] == "\\":
            i += 2
        elif source[i] == "`":
            run = len(source[i:]) - len(source[i:].lstrip("`"))
            close = re.compile(f"(?<!`)`{{{run}}}(?!`)").search(source, i + run)
            i = close.end() if close else i + run
        elif source[i] == "$":
            return True
        else:
            i += 1
    return False


def chart_strings(app: AppTest) -> list[str]:
    strings: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, str):
            strings.append(value)
        elif isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    for chart in app.get("plotly_chart"):
        walk(json.loads(chart.proto.spec))
    return strings


def by_model(shown: pd.DataFrame) -> pd.DataFrame:
    """A table the app shows, indexed by the model ids of its model links."""
    return shown.set_index(shown["model"].rename("model_id"))


def collapsed(text: str) -> str:
    return " ".join(text.split())


def test_plain_and_code_show_any_text_literally_per_an_independent_commonmark_parser() -> None:
    """markdown-it-py (CommonMark) renders plain(s) as exactly the text of s, and code(s) as one code span."""
    rng = random.Random(0)
    alphabet = string.punctuation + "aw W.:@ \n\t" + "é€"
    escape = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}
    renderer = MarkdownIt("commonmark", {"html": True})
    samples = [HOSTILE, "1. x", "- x", "+ x", "> x", "    x", "===", "\\", "``", "www.x.y", "a@b.cd", "https://x.y"]
    samples += ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 30))) for _ in range(2000)]
    for text in samples:
        expected = "".join(escape.get(c, c) for c in collapsed(text))
        assert renderer.renderInline(plain(text)).replace("\u2060", "") == expected, text
        assert not active_content(plain(text)), text
        if collapsed(text):
            assert renderer.renderInline(code(text)) == f"<code>{expected}</code>", text
            assert renderer.render(code(text)) == f"<p><code>{expected}</code></p>\n", text


#: (page, query parameters, how the hostile text must appear in the page's Markdown, if it does)
HOSTILE_VISITS = (
    (PAGES[0], {"task": "calib", "tier": list(TIERS)}, None),  # hostile family and tags: table cells only
    (PAGES[0], {"task": "calib", "metric": HOSTILE}, f"calib · {plain(HOSTILE)}"),
    (PAGES[0], {"view": "Mean rank across tasks", "tasks": ["calib"], "tier": list(TIERS)}, None),
    (PAGES[1], {"model": HOSTILE_MODEL, "task": "calib"}, plain(HOSTILE)),
    (PAGES[1], {"model": HOSTILE_REFERENCE_MODEL}, f"Reference model: {plain(HOSTILE)}"),
    (PAGES[2], {"x": "card.recipe.lr", "y": "calib/ece"}, None),
    (PAGES[2], {"x": "card.recipe.lr", "y": f"calib/{HOSTILE}", "family": [HOSTILE, "f"]}, None),
    (PAGES[3], {"reference": "o/ref", "quality": "calib/ece"}, None),
    (PAGES[3], {"reference": HOSTILE}, f"The reference {code(HOSTILE)} itself is not in the store"),
)


@pytest.mark.parametrize(("page", "params", "escaped"), HOSTILE_VISITS)
def test_submitted_text_is_shown_as_plain_text(
    hostile_store: Path, page: str, params: dict[str, Any], escaped: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Markdown, HTML, links, images and LaTeX in card fields, provenance, metric names and references
    come out as escaped text; the only links are the app's own pages; charts get no HTML either."""
    app = render(hostile_store, page, monkeypatch, **params)
    assert not app.error, [e.value for e in app.error]
    sources = markdown_sources(app)
    problems = [f"{problem} (in {source[:160]!r})" for source in sources for problem in active_content(source)]
    assert not problems, "\n".join(problems)
    if escaped is not None:
        assert escaped in "\n".join(sources)
    for text in chart_strings(app):
        assert "<img" not in text and "<a " not in text.lower(), text


def test_the_model_page_shows_every_hostile_card_and_provenance_field_escaped(
    hostile_store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = render(hostile_store, PAGES[1], monkeypatch, model=HOSTILE_MODEL, task="calib")
    shown = "\n".join(markdown_sources(app))
    assert app.metric[0].value == plain(HOSTILE)  # family
    assert app.caption[0].value == plain(HOSTILE)  # description
    assert f"**kind** {code(HOSTILE)}" in shown and f"**trained on** {code(HOSTILE)}" in shown
    assert f"**tags** {code(HOSTILE)} `safe`" in shown
    assert f"**recipe** {plain(HOSTILE)} {code(HOSTILE)}" in shown
    assert f"**reference** {code('o/ref')}" in shown
    assert f"Reference model: {plain('o/ref')}" in shown  # a page link to this app's own page (same tab)
    assert f"**platform** {plain(HOSTILE)}" in shown and f"**commit** {code(HOSTILE)}" in shown
    assert [c.value for c in app.code] == [HOSTILE]  # the command: a code block, literal text
    app = render(hostile_store, PAGES[1], monkeypatch, model=HOSTILE_REFERENCE_MODEL)
    links = [t for s in markdown_sources(app) for tok in MARKDOWN.parse(s) for t in tok.children or []]
    assert not [t for t in links if t.type == "link_open"]  # no Markdown links: page links only
    pages = {(link.proto.page, link.proto.query_string) for link in app.get("page_link")}
    assert any("model" in page for page, _ in pages) and any("compression" in page for page, _ in pages), pages


def test_self_reported_results_are_hidden_until_the_tier_is_chosen(
    hostile_store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = render(hostile_store, PAGES[0], monkeypatch, task="calib")
    shown = table(app)
    models = shown["model"].tolist()
    assert SELF_REPORTED_MODEL not in models and len(models) == 4
    tiers = dict(zip(models, shown["tier"], strict=True))
    assert tiers[VERIFIED_MODEL] == BADGES["verified"] == "✔ verified"
    assert tiers["o/ref"] == BADGES["re-scored"]
    assert "1 model(s) with results of this task only in the tier(s) ✎ self-reported are not shown" in texts(app)
    assert SELF_REPORTED_NOTE not in texts(app)
    assert any("Trust tiers" in e.label for e in app.expander)
    assert list(app.multiselect(key="tier").value) == ["verified", "re-scored"]
    # Added through the deep link (as the widget writes it): shown, ranked among the others, marked, explained.
    app = render(hostile_store, PAGES[0], monkeypatch, task="calib", tier=list(TIERS))
    shown = table(app)
    assert shown["model"].iloc[0] == SELF_REPORTED_MODEL  # the best ECE
    assert shown["tier"].iloc[0] == "✎ self-reported" and shown["rank"].iloc[0] == 1
    assert SELF_REPORTED_NOTE in texts(app)
    # Only the self-reported tier: only that model.
    app = render(hostile_store, PAGES[0], monkeypatch, task="calib", tier="self-reported")
    assert len(table(app)) == 1
    # The model page lists every run with its tier, whatever the filter.
    app = render(hostile_store, PAGES[1], monkeypatch, model=SELF_REPORTED_MODEL)
    assert table(app, "status")["tier"].tolist() == ["✎ self-reported"]
    app = render(hostile_store, PAGES[1], monkeypatch, model=VERIFIED_MODEL)
    assert table(app, "status")["tier"].tolist() == ["✔ verified"]


def test_the_tier_filter_reaches_the_mean_rank_correlation_and_compression_pages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A synthetic store whose models ending in 1, 4 or 7 are self-reported: every page leaves them out by
    default and takes them in when the tier is chosen."""

    def tier(sub: Submission, run: RunResult) -> Tier:
        return "self-reported" if sub.model.name.endswith(("1", "4", "7")) else "re-scored"

    path = synthetic_store(
        tmp_path / "tiers.duckdb", n_models=30, n_tasks=0, seed=2, task_names=("lm_loss", "synth_blimp", "compression"),
        tiers=tier, bulk=False,
    )  # fmt: skip
    with open_store(path, read_only=True) as store:
        everyone = store.board_rows(["synth_blimp"], tiers=TIERS)
        self_reported = everyone[everyone["tier"] == "self-reported"]["model_id"]
        assert 0 < len(self_reported) < len(everyone)
        assert set(store.board_rows(["synth_blimp"])["tier"]) == {"re-scored"}
    aggregate = {"view": "Mean rank across tasks", "tasks": ["lm_loss", "synth_blimp"]}
    default, chosen = (
        render(path, PAGES[0], monkeypatch, **aggregate, **extra) for extra in ({}, {"tier": list(TIERS)})
    )
    assert set(table(default)["tier"]) == {"↻ re-scored"}
    assert len(table(chosen)) == len(table(default)) + len(self_reported) and "✎ self-reported" in set(
        table(chosen)["tier"]
    )
    pair = {"x": "lm_loss/loss_nats", "y": "synth_blimp/lm_eval.acc"}
    default, chosen = (render(path, PAGES[2], monkeypatch, **pair, **extra) for extra in ({}, {"tier": list(TIERS)}))
    n_models = [
        table(app, "coefficient").set_index("coefficient").loc["Pearson r", "n models"] for app in (default, chosen)
    ]
    assert n_models[1] == n_models[0] + len(self_reported)
    reference = {"reference": "synth/synth-gpt-00000", "quality": "compression/ppl_ratio"}
    default, chosen = (
        render(path, PAGES[3], monkeypatch, **reference, **extra) for extra in ({}, {"tier": list(TIERS)})
    )
    tiers = [by_model(table(app, "compression"))["tier"] for app in (default, chosen)]
    variants = [m for m in tiers[1].index if m.endswith(("1", "4", "7")) and tiers[1][m]]
    assert (
        variants
        and all(tiers[0][m] == "" for m in variants)
        and all(tiers[1][m] == "✎ self-reported" for m in variants)
    )


def test_interval_notes_say_when_an_interval_excludes_its_point_or_has_no_width() -> None:
    from common import FLAT, OUTSIDE, interval_notes

    table = pd.DataFrame(
        {
            "value": [0.0113, 0.5, 0.3, 0.2],
            "ci_low": [0.0117, 0.4, 0.3, None],
            "ci_high": [0.0296, 0.6, 0.3, None],
        }
    )
    assert interval_notes(table).tolist() == [OUTSIDE, "", FLAT, ""]
