"""Validation of submission files: every file is untrusted input.

`validate_files` checks, for each JSON file (and its parquet of per-sample outputs):
- the path: a plain file (no symlink) named `<submission_id>.json` inside `<org>__<model>/`, no
  traversal, below the size caps;
- the content: valid JSON, a known schema version (older ones are upgraded), no unknown fields,
  types, finite numbers, safe names, value ranges of known metrics, declared directions that match
  the registry, ci_low <= ci_high;
- consistency: run ids, one run per task, the main metric present, the samples file named right;
- tasks: the task exists and its spec hash and version match the current spec; the data it was
  evaluated on still has the recorded fingerprints (built-in suites only);
- `--limit`: runs made with --limit are rejected (they are never ranked);
- duplicates: the same submission or run id in two files;
- re-scoring: the metrics, parameters and artifacts are recomputed from the per-sample parquet with
  the task's own scoring code and must match within the tolerances of `harness.rescoring` (a forged
  number that disagrees with its samples is caught; the same computation on another machine passes).
Imported submissions (provenance.source "imported") carry no samples; they are checked for
everything else. Each problem names the file, the field and what to do.
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError

from harness.errors import HarnessError
from harness.schema import RESCORED_BEFORE, SCHEMA_VERSION, RunResult, Submission, TaskSpec, canonical_hash
from harness.submissions import upgrade
from harness.tasks.base import ExpectedSamples, Samples
from harness.trust import Tier
from harness.untrusted import json_depth_exceeds

MAX_JSON_BYTES = 5_000_000
MAX_PARQUET_BYTES = 50_000_000
#: nesting of a submission's JSON (harness writes 6 levels; artifacts add a few)
MAX_JSON_DEPTH = 32
INT64 = (-(2**63), 2**63 - 1)
#: the decoded size of a samples parquet (its footer says it before anything is read)
MAX_PARQUET_DECODED_BYTES = 400_000_000
#: rows allowed for a task whose sample count is not known here (data this harness cannot read)
MAX_UNBOUND_ROWS = 200_000

# Value ranges of metrics whose range is known (by base name).
UNIT_INTERVAL = {
    "accuracy", "ece", "ece_em", "mce", "classwise_ece", "aurc", "ece_ts", "auroc", "aupr_in", "aupr_out",
    "fpr95", "balanced_accuracy", "many_shot_accuracy", "medium_shot_accuracy", "few_shot_accuracy",
    "worst_class_accuracy", "acc_uniform", "sdtm", "ece_noise_floor", "ece_calibrated_p", "top1_agreement", "mc_flips", "probe_accuracy",
    "ndcg_at_10", "map_at_100", "mrr_at_10", "recall_at_1", "recall_at_10", "recall_at_100",
}  # fmt: skip
RANGES: dict[str, tuple[float, float]] = {
    **{name: (0.0, 1.0) for name in UNIT_INTERVAL},
    "brier": (0.0, 2.0),
    "ece_sq_debiased": (-1.0, 1.0),
    "js_mean": (0.0, math.log(2.0) + 1e-12),
    "nll": (0.0, math.inf),
    "nll_ts": (0.0, math.inf),
    "loss_nats": (0.0, math.inf),
    "kl_mean": (0.0, math.inf),
    "perplexity": (1.0, math.inf),
    "temperature": (0.0, math.inf),
}


@dataclass(frozen=True)
class Problem:
    file: str
    field: str
    message: str
    fix: str = ""

    def one_line(self) -> str:
        text = f"{self.file}: {self.field}: {self.message}" if self.field else f"{self.file}: {self.message}"
        return text + (f" -> {self.fix}" if self.fix else "")


def _range(name: str) -> tuple[float, float] | None:
    base = name.split(".", 1)[0]
    if base.startswith("acc_") and "_lt_" in base:
        return (0.0, 1.0)
    return RANGES.get(base)


class _Checker:
    def __init__(self, file: Path, root: Path | None) -> None:
        self.file = file
        self.root = root
        self.problems: list[Problem] = []
        #: the file's own schema version (before upgrading)
        self.version = SCHEMA_VERSION
        #: runs whose numbers re-scoring replaced (files older than RESCORED_BEFORE)
        self.replaced: dict[str, RunResult] = {}

    def add(self, field: str, message: str, fix: str = "") -> None:
        self.problems.append(Problem(str(self.file), field, message, fix))


def _safe_path(check: _Checker) -> bool:
    file = check.file
    if file.is_symlink():
        check.add("", "is a symbolic link", "commit the file itself")
        return False
    if check.root is not None:
        try:
            file.resolve().relative_to(check.root.resolve())
        except ValueError:
            check.add("", "lies outside the submissions folder", "keep submission files under submissions/")
            return False
    if file.suffix != ".json":
        check.add("", "is not a .json file")
        return False
    if not file.is_file():  # a FIFO or a device would block or never end when read
        check.add("", "is not a regular file (a named pipe, device or folder)", "commit the file itself")
        return False
    size = file.stat().st_size
    if size > MAX_JSON_BYTES:
        check.add(
            "",
            f"is {size:,} bytes, over the {MAX_JSON_BYTES:,} byte cap",
            "per-sample outputs belong in the parquet file",
        )
        return False
    return True


def _parse(check: _Checker) -> Submission | None:
    try:
        text = check.file.read_text(encoding="utf-8")
        if json_depth_exceeds(text, MAX_JSON_DEPTH):
            check.add(
                "", f"nests arrays or objects more than {MAX_JSON_DEPTH} levels deep", "submit what harness wrote"
            )
            return None
        raw = json.loads(text, object_pairs_hook=_unique_keys)
    except _RepeatedKey as error:
        check.add("", f"repeats the key {error.key!r} in one object", "write the file with `harness eval`")
        return None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        check.add("", f"is not valid JSON ({error})", "write the file with `harness eval` or `harness submit`")
        return None
    if not isinstance(raw, dict):
        check.add("", "must hold a JSON object")
        return None
    for where, value in _large_integers(raw):
        check.add(where, f"{value} does not fit a 64-bit integer", "integers must lie within +-9.2e18")
    if check.problems:
        return None
    version = raw.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= SCHEMA_VERSION:
        check.add(
            "schema_version",
            f"unsupported version {version!r}",
            f"this harness reads versions 1 to {SCHEMA_VERSION}; upgrade harness or fix the file",
        )
        return None
    check.version = version
    try:
        return Submission.model_validate(upgrade(raw))
    except ValidationError as error:
        for item in error.errors():
            field = ".".join(str(p) for p in item["loc"]) or "(top level)"
            check.add(field, item["msg"], "see docs/submission-format.md")
        return None


class _RepeatedKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object whose keys are unique (parsers disagree on which repeated key wins)."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _RepeatedKey(key)
        out[key] = value
    return out


def _large_integers(raw: Any) -> Iterator[tuple[str, int]]:
    """(path, value) of every integer outside int64 (the store's integer type) in parsed JSON."""
    stack: list[tuple[str, Any]] = [("", raw)]
    while stack:
        where, value = stack.pop()
        if isinstance(value, dict):
            stack += [(f"{where}.{key}" if where else str(key), item) for key, item in value.items()]
        elif isinstance(value, list):
            stack += [(f"{where}[{i}]", item) for i, item in enumerate(value)]
        elif isinstance(value, int) and not isinstance(value, bool) and not INT64[0] <= value <= INT64[1]:
            yield where, value


def _check_layout(check: _Checker, sub: Submission) -> None:
    folder = f"{sub.model.org}__{sub.model.name}"
    if check.file.parent.name != folder:
        check.add(
            "model",
            f"the file lies in {check.file.parent.name!r} but the model is {sub.model.model_id!r}",
            f"move it to submissions/{folder}/",
        )
    if check.file.stem != sub.submission_id:
        check.add(
            "submission_id",
            f"{sub.submission_id!r} does not match the file name {check.file.name!r}",
            "name the file <submission_id>.json",
        )
    if sub.sample_limit is not None:
        check.add(
            "sample_limit",
            f"made with --limit {sub.sample_limit}; such runs are never ranked and cannot be submitted",
            "re-run `harness eval` without --limit",
        )
    if sub.provenance.source == "harness":
        if sub.samples_file is None:
            check.add(
                "samples_file",
                "missing: evaluations by harness ship their per-sample outputs",
                "submit the .parquet beside the .json",
            )
        elif sub.samples_file != f"{sub.submission_id}.parquet":
            check.add("samples_file", f"{sub.samples_file!r} should be {sub.submission_id}.parquet")
    _check_settings(check, sub)
    if not sub.results:
        check.add("results", "the submission has no results", "submit the file `harness eval` wrote")
    _check_created_at(check, sub.provenance.created_at)
    if sub.provenance.source == "imported":
        for index, run in enumerate(sub.results):
            if not run.task.startswith(EXTERNAL_PREFIXES):
                check.add(
                    f"results[{index}].task",
                    f"imported results are accepted for lm-eval and MTEB tasks only, not for {run.task!r}",
                    "run `harness eval` on the checkpoint: built-in tasks are re-scored from per-sample outputs",
                )
            if run.artifacts:
                check.add(f"results[{index}].artifacts", "imported results carry no artifacts", "leave it empty")
    tasks = [run.task for run in sub.results]
    for task in {t for t in tasks if tasks.count(t) > 1}:
        check.add("results", f"task {task!r} appears more than once", "one run per task in a submission")
    for index, run in enumerate(sub.results):
        _check_run(check, f"results[{index}]", sub, run)


#: what re-scoring an older file (schema < RESCORED_BEFORE) replaces instead of comparing
UPGRADED_FIELDS = ("missing from the submission", "ci_low ", "ci_high ", "stderr ", "n ", "unit ", "ci_method ")
#: tasks of other tools, the only ones imported (self-reported) results may name
EXTERNAL_PREFIXES = ("lm_eval.", "mteb.")
#: clocks differ; a timestamp later than this past the validator's clock is in the future
CLOCK_SKEW = timedelta(minutes=10)


def _check_created_at(check: _Checker, text: str) -> None:
    """An ISO 8601 timestamp with a time zone, not in the future (it is shown, never used for order)."""
    try:
        created = datetime.fromisoformat(text)
    except ValueError:
        check.add("provenance.created_at", f"{text[:40]!r} is not an ISO 8601 timestamp", "keep what harness wrote")
        return
    if created.tzinfo is None:
        check.add("provenance.created_at", f"{text[:40]!r} has no time zone", "keep what harness wrote")
    elif created > datetime.now(UTC) + CLOCK_SKEW:
        check.add("provenance.created_at", f"{text[:40]} is in the future", "keep what harness wrote")


#: the values an evaluation's settings can take (anything else would open a board row of its own)
SETTING_VALUES: dict[str, tuple[str, ...]] = {"device": ("cpu", "cuda")}


def _check_settings(check: _Checker, sub: Submission) -> None:
    from harness.models import DTYPES

    allowed = {**SETTING_VALUES, "dtype": DTYPES}
    for key, value in sub.settings.items():
        if key in allowed and value not in allowed[key]:
            check.add(f"settings.{key}", f"unknown value {value!r}", "use one of " + ", ".join(allowed[key]))
        elif key in ("max_length", "max_seq_length") and not value.isdigit():
            check.add(f"settings.{key}", f"{value!r} is not a number of tokens")


def _check_run(check: _Checker, where: str, sub: Submission, run: RunResult) -> None:
    from harness.metrics import metric_info
    from harness.registry import METRICS

    if run.run_id != f"{sub.submission_id}-{run.task}":
        check.add(f"{where}.run_id", f"{run.run_id!r} should be {sub.submission_id}-{run.task}")
    names = [m.name for m in run.metrics]
    if len(set(names)) != len(names):
        check.add(f"{where}.metrics", "a metric name appears more than once")
    if run.main_metric not in names:
        check.add(f"{where}.main_metric", f"{run.main_metric!r} is not among the run's metrics")
    for m_index, metric in enumerate(run.metrics):
        field = f"{where}.metrics[{m_index}] ({metric.name})"
        base = metric.name.split(".", 1)[0]
        if base not in METRICS:
            check.add(field, f"unknown metric {base!r}", "use metric names from `harness tasks`")
            continue
        if base != "lm_eval" and metric_info(metric.name).higher_is_better != metric.higher_is_better:
            check.add(field, "higher_is_better contradicts the metric's registered direction")
        bounds = _range(metric.name)
        if bounds is not None and not bounds[0] <= metric.value <= bounds[1]:
            check.add(field, f"value {metric.value} is outside [{bounds[0]}, {bounds[1]}]")
        if metric.ci_low is not None and metric.ci_high is not None and metric.ci_low > metric.ci_high:
            check.add(field, f"ci_low {metric.ci_low} > ci_high {metric.ci_high}")


def current_spec(run: RunResult) -> TaskSpec | None:
    from harness.tasks import load_specs

    specs = load_specs()
    if run.task in specs:
        return specs.get(run.task)
    if run.task.startswith("lm_eval."):
        from harness.tasks.lm_eval import dynamic_spec

        return dynamic_spec("lm_eval:" + run.task.removeprefix("lm_eval."))
    return None


def _check_tasks(check: _Checker, sub: Submission) -> dict[str, TaskSpec]:
    from harness.tasks import adapter_for

    specs: dict[str, TaskSpec] = {}
    imported = sub.provenance.source == "imported"
    for index, run in enumerate(sub.results):
        where = f"results[{index}]"
        if imported and run.task.startswith(("lm_eval.", "mteb.")):
            continue  # imported runs of external tasks: no Harness spec to compare with
        try:
            spec = current_spec(run)
        except HarnessError as error:
            check.add(f"{where}.task", error.what, error.fix or "")
            continue
        if spec is None:
            check.add(f"{where}.task", f"unknown task {run.task!r}", "see `harness tasks`")
            continue
        if spec.spec_hash() != run.spec_hash or spec.version != run.task_version:
            check.add(
                f"{where}.spec_hash",
                f"the run used another version of task {run.task!r} (version {run.task_version}, hash {run.spec_hash[:12]})",
                f"re-run with the current spec (version {spec.version}, hash {spec.spec_hash()[:12]})",
            )
            continue
        if run.main_metric != spec.main_metric:
            check.add(
                f"{where}.main_metric",
                f"{run.main_metric!r}, but task {run.task!r} ranks by {spec.main_metric!r}",
                "keep the main metric `harness eval` wrote",
            )
        specs[run.task] = spec
        requests = adapter_for(spec).requests(spec)
        read = {request.split for request in requests}
        required = {request.split for request in requests if not request.optional}  # optional: calib, train
        for split in sorted(required - set(run.dataset_fingerprints)):
            check.add(f"{where}.dataset_fingerprints", f"no fingerprint for split {split!r}", "keep what harness wrote")
        for split in sorted(set(run.dataset_fingerprints) - read):
            check.add(f"{where}.dataset_fingerprints", f"task {run.task!r} reads no split {split!r}")
        # Built-in suites are regenerated here and compared; a compression reference depends on the model,
        # and lm-eval's own datasets are not shipped with Harness (reading them would need the data).
        if spec.dataset.kind == "builtin" and spec.dataset.name not in ("synthlang-reference", "lm-eval"):
            _check_fingerprints(check, where, spec, run)
    return specs


def _check_fingerprints(check: _Checker, where: str, spec: TaskSpec, run: RunResult) -> None:
    from harness.data import load_suite

    try:
        suite = load_suite(spec.dataset)
        current = {name: suite.split(name).fingerprint for name in run.dataset_fingerprints}
    except HarnessError as error:
        check.add(f"{where}.dataset_fingerprints", error.what, error.fix or "")
        return
    for name, fingerprint in run.dataset_fingerprints.items():
        if current[name] != fingerprint:
            check.add(
                f"{where}.dataset_fingerprints.{name}",
                "the data differs from the data this harness evaluates on",
                "re-run the evaluation with this version of harness",
            )


def read_samples(file: Path) -> dict[str, dict[str, Samples]]:
    """A submission's parquet as Samples blocks: task -> split -> Samples (in file order)."""
    import pyarrow.parquet as pq

    table = pq.read_table(file)
    expected = {"task", "split", "sample_id", "label", "values"}
    if set(table.column_names) != expected:
        raise HarnessError(f"columns must be {sorted(expected)}, got {table.column_names}", where=str(file))
    metadata = table.schema.metadata or {}
    try:
        fields: dict[str, list[str]] = json.loads(metadata.get(b"harness.fields", b"{}"))
    except json.JSONDecodeError:
        raise HarnessError("metadata 'harness.fields' is not JSON", where=str(file)) from None
    columns = table.to_pydict()
    rows: dict[tuple[str, str], list[int]] = defaultdict(list)
    for index, (task, split) in enumerate(zip(columns["task"], columns["split"], strict=True)):
        rows[(str(task), str(split))].append(index)
    out: dict[str, dict[str, Samples]] = defaultdict(dict)
    for (task, split), indices in rows.items():
        values = [columns["values"][i] for i in indices]
        width = {len(v) for v in values if v is not None}
        if len(width) != 1 or any(v is None for v in values):
            raise HarnessError(f"values of {task}/{split} have different lengths", where=str(file))
        array = np.asarray(values, dtype=np.float64)
        if not np.isfinite(array).all():
            raise HarnessError(f"values of {task}/{split} contain NaN or inf", where=str(file))
        names = fields.get(f"{task}/{split}")
        if names is None or len(names) != array.shape[1]:
            raise HarnessError(f"metadata 'harness.fields' does not describe {task}/{split}", where=str(file))
        labels = [columns["label"][i] for i in indices]
        out[task][split] = Samples(
            split=split,
            ids=[str(columns["sample_id"][i]) for i in indices],
            labels=np.asarray([-1 if label is None else label for label in labels], dtype=np.int64),
            values=array,
            fields=list(names),
        )
    return dict(out)


def expected_for(spec: TaskSpec) -> dict[str, ExpectedSamples] | None:
    """What the task's samples must be (`expected_samples` of its adapter), or None when the adapter
    declares none or the data cannot be read here."""
    from harness.tasks import adapter_for

    method = getattr(adapter_for(spec), "expected_samples", None)
    if method is None or spec.dataset.kind != "builtin":
        return None
    key = canonical_hash(spec.model_dump(mode="json"))
    if key not in _EXPECTED:  # the same task in many files: its data is read once per process
        _EXPECTED[key] = method(spec)
    return _EXPECTED[key]


_EXPECTED: dict[str, dict[str, ExpectedSamples] | None] = {}


def bindable(spec: TaskSpec) -> bool:
    """Whether validation can bind a task's samples to its data here: the adapter declares what its
    samples must be (`expected_samples`) and the data is a built-in suite (generated offline)."""
    try:
        return expected_for(spec) is not None  # cached per spec: ingest asks once per run
    except HarnessError:  # the data cannot be read here
        return False


def claimed_tier(sub: Submission, run: RunResult, spec: TaskSpec | None) -> Tier:
    """The tier a run can hold before any verification: "re-scored" for harness runs whose samples
    bind to the task's data, "self-reported" otherwise."""
    if sub.provenance.source != "harness" or spec is None:
        return "self-reported"
    return "re-scored" if bindable(spec) else "self-reported"


def _parquet_rows(check: _Checker, file: Path, cap: int) -> bool:
    """The parquet's own row count and size, from its footer, before any row is read."""
    import pyarrow.parquet as pq

    try:
        meta = pq.ParquetFile(file).metadata
    except Exception as error:  # untrusted bytes: any reader error is a one-line problem
        check.add(
            "samples_file", f"cannot read {file.name}: {type(error).__name__}", "re-export it with `harness eval`"
        )
        return False
    if meta.num_rows > cap:
        check.add(
            "samples_file",
            f"{file.name} has {meta.num_rows:,} rows; the submission's tasks have at most {cap:,} samples",
            "submit the parquet `harness eval` wrote (one row per sample)",
        )
        return False
    # Decoded size: each column chunk's pages before compression, plus 8 bytes per value (run-length
    # encoded zeros take no room in pages and billions of bytes once read).
    size = 0
    for group in range(meta.num_row_groups):
        row_group = meta.row_group(group)
        for column in range(row_group.num_columns):
            chunk = row_group.column(column)
            size += chunk.total_uncompressed_size + 8 * chunk.num_values
    if size > MAX_PARQUET_DECODED_BYTES:
        check.add(
            "samples_file",
            f"{file.name} decodes to {size:,} bytes, over the {MAX_PARQUET_DECODED_BYTES:,} byte cap",
            "submit the parquet `harness eval` wrote",
        )
        return False
    return True


def _rescore(check: _Checker, sub: Submission, specs: dict[str, TaskSpec], tiers: dict[str, Tier]) -> None:
    from pydantic_core import to_jsonable_python

    from harness.rescoring import compare_run
    from harness.tasks import adapter_for
    from harness.tasks.base import run_artifacts, run_parameters
    from harness.tasks.compression import with_reference

    if sub.provenance.source != "harness" or sub.samples_file is None:
        return
    file = check.file.parent / sub.samples_file
    if file.is_symlink():
        check.add("samples_file", f"{sub.samples_file} is a symbolic link", "commit the parquet file itself")
        return
    if file.exists() and not file.is_file():
        check.add("samples_file", f"{sub.samples_file} is not a regular file", "commit the parquet file itself")
        return
    if not file.is_file():
        check.add("samples_file", f"{sub.samples_file} is missing", "submit the parquet written by `harness eval`")
        return
    if file.stat().st_size > MAX_PARQUET_BYTES:
        check.add("samples_file", f"{file.name} is over the {MAX_PARQUET_BYTES:,} byte cap")
        return
    expected: dict[str, dict[str, ExpectedSamples] | None] = {}
    for index, run in enumerate(sub.results):
        if run.task in specs:
            try:
                expected[run.task] = expected_for(specs[run.task])
            except HarnessError as error:
                check.add(f"results[{index}].dataset", error.what, error.fix or "")
                return
    cap = sum(
        sum(len(e.ids) if e.ids is not None else MAX_UNBOUND_ROWS for e in found.values())
        if found is not None
        else MAX_UNBOUND_ROWS
        for found in expected.values()
    )
    if not _parquet_rows(check, file, cap):
        return
    try:
        samples = read_samples(file)
    except HarnessError as error:
        check.add("samples_file", error.what, "re-export it with `harness eval`")
        return
    except Exception as error:  # a parquet reader error on untrusted bytes
        check.add(
            "samples_file", f"cannot read {file.name}: {type(error).__name__}", "re-export it with `harness eval`"
        )
        return
    for index, run in enumerate(sub.results):
        spec = specs.get(run.task)
        if spec is None:
            continue
        if run.task not in samples:
            check.add(f"results[{index}]", f"no per-sample outputs for task {run.task!r} in {file.name}")
            continue
        blocks = samples[run.task]
        want = expected.get(run.task)
        if want is not None:
            # an optional split the run says it read (its fingerprint) must be in its samples too
            want = {k: replace(v, optional=v.optional and k not in run.dataset_fingerprints) for k, v in want.items()}
            blocks, unbound = bind_samples(want, blocks)
            for split, message in unbound:
                check.add(
                    f"results[{index}] ({run.task}/{split})",
                    message,
                    "submit the per-sample outputs `harness eval` wrote for the task's own data",
                )
            if unbound:
                continue
        reference = run.parameters.get("reference")
        if spec.adapter == "compression" and isinstance(reference, str):
            # The reference is a model-dependent dataset parameter (not in the spec hash): the run names it.
            spec = with_reference(spec, reference)
        try:
            outcome = adapter_for(spec).score(spec, blocks, sub.seed)
        except (HarnessError, ValueError, KeyError, IndexError) as error:
            check.add(f"results[{index}]", f"per-sample outputs cannot be scored ({type(error).__name__}: {error})")
            continue
        differences = list(compare_run(run, spec, outcome, sub.seed))
        if check.version < RESCORED_BEFORE:
            # An older file: its point values must still agree; metrics, intervals, n and units are today's.
            differences = [(f, d) for f, d in differences if not d.startswith(UPGRADED_FIELDS)]
        if check.version < RESCORED_BEFORE and not differences:
            check.replaced[run.run_id] = run.model_copy(
                update={
                    "metrics": [type(m).model_validate(m.model_dump()) for m in outcome.metrics],  # as read from a file
                    "parameters": to_jsonable_python(run_parameters(spec, outcome)),
                    "artifacts": to_jsonable_python(run_artifacts(outcome, spec.main_metric, sub.seed)),
                }
            )
            tiers[run.run_id] = "re-scored" if want is not None else "self-reported"
            continue
        for field, difference in differences:
            check.add(
                f"results[{index}].{field}",
                f"{difference} from the per-sample outputs",
                "report the numbers `harness eval` computed; do not edit them",
            )
        if not differences:
            tiers[run.run_id] = "re-scored" if want is not None else "self-reported"


# --------------------------------------------------------------------------- samples bound to the task


def bind_samples(
    expected: dict[str, ExpectedSamples], got: dict[str, Samples]
) -> tuple[dict[str, Samples], list[tuple[str, str]]]:
    """Check submitted samples against what the task's data says they must be, and return them bound to
    it: in the dataset's order, with the dataset's labels. Problems are (split, message) pairs."""
    problems: list[tuple[str, str]] = []
    required = {name for name, want in expected.items() if not want.optional}  # a run may leave out the others
    missing, extra = sorted(required - set(got)), sorted(set(got) - set(expected))
    if missing or extra:
        problems.append(("splits", f"splits {sorted(got)}; the task has {sorted(expected)}"))
    bound: dict[str, Samples] = {}
    for name in sorted(set(expected) & set(got)):
        block, want = got[name], expected[name]
        found = _bind_split(want, block)
        if isinstance(found, str):
            problems.append((name, found))
        else:
            bound[name] = found
    return bound, problems


def _columns(names: list[str]) -> str:
    return str(names) if len(names) <= 6 else f"[{names[0]!r} ... {names[-1]!r}] ({len(names)} columns)"


def _bind_split(want: ExpectedSamples, block: Samples) -> Samples | str:
    ids = block.ids
    if len(set(ids)) != len(ids):
        repeated = sorted(i for i, count in Counter(ids).items() if count > 1)
        return f"sample ids repeat ({len(ids) - len(set(ids))} repeats, e.g. {repeated[:3]})"
    values, labels = block.values, block.labels
    if want.ids is not None:
        have, known = set(ids), set(want.ids)
        if have != known:
            absent = [i for i in want.ids if i not in have]
            unknown = [i for i in ids if i not in known]
            return (
                f"sample ids differ from the dataset's: {len(absent)} missing (e.g. {absent[:3]}), "
                f"{len(unknown)} not in the dataset (e.g. {unknown[:3]})"
            )
        position = {sample: i for i, sample in enumerate(ids)}
        order = np.asarray([position[sample] for sample in want.ids], dtype=np.int64)
        values, labels, ids = values[order], labels[order], list(want.ids)
    allowed = want.allowed_fields()
    if allowed and block.fields not in allowed:
        shown = " or ".join(_columns(a) for a in allowed)
        return f"value columns {_columns(block.fields)} are not the task's ({shown})"
    if not allowed and want.field_prefix:
        width = len(block.fields)
        if block.fields != [f"{want.field_prefix}{i}" for i in range(width)] or width < want.min_width:
            return f"value columns must be {want.field_prefix}0 ... {want.field_prefix}{want.min_width - 1} or more"
    if want.labels is not None:
        differ = np.flatnonzero(labels != want.labels)
        if differ.size:
            first = int(differ[0])
            return (
                f"labels of {differ.size} samples differ from the dataset's (e.g. {ids[first]}: "
                f"{int(labels[first])} instead of {int(want.labels[first])})"
            )
        labels = want.labels
    for name in want.whole:
        column = values[:, block.fields.index(name)]
        if not np.array_equal(column, np.round(column)):
            return f"column {name!r} must hold whole numbers"
    for name, fixed in want.fixed.items():
        if not np.array_equal(values[:, block.fields.index(name)], fixed):
            return f"column {name!r} differs from the values the task's parameters fix"
    return Samples(block.split, ids, np.asarray(labels, dtype=np.int64), values, list(block.fields))


def validate_file(
    file: Path, root: Path | None = None, *, rescore: bool = True, tiers: dict[str, Tier] | None = None
) -> tuple[Submission | None, list[Problem]]:
    check = _Checker(file, root)
    if not _safe_path(check):
        return None, check.problems
    sub = _parse(check)
    if sub is None:
        return None, check.problems
    _check_layout(check, sub)
    specs = _check_tasks(check, sub)
    found: dict[str, Tier] = {run.run_id: "self-reported" for run in sub.results}
    if rescore:
        _rescore(check, sub, specs, found)
        if check.replaced:
            results = [check.replaced.get(run.run_id, run) for run in sub.results]
            sub = sub.model_copy(update={"results": results})
    if tiers is not None:
        tiers.update(found)
    return sub, check.problems


def _check_folder(file: Path, sub: Submission, folders: dict[str, tuple[str, str]]) -> list[Problem]:
    """One model per folder: one checkpoint (dtype variants share it), and no two folders whose names
    differ only in case (they are one folder on some file systems and would merge two models)."""
    folder = file.parent.name
    key = folder.casefold()
    if key not in folders:
        folders[key] = (folder, sub.checkpoint_hash)
        return []
    seen_folder, checkpoint = folders[key]
    if seen_folder != folder:
        return [Problem(str(file), "model", f"folder {folder!r} differs from {seen_folder!r} only in case",
                        "use the existing folder's exact name, or another model name")]  # fmt: skip
    if checkpoint != sub.checkpoint_hash:
        return [
            Problem(
                str(file),
                "checkpoint_hash",
                f"another checkpoint ({checkpoint[:12]}) is already submitted as {sub.model.model_id}",
                "a different checkpoint is a different model: give it its own name",
            )
        ]
    return []


def submission_files(paths: Sequence[Path]) -> Iterator[tuple[Path, Path | None]]:
    """(file, root) for every submission JSON under the given files and folders."""
    for path in paths:
        if not path.exists():
            raise HarnessError("path does not exist", where=str(path))
        if path.is_dir():
            for file in sorted(path.rglob("*.json")):
                yield file, path
        else:
            yield path, None


#: Fewest files re-scored in worker processes: below it, starting the workers (each imports the task
#: adapters and regenerates the built-in data, a few seconds) costs more than it saves.
MIN_FILES_FOR_WORKERS = 8


def default_workers() -> int:
    """One worker process per core this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _start_worker(included: list[Path]) -> None:
    """A fresh worker process sees the task specs the parent included (`--include-path`)."""
    from harness.tasks import include_tasks

    include_tasks(included, replace=True)


def _validate_one(
    file: Path, root: Path | None, rescore: bool
) -> tuple[Submission | None, list[Problem], dict[str, Tier]]:
    found: dict[str, Tier] = {}
    sub, problems = validate_file(file, root, rescore=rescore, tiers=found)
    return sub, problems, found


def _each_file(
    files: list[tuple[Path, Path | None]], rescore: bool, workers: int
) -> Iterator[tuple[Submission | None, list[Problem], dict[str, Tier]]]:
    """`validate_file` of every file, in the given order; re-scoring spreads over `workers` processes.

    Each file is checked on its own (nothing crosses files here), so the workers share nothing: each has
    its own cache of the tasks' data. Workers are spawned, not forked, so no lock or thread of the
    parent is copied half-way."""
    if workers <= 1 or not rescore or len(files) < MIN_FILES_FOR_WORKERS:
        for file, root in files:
            yield _validate_one(file, root, rescore)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    from harness.tasks import included_tasks

    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        min(workers, len(files)), mp_context=context, initializer=_start_worker, initargs=(included_tasks(),)
    ) as pool:
        futures = [pool.submit(_validate_one, file, root, rescore) for file, root in files]
        try:
            for (file, _root), future in zip(files, futures, strict=True):
                try:
                    yield future.result()
                except BrokenProcessPool:
                    raise HarnessError(
                        "a worker process that re-scores submissions died (out of memory?)",
                        where=str(file),
                        fix="run again with --jobs 1 (one process, less memory)",
                    ) from None
        finally:
            for future in futures:
                future.cancel()


def validate_files(
    paths: Sequence[Path],
    *,
    rescore: bool = True,
    tiers: dict[str, Tier] | None = None,
    workers: int | None = None,
    on_file: Callable[[Path], None] | None = None,
) -> tuple[list[tuple[Submission, str]], list[Problem]]:
    """Valid submissions (with their file) and every problem found, duplicates across files included.

    `tiers`, when given, receives each run id's tier (harness/trust.py): "re-scored" where the samples
    were bound to the task's data and every number recomputed from them, else "self-reported".
    `workers` processes re-score the files (default: one per core; 1 checks them in this process);
    `on_file` is called after each file (a progress bar). The result does not depend on `workers`."""
    valid: list[tuple[Submission, str]] = []
    problems: list[Problem] = []
    seen_submissions: dict[str, str] = {}
    seen_runs: dict[str, str] = {}
    folders: dict[str, tuple[str, str]] = {}  # folder name, case-folded -> (folder as written, checkpoint)
    files = list(submission_files(paths))
    checked = _each_file(files, rescore, default_workers() if workers is None else workers)
    for (file, _root), (sub, found, file_tiers) in zip(files, checked, strict=True):
        if on_file is not None:
            on_file(file)
        if tiers is not None:
            tiers.update(file_tiers)
        if sub is not None:
            found += _check_folder(file, sub, folders)
        if sub is not None:
            if sub.submission_id in seen_submissions:
                found.append(
                    Problem(
                        str(file),
                        "submission_id",
                        f"duplicate of {seen_submissions[sub.submission_id]}",
                        "remove one of them",
                    )
                )
            for run in sub.results:
                if run.run_id in seen_runs and seen_runs[run.run_id] != str(file):
                    found.append(
                        Problem(
                            str(file),
                            "run_id",
                            f"run {run.run_id} also in {seen_runs[run.run_id]}",
                            "remove the duplicate",
                        )
                    )
                seen_runs.setdefault(run.run_id, str(file))
            seen_submissions.setdefault(sub.submission_id, str(file))
        if found:
            problems += found
        elif sub is not None:
            valid.append((sub, str(file)))
    return valid, problems
