"""Build tests/data/submissions: one valid submission, its schema-v1 form, and malformed variants.

Run from the repository root after changing the calib task or its scoring (the files record the
task's spec hash and metrics recomputed from their samples):

    python tests/data/make_submission_corpus.py

Layout: valid/<org>__<model>/<id>.json + .parquet; v1/... the same submission in schema version 1;
malformed/<case>/<org>__<model>/<id>.json (+ parquet where the case needs it), and
malformed-expected.json mapping each case to a phrase its rejection must contain.
"""

from __future__ import annotations

import copy
import io
import json
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
OUT = HERE / "submissions"


def base_submission(work: Path) -> tuple[dict[str, Any], Path]:
    """Train one tiny digits model, evaluate it on calib, return (submission dict, its parquet)."""
    from harness.registry import DATASETS
    from harness.runner import EvalOptions, load_models, run_and_record
    from harness.schema import ModelCard
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
    (recorded,) = run_and_record(handles, [load_specs().get("calib")], options, out=work / "subs", store_path=None)
    assert recorded.submission_path is not None
    return json.loads(recorded.submission_path.read_text()), recorded.submission_path.with_suffix(".parquet")


def write(
    root: Path, sub: dict[str, Any], parquet: Path | None, *, text: str | None = None, name: str | None = None
) -> Path:
    # Always the base model's folder: malicious names must never become paths of this script.
    folder = root / "harness-tests__corpus-mlp"
    folder.mkdir(parents=True, exist_ok=True)
    file = folder / (name or f"{sub.get('submission_id', 'broken')}.json")
    file.write_text(text if text is not None else json.dumps(sub, indent=1))
    if parquet is not None:
        shutil.copyfile(parquet, folder / parquet.name)
    return file


def metric(sub: dict[str, Any], name: str) -> dict[str, Any]:
    return next(m for m in sub["results"][0]["metrics"] if m["name"] == name)


Case = tuple[str, str, Callable[[dict[str, Any]], Any], bool]


def cases() -> list[Case]:
    """(case, expected phrase, mutation of the submission dict (or a raw-text producer), ship the parquet)."""

    def set_(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
        def mutate(sub: dict[str, Any]) -> None:
            target = sub
            keys = path.split(".")
            for key in keys[:-1]:
                target = target[int(key)] if key.isdigit() else target[key]
            target[keys[-1]] = value

        return mutate

    def forge(name: str, field: str, value: float) -> Callable[[dict[str, Any]], None]:
        return lambda sub: metric(sub, name).__setitem__(field, value)

    return [
        ("not-json", "is not valid JSON", lambda sub: "{ this is not json", False),
        ("json-array", "must hold a JSON object", lambda sub: "[1, 2, 3]", False),
        ("empty-file", "is not valid JSON", lambda sub: "", False),
        ("future-schema", "unsupported version 99", set_("schema_version", 99), False),
        ("no-schema-version", "unsupported version None", lambda sub: sub.pop("schema_version"), False),
        ("schema-version-string", "unsupported version '2'", set_("schema_version", "2"), False),
        ("unknown-field", "Extra inputs are not permitted", set_("surprise", 1), False),
        ("missing-results", "results: Field required", lambda sub: sub.pop("results"), False),
        ("traversal-name", "String should match pattern", set_("model.name", "../../etc"), False),
        ("absolute-org", "String should match pattern", set_("model.org", "/root"), False),
        (
            "nan-value",
            "finite number",
            lambda sub: json.dumps(sub).replace(
                '"value": ' + json.dumps(metric(sub, "ece")["value"]), '"value": NaN', 1
            ),
            False,
        ),
        (
            "infinite-value",
            "finite number",
            lambda sub: json.dumps(sub).replace(
                '"value": ' + json.dumps(metric(sub, "ece")["value"]), '"value": Infinity', 1
            ),
            False,
        ),
        ("string-value", "Input should be a valid number", forge("ece", "value", "low"), False),  # type: ignore[arg-type]
        ("negative-n", "greater than or equal to 0", forge("ece", "n", -5), False),
        ("id-not-file-name", "does not match the file name", lambda sub: ("rename", "other-name.json"), True),
        ("wrong-folder", "the file lies in", lambda sub: ("folder", "someone__else"), True),
        ("made-with-limit", "made with --limit 25", set_("sample_limit", 25), True),
        (
            "unknown-task",
            "unknown task 'calibration-x'",
            lambda sub: [
                set_("results.0.task", "calibration-x")(sub),
                set_("results.0.run_id", sub["submission_id"] + "-calibration-x")(sub),
            ],
            True,
        ),
        ("stale-spec-hash", "another version of task 'calib'", set_("results.0.spec_hash", "0" * 64), True),
        ("stale-task-version", "another version of task 'calib'", set_("results.0.task_version", 7), True),
        ("forged-value", "from the per-sample outputs", forge("ece", "value", 0.001), True),
        ("forged-ci", "ci_high", forge("ece", "ci_high", 0.5), True),
        ("out-of-range", "outside [0.0, 1.0]", forge("accuracy", "value", 1.5), True),
        (
            "flipped-direction",
            "contradicts the metric's registered direction",
            forge("ece", "higher_is_better", True),
            True,
        ),
        (
            "duplicate-task",
            "appears more than once",
            lambda sub: sub["results"].append(copy.deepcopy(sub["results"][0])),
            True,
        ),
        ("missing-main-metric", "is not among the run's metrics", set_("results.0.main_metric", "auroc"), True),
        (
            "duplicate-metric",
            "a metric name appears more than once",
            lambda sub: sub["results"][0]["metrics"].append(copy.deepcopy(metric(sub, "ece"))),
            True,
        ),
        ("wrong-run-id", "should be", set_("results.0.run_id", "something-else"), True),
        ("missing-parquet", "is missing", lambda sub: None, False),
        ("traversal-samples-file", "String should match pattern", set_("samples_file", "../../secret.parquet"), False),
        ("corrupt-parquet", "cannot read", lambda sub: ("parquet", b"PAR1 garbage, not a parquet file PAR1"), True),
        (
            "parquet-without-task",
            "no per-sample outputs for task 'calib'",
            lambda sub: ("parquet-rename-task", "other"),
            True,
        ),
        ("nan-in-samples", "contain NaN or inf", lambda sub: ("parquet-nan", None), True),
        ("stale-fingerprint", "the data differs", set_("results.0.dataset_fingerprints.test", "f" * 64), True),
        (
            "unknown-metric",
            "unknown metric 'made_up'",
            lambda sub: sub["results"][0]["metrics"].append({**metric(sub, "ece"), "name": "made_up"}),
            True,
        ),
        ("inverted-ci", "ci_low", forge("ece", "ci_low", 0.9), True),
        ("bad-checkpoint-hash", "String should match pattern", set_("checkpoint_hash", "not-a-hash"), False),
        ("duplicate-submission", "duplicate of", lambda sub: ("duplicate", None), True),
    ]


def rewrite_parquet(source: Path, target: Path, how: str) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(source)
    columns = table.to_pydict()
    if how == "parquet-rename-task":
        columns["task"] = ["other"] * len(columns["task"])
        fields = json.loads(table.schema.metadata[b"harness.fields"])
        metadata = {
            b"harness.fields": json.dumps({k.replace("calib/", "other/"): v for k, v in fields.items()}).encode()
        }
    else:
        columns["values"][0] = [float("nan"), *list(columns["values"][0][1:])]
        metadata = table.schema.metadata
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pydict(columns, schema=table.schema.with_metadata(metadata)), buffer)
    target.write_bytes(buffer.getvalue())


