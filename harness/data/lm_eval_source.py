"""lm-evaluation-harness tasks as dataset splits: the split named X is lm-eval's task X.

- Suite `lm-eval` (param `include_path`: an optional folder of extra task YAMLs): any task lm-eval
  knows. Its data must be available offline (lm-eval's own datasets are read from the HF cache when
  HF_DATASETS_OFFLINE=1; tasks with local data files work anywhere).
- Suite `synthlang-lm-eval`: the synthetic language's downstream tasks (synth_blimp, synth_mc,
  synth_heldout, see harness/data/lm_eval_tasks.py), written once into the output cache folder
  under a name derived from the data's fingerprint.

A split's fingerprint covers the task name, the task's documents by content (every split lm-eval
loaded for it, wherever its data files live and whatever their format, and the evaluated documents
after the task's own processing), the YAML and code files of its include folder, the lm-eval version
and the sample limit (`head`, lm-eval's `limit`) or subset (`take`, lm-eval's `samples`): cached
per-sample results are reused only for the same task on the same data.
Building the task to read its documents also checks, before any model runs, that it exists and its
data is available.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from harness.cache import default_cache_dir
from harness.data import checked_positions
from harness.errors import HarnessError


def _folder_digest(folder: str | None) -> str:
    """sha256 over the task definitions of an include folder (YAML and the Python they reference)."""
    if folder is None:
        return ""
    digest = hashlib.sha256()
    for file in sorted(Path(folder).rglob("*")):
        if file.is_file() and file.suffix in (".yaml", ".yml", ".py"):
            digest.update(file.relative_to(folder).as_posix().encode() + b"\x00" + file.read_bytes())
    return digest.hexdigest()


def _hash_documents(digest: Any, documents: Any) -> int:
    count = 0
    for document in documents:
        digest.update(json.dumps(document, sort_keys=True, default=repr).encode() + b"\n")
        count += 1
    return count


def documents_digest(name: str, include_path: str | None) -> tuple[str, int]:
    """sha256 over the documents of lm-eval task `name`: every split of the data lm-eval loaded for it
    and the evaluated documents after its processing, by content; and the number of evaluated documents
    (0 for a group of several tasks). Loads the task (its data must be available offline); an unknown
    task or missing data is a HarnessError naming the task."""
    try:
        with _quiet():
            tasks = sorted(manager_for(name, include_path).load([name])["tasks"].items())  # leaf tasks of groups too
    except Exception as error:  # lm-eval raises many types for a missing task or missing data
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise HarnessError(
            f"lm-evaluation-harness cannot load task {name!r}: {first}",
            fix="check the task name (`lm_eval --tasks list`) and that its data is available offline",
        ) from None
    digest = hashlib.sha256()
    evaluated = 0
    for task_name, task in tasks:
        digest.update(f"task {task_name}\n".encode())
        dataset: Any = getattr(task, "dataset", None)
        for split in sorted(dataset.keys()) if hasattr(dataset, "keys") else []:
            digest.update(f"split {split}\n".encode())
            _hash_documents(digest, dataset[split])
        digest.update(b"evaluated\n")
        evaluated = _hash_documents(digest, task.eval_docs)
        if evaluated == 0:
            raise HarnessError(f"lm-evaluation-harness task {task_name!r} has no documents to evaluate")
    return digest.hexdigest(), evaluated if len(tasks) == 1 else 0


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    import logging

    logger = logging.getLogger("lm_eval")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


#: (digest, number of documents) read in the current `one_reading_per_command` block (None outside one)
_COMMAND_DIGESTS: dict[tuple[str, str | None], tuple[str, int]] | None = None


@contextlib.contextmanager
def one_reading_per_command() -> Iterator[None]:
    """Within this block (one command: the checks before any model loads, then the run), each lm-eval
    task's documents are read and hashed once, the data being taken as fixed for the command. Outside
    it, every fingerprint reads them again, so a long-lived process never reuses a stale digest."""
    global _COMMAND_DIGESTS
    outer = _COMMAND_DIGESTS
    _COMMAND_DIGESTS = {} if outer is None else outer
    try:
        yield
    finally:
        _COMMAND_DIGESTS = outer


def _content_digest(name: str, include_path: str | None) -> tuple[str, int]:
    if _COMMAND_DIGESTS is not None and (name, include_path) in _COMMAND_DIGESTS:
        return _COMMAND_DIGESTS[(name, include_path)]
    documents, n_docs = documents_digest(name, include_path)
    digest = hashlib.sha256(f"{_folder_digest(include_path)}|{documents}".encode()).hexdigest()
    if _COMMAND_DIGESTS is not None:
        _COMMAND_DIGESTS[(name, include_path)] = (digest, n_docs)
    return digest, n_docs


@dataclass(frozen=True)
class LMEvalTask:
    """One lm-eval task; `limit` caps the number of documents (lm-eval's --limit), `samples` selects
    documents by position (lm-eval's `samples`; the two exclude each other)."""

    name: str
    include_path: str | None
    n_docs: int = 0  # known for the built-in synthetic tasks, counted when the task is loaded; 0 when unknown
    limit: int | None = None
    #: what the task's data and config are, independent of where they were written; default (computed
    #: on creation): a digest of the include folder's task files and of the task's documents
    content: str = ""
    #: positions of the evaluated documents (ascending) in lm-eval's order of the task's documents
    samples: tuple[int, ...] | None = None
    fingerprint: str = field(init=False)

    def __post_init__(self) -> None:
        version = metadata.version("lm_eval")
        if self.limit is not None and self.samples is not None:
            raise HarnessError(f"lm-eval task {self.name!r}: a limit and a subset of samples exclude each other")
        if not self.content:  # computed once: copies (e.g. `head`) do not load the task again
            content, n_docs = _content_digest(self.name, self.include_path)
            object.__setattr__(self, "content", content)
            if not self.n_docs:
                object.__setattr__(self, "n_docs", n_docs)
        content = self.content
        payload = f"{self.name}|{content}|lm_eval {version}|limit {self.limit}"
        if self.samples is not None:
            payload += "|samples " + ",".join(str(i) for i in self.samples)
        object.__setattr__(self, "fingerprint", hashlib.sha256(payload.encode()).hexdigest())

    def __len__(self) -> int:
        if self.samples is not None:
            return len(self.samples)
        if self.limit is not None:
            return self.limit if not self.n_docs else min(self.limit, self.n_docs)
        return self.n_docs or 1

    def head(self, n: int) -> LMEvalTask:
        if self.samples is not None:
            return self.take(range(min(n, len(self))))
        return LMEvalTask(self.name, self.include_path, self.n_docs, n, self.content)

    def take(self, indices: Sequence[int]) -> LMEvalTask:
        """The documents at `indices` (positions in this task's documents), evaluated in lm-eval's order
        (ascending positions, whatever the order of `indices`). The first k positions are `head(k)`."""
        if not self.n_docs and self.limit is None and self.samples is None:
            raise HarnessError(
                f"lm-eval task {self.name!r} has no known number of documents (a group of tasks?): "
                "a subset of them cannot be chosen",
                fix="run its tasks one by one",
            )
        positions = sorted(checked_positions(indices, len(self), self.name))
        if self.samples is not None:
            positions = [self.samples[i] for i in positions]
        elif positions == list(range(len(positions))):
            return self.head(len(positions))
        return LMEvalTask(self.name, self.include_path, self.n_docs, None, self.content, tuple(positions))


@dataclass(frozen=True)
class LMEvalSuite:
    name: str
    include_path: str | None
    known: dict[str, int]  # task name -> number of documents, for suites that know their tasks
    description: str
    content: str = ""  # see LMEvalTask.content

    def split(self, name: str) -> LMEvalTask:
        if self.known and name not in self.known:
            raise HarnessError(f"dataset {self.name!r} has no task {name!r}", fix="known: " + ", ".join(self.known))
        return LMEvalTask(name, self.include_path, self.known.get(name, 0), content=self.content)


def lm_eval_suite(include_path: str | None = None) -> LMEvalSuite:
    if include_path is not None and not Path(include_path).is_dir():
        raise HarnessError("lm-eval include_path is not a folder", where=include_path)
    return LMEvalSuite("lm-eval", include_path, {}, "tasks known to lm-evaluation-harness")


def synthlang_lm_eval_suite(seed: int = 0) -> LMEvalSuite:
    from harness.data.language import language_suite, language_summary
    from harness.data.lm_eval_tasks import write_lm_eval_tasks

    # The summary (fingerprints and sizes) spares holding the whole suite in memory once it is stored.
    fingerprints, sizes = language_summary(seed=seed)
    digest = hashlib.sha256("|".join(sorted(fingerprints.values())).encode()).hexdigest()
    folder = default_cache_dir() / "lm_eval_tasks" / f"synthlang-{seed}-{digest[:16]}"
    if not (folder / "synth_heldout.yaml").exists():
        write_lm_eval_tasks(folder, language_suite(seed=seed))
    known = {
        "synth_blimp": sizes["minimal_pairs"],
        "synth_mc": sizes["multiple_choice"],
        "synth_heldout": sizes["heldout"],
    }
    # The YAML files hold absolute data paths; the content is the language's data, wherever it was written.
    content = hashlib.sha256(f"synthlang-lm-eval v1|{digest}".encode()).hexdigest()
    return LMEvalSuite(
        "synthlang-lm-eval", str(folder), known, f"the synthetic language's lm-eval tasks, seed {seed}", content
    )


@functools.lru_cache(maxsize=8)
def task_manager(include_path: str | None = None, *, defaults: bool = True) -> Any:
    """lm-eval's TaskManager for `include_path`, built once per process (indexing the ~15k task YAML
    files lm-eval ships takes seconds and tens of MiB); `defaults=False` indexes the include folder alone."""
    import logging

    from lm_eval.tasks import TaskManager

    logging.getLogger("lm_eval").setLevel(logging.ERROR)
    return TaskManager(include_path=include_path, include_defaults=defaults)


def manager_for(task: str, include_path: str | None) -> Any:
    """The smallest TaskManager that can load `task`: the include folder's own index when the task is a
    plain task defined there (lm-eval's own files are then never read), else one with lm-eval's tasks
    too (a group or tag may name them)."""
    if include_path is not None:
        own = task_manager(include_path, defaults=False)
        if task in own.all_subtasks:
            return own
    return task_manager(include_path)


def task_config(manager: Any, task: str) -> dict[str, Any]:
    """The config of `task` as lm-eval indexed it (its `include:` files merged), or {} if unknown."""
    getter = getattr(manager, "_get_config", None)  # lm-eval before the task index of 0.4.10
    if getter is not None:
        return dict(getter(task))
    entry = manager.task_index.get(task)
    return dict(entry.cfg or {}) if entry is not None else {}
