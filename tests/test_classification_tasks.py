"""The calib, ood and longtail adapters end to end on the tiny zoo, checked against independent code."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.special import softmax
from sklearn.metrics import balanced_accuracy_score, roc_auc_score

from harness.models.base import InferenceOptions
from harness.runner import EvalOptions, ModelResult, Runner, load_models
from harness.tasks import adapter_for, load_specs
from harness.tasks.base import Samples


@pytest.fixture(scope="module")
def lt_model_result(tiny_zoo: Path, tmp_path_factory: pytest.TempPathFactory) -> ModelResult:
    """One long-tailed model on calib, ood and longtail: the three share the ID test split."""
    options = EvalOptions(cache_dir=tmp_path_factory.mktemp("cache"))
    handle = load_models([tiny_zoo / "digits-lt100-mlp-logit-adjusted"], options, "cpu")[0]
    specs = load_specs()
    return Runner(options).evaluate(handle, [specs.get(name) for name in ("calib", "ood", "longtail")])


def test_one_forward_pass_per_split_across_tasks(lt_model_result: ModelResult) -> None:
    # calib: calib + test; ood: train, test, near, noise, patterns, permuted; longtail: test -> 7 splits.
    assert (lt_model_result.cache_misses, lt_model_result.cache_hits) == (7, 0)


def blocks(result: ModelResult, task: str) -> dict[str, Samples]:
    return {block.split: block for name, block in result.samples if name == task}


def test_ood_metrics_match_sklearn_on_independently_computed_scores(lt_model_result: ModelResult) -> None:
    run = next(r for r in lt_model_result.submission.results if r.task == "ood")
    samples = blocks(lt_model_result, "ood")
    assert samples["test"].fields == ["msp", "max_logit", "energy", "mahalanobis", "knn"]
    calib = blocks(lt_model_result, "calib")["test"]  # the same ID test logits
    msp_id = softmax(calib.values.astype(np.float64), axis=1).max(axis=1)
    msp_near = samples["near"].values[:, 0].astype(np.float64)
    expected = roc_auc_score(np.r_[np.ones(len(msp_id)), np.zeros(len(msp_near))], np.r_[msp_id, msp_near])
    assert run.metric("auroc.msp.near").value == pytest.approx(expected, abs=1e-6)
    mean = run.metric("auroc.energy.mean").value
    near, far = run.metric("auroc.energy.near").value, run.metric("auroc.energy.far").value
    assert mean == pytest.approx((near + far) / 2)
    far_sets = [run.metric(f"auroc.energy.{s}").value for s in ("noise", "patterns", "permuted")]
    assert far == pytest.approx(np.mean(far_sets))
    fpr = run.metric("fpr95.energy.near")
    assert not fpr.higher_is_better and fpr.ci_low is not None and fpr.ci_low <= fpr.value <= fpr.ci_high
    assert run.artifacts["roc"]["fpr"][0] == 0.0 and len(run.artifacts["roc"]["tpr"]["energy"]["near"]) == 101


def test_ood_auroc_intervals_use_delongs_errors_of_the_average(lt_model_result: ModelResult) -> None:
    """The far group's AUROC interval, rebuilt from sklearn AUROCs and midrank DeLong errors of the mean of
    its three sets on every stratified resample, is the adapter's (ci_method bc-studentized)."""
    from auroc_reference import delong_by_midranks

    from harness.intervals import studentized_auroc_interval
    from harness.stats import stratified_resamples

    run = next(r for r in lt_model_result.submission.results if r.task == "ood")
    samples = blocks(lt_model_result, "ood")
    spec = load_specs().get("ood")
    splits = ["test", *spec.parameters["near_ood"], *spec.parameters["far_ood"]]  # the adapter's resampling order
    far = list(spec.parameters["far_ood"])
    energy = {split: samples[split].values[:, 2].astype(np.float64) for split in splits}

    def auroc(id_scores: np.ndarray, ood_scores: np.ndarray) -> float:
        return float(
            roc_auc_score(np.r_[np.ones(id_scores.size), np.zeros(ood_scores.size)], np.r_[id_scores, ood_scores])
        )

    def far_auroc_and_error(rows: list[np.ndarray]) -> tuple[float, float]:
        id_scores = energy["test"][rows[0]]
        sets = [energy[s][rows[splits.index(s)]] for s in far]
        value = float(np.mean([auroc(id_scores, ood) for ood in sets]))
        return value, float(np.sqrt(delong_by_midranks(id_scores, sets, [1 / 3] * 3)))

    sizes = [energy[s].size for s in splits]
    point, stderr = far_auroc_and_error([np.arange(size) for size in sizes])
    resampled = [far_auroc_and_error(rows) for rows in stratified_resamples(sizes, n_resamples=1000, seed=0)]
    distribution, stderrs = (np.array(v) for v in zip(*resampled, strict=True))
    pairs = sizes[0] * min(energy[s].size for s in far)
    low, high = studentized_auroc_interval(point, stderr, distribution, stderrs, pairs)[0]
    metric = run.metric("auroc.energy.far")
    assert metric.ci_method == "bc-studentized" and metric.value == pytest.approx(point, abs=1e-12)
    assert (metric.ci_low, metric.ci_high) == (pytest.approx(low, abs=1e-9), pytest.approx(high, abs=1e-9))
    assert run.metric("aupr_in.energy.far").ci_method == "bc-bootstrap"


