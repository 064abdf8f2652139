"""Build tests/data/submissions: one valid submission (calib and ood) and its schema-v1 form.

Run from the repository root after changing the calib or ood task or their scoring (the files record
the tasks' spec hashes and metrics recomputed from their samples):

    python tests/data/make_submission_corpus.py

Layout: valid/<org>__<model>/<id>.json + .parquet; v1/... the same submission in schema version 1.
tests/hostile_corpus.py derives the attacks from the valid one when the tests run.
"""

from __future__ import annotations

import copy
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
OUT = HERE / "submissions"


def base_submission(work: Path) -> tuple[dict[str, Any], Path]:
    """Train one tiny digits model, evaluate it on calib and ood, return (submission dict, its parquet)."""
    from harness.registry import DATASETS
    from harness.runner import EvalOptions, load_models
    from harness.schema import ModelCard
    from harness.sweep import run_and_record
    from harness.tasks import load_specs
    from harness.zoo import save_checkpoint
    from harness.zoo.digits import Recipe, classifier_files, train_classifier

    suite = DATASETS.get("digits-ood")(seed=0)
    recipe = Recipe("corpus-mlp", (16,), epochs=3)
    model, config, loss = train_classifier(suite.split("train").x, suite.split("train").y, suite.n_classes, recipe)
    card = ModelCard(
        name="corpus-mlp",
        org="harness-tests",
        family="digits-mlp",
        kind="torch-classifier",
        n_parameters=sum(p.numel() for p in model.parameters()),
        train_loss_nats=loss,
        trained_on="digits-ood",
    )
    folder = save_checkpoint(work / "corpus-mlp", classifier_files(model, config), card)
    options = EvalOptions(cache_dir=work / "cache")
    handles = load_models([folder], options, "cpu")
    specs = [load_specs().get("calib"), load_specs().get("ood")]
    (recorded,) = run_and_record(handles, specs, options, out=work / "subs", store_path=None)
    assert recorded.submission_path is not None
    return json.loads(recorded.submission_path.read_text()), recorded.submission_path.with_suffix(".parquet")


def main() -> int:
    sys.path.insert(0, str(HERE.parent.parent))
    for folder in ("valid", "v1", "malformed"):
        shutil.rmtree(OUT / folder, ignore_errors=True)
    (OUT / "malformed-expected.json").unlink(missing_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        base, parquet = base_submission(Path(tmp))
        write_one(OUT / "valid", base, parquet)
        v1 = {**copy.deepcopy(base), "schema_version": 1}
        v1["limit"] = v1.pop("sample_limit")
        write_one(OUT / "v1", v1, parquet)
    print(f"wrote a valid submission and its v1 form under {OUT}; tests/hostile_corpus.py derives the attacks")
    return 0


def write_one(root: Path, sub: dict[str, Any], parquet: Path) -> None:
    folder = root / f"{sub['model']['org']}__{sub['model']['name']}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{sub['submission_id']}.json").write_text(json.dumps(sub, indent=1))
    shutil.copyfile(parquet, folder / parquet.name)


if __name__ == "__main__":
    sys.exit(main())
