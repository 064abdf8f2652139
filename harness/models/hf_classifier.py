"""Hugging Face classifiers: AutoModelForImageClassification and AutoModelForSequenceClassification folders.

Detected from config.json's `architectures` (a name ending in ForImageClassification or
ForSequenceClassification). Loaded with transformers, offline (`local_files_only`), never with
`trust_remote_code`, from safetensors unless pickle is allowed.

Logits are the model's outputs. Features (capability `features`) are the input of the
classification head (the penultimate representation: ViT's [CLS] after the final norm, ResNet's
pooled map, BERT's pooled output), captured with a forward hook on the head module; models without
a recognised head fall back to the mean of the last hidden state over positions.

Inputs: images are float arrays in [0, 1], (n, H, W, C) or flat (n, C*H*W); when the folder has an
image processor (preprocessor_config.json) it prepares them, otherwise they go in as (n, C, H, W).
Texts are tokenised with the folder's tokenizer (padding, truncation to the model's maximum).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from harness.errors import HarnessError
from harness.models import (
    DTYPES,
    checkpoint_hash,
    model_files,
    read_card,
    read_json,
    refuse_pickle,
    torch_dtype,
    weight_files,
    with_model_facts,
)
from harness.models.base import DEFAULT_BATCH_SIZE, Arrays, Capability, InferenceOptions, LoadOptions, ModelHandle
from harness.models.batching import CUDA_START_BATCH, automatic_backoff, run_batches

HEADS = ("classifier", "score", "fc", "head", "classification_head")
TASKS = {"ForImageClassification": "image", "ForSequenceClassification": "text"}


def hf_task(path: Path) -> str | None:
    """ "image" or "text" for an HF classification folder, else None."""
    config = path / "config.json"
    if not path.is_dir() or not config.exists():
        return None
    try:
        architectures = read_json(config).get("architectures") or []
    except AttributeError:  # not an object
        return None
    for architecture in architectures:
        for suffix, task in TASKS.items():
            if str(architecture).endswith(suffix):
                return task
    return None


class HFClassifierHandle(ModelHandle):
    def __init__(self, *, model: Any, task: str, processor: Any, device: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.model = model
        self.task = task
        self.processor = processor
        self.device = device
        self._n_outputs = int(getattr(model.config, "num_labels", 0) or 0) or None
        self.head = next(
            (getattr(model, name) for name in HEADS if isinstance(getattr(model, name, None), torch.nn.Module)), None
        )

    @property
    def n_outputs(self) -> int | None:
        return self._n_outputs

    @torch.inference_mode()
    def classify(self, split: Any, options: InferenceOptions) -> Arrays:
        n = len(split)
        captured: list[torch.Tensor] = []
        hook = None
        if self.head is not None:
            hook = self.head.register_forward_hook(lambda module, args, output: captured.append(args[0]))
        logits, features = [], []

        def forward(start: int, stop: int) -> tuple[torch.Tensor, torch.Tensor]:
            batch = self._inputs(split, start, stop)
            captured.clear()
            output = self.model(**batch, output_hidden_states=self.head is None)
            if captured:
                feature = captured[-1]
                if feature.ndim == 3:  # heads that take the whole sequence: use the first position
                    feature = feature[:, 0]
                feature = feature.reshape(feature.shape[0], -1).float()
            else:
                feature = output.hidden_states[-1].float().mean(dim=1).reshape(stop - start, -1)
            return output.logits.float(), feature

        try:
            backoff = automatic_backoff(self.device, options.batch_size)
            size = options.batch_size or (CUDA_START_BATCH if backoff else DEFAULT_BATCH_SIZE)
            for start, stop, (logit, feature) in run_batches(n, size, forward, backoff=backoff, where=str(self.path)):
                logits.append(logit.cpu().numpy())  # one copy per batch and output
                features.append(feature.cpu().numpy())
                options.advance(stop - start)
        finally:
            if hook is not None:
                hook.remove()
        return {"logits": np.concatenate(logits), "features": np.concatenate(features)}

    def _inputs(self, split: Any, start: int, stop: int) -> dict[str, torch.Tensor]:
        if self.task == "text":
            texts = getattr(split, "texts", None)
            if texts is None:
                raise HarnessError(
                    f"a text classifier needs text, but split {split.name!r} holds arrays", where=str(self.path)
                )
            encoded = self.processor(texts[start:stop], padding=True, truncation=True, return_tensors="pt")
            return {k: v.to(self.device) for k, v in encoded.items()}
        x = getattr(split, "x", None)
        if x is None:
            raise HarnessError(
                f"an image classifier needs images, but split {split.name!r} holds text", where=str(self.path)
            )
        images = x[start:stop]
        config = self.model.config
        if self.processor is not None:
            if images.ndim == 2:
                raise HarnessError("flat inputs cannot go through an image processor", where=str(self.path))
            as_uint8 = [np.clip(np.rint(img * 255), 0, 255).astype(np.uint8) for img in images]
            pixels = self.processor(images=as_uint8, return_tensors="pt")["pixel_values"]
        else:
            channels = int(getattr(config, "num_channels", 3))
            size = getattr(config, "image_size", None)
            if images.ndim == 2:
                side = int(size) if size else round(float(np.sqrt(images.shape[1] / channels)))
                if channels * side * side != images.shape[1]:
                    raise HarnessError(
                        f"flat inputs of width {images.shape[1]} do not fit {channels} x {side} x {side} images",
                        where=str(self.path),
                    )
                pixels = torch.from_numpy(np.ascontiguousarray(images.reshape(-1, channels, side, side)))
            else:
                pixels = torch.from_numpy(np.ascontiguousarray(np.moveaxis(images, -1, 1)))
        return {"pixel_values": pixels.to(self.device, dtype=self.model.dtype)}


class HFClassifierLoader:
    kind = "hf-classifier"
    description = "Hugging Face AutoModelForImageClassification / AutoModelForSequenceClassification folder"
    expects = (
        "config.json with an *ForImageClassification or *ForSequenceClassification architecture, model.safetensors"
    )
    dtypes = DTYPES

    def detect(self, path: Path) -> bool:
        return hf_task(path) is not None

    def load(self, path: Path, options: LoadOptions) -> ModelHandle:
        import transformers

        transformers.utils.logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # Harness shows its own

        task = hf_task(path)
        assert task is not None
        refuse_pickle(path, options.allow_pickle)
        files = weight_files(path)
        if not files:
            raise HarnessError(
                "no weight files in the checkpoint folder", where=str(path), fix="save it with save_pretrained"
            )
        auto = (
            transformers.AutoModelForImageClassification
            if task == "image"
            else transformers.AutoModelForSequenceClassification
        )
        try:
            model = auto.from_pretrained(
                str(path),
                local_files_only=True,
                trust_remote_code=False,
                use_safetensors=not options.allow_pickle,
                dtype=torch_dtype(options.dtype),
            )
        except (OSError, ValueError, RuntimeError) as error:
            raise HarnessError(
                f"transformers cannot load this checkpoint: {str(error).splitlines()[0]}",
                where=str(path),
                fix="check that the weights are complete and match config.json",
            ) from None
        model.eval().to(options.device)
        processor: Any = None
        if task == "text":
            processor = transformers.AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        elif (path / "preprocessor_config.json").exists():
            processor = transformers.AutoImageProcessor.from_pretrained(str(path), local_files_only=True)  # type: ignore[no-untyped-call]
        card = with_model_facts(read_card(path, self.kind), model)
        return HFClassifierHandle(
            model=model,
            task=task,
            processor=processor,
            device=options.device,
            path=path,
            kind=self.kind,
            card=card,
            checkpoint_hash=checkpoint_hash(model_files(path), path),
            capabilities=frozenset({Capability.LOGITS, Capability.FEATURES}),
        )


LOADER = HFClassifierLoader()
