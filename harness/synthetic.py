"""Synthetic results stores for the app's tests and benchmarks (no model is run).

`synthetic_submissions` generates valid `Submission` objects (the same schema as real ones) for a
made-up population of models; `synthetic_store` writes them into a results store. Small stores go
through the normal ingest path (`Store.ingest`); large ones through `Store.ingest_bulk`, which
writes the same rows in a few column-wise inserts (tests check that both give the same tables).

The population, seeded and deterministic:
- families "synth-mlp" and "synth-cnn" (classifiers, with a final training loss on the card),
  "synth-gpt" (language models with a self-reported pre-training loss), "synth-encoder", and
  "synth-gpt-compressed": variants of every 25th "synth-gpt" model (the references), pruned to
  sparsity 0.3 / 0.5 / 0.7 (global), 0.5 (per component) or quantized to 8 and 4 bits. Cards carry
  family, parameter count, recipe, tags, reference and compression fields as real zoo cards do.
- every model has a latent quality; metrics follow it with noise, so correlations exist: held-out
  loss and flatness predict the downstream accuracy; compression damage grows with sparsity and
  falling bits, and shows far more in FDTM / SDTM / JS than in the perplexity ratio.
- tasks, in order: calib, ood, longtail, lm_loss, flatness, synth_blimp, synth_mc, compression,
  retrieval, probe, compression-components, then "suite-01", "suite-02", ... (8 metrics each);
  `n_tasks` takes the first n. Every model runs every task except compression (compressed
  variants only) and compression-components (references only). Artifacts have the shapes the real
  adapters store: reliability bins, ROC curves on the 101-point FPR grid, per-class accuracy,
  FDT histogram, component ranking.
- `bootstrap_values` > 0 stores each run's main-metric bootstrap distribution
  (artifacts["main_bootstrap"]): the resamples are shared by every model of a task (paired), except
  that every 13th model used seed 1 (so its distribution does not pair with the others).
- every 17th model also has a newer submission made with --limit (never ranked), and every 11th
  model an older submission whose runs the newer one supersedes.
- trust tiers: `synthetic_store` stores every run as "re-scored" (ranked by default) unless given
  `tiers`; the submissions themselves say `source: imported`, the truth about them.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness.metrics import metric_info
from harness.schema import SCHEMA_VERSION, RunResult, Submission
from harness.trust import Tier

ORG = "synth"
CLASSIFIER_FAMILIES = ("synth-mlp", "synth-cnn")
LM_FAMILY = "synth-gpt"
ENCODER_FAMILY = "synth-encoder"
COMPRESSED_FAMILY = "synth-gpt-compressed"
#: every REFERENCE_EVERY-th model is a reference with compressed variants
REFERENCE_EVERY = 25
VARIANTS: tuple[dict[str, Any], ...] = (
    {"method": "prune", "sparsity": 0.3, "scope": "global"},
    {"method": "prune", "sparsity": 0.5, "scope": "global"},
    {"method": "prune", "sparsity": 0.7, "scope": "global"},
    {"method": "prune", "sparsity": 0.5, "scope": "per-component"},
    {"method": "quantize", "bits": 8, "granularity": "per-channel"},
    {"method": "quantize", "bits": 4, "granularity": "per-channel"},
)
SUITE_METRICS = ("accuracy", "ece", "nll", "brier", "aurc", "mce", "ece_em", "classwise_ece")
BIG_STORE_RUNS = 2000  # above this many runs, synthetic_store uses the bulk insert


@dataclass(frozen=True)
class _Model:
    index: int
    name: str
    family: str
    quality: float  # latent skill, about N(0, 1)
    n_parameters: int
    reference: str | None = None
    compression: dict[str, Any] | None = None
    damage: float = 0.0  # compression damage (0 = none)
    flatness: float = 0.0  # latent sharpness (higher = sharper)

    @property
    def model_id(self) -> str:
        return f"{ORG}/{self.name}"

    @property
    def is_reference(self) -> bool:
        return self.family == LM_FAMILY and self.index % REFERENCE_EVERY == 0


@dataclass(frozen=True)
class _Task:
    name: str
    adapter: str
    main_metric: str
    applies: Callable[[_Model], bool]


def _always(model: _Model) -> bool:
    return True


def _variants_only(model: _Model) -> bool:
    return model.reference is not None


def _references_only(model: _Model) -> bool:
    return model.is_reference


CATALOGUE = (
    _Task("calib", "calibration", "ece", _always),
    _Task("ood", "ood", "auroc.energy.mean", _always),
    _Task("longtail", "longtail", "balanced_accuracy", _always),
    _Task("lm_loss", "lm_loss", "loss_nats", _always),
    _Task("flatness", "flatness", "hessian_trace", _always),
    _Task("synth_blimp", "lm_eval", "lm_eval.acc", _always),
    _Task("synth_mc", "lm_eval", "lm_eval.acc", _always),
    _Task("compression", "compression", "fdtm_mean", _variants_only),
    _Task("retrieval", "retrieval", "ndcg_at_10", _always),
    _Task("probe", "probe", "probe_accuracy", _always),
    _Task("compression-components", "compression_components", "fdtm_mean.most_sensitive", _references_only),
)


def synthetic_tasks(n_tasks: int, names: Sequence[str] | None = None) -> list[_Task]:
    """The first `n_tasks` tasks of the catalogue, then generic "suite-NN" classification tasks.

    `names` picks tasks by name instead (catalogue names or "suite-NN"); `n_tasks` is then ignored.
    """
    suites = [_Task(f"suite-{k + 1:02d}", "calibration", "accuracy", _always) for k in range(max(n_tasks, 99))]
    if names is not None:
        known = {t.name: t for t in (*CATALOGUE, *suites)}
        unknown = [n for n in names if n not in known]
        if unknown:
            raise ValueError(f"unknown synthetic task(s) {unknown}; use {[t.name for t in CATALOGUE]} or suite-NN")
        return [known[n] for n in names]
    tasks = list(CATALOGUE[:n_tasks])
    return tasks + suites[: n_tasks - len(tasks)]


def _sha(*parts: object) -> str:
    return hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()


def _models(n_models: int, rng: np.random.Generator) -> list[_Model]:
    """The population: references are followed by their compressed variants."""
    models: list[_Model] = []
    base = [*CLASSIFIER_FAMILIES, LM_FAMILY, ENCODER_FAMILY]
    index = 0
    while len(models) < n_models:
        quality = float(rng.normal())
        family = LM_FAMILY if index % REFERENCE_EVERY == 0 else base[int(rng.integers(len(base)))]
        size = float(rng.uniform(5.0, 8.0))
        reference = _Model(
            index=index,
            name=f"{family}-{index:05d}",
            family=family,
            quality=quality + 0.4 * (size - 6.5),
            n_parameters=int(10**size),
            flatness=float(rng.normal()),
        )
        models.append(reference)
        index += 1
        if reference.is_reference:
            for spec in VARIANTS:
                if len(models) >= n_models:
                    break
                if spec["method"] == "prune":
                    damage = 3.0 * float(spec["sparsity"]) ** 2.5 * (1.6 if spec["scope"] == "per-component" else 1.0)
                    suffix = f"prune{int(spec['sparsity'] * 100)}-{spec['scope']}"
                else:
                    damage = {8: 0.02, 4: 0.35}[int(spec["bits"])]
                    suffix = f"int{spec['bits']}"
                damage *= float(rng.uniform(0.8, 1.2))
                models.append(
                    _Model(
                        index=index,
                        name=f"{reference.name}-{suffix}",
                        family=COMPRESSED_FAMILY,
                        quality=reference.quality - 2.5 * damage,
                        n_parameters=reference.n_parameters,
                        reference=reference.model_id,
                        compression=dict(spec),
                        damage=damage,
                        flatness=reference.flatness + damage,
                    )
                )
                index += 1
    return models[:n_models]


class _Generator:
    """Metric values, intervals, bootstrap distributions and artifacts of one synthetic run."""

    def __init__(self, seed: int, bootstrap_values: int) -> None:
        self.seed = seed
        self.bootstrap_values = bootstrap_values
        self._common: dict[tuple[str, int], np.ndarray] = {}

    def common_noise(self, task: str, seed: int) -> np.ndarray:
        """Resample noise shared by every run of `task` with `seed` (what makes distributions paired)."""
        key = (task, seed)
        if key not in self._common:
            rng = np.random.default_rng([self.seed, seed, int(_sha(task)[:8], 16)])
            self._common[key] = rng.normal(size=self.bootstrap_values)
        return self._common[key]

    def metric(
        self, name: str, value: float, se: float, n: int, rng: np.random.Generator, *, ci: bool = True
    ) -> dict[str, Any]:
        higher = metric_info(name).higher_is_better
        out: dict[str, Any] = {"name": name, "value": float(value), "higher_is_better": higher, "n": n}
        if ci:
            out.update(ci_low=float(value - 1.96 * se), ci_high=float(value + 1.96 * se), ci_method="bootstrap")
        return out

    def main_bootstrap(
        self, task: str, seed: int, metric: dict[str, Any], se: float, rng: np.random.Generator
    ) -> dict[str, Any]:
        """A paired bootstrap distribution around the value; the metric's CI is set from it."""
        common = self.common_noise(task, seed)
        values = metric["value"] + se * (0.95 * common + 0.3 * rng.normal(size=common.size))
        low, high = np.percentile(values, [2.5, 97.5])
        metric.update(ci_low=float(low), ci_high=float(high), ci_method="bootstrap")
        return {"seed": seed, "values": [round(float(v), 7) for v in values]}


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def _run(
    gen: _Generator, task: _Task, model: _Model, seed: int, rng: np.random.Generator, sample_limit: int | None
) -> dict[str, Any]:
    """One run's fields (RunResult as a dict)."""
    q = model.quality + float(rng.normal(scale=0.15))
    n = sample_limit or 1000
    metrics: list[dict[str, Any]] = []
    artifacts: dict[str, Any] = {}
    parameters: dict[str, Any] = {"n_resamples": 1000}

    def add(name: str, value: float, se: float | None = None, count: int = n, ci: bool = True) -> dict[str, Any]:
        spread = se if se is not None else max(math.sqrt(max(value * (1 - value), 1e-4) / count), 1e-4)
        item = gen.metric(name, value, spread, count, rng, ci=ci)
        item["_se"] = spread
        metrics.append(item)
        return item

    if task.adapter == "calibration" and task.name.startswith("suite-"):
        accuracy = 0.55 + 0.4 * _sigmoid(q + float(rng.normal(scale=0.3)))
        error = 0.02 + 0.1 * _sigmoid(-q) + float(rng.uniform(0, 0.02))
        add("accuracy", accuracy)
        for extra, scale in zip(SUITE_METRICS[1:], (1.0, 8.0, 2.5, 1.2, 2.0, 1.1, 0.9), strict=True):
            add(extra, error * scale, se=0.01 * scale)
    elif task.adapter == "calibration":
        accuracy = 0.6 + 0.35 * _sigmoid(q)
        ece = 0.02 + 0.12 * _sigmoid(-q + float(rng.normal(scale=0.5)))
        add("accuracy", accuracy)
        add("ece", ece, se=0.012)
        add("nll", 1.2 * (1 - accuracy) + ece, se=0.03)
        add("brier", 0.9 * (1 - accuracy) + ece / 2, se=0.02)
        add("ece_ts", ece / 3, se=0.008)
        add("temperature", 1.0 + 2.0 * ece, ci=False)
        bins = 15
        lower = [b / bins for b in range(bins)]
        confidence = [(b + 0.5) / bins for b in range(bins)]
        count = [float(max(0, round(n * math.exp(-((b - 12) ** 2) / 8) / 3))) for b in range(bins)]
        gap = ece * 2.5
        artifacts["reliability"] = {
            "lower": lower,
            "upper": [(b + 1) / bins for b in range(bins)],
            "count": count,
            "confidence": confidence,
            "accuracy": [max(0.0, min(1.0, c - gap * c)) if k else 0.0 for c, k in zip(confidence, count, strict=True)],
        }
        artifacts["reliability_ts"] = {
            **artifacts["reliability"],
            "accuracy": [max(0.0, c - gap * c / 3) if k else 0.0 for c, k in zip(confidence, count, strict=True)],
        }
        parameters.update(n_bins=bins, binning="equal-width (a, b]; ece_em: equal-mass")
    elif task.adapter == "ood":
        sets = {"near": "near", "noise": "far", "patterns": "far"}
        aurocs = {"near": 0.7 + 0.2 * _sigmoid(q), "noise": 0.85 + 0.14 * _sigmoid(q + 1), "patterns": 0.8}
        aurocs["patterns"] = 0.75 + 0.2 * _sigmoid(q + float(rng.normal(scale=0.5)))
        grid = np.linspace(0.0, 1.0, 101)
        roc: dict[str, dict[str, list[float]]] = {}
        for score, shift in (("energy", 0.0), ("msp", -0.03)):
            roc[score] = {}
            for name, auroc in aurocs.items():
                power = 1.0 / min(max(auroc + shift, 0.51), 0.999) - 1.0
                roc[score][name] = np.round(grid**power, 5).tolist()
        artifacts["roc"] = {"fpr": grid.round(2).tolist(), "tpr": roc}
        artifacts["ood_groups"] = sets
        near, far = aurocs["near"], (aurocs["noise"] + aurocs["patterns"]) / 2
        add("auroc.energy.mean", (near + far) / 2, se=0.01)
        add("auroc.energy.near", near, se=0.015)
        add("auroc.energy.far", far, se=0.01)
        add("auroc.msp.mean", (near + far) / 2 - 0.03, se=0.01)
        add("fpr95.energy.mean", min(1.0, 2.2 * (1 - (near + far) / 2)), se=0.02)
        add("aupr_in.energy.mean", (near + far) / 2 + 0.02, se=0.01)
        parameters.update(score_convention="higher = more in-distribution", scores=["energy", "msp"])
    elif task.adapter == "longtail":
        train_count = [108, 63, 37, 22, 13, 8]
        per_class = [
            float(np.clip(0.98 - 0.07 * c * _sigmoid(-q) * 2 + rng.normal(scale=0.02), 0, 1)) for c in range(6)
        ]
        groups = ["many" if t > 50 else "few" if t < 15 else "medium" for t in train_count]
        artifacts["per_class"] = {"accuracy": per_class, "train_count": train_count, "group": groups}
        add("balanced_accuracy", float(np.mean(per_class)))
        add("many_shot_accuracy", float(np.mean([a for a, g in zip(per_class, groups, strict=True) if g == "many"])))
        add(
            "medium_shot_accuracy", float(np.mean([a for a, g in zip(per_class, groups, strict=True) if g == "medium"]))
        )
        add("few_shot_accuracy", float(np.mean([a for a, g in zip(per_class, groups, strict=True) if g == "few"])))
        add("worst_class_accuracy", float(min(per_class)))
        parameters.update(many_shot_min=50, few_shot_max=15)
    elif task.adapter == "lm_loss":
        loss = 3.2 - 0.25 * q + 0.2 * model.damage
        add("loss_nats", loss, se=0.01, count=50_000)
        add("perplexity", math.exp(loss), se=0.01 * math.exp(loss), count=50_000)
    elif task.adapter == "flatness":
        trace = math.exp(2.0 + 0.5 * model.flatness - 0.2 * q)
        add("hessian_trace", trace, se=0.05 * trace, count=4096)
        add("hessian_trace_hutchinson", 1.1 * trace, se=0.15 * trace, count=8)
        add("noise_loss_increase.0.01", 0.002 * trace, se=0.0004 * trace, count=4)
        parameters.update(n_probes=8, noise_scales=[0.01], seed=0)
    elif task.adapter == "lm_eval":
        # Downstream accuracy: better with quality, worse with sharpness (same loss, better downstream).
        accuracy = 0.5 + 0.45 * _sigmoid(1.2 * q - 0.8 * model.flatness + (0.5 if task.name == "synth_mc" else 0))
        add("lm_eval.acc", accuracy, count=500)
        if task.name == "synth_mc":
            add("lm_eval.acc_norm", min(1.0, accuracy + 0.02), count=500)
        parameters.update(task=task.name)
    elif task.adapter == "compression":
        d = model.damage
        fdtm = max(32.0 * math.exp(-3.0 * d) + float(rng.normal(scale=0.3)), 0.5)
        add("fdtm_mean", fdtm, se=0.6, count=64)
        add("fdtm_median", max(round(fdtm), 1), se=1.0, count=64)
        add("sdtm", min(1.0, 0.6 * (1 - math.exp(-2.5 * d))), se=0.015, count=64)
        add("js_mean", min(math.log(2), 0.25 * (1 - math.exp(-2.0 * d))), se=0.004, count=64)
        add("kl_mean", 0.8 * (1 - math.exp(-2.0 * d)), se=0.01, count=64)
        add("top1_agreement", 1 - 0.6 * (1 - math.exp(-2.5 * d)), se=0.015, count=64)
        add("ppl_ratio", 1.0 + 0.08 * d**2, se=0.003, count=20_000)
        add("mc_flips", 0.3 * (1 - math.exp(-2.0 * d)), count=200)
        hist = np.bincount(np.clip(rng.exponential(fdtm, size=64), 0, 32).astype(np.int64), minlength=33)
        artifacts["fdt_histogram"] = hist.tolist()
        parameters.update(variant="teacher-forced", reference=f"zoo/{str(model.reference).split('/')[-1]}")
    elif task.adapter == "compression_components":
        components = [f"h.{layer}.{part}" for layer in range(2) for part in ("attn.c_attn", "attn.c_proj", "mlp.c_fc")]
        fdt = sorted((float(rng.uniform(4, 32)), c) for c in components)
        artifacts["ranking"] = [{"component": c, "fdtm_mean": f, "sdtm": 1 - f / 40} for f, c in fdt]
        add("fdtm_mean.most_sensitive", fdt[0][0], se=0.8, count=64)
        add("fdtm_mean.least_sensitive", fdt[-1][0], se=0.8, count=64)
        add("sdtm.most_sensitive", 1 - fdt[0][0] / 40, se=0.02, count=64)
        parameters.update(variant="teacher-forced", method="quantize", bits=4)
    elif task.adapter == "retrieval":
        ndcg = 0.3 + 0.5 * _sigmoid(q)
        add("ndcg_at_10", ndcg, count=500)
        add("map_at_100", ndcg - 0.05, count=500)
        add("mrr_at_10", ndcg + 0.05, count=500)
        add("recall_at_10", min(1.0, ndcg + 0.15), count=500)
        add("recall_at_100", min(1.0, ndcg + 0.3), count=500)
    elif task.adapter == "probe":
        add("probe_accuracy", 0.4 + 0.5 * _sigmoid(q), count=800)

    main = next(m for m in metrics if m["name"] == task.main_metric)
    if gen.bootstrap_values:
        artifacts["main_bootstrap"] = gen.main_bootstrap(task.name, seed, main, main["_se"], rng)
    for item in metrics:
        item.pop("_se")
    return {
        "run_id": "",
        "task": task.name,
        "task_version": 1,
        "spec_hash": _sha("spec", task.name),
        "adapter": task.adapter,
        "main_metric": task.main_metric,
        "metrics": metrics,
        "parameters": parameters,
        "dataset_fingerprints": {"test": _sha("data", task.name, sample_limit)},
        "artifacts": artifacts,
        "duration_s": float(rng.uniform(0.1, 5.0)),
    }


