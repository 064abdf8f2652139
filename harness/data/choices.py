"""Multiple-choice splits: a language model "classifies" an item by the log-likelihood of each choice.

`ChoiceSplit` holds contexts, choices and the index of the correct choice (`y`), so the calibration
adapter can score a language model exactly as it scores a classifier: the logits of an item are
its choices' summed log-likelihoods (ECE over the softmax across choices).

Suite `synthlang-mc` (built from the synthetic language, see harness/data/language.py):
- `calib`: the first `calib_fraction` of the multiple-choice items (for temperature scaling);
- `test`: the rest of them;
- `blimp`: the minimal pairs as two-choice items (empty context; choices good, bad; label 0).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from harness.data import checked_positions, named_split
from harness.data.language import ChoiceItem, MinimalPair, language_suite
from harness.errors import HarnessError


@dataclass(frozen=True)
class ChoiceSplit:
    name: str
    contexts: list[str]
    choices: list[list[str]]
    y: NDArray[np.int64]
    ids: list[str]
    fingerprint: str = field(init=False)

    def __post_init__(self) -> None:
        n = len(self.ids)
        if not (len(self.contexts) == len(self.choices) == self.y.shape[0] == n):
            raise HarnessError(
                f"choice split {self.name!r} has fields of different lengths", where=f"split {self.name}"
            )
        if len(set(self.ids)) != n:
            raise HarnessError(f"choice split {self.name!r} has duplicate ids", where=f"split {self.name}")
        if any(not 0 <= label < len(c) for label, c in zip(self.y.tolist(), self.choices, strict=True)):
            raise HarnessError(
                f"choice split {self.name!r} has a label outside its choices", where=f"split {self.name}"
            )
        payload = json.dumps([self.name, self.contexts, self.choices, self.y.tolist(), self.ids], separators=(",", ":"))
        object.__setattr__(self, "fingerprint", hashlib.sha256(payload.encode()).hexdigest())

    def __len__(self) -> int:
        return len(self.ids)

    def head(self, n: int) -> ChoiceSplit:
        return ChoiceSplit(self.name, self.contexts[:n], self.choices[:n], self.y[:n], self.ids[:n])

    def take(self, indices: Sequence[int]) -> ChoiceSplit:
        """The items at `indices`, in that order (contexts, choices, labels and ids together)."""
        rows = checked_positions(indices, len(self), self.name)
        return ChoiceSplit(
            self.name,
            [self.contexts[i] for i in rows],
            [self.choices[i] for i in rows],
            self.y[np.asarray(rows, dtype=np.intp)],
            [self.ids[i] for i in rows],
        )


def choice_split(name: str, records: Sequence[ChoiceItem | MinimalPair]) -> ChoiceSplit:
    """Multiple-choice items as they are; minimal pairs as (empty context; good, bad; label 0)."""
    contexts, choices, labels = [], [], []
    for record in records:
        if isinstance(record, MinimalPair):
            contexts.append("")
            choices.append([record.good, record.bad])
            labels.append(0)
        else:
            contexts.append(record.context)
            choices.append(list(record.choices))
            labels.append(record.label)
    return ChoiceSplit(name, contexts, choices, np.asarray(labels, dtype=np.int64), [r.id for r in records])


@dataclass(frozen=True)
class ChoiceSuite:
    name: str
    splits: dict[str, ChoiceSplit]
    description: str

    def split(self, name: str) -> ChoiceSplit:
        return named_split(self.name, self.splits, name)


def synthlang_choice_suite(seed: int = 0, calib_fraction: float = 0.4) -> ChoiceSuite:
    """The synthetic language's multiple-choice items split into calib/test, and its minimal pairs."""
    language = language_suite(seed=seed)
    items = list(language.multiple_choice)
    cut = round(len(items) * calib_fraction)
    return ChoiceSuite(
        name="synthlang-mc",
        splits={
            "calib": choice_split("calib", items[:cut]),
            "test": choice_split("test", items[cut:]),
            "blimp": choice_split("blimp", list(language.minimal_pairs)),
        },
        description=f"synthetic-language multiple choice (calib {cut}, test {len(items) - cut}) and minimal pairs, seed {seed}",
    )
