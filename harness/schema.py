"""Pydantic models at the edges: task specs, model cards, run results and submissions.

Every key of a submission file is documented here, in one place (docs/submission-format.md
renders the same information for contributors). Models are strict: unknown fields are errors,
floats must be finite, names must be safe to use as file names.

Versioning: `Submission.schema_version` is bumped on any incompatible change; readers upgrade
older versions on read (`harness.submissions.upgrade`). History:
- 1: the first format.
- 2: `limit` renamed `sample_limit` (it caps samples per split, and "limit" was ambiguous).
- 3: optional `provenance.environment` (the installed packages against the lock file) and `settings`
  (the inference settings that change outputs: dtype, device kind, maximum length).
- 4: metrics name the unit `n` counts (`unit`) and intervals suit their statistic (`ci_method`
  "wilson" for proportions, "bc-bootstrap" for bootstrapped statistics); the calibration tasks report the ece's bias and noise (`ece_sq_debiased`,
  `ece_noise_floor`, `ece_calibrated_p`). Older files lack the metrics added since: `harness validate`
  re-scores them from their per-sample outputs with the current code; every point value such a file
  holds must still agree, and the run is then taken with today's metrics, intervals, `n` and units
  (`RESCORED_BEFORE`).
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PrivateAttr, model_validator

SCHEMA_VERSION = 4
#: files of an older version carry numbers of older scoring code: they are replaced when re-scored
RESCORED_BEFORE = 4

# Names end up in file names and URLs: letters, digits, '.', '_', '-'; no leading dot.
SAFE_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
SafeName = Annotated[str, Field(pattern=SAFE_NAME)]
Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
Scalar = str | int | float | bool | None


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError("must be a finite number (NaN and inf are not allowed)")
    return value


Finite = Annotated[float, AfterValidator(_finite)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def canonical_hash(payload: Any) -> str:
    """sha256 of the canonical JSON form of `payload` (sorted keys, no whitespace)."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


# --------------------------------------------------------------------------- task specs


