"""Provenance of a run: harness version, git commit, package versions, hardware, time."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from harness import __version__
from harness.schema import Provenance, Scalar

PACKAGES = ("torch", "numpy", "scipy", "scikit-learn", "safetensors", "transformers", "duckdb", "pydantic")


def git_commit() -> str | None:
    """The commit of the Harness checkout, when it runs from one (None for installed wheels)."""
    repo = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def package_versions() -> dict[str, str]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def hardware(device: str) -> dict[str, Scalar]:
    info: dict[str, Scalar] = {
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "device": device,
    }
    if device.startswith("cuda"):
        import torch

        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def collect(device: str, duration_s: float, command: str) -> Provenance:
    return Provenance(
        harness_version=__version__,
        git_commit=git_commit(),
        packages=package_versions(),
        python=sys.version.split()[0],
        platform=platform.platform(),
        hardware=hardware(device),
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        duration_s=duration_s,
        command=command,
    )
