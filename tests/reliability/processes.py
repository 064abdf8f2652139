"""Starting real `harness` processes for the reliability tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HARNESS = str(Path(sys.executable).with_name("harness"))


def harness_env(cache: Path) -> dict[str, str]:
    return {
        **os.environ,
        "HARNESS_CACHE_DIR": str(cache),
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "COLUMNS": "200",
    }


def start(args: list[str], cache: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [HARNESS, *args], env=harness_env(cache), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