def main() -> int:
    sys.path.insert(0, str(HERE.parent.parent))
    if OUT.exists():
        shutil.rmtree(OUT)
    with tempfile.TemporaryDirectory() as tmp:
        base, parquet = base_submission(Path(tmp))
        write(OUT / "valid", base, parquet)
        v1 = {**copy.deepcopy(base), "schema_version": 1}
        v1["limit"] = v1.pop("sample_limit")
        write(OUT / "v1", v1, parquet)
        expected: dict[str, str] = {}
        for index, (case, phrase, mutate, ship_parquet) in enumerate(cases()):
            root = OUT / "malformed" / f"{index:02d}-{case}"
            sub = copy.deepcopy(base)
            outcome = mutate(sub)
            expected[root.name] = phrase
            if isinstance(outcome, str):
                write(root, sub, parquet if ship_parquet else None, text=outcome)
            elif isinstance(outcome, tuple) and outcome[0] == "rename":
                write(root, sub, parquet, name=outcome[1])
            elif isinstance(outcome, tuple) and outcome[0] == "folder":
                folder = root / outcome[1]
                folder.mkdir(parents=True)
                (folder / f"{sub['submission_id']}.json").write_text(json.dumps(sub, indent=1))
                shutil.copyfile(parquet, folder / parquet.name)
            elif isinstance(outcome, tuple) and outcome[0] == "duplicate":
                write(root, sub, parquet)
                write(root / "archive", sub, parquet)
            elif isinstance(outcome, tuple) and outcome[0] == "parquet":
                file = write(root, sub, None)
                (file.parent / parquet.name).write_bytes(outcome[1])
            elif isinstance(outcome, tuple) and outcome[0] in ("parquet-rename-task", "parquet-nan"):
                file = write(root, sub, None)
                rewrite_parquet(parquet, file.parent / parquet.name, outcome[0])
            else:
                write(root, sub, parquet if ship_parquet else None)
        (OUT / "malformed-expected.json").write_text(json.dumps(expected, indent=1, sort_keys=True) + "\n")
    print(f"wrote {len(expected)} malformed cases, a valid submission and its v1 form under {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
