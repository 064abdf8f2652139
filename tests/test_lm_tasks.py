"""Language-model tasks on the tiny LM zoo, checked against lm-evaluation-harness and known answers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from harness.models.base import InferenceOptions
from harness.models.causal_lm import rolling_windows
from harness.runner import EvalOptions, ModelResult, Runner, load_models
from harness.schema import ModelCard, RunResult, TaskSpec
from harness.tasks import load_specs
from harness.tasks.compression import with_reference
from harness.zoo import zoo_models


def cards(zoo: Path) -> dict[str, tuple[Path, ModelCard]]:
    return {p.name: (p, ModelCard.model_validate_json((p / "card.json").read_text())) for p in zoo_models(zoo)}


def reference_of(zoo: Path) -> Path:
    return next(p for p, card in cards(zoo).values() if "compression-reference" in card.tags)


@pytest.fixture(scope="module")
def evaluated(lm_zoo: Path, tmp_path_factory: pytest.TempPathFactory) -> ModelResult:
    options = EvalOptions(cache_dir=tmp_path_factory.mktemp("cache"), batch_size=64)
    handle = load_models([reference_of(lm_zoo)], options, "cpu")[0]
    specs = load_specs()
    names = ("lm_loss", "synth_mc", "flatness", "probe", "calib-lm", "compression-components")
    return Runner(options).evaluate(handle, [*(specs.get(n) for n in names), heldout_spec()])


def heldout_spec() -> TaskSpec:
    """lm-eval's rolling log-likelihood on the held-out split (the cross-check of lm_loss)."""
    mc = load_specs().get("synth_mc")
    parameters = {"task": "synth_heldout", "metrics": ["word_perplexity", "byte_perplexity", "bits_per_byte"]}
    return mc.model_copy(
        update={"name": "synth_heldout", "parameters": parameters, "main_metric": "lm_eval.word_perplexity"}
    )


def run(result: ModelResult, task: str) -> RunResult:
    return next(r for r in result.submission.results if r.task == task)


def test_rolling_windows_match_lm_evals_rule() -> None:
    from lm_eval.utils import get_rolling_token_windows, make_disjoint_window

    rng = np.random.default_rng(0)
    for _ in range(200):
        tokens = rng.integers(3, 50, size=int(rng.integers(1, 40))).tolist()
        max_length = int(rng.integers(1, 12))
        theirs = [make_disjoint_window(w) for w in get_rolling_token_windows(tokens, 2, max_length, 1)]
        ours = list(rolling_windows(tokens, 2, max_length))
        assert len(ours) == len(theirs)
        for (inputs, count), (context, continuation) in zip(ours, theirs, strict=True):
            # lm-eval feeds (context + continuation)[:-1] and scores the last len(continuation) positions.
            assert inputs == (context + continuation)[:-1] and count == len(continuation)


def test_lm_loss_equals_lm_eval_word_perplexity(evaluated: ModelResult) -> None:
    ours = run(evaluated, "lm_loss").metric("perplexity").value
    theirs = run(evaluated, "synth_heldout").artifacts["lm_eval"]["word_perplexity"]["aggregate"]
    assert abs(ours - theirs) / theirs < 1e-4
    recomputed = run(evaluated, "synth_heldout").metric("lm_eval.word_perplexity").value
    assert abs(recomputed - theirs) / theirs < 1e-9


def test_choice_logliks_match_lm_eval(lm_zoo: Path, evaluated: ModelResult) -> None:
    handle = load_models([reference_of(lm_zoo)], EvalOptions(), "cpu")[0]
    choices = next(b for t, b in evaluated.samples if t == "synth_mc" and b.split == "choices")
    from harness.data.language import language_suite

    items = list(language_suite().multiple_choice)
    ours = handle.choice_logliks(
        [i.context for i in items], [list(i.choices) for i in items], InferenceOptions(batch_size=32)
    )  # type: ignore[attr-defined]
    assert np.allclose(ours, choices.values, atol=1e-4)
    assert run(evaluated, "synth_mc").metric("lm_eval.acc").value == pytest.approx(
        run(evaluated, "synth_mc").artifacts["lm_eval"]["acc"]["aggregate"]
    )


