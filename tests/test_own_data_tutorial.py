"""docs/own-data.md, run as written: every ```bash block in order, in a fresh folder, with this
environment's `harness` and `python` first on PATH; every ```python block is a file the page asks
you to save (its first line says `# file: NAME`), written before the blocks after it run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

TUTORIAL = Path(__file__).resolve().parents[1] / "docs" / "own-data.md"
FILE_MARKER = "# file: "


def fenced_blocks(markdown: str) -> list[tuple[str, str]]:
    """(language, code) of every fenced block, in document order."""
    return [(token.info.strip(), token.content) for token in MarkdownIt().parse(markdown) if token.type == "fence"]


def test_every_block_is_one_the_test_runs() -> None:
    blocks = fenced_blocks(TUTORIAL.read_text())
    assert {language for language, _ in blocks} == {"bash", "python"}  # nothing shell-like goes untested
    assert all(code.startswith(FILE_MARKER) for language, code in blocks if language == "python")
    assert sum(language == "bash" for language, _ in blocks) >= 8


@pytest.mark.slow
def test_the_tutorial_runs_as_written(tmp_path: Path) -> None:
    bin_dir = Path(sys.executable).parent
    assert (bin_dir / "harness").exists(), "the package's console script must be installed beside python"
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "HARNESS_CACHE_DIR": str(tmp_path / ".cache"),
        "COLUMNS": "200",
        "TOKENIZERS_PARALLELISM": "false",
    }
    env.pop("HARNESS_TASKS_DIR", None)
    outputs: list[str] = []
    for language, code in fenced_blocks(TUTORIAL.read_text()):
        if language == "python":
            name = code.splitlines()[0].removeprefix(FILE_MARKER).strip()
            (tmp_path / name).write_text(code)
            continue
        done = subprocess.run(
            ["bash", "-e", "-u", "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
        )
        assert done.returncode == 0, f"block failed:\n{code}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
        outputs.append(done.stdout + done.stderr)
    text = "\n".join(outputs)
    # What the page says happens, happens.
    for task in ("pets-calib", "pets-ood", "reviews-calib", "notes-loss", "scans-calib", "scans-ood"):
        assert task in text
    assert "note: scans-net scans-calib: temperature scaling skipped (no temperature, ece_ts, nll_ts)" in text
    assert "note: scans-net scans-ood: mahalanobis, knn skipped" in text
    assert "has labels and ids but no inputs" in text and "exit code 2" in text
    assert "4 valid, 0 invalid submission files" in text
    assert "ingested 4 submissions (6 runs: 6 self-reported)" in text
    assert text.count("self-reported") >= 6
    submitted = sorted(p.parent.name for p in (tmp_path / "leaderboard-repo" / "submissions").rglob("*.json"))
    assert submitted == ["my-lab__notes-gpt", "my-lab__pets-vit", "my-lab__reviews-bert", "my-lab__scans-net"]
