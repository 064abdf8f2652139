"""On-disk cache of per-sample model outputs.

Key: (checkpoint hash, split fingerprint, inference kind and version) -> a dict of arrays.
Entries are .npz files read with allow_pickle=False, each with a sha256 sidecar; an entry whose
checksum does not match (truncated by a crash, corrupted on disk) is treated as missing and
recomputed, never used. Writes go to a temporary file and are renamed into place, so a crash
never leaves a half-written entry under the final name.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
from pathlib import Path

import numpy as np

from harness.models.base import Arrays


def default_cache_dir() -> Path:
    return Path(os.environ.get("HARNESS_CACHE_DIR", Path.home() / ".cache" / "harness"))


def cache_key(checkpoint_hash: str, split_fingerprint: str, inference: str, version: int | str) -> str:
    text = f"{checkpoint_hash}|{split_fingerprint}|{inference}|v{version}"
    return hashlib.sha256(text.encode()).hexdigest()


class OutputCache:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.corrupt_entries = 0

    def _paths(self, key: str) -> tuple[Path, Path]:
        folder = self.root / "outputs" / key[:2]
        return folder / f"{key}.npz", folder / f"{key}.sha256"

    def get(self, key: str) -> Arrays | None:
        data_path, sum_path = self._paths(key)
        try:
            payload = data_path.read_bytes()
            expected = sum_path.read_text().strip()
        except FileNotFoundError:
            return None
        if hashlib.sha256(payload).hexdigest() != expected:
            self.corrupt_entries += 1
            return None
        try:
            with np.load(io.BytesIO(payload), allow_pickle=False) as archive:
                return {name: archive[name] for name in archive.files}
        except (ValueError, OSError):
            self.corrupt_entries += 1
            return None

    def put(self, key: str, arrays: Arrays) -> None:
        data_path, sum_path = self._paths(key)
        data_path.parent.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)  # type: ignore[arg-type]
        payload = buffer.getvalue()
        # Data first, checksum last: an entry without a matching checksum is a miss.
        atomic_write(data_path, payload)
        atomic_write(sum_path, hashlib.sha256(payload).hexdigest().encode())


def atomic_write(path: Path, payload: bytes) -> None:
    """Write `payload` to `path` via a temporary file in the same folder and an atomic rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
