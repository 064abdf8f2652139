"""Shared fixtures. Tests never touch the network: hubs are switched off before anything imports."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ["COLUMNS"] = "200"  # rich tables are not wrapped in captured output

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test session gets its own output cache (never the user's ~/.cache/harness)."""
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture(scope="session")
def tiny_zoo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The digits zoo in its tiny profile (a few seconds), built once per session."""
    from harness.zoo.digits import build

    folder = tmp_path_factory.mktemp("zoo")
    build(folder, profile="tiny")
    return folder


@pytest.fixture(scope="session")
def lm_zoo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The LM zoo in its tiny profile (well under a minute on two cores), built once per session."""
    from harness.zoo.lm import build

    folder = tmp_path_factory.mktemp("lm-zoo")
    build(folder, profile="tiny")
    return folder


@pytest.fixture(scope="session")
def hostile_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The hostile submissions of tests/hostile_corpus.py, written once per test session."""
    from hostile_corpus import write_corpus

    root = tmp_path_factory.mktemp("hostile")
    write_corpus(root)
    return root
