"""Torch classifiers saved by Harness's zoo: model.safetensors + config.json + card.json.

config.json describes the architecture (`format: harness-torch-classifier`); today that is an
MLP with `input_dim`, `hidden_dims`, `n_classes`. The penultimate activations are exposed as
features (capability `features`), the last layer's outputs as logits.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from torch import nn

from harness.errors import HarnessError
from harness.models import (
    DTYPES,
    checkpoint_hash,
    model_files,
    read_card,
    read_json,
    refuse_pickle,
    torch_dtype,
    unreadable_weights,
)
from harness.models.base import DEFAULT_BATCH_SIZE, Arrays, Capability, InferenceOptions, LoadOptions, ModelHandle
from harness.models.batching import CUDA_START_BATCH, automatic_backoff, run_batches

FORMAT = "harness-torch-classifier"
WEIGHTS = "model.safetensors"
PICKLE_WEIGHTS = "model.pt"


class ClassifierConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: str = FORMAT
    format_version: int = 1
    architecture: str = "mlp"
    input_dim: int = Field(ge=1)
    hidden_dims: list[int]
    n_classes: int = Field(ge=1)
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0)


class MLPClassifier(nn.Module):
    """Linear -> ReLU (-> dropout) blocks, then a linear head; `features` is the head's input."""

    def __init__(self, config: ClassifierConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = config.input_dim
        for hidden in config.hidden_dims:
            layers += [nn.Linear(width, hidden), nn.ReLU()]
            if config.dropout:
                layers.append(nn.Dropout(config.dropout))
            width = hidden
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, config.n_classes)

    def forward_with_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.body(x.flatten(1))
        return self.head(features), features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_with_features(x)[0]


class TorchClassifierHandle(ModelHandle):
    def __init__(self, *, module: MLPClassifier, config: ClassifierConfig, device: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.module = module
        self.config = config
        self.device = device
        self.dtype = next(module.parameters()).dtype

    @property
    def n_outputs(self) -> int:
        return self.config.n_classes

    @torch.inference_mode()
    def classify(self, split: Any, options: InferenceOptions) -> Arrays:
        """Logits and penultimate features, float32, in input order."""
        x = getattr(split, "x", None)
        if x is None:
            raise HarnessError(
                f"a {self.kind} model takes arrays, but split {split.name!r} holds text",
                where=str(self.path),
                fix="evaluate it on an array or image dataset",
            )
        if x.ndim < 2 or int(np.prod(x.shape[1:])) != self.config.input_dim:
            raise HarnessError(
                f"inputs of shape {x.shape[1:]} do not fit a model with input_dim {self.config.input_dim}",
                where=str(self.path),
                fix="evaluate this model on a dataset with matching inputs",
            )
        logits, features = [], []

        def forward(start: int, stop: int) -> tuple[torch.Tensor, torch.Tensor]:
            batch = torch.from_numpy(np.ascontiguousarray(x[start:stop])).to(self.device)
            out, feat = self.module.forward_with_features(batch.to(self.dtype))
            return out.float(), feat.float()

        backoff = automatic_backoff(self.device, options.batch_size)
        size = options.batch_size or (CUDA_START_BATCH if backoff else DEFAULT_BATCH_SIZE)
        for start, stop, (out, feat) in run_batches(x.shape[0], size, forward, backoff=backoff, where=str(self.path)):
            logits.append(out.cpu().numpy())  # one copy per batch and output
            features.append(feat.cpu().numpy())
            options.advance(stop - start)
        return {"logits": np.concatenate(logits), "features": np.concatenate(features)}


class TorchClassifierLoader:
    kind = "torch-classifier"
    description = "torch MLP classifier written by the Harness zoo (safetensors + config.json + card.json)"
    expects = f"config.json with format {FORMAT!r} and {WEIGHTS}"
    dtypes = DTYPES

    def detect(self, path: Path) -> bool:
        config = path / "config.json"
        if not path.is_dir() or not config.exists():
            return False
        try:
            return bool(read_json(config).get("format") == FORMAT)
        except AttributeError:  # not an object
            return False

    def load(self, path: Path, options: LoadOptions) -> ModelHandle:
        try:
            config = ClassifierConfig.model_validate(read_json(path / "config.json"))
        except ValidationError as error:
            first = error.errors()[0]
            raise HarnessError(
                f"invalid config field {'.'.join(str(p) for p in first['loc'])!r}: {first['msg']}",
                where=str(path / "config.json"),
            ) from None
        module = MLPClassifier(config)
        state = self._read_state(path, options)
        try:
            module.load_state_dict(state)
        except RuntimeError as error:
            raise HarnessError(
                f"weights do not match config.json: {str(error).splitlines()[0]}",
                where=str(path),
                fix="re-export the checkpoint so config.json and the weights agree",
            ) from None
        module.eval().to(options.device, dtype=torch_dtype(options.dtype))
        return TorchClassifierHandle(
            module=module,
            config=config,
            device=options.device,
            path=path,
            kind=self.kind,
            card=read_card(path, self.kind),
            checkpoint_hash=checkpoint_hash(model_files(path), path),
            capabilities=frozenset({Capability.LOGITS, Capability.FEATURES}),
        )

    def _read_state(self, path: Path, options: LoadOptions) -> dict[str, torch.Tensor]:
        refuse_pickle(path, options.allow_pickle)
        weights = path / WEIGHTS
        if weights.exists():
            return load_safetensors(weights)
        if (path / PICKLE_WEIGHTS).exists():
            state: dict[str, torch.Tensor] = torch.load(path / PICKLE_WEIGHTS, map_location="cpu", weights_only=True)
            return state
        raise HarnessError(
            f"no {WEIGHTS} in the checkpoint folder", where=str(path), fix="export the weights as safetensors"
        )


def load_safetensors(file: Path) -> dict[str, torch.Tensor]:
    """Read a safetensors file; a truncated or corrupt file is a HarnessError."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(file))
    except (SafetensorError, OSError, ValueError) as error:
        raise unreadable_weights(file, error) from None


LOADER = TorchClassifierLoader()
