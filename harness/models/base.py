"""What every loaded model is: a ModelHandle with declared capabilities.

Capabilities name what a model can produce, so the runner can match tasks to models before
running anything: a task adapter states the capability it needs, a handle the ones it has.
"""

from __future__ import annotations

import hashlib
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


#: batch size of classifiers when none is given (their inputs are small and of one size)
DEFAULT_BATCH_SIZE = 256


@dataclass(frozen=True)
class InferenceOptions:
    #: None: automatic (DEFAULT_BATCH_SIZE for classifiers; language models fill a logits budget)
    batch_size: int | None = None
    #: called with the number of samples just processed (drives progress bars)
    advance: Callable[[int], None] = field(default=lambda n: None)
    #: the request's parameters (part of the cache key)
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class ModelHandle:
    """A loaded checkpoint.

    Its identity is (`checkpoint_hash`, `settings`): the sha256 over the files that define it (weights,
    config, tokenizer, processor; `harness.models.model_files`) and the inference settings that change
    its outputs. Both are part of every cache key and of the submission id, and `settings` is recorded
    in the submission.
    """

    path: Path
    kind: str
    card: ModelCard
    checkpoint_hash: str
    capabilities: frozenset[Capability]
    #: inference settings that change outputs: dtype, device kind (cpu or cuda), and per kind e.g. the
    #: maximum sequence length; part of the cache key and the submission id, so changing one never
    #: reuses stale outputs or overwrites another setting's results
    settings: dict[str, str] = field(default_factory=dict)

    @property
    def n_outputs(self) -> int | None:
        """How many classes the model scores, when known before any forward pass (None otherwise)."""
        return None

    @property
    def identity(self) -> str:
        """sha256 of (checkpoint hash, settings): what cache keys of this model's outputs start from."""
        text = self.checkpoint_hash + "|" + "|".join(f"{k}={v}" for k, v in sorted(self.settings.items()))
        return hashlib.sha256(text.encode()).hexdigest()


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
    #: the weight dtypes this kind honours (`--dtype`); others are refused before loading
    dtypes: tuple[str, ...]

    def detect(self, path: Path) -> bool: ...

    def load(self, path: Path, options: LoadOptions) -> ModelHandle: ...


@dataclass(frozen=True)
class Inference:
    """One kind of forward pass whose per-sample outputs the runner caches and tasks share.

    Bump `version` when the outputs change for the same model and data (it is part of the cache key).
    `shardable`: every output array has one row per sample, in the split's order, and a sample's row
    does not depend on the other samples, so a split can be cut into contiguous shards (`split.take`),
    each run apart (harness.executors), and the outputs concatenated in order.
    """

    name: str
    version: int
    capability: Capability
    run: Callable[[Any, Any, InferenceOptions], Arrays]
    shardable: bool = False
