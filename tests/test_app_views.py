"""The views of issue 15, page by page with AppTest: the same-loss comparison (defaults, settings, rules,
statistics against an independent computation), checkpoint series, boards (compression by reference, OOD
sets side by side, headers naming dataset, split, protocol and spec version, diagnostics never ranked),
and readability (every row reachable, "-" for missing cells, words on axes, a qualitative palette, model
buttons that open the model page in the same session, friendly pages for empty and foreign stores,
invalid deep-link values reported, every parameter in the URL)."""

from __future__ import annotations

import base64
import colorsys
import json
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pytest
import scipy.stats
from same_loss_store import FAMILY, add_same_loss_family
from streamlit.testing.v1 import AppTest
from test_app import APP, LM_TASKS, PAGES, build_zoo_store, render, table, texts

from harness.same_loss import select_same_loss
from harness.store import open_store
from harness.synthetic import synthetic_store

CORRELATIONS, MODEL, COMPRESSION, RANKING = "views/correlations.py", "views/model.py", "views/compression.py", PAGES[0]
ALL_PAGES = (*PAGES, "views/ladder.py", "views/tasks.py")


@pytest.fixture(scope="module")
def series_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The synthetic LM store of test_app plus a family of checkpoint series at nearly the same loss."""
    path = tmp_path_factory.mktemp("app-series") / "series.duckdb"
    synthetic_store(path, n_models=40, n_tasks=0, seed=1, bootstrap_values=200, task_names=LM_TASKS, bulk=True)
    return add_same_loss_family(path)


@pytest.fixture(scope="module")
def digits_store(tiny_zoo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny digits zoo evaluated for real on calib, ood and longtail (real OOD sets and specs)."""
    return build_zoo_store(tiny_zoo, tmp_path_factory.mktemp("views-zoo"))


@pytest.fixture(autouse=True)
def _no_settings_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run every page from an empty folder: no leaderboard.toml unless a test writes one."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HARNESS_LADDER_CONFIG", raising=False)


def chart(app: AppTest, fragment: str) -> dict[str, Any]:
    """The first chart whose JSON spec contains `fragment`, parsed."""
    for element in app.get("plotly_chart"):
        if fragment in element.proto.spec:
            spec: dict[str, Any] = json.loads(element.proto.spec)
            return spec
    raise AssertionError(f"no chart with {fragment!r}")


def visit(store: Path, page: str, monkeypatch: pytest.MonkeyPatch, params: dict[str, Any]) -> AppTest:
    """`render` with the query parameters as a dict (a parameter may be called "page")."""
    monkeypatch.setenv("HARNESS_STORE", str(store))
    app = AppTest.from_file(str(APP), default_timeout=120)
    app.query_params.update(params)
    if page != PAGES[0]:
        app.switch_page(page)
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    return app


def unescaped(app: AppTest) -> str:
    """The page's text with Markdown escapes removed (submitted and computed text goes through plain())."""
    return texts(app).replace("\\", "").replace("\u2060", "")


def values(data: Any) -> list[Any]:
    """A plotly trace's array: a list, or plotly's binary encoding of a numpy array."""
    if isinstance(data, dict) and "bdata" in data:
        return np.frombuffer(base64.b64decode(data["bdata"]), dtype=np.dtype(data["dtype"])).tolist()
    return list(data)


def title_text(axis: dict[str, Any]) -> str:
    title = axis.get("title", {})
    return str(title.get("text", "") if isinstance(title, dict) else title)


def same_loss_reference(store: Path, family: str, tolerance: float, downstream: tuple[str, str]) -> pd.DataFrame:
    """The checkpoints at the same loss, from the store directly (not through the app)."""
    with open_store(store, read_only=True) as db:
        loss = db.board_rows(["lm_loss"], "loss_nats", families=[family]).set_index("model_id")
        flat = db.board_rows(["flatness"], "hessian_trace", families=[family]).set_index("model_id")
        down = db.board_rows([downstream[0]], downstream[1], families=[family]).set_index("model_id")
    data = pd.DataFrame({"loss": loss["value"], "flat": flat["value"], "down": down["value"]}).dropna()
    best = data["loss"].min()
    return data[data["loss"] <= best + tolerance + 1e-12]