def _card(model: _Model, rng: np.random.Generator) -> dict[str, Any]:
    size_tag = "size-S" if model.n_parameters < 10**6 else "size-M" if model.n_parameters < 10**7 else "size-L"
    tags = ["synthetic", size_tag]
    card: dict[str, Any] = {
        "name": model.name,
        "org": ORG,
        "family": model.family,
        "kind": "synthetic",
        "n_parameters": model.n_parameters,
        "recipe": {"lr": float(10 ** rng.uniform(-4, -2)), "steps": int(rng.integers(1, 20)) * 500},
        "description": f"synthetic model #{model.index} (no checkpoint)",
    }
    if model.family in CLASSIFIER_FAMILIES:
        card["train_loss_nats"] = float(max(0.01, 0.5 - 0.15 * model.quality + rng.normal(scale=0.05)))
        card["trained_on"] = "synthetic-images"
        tags.append("classifier")
    elif model.family == LM_FAMILY:
        card["pretrain_loss_nats"] = float(3.15 - 0.25 * model.quality + rng.normal(scale=0.02))
        card["trained_on"] = "synthlang"
        tags.append("pretrain-sweep")
        if model.is_reference:
            tags.append("compression-reference")
    elif model.family == COMPRESSED_FAMILY:
        assert model.compression is not None
        card["trained_on"] = "synthlang"
        card["reference"] = model.reference
        card["compression"] = model.compression
        tags += ["compressed", str(model.compression["method"])]
    else:
        card["trained_on"] = "synthetic-text"
        tags.append("encoder")
    card["tags"] = tags
    return card


