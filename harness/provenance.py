"""Provenance of a run: harness version, git commit, package versions, the lock, hardware, time."""

from __future__ import annotations

import functools
import hashlib
import os
import platform
import re
import subprocess
import sys
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from harness import __version__
from harness.schema import LockedEnvironment, Provenance, Scalar

#: packages whose versions every submission lists (the whole environment is checked against the lock)
PACKAGES = (
    "torch", "numpy", "scipy", "scikit-learn", "safetensors", "transformers", "tokenizers", "datasets",
    "lm-eval", "sentence-transformers", "mteb", "pyarrow", "duckdb", "pydantic",
)  # fmt: skip
#: the lock file of a source checkout (`make lock` writes it; `make venv` installs exactly it)
LOCK_FILE = Path(__file__).resolve().parent.parent / "requirements.lock"
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;#]+)")


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


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def locked_versions(lock: Path) -> dict[str, str]:
    """{canonical package name: version} of every `name==version` line of a pip-compile lock file."""
    pins = {}
    for line in lock.read_text(encoding="utf-8").splitlines():
        match = _PIN.match(line.strip())
        if match:
            pins[_canonical(match.group(1))] = match.group(2)
    return pins


@functools.lru_cache(maxsize=4)
def locked_environment(lock: Path = LOCK_FILE) -> LockedEnvironment | None:
    """The installed packages against the lock file; None when there is no lock (an installed wheel).
    Computed once per process and lock file (the installed packages do not change under a run)."""
    if not lock.is_file():
        return None
    mismatches = {}
    for name, locked in sorted(locked_versions(lock).items()):
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            mismatches[name] = f"not installed, locked {locked}"
            continue
        if installed != locked:
            mismatches[name] = f"installed {installed}, locked {locked}"
    return LockedEnvironment(
        lock_file=lock.name,
        lock_sha256=hashlib.sha256(lock.read_bytes()).hexdigest(),
        matches=not mismatches,
        mismatches=dict(list(mismatches.items())[:50]),
    )


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
        environment=locked_environment(),
    )
