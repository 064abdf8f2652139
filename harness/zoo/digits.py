"""Digits classifiers: MLPs trained on the in-distribution digit classes 0-5 with different recipes.

Every model is trained on the ID classes only, so each one can run calib, ood and longtail.
- digits-mlp-*: the balanced ID train split (digits-ood); recipes vary width, depth, epochs and label
  smoothing so the calibration and OOD leaderboards have real contrast (an under-trained model, an
  over-trained overconfident one, a smoothed one).
- digits-lt<r>-mlp-*: long-tailed ID train splits (imbalance ratios 10, 50, 100) with plain
  cross-entropy, a class-balanced loss and logit adjustment, so the long-tail leaderboard shows the
  remedies.
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

from harness.models.torch_classifier import FORMAT, WEIGHTS, ClassifierConfig, MLPClassifier
from harness.registry import DATASETS
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
    #: long-tail remedies: "none", "class-balanced" (loss weights ~ 1 / n_c) or "logit-adjusted"
    #: (train on logits + log prior, Menon et al. 2021; the saved model predicts with raw logits)
    long_tail: str = "none"
    seed: int = 0


@dataclass(frozen=True)
class Group:
    """Recipes trained on one dataset suite."""

    suite: str
    params: dict[str, float]
    family: str
    recipes: tuple[Recipe, ...]


GROUPS = (
    Group(
        "digits-ood",
        {},
        "digits-mlp",
        (
            Recipe("digits-mlp-small", (32,), epochs=20),
            Recipe("digits-mlp-wide", (256,), epochs=20),
            Recipe("digits-mlp-deep", (128, 128), epochs=20),
            Recipe("digits-mlp-smooth", (128,), epochs=20, label_smoothing=0.1),
            Recipe("digits-mlp-short", (128,), epochs=2, lr=1e-3),
            Recipe("digits-mlp-long", (256, 256), epochs=150, lr=1e-2),
        ),
    ),
    *(
        Group(
            "digits-lt",
            {"imbalance_ratio": ratio},
            "digits-lt-mlp",
            tuple(
                Recipe(f"digits-lt{ratio}-mlp-{remedy}", (128,), epochs=60, long_tail=remedy)
                for remedy in ("none", "class-balanced", "logit-adjusted")
            ),
        )
        for ratio in (10, 50, 100)
    ),
)


def train_classifier(
    x: np.ndarray, y: np.ndarray, n_classes: int, recipe: Recipe
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
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    weight, offset = None, torch.zeros(n_classes)
    if recipe.long_tail == "class-balanced":
        inverse = 1.0 / np.maximum(counts, 1.0)
        weight = torch.as_tensor(inverse / inverse.mean(), dtype=torch.float32)
    elif recipe.long_tail == "logit-adjusted":
        offset = torch.as_tensor(np.log(np.maximum(counts, 1.0) / counts.sum()), dtype=torch.float32)
    elif recipe.long_tail != "none":
        raise ValueError(f"unknown long-tail remedy {recipe.long_tail!r}")
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
            loss = loss_fn(model(inputs[batch]) + offset, targets[batch])
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
    """Train every digits recipe into out/<name>/; the tiny profile (tests) trains a third of the epochs
    and only the imbalance ratio 100 of the long-tail group."""
    check_profile(profile)
    folders = []
    for group in GROUPS:
        if profile == "tiny" and group.params.get("imbalance_ratio", 100) != 100:
            continue  # the tiny profile (for tests) keeps one long-tail ratio
        suite = DATASETS.get(group.suite)(seed=0, **group.params)
        train = suite.split("train")
        for recipe in group.recipes:
            if profile == "tiny":
                recipe = Recipe(**{**asdict(recipe), "epochs": max(2, recipe.epochs // 3)})
            model, config, loss = train_classifier(train.x, train.y, suite.n_classes, recipe)
            card = ModelCard(
                name=recipe.name,
                org="harness-zoo",
                family=group.family,
                kind="torch-classifier",
                n_parameters=sum(p.numel() for p in model.parameters()),
                recipe={k: list(v) if isinstance(v, tuple) else v for k, v in asdict(recipe).items() if k != "name"},
                train_loss_nats=loss,
                trained_on=suite.name,
                tags=["zoo", suite.name, profile],
                description=f"MLP trained on the train split of {suite.description}",
            )
            folders.append(save_checkpoint(out / recipe.name, classifier_files(model, config), card))
            on_model(recipe.name)
    return folders
