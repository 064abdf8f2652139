"""Fault injection for Ray workers (tests/test_executors.py, bench/scale.py), installed by Ray's
`worker_process_setup_hook` in every worker process of a cluster started with `cluster_runtime_env`.

In a worker, `Runner._infer` and `Runner.evaluate` are wrapped so that:
- every unit that starts appends its model's name to `<folder>/starts.log`;
- when `<folder>/kill` names a model, the worker evaluating it kills itself (SIGKILL, as an OOM kill
  or a lost node would) right after its first forward pass is cached, once: `<folder>/killed` marks it.
The folder is $HARNESS_TEST_FAULTS; nothing happens where it is unset (and never in the driver).
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

FOLDER_VARIABLE = "HARNESS_TEST_FAULTS"


def cluster_runtime_env(folder: Path) -> dict[str, Any]:
    """The job-level runtime_env that installs the hook: tests/ on the workers' path, the folder set."""
    tests = str(Path(__file__).resolve().parent)
    path = os.pathsep.join(p for p in (tests, os.environ.get("PYTHONPATH", "")) if p)
    return {
        "env_vars": {FOLDER_VARIABLE: str(folder), "PYTHONPATH": path},
        "worker_process_setup_hook": "ray_faults.install",
    }


def kill_once(folder: Path, model: str) -> None:
    """Arm the hook: the next worker that evaluates `model` dies after its first forward pass."""
    (folder / "killed").unlink(missing_ok=True)
    (folder / "kill").write_text(model)


def starts(folder: Path) -> list[str]:
    """The models whose units started, once per start (a retried unit twice)."""
    log = folder / "starts.log"
    return log.read_text().split() if log.exists() else []


def install() -> None:
    folder = os.environ.get(FOLDER_VARIABLE)
    if not folder:
        return
    from harness.runner import Runner

    root = Path(folder)
    infer, evaluate = Runner._infer, Runner.evaluate

    def logged_evaluate(self: Runner, handle: Any, specs: Any) -> Any:
        with (root / "starts.log").open("a") as log:
            log.write(handle.card.name + "\n")
        return evaluate(self, handle, specs)

    def fragile_infer(self: Runner, handle: Any, *args: Any) -> Any:
        out = infer(self, handle, *args)
        target = root / "kill"
        if target.exists() and target.read_text().strip() == handle.card.name and not (root / "killed").exists():
            (root / "killed").write_text(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGKILL)
        return out

    Runner.evaluate = logged_evaluate  # type: ignore[method-assign]
    Runner._infer = fragile_infer  # type: ignore[method-assign]
