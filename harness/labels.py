"""A classifier's label space mapped onto a task's: which model output scores which task class.

A task whose dataset names its classes (the catalog's suites carry `class_names`) runs on a classifier
only when every task class maps to one model output:
1. by the label map (`harness eval --label-map FILE`: a JSON or YAML mapping of model label -> task
   label; a model label is a name of its id2label or an output index written as a string, a task label
   a class name or a class index), then
2. by name, for the classes the map leaves out: the model's own label names (config.id2label of a
   Hugging Face classifier), compared ignoring case, spaces, '_' and '-'; a model name that lists
   synonyms separated by commas ("tench, Tinca tinca", ImageNet's style) matches any of them.
A model without label names (id2label LABEL_0, LABEL_1, ..., or a Harness torch classifier) fits by
position when it has exactly as many outputs as the task has classes.

The task then sees, per sample, the model's logits at the mapped outputs in task class order: outputs
of classes outside the task are left out, which restricts the classifier to the task's classes (the
usual way to score an ImageNet-1k model on a subset such as ImageNet-200), and confidences are the
softmax over the task's classes. Tasks without class names keep the rule of the built-in suites:
labels index the model's outputs directly.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from harness.errors import HarnessError

GENERIC_LABEL = re.compile(r"^LABEL_\d+$")
#: a label map is a small file
MAX_LABEL_MAP_BYTES = 10_000_000


def normalise(name: str) -> str:
    """A label name compared loosely: lower case, without spaces, '_' and '-'."""
    return re.sub(r"[\s_\-]+", "", name).lower()


def aliases(name: str) -> set[str]:
    """The normalised name and, for a comma-separated list of synonyms, each of them."""
    return {normalise(name), *(normalise(part) for part in name.split(",") if part.strip())}


def model_label_names(handle: Any) -> list[str] | None:
    """The model's class names in output order (config.id2label), or None when it has no real names."""
    config = getattr(getattr(handle, "model", None), "config", None)
    id2label = getattr(config, "id2label", None)
    n = getattr(handle, "n_outputs", None)
    if not isinstance(id2label, Mapping) or not n:
        return None
    names = [str(id2label.get(i, id2label.get(str(i), ""))) for i in range(int(n))]
    if not all(names) or all(GENERIC_LABEL.match(name) for name in names):
        return None
    return names


def read_label_map(path: Path) -> tuple[tuple[str, str], ...]:
    """A JSON or YAML mapping of model label -> task label, as sorted (model, task) string pairs."""
    import yaml

    from harness.untrusted import regular_file

    if regular_file(path, "label map") > MAX_LABEL_MAP_BYTES:
        raise HarnessError(f"a label map is capped at {MAX_LABEL_MAP_BYTES:,} bytes", where=str(path))
    text = path.read_text(encoding="utf-8")
    try:
        raw = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as error:
        raise HarnessError(f"not a JSON or YAML mapping: {str(error).splitlines()[0]}", where=str(path)) from None
    if not isinstance(raw, dict) or not raw:
        raise HarnessError("a label map must be a non-empty mapping of model label -> task label", where=str(path))
    pairs = []
    for key, value in raw.items():
        if not isinstance(key, str | int) or not isinstance(value, str | int) or isinstance(value, bool):
            raise HarnessError(f"entry {key!r}: {value!r}: labels are names or indices", where=str(path))
        pairs.append((str(key), str(value)))
    return tuple(sorted(pairs))


@dataclass(frozen=True)
class LabelMapping:
    """Model output index per task class (`outputs`), or None for the identity; how it was found."""

    outputs: NDArray[np.intp] | None
    method: str


