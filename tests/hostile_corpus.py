"""The hostile corpus: attacks on the leaderboard, derived from the valid submission in tests/data.

`write_corpus(out)` writes one folder per case under `out` (each a submissions tree) and returns
{case: phrase its rejection must contain}. The cases, by class (docs/trust.md):
- `cases()`: broken or edited JSON (schema, names, numbers, tasks, layout, duplicates);
- `sample_cases()`: edited per-sample parquets, the JSON then re-scored with the harness's own code
  (as a careful forger would), so only binding the samples to the task's data catches them; and
  parquets that are too big, malformed or not files;
- `raw_cases()`: trust-model attacks on the JSON (imports on built-in tasks, switched main metric,
  timestamps, empty results, missing fingerprints, bootstrap and artifact edits, a second checkpoint
  or a case-variant folder for one model) and bytes no serializer writes (200k-deep nesting,
  integers beyond int64, repeated keys, a BOM, Latin-1).
Written at test time (a session fixture in conftest.py): the corpus is ~20 MB, the base 200 kB.
"""

from __future__ import annotations

import copy
import io
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

BASE = Path(__file__).parent / "data" / "submissions" / "valid"


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


def set_(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """A mutation setting the dotted `path` (list indices as digits) of a submission dict to `value`."""

    def mutate(sub: dict[str, Any]) -> None:
        target = sub
        keys = path.split(".")
        for key in keys[:-1]:
            target = target[int(key)] if key.isdigit() else target[key]
        target[keys[-1]] = value

    return mutate


def cases() -> list[Case]:
    """(case, expected phrase, mutation of the submission dict (or a raw-text producer), ship the parquet)."""

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
        columns["task"] = ["other" if task == "calib" else task for task in columns["task"]]
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


# --------------------------------------------------------------------------- sample-level attacks

Build = Callable[[Path, dict[str, Any], Path], None]


def load_blocks(parquet: Path) -> dict[str, dict[str, Any]]:
    from harness.validation import read_samples

    return read_samples(parquet)


def write_blocks(root: Path, sub: dict[str, Any], blocks: dict[str, dict[str, Any]], *, rescore: bool = True) -> None:
    """Write `blocks` as the case's parquet and, with `rescore`, make every number in the JSON agree
    with them (the harness's own scoring), as a careful forger would."""
    import pyarrow.parquet as pq

    from harness.submissions import samples_table

    if rescore:
        for task, by_split in blocks.items():
            rescore_run(sub, task, by_split)
    file = write(root, sub, None)
    table = samples_table([(task, block) for task, by_split in blocks.items() for block in by_split.values()])
    pq.write_table(table, file.parent / f"{sub['submission_id']}.parquet")


def rescore_run(sub: dict[str, Any], task: str, by_split: dict[str, Any]) -> None:
    from pydantic_core import to_jsonable_python

    from harness.tasks import adapter_for, load_specs
    from harness.tasks.base import run_artifacts, run_parameters

    spec = load_specs().get(task)
    try:
        outcome = adapter_for(spec).score(spec, by_split, sub["seed"])
    except Exception:  # samples the scoring code refuses: leave the JSON as it was
        return
    run = next(r for r in sub["results"] if r["task"] == task)
    run["metrics"] = [m.model_dump(mode="json") for m in outcome.metrics]
    run["artifacts"] = to_jsonable_python(run_artifacts(outcome, spec.main_metric, sub["seed"]))
    run["parameters"] = to_jsonable_python(run_parameters(spec, outcome))


def edit_split(task: str, split: str, edit: Callable[[Any], Any], *, rescore: bool = True) -> Build:
    """A case that replaces one split's Samples with `edit(samples)` (None: drop the split)."""

    def build(root: Path, sub: dict[str, Any], parquet: Path) -> None:
        blocks = load_blocks(parquet)
        changed = edit(blocks[task][split])
        if changed is None:
            del blocks[task][split]
        else:
            blocks[task][split] = changed
        write_blocks(root, sub, blocks, rescore=rescore)

    return build


def edit_json(mutate: Callable[[dict[str, Any]], Any]) -> Build:
    def build(root: Path, sub: dict[str, Any], parquet: Path) -> None:
        mutate(sub)
        write(root, sub, parquet)

    return build


def edit_parquet(edit: Callable[[Any], Any]) -> Build:
    """A case whose parquet is `edit(pyarrow table)` (a table, or raw bytes)."""

    def build(root: Path, sub: dict[str, Any], parquet: Path) -> None:
        import pyarrow.parquet as pq

        file = write(root, sub, None)
        target = file.parent / parquet.name
        changed = edit(pq.read_table(parquet))
        if isinstance(changed, bytes):
            target.write_bytes(changed)
        else:
            pq.write_table(changed, target)

    return build


def sample_cases() -> list[tuple[str, str, Build]]:
    import dataclasses

    import numpy as np
    import pyarrow as pa

    def replace(block: Any, **changes: Any) -> Any:
        return dataclasses.replace(block, **changes)

    def predicted_labels(block: Any) -> Any:
        return replace(block, labels=block.values.argmax(axis=1).astype(np.int64))

    def drop_misclassified(block: Any) -> Any:
        keep = block.values.argmax(axis=1) == block.labels
        return replace(
            block,
            ids=[i for i, k in zip(block.ids, keep, strict=True) if k],
            labels=block.labels[keep],
            values=block.values[keep],
        )

    def one_sample_repeated(block: Any) -> Any:
        n = len(block.ids)
        return replace(
            block,
            ids=[block.ids[0]] * n,
            labels=np.repeat(block.labels[:1], n),
            values=np.repeat(block.values[:1], n, axis=0),
        )

    def perfect_logits(block: Any) -> Any:
        values = np.full_like(block.values, -10.0)
        values[np.arange(len(block.labels)), block.labels] = 10.0
        return replace(block, values=values)

    def renamed_ids(block: Any) -> Any:
        return replace(block, ids=[f"made-up-{i}" for i in range(len(block.ids))])

    def swapped_sample(block: Any) -> Any:
        return replace(block, ids=[*block.ids[:-1], "digits-999999"])

    def extra_column(block: Any) -> Any:
        return replace(
            block,
            values=np.hstack([block.values, block.values[:, :1]]),
            fields=[*block.fields, f"logit_{len(block.fields)}"],
        )

    def narrow(block: Any) -> Any:
        return replace(block, values=block.values[:, :2], fields=block.fields[:2])

    def renamed_fields(block: Any) -> Any:
        return replace(block, fields=[f"score_{i}" for i in range(len(block.fields))])

    def ood_labelled(block: Any) -> Any:
        return replace(block, labels=np.zeros_like(block.labels))

    def reordered(block: Any) -> Any:
        order = np.arange(len(block.ids))[::-1]
        return replace(
            block, ids=[block.ids[i] for i in order], labels=block.labels[order], values=block.values[order] * 1.01
        )

    def unknown_split(root: Path, sub: dict[str, Any], parquet: Path) -> None:
        blocks = load_blocks(parquet)
        blocks["calib"]["extra"] = replace(blocks["calib"].pop("calib"), split="extra")
        write_blocks(root, sub, blocks)

    def too_many_rows(table: Any) -> Any:
        n = 300_000
        return pa.table(
            {
                "task": pa.array(["calib"] * n),
                "split": pa.array(["test"] * n),
                "sample_id": pa.array([f"x{i}" for i in range(n)]),
                "label": pa.array(np.zeros(n, np.int64)),
                "values": pa.array([[0.0]] * n, type=pa.list_(pa.float64())),
            }
        ).replace_schema_metadata(table.schema.metadata)

    def wide_rows(table: Any) -> Any:
        width = 1_000  # 14 MB decoded: over the cap the tests set (harness's own is 400 MB)
        values = pa.array([np.zeros(width).tolist()] * table.num_rows, type=pa.list_(pa.float64()))
        return table.set_column(table.schema.get_field_index("values"), "values", values)

    def drop_column(table: Any) -> Any:
        return table.drop_columns(["label"])

    def metadata(value: bytes) -> Callable[[Any], Any]:
        return lambda table: table.replace_schema_metadata({b"harness.fields": value})

    def null_values(table: Any) -> Any:
        values = table.column("values").to_pylist()
        values[3] = None
        return table.set_column(
            table.schema.get_field_index("values"), "values", pa.array(values, type=pa.list_(pa.float64()))
        )

    def null_label(table: Any) -> Any:
        labels = table.column("label").to_pylist()
        labels[0] = None
        return table.set_column(table.schema.get_field_index("label"), "label", pa.array(labels, type=pa.int64()))

    def parquet_symlink(root: Path, sub: dict[str, Any], parquet: Path) -> None:
        file = write(root, sub, None)
        (file.parent / parquet.name).symlink_to(parquet)

    def parquet_fifo(root: Path, sub: dict[str, Any], parquet: Path) -> None:
        file = write(root, sub, None)
        os.mkfifo(file.parent / parquet.name)  # reading it would block forever

    def not_a_parquet(table: Any) -> bytes:
        return b"\x00" * 4096

    return [
        ("labels-from-predictions", "labels of", edit_split("calib", "test", predicted_labels)),
        ("misclassified-rows-dropped", "missing (e.g.", edit_split("calib", "test", drop_misclassified)),
        ("one-sample-repeated", "sample ids repeat", edit_split("calib", "test", one_sample_repeated)),
        ("ids-renamed", "not in the dataset", edit_split("calib", "test", renamed_ids)),
        ("sample-swapped", "1 not in the dataset", edit_split("calib", "test", swapped_sample)),
        ("calib-split-dropped", "splits ['test']", edit_split("calib", "calib", lambda block: None)),
        ("ood-set-dropped", "the task has", edit_split("ood", "near", lambda block: None)),
        ("unknown-split", "splits ['extra', 'test']", unknown_split),
        ("extra-logit-column", "(7 columns) are not the task's", edit_split("calib", "test", extra_column)),
        ("too-few-logits", "'logit_1'] are not the task's", edit_split("calib", "test", narrow)),
        ("fields-renamed", "'score_0'", edit_split("calib", "calib", renamed_fields)),
        ("ood-scores-renamed", "are not the task's", edit_split("ood", "test", renamed_fields)),
        ("ood-samples-labelled", "instead of -1", edit_split("ood", "near", ood_labelled)),
        ("perfect-logits-unscored", "from the per-sample outputs", edit_split("calib", "test", perfect_logits, rescore=False)),
        ("reordered-and-shifted", "metrics (", edit_split("calib", "test", reordered, rescore=False)),
        ("parquet-too-many-rows", "rows; the submission's tasks have at most", edit_parquet(too_many_rows)),
        ("parquet-decodes-too-big", "decodes to", edit_parquet(wide_rows)),
        ("parquet-missing-column", "columns must be", edit_parquet(drop_column)),
        ("parquet-fields-not-json", "is not JSON", edit_parquet(metadata(b"{not json"))),
        ("parquet-fields-wrong", "does not describe", edit_parquet(metadata(b"{}"))),
        ("parquet-null-values", "have different lengths", edit_parquet(null_values)),
        ("parquet-null-label", "instead of", edit_parquet(null_label)),
        ("parquet-symlink", "is a symbolic link", parquet_symlink),
        ("parquet-fifo", "is not a regular file", parquet_fifo),
        ("parquet-zero-bytes", "cannot read", edit_parquet(not_a_parquet)),
    ]  # fmt: skip


def raw_cases() -> list[tuple[str, str, Build]]:
    def raw(text: Callable[[dict[str, Any]], str | bytes], ship_parquet: bool = True) -> Build:
        def build(root: Path, sub: dict[str, Any], parquet: Path) -> None:
            file = write(root, sub, parquet if ship_parquet else None)
            content = text(sub)
            if isinstance(content, bytes):
                file.write_bytes(content)
            else:
                file.write_text(content)

        return build

    def json_fifo(root: Path, sub: dict[str, Any], parquet: Path) -> None:
        file = write(root, sub, parquet)
        file.unlink()
        os.mkfifo(file)

    def second_checkpoint(root: Path, sub: dict[str, Any], parquet: Path) -> None:
        write(root, sub, parquet)
        other = copy.deepcopy(sub)
        other["checkpoint_hash"] = "e" * 64
        other["submission_id"] = "0" * 20
        for run in other["results"]:
            run["run_id"] = f"{other['submission_id']}-{run['task']}"
        other["samples_file"] = f"{other['submission_id']}.parquet"
        write(root, other, None)
        shutil.copyfile(parquet, root / "harness-tests__corpus-mlp" / other["samples_file"])

    def case_collision(root: Path, sub: dict[str, Any], parquet: Path) -> None:
        write(root, sub, parquet)
        other = copy.deepcopy(sub)
        other["model"]["org"] = "Harness-Tests"
        folder = root / "Harness-Tests__corpus-mlp"
        folder.mkdir(parents=True)
        other["submission_id"] = sub["submission_id"][:-1] + "x"
        for run in other["results"]:
            run["run_id"] = f"{other['submission_id']}-{run['task']}"
        other["samples_file"] = f"{other['submission_id']}.parquet"
        (folder / f"{other['submission_id']}.json").write_text(json.dumps(other, indent=1))
        shutil.copyfile(parquet, folder / other["samples_file"])

    def imported_on_builtin(sub: dict[str, Any]) -> None:
        sub["provenance"]["source"] = "imported"
        sub["samples_file"] = None

    def no_results(sub: dict[str, Any]) -> None:
        sub["results"] = []

    def fingerprint_dropped(sub: dict[str, Any]) -> None:
        sub["results"][0]["dataset_fingerprints"].pop("test")

    def bootstrap_strings(sub: dict[str, Any]) -> None:
        sub["results"][0]["artifacts"]["main_bootstrap"]["values"][:3] = ["a", "b", "c"]

    def bootstrap_shortened(sub: dict[str, Any]) -> None:
        del sub["results"][0]["artifacts"]["main_bootstrap"]["values"][10:]

    def artifact_added(sub: dict[str, Any]) -> None:
        sub["results"][0]["artifacts"]["banner"] = "![x](https://evil.example/x.png)"

    def metric_dropped(sub: dict[str, Any]) -> None:
        sub["results"][0]["metrics"] = [m for m in sub["results"][0]["metrics"] if m["name"] != "mce"]

    def n_inflated(sub: dict[str, Any]) -> None:
        next(m for m in sub["results"][0]["metrics"] if m["name"] == "ece")["n"] = 100_000

    def ci_method_changed(sub: dict[str, Any]) -> None:
        next(m for m in sub["results"][0]["metrics"] if m["name"] == "ece")["ci_method"] = "none"

    def deep(sub: dict[str, Any]) -> str:
        return json.dumps(sub)[:-1] + ', "deep": ' + "[" * 200_000 + "]" * 200_000 + "}"

    def huge_int(sub: dict[str, Any]) -> str:
        return json.dumps(sub).replace('"n_bins": 15', '"n_bins": 100000000000000000000000', 1)

    def huge_seed(sub: dict[str, Any]) -> str:
        return json.dumps(sub).replace(f'"seed": {sub["seed"]}', '"seed": -99999999999999999999', 1)

    def duplicate_key(sub: dict[str, Any]) -> str:
        text = json.dumps(sub)
        return text.replace('"checkpoint_hash":', '"checkpoint_hash": "' + "d" * 64 + '", "checkpoint_hash":', 1)

    def bom(sub: dict[str, Any]) -> bytes:
        return b"\xef\xbb\xbf" + json.dumps(sub).encode()

    def latin1(sub: dict[str, Any]) -> bytes:
        return json.dumps(sub).replace('"family": "digits-mlp"', '"family": "digits-mlp\u00e9"').encode("latin-1")

    return [
        ("old-version-forged", "(ece): value 0.0001", edit_json(lambda sub: [set_("schema_version", 3)(sub), next(m for m in sub["results"][0]["metrics"] if m["name"] == "ece").__setitem__("value", 0.0001)])),
        ("imported-builtin-task", "imported results are accepted for lm-eval and MTEB tasks only", edit_json(imported_on_builtin)),
        ("main-metric-switched", "ranks by 'ece'", edit_json(set_("results.0.main_metric", "accuracy"))),
        ("created-in-the-future", "is in the future", edit_json(set_("provenance.created_at", "2999-01-01T00:00:00+00:00"))),
        ("created-at-free-text", "is not an ISO 8601 timestamp", edit_json(set_("provenance.created_at", "yesterday"))),
        ("created-at-without-zone", "has no time zone", edit_json(set_("provenance.created_at", "2026-01-01T00:00:00"))),
        ("no-results", "has no results", edit_json(no_results)),
        ("fingerprint-missing", "no fingerprint for split", edit_json(fingerprint_dropped)),
        ("fingerprints-empty", "no fingerprint for split 'test'", edit_json(set_("results.0.dataset_fingerprints", {}))),
        ("bootstrap-not-numbers", "expected a number", edit_json(bootstrap_strings)),
        ("bootstrap-shortened", "expected a list of", edit_json(bootstrap_shortened)),
        ("artifact-added", "not produced by the task", edit_json(artifact_added)),
        ("metric-dropped", "mce", edit_json(metric_dropped)),
        ("n-inflated", "100000", edit_json(n_inflated)),
        ("ci-method-changed", "ci_method", edit_json(ci_method_changed)),
        ("parameter-changed", "parameters.n_bins", edit_json(set_("results.0.parameters.n_bins", 10))),
        ("unknown-dtype", "settings.dtype", edit_json(set_("settings", {"dtype": "float8"}))),
        ("length-not-a-number", "is not a number of tokens", edit_json(set_("settings", {"max_length": "many"}))),
        ("samples-file-misnamed", "should be", edit_json(set_("samples_file", "other.parquet"))),
        ("samples-file-absent", "evaluations by harness ship their per-sample outputs", edit_json(set_("samples_file", None))),
        ("second-checkpoint-same-name", "another checkpoint", second_checkpoint),
        ("folder-case-collision", "only in case", case_collision),
        ("homoglyph-org", "String should match pattern", edit_json(set_("model.org", "harness-t\u0435sts"))),
        ("nested-200k-deep", "levels deep", raw(deep)),
        ("json-fifo", "is not a regular file (a named pipe", json_fifo),
        ("integer-beyond-int64", "does not fit a 64-bit integer", raw(huge_int)),
        ("seed-beyond-int64", "seed: -99999999999999999999", raw(huge_seed)),
        ("duplicate-json-key", "repeats the key 'checkpoint_hash'", raw(duplicate_key)),
        ("byte-order-mark", "is not valid JSON", raw(bom)),
        ("not-utf8", "is not valid JSON", raw(latin1)),
    ]  # fmt: skip


def base_files() -> tuple[dict[str, Any], Path]:
    (file,) = sorted(BASE.rglob("*.json"))
    return json.loads(file.read_text()), file.with_suffix(".parquet")


def catalog() -> dict[str, str]:
    """{NN-case: expected phrase} without writing anything (for test parametrization)."""
    entries = [(case, phrase) for case, phrase, _, _ in cases()]
    entries += [(case, phrase) for case, phrase, _ in sample_cases() + raw_cases()]
    return {f"{index:02d}-{case}": phrase for index, (case, phrase) in enumerate(entries)}


def write_corpus(out: Path) -> dict[str, str]:
    """Every case under out/<NN-case>/; returns {NN-case: expected phrase}."""
    base, parquet = base_files()
    expected: dict[str, str] = {}
    for index, (case, phrase, mutate, ship_parquet) in enumerate(cases()):
        root = out / f"{index:02d}-{case}"
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
    offset = len(expected)
    for index, (case, phrase, build) in enumerate(sample_cases() + raw_cases()):
        root = out / f"{offset + index:02d}-{case}"
        expected[root.name] = phrase
        build(root, copy.deepcopy(base), parquet)
    return expected
