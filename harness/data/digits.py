"""The built-in offline digits suite (scikit-learn's load_digits, 1,797 8x8 images, 10 classes).

Splits are fixed by a seed: a stratified 60 / 15 / 25 split into `train` (for the zoo and for
feature statistics), `calib` (held out for temperature scaling) and `test` (evaluation).
Pixels are scaled to [0, 1]. Nothing is downloaded: the data ships inside scikit-learn.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from harness.data.arrays import ArraySplit
from harness.errors import HarnessError

SPLITS = ("train", "calib", "test")


@dataclass(frozen=True)
class ClassificationSuite:
    name: str
    n_classes: int
    splits: dict[str, ArraySplit]
    description: str

    def split(self, name: str) -> ArraySplit:
        if name not in self.splits:
            raise HarnessError(
                f"dataset {self.name!r} has no split {name!r}",
                fix="known splits: " + ", ".join(self.splits),
            )
        return self.splits[name]

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
