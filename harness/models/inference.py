"""Inference kinds: the forward passes whose outputs are cached and shared between tasks."""

from __future__ import annotations

from typing import Any

from harness.data.arrays import ArraySplit, TextSplit
from harness.models.base import Arrays, Capability, Inference, InferenceOptions


def _classify(handle: Any, split: ArraySplit | TextSplit, options: InferenceOptions) -> Arrays:
    return dict(handle.classify(split, options))


#: logits (and penultimate features when the model has them) for every sample of a split
CLASSIFY = Inference(name="classify", version=1, capability=Capability.LOGITS, run=_classify, shardable=True)
