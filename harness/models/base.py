"""What every loaded model is: a ModelHandle with declared capabilities.

Capabilities name what a model can produce, so the runner can match tasks to models before
running anything: a task adapter states the capability it needs, a handle the ones it has.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

from numpy.typing import NDArray

from harness.schema import ModelCard

Arrays = dict[str, NDArray[Any]]


class Capability(StrEnum):
    LOGITS = "logits"  # class logits for an input
    FEATURES = "features"  # penultimate-layer features for an input
    EMBEDDINGS = "embeddings"  # a sentence embedding for a text (retrieval encoders)
    CAUSAL_LM = "causal-lm"  # next-token logits over a vocabulary (language models)


@dataclass(frozen=True)
class LoadOptions:
    device: str = "cpu"
    allow_pickle: bool = False
    #: weights dtype for models that support several (float32, bfloat16, float16)
    dtype: str = "float32"


@dataclass(frozen=True)
class InferenceOptions:
    batch_size: int = 256
    #: called with the number of samples just processed (drives progress bars)
    advance: Callable[[int], None] = field(default=lambda n: None)
    #: the request's parameters (part of the cache key)
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class ModelHandle:
    """A loaded checkpoint. `checkpoint_hash` is the sha256 over its weight files."""

    path: Path
    kind: str
    card: ModelCard
    checkpoint_hash: str
    capabilities: frozenset[Capability]
    #: settings outside the weight files that change outputs (e.g. a maximum sequence length);
    #: part of the cache key, so changing them never reuses stale outputs
    cache_salt: str = ""


class Classifier(Protocol):
    """A handle that maps a split's samples to class logits (and `features` when it has them).

    Outputs are float32 arrays in the split's order: logits (n, k), features (n, d).
    """

    capabilities: frozenset[Capability]

    def classify(self, split: Any, options: InferenceOptions) -> Arrays: ...


class ModelLoader(Protocol):
    kind: str
    description: str
    #: what a folder of this kind holds, shown when detection fails
    expects: str

    def detect(self, path: Path) -> bool: ...

    def load(self, path: Path, options: LoadOptions) -> ModelHandle: ...


@dataclass(frozen=True)
class Inference:
    """One kind of forward pass whose per-sample outputs the runner caches and tasks share.

    Bump `version` when the outputs change for the same model and data (it is part of the cache key).
    """

    name: str
    version: int
    capability: Capability
    run: Callable[[Any, Any, InferenceOptions], Arrays]