def test_flatness_grows_with_the_noise_scale(evaluated: ModelResult) -> None:
    flatness = run(evaluated, "flatness")
    increases = [flatness.metric(f"noise_loss_increase.{s}").value for s in ("0.01", "0.03", "0.1")]
    assert increases[0] < increases[1] < increases[2]
    assert flatness.metric("hessian_trace").value > 0
    assert flatness.parameters["n_docs"] == 32 and flatness.parameters["seed"] == 0


def test_probe_and_lm_calibration_are_sane(evaluated: ModelResult) -> None:
    probe = run(evaluated, "probe").metric("probe_accuracy")
    assert 0.0 < probe.value <= 1.0 and probe.ci_low is not None
    calib = run(evaluated, "calib-lm")
    assert {"ece", "nll", "temperature"} <= {m.name for m in calib.metrics}


def test_component_sweep_ranks_every_component(evaluated: ModelResult) -> None:
    sweep = run(evaluated, "compression-components")
    ranking = sweep.artifacts["ranking"]
    assert len(ranking) == len({r["component"] for r in ranking}) > 0
    fdtm = [r["fdtm_mean"] for r in ranking]
    assert fdtm == sorted(fdtm)
    assert sweep.metric("fdtm_mean.most_sensitive").value <= sweep.metric("fdtm_mean.least_sensitive").value


def test_a_random_subset_gives_the_full_runs_outputs(lm_zoo: Path, evaluated: ModelResult, tmp_path: Path) -> None:
    """`harness verify` re-runs a random subset: lm-eval's documents (its `samples`), held-out documents
    and multiple-choice items give the values the full run gave them, under the same sample ids."""
    from harness.runner import subset_positions
    from harness.verify import VERIFY_ATOL, VERIFY_RTOL

    options = EvalOptions(cache_dir=tmp_path / "cache", batch_size=64, sample_subset=("seed", 12))
    handle = load_models([reference_of(lm_zoo)], options, "cpu")[0]
    specs = [load_specs().get(n) for n in ("synth_mc", "lm_loss", "calib-lm")] + [heldout_spec()]
    subset = Runner(options).evaluate(handle, specs)
    full = {(task, block.split): block for task, block in evaluated.samples}
    compared = set()
    for task, block in subset.samples:
        if task.startswith("synth_") and block.split == "lm_eval":
            continue  # lm-eval's aggregates over the subset (verify does not compare them)
        whole = full[(task, block.split)]
        assert len(block.ids) == 12 and set(block.ids) <= set(whole.ids)
        rows = [whole.ids.index(sample) for sample in block.ids]
        assert np.array_equal(block.labels, whole.labels[rows])
        np.testing.assert_allclose(block.values, whole.values[rows], atol=VERIFY_ATOL, rtol=VERIFY_RTOL)
        compared.add((task, block.split))
    assert {("synth_mc", "synth_mc"), ("synth_mc", "choices"), ("lm_loss", "heldout"), ("calib-lm", "test")} <= compared
    positions = subset_positions("seed", "synth_mc", "synth_mc", 400, 12)
    assert next(b for t, b in subset.samples if t == "synth_mc").ids == [f"doc-{i}" for i in positions]


def test_a_model_against_itself_has_no_divergence(lm_zoo: Path, tmp_path: Path) -> None:
    reference = reference_of(lm_zoo)
    options = EvalOptions(cache_dir=tmp_path / "cache", batch_size=64)
    handle = load_models([reference], options, "cpu")[0]
    spec = with_reference(load_specs().get("compression"), str(reference))
    result = Runner(options).evaluate(handle, [spec]).submission.results[0]
    n_tokens = result.parameters["n_tokens"]
    assert result.metric("fdtm_mean").value == n_tokens and result.metric("sdtm").value == 0
    assert result.metric("js_mean").value == pytest.approx(0.0, abs=1e-9)
    assert result.metric("ppl_ratio").value == pytest.approx(1.0) and result.metric("mc_flips").value == 0