def test_longtail_metrics_match_sklearn(lt_model_result: ModelResult) -> None:
    run = next(r for r in lt_model_result.submission.results if r.task == "longtail")
    test = blocks(lt_model_result, "longtail")["test"]
    predictions = test.values.argmax(axis=1)
    balanced = balanced_accuracy_score(test.labels, predictions)
    assert run.metric("balanced_accuracy").value == pytest.approx(balanced)
    assert run.metric("acc_uniform").value == pytest.approx(balanced)
    per_class = run.artifacts["per_class"]
    assert per_class["train_count"] == [106, 42, 16, 6, 2, 1]
    assert per_class["group"] == ["many", "medium", "medium", "few", "few", "few"]
    assert run.metric("few_shot_accuracy").value == pytest.approx(np.mean(per_class["accuracy"][3:]))
    # Forward LT priors weight the head: with ratio 50 the head class has 50x the tail's mass.
    prior = 50.0 ** (-np.arange(6) / 5)
    expected = float((prior / prior.sum()) @ np.asarray(per_class["accuracy"]))
    assert run.metric("acc_forward_lt_50").value == pytest.approx(expected)
    assert run.parameters["many_shot_min"] == 50 and run.parameters["few_shot_max"] == 15


def test_calibration_metrics_and_temperature(lt_model_result: ModelResult) -> None:
    from harness.metrics.calibration import calibration_summary, fit_temperature

    run = next(r for r in lt_model_result.submission.results if r.task == "calib")
    samples = blocks(lt_model_result, "calib")
    expected = calibration_summary(samples["test"].values, samples["test"].labels)
    for name, value in expected.items():
        assert run.metric(name).value == pytest.approx(value, abs=1e-9), name
    temperature = fit_temperature(samples["calib"].values.astype(np.float64), samples["calib"].labels)
    assert run.metric("temperature").value == pytest.approx(temperature)
    assert run.metric("temperature").ci_method == "none"
    assert len(run.artifacts["reliability_ts"]["count"]) == 15


def test_scoring_from_samples_reproduces_the_submission(lt_model_result: ModelResult) -> None:
    # What `harness validate` relies on: metrics are a pure function of the per-sample values.
    specs = load_specs()
    for run in lt_model_result.submission.results:
        spec = specs.get(run.task)
        outcome = adapter_for(spec).score(spec, blocks(lt_model_result, run.task), seed=0)
        assert outcome.metrics == run.metrics


def test_ood_without_features_reports_logit_scores_only(tiny_zoo: Path, tmp_path: Path) -> None:
    options = EvalOptions(cache_dir=tmp_path / "cache")
    handle = load_models([tiny_zoo / "digits-mlp-wide"], options, "cpu")[0]
    spec = load_specs().get("ood")
    from harness.data import load_suite

    suite = load_suite(spec.dataset)
    arrays = {}
    for split in ("train", "test", "near", "noise", "patterns", "permuted"):
        out = handle.classify(suite.split(split), InferenceOptions())  # type: ignore[attr-defined]
        arrays[f"{split}.ids"] = np.asarray(suite.split(split).ids)
        arrays[f"{split}.logits"] = out["logits"]
    (tmp_path / "preds").mkdir()
    np.savez(tmp_path / "preds" / "predictions.npz", **arrays)  # type: ignore[arg-type]
    from harness.schema import ModelCard

    (tmp_path / "preds" / "card.json").write_text(ModelCard(name="preds", trained_on="digits-ood").model_dump_json())
    predictions = load_models([tmp_path / "preds"], options, "cpu")[0]
    result = Runner(options).evaluate(predictions, [spec])
    run = result.submission.results[0]
    assert run.parameters["skipped_scores"] == ["mahalanobis", "knn"]
    assert not any(".mahalanobis." in m.name for m in run.metrics)
    direct = Runner(options).evaluate(handle, [spec]).submission.results[0]
    assert run.metric("auroc.energy.mean").value == pytest.approx(direct.metric("auroc.energy.mean").value, abs=1e-6)


def test_a_class_absent_from_the_test_split_has_a_null_accuracy_not_nan(lt_model_result: ModelResult) -> None:
    """JSON has no NaN: a class with no test sample gets null in the per-class artifact, the aggregates
    leave it out, and the run re-scores to the same numbers."""
    import dataclasses
    import json

    from harness.rescoring import compare_run

    spec = load_specs().get("longtail")
    samples = blocks(lt_model_result, "longtail")
    test = samples["test"]
    keep = test.labels != 5
    samples["test"] = dataclasses.replace(
        test,
        ids=[i for i, k in zip(test.ids, keep, strict=True) if k],
        labels=test.labels[keep],
        values=test.values[keep],
    )
    outcome = adapter_for(spec).score(spec, samples, seed=0)
    accuracy = outcome.artifacts["per_class"]["accuracy"]
    assert accuracy[5] is None and all(isinstance(a, float) for a in accuracy[:5])
    json.dumps(outcome.artifacts, allow_nan=False)  # raises on NaN
    run = next(r for r in lt_model_result.submission.results if r.task == "longtail")
    from harness.tasks.base import run_artifacts, run_parameters

    rescored = run.model_copy(
        update={
            "metrics": outcome.metrics,
            "parameters": run_parameters(spec, outcome),
            "artifacts": json.loads(json.dumps(run_artifacts(outcome, spec.main_metric, 0))),
        }
    )
    assert compare_run(rescored, spec, outcome, 0) == []
