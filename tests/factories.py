"""Builders of valid objects for tests (tests change one field at a time from these)."""

from __future__ import annotations

from harness.schema import MetricValue, ModelCard, Provenance, RunResult, Submission

SHA = "a" * 64


def make_submission(**overrides: object) -> Submission:
    run = RunResult(
        run_id="s1-calib",
        task="calib",
        task_version=1,
        spec_hash=SHA,
        adapter="calibration",
        main_metric="ece",
        metrics=[
            MetricValue(
                name="ece", value=0.1, higher_is_better=False, ci_low=0.05, ci_high=0.2, ci_method="bootstrap", n=10
            )
        ],
        parameters={"n_bins": 15},
        dataset_fingerprints={"test": SHA},
        artifacts={"reliability": {"count": [1.0, 2.0]}},
        duration_s=0.5,
    )
    fields: dict[str, object] = {
        "submission_id": "s1",
        "model": ModelCard(name="m", org="o", family="f", n_parameters=10, recipe={"epochs": 3}),
        "checkpoint_hash": SHA,
        "seed": 0,
        "provenance": Provenance(
            harness_version="0.1.0",
            python="3.11",
            platform="linux",
            created_at="2026-01-01T00:00:00+00:00",
            duration_s=1.0,
        ),
        "results": [run],
    }
    fields.update(overrides)
    return Submission.model_validate(fields)