def test_compressed_variants_diverge_from_their_reference(lm_zoo: Path, tmp_path: Path) -> None:
    options = EvalOptions(cache_dir=tmp_path / "cache", batch_size=64)
    variants = {name: path for name, (path, card) in cards(lm_zoo).items() if card.compression}
    handles = load_models(sorted(variants.values()), options, "cpu")
    spec = load_specs().get("compression")  # the reference comes from each card (a sibling folder)
    runner = Runner(options)
    results = {h.card.name: runner.evaluate(h, [spec]).submission.results[0] for h in handles}
    int8 = next(r for name, r in results.items() if name.endswith("int8"))
    int4 = next(r for name, r in results.items() if name.endswith("int4"))
    assert int4.metric("js_mean").value > int8.metric("js_mean").value > 0
    assert int4.metric("fdtm_mean").value <= int8.metric("fdtm_mean").value
    for result in results.values():
        assert 0 <= result.metric("js_mean").value <= np.log(2)
        assert result.parameters["variant"] == "teacher-forced"


def test_more_training_reaches_lower_held_out_loss(lm_zoo: Path, tmp_path: Path) -> None:
    options = EvalOptions(cache_dir=tmp_path / "cache", batch_size=64)
    runs = {
        name: path for name, (path, card) in cards(lm_zoo).items() if name.startswith("synthlang-gpt2-tiny-2x32-adamw")
    }
    assert len(runs) >= 2  # the same run saved at two steps
    spec = load_specs().get("lm_loss")
    runner = Runner(options)
    loss = {}
    for handle in load_models(sorted(runs.values()), options, "cpu"):
        steps = int(handle.card.recipe["steps"])  # type: ignore[arg-type]
        loss[steps] = runner.evaluate(handle, [spec]).submission.results[0].metric("loss_nats").value
    ordered = [loss[s] for s in sorted(loss)]
    assert ordered == sorted(ordered, reverse=True)


def test_a_task_in_the_include_folder_is_indexed_without_lm_evals_own_tasks() -> None:
    from harness.data.lm_eval_source import manager_for, synthlang_lm_eval_suite, task_manager
    from harness.tasks.lm_eval import task_metrics

    folder = synthlang_lm_eval_suite().include_path
    own = manager_for("synth_mc", folder)
    assert own is task_manager(folder, defaults=False)
    assert "synth_mc" in own.all_subtasks and "hellaswag" not in own.all_tasks  # lm-eval's files are not read
    assert task_metrics("synth_mc", folder) == ["acc", "acc_norm"]
    assert task_metrics("synth_heldout", folder) == ["word_perplexity", "byte_perplexity", "bits_per_byte"]


@pytest.mark.slow  # indexes every task YAML lm-eval ships (seconds)
def test_lm_eval_tasks_take_their_metrics_from_lm_evals_config() -> None:
    from harness.errors import HarnessError
    from harness.tasks.lm_eval import dynamic_spec

    hellaswag = dynamic_spec("lm_eval:hellaswag")
    assert hellaswag.name == "lm_eval.hellaswag" and hellaswag.main_metric == "lm_eval.acc"
    assert hellaswag.parameters["metrics"] == ["acc", "acc_norm"]
    # arc_challenge declares no metrics itself: they come from the arc_easy.yaml it includes
    assert dynamic_spec("lm_eval:arc_challenge").parameters["metrics"] == ["acc", "acc_norm"]
    with pytest.raises(HarnessError, match="did you mean hellaswag"):
        dynamic_spec("lm_eval:helaswag")