def synthetic_submissions(
    n_models: int, n_tasks: int, seed: int = 0, *, bootstrap_values: int = 0, task_names: Sequence[str] | None = None
) -> Iterator[Submission]:
    """Deterministic submissions of a synthetic population (see the module docstring)."""
    rng = np.random.default_rng(seed)
    gen = _Generator(seed, bootstrap_values)
    tasks = synthetic_tasks(n_tasks, task_names)
    for model in _models(n_models, rng):
        card = _card(model, rng)
        model_seed = 1 if model.index % 13 == 12 else 0
        plans: list[tuple[str, int | None, str]] = []
        if model.index % 11 == 5:
            plans.append(("old", None, "2025-12-01T00:00:00+00:00"))
        plans.append(("main", None, f"2026-01-{1 + model.index % 28:02d}T00:00:00+00:00"))
        if model.index % 17 == 3:
            plans.append(("limited", 100, "2026-02-01T00:00:00+00:00"))
        for label, sample_limit, created in plans:
            sid = _sha("submission", seed, model.model_id, label)[:20]
            runs = [
                _run(gen, task, model, model_seed, rng, sample_limit)
                for task in tasks
                if task.applies(model) and (label != "limited" or task is tasks[0])
            ]
            if not runs:
                continue
            for run in runs:
                run["run_id"] = f"{sid}-{run['task']}"
            raw = {
                "schema_version": SCHEMA_VERSION,
                "submission_id": sid,
                "model": card,
                "checkpoint_hash": _sha("checkpoint", model.model_id),
                "seed": model_seed,
                "provenance": {
                    "source": "imported",
                    "harness_version": "synthetic",
                    "python": "3.11",
                    "platform": "synthetic",
                    "created_at": created,
                    "duration_s": float(sum(r["duration_s"] for r in runs)),
                    "command": f"harness.synthetic seed={seed}",
                },
                "results": runs,
            }
            if sample_limit is not None:
                raw["sample_limit"] = sample_limit
            yield Submission.model_validate(raw)


