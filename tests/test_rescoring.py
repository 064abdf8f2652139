"""Re-scoring tolerances: the same computation on another machine passes, an edited number does not.

Tolerances are documented in harness/rescoring.py and docs/submission-format.md. "Another machine"
is emulated two ways: last-bit perturbations of the inputs of fitted parameters, and re-scoring the
shipped submissions in processes with 1 and 2 BLAS/OpenMP threads.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import minimize_scalar

from harness.metrics import calibration as cal
from harness.rescoring import RESCORE_RTOL, close, compare_metrics, compare_values
from harness.schema import MetricValue
from harness.validation import validate_file

REPO = Path(__file__).resolve().parent.parent
SHIPPED = REPO / "submissions"


def metric(value: float, **changes: object) -> MetricValue:
    fields: dict[str, object] = {
        "name": "ece",
        "value": value,
        "higher_is_better": False,
        "ci_low": value * 0.5,
        "ci_high": value * 2,
        "ci_method": "bootstrap",
        "n": 271,
    }
    return MetricValue.model_validate({**fields, **changes})


@pytest.mark.parametrize("relative", [1e-4, 1e-5, 3e-6])
def test_an_edit_of_a_value_is_rejected(relative: float) -> None:
    base = metric(0.0113)
    assert compare_metrics([metric(0.0113 * (1 + relative))], [base]) != []
    assert compare_metrics([metric(0.0113, ci_low=0.0113 * 0.5 * (1 - relative))], [base]) != []


@pytest.mark.parametrize("relative", [1e-15, 1e-12, 1e-9, 5e-7])
def test_last_bit_differences_are_accepted(relative: float) -> None:
    base = metric(0.0113)
    assert compare_metrics([metric(0.0113 * (1 + relative), ci_low=0.0113 * 0.5 * (1 - relative))], [base]) == []


def test_a_bias_corrected_bound_may_move_as_far_as_rounding_of_tied_resamples_allows() -> None:
    # 40 resamples reproduce the point exactly here; on another machine some are an ulp off, which moves
    # the bias correction's z0 and the bounds by a quantile step
    from harness.intervals import bias_corrected_interval
    from harness.tasks.base import bootstrap_metric

    rng = np.random.default_rng(8)
    distribution = np.round(rng.normal(0.3, 0.05, size=1000), 2)
    point = 0.3
    here = bootstrap_metric("brier", point, distribution, 271)
    low_min, low_max, high_min, high_max = here._ci_range or (0.0, 0.0, 0.0, 0.0)
    assert low_min < low_max and high_min < high_max
    there_distribution = distribution.copy()
    there_distribution[distribution == point] = np.nextafter(point, 1.0)  # rounded the other way there
    low, high = bias_corrected_interval(point, there_distribution)
    assert (low, high) != (here.ci_low, here.ci_high)
    there = here.model_copy(update={"ci_low": low, "ci_high": high})
    assert compare_metrics([there], [here]) == []
    # beyond the range, an edit is still rejected
    edited = here.model_copy(update={"ci_low": low_min * (1 - 1e-4)})
    assert compare_metrics([edited], [here]) != []
    edited = here.model_copy(update={"ci_high": high_max * (1 + 1e-4)})
    assert compare_metrics([edited], [here]) != []


def test_counts_and_labels_must_agree_exactly() -> None:
    base = metric(0.5)
    assert compare_metrics([metric(0.5, n=270)], [base]) == [("ece", "n 270 != recomputed 271")]
    assert compare_metrics([metric(0.5, ci_method="stderr")], [base]) != []
    assert compare_metrics([metric(0.5, higher_is_better=True)], [base]) != []
    assert close(0.0, 1e-13) and not close(0.0, 1e-9)


def test_artifacts_compare_floats_within_tolerance_and_the_rest_exactly() -> None:
    recomputed = {
        "ranking": [{"component": "h.0.attn", "fdtm_mean": 3.25}, {"component": "h.1.mlp", "fdtm_mean": 7.5}],
        "reliability": {"count": [3, 0, 5], "confidence": [0.1, 0.0, 0.93]},
        "main_bootstrap": {"seed": 0, "values": [0.0123457, 0.0200001]},
        "at_bound": False,
    }
    same = json.loads(json.dumps(recomputed))
    same["reliability"]["confidence"][2] *= 1 + 1e-12
    same["main_bootstrap"]["values"][0] = 0.0123456  # one rounding step at the 7th decimal
    assert list(compare_values(same, recomputed, "artifacts")) == []

    def edited(path: tuple[object, ...], value: object) -> dict[str, object]:
        copy = json.loads(json.dumps(recomputed))
        target = copy
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
        return copy

    swapped = json.loads(json.dumps(recomputed))
    swapped["ranking"].reverse()
    cases = [
        swapped,
        edited(("reliability", "count", 0), 4),
        edited(("reliability", "count", 0), 3.0),  # a count must stay an integer
        edited(("reliability", "confidence", 2), 0.93 * (1 + 1e-4)),
        edited(("main_bootstrap", "values", 1), 0.0200101),
        edited(("main_bootstrap", "seed"), 1),
        edited(("at_bound",), 0),
        edited(("extra",), 1.0),
        edited(("reliability", "count"), [3, 0]),
    ]
    for case in cases:
        assert list(compare_values(case, recomputed, "artifacts")), case


# ----------------------------------------------------------------------------- the temperature fit


def scipy_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """An independent fit: scipy's bounded Brent search on log T, run to a tight tolerance."""
    low, high = np.log(cal.TEMPERATURE_BOUNDS[0]), np.log(cal.TEMPERATURE_BOUNDS[1])
    result = minimize_scalar(
        lambda log_t: cal.negative_log_likelihood(logits, labels, float(np.exp(log_t))),
        bounds=(low, high),
        method="bounded",
        options={"xatol": 1e-10},
    )
    return float(np.exp(result.x))


