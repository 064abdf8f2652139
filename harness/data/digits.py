"""The built-in offline digits suites (scikit-learn's load_digits, 1,797 8x8 images, 10 classes).

`digits`: splits fixed by a seed, a stratified 60 / 15 / 25 split into `train` (for the zoo and
for feature statistics), `calib` (held out for temperature scaling) and `test` (evaluation).
Pixels are scaled to [0, 1]. Nothing is downloaded: the data ships inside scikit-learn.

`digits-ood`: in-distribution = digit classes 0-5 (train/calib/test restricted to them);
near-OOD = the test images of the held-out classes 6-9; far-OOD = uniform noise, structured
patterns (stripes, checkerboards, gradients, blocks) and pixel-permuted ID test digits.
OOD splits carry label -1.

`digits-lt`: the in-distribution train split of digits-ood cut to a long tail,
n_c = max(1, floor(n_0 * r^(-c / 5))) training images for class c (class 0 is the head, class 5 the
tail), r = `imbalance_ratio`; calib and test are digits-ood's balanced ID splits.

The zoo trains every classifier on the ID classes 0-5 (digits-ood or digits-lt), so one model can
run calib, ood and longtail, and those tasks share the forward pass on the ID test split.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from harness.data import named_split
from harness.data.arrays import ArraySplit
from harness.errors import HarnessError

SPLITS = ("train", "calib", "test")


@dataclass(frozen=True)
class ClassificationSuite:
    """Labelled splits of one classification problem.

    `ood_groups` maps each OOD split name to "near" or "far" (empty for suites without OOD data).
    `class_names`: the label space, one name per class in label order (empty: classes are indices only;
    a model then fits by its number of outputs, harness/labels.py).
    """

    name: str
    n_classes: int
    splits: dict[str, Any]  # ArraySplit, or TextSplit for text datasets
    description: str
    ood_groups: dict[str, str] = field(default_factory=dict)
    class_names: tuple[str, ...] = ()

    def train_counts(self) -> np.ndarray:
        """Training samples per class (the long-tail shot groups are defined by these)."""
        return np.bincount(self.split("train").y, minlength=self.n_classes)

    def split(self, name: str) -> Any:
        return named_split(self.name, self.splits, name)

    @property
    def input_dim(self) -> int:
        return int(np.prod(self.splits["train"].x.shape[1:]))


def digits_suite(seed: int = 0) -> ClassificationSuite:
    """Stratified train/calib/test splits of the digits data, fixed by `seed`."""
    data = load_digits()
    x = (data.data / 16.0).astype(np.float32)
    y = data.target.astype(np.int64)
    index = np.arange(len(y))
    train, rest = train_test_split(index, train_size=0.60, stratify=y, random_state=seed)
    calib, test = train_test_split(rest, train_size=0.375, stratify=y[rest], random_state=seed)
    splits = {
        name: ArraySplit(name, x[rows], y[rows], [f"digits-{i}" for i in rows])
        for name, rows in (("train", np.sort(train)), ("calib", np.sort(calib)), ("test", np.sort(test)))
    }
    return ClassificationSuite(
        name="digits",
        n_classes=10,
        splits=splits,
        description=f"scikit-learn digits, stratified 60/15/25 split, seed {seed}",
    )


ID_CLASSES = (0, 1, 2, 3, 4, 5)
OOD_SET_SIZE = 300


def _subset(split: ArraySplit, rows: np.ndarray, name: str | None = None) -> ArraySplit:
    return ArraySplit(name or split.name, split.x[rows], split.y[rows], [split.ids[i] for i in rows])


def _patterns(rng: np.random.Generator, n: int) -> np.ndarray:
    """Structured 8x8 images: stripes, checkerboards, gradients and bright blocks, in [0, 1]."""
    row, col = np.mgrid[0:8, 0:8]
    images = np.empty((n, 8, 8), dtype=np.float32)
    for i in range(n):
        kind = i % 4
        period = int(rng.integers(1, 4))
        if kind == 0:  # stripes, horizontal or vertical
            axis = row if rng.random() < 0.5 else col
            image = ((axis // period) % 2).astype(np.float32)
        elif kind == 1:  # checkerboard
            image = (((row // period) + (col // period)) % 2).astype(np.float32)
        elif kind == 2:  # linear gradient in a random direction
            angle = rng.uniform(0, 2 * np.pi)
            image = np.cos(angle) * row + np.sin(angle) * col
            image = (image - image.min()) / (image.max() - image.min())
        else:  # one bright rectangle
            r0, c0 = rng.integers(0, 6, size=2)
            h, w = rng.integers(2, 5, size=2)
            image = np.zeros((8, 8))
            image[r0 : r0 + h, c0 : c0 + w] = 1.0
        images[i] = np.round(image * 16) / 16  # the same 17 grey levels as the digits
    return images.reshape(n, 64)


def digits_ood_suite(seed: int = 0) -> ClassificationSuite:
    """ID = digit classes 0-5; near-OOD = test digits 6-9; far-OOD = noise, patterns, permuted digits."""
    base = digits_suite(seed)
    rng = np.random.default_rng(seed + 1)
    splits = {}
    for name in SPLITS:
        split = base.split(name)
        splits[name] = _subset(split, np.flatnonzero(np.isin(split.y, ID_CLASSES)))
    test = base.split("test")
    near = _subset(test, np.flatnonzero(~np.isin(test.y, ID_CLASSES)), "near")
    splits["near"] = ArraySplit("near", near.x, np.full(len(near), -1, np.int64), near.ids)
    noise = (np.round(rng.random((OOD_SET_SIZE, 64)) * 16) / 16).astype(np.float32)
    splits["noise"] = ArraySplit(
        "noise", noise, np.full(OOD_SET_SIZE, -1, np.int64), [f"noise-{i}" for i in range(OOD_SET_SIZE)]
    )
    patterns = _patterns(rng, OOD_SET_SIZE)
    splits["patterns"] = ArraySplit(
        "patterns", patterns, np.full(OOD_SET_SIZE, -1, np.int64), [f"pattern-{i}" for i in range(OOD_SET_SIZE)]
    )
    id_test = splits["test"]
    permutation = rng.permutation(64)
    rows = rng.choice(len(id_test), size=min(OOD_SET_SIZE, len(id_test)), replace=False)
    permuted = id_test.x[np.sort(rows)][:, permutation]
    splits["permuted"] = ArraySplit(
        "permuted", permuted, np.full(len(rows), -1, np.int64), [f"permuted-{id_test.ids[i]}" for i in np.sort(rows)]
    )
    return ClassificationSuite(
        name="digits-ood",
        n_classes=len(ID_CLASSES),
        splits=splits,
        description=f"digits classes 0-5 in distribution; near-OOD digits 6-9; far-OOD noise, patterns, permuted (seed {seed})",
        ood_groups={"near": "near", "noise": "far", "patterns": "far", "permuted": "far"},
    )


def long_tail_counts(head: int, n_classes: int, imbalance_ratio: float) -> np.ndarray:
    """n_c = max(1, floor(head * r^(-c / (C - 1)))): class 0 keeps `head` samples, the last head / r."""
    if imbalance_ratio < 1:
        raise HarnessError(f"imbalance_ratio must be >= 1, got {imbalance_ratio}", fix="use e.g. 10, 50 or 100")
    exponents = np.arange(n_classes) / max(n_classes - 1, 1)
    return np.maximum(1, np.floor(head * imbalance_ratio ** (-exponents))).astype(np.int64)


def digits_lt_suite(seed: int = 0, imbalance_ratio: float = 100) -> ClassificationSuite:
    """The in-distribution train split of `digits-ood` (classes 0-5) cut to a long tail (class 0 is the
    head, class 5 the tail); calib and test are digits-ood's balanced ID splits (same fingerprints, so
    a model's forward pass on them is shared with the calib and ood tasks)."""
    base = digits_ood_suite(seed)
    train = base.split("train")
    rng = np.random.default_rng(seed + 2)
    head = int(np.bincount(train.y).min())
    counts = long_tail_counts(head, base.n_classes, imbalance_ratio)
    keep = np.sort(np.concatenate([rng.permutation(np.flatnonzero(train.y == c))[:n] for c, n in enumerate(counts)]))
    ratio = f"{imbalance_ratio:g}"
    return ClassificationSuite(
        name=f"digits-lt{ratio}",
        n_classes=base.n_classes,
        splits={"train": _subset(train, keep), "calib": base.split("calib"), "test": base.split("test")},
        description=f"digits classes 0-5 with a long-tailed train split, imbalance ratio {ratio} (seed {seed})",
    )
