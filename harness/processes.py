"""Child processes that stop when their parent is told to stop (`harness app` runs Streamlit this way).

`run_forwarding_signals(command)` starts the command in its own process group and forwards SIGTERM,
SIGINT and SIGHUP to that whole group, so `kill <harness pid>` (a service manager, a CI job, a
terminal closing) stops the Streamlit server and anything it started, instead of leaving it serving
with no parent. A group that is still alive `grace_s` seconds after the signal gets SIGKILL. Returns
the child's exit status (128 + the signal number when a signal ended it, as shells report it).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from types import FrameType

FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def _signal_group(process: subprocess.Popen[bytes], signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signum)  # the child leads its own group: this reaches its children too


def run_forwarding_signals(command: Sequence[str], *, grace_s: float = 10.0) -> int:
    """Run `command` in a new process group until it exits; forward stop signals to the group."""
    process = subprocess.Popen(list(command), start_new_session=True)
    received: list[float] = []

    def forward(signum: int, frame: FrameType | None) -> None:
        received.append(time.monotonic())
        _signal_group(process, signum)

    previous = {sig: signal.signal(sig, forward) for sig in FORWARDED}
    try:
        while True:
            try:
                code = process.wait(timeout=0.2)
                break
            except subprocess.TimeoutExpired:
                if received and time.monotonic() - received[0] > grace_s:
                    _signal_group(process, signal.SIGKILL)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if process.poll() is None:  # an exception (not a signal) ended the wait: leave nothing behind
            _signal_group(process, signal.SIGTERM)
            try:
                process.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                _signal_group(process, signal.SIGKILL)
                process.wait()
    return 128 - code if code < 0 else code
