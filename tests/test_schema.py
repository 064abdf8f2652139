from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from factories import make_submission
from pydantic import ValidationError

from harness.errors import HarnessError
from harness.schema import MetricValue, ModelCard, TaskSpec
from harness.submissions import read_submission
from harness.tasks import load_spec, load_specs


def test_submission_round_trip(tmp_path: Path) -> None:
    submission = make_submission()
    path = tmp_path / "s1.json"
    path.write_text(submission.model_dump_json())
    assert read_submission(path) == submission
    assert submission.ranked and not make_submission(sample_limit=5).ranked


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_metric_values_are_rejected(bad: float) -> None:
    with pytest.raises(ValidationError, match="finite"):
        MetricValue(name="ece", value=bad, higher_is_better=False, n=1)


@pytest.mark.parametrize("name", ["../evil", "/abs", ".hidden", "a b", ""])
def test_unsafe_names_are_rejected(name: str) -> None:
    with pytest.raises(ValidationError):
        ModelCard(name=name)


def test_unknown_fields_are_rejected(tmp_path: Path) -> None:
    raw = json.loads(make_submission().model_dump_json())
    raw["surprise"] = 1
    path = tmp_path / "x.json"
    path.write_text(json.dumps(raw))
    with pytest.raises(HarnessError, match="surprise"):
        read_submission(path)


def test_wrong_schema_version_is_named(tmp_path: Path) -> None:
    raw = json.loads(make_submission().model_dump_json())
    raw["schema_version"] = 99
    path = tmp_path / "x.json"
    path.write_text(json.dumps(raw))
    with pytest.raises(HarnessError, match="schema_version"):
        read_submission(path)


def test_builtin_specs_are_valid_and_hash_stably() -> None:
    specs = load_specs()
    assert "calib" in specs
    spec = specs.get("calib")
    assert spec.spec_hash() == TaskSpec.model_validate(spec.model_dump()).spec_hash()


SPEC = """name: {name}
version: 1
adapter: {adapter}
description: test
dataset: {{kind: builtin, name: digits}}
main_metric: {metric}
"""


@pytest.mark.parametrize(
    ("name", "adapter", "metric", "extra", "message"),
    [
        ("t", "calibration", "ece", "", None),
        ("t", "calibraton", "ece", "", "field 'adapter'.*did you mean 'calibration'"),
        ("t", "calibration", "auroc", "", "field 'main_metric'"),
        ("other", "calibration", "ece", "", "field 'name'"),
        ("t", "calibration", "ece", "version_typo: 2\n", "version_typo"),
        ("t", "calibration", "ece", "parameters: [1, 2]\n", "field 'parameters'"),
    ],
)
def test_invalid_spec_names_file_and_field(
    tmp_path: Path, name: str, adapter: str, metric: str, extra: str, message: str | None
) -> None:
    file = tmp_path / "t.yaml"
    file.write_text(SPEC.format(name=name, adapter=adapter, metric=metric) + extra)
    if message is None:
        assert load_spec(file).name == "t"
        return
    with pytest.raises(HarnessError, match=message) as error:
        load_spec(file)
    assert str(file) in str(error.value)


def test_spec_that_is_not_yaml_mapping(tmp_path: Path) -> None:
    file = tmp_path / "t.yaml"
    file.write_text("- just\n- a list\n")
    with pytest.raises(HarnessError, match="mapping"):
        load_spec(file)
    file.write_text("name: [unclosed\n")
    with pytest.raises(HarnessError, match="invalid YAML"):
        load_spec(file)
