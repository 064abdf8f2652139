from __future__ import annotations

import subprocess
import sys

import pytest

from harness.errors import HarnessError
from harness.registry import DATASETS, INFERENCE, METRICS, MODEL_LOADERS, TASK_ADAPTERS, Registry


def test_add_get_and_order() -> None:
    registry: Registry[int] = Registry("thing")
    registry.add("b", 2)
    registry.add("a", 1)
    assert registry.get("a") == 1
    assert registry.names() == ["b", "a"]  # registration order
    assert "a" in registry and "c" not in registry
    assert len(registry) == 2


def test_duplicate_name_is_refused() -> None:
    registry: Registry[int] = Registry("thing")
    registry.add("a", 1)
    with pytest.raises(ValueError, match="already registered"):
        registry.add("a", 2)
    registry.add("a", 3, replace=True)
    assert registry.get("a") == 3


def test_unknown_name_suggests_close_names() -> None:
    registry: Registry[int] = Registry("task")
    for name in ("calib", "ood", "longtail"):
        registry.add(name, 0)
    with pytest.raises(HarnessError) as error:
        registry.get("calb")
    assert "unknown task 'calb'" in str(error.value)
    assert "did you mean 'calib'" in str(error.value)
    with pytest.raises(HarnessError, match="known tasks: calib, ood, longtail"):
        registry.get("zzzzzz")


def test_lazy_entries_import_on_first_use() -> None:
    registry: Registry[object] = Registry("thing")
    registry.add("dumps", "json:dumps")
    import json

    assert registry.get("dumps") is json.dumps
    with pytest.raises(ValueError, match="module:attribute"):
        registry.add("bad", "no_colon_here")


def test_listing_tasks_and_kinds_does_not_import_torch() -> None:
    # Lazy entries keep `harness tasks` and `harness models` fast: no torch import to list names.
    code = (
        "import sys; from harness.tasks import load_specs; from harness.registry import MODEL_LOADERS; "
        "load_specs(); MODEL_LOADERS.names(); assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("registry", [TASK_ADAPTERS, MODEL_LOADERS, INFERENCE, DATASETS, METRICS])
def test_every_builtin_entry_resolves(registry: Registry[object]) -> None:
    for name in registry.names():
        assert registry.get(name) is not None
