"""The lock file: it pins every dependency, the Makefile and CI install exactly it, provenance records it."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from harness.provenance import LOCK_FILE, locked_environment, locked_versions

REPO = Path(__file__).resolve().parent.parent


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement)
    assert match, requirement
    return canonical(match.group(0))


def test_the_lock_pins_every_dependency_and_the_dev_extra() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pins = locked_versions(LOCK_FILE)
    wanted = [*project["dependencies"], *project["optional-dependencies"]["dev"]]
    missing = [name for name in map(requirement_name, wanted) if name not in pins]
    assert missing == [], f"not in requirements.lock (run `make lock`): {missing}"
    assert all(re.fullmatch(r"[0-9][0-9A-Za-z.+!-]*", version) for version in pins.values())


def test_the_lock_keeps_the_cpu_torch_of_constraints() -> None:
    (torch,) = [line for line in (REPO / "constraints.txt").read_text().splitlines() if line.startswith("torch==")]
    assert locked_versions(LOCK_FILE)["torch"].split("+")[0] == torch.removeprefix("torch==")
    assert not any(name.startswith("nvidia-") for name in locked_versions(LOCK_FILE)), "a CUDA build got locked"


def test_make_and_ci_install_from_the_lock() -> None:
    makefile = (REPO / "Makefile").read_text()
    assert "pip install -q -r $(LOCK)" in makefile and "--no-deps -e ." in makefile
    assert "make venv" in (REPO / ".ci" / "run").read_text()
    workflow = (REPO / ".github" / "workflows" / "submissions.yml").read_text()
    assert "-r requirements.lock" in workflow


def test_provenance_reports_packages_that_differ_from_the_lock(tmp_path: Path) -> None:
    lock = tmp_path / "requirements.lock"
    lock.write_text(
        "# a comment\nnumpy==0.0.1\n    # via harness\nnot-a-real-package-xyz==1.0\npydantic==999.0 ; python_version > '3'\n"
    )
    environment = locked_environment(lock)
    assert environment is not None and not environment.matches
    assert set(environment.mismatches) == {"numpy", "not-a-real-package-xyz", "pydantic"}
    assert environment.mismatches["not-a-real-package-xyz"] == "not installed, locked 1.0"
    assert environment.mismatches["numpy"].endswith("locked 0.0.1")
    assert locked_environment(tmp_path / "absent.lock") is None