def synthetic_store(
    path: str | Path,
    n_models: int = 200,
    n_tasks: int = 11,
    seed: int = 0,
    *,
    bootstrap_values: int = 0,
    bulk: bool | None = None,
    task_names: Sequence[str] | None = None,
    replace: bool = True,
    tiers: Callable[[Submission, RunResult], Tier] | None = None,
) -> Path:
    """Write a synthetic results store at `path` (replaced if it exists); returns the path.

    `bulk` None: the bulk insert above BIG_STORE_RUNS runs, else `Store.ingest` one by one.
    `task_names`: the tasks by name (see `synthetic_tasks`); `replace` False adds to an existing store.
    `tiers`: each run's trust tier (harness/trust.py), default "re-scored" for every run.
    """
    from harness.store import open_store

    path = Path(path)
    if replace:
        path.unlink(missing_ok=True)
        Path(str(path) + ".wal").unlink(missing_ok=True)
    submissions = list(
        synthetic_submissions(n_models, n_tasks, seed, bootstrap_values=bootstrap_values, task_names=task_names)
    )
    use_bulk = bulk if bulk is not None else sum(len(s.results) for s in submissions) > BIG_STORE_RUNS
    tier_of = tiers or _re_scored
    with open_store(path) as store:
        if use_bulk:
            store.ingest_bulk([(s, None) for s in submissions], tiers=tier_of)
        else:
            store.ingest([(s, None) for s in submissions], tiers=tier_of)
    return path


def _re_scored(sub: Submission, run: RunResult) -> Tier:
    return "re-scored"
