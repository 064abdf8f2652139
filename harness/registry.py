"""One generic registry type for task adapters, model loaders, inference kinds and metrics.

An entry is either an object or a lazy reference "package.module:attribute" that is imported on
first use, so listing what exists never imports heavy dependencies. An unknown name fails with a
`HarnessError` that suggests the closest names ("did you mean ...").

    >>> colours = Registry[str]("colour")
    >>> colours.add("red", "#f00")
    >>> colours.get("red")
    '#f00'
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Iterator
from typing import Generic, TypeVar

from harness.errors import HarnessError

T = TypeVar("T")


class Registry(Generic[T]):
    """Named entries of one kind; `kind` is used in messages ("unknown task 'x'")."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T | str] = {}

    def add(self, name: str, entry: T | str, *, replace: bool = False) -> None:
        """Register `entry` under `name`; a str entry is a lazy "module:attribute" reference."""
        if name in self._entries and not replace:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        if isinstance(entry, str) and ":" not in entry:
            raise ValueError(f"lazy {self.kind} entry must look like 'module:attribute', got {entry!r}")
        self._entries[name] = entry

    def register(self, name: str) -> _Decorator[T]:
        """Decorator form of `add`."""
        return _Decorator(self, name)

    def get(self, name: str) -> T:
        """The entry called `name`, importing it if it is lazy."""
        if name not in self._entries:
            raise HarnessError(
                f"unknown {self.kind} {name!r}",
                fix=self.suggestion(name),
            )
        entry = self._entries[name]
        if isinstance(entry, str):
            module_name, _, attribute = entry.partition(":")
            resolved: T = getattr(importlib.import_module(module_name), attribute)
            self._entries[name] = resolved
            return resolved
        return entry

    def suggestion(self, name: str) -> str:
        close = difflib.get_close_matches(name, self.names(), n=3, cutoff=0.5)
        if close:
            return "did you mean " + " or ".join(repr(c) for c in close) + "?"
        return f"known {self.kind}s: " + ", ".join(self.names())

    def names(self) -> list[str]:
        """Names in registration order (model detection tries loaders in this order)."""
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)


class _Decorator(Generic[T]):
    def __init__(self, registry: Registry[T], name: str) -> None:
        self.registry = registry
        self.name = name

    def __call__(self, entry: T) -> T:
        self.registry.add(self.name, entry)
        return entry


# --------------------------------------------------------------------------- the registries
# Every pluggable thing Harness knows, by name. Entries are lazy so that `harness tasks` and
# friends never import torch or transformers just to list names.

from typing import Any  # noqa: E402

#: task adapters: name -> TaskAdapter (harness/tasks/)
TASK_ADAPTERS: Registry[Any] = Registry("task adapter")
TASK_ADAPTERS.add("calibration", "harness.tasks.calibration:ADAPTER")
TASK_ADAPTERS.add("ood", "harness.tasks.ood:ADAPTER")
TASK_ADAPTERS.add("longtail", "harness.tasks.longtail:ADAPTER")
TASK_ADAPTERS.add("lm_loss", "harness.tasks.lm_loss:ADAPTER")
TASK_ADAPTERS.add("flatness", "harness.tasks.flatness:ADAPTER")
TASK_ADAPTERS.add("probe", "harness.tasks.probe:ADAPTER")
TASK_ADAPTERS.add("lm_eval", "harness.tasks.lm_eval:ADAPTER")
TASK_ADAPTERS.add("compression", "harness.tasks.compression:ADAPTER")
TASK_ADAPTERS.add("compression_components", "harness.tasks.compression:COMPONENTS_ADAPTER")
TASK_ADAPTERS.add("retrieval", "harness.tasks.retrieval:ADAPTER")