def residual_partial(data: pd.DataFrame) -> float:
    """Partial correlation by residual regression (numpy lstsq) and scipy's pearsonr."""
    design = np.column_stack([np.ones(len(data)), data["loss"]])
    residual = {c: data[c] - design @ np.linalg.lstsq(design, data[c], rcond=None)[0] for c in ("down", "flat")}
    return float(scipy.stats.pearsonr(residual["down"], residual["flat"])[0])


# --------------------------------------------------------------------------- the same-loss view


def test_the_correlations_page_opens_on_the_same_loss_comparison_without_configuring(
    series_store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = render(series_store, CORRELATIONS, monkeypatch)
    assert not app.error, [e.value for e in app.error]
    assert app.header[0].value == "Same loss, different downstream?"  # the first thing on the page
    # The family with the most models that have both lm_loss and flatness runs; the defaults, all in the URL.
    assert app.selectbox(key="sl_family").value == FAMILY
    assert "the family with the most models that have both a held-out loss and a flatness run" in texts(app)
    params = dict(app.query_params)
    assert params["sl_family"] == FAMILY and params["sl_loss"] == "lm_loss/loss_nats"
    assert params["sl_rule"] == "absolute" and params["sl_nats"] == "0.05"
    assert params["downstream"] == "synth_mc/lm_eval.acc" and params["flatness"] == "flatness/hessian_trace"
    # The statistics equal an independent computation on the same checkpoints.
    chosen = same_loss_reference(series_store, FAMILY, 0.05, ("synth_mc", "lm_eval.acc"))
    assert 5 <= len(chosen) < 48
    stats = table(app, "statistic").set_index("statistic")
    pearson = stats.loc["partial Pearson: downstream ~ flatness | loss"]
    assert pearson["n models"] == len(chosen)
    assert pearson["estimate"] == pytest.approx(residual_partial(chosen), abs=1e-9)
    ranks = chosen.rank()
    spearman = stats.loc["partial Spearman: downstream ~ flatness | loss"]
    assert spearman["estimate"] == pytest.approx(residual_partial(ranks), abs=1e-9)
    assert (stats["95% CI low"] <= stats["estimate"]).all() and (stats["estimate"] <= stats["95% CI high"]).all()
    assert pearson["95% CI high"] < 0  # the planted relation: flatter (lower trace) goes with better downstream
    assert "At the same loss, **flatter checkpoints do better downstream**" in texts(app)
    assert f"**{len(chosen)} of 48** checkpoints" in texts(app)
    # The legend table lists exactly the checkpoints at the same loss, with their runs and steps.
    legend = table(app, "training run")
    assert sorted(legend["model"]) == sorted(chosen.index)
    assert legend["step"].notna().all() and legend["training run"].notna().all()


def test_the_same_loss_charts_colour_by_flatness_with_error_bars_and_no_text_labels(
    series_store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = render(series_store, CORRELATIONS, monkeypatch)
    spec = chart(app, "Loss against downstream, coloured by flatness")
    layout = spec["layout"]
    assert title_text(layout["xaxis"]) == "Held-out loss (nats, lower is better)"
    assert title_text(layout["yaxis"]) == "synth_mc: accuracy (share, higher is better)"
    inside = next(t for t in spec["data"] if t["name"] == "at the same loss")
    assert inside["marker"]["colorbar"]["title"]["text"] == "Flatness: Hessian trace (lower = flatter)"
    assert inside["marker"]["showscale"] is True and "colorscale" in inside["marker"]
    assert inside["error_x"]["type"] == "data" and inside["error_y"]["type"] == "data"
    assert all(t["mode"] == "markers" for t in spec["data"])  # names on hover, never text piling up
    assert "hovertemplate" in inside and len(inside["text"]) == len(table(app, "training run"))
    flat = chart(app, "At the same loss: downstream against flatness")
    assert title_text(flat["layout"]["xaxis"]) == "Flatness: Hessian trace (lower = flatter)"
    assert all(t["mode"] == "markers" and t["error_x"]["type"] == "data" for t in flat["data"])
    colours = [t["marker"]["color"] for t in flat["data"]]
    assert len(set(colours)) == len(colours) == 8  # one qualitative colour per training run
    assert_distinct_hues(colours)


def assert_distinct_hues(colours: list[str]) -> None:
    """No two group colours are near-identical (the theme's shades of one blue were)."""
    rgb = [tuple(int(c.lstrip("#")[i : i + 2], 16) / 255 for i in (0, 2, 4)) for c in colours]
    for i, a in enumerate(rgb):
        for b in rgb[i + 1 :]:
            distance = sum((x - y) ** 2 for x, y in zip(a, b, strict=True)) ** 0.5
            assert distance > 0.15, (colours, a, b)
    hues = {round(colorsys.rgb_to_hsv(*c)[0] * 12) % 12 for c in rgb if colorsys.rgb_to_hsv(*c)[1] > 0.3}
    assert len(hues) >= min(4, len(rgb) - 1), colours


def test_the_same_loss_family_and_tolerance_come_from_leaderboard_toml(
    series_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "leaderboard.toml").write_text('[same_loss]\nfamily = "synth-gpt"\ntolerance_nats = 0.3\n')
    app = render(series_store, CORRELATIONS, monkeypatch)
    assert app.selectbox(key="sl_family").value == "synth-gpt"
    assert app.number_input(key="sl_nats").value == pytest.approx(0.3)
    assert "set in the board settings" in texts(app)
    # A configured family that is not in the store: the fallback, and the page says why.
    (tmp_path / "leaderboard.toml").write_text('[same_loss]\nfamily = "no-such-family"\n')
    app = render(series_store, CORRELATIONS, monkeypatch)
    assert app.selectbox(key="sl_family").value == FAMILY
    assert "the family set in the board settings is not in the store" in texts(app)
    # A broken file: said on the page, the defaults used.
    (tmp_path / "leaderboard.toml").write_text("[same_loss]\ntolerance_nats = -1\n")
    app = render(series_store, CORRELATIONS, monkeypatch)
    assert any("tolerance_nats" in w.value.replace("\\", "") for w in app.warning)
    assert app.selectbox(key="sl_family").value == FAMILY


def test_the_ci_rule_and_the_card_loss(series_store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app = render(series_store, CORRELATIONS, monkeypatch, sl_rule="ci")
    with open_store(series_store, read_only=True) as db:
        loss = db.board_rows(["lm_loss"], "loss_nats", families=[FAMILY])
    expected = select_same_loss(loss[["model_id", "value", "ci_low", "ci_high"]], "ci")
    assert "inside the 95% interval of the best" in unescaped(app)
    assert f"**{int(expected.mask.sum())} of 48**" in texts(app)
    app = render(series_store, CORRELATIONS, monkeypatch, sl_loss="card.pretrain_loss_nats", sl_nats="0.08")
    assert "pre-training loss (card, self-reported)" in unescaped(app)
    spec = chart(app, "Loss against downstream, coloured by flatness")
    assert title_text(spec["layout"]["xaxis"]).startswith("Pre-training loss, nats (card, self-reported")


def test_the_verdict_reads_the_interval_and_the_direction() -> None:
    from same_loss_view import verdict

    assert "flatter checkpoints do better" in verdict(-0.9, -0.2, True)
    assert "sharper checkpoints do better" in verdict(0.2, 0.9, True)
    assert "sharper checkpoints do better" in verdict(-0.9, -0.2, False)  # lower-is-better downstream
    assert "no clear relation" in verdict(-0.3, 0.4, True)
    assert verdict(float("nan"), 0.1, True) == "" and verdict(-0.9, -0.2, None) == ""


def test_a_family_without_enough_checkpoints_at_the_same_loss_says_so(
    series_store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = render(series_store, CORRELATIONS, monkeypatch, sl_family="synth-mlp", sl_nats="0")
    assert any("the partial correlation needs at least 5" in i.value for i in app.info)


# --------------------------------------------------------------------------- checkpoint series


def test_checkpoint_series_on_the_correlations_and_model_pages(
    series_store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = render(series_store, CORRELATIONS, monkeypatch, series_metric="synth_blimp/lm_eval.acc")
    spec = chart(app, "against training step")
    runs = [t for t in spec["data"] if t["mode"] == "lines+markers"]
    assert len(runs) == 8 and all(t["error_y"]["type"] == "data" for t in runs)
    for trace in runs:  # ordered by step
        steps = values(trace["x"])
        assert steps == sorted(steps) and len(steps) == 6
    assert title_text(spec["layout"]["xaxis"]) == "Training step (card)"
    assert title_text(spec["layout"]["yaxis"]) == "synth_blimp: accuracy (share, higher is better)"
    model = f"synth/{FAMILY}-adam-b0-step3000"
    app = render(series_store, MODEL, monkeypatch, model=model, series_metric="flatness/hessian_trace")
    assert "**training run** `synth-same-loss-adam-b0` at step 3,000" in texts(app)
    spec = chart(app, "against training step")
    assert [t["name"] for t in spec["data"]] == ["synth-same-loss-adam-b0", "this model"]
    assert values(spec["data"][1]["x"]) == [3000]
    points = table(app, "training run")
    assert points["step"].tolist() == [500, 1000, 2000, 3000, 4000, 5000]


# --------------------------------------------------------------------------- boards


def test_the_compression_board_ranks_variants_within_their_reference(
    series_store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = render(series_store, RANKING, monkeypatch, task="compression")
    shown = table(app, "reference")
    assert app.toggle(key="by_reference").value is True
    with open_store(series_store, read_only=True) as db:
        rows = db.board_rows(["compression"])
        references = dict(db.connection.execute("SELECT model_id, reference FROM models").fetchall())
        rows["reference"] = rows["model_id"].map(references)
        assert shown["reference"].nunique() == rows["reference"].nunique() >= 2
        for reference, group in rows.groupby("reference"):  # ranks as on a board of this reference's variants alone
            alone = db.ranked_leaderboard("compression", models=group["model_id"].tolist()).table
            ours = shown[shown["reference"] == reference.split("/", 1)[1]].set_index("model")["rank"]
            assert ours.loc[alone["model_id"]].tolist() == alone["rank"].tolist()
        ungrouped = db.ranked_leaderboard("compression").table.set_index("model_id")["rank"]
    grouped = shown.set_index("model")["rank"]
    assert (grouped != ungrouped.loc[grouped.index]).any()  # ranking across references would differ
    assert "Ranks are among the variants of the same reference" in texts(app)
    app = render(series_store, RANKING, monkeypatch, task="compression", by_reference="false")
    assert "reference" not in table(app).columns


def test_ood_boards_show_near_and_far_sets_side_by_side(digits_store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app = render(digits_store, RANKING, monkeypatch, task="ood")
    shown = table(app)
    sets = ["near", "far: noise", "far: patterns", "far: permuted", "far (average)"]
    columns = list(shown.columns)
    assert [c for c in columns if c in sets] == sets  # the mean is the ranked metric itself: not repeated
    assert "mean (average)" not in columns and "auroc.energy.mean" in columns
    with open_store(digits_store, read_only=True) as db:
        board = db.board_rows(["ood"], "auroc.energy.noise").set_index("model_id")["value"]
    assert np.allclose(shown.set_index("model")["far: noise"].loc[board.index], board)
    assert "OOD sets side by side" in texts(app) and "far-OOD `noise`, `patterns`, `permuted`" in texts(app)
    labels = {name: config.get("label") for name, config in json.loads(app.dataframe[0].proto.columns).items()}
    assert labels["far: noise"] == "noise" and labels["far (average)"] == "far avg"
    app = render(digits_store, RANKING, monkeypatch, task="ood", metric="fpr95.energy.near")
    assert "near" not in table(app).columns and "mean (average)" in table(app).columns


def test_every_board_header_names_dataset_split_protocol_spec_and_links_the_docs(
    digits_store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = render(digits_store, RANKING, monkeypatch, task="ood")
    header = texts(app)
    assert "**dataset** `digits-ood` (builtin, revision 1)" in header
    assert "**split** `test`" in header
    assert "**protocol** OOD detection on digits" in header
    assert "**spec** `v1`" in header
    links = {(link.proto.page, link.proto.query_string) for link in app.get("page_link")}
    assert any(page.endswith("tasks") and "task=ood" in query for page, query in links), links
    app = render(digits_store, "views/tasks.py", monkeypatch, task="ood")
    assert "near-OOD" in texts(app) and "FPR@95TPR" in texts(app)  # the docs/tasks.md section
    assert table(app, "spec hash")["models"].sum() == 9


def test_every_task_spec_has_a_section_in_docs_tasks_md() -> None:
    """Each board's header links to its task's section of docs/tasks.md (`### <task>`)."""
    from boards import DOCS, parse_sections

    from harness.tasks import specs_dir

    documented = parse_sections(DOCS.read_text(encoding="utf-8"))
    built_in = {p.stem for p in specs_dir().glob("*.yaml")}
    assert built_in <= set(documented), sorted(built_in - set(documented))
    assert all(len(documented[name]) > 30 for name in built_in)


def test_diagnostics_never_appear_as_ranked_quality(series_store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app = render(series_store, RANKING, monkeypatch, task="flatness")
    assert "hessian_trace (diagnostic, not ranked)" in app.selectbox(key="metric").options
    assert set(table(app)["rank"]) == {"—"}
    app = render(series_store, COMPRESSION, monkeypatch, reference="synth/synth-gpt-00000")
    options = app.selectbox(key="quality").options
    assert options and not [o for o in options if "hessian_trace" in o or "ppl_reference" in o or "temperature" in o]
    app = render(series_store, RANKING, monkeypatch, view="Mean rank across tasks", tasks=["lm_loss", "flatness"])
    assert "**quality metrics only**" in texts(app) and "Not averaged" in texts(app)


# --------------------------------------------------------------------------- readability and robustness


def test_long_tables_paginate_visibly_and_every_table_shows_missing_cells_as_a_dash(
    series_store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = render(series_store, RANKING, monkeypatch, task="lm_loss")
    assert len(table(app)) == 50 and "Rows 1–50 of 88" in texts(app)
    app = visit(series_store, RANKING, monkeypatch, {"task": "lm_loss", "page": "2"})
    assert len(table(app)) == 38 and "Rows 51–88 of 88" in texts(app)
    for page in ALL_PAGES:
        app = render(series_store, page, monkeypatch)
        for element in app.dataframe:
            assert element.proto.placeholder == "-", page
            assert len(element.value) <= 100, page


def test_model_columns_are_buttons_that_open_the_model_page_in_the_same_session(
    series_store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for page, params in ((RANKING, {"task": "synth_mc"}), (CORRELATIONS, {}), (COMPRESSION, {}),
                         ("views/ladder.py", {"task": "synth_mc"})):  # fmt: skip
        app = render(series_store, page, monkeypatch, **params)
        for element in app.dataframe:
            columns = json.loads(element.proto.columns or "{}")
            for name, config in columns.items():
                if name in ("model", "shown model", "raw best model"):
                    assert config["type_config"]["type"] == "button", (page, name)
            assert not [c for c in columns.values() if c.get("type_config", {}).get("type") == "link"], page
    # A click on a model (its button's state) opens that model's page, here with the board's task.
    monkeypatch.setenv("HARNESS_STORE", str(series_store))
    app = AppTest.from_file(str(APP), default_timeout=120)
    app.query_params.update({"task": "synth_mc"})
    app.run()
    first = table(app)["model"].iloc[0]
    app.session_state["board-model-open"] = {"row": 0, "label": first}
    app.run()
    assert not app.exception
    assert app.header[0].value.replace("\\", "") == first
    assert dict(app.query_params)["model"] == first and dict(app.query_params)["task"] == "synth_mc"


@pytest.mark.parametrize("kind", ["empty-duckdb", "zero-bytes", "foreign", "meta-only"])
@pytest.mark.parametrize("page", ALL_PAGES)
def test_an_empty_or_foreign_duckdb_file_gets_a_friendly_page(
    tmp_path: Path, kind: str, page: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "store.duckdb"
    if kind == "zero-bytes":
        path.write_bytes(b"")
    else:
        with duckdb.connect(str(path)) as connection:
            if kind == "foreign":
                connection.execute("CREATE TABLE people (name TEXT)")
            elif kind == "meta-only":
                connection.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
                connection.execute("INSERT INTO meta VALUES ('store_version', '3')")
    app = render(path, page, monkeypatch)  # no exception (no CatalogException traceback)
    if page == "views/tasks.py":  # the Tasks page reads the specs; it needs no store
        assert app.title[0].value == "Tasks"
        return
    if kind in ("empty-duckdb", "zero-bytes"):
        assert app.title[0].value == "No runs yet" and "no runs have been added yet" in app.info[0].value
    else:
        assert app.title[0].value == "Not a Harness store"
        assert "is not a Harness results store" in app.warning[0].value
        if kind == "foreign":
            assert "`people`" in app.warning[0].value
    assert "harness" in texts(app)


INVALID_LINKS = (
    (RANKING, {"task": "no-such-task"}, "task", "no-such-task"),
    (RANKING, {"task": "calib", "metric": "nope"}, "metric", "nope"),
    (RANKING, {"tier": ["bogus", "verified"]}, "tier", "bogus"),
    (RANKING, {"tier": "bogus", "task": "calib"}, "tier", "bogus"),  # nothing usable: the default tiers
    (RANKING, {"view": "Sideways"}, "view", "Sideways"),
    (RANKING, {"task": "lm_loss", "page": "999"}, "page", "999"),
    (CORRELATIONS, {"logx": "maybe"}, "logx", "maybe"),
    (CORRELATIONS, {"sl_nats": "abc"}, "sl_nats", "abc"),
    (CORRELATIONS, {"sl_family": "ghost"}, "sl_family", "ghost"),
    (CORRELATIONS, {"x": "nothing/here"}, "x", "nothing/here"),
    (MODEL, {"model": "o/none"}, "model", "o/none"),
    (COMPRESSION, {"reference": "o/none"}, "reference", "o/none"),
)


@pytest.mark.parametrize(("page", "params", "key", "value"), INVALID_LINKS)
def test_invalid_deep_link_values_are_reported(
    series_store: Path, page: str, params: dict[str, Any], key: str, value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = visit(series_store, page, monkeypatch, params)
    warnings = [w.value for w in app.warning]
    assert any(f"`?{key}=`" in w and f"`{value}`" in w for w in warnings), warnings
    assert not app.error
    if key == "tier" and params["tier"] == "bogus":
        assert list(app.multiselect(key="tier").value) == ["verified", "re-scored"] and app.dataframe


#: page -> the parameters its URL must hold after a visit with no parameters at all
URL_KEYS = {
    RANKING: {"view", "tier", "task", "metric", "chart", "details"},
    CORRELATIONS: {
        *("tier", "sl_family", "sl_loss", "sl_rule", "sl_nats", "downstream", "flatness"),
        *("x", "y", "logx", "logy", "runs", "series_metric", "series_x"),
    },
    MODEL: {"model", "task"},
    COMPRESSION: {"reference", "tier", "quality"},
    "views/ladder.py": {"task", "tier", "org"},
    "views/tasks.py": {"task"},
}


@pytest.mark.parametrize("page", list(URL_KEYS))
def test_the_url_keeps_every_parameter_including_defaults(
    series_store: Path, page: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = render(series_store, page, monkeypatch)
    params = dict(app.query_params)
    assert URL_KEYS[page] <= set(params), sorted(URL_KEYS[page] - set(params))
    again = visit(series_store, page, monkeypatch, params)
    assert dict(again.query_params) == params  # the shared URL shows the same view
    assert not again.warning


def test_axis_titles_are_words_never_metric_keys(series_store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for page, params in ((CORRELATIONS, {"x": "flatness/hessian_trace", "y": "lm_loss/loss_nats"}),
                         (RANKING, {"task": "synth_mc"}), (COMPRESSION, {}),
                         ("views/ladder.py", {"task": "lm_loss"})):  # fmt: skip
        app = render(series_store, page, monkeypatch, **params)
        for element in app.get("plotly_chart"):
            layout = json.loads(element.proto.spec)["layout"]
            for name, axis in layout.items():
                if name.startswith(("xaxis", "yaxis")) and title_text(axis):
                    words = title_text(axis).split(" (")[0].split(": ")[-1]  # after the task, if it names one
                    assert not any(c in words for c in "/_."), (page, title_text(axis))  # no metric key
    spec = chart(render(series_store, CORRELATIONS, monkeypatch, x="flatness/hessian_trace"), "least-squares fit")
    assert title_text(spec["layout"]["xaxis"]) == "Flatness: Hessian trace (lower = flatter)"


def test_group_colours_come_from_a_qualitative_palette(series_store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from labels import PALETTE

    app = render(series_store, CORRELATIONS, monkeypatch, x="lm_loss/loss_nats", y="synth_mc/lm_eval.acc")
    spec = chart(app, "least-squares fit")
    colours = [t["marker"]["color"] for t in spec["data"] if t.get("mode") == "markers"]
    assert len(colours) == 6 and set(colours) <= set(PALETTE)  # six families
    assert_distinct_hues(colours)
    assert spec["layout"]["colorway"] == list(PALETTE)


def test_a_guarded_board_shows_each_orgs_guarded_best_beside_the_raw_values(
    series_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = render(series_store, RANKING, monkeypatch, task="lm_loss")  # no settings file: every board guarded
    board = table(app, "guarded")
    with open_store(series_store, read_only=True) as store:
        orgs = store.ladder_board("lm_loss").orgs
    shown_by = dict(zip(orgs["shown_model"], orgs["guarded_best"], strict=True))
    for model, guarded in zip(board["model"], board["guarded"], strict=True):
        if model in shown_by:
            assert guarded == pytest.approx(shown_by[model], rel=1e-12)
        else:
            assert pd.isna(guarded)
    assert board["guarded"].notna().sum() == len(orgs) >= 1  # one public figure per org
    assert "overfitting guard** is on" in texts(app)
    (tmp_path / "leaderboard.toml").write_text('[ladder]\noff = ["lm_loss"]\n')
    app = render(series_store, RANKING, monkeypatch, task="lm_loss")
    assert "guarded" not in table(app, "CI high").columns and "overfitting guard" not in texts(app)


def test_on_a_board_with_ood_set_columns_the_guarded_column_is_under_more_columns(
    digits_store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = render(digits_store, RANKING, monkeypatch, task="ood")  # sets side by side: a wide board
    assert "guarded" not in table(app, "CI high").columns and "under *More columns*" in texts(app)
    app = render(digits_store, RANKING, monkeypatch, task="ood", details="true")
    assert table(app, "guarded")["guarded"].notna().sum() >= 1
