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
- 5: the same fields; a proportion's "wilson" interval takes Brown, Cai & DasGupta's Poisson bound for
  one to three successes or failures (harness.intervals.wilson_interval), so files of version 4 are
  re-scored like older ones.
- 6: the same fields; an OOD AUROC's interval joins the bias-corrected one with a studentized bootstrap
  near the bound (`ci_method` "bc-studentized", harness.intervals.studentized_auroc_interval), and the
  debiased interval of ece and ece_ts is spread by how much more a debiased ece varies
  (harness.metrics.calibration.ece_spread), so files of version 5 are re-scored like older ones.
- 7: the same fields; ece_sq_debiased's interval is a bootstrap-t with a delta-method standard error
  (`ci_method` "studentized", harness.tasks.calibration.squared_ece_interval) instead of a bias-corrected
  percentile interval that over-covered, so files of version 6 are re-scored like older ones.
- 8: the same fields; an OOD AUROC's `bc-studentized` interval ends at the studentized bootstrap's bound
  towards 1 (or 0) instead of the union's, which was conservative on that side, and keeps the further
  of the two ends away from it (harness.intervals.studentized_auroc_interval), so files of version 7 are
  re-scored like older ones.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PrivateAttr, model_validator

SCHEMA_VERSION = 8
#: files of an older version carry numbers of older scoring code: they are replaced when re-scored
RESCORED_BEFORE = 8

# Names end up in file names and URLs: letters, digits, '.', '_', '-'; no leading dot.
SAFE_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
SafeName = Annotated[str, Field(pattern=SAFE_NAME)]
#: the file lists that ship with Harness (HubSplit.drop_files), each with its provenance in '#' lines
FILE_LISTS = Path(__file__).parent / "data" / "lists"
#: the original row orders that ship with Harness (HubSplit.row_order; harness/data/orders.py)
ROW_ORDERS = Path(__file__).parent / "data" / "orders"
#: a path inside a folder: safe names joined by '/' (no '..', no absolute path)
RELATIVE_PATH = r"^(\.|[A-Za-z0-9][A-Za-z0-9._-]{0,127}(/[A-Za-z0-9][A-Za-z0-9._-]{0,127}){0,7})$"
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


def _hub_id(value: str) -> str:
    """A hub dataset id names folders of the data mirror: safe names joined by '/'."""
    import re

    if not all(re.fullmatch(SAFE_NAME, part) for part in value.split("/")):
        raise ValueError(f"{value!r} is not a dataset id (names of letters, digits, '.', '_', '-' joined by '/')")
    return value


def _file_list(name: str) -> str:
    """A file list that ships with Harness (FILE_LISTS/<name>.txt)."""
    if not (FILE_LISTS / f"{name}.txt").is_file():
        known = sorted(p.stem for p in FILE_LISTS.glob("*.txt"))
        raise ValueError(f"no file list {name!r} ships with Harness (lists: {', '.join(known) or 'none'})")
    return name


def _row_order(name: str) -> str:
    """A row order that ships with Harness (ROW_ORDERS/<name>.yaml)."""
    if not (ROW_ORDERS / f"{name}.yaml").is_file():
        known = sorted(p.stem for p in ROW_ORDERS.glob("*.yaml"))
        raise ValueError(f"no row order {name!r} ships with Harness (orders: {', '.join(known) or 'none'})")
    return name