@pytest.mark.parametrize("seed", range(6))
def test_the_temperature_matches_an_independent_fit_and_ignores_last_bits(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, k = int(rng.integers(50, 3000)), int(rng.integers(2, 12))
    labels = rng.integers(0, k, size=n)
    logits = rng.normal(size=(n, k)) * rng.uniform(0.2, 6.0)
    logits[np.arange(n), labels] += rng.uniform(0.0, 4.0)  # some signal, over- or under-confident
    fitted = cal.fit_temperature(logits, labels)
    assert fitted == pytest.approx(scipy_temperature(logits, labels), rel=1e-6)
    # Another machine: every logit moved by one unit in the last place, and another summation order.
    nudged = np.nextafter(logits, np.where(rng.random(logits.shape) < 0.5, -np.inf, np.inf))
    order = rng.permutation(n)
    again = cal.fit_temperature(nudged[order], labels[order])
    assert abs(again - fitted) <= 1e-10 * fitted < RESCORE_RTOL * fitted


def test_the_temperature_at_and_between_its_bounds() -> None:
    logits = np.array([[5.0, 0.0, 0.0], [0.0, 4.0, 1.0], [1.0, 0.0, 3.0]])
    assert cal.fit_temperature(logits, np.array([0, 1, 2])) == cal.TEMPERATURE_BOUNDS[0]  # all correct
    assert cal.fit_temperature(-logits, np.array([0, 1, 2])) == cal.TEMPERATURE_BOUNDS[1]  # all wrong
    assert cal.fit_temperature(np.zeros((4, 3)), np.array([0, 1, 2, 0])) == 1.0  # T does not matter


# ----------------------------------------------------------------------------- shipped files


def shipped_files() -> list[Path]:
    return sorted(SHIPPED.rglob("*.json"))


def one_of_each_task() -> list[Path]:
    """The smallest set of shipped files that covers every task shipped."""
    chosen: dict[str, Path] = {}
    for file in shipped_files():
        for run in json.loads(file.read_text())["results"]:
            chosen.setdefault(run["task"], file)
    return sorted(set(chosen.values()))


def copy_submission(file: Path, tmp_path: Path) -> Path:
    folder = tmp_path / file.parent.name
    folder.mkdir(parents=True)
    shutil.copy(file, folder / file.name)
    shutil.copy(file.with_suffix(".parquet"), folder / file.with_suffix(".parquet").name)
    return folder / file.name


@pytest.mark.slow
def test_an_edit_at_1e_4_of_any_shipped_metric_is_caught(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for source in one_of_each_task():
        file = copy_submission(source, tmp_path / source.stem)
        raw = json.loads(file.read_text())
        assert validate_file(file)[1] == [], source
        for r_index, run in enumerate(raw["results"]):
            candidates = [m for m in run["metrics"] if abs(m["value"]) > 1e-6]  # above the absolute floor
            m_index = run["metrics"].index(candidates[int(rng.integers(len(candidates)))])
            forged = json.loads(json.dumps(raw))
            forged["results"][r_index]["metrics"][m_index]["value"] *= 1 + 1e-4
            file.write_text(json.dumps(forged))
            problems = validate_file(file)[1]
            name = run["metrics"][m_index]["name"]
            assert any(name in p.field for p in problems), (source, run["task"], name)
        file.write_text(json.dumps(raw))


RESCORE_SCRIPT = """
import json, sys
from pathlib import Path
from harness.rescoring import compare_run
from harness.tasks import adapter_for
from harness.tasks.compression import with_reference
from harness.validation import current_spec, read_samples, validate_file

out = {}
for name in sys.argv[1:]:
    file = Path(name)
    sub, problems = validate_file(file)
    assert not problems, [p.one_line() for p in problems]
    samples = read_samples(file.with_suffix(".parquet"))
    for run in sub.results:
        spec = current_spec(run)
        if spec.adapter == "compression":
            spec = with_reference(spec, str(run.parameters["reference"]))
        outcome = adapter_for(spec).score(spec, samples[run.task], sub.seed)
        out[run.run_id] = [m.model_dump() for m in outcome.metrics]
print(json.dumps(out))
"""


@pytest.mark.slow
def test_rescoring_agrees_with_one_and_two_blas_threads() -> None:
    files = [str(f) for f in one_of_each_task()]
    results = []
    for threads in ("1", "2"):
        env = {**os.environ}
        for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
            env[variable] = threads
        done = subprocess.run(
            [sys.executable, "-c", RESCORE_SCRIPT, *files], capture_output=True, text=True, env=env, cwd=REPO
        )
        assert done.returncode == 0, done.stderr[-3000:]
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    one, two = results
    assert one.keys() == two.keys() and len(one) >= 8
    for run_id in one:
        a = [MetricValue.model_validate(m) for m in one[run_id]]
        b = [MetricValue.model_validate(m) for m in two[run_id]]
        assert compare_metrics(a, b) == [], run_id
