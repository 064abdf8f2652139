"""Commented task-spec templates for a user's own data (`harness task new`).

Each template is a complete TaskSpec in YAML whose only placeholder is the dataset path
(`PLACEHOLDER_PATH`): with the path filled in it validates as it is (tests/test_own_data.py fills it
in and runs it). The data layouts are those of harness/data/local.py (docs/own-data.md).
"""

from __future__ import annotations

import re

from harness.errors import HarnessError
from harness.schema import SAFE_NAME

#: what the user replaces with the folder (or file) of their data
PLACEHOLDER_PATH = "PATH/TO/YOUR/DATA"

_HEADER = """\
# Task spec for Harness: your own data with the `{adapter}` adapter.
# 1. Put your data in the layout below and write its folder in dataset.path (relative to the folder
#    you run harness in, or absolute).
# 2. Check it:  harness tasks --include-path {folder}
# 3. Run it:    harness eval --model YOUR_MODEL --tasks {file}
# The file name (without .yaml) must equal `name`. Data layouts: docs/own-data.md; fields: docs/tasks.md.
name: {name}
version: 1                     # bump when you change what the task measures
adapter: {adapter}
description: "{description}"
dataset:
  kind: local
  name: {name}-data              # a label for your data
  path: {placeholder}
{layout}"""

_CLASSIFICATION_PARAMS = """\
  # Optional dataset params, e.g. params: {classes: [cat, dog], image_size: [224, 224], image_mode: RGB}
  #   label_column, text_column, id_column: column names (default label, text, id)
  #   feature_columns: [f1, f2]  (default: every other numeric column)
  #   classes: [cat, dog]        (class names in label order: labels may then be names)
  #   image_size, image_mode     (convert images of mixed sizes or modes)
  params: {}
"""

_LAYOUTS = {
    "calibration": (
        "Calibration of my classifier on my data (ECE, NLL, Brier; temperature scaling when calib is given)",
        """\
  # The folder holds one entry per split, for example:
  #   test.csv           columns: id (optional), label, and `text` or numeric feature columns
  #   calib.csv          optional: held-out samples for temperature scaling (skipped without it)
  # or images:  test/<class name>/*.png  (and calib/<class name>/*.png)
  # A predictions-file model needs only the id and label columns.
"""
        + _CLASSIFICATION_PARAMS
        + """\
parameters:
  n_bins: 15                   # equal-width confidence bins of the ECE
  n_resamples: 1000            # bootstrap resamples of the 95% intervals
main_metric: ece               # ranks the leaderboard (lower is better)
license: the license of your data
""",
    ),
    "ood": (
        "OOD detection of my classifier: my test data against my OOD sets",
        """\
  # The folder holds one entry per split, for example:
  #   test.csv            in-distribution samples (labels optional)
  #   ood_near.csv        an OOD set, no label column needed (or images: ood_near/*.png)
  #   ood_far.csv         another OOD set
  #   train.csv           optional: labelled training samples; Mahalanobis and KNN scores need it
  #                       and a model with features (they are skipped without, with a note)
"""
        + _CLASSIFICATION_PARAMS
        + """\
parameters:
  near_ood: [ood_near]         # split names of your near-OOD sets (may be empty: [])
  far_ood: [ood_far]           # split names of your far-OOD sets (may be empty: [])
  scores: [msp, max_logit, energy, mahalanobis, knn]
  knn_k: 10
  n_resamples: 1000
main_metric: auroc.energy.mean # ranks the leaderboard (higher is better)
license: the license of your data
""",
    ),
    "longtail": (
        "Long-tailed recognition on my data: many/medium/few-shot and balanced accuracy",
        """\
  # The folder holds one entry per split, for example:
  #   train.csv           the (long-tailed) training labels: the shot groups count them; a label
  #                       column is enough
  #   test.csv            a class-balanced labelled test split (or images: test/<class>/*.png)
"""
        + _CLASSIFICATION_PARAMS
        + """\
parameters:
  many_shot_min: 100           # many-shot classes have more training samples than this
  few_shot_max: 20             # few-shot classes have fewer than this
  test_ratios: [2, 5, 10, 25, 50]
  n_resamples: 1000
main_metric: balanced_accuracy # ranks the leaderboard (higher is better)
license: the license of your data
""",
    ),
    "lm_loss": (
        "Held-out loss (nats per token) and perplexity of my language model on my text",
        """\
  # The folder holds the held-out split as plain UTF-8 text, either
  #   heldout.txt         documents separated by blank lines
  # or
  #   heldout/*.txt       one document per file
  params: {}
parameters:
  split: heldout               # the split name (the file or folder name above)
  n_resamples: 1000
main_metric: loss_nats         # ranks the leaderboard (lower is better)
license: the license of your text
""",
    ),
    "flatness": (
        "Sharpness of my language model's loss on my text (Hessian trace, loss under weight noise)",
        """\
  # The folder holds the split `heldout` as plain UTF-8 text: heldout.txt (documents separated
  # by blank lines) or heldout/*.txt (one document per file); the first n_docs are used.
  params: {}
parameters:
  n_docs: 32
  n_probes: 8
  noise_scales: [0.01, 0.03, 0.1]
  n_noise_seeds: 4
  seed: 0
  n_resamples: 1000
main_metric: hessian_trace     # lower is flatter
license: the license of your text
""",
    ),
}

ADAPTERS = tuple(_LAYOUTS)


def _yaml_text(value: str) -> str:
    """`value` as a YAML scalar: plain when safe, else double-quoted (JSON's escaping is valid YAML)."""
    import json

    return (
        value
        if re.fullmatch(r"[A-Za-z0-9_./~-][A-Za-z0-9_./ ~-]*", value) and not value.endswith(" ")
        else json.dumps(value)
    )


def task_template(adapter: str, name: str, file: str = "", data: str | None = None) -> str:
    """The commented YAML template of a task called `name` with `adapter`, on a local dataset at `data`
    (else `PLACEHOLDER_PATH`, for the user to fill in)."""
    if adapter not in _LAYOUTS:
        raise HarnessError(
            f"no template for adapter {adapter!r}",
            fix="use one of " + ", ".join(ADAPTERS) + " (docs/tasks.md describes the other adapters)",
        )
    if not re.match(SAFE_NAME, name):
        raise HarnessError(
            f"{name!r} is not a task name: letters, digits, '.', '_' and '-' only, starting with a letter or digit",
            fix="choose another file name or --name",
        )
    description, layout = _LAYOUTS[adapter]
    folder = str(file).rsplit("/", 1)[0] if "/" in str(file) else "."
    return _HEADER.format(
        adapter=adapter,
        name=name,
        description=description,
        placeholder=PLACEHOLDER_PATH if data is None else _yaml_text(data),
        layout=layout,
        file=file or f"{name}.yaml",
        folder=folder,
    )
