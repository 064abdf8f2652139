"""Import results that other tools wrote, as submissions whose provenance is "imported".

- lm-evaluation-harness: its results JSON (`lm_eval ... --output_path`): one run per task, named
  `lm_eval.<task>`, metrics `lm_eval.<metric>` (filters other than "none" become
  `lm_eval.<metric>.<filter>`), with lm-eval's stderr as the CI (value +- 1.96 stderr) and its
  declared directions. A run made with lm-eval's --limit keeps that limit and is never ranked.
- MTEB: a results folder (one `<TaskName>.json` per task, as mteb writes them, optionally with
  `model_meta.json`), read with mteb's own TaskResult: one run per task, named `mteb.<TaskName>`,
  on the "test" split (else the first split), scores averaged over the task's subsets; retrieval
  scores keep Harness's names (ndcg_at_10, map_at_100, mrr_at_10, recall_at_1/10/100), and every
  task reports `mteb.main_score`.
Imported runs line up with native ones: an lm-eval task gets the name and main metric a native
`lm_eval:<task>` run has (the first metric its config declares), so both land on one board; the
model keeps its real name (from the file, or --name; a file that does not name the model is
refused); every metric carries the sample count (lm-eval's effective documents; MTEB's number of
queries for retrieval tasks, else of samples, from the task's metadata).
Imported submissions have no per-sample outputs, so they cannot be re-scored; the checkpoint hash
is the sha256 of the model's identifier as the tool recorded it (the weights are not available).
"""

from __future__ import annotations

import hashlib
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness import __version__
from harness.errors import HarnessError
from harness.metrics import metric_info
from harness.schema import MetricValue, ModelCard, Provenance, RunResult, Submission, canonical_hash
from harness.tasks.lm_eval import metrics_from_config
from harness.untrusted import check_json_file, read_json

RETRIEVAL_NAMES = ("ndcg_at_10", "map_at_100", "mrr_at_10", "recall_at_1", "recall_at_10", "recall_at_100")


def _safe(name: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in "._-" else "-" for c in name).strip(".-_")
    return cleaned[:128] or "model"


def _stderr_metric(name: str, value: float, stderr: float | None, higher: bool, n: int) -> MetricValue:
    if stderr is None or not math.isfinite(stderr):
        return MetricValue(name=name, value=value, higher_is_better=higher, ci_method="none", n=n)
    return MetricValue(
        name=name, value=value, higher_is_better=higher, stderr=stderr, ci_low=value - 1.96 * stderr,
        ci_high=value + 1.96 * stderr, ci_method="stderr", n=n,
    )  # fmt: skip


def _submission(
    card: ModelCard,
    identifier: str,
    runs: list[RunResult],
    created: str,
    duration: float,
    command: str,
    limit: int | None,
) -> Submission:
    checkpoint = hashlib.sha256(f"imported:{identifier}".encode()).hexdigest()
    sid = canonical_hash({"imported": identifier, "runs": [r.model_dump(mode="json") for r in runs]})[:20]
    provenance = Provenance(
        source="imported", harness_version=__version__, python="", platform="", created_at=created, duration_s=duration,
        command=command,
    )  # fmt: skip
    return Submission(
        submission_id=sid,
        model=card,
        checkpoint_hash=checkpoint,
        seed=0,
        sample_limit=limit,
        provenance=provenance,
        results=[r.model_copy(update={"run_id": f"{sid}-{r.task}"}) for r in runs],
    )


def _model_identifier(recorded: str, name: str | None, where: Path, missing: str) -> str:
    """The model's identifier as the tool recorded it, else --name; neither is a HarnessError."""
    if not recorded and not name:
        raise HarnessError(missing, where=str(where), fix="pass --name with the model's name")
    return recorded or str(name)


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def from_lm_eval(file: Path, org: str = "imported", name: str | None = None) -> Submission:
    """A submission from an lm-evaluation-harness results JSON."""
    data = read_json(file)  # size and nesting capped before parsing
    try:
        results: dict[str, dict[str, Any]] = data["results"]
    except (KeyError, TypeError) as error:
        raise HarnessError(f"not an lm-evaluation-harness results file ({error})", where=str(file)) from None
    config = data.get("config", {}) or {}
    model_args = config.get("model_args", {})
    if isinstance(model_args, str):  # "pretrained=org/model,dtype=float32"
        model_args = dict(part.split("=", 1) for part in model_args.split(",") if "=" in part)
    identifier = str(
        data.get("model_name") or (model_args.get("pretrained") if isinstance(model_args, dict) else "") or ""
    )
    identifier = _model_identifier(
        identifier,
        name,
        file,
        "the results file does not name the model (no model_name, no pretrained= model argument)",
    )
    directions = data.get("higher_is_better", {})
    counts = data.get("n-samples", {})
    runs: list[RunResult] = []
    for task, values in sorted(results.items()):
        metrics = []
        for key, value in sorted(values.items()):
            metric, _, filter_name = key.partition(",")
            number = _float(value)
            if not filter_name or metric.endswith("_stderr") or number is None:
                continue
            full = f"lm_eval.{metric}" if filter_name == "none" else f"lm_eval.{metric}.{filter_name}"
            higher = directions.get(task, {}).get(metric, metric_info(full).higher_is_better)
            stderr = _float(values.get(f"{metric}_stderr,{filter_name}"))
            n = int(counts.get(task, {}).get("effective", values.get("sample_len", 0)) or 0)
            metrics.append(_stderr_metric(full, number, stderr, bool(higher), n))
        if not metrics:
            continue
        task_config = data.get("configs", {}).get(task, {"task": task})
        native_main = f"lm_eval.{metrics_from_config(task_config)[0]}"
        main_metric = native_main if any(m.name == native_main for m in metrics) else metrics[0].name
        version = _float(data.get("versions", {}).get(task)) or 1.0
        runs.append(
            RunResult(
                run_id="",
                task=_safe(f"lm_eval.{task}"),
                task_version=max(1, int(version)),
                spec_hash=canonical_hash(task_config),
                adapter="lm_eval",
                main_metric=main_metric,
                metrics=metrics,
                parameters={
                    "task": task,
                    "imported_from": "lm-evaluation-harness",
                    "lm_eval_version": str(data.get("lm_eval_version", "")),
                },
                dataset_fingerprints={},
                duration_s=0.0,
            )
        )
    if not runs:
        raise HarnessError("the file has no task with numeric metrics", where=str(file))
    date = _float(data.get("date"))
    created = (
        datetime.fromtimestamp(date, UTC).isoformat(timespec="seconds")
        if date
        else datetime.now(UTC).isoformat(timespec="seconds")
    )
    card = ModelCard(name=_safe(name or identifier.rstrip("/").split("/")[-1]), org=org, family="imported", kind="imported",
                     n_parameters=config.get("model_num_parameters") or None, tags=["imported", "lm-eval"])  # fmt: skip
    limit = _float(config.get("limit"))
    duration = _float(data.get("total_evaluation_time_seconds")) or float(
        data.get("total_evaluation_time_seconds") or 0
    )
    return _submission(
        card, identifier, runs, created, duration, f"lm_eval import of {file.name}", int(limit) if limit else None
    )