class HubSplit(_Strict):
    """One split of a catalog dataset (DatasetSource kind "hub"): split `split` of the Hugging Face dataset
    `dataset` (configuration `config`) at `revision`, resolved offline-first (harness/data/mirror.py).

    Rows are read in the dataset's order, those of `with_splits` (further splits of the same dataset)
    after `split`'s; `row_order` first puts a copy's rows back in the dataset's original order
    (harness/data/orders/<name>.yaml: the hub's CIFAR-10 keeps its training batches as 4, 3, 2, 5, 1),
    so that positions below mean original positions; `drop_class_ranks` drops the images a list names
    by class and number in that order (OpenOOD's CIFAR holdouts); `drop_files` drops the rows whose image file is in a list that ships with Harness
    (harness/data/lists/<name>.txt: OpenOOD's held-out validation images), `keep_labels` / `drop_labels`
    filter them by label name, then `rows` ("start:stop") cuts them, then `long_tail_ratio` subsamples
    an exponential long tail (class c keeps floor(n_max * ratio^(-c / (C - 1))) samples, drawn as Cao et al.'s LDAM code does with numpy's
    legacy seed `seed`). `label` None makes an unlabelled split (OOD sets: label -1). `labels_only` reads
    the labels alone (a long-tail train split whose class counts define shot groups). `fetch` "manual":
    the data is not on the hub; `url` says where to download it, and the mirror is where to put it.
    """

    dataset: Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_hub_id)]
    config: Annotated[str, Field(pattern=SAFE_NAME)] | None = None
    revision: Annotated[str, Field(pattern=SAFE_NAME)] = "main"
    split: Annotated[str, Field(pattern=SAFE_NAME)]
    #: further splits whose rows follow `split`'s, as one set (OpenOOD's MNIST: test and train)
    with_splits: list[SafeName] = Field(default_factory=list, max_length=8)
    #: a file list of harness/data/lists/ naming images to leave out (see harness/data/catalog.py)
    drop_files: Annotated[str, Field(pattern=SAFE_NAME), AfterValidator(_file_list)] | None = None
    #: a file list of harness/data/lists/ naming images by class and number, `.../<class>/<n>.png`: the
    #: n-th image of that class in the original order (cifar2png's names, which OpenOOD's CIFAR lists use)
    drop_class_ranks: Annotated[str, Field(pattern=SAFE_NAME), AfterValidator(_file_list)] | None = None
    #: the image or text column (default: the first of image, img, jpg, png, text, sentence found)
    input: str | None = None
    #: the label column; None: the split is unlabelled (OOD sets get label -1)
    label: str | None = None
    rows: Annotated[str, Field(pattern=r"^\d*:\d*$")] | None = None
    keep_labels: list[str] = Field(default_factory=list)
    drop_labels: list[str] = Field(default_factory=list)
    #: an OOD set: every sample gets label -1 (its label column, if given, only filters rows)
    ood: bool = False
    long_tail_ratio: Annotated[float, Field(ge=1)] | None = None
    seed: int = 0
    labels_only: bool = False
    fetch: Literal["hub", "manual"] = "hub"
    url: str | None = None
    #: an image list in the mirror folder ("path label" lines, OpenOOD's benchmark_imglist/...): the
    #: split's images are those files, under `image_root`, with those labels (-1: OOD)
    image_list: Annotated[str, Field(pattern=RELATIVE_PATH)] | None = None
    image_root: Annotated[str, Field(pattern=RELATIVE_PATH)] = "."
    #: the dataset's original row order (harness/data/orders/<name>.yaml), recognised in the copy by the
    #: labels and restored before any selection; sample ids are then original positions
    row_order: Annotated[str, Field(pattern=SAFE_NAME), AfterValidator(_row_order)] | None = None

    @model_validator(mode="after")
    def _row_order_reads_labels(self) -> HubSplit:
        if self.row_order is not None and self.label is None:
            raise ValueError("row_order needs the split's label column (`label`): the order is recognised by labels")
        if self.drop_class_ranks is not None and self.row_order is None:
            raise ValueError("drop_class_ranks needs a row_order: an image's number counts from the original order")
        return self


#: what a sample of a catalog dataset is: image or text classification, documents (held-out LM text),
#: a BEIR retrieval folder, lm-eval multiple-choice items, or the prompts, documents and items a
#: compressed LM is compared with its reference on
Modality = Literal["image", "text", "documents", "retrieval", "choices", "reference"]


