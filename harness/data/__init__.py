"""Dataset sources: built-in offline suites, local folders and files, HF datasets, the catalog's hub
datasets (resolved offline-first: harness/data/mirror.py, harness/data/catalog.py).

A source resolves to a suite object whose `split(name)` returns a split carrying a
`fingerprint` (sha256 over its content), the key the runner caches per-sample outputs by.
`head(n)` keeps a split's first n samples (--limit) and `take(indices)` the samples at the given
positions (a random subset, see `harness verify`), each with its ids and labels; `take(range(n))`
has the fingerprint of `head(n)`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, TypeVar

from harness.errors import HarnessError
from harness.registry import DATASETS
from harness.schema import DatasetSource


class Split(Protocol):
    name: str
    fingerprint: str

    def __len__(self) -> int: ...

    def head(self, n: int) -> Split: ...

    def take(self, indices: Sequence[int]) -> Split: ...


class Suite(Protocol):
    name: str

    def split(self, name: str) -> Split: ...


SplitT = TypeVar("SplitT")


def named_split(dataset: str, splits: Mapping[str, SplitT], name: str) -> SplitT:
    """`splits[name]`, or an error that names the dataset and lists its splits (every suite's `split`)."""
    if name not in splits:
        raise HarnessError(f"dataset {dataset!r} has no split {name!r}", fix="known splits: " + ", ".join(splits))
    return splits[name]


def has_split(suite: Any, name: str) -> bool:
    """Whether `suite` has a split called `name` (an optional split a task reads when it is there)."""
    splits = getattr(suite, "splits", None)
    if isinstance(splits, Mapping):
        return name in splits
    try:
        suite.split(name)
    except HarnessError:
        return False
    return True


def checked_positions(indices: Sequence[int], size: int, split: str) -> list[int]:
    """`indices` as ints, each in [0, size) and none repeated: the positions a split's `take` reads."""
    positions = [int(i) for i in indices]
    outside = [i for i in positions if not 0 <= i < size]
    if outside:
        raise HarnessError(
            f"sample positions {outside[:5]} are outside split {split!r} of {size} samples",
            where=f"split {split}",
            fix="positions count from 0 and must be smaller than the split's length",
        )
    if len(set(positions)) != len(positions):
        raise HarnessError(f"a subset of split {split!r} repeats sample positions", where=f"split {split}")
    return positions


def load_suite(source: DatasetSource) -> Any:
    """Resolve a task's dataset source to its suite object (cached per process)."""
    key = (
        source.kind,
        source.name,
        source.path,
        source.revision,
        tuple(sorted((k, str(v)) for k, v in source.params.items())),
        _hub_key(source),
    )
    if key not in _SUITES:
        if source.kind == "builtin":
            _SUITES[key] = DATASETS.get(source.name)(**source.params)
        elif source.kind == "local":
            from harness.data.local import local_suite

            _SUITES[key] = local_suite(str(source.path), source.name, source.params)
        elif source.kind == "hf":
            from harness.data.hf import hf_suite

            _SUITES[key] = hf_suite(source)
        elif source.kind == "beir":
            from harness.data.retrieval import beir_suite

            _SUITES[key] = beir_suite(source)
        elif source.kind == "hub":
            from harness.data.catalog import hub_suite

            _SUITES[key] = hub_suite(source)
        else:
            from harness.data.retrieval import mteb_suite

            _SUITES[key] = mteb_suite(source)
    return _SUITES[key]


def _hub_key(source: DatasetSource) -> str:
    """What else identifies a catalog source's suite: its splits and preprocessing, and the data mirror."""
    if source.kind != "hub":
        return ""
    from harness.data.mirror import data_dir
    from harness.schema import canonical_hash

    return canonical_hash([source.model_dump(mode="json"), str(data_dir())])


def get_split(suite: Any, name: str, limit: int | None = None) -> Any:
    """A split of `suite`, cut to its first `limit` samples; an empty split is an error."""
    split = suite.split(name)
    if limit is not None:
        split = split.head(limit)
    if len(split) == 0:
        raise HarnessError(
            f"split {name!r} of dataset {suite.name!r} is empty",
            where=f"dataset {suite.name}",
            fix="check the dataset source and --limit (it must be at least 1)",
        )
    return split


_SUITES: dict[tuple[Any, ...], Any] = {}


def clear_suites() -> None:
    """Forget the suites loaded in this process (benchmarks that time cold starts call this)."""
    _SUITES.clear()