def map_labels(
    task_names: Sequence[str],
    model_names: Sequence[str] | None,
    n_outputs: int,
    label_map: Sequence[tuple[str, str]] = (),
) -> LabelMapping:
    """The model output of each task class; a HarnessError says what does not map and what would fit."""
    n_classes = len(task_names)
    by_task = {normalise(name): i for i, name in enumerate(task_names)}
    by_model: dict[str, int] = {}
    for i, name in enumerate(model_names or []):
        for alias in aliases(name):
            by_model.setdefault(alias, i)
    chosen = np.full(n_classes, -1, dtype=np.intp)
    for model_label, task_label in label_map:
        m = (
            int(model_label)
            if model_label.isdigit() and int(model_label) < n_outputs
            else by_model.get(normalise(model_label))
        )
        t = (
            int(task_label)
            if task_label.isdigit() and int(task_label) < n_classes
            else by_task.get(normalise(task_label))
        )
        if m is None:
            raise HarnessError(
                f"label map: the model has no label {model_label!r}", fix="use its id2label names or output indices"
            )
        if t is None:
            raise HarnessError(
                f"label map: the task has no class {task_label!r}", fix="task classes: " + ", ".join(task_names[:20])
            )
        if chosen[t] >= 0 and chosen[t] != m:
            raise HarnessError(f"label map: several model labels map onto task class {task_names[t]!r}")
        chosen[t] = m
    if model_names is not None:
        for t, name in enumerate(task_names):
            if chosen[t] < 0:
                whole = normalise(name)  # the full name first, then its synonyms
                found = next((by_model[a] for a in [whole, *sorted(aliases(name) - {whole})] if a in by_model), None)
                chosen[t] = -1 if found is None else found
    if (chosen < 0).all() and model_names is None and n_outputs == n_classes:
        return LabelMapping(None, "position")  # no names to compare: the outputs are the classes, in order
    missing = [task_names[int(t)] for t in np.flatnonzero(chosen < 0)]
    if missing:
        shown = ", ".join(repr(m) for m in missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        if model_names is None:
            what = f"the model's {n_outputs} outputs have no label names (id2label)"
            fix = f"give the model id2label names, or pass --label-map FILE (model output index -> task class) for {shown}"
        else:
            what = f"{len(missing)} of the task's {n_classes} classes have no model label: {shown}"
            fix = "pass --label-map FILE mapping model labels to these class names (JSON or YAML)"
        raise HarnessError(f"the model's label space does not cover the task's: {what}", fix=fix)
    duplicated = len(set(chosen.tolist())) != n_classes
    if duplicated:
        raise HarnessError("several task classes map onto one model output", fix="fix the label map")
    if n_outputs == n_classes and (chosen == np.arange(n_classes)).all():
        return LabelMapping(None, "names" if model_names is not None else "label map")
    return LabelMapping(chosen, "label map" if label_map else "names")


def task_class_names(spec: Any) -> tuple[str, ...]:
    """The class names of a classifier task's dataset (calibration, ood, longtail: tasks that read
    logits); empty when its classes are indices only."""
    from harness.data import load_suite
    from harness.models.base import Capability
    from harness.tasks import adapter_for

    if adapter_for(spec).capability != Capability.LOGITS:
        return ()
    return tuple(getattr(load_suite(spec.dataset), "class_names", ()) or ())


def label_mapping(spec: Any, handle: Any, label_map: Sequence[tuple[str, str]] = ()) -> LabelMapping | None:
    """How `handle`'s outputs map onto `spec`'s classes; None when the task has no class names or the
    model's number of outputs is unknown before it runs (a predictions file's, a language model's)."""
    names = task_class_names(spec)
    n_outputs = getattr(handle, "n_outputs", None)
    if not names or not n_outputs:
        return None
    return map_labels(names, model_label_names(handle), int(n_outputs), label_map)


def unfit_label_reason(spec: Any, handle: Any, label_map: Sequence[tuple[str, str]] = ()) -> str | None:
    """Why the model's labels do not fit the task's (what would fit is in the message), or None."""
    try:
        label_mapping(spec, handle, label_map)
    except HarnessError as error:
        return f"task {spec.name!r}: {error.what}; {error.fix}" if error.fix else f"task {spec.name!r}: {error.what}"
    return None


def remap_outputs(outputs: Mapping[str, Any], mapping: LabelMapping | None) -> dict[str, Any]:
    """Outputs with their logits taken at the mapped model outputs, in task class order."""
    out = dict(outputs)
    if mapping is not None and mapping.outputs is not None and "logits" in out:
        out["logits"] = np.asarray(out["logits"])[:, mapping.outputs]
    return out