class DatasetSource(_Strict):
    """Where a task's data comes from.

    - kind "builtin": an offline suite that ships with Harness (`name` is the registered suite).
    - kind "local": your own folder or file at `path`: per split an ImageFolder, a table (csv, jsonl,
      parquet), arrays (npz, npy) or plain text (txt); params name columns and classes
      (harness/data/local.py, docs/own-data.md).
    - kind "hf": a Hugging Face dataset: `name` is the hub id (read from the local cache when
      HF_DATASETS_OFFLINE=1) at `revision`, or `path` a folder written by `Dataset.save_to_disk`.
    - kind "beir": a BEIR retrieval folder at `path` (corpus.jsonl, queries.jsonl, qrels/<split>.tsv);
      params `split` (default "test") and `empty_documents` ("error" or "keep").
    - kind "mteb": an MTEB retrieval task called `name`, read through mteb's task objects from the
      local cache; params `split` and `subset`.
    - kind "hub": a catalog dataset (docs/catalog.md): each Harness split in `splits` is a split of a
      Hugging Face dataset at a pinned revision (HubSplit), read offline-first from the data mirror
      ($HARNESS_DATA_DIR), the local HF cache, then the hub where the network is allowed; `modality`
      says what a sample is, `preprocessing` how it is prepared before the model's own image processor
      or tokenizer sees it, `label_names` the task's label space (default: the dataset's class names).
    `params` go to the source (builtin factory arguments; column names and split names for hf).
    """

    kind: Literal["builtin", "local", "hf", "beir", "mteb", "hub"] = "builtin"
    name: Annotated[str, Field(min_length=1, max_length=200)]
    path: str | None = None
    revision: str = "1"
    params: dict[str, Scalar | list[Scalar] | dict[str, str]] = Field(default_factory=dict)
    #: kind "hub": Harness split name -> the hub split it is read from
    splits: dict[SafeName, HubSplit] = Field(default_factory=dict)
    #: kind "hub": what a sample is
    modality: Modality | None = None
    #: kind "hub": how samples are prepared (images: mode, resize, center_crop; documents: join)
    preprocessing: dict[str, Scalar | list[Scalar]] = Field(default_factory=dict)
    #: the task's label space, class names in label order (empty: the dataset's own class names)
    label_names: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _path_for_local(self) -> DatasetSource:
        if self.kind in ("local", "beir") and not self.path:
            raise ValueError(f"a {self.kind} dataset source needs a 'path'")
        if self.kind == "hub" and (not self.splits or self.modality is None):
            raise ValueError("a hub dataset source needs 'splits' and a 'modality'")
        if self.kind != "hub" and (self.splits or self.modality or self.preprocessing):
            raise ValueError("'splits', 'modality' and 'preprocessing' belong to hub dataset sources")
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
    #: where the protocol comes from: the paper and/or reference implementation it follows (catalog tasks)
    protocol: str | None = None

    def spec_hash(self) -> str:
        """sha256 of what determines a task's results: fields at their defaults, the description,
        the license, the protocol's citation and `demo_models_tagged` are left out (so adding an optional
        field or rewording a description keeps earlier submissions valid), and so is a model-dependent
        dataset parameter (the `reference` of a compression task, filled in per model; the dataset
        fingerprints identify it)."""
        payload = self.model_dump(
            mode="json", exclude_defaults=True, exclude={"description", "license", "demo_models_tagged", "protocol"}
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


CiMethod = Literal[
    "wilson",
    "bc-bootstrap",
    "bc-studentized",
    "studentized",
    "debiased-bootstrap",
    "order-statistic",
    "bootstrap",
    "stderr",
    "none",
]


class MetricValue(_Strict):
    """One number with its direction, uncertainty and sample count.

    ci_method (docs/metrics.md, "Intervals"): "wilson": Wilson score interval of a proportion of n
    independent units; "bc-bootstrap": bias-corrected percentile interval over `n_resamples` seeded
    resamples of the units; "bc-studentized": an AUROC's bootstrap-t of DeLong standard errors on the log
    distance to the bound, its end away from the bound reaching at least as far as the bias-corrected
    one's; "studentized": a bootstrap-t with a delta-method standard error (ece_sq_debiased); "debiased-bootstrap": the same after removing the bootstrap's bias estimate
    (the ECE family; for ece extended to 0 when the noise-floor test does not reject calibration);
    "order-statistic": the distribution-free interval of a median; "bootstrap": plain percentile interval (files of schema version 3 and
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
    ci_method: CiMethod = "none"
    n: Annotated[int, Field(ge=0, le=2**63 - 1)]
    #: what `n` counts (None in files of schema version 3 and older)
    unit: Annotated[str, Field(max_length=40)] | None = None
    #: the bootstrap distribution behind the CI (not serialised; the runner keeps the main metric's)
    _distribution: tuple[float, ...] | None = PrivateAttr(default=None)
    #: (lowest ci_low, highest ci_low, lowest ci_high, highest ci_high) that float rounding of the resamples
    #: can give (`harness.intervals.bias_corrected_range`; not serialised; re-scoring accepts that range)
    _ci_range: tuple[float, float, float, float] | None = PrivateAttr(default=None)


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

    schema_version: Literal[8] = 8
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