class DatasetSource(_Strict):
    """Where a task's data comes from.

    - kind "builtin": an offline suite that ships with Harness (`name` is the registered suite).
    - kind "local": a folder or file at `path` (ImageFolder, <split>.npz or <split>.parquet).
    - kind "hf": a Hugging Face dataset: `name` is the hub id (read from the local cache when
      HF_DATASETS_OFFLINE=1) at `revision`, or `path` a folder written by `Dataset.save_to_disk`.
    - kind "beir": a BEIR retrieval folder at `path` (corpus.jsonl, queries.jsonl, qrels/<split>.tsv);
      params `split` (default "test") and `empty_documents` ("error" or "keep").
    - kind "mteb": an MTEB retrieval task called `name`, read through mteb's task objects from the
      local cache; params `split` and `subset`.
    `params` go to the source (builtin factory arguments; column names and split names for hf).
    """

    kind: Literal["builtin", "local", "hf", "beir", "mteb"] = "builtin"
    name: Annotated[str, Field(min_length=1, max_length=200)]
    path: str | None = None
    revision: str = "1"
    params: dict[str, Scalar | list[Scalar] | dict[str, str]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _path_for_local(self) -> DatasetSource:
        if self.kind in ("local", "beir") and not self.path:
            raise ValueError(f"a {self.kind} dataset source needs a 'path'")
        return self


class TaskSpec(_Strict):
    """One task, declared in tasks/<name>.yaml."""

    name: SafeName
    version: Annotated[int, Field(ge=1)]
    adapter: str
    description: str
    dataset: DatasetSource
    parameters: dict[str, Scalar | list[Scalar]] = Field(default_factory=dict)
    main_metric: str
    #: only models whose card says they were trained on one of these datasets (empty: any model)
    models_trained_on: list[str] = Field(default_factory=list)
    #: `harness demo` runs the task only on models with one of these tags (empty: every model that
    #: fits); asked for by name with `--tasks`, it runs on any model that fits otherwise
    demo_models_tagged: list[str] = Field(default_factory=list)
    license: str | None = None

    def spec_hash(self) -> str:
        """sha256 of what determines a task's results: fields at their defaults, the description,
        the license and `demo_models_tagged` are left out (so adding an optional field or rewording a
        description keeps earlier submissions valid), and so is a model-dependent dataset parameter
        (the `reference` of a compression task, filled in per model; the dataset fingerprints
        identify it)."""
        payload = self.model_dump(
            mode="json", exclude_defaults=True, exclude={"description", "license", "demo_models_tagged"}
        )
        payload.get("dataset", {}).get("params", {}).pop("reference", None)
        return canonical_hash(payload)


# --------------------------------------------------------------------------- model cards


class ModelCard(_Strict):
    """What a checkpoint is: identity, family, size, how it was made.

    `train_loss_nats` is the final training loss reported by whoever trained the model;
    `pretrain_loss_nats` a self-reported pre-training loss for language models. Harness
    measures held-out loss itself (task lm_loss); these fields are what the card claims.
    """

    name: SafeName
    org: SafeName = "local"
    family: str = "unknown"
    kind: str = "unknown"
    n_parameters: Annotated[int, Field(ge=0)] | None = None
    recipe: dict[str, Scalar | list[Scalar]] = Field(default_factory=dict)
    train_loss_nats: Finite | None = None
    pretrain_loss_nats: Finite | None = None
    #: the dataset the model was trained on (e.g. "digits"); tasks may require a match
    trained_on: str | None = None
    #: checkpoint series: the training run this checkpoint belongs to (checkpoints of one run share it),
    #: its optimizer step and the training tokens (or samples) seen so far
    training_run: SafeName | None = None
    step: Annotated[int, Field(ge=0)] | None = None
    tokens_seen: Annotated[int, Field(ge=0)] | None = None
    reference: str | None = None
    compression: dict[str, Scalar] | None = None
    tags: list[str] = Field(default_factory=list)
    description: str = ""

    @property
    def model_id(self) -> str:
        return f"{self.org}/{self.name}"


# --------------------------------------------------------------------------- results


class MetricValue(_Strict):
    """One number with its direction, uncertainty and sample count.

    ci_method (docs/metrics.md, "Intervals"): "wilson": Wilson score interval of a proportion of n
    independent units; "bc-bootstrap": bias-corrected percentile interval over `n_resamples` seeded
    resamples of the units; "bootstrap": plain percentile interval (files of schema version 3 and
    older); "stderr": value +- 1.96 stderr over n independent estimates; "none": no interval (a fitted
    parameter or a diagnostic). `n` counts the independent units resampled and `unit` names them
    (samples, documents, queries, prompts, ...).
    """

    name: str
    value: Finite
    higher_is_better: bool
    ci_low: Finite | None = None
    ci_high: Finite | None = None
    stderr: Finite | None = None
    ci_method: Literal["wilson", "bc-bootstrap", "bootstrap", "stderr", "none"] = "none"
    n: Annotated[int, Field(ge=0, le=2**63 - 1)]
    #: what `n` counts (None in files of schema version 3 and older)
    unit: Annotated[str, Field(max_length=40)] | None = None
    #: the bootstrap distribution behind the CI (not serialised; the runner keeps the main metric's)
    _distribution: tuple[float, ...] | None = PrivateAttr(default=None)


class RunResult(_Strict):
    """The result of one task on one model: metrics with CIs plus what is needed to trust them."""

    run_id: str
    task: SafeName
    task_version: int
    spec_hash: Sha256
    adapter: str
    main_metric: str
    metrics: list[MetricValue]
    parameters: dict[str, Scalar | list[Scalar]] = Field(default_factory=dict)
    dataset_fingerprints: dict[str, Sha256]
    artifacts: dict[str, Any] = Field(default_factory=dict)
    duration_s: Finite

    def metric(self, name: str) -> MetricValue:
        for metric in self.metrics:
            if metric.name == name:
                return metric
        raise KeyError(f"run {self.run_id} has no metric {name!r}")


class LockedEnvironment(_Strict):
    """The installed packages compared with the lock file the environment is built from (`make lock`)."""

    lock_file: Annotated[str, Field(max_length=200)]
    lock_sha256: Sha256
    #: every locked package is installed at its locked version
    matches: bool
    #: package -> "installed X, locked Y" (or "not installed, locked Y"), at most 50 entries
    mismatches: Annotated[dict[str, Annotated[str, Field(max_length=200)]], Field(max_length=50)] = Field(
        default_factory=dict
    )


class Provenance(_Strict):
    """Where and how a result was produced."""

    source: Literal["harness", "imported"] = "harness"
    harness_version: str
    git_commit: str | None = None
    packages: dict[str, str] = Field(default_factory=dict)
    python: str
    platform: str
    hardware: dict[str, Scalar] = Field(default_factory=dict)
    created_at: str
    duration_s: Finite
    command: str = ""
    #: the environment against the lock file (None outside a checkout with a lock, e.g. a wheel install)
    environment: LockedEnvironment | None = None


class Submission(_Strict):
    """One evaluation of one checkpoint on one or more tasks: the file contributors add."""

    schema_version: Literal[4] = 4
    submission_id: SafeName
    model: ModelCard
    checkpoint_hash: Sha256
    seed: int
    #: `--limit N`: only the first N samples of each split were evaluated (marked, never ranked)
    sample_limit: Annotated[int, Field(ge=1)] | None = None
    #: inference settings that change outputs (dtype, device kind, e.g. max_length): part of the id
    settings: Annotated[dict[SafeName, SafeName], Field(max_length=16)] = Field(default_factory=dict)
    provenance: Provenance
    results: list[RunResult]
    samples_file: SafeName | None = None

    @property
    def ranked(self) -> bool:
        """Runs made with --limit are marked and never ranked."""
        return self.sample_limit is None
