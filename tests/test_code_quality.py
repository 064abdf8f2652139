"""The style agreement, enforced: ruff clean everywhere, mypy --strict clean on harness/."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


@pytest.mark.slow
def test_ruff_is_clean() -> None:
    for args in (["check"], ["format", "--check"]):
        done = subprocess.run(
            [str(BIN / "ruff"), *args, "harness", "tests", "bench", "app"], cwd=ROOT, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.slow
def test_mypy_strict_is_clean() -> None:
    done = subprocess.run([str(BIN / "mypy"), "harness"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
