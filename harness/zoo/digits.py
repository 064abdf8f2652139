"""Digits classifiers: MLPs trained on the built-in digits suite with different recipes.

Recipes vary width, depth, epochs, label smoothing and weight decay so the leaderboard has real
contrast (an under-trained model, an over-trained overconfident one, a smoothed one ...).
Training is seeded minibatch Adam on the train split, a few seconds per model on a CPU.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save

from harness.data.digits import digits_suite
from harness.models.torch_classifier import FORMAT, WEIGHTS, ClassifierConfig, MLPClassifier
from harness.schema import ModelCard
from harness.zoo import check_profile, save_checkpoint


@dataclass(frozen=True)
class Recipe:
    name: str
    hidden_dims: tuple[int, ...]
    epochs: int
    lr: float = 3e-3
    batch_size: int = 64
    label_smoothing: float = 0.0
    weight_decay: float = 0.0
    dropout: float = 0.0
    seed: int = 0


RECIPES = (
    Recipe("digits-mlp-small", (32,), epochs=20),
    Recipe("digits-mlp-wide", (256,), epochs=20),
    Recipe("digits-mlp-deep", (128, 128), epochs=20),
    Recipe("digits-mlp-smooth", (128,), epochs=20, label_smoothing=0.1),
    Recipe("digits-mlp-short", (128,), epochs=2, lr=1e-3),
    Recipe("digits-mlp-long", (256, 256), epochs=150, lr=1e-2),
)


def train_classifier(
    x: np.ndarray, y: np.ndarray, n_classes: int, recipe: Recipe, class_weights: np.ndarray | None = None
) -> tuple[MLPClassifier, ClassifierConfig, float]:
    """Train an MLP by minibatch Adam; returns the model, its config and the final epoch's mean loss."""
    torch.manual_seed(recipe.seed)
    config = ClassifierConfig(
        input_dim=int(np.prod(x.shape[1:])),
        hidden_dims=list(recipe.hidden_dims),
        n_classes=n_classes,
        dropout=recipe.dropout,
    )
    model = MLPClassifier(config)
    optimizer = torch.optim.Adam(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    weight = torch.as_tensor(class_weights, dtype=torch.float32) if class_weights is not None else None
    loss_fn = torch.nn.CrossEntropyLoss(weight=weight, label_smoothing=recipe.label_smoothing)
    inputs, targets = torch.as_tensor(x), torch.as_tensor(y)
    generator = torch.Generator().manual_seed(recipe.seed)
    epoch_loss = float("nan")
    model.train()
    for _ in range(recipe.epochs):
        order = torch.randperm(len(targets), generator=generator)
        total, count = 0.0, 0
        for start in range(0, len(order), recipe.batch_size):
            batch = order[start : start + recipe.batch_size]
            optimizer.zero_grad()
            loss = loss_fn(model(inputs[batch]), targets[batch])
            loss.backward()
            optimizer.step()
            total += loss.item() * len(batch)
            count += len(batch)
        epoch_loss = total / count
    model.eval()
    return model, config, epoch_loss


def classifier_files(model: MLPClassifier, config: ClassifierConfig) -> dict[str, bytes]:
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    return {
        WEIGHTS: save(state, metadata={"format": FORMAT}),
        "config.json": (json.dumps(config.model_dump(), indent=2) + "\n").encode(),
    }


def build(out: Path, profile: str = "full", on_model: Callable[[str], None] = lambda name: None) -> list[Path]:
    """Train every digits recipe (fewer epochs in the tiny profile) into out/<name>/."""
    check_profile(profile)
    suite = digits_suite(seed=0)
    train = suite.split("train")
    folders = []
    for recipe in RECIPES:
        if profile == "tiny":
            recipe = Recipe(**{**asdict(recipe), "epochs": max(2, recipe.epochs // 3)})
        model, config, loss = train_classifier(train.x, train.y, suite.n_classes, recipe)
        card = ModelCard(
            name=recipe.name,
            org="harness-zoo",
            family="digits-mlp",
            kind="torch-classifier",
            n_parameters=sum(p.numel() for p in model.parameters()),
            recipe={k: list(v) if isinstance(v, tuple) else v for k, v in asdict(recipe).items() if k != "name"},
            train_loss_nats=loss,
            trained_on="digits",
            tags=["zoo", "digits", profile],
            description=f"MLP trained on the digits train split ({suite.description})",
        )
        folders.append(save_checkpoint(out / recipe.name, classifier_files(model, config), card))
        on_model(recipe.name)
    return folders
