"""A made-up family of checkpoint series for the same-loss view and the checkpoint-series charts (tests
and bench/app.py; no model is run).

Training runs of one architecture differ by optimizer and batch noise; each saves checkpoints at
several steps. Held-out loss falls with the step towards a floor that differs a little per run, so
the late checkpoints of every run sit at nearly the same loss. Flatness (Hessian trace) depends on
the run (the optimizer's implicit bias) and the step; downstream accuracy improves with lower loss
and, at equal loss, with a flatter minimum: among the checkpoints at the same loss, downstream and
flatness are negatively correlated given loss, which the same-loss view must show.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from harness.metrics import metric_info
from harness.schema import SCHEMA_VERSION, RunResult, Submission
from harness.store import open_store
from harness.trust import Tier

FAMILY = "synth-same-loss"
ORG = "synth"
OPTIMIZERS = ("adamw", "adam", "sgd", "lion")
STEPS = (500, 1000, 2000, 3000, 4000, 5000)


def _sha(*parts: object) -> str:
    return hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()


def _metric(name: str, value: float, se: float, n: int, unit: str) -> dict[str, Any]:
    return {
        "name": name,
        "value": float(value),
        "higher_is_better": metric_info(name).higher_is_better,
        "ci_low": float(value - 1.96 * se),
        "ci_high": float(value + 1.96 * se),
        "ci_method": "bc-bootstrap",
        "n": n,
        "unit": unit,
    }


def _run(task: str, adapter: str, main: str, metrics: list[dict[str, Any]], sid: str) -> dict[str, Any]:
    return {
        "run_id": f"{sid}-{task}",
        "task": task,
        "task_version": 1,
        "spec_hash": _sha("spec", task),
        "adapter": adapter,
        "main_metric": main,
        "metrics": metrics,
        "parameters": {"n_resamples": 1000},
        "dataset_fingerprints": {"test": _sha("data", task)},
        "artifacts": {},
        "duration_s": 1.0,
    }


def same_loss_submissions(
    runs_per_optimizer: int = 2,
    steps: Sequence[int] = STEPS,
    seed: int = 0,
    *,
    family: str = FAMILY,
    optimizers: Sequence[str] = OPTIMIZERS,
) -> Iterator[Submission]:
    """One submission per checkpoint: lm_loss, flatness, synth_blimp and synth_mc runs; cards with
    family, training_run, step, tokens_seen and a self-reported pre-training loss."""
    rng = np.random.default_rng(seed)
    for o, optimizer in enumerate(optimizers):
        for replica in range(runs_per_optimizer):
            run_name = f"{family}-{optimizer}-b{replica}"
            floor = 3.05 + float(rng.normal(scale=0.012))
            sharpness = 0.6 * (o - 1.5) + float(rng.normal(scale=0.3))  # the optimizer's implicit bias
            for step in steps:
                loss = floor + 0.9 * math.exp(-step / 700)
                flat = sharpness + 0.25 * math.log(step / 1000) + float(rng.normal(scale=0.15))
                trace = math.exp(2.0 + 0.6 * flat)
                quality = -6.0 * (loss - 3.05) - 0.7 * flat + float(rng.normal(scale=0.12))
                name = f"{run_name}-step{step}"
                sid = _sha("same-loss", seed, name)[:20]
                acc_mc = 0.5 + 0.45 / (1 + math.exp(-quality))
                acc_blimp = 0.5 + 0.4 / (1 + math.exp(-(quality - 0.3)))
                results = [
                    _run("lm_loss", "lm_loss", "loss_nats", [
                        _metric("loss_nats", loss, 0.004, 40_000, "tokens"),
                        _metric("perplexity", math.exp(loss), 0.004 * math.exp(loss), 40_000, "tokens"),
                    ], sid),
                    _run("flatness", "flatness", "hessian_trace", [
                        _metric("hessian_trace", trace, 0.04 * trace, 64, "probes"),
                        _metric("noise_loss_increase.0.01", 0.002 * trace, 0.0003 * trace, 8, "draws"),
                    ], sid),
                    _run("synth_blimp", "lm_eval", "lm_eval.acc", [
                        _metric("lm_eval.acc", acc_blimp, math.sqrt(acc_blimp * (1 - acc_blimp) / 800), 800, "items"),
                    ], sid),
                    _run("synth_mc", "lm_eval", "lm_eval.acc", [
                        _metric("lm_eval.acc", acc_mc, math.sqrt(acc_mc * (1 - acc_mc) / 600), 600, "items"),
                    ], sid),
                ]  # fmt: skip
                yield Submission.model_validate(
                    {
                        "schema_version": SCHEMA_VERSION,
                        "submission_id": sid,
                        "model": {
                            "name": name,
                            "org": ORG,
                            "family": family,
                            "kind": "synthetic",
                            "n_parameters": 2_000_000,
                            "recipe": {"optimizer": optimizer, "batch_seed": replica, "lr": 1e-3},
                            "pretrain_loss_nats": float(loss + rng.normal(scale=0.003)),
                            "trained_on": "synthlang",
                            "training_run": run_name,
                            "step": step,
                            "tokens_seen": step * 32 * 128,
                            "tags": ["synthetic", "same-loss"],
                            "description": f"checkpoint of {run_name} at step {step} (no checkpoint file)",
                        },
                        "checkpoint_hash": _sha("checkpoint", name),
                        "seed": 0,
                        "provenance": {
                            "source": "imported",
                            "harness_version": "synthetic",
                            "python": "3.11",
                            "platform": "synthetic",
                            "created_at": "2026-03-01T00:00:00+00:00",
                            "duration_s": 4.0,
                            "command": "tests/same_loss_store.py",
                        },
                        "results": results,
                    }
                )


def _re_scored(sub: Submission, run: RunResult) -> Tier:
    return "re-scored"


def add_same_loss_family(path: str | Path, runs_per_optimizer: int = 2, *, seed: int = 0, bulk: bool = False) -> Path:
    """Ingest the family into the store at `path` (created if missing), every run re-scored."""
    submissions = [(s, None) for s in same_loss_submissions(runs_per_optimizer, seed=seed)]
    with open_store(path) as store:
        if bulk:
            store.ingest_bulk(submissions, tiers=_re_scored)
        else:
            store.ingest(submissions, tiers=_re_scored)
    return Path(path)