#: model loaders: kind -> ModelLoader (harness/models/); detection tries them in this order
MODEL_LOADERS: Registry[Any] = Registry("model kind")
MODEL_LOADERS.add("torch-classifier", "harness.models.torch_classifier:LOADER")
MODEL_LOADERS.add("hf-classifier", "harness.models.hf_classifier:LOADER")
MODEL_LOADERS.add("predictions", "harness.models.predictions:LOADER")
MODEL_LOADERS.add("hf-causal-lm", "harness.models.causal_lm:LOADER")
MODEL_LOADERS.add("sentence-transformers", "harness.models.sentence_encoder:LOADER")

#: inference kinds: name -> Inference (what a forward pass produces; cached by the runner)
INFERENCE: Registry[Any] = Registry("inference kind")
INFERENCE.add("classify", "harness.models.inference:CLASSIFY")
INFERENCE.add("encode", "harness.models.encode:ENCODE")
INFERENCE.add("lm-rolling-nll", "harness.models.lm_inference:LM_ROLLING_NLL")
INFERENCE.add("lm-span-features", "harness.models.lm_inference:LM_SPAN_FEATURES")
INFERENCE.add("lm-flatness", "harness.models.lm_inference:LM_FLATNESS")
INFERENCE.add("lm-eval", "harness.models.lm_inference:LM_EVAL")
INFERENCE.add("lm-teacher-forced", "harness.models.lm_inference:LM_TEACHER_FORCED")
INFERENCE.add("lm-component-sweep", "harness.models.lm_inference:LM_COMPONENT_SWEEP")

#: built-in dataset suites: name -> factory(**params)
DATASETS: Registry[Any] = Registry("dataset")
DATASETS.add("digits", "harness.data.digits:digits_suite")
DATASETS.add("digits-ood", "harness.data.digits:digits_ood_suite")
DATASETS.add("digits-lt", "harness.data.digits:digits_lt_suite")
DATASETS.add("pydocs", "harness.data.retrieval:pydocs_suite")
DATASETS.add("synthlang", "harness.data.language:language_suite")
DATASETS.add("synthlang-mc", "harness.data.choices:synthlang_choice_suite")
DATASETS.add("lm-eval", "harness.data.lm_eval_source:lm_eval_suite")
DATASETS.add("synthlang-lm-eval", "harness.data.lm_eval_source:synthlang_lm_eval_suite")
DATASETS.add("synthlang-reference", "harness.data.reference:reference_suite")

#: metrics: name -> MetricInfo (direction and convention; the functions live in harness/metrics/)
METRICS: Registry[Any] = Registry("metric")
_METRIC_MODULES = {
    "calibration": (
        "accuracy", "ece", "ece_em", "mce", "classwise_ece", "brier", "nll", "aurc", "temperature", "ece_ts", "nll_ts",
        "ece_sq_debiased", "ece_noise_floor", "ece_calibrated_p",
    ),
    "ood": ("auroc", "aupr_in", "aupr_out", "fpr95"),
    "longtail": (
        "balanced_accuracy", "many_shot_accuracy", "medium_shot_accuracy", "few_shot_accuracy", "worst_class_accuracy",
        "acc_uniform",
        *(f"acc_{order}_lt_{ratio}" for order in ("forward", "backward") for ratio in (2, 5, 10, 25, 50)),
    ),
    "lm": (
        "fdtm_mean", "fdtm_median", "sdtm", "js_mean", "kl_mean", "top1_agreement", "ppl_reference", "ppl_candidate",
        "ppl_ratio", "mc_flips", "loss_nats", "perplexity", "bits_per_byte", "hessian_trace", "hessian_trace_hutchinson",
        "noise_loss_increase", "probe_accuracy", "choice_accuracy", "lm_eval",
    ),
    "retrieval": ("ndcg_at_10", "map_at_100", "mrr_at_10", "recall_at_1", "recall_at_10", "recall_at_100", "mteb"),
}  # fmt: skip
for _module, _names in _METRIC_MODULES.items():
    for _name in _names:
        METRICS.add(_name, f"harness.metrics.{_module}:{_name.upper()}")
