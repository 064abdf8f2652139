"""Inference kind `encode`: one embedding per text of a split (retrieval corpora and queries).

The runner caches the outputs by (checkpoint hash + the handle's cache salt, split fingerprint,
"encode", version), so a second evaluation of the same model on the same corpus encodes nothing.
A split named "queries" is encoded as queries, any other split as documents: models whose
sentence-transformers config defines "query" / "document" prompts get the matching one.
"""

from __future__ import annotations

from typing import Any, Literal, Protocol

import numpy as np

from harness.errors import HarnessError
from harness.models.base import Arrays, Capability, Inference, InferenceOptions

Role = Literal["query", "document"]


class Encoder(Protocol):
    """A handle that embeds texts: {"embeddings": float32 (n, d)}, in input order."""

    def encode(self, texts: list[str], options: InferenceOptions, *, role: Role = "document") -> Arrays: ...


def _encode(handle: Any, split: Any, options: InferenceOptions) -> Arrays:
    texts = getattr(split, "texts", None)
    if texts is None:
        raise HarnessError(
            f"split {split.name!r} holds arrays, but an encoder embeds texts",
            where=f"split {split.name}",
            fix="evaluate encoders on text datasets (a retrieval suite)",
        )
    role: Role = "query" if split.name == "queries" else "document"
    arrays = dict(handle.encode(list(texts), options, role=role))
    embeddings = np.asarray(arrays["embeddings"], dtype=np.float32)
    if embeddings.ndim != 2 or embeddings.shape[0] != len(texts):
        raise HarnessError(
            f"the encoder returned embeddings of shape {embeddings.shape} for {len(texts)} texts",
            where=f"split {split.name}",
        )
    return {"embeddings": embeddings}


#: a float32 (n, d) embedding for every text of a split
ENCODE = Inference(name="encode", version=1, capability=Capability.EMBEDDINGS, run=_encode, shardable=True)