#: what mteb writes when it does not know the model ("no_model_name/available")
MTEB_PLACEHOLDERS = ("no_model_name", "available")


def _mteb_sample_count(task_name: str, split: str) -> int:
    """Independent units of an MTEB task split: queries for retrieval, else samples (0 when unknown)."""
    import mteb

    try:
        stats: dict[str, Any] = mteb.get_task(task_name).metadata.descriptive_stats or {}
    except Exception:  # an unknown or renamed task: mteb raises several types
        return 0
    split_stats: dict[str, Any] = stats.get(split) or {}
    count = _float(split_stats.get("num_queries")) or _float(split_stats.get("num_samples")) or 0.0
    return int(count)


def from_mteb(folder: Path, org: str = "imported", name: str | None = None) -> Submission:
    """A submission from an MTEB results folder (one JSON per task)."""
    from mteb.results.task_result import TaskResult

    if not folder.is_dir():
        raise HarnessError("not a folder of MTEB results", where=str(folder))
    meta: dict[str, Any] = {}
    if (folder / "model_meta.json").exists():
        meta = read_json(folder / "model_meta.json")
        if not isinstance(meta, dict):
            raise HarnessError("model_meta.json must hold a JSON object", where=str(folder / "model_meta.json"))
    identifier = str(meta.get("name") or "")
    if identifier.split("/")[0] in MTEB_PLACEHOLDERS or identifier in MTEB_PLACEHOLDERS:
        identifier = ""
    identifier = _model_identifier(
        identifier,
        name,
        folder,
        "the MTEB results do not name the model (no model_meta.json name, or mteb's placeholder)",
    )
    runs: list[RunResult] = []
    for file in sorted(folder.glob("*.json")):
        if file.name == "model_meta.json":
            continue
        check_json_file(file)  # mteb parses it recursively: size and nesting capped first
        try:
            result = TaskResult.from_disk(file)
        except Exception as error:  # mteb raises several error types on malformed files
            raise HarnessError(f"not an MTEB task result ({type(error).__name__}: {error})", where=str(file)) from None
        split = "test" if "test" in result.scores else next(iter(result.scores))
        subsets = result.scores[split]
        if not subsets:
            continue
        n = _mteb_sample_count(result.task_name, split)
        metrics = [
            MetricValue(
                name="mteb.main_score",
                value=sum(float(s["main_score"]) for s in subsets) / len(subsets),
                higher_is_better=True,
                n=n,
            )
        ]
        for metric in RETRIEVAL_NAMES:
            values = [_float(s.get(metric)) for s in subsets]
            if values and all(v is not None for v in values):
                metrics.append(MetricValue(name=metric, value=sum(values) / len(values), higher_is_better=True, n=n))  # type: ignore[arg-type]
        runs.append(
            RunResult(
                run_id="",
                task=_safe(f"mteb.{result.task_name}"),
                task_version=1,
                spec_hash=canonical_hash({"task": result.task_name, "dataset_revision": result.dataset_revision}),
                adapter="mteb",
                main_metric="mteb.main_score",
                metrics=metrics,
                parameters={
                    "split": split,
                    "subsets": len(subsets),
                    "imported_from": "mteb",
                    "mteb_version": str(result.mteb_version),
                },
                dataset_fingerprints={},
                duration_s=float(result.evaluation_time or 0.0),
            )
        )
    if not runs:
        raise HarnessError("no MTEB task results in the folder", where=str(folder))
    card = ModelCard(
        name=_safe(name or identifier.split("/")[-1]),
        org=org,
        family="imported",
        kind="imported",
        tags=["imported", "mteb"],
    )
    created = datetime.now(UTC).isoformat(timespec="seconds")
    return _submission(
        card, identifier, runs, created, sum(r.duration_s for r in runs), f"mteb import of {folder.name}", None
    )
