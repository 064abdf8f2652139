"""Your own data and predictions, without tricks: local files of every kind, optional splits, task
files by path and --include-path, `harness task new`, lm_loss on plain text, and bad data that fails
with exit code 2 before any model loads. Metrics are compared with independent implementations
(scikit-learn, torchmetrics, scipy, a direct forward pass of the language model)."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from cli_helpers import Result, run_cli
from scipy.special import logsumexp, softmax

from harness import tasks as harness_tasks
from harness.data import clear_suites, get_split, load_suite
from harness.data.arrays import ArraySplit, LabelSplit, TextSplit
from harness.data.text import DocumentSplit
from harness.errors import HarnessError
from harness.schema import DatasetSource
from harness.tasks import load_spec
from harness.tasks.templates import ADAPTERS, PLACEHOLDER_PATH, task_template

CLASSES = ["cat", "dog", "bird"]


@pytest.fixture(autouse=True)
def _fresh_state() -> Iterator[None]:
    """Suites are cached per process by source, and included task folders live for a process: start clean."""
    clear_suites()
    harness_tasks.include_tasks([], replace=True)
    yield
    clear_suites()
    harness_tasks.include_tasks([], replace=True)


def write_csv(file: Path, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> Path:
    file.parent.mkdir(parents=True, exist_ok=True)
    with file.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return file


def source(path: Path, **params: Any) -> DatasetSource:
    return DatasetSource(kind="local", name="mine", path=str(path), params=params)


def eval_cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *args: str) -> Result:
    return run_cli(capsys, monkeypatch, "eval", "--no-store", *args)


def error_line(result: Result) -> str:
    lines = [line for line in result.err.splitlines() if line.startswith("error")]
    assert len(lines) == 1 and "Traceback" not in result.err, result.err
    return lines[0]


def no_model_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if any model loads: the data must be refused before that."""

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a model was loaded before the data was checked")

    import harness.runner

    monkeypatch.setattr(harness.runner, "load_models", refuse)
    monkeypatch.setattr(harness.runner, "load_model", refuse)


def read_results(out: Path) -> dict[str, dict[str, Any]]:
    (file,) = out.rglob("*.json")
    submission = json.loads(file.read_text())
    return {run["task"]: run for run in submission["results"]}


def metric(run: dict[str, Any], name: str) -> float:
    return float(next(m["value"] for m in run["metrics"] if m["name"] == name))


# ----------------------------------------------------------------------------- local files of every kind


def test_csv_jsonl_parquet_give_the_same_text_split(tmp_path: Path) -> None:
    rows = [("a", "good film", "pos"), ("b", "bad, really", "neg"), ("c", 'said "fine"', "pos")]
    write_csv(tmp_path / "csv" / "test.csv", ["id", "text", "label"], rows)
    (tmp_path / "jsonl").mkdir()
    (tmp_path / "jsonl" / "test.jsonl").write_text(
        "".join(json.dumps({"id": i, "text": t, "label": y}) + "\n" for i, t, y in rows)
    )
    (tmp_path / "parquet").mkdir()
    table = pa.table({"id": [r[0] for r in rows], "text": [r[1] for r in rows], "label": [r[2] for r in rows]})
    pq.write_table(table, tmp_path / "parquet" / "test.parquet")
    splits = [
        load_suite(source(tmp_path / kind, classes=["neg", "pos"])).split("test")
        for kind in ("csv", "jsonl", "parquet")
    ]
    assert all(isinstance(split, TextSplit) for split in splits)
    assert splits[0].texts == ["good film", "bad, really", 'said "fine"'] and splits[0].y.tolist() == [1, 0, 1]
    assert splits[0].ids == ["a", "b", "c"]
    assert len({split.fingerprint for split in splits}) == 1  # the same content is the same data, whatever the format
    suite = load_suite(source(tmp_path / "csv", classes=["neg", "pos"]))
    assert suite.n_classes == 2 and tuple(suite.class_names) == ("neg", "pos")


def test_tabular_features_from_csv_npy_npz_and_parquet(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5, 3)).astype(np.float32)
    y = np.array([0, 1, 2, 1, 0])
    write_csv(
        tmp_path / "a" / "test.csv",
        ["f1", "f2", "f3", "label"],
        [[*row, label] for row, label in zip(x.tolist(), y, strict=True)],
    )
    (tmp_path / "b").mkdir()
    np.save(tmp_path / "b" / "test.npy", np.column_stack([x, y]))
    (tmp_path / "c").mkdir()
    np.savez(tmp_path / "c" / "test.npz", x=x, y=y)
    (tmp_path / "d").mkdir()
    pq.write_table(pa.table({"f1": x[:, 0], "f2": x[:, 1], "f3": x[:, 2], "label": y}), tmp_path / "d" / "test.parquet")
    splits = [load_suite(source(tmp_path / kind)).split("test") for kind in "abcd"]
    for split in splits:
        assert isinstance(split, ArraySplit)
        np.testing.assert_allclose(split.x, x, rtol=1e-6)
        assert split.y.tolist() == y.tolist() and split.ids == [f"test-{i}" for i in range(5)]
    chosen = load_suite(source(tmp_path / "a", feature_columns=["f3", "f1"])).split("test")
    np.testing.assert_allclose(chosen.x, x[:, [2, 0]], rtol=1e-6)


def test_labels_only_splits_and_custom_column_names(tmp_path: Path) -> None:
    write_csv(tmp_path / "test.csv", ["uid", "sentiment"], [["u1", "dog"], ["u2", 2], ["u3", "cat"]])
    write_csv(tmp_path / "ood.csv", ["uid"], [["o1"], ["o2"]])
    write_csv(tmp_path / "calib.csv", ["uid", "sentence", "sentiment"], [["c1", "hello", "bird"]])
    suite = load_suite(
        source(tmp_path, classes=CLASSES, id_column="uid", label_column="sentiment", text_column="sentence")
    )
    test, ood, calib = suite.split("test"), suite.split("ood"), suite.split("calib")
    assert isinstance(test, LabelSplit) and not test.has_inputs
    assert test.y.tolist() == [1, 2, 0] and test.ids == ["u1", "u2", "u3"]  # names, then indices
    assert isinstance(ood, LabelSplit) and ood.y.tolist() == [-1, -1]  # no label column: unlabelled (an OOD set)
    assert isinstance(calib, TextSplit) and calib.texts == ["hello"] and calib.y.tolist() == [2]
    assert suite.n_classes == 3
    (tmp_path / "arrays").mkdir()
    np.savez(tmp_path / "arrays" / "test.npz", y=np.array([2, 0]), ids=np.array(["p", "q"]))  # no x: labels only
    labels_only = load_suite(source(tmp_path / "arrays")).split("test")
    assert isinstance(labels_only, LabelSplit) and labels_only.ids == ["p", "q"] and labels_only.y.tolist() == [2, 0]


def test_image_folder_with_resizing_mode_and_an_unlabelled_split(tmp_path: Path) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, label, size, mode in [("test", "cat", 10, "RGB"), ("test", "dog", 14, "L"), ("train", "dog", 8, "RGBA")]:
        (tmp_path / split / label).mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).convert(mode).save(
            tmp_path / split / label / "0.png"
        )
    (tmp_path / "ood").mkdir()
    Image.fromarray(rng.integers(0, 256, (20, 12, 3), dtype=np.uint8)).save(tmp_path / "ood" / "x.jpg")
    (tmp_path / "README.md").write_text("not a split")
    with pytest.raises(HarnessError, match=r"classes \['cat'\] are not in the train split"):
        load_suite(source(tmp_path))
    with pytest.raises(HarnessError, match="different shapes"):
        load_suite(source(tmp_path, classes=["cat", "dog"]))
    suite = load_suite(source(tmp_path, image_size=[6, 8], image_mode="RGB", classes=["cat", "dog"]))
    test, ood = suite.split("test"), suite.split("ood")
    assert test.x.shape == (2, 6, 8, 3) and test.y.tolist() == [0, 1] and ood.y.tolist() == [-1]
    assert test.ids == ["test/cat/0.png", "test/dog/0.png"] and ood.ids == ["ood/x.jpg"]
    assert set(suite.splits) == {"test", "train", "ood"} and tuple(suite.class_names) == ("cat", "dog")


def eager_pixels(file: Path, size: tuple[int, int] | None, mode: str | None) -> np.ndarray:
    """What an image folder held before images stayed encoded: Pillow's pixels, converted and resized at once."""
    from PIL import Image

    with Image.open(file) as opened:
        image = opened.convert(mode) if mode else opened.copy()
    if size is not None and image.size != size[::-1]:
        image = image.resize(size[::-1], Image.Resampling.BILINEAR)
    pixels = np.asarray(image, dtype=np.float32) / 255.0
    return pixels[..., None] if pixels.ndim == 2 else pixels


@pytest.mark.parametrize(
    ("modes", "params"),
    [
        (["RGB", "RGB"], {}),
        (["L", "L"], {}),
        (["RGBA", "RGBA"], {}),
        (["P", "P"], {}),
        (["RGB", "L"], {"image_mode": "RGB", "image_size": [5, 7]}),
        (["LA", "RGBA"], {"image_mode": "L", "image_size": 6}),
    ],
)
def test_image_folders_stay_encoded_and_decode_to_the_same_pixels(
    tmp_path: Path, modes: list[str], params: dict[str, Any]
) -> None:
    """Pixels, shapes and ids of a lazily decoded folder equal Pillow's eager conversion, batch by batch."""
    from PIL import Image

    from harness.data.images import EncodedImageSplit

    rng = np.random.default_rng(len(modes[0]))
    files = []
    for i, (label, mode) in enumerate([("a", modes[0]), ("b", modes[1]), ("a", modes[1]), ("b", modes[0])]):
        (tmp_path / "test" / label).mkdir(parents=True, exist_ok=True)
        side = 9 if params else 8
        file = tmp_path / "test" / label / f"{i}.png"
        Image.fromarray(rng.integers(0, 256, (side, side + 2, 3), dtype=np.uint8)).convert(mode).save(file)
        files.append(file)
    split = load_suite(source(tmp_path, classes=["a", "b"], **params)).split("test")
    assert isinstance(split, EncodedImageSplit) and sum(len(b) for b in split.blobs) == sum(
        f.stat().st_size for f in files
    )
    size = params.get("image_size")
    size = (size, size) if isinstance(size, int) else (tuple(size) if size else None)
    order = [files[0], files[2], files[1], files[3]]  # class a's files, then class b's
    expected = np.stack([eager_pixels(f, size, params.get("image_mode")) for f in order])
    assert split.x.shape == expected.shape and split.ids == [f.relative_to(tmp_path).as_posix() for f in order]
    assert np.array_equal(split.x[1:3], expected[1:3]) and np.array_equal(np.asarray(split.x), expected)
    assert split.y.tolist() == [0, 0, 1, 1]


def test_a_bad_image_is_named_before_any_model_loads(tmp_path: Path) -> None:
    (tmp_path / "test" / "a").mkdir(parents=True)
    (tmp_path / "test" / "a" / "broken.png").write_bytes(b"not a png at all")
    with pytest.raises(HarnessError, match="cannot read the image") as raised:
        load_suite(source(tmp_path))
    assert "broken.png" in str(raised.value.where)


def test_plain_text_documents(tmp_path: Path) -> None:
    text = "\ufefffirst doc\r\nline two\r\n\r\n  \t\n\nsecond doc\n\n\n   third  \n"
    (tmp_path / "heldout.txt").write_bytes(text.encode("utf-8"))
    (tmp_path / "extra").mkdir()
    (tmp_path / "extra" / "b.txt").write_text("bee\n")
    (tmp_path / "extra" / "a.txt").write_text("a\n\nstill a\n")
    suite = load_suite(source(tmp_path))
    heldout, extra = suite.split("heldout"), suite.split("extra")
    assert isinstance(heldout, DocumentSplit)
    assert heldout.texts == ["first doc\nline two", "second doc", "third"]
    assert heldout.ids == ["heldout-0", "heldout-1", "heldout-2"]
    assert extra.texts == ["a\n\nstill a", "bee"] and extra.ids == ["extra/a.txt", "extra/b.txt"]
    assert [d.text for d in heldout.take([2, 0])] == ["third", "first doc\nline two"]
    single = load_suite(source(tmp_path / "heldout.txt")).split("heldout")  # a file stands for one split
    assert single.fingerprint == heldout.fingerprint


@pytest.mark.parametrize(
    ("files", "params", "message"),
    [
        (
            {"test.csv": "sentence,label\nhi,0\n"},
            {},
            "column 'sentence' (string) is neither a numeric feature nor the text column 'text'",
        ),
        ({"test.csv": "f1,label\n1.0,0\n"}, {"feature_columns": ["f1", "f2"]}, "feature column(s) ['f2'] are missing"),
        (
            {"test.csv": "text,label\nhi,5\n"},
            {"classes": ["a", "b"]},
            "1 labels are outside the label space (for example 5)",
        ),
        (
            {"test.csv": "text,label\nhi,cat\n"},
            {},
            "labels are class indices (0, 1, ...); to use names, list them in dataset.params.classes",
        ),
        ({"test.csv": "text,label\nhi,-3\n"}, {}, "outside the label space (for example -3)"),
        ({"test.csv": "text,label\nhi,\n"}, {}, "row 0 has no label"),
        ({"test.csv": b"text,label\ncaf\xe9,0\n"}, {}, "not UTF-8 text: byte 0xe9 at offset 14 (line 2)"),
        ({"test.txt": b"ok\n\ncaf\xe9\n"}, {}, "not UTF-8 text: byte 0xe9 at offset 7 (line 3)"),
        ({"test.csv": "id,label\na,0\na,1\n"}, {}, "duplicate sample ids"),
        ({"test.csv": "label\n0\n", "test.npz": None}, {}, "split 'test' is given twice: test.csv and test.npz"),
        ({"test.csv": "label\n0\n"}, {"label_col": "y"}, "unknown dataset parameter(s) ['label_col']"),
        ({"test.jsonl": '{"text": "a", "label": 0}\n{"text": \n'}, {}, "not a readable JSON Lines file"),
        ({"test.npy": None}, {}, "an .npy split is one 2-D numeric array"),
        ({"notes.md": "nothing here"}, {}, "no dataset found"),
    ],
)
def test_bad_own_data_is_a_clear_error(
    tmp_path: Path, files: dict[str, Any], params: dict[str, Any], message: str
) -> None:
    for name, content in files.items():
        if name.endswith(".npz"):
            np.savez(tmp_path / name, y=np.zeros(1, np.int64))
        elif name.endswith(".npy"):
            np.save(tmp_path / name, np.zeros(4))
        elif isinstance(content, bytes):
            (tmp_path / name).write_bytes(content)
        else:
            (tmp_path / name).write_text(content)
    with pytest.raises(HarnessError) as raised:
        load_suite(source(tmp_path, **params))
    assert message in str(raised.value)
    assert raised.value.where and raised.value.fix  # what, where and what to do


def test_an_empty_split_is_an_error_when_read(tmp_path: Path) -> None:
    write_csv(tmp_path / "test.csv", ["id", "label"], [])
    (tmp_path / "calib").mkdir()
    suite = load_suite(source(tmp_path))
    for name in ("test", "calib"):
        with pytest.raises(HarnessError, match=f"split '{name}' of dataset 'mine' is empty"):
            get_split(suite, name)


# ----------------------------------------------------------------------------- predictions on labels only


def predictions_case(root: Path, *, calib: bool = False, train: bool = False, features: bool = False) -> dict[str, Any]:
    """Labels-only CSVs (test, an OOD set, optionally calib and train) and a predictions file for them."""
    rng = np.random.default_rng(0)
    data, model = root / "data", root / "model"
    model.mkdir(parents=True)
    sizes = {"test": 150, "far": 60} | ({"calib": 90} if calib else {}) | ({"train": 120} if train else {})
    arrays: dict[str, np.ndarray] = {}
    truth: dict[str, Any] = {}
    for split, n in sizes.items():
        ids = [f"{split}-{i:03d}" for i in range(n)]
        labels = rng.integers(0, 3, n) if split != "far" else np.full(n, -1)
        logits = rng.normal(size=(n, 3)) * 1.5
        if split != "far":
            logits[np.arange(n), labels] += 2.0
            write_csv(
                data / f"{split}.csv", ["id", "label"], [[i, CLASSES[y]] for i, y in zip(ids, labels, strict=True)]
            )
        else:
            write_csv(data / f"{split}.csv", ["id"], [[i] for i in ids])
        feats = rng.normal(size=(n, 4)) + (labels[:, None] == np.arange(4)) * 3.0
        arrays[f"{split}.ids"] = np.array(ids[::-1])  # any order: matched by id
        arrays[f"{split}.logits"] = logits[::-1]
        if features:
            arrays[f"{split}.features"] = feats[::-1]
        truth[split] = {
            "labels": labels,
            "logits": logits.astype(np.float32).astype(np.float64),
            "features": feats.astype(np.float32),
        }
    np.savez(model / "predictions.npz", **arrays)
    (model / "card.json").write_text(json.dumps({"name": "exported", "org": "me"}))
    tasks = root / "tasks"
    tasks.mkdir()
    (tasks / "mine-calib.yaml").write_text(
        task_template("calibration", "mine-calib", data=str(data)).replace(
            "params: {}", f"params: {{classes: {CLASSES}}}"
        )
    )
    ood = task_template("ood", "mine-ood", data=str(data)).replace("near_ood: [ood_near]", "near_ood: []")
    (tasks / "mine-ood.yaml").write_text(
        ood.replace("far_ood: [ood_far]", "far_ood: [far]").replace("params: {}", f"params: {{classes: {CLASSES}}}")
    )
    return {"data": data, "model": model, "tasks": tasks, "truth": truth}


def ece_reference(logits: np.ndarray, labels: np.ndarray) -> float:
    import torch
    from torchmetrics.functional.classification import multiclass_calibration_error

    probs = torch.from_numpy(softmax(logits, axis=1))
    return float(multiclass_calibration_error(probs, torch.from_numpy(labels), num_classes=3, n_bins=15, norm="l1"))


def test_predictions_on_labels_only_data_without_calib_or_train(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from sklearn.metrics import accuracy_score, log_loss, roc_auc_score

    case = predictions_case(tmp_path)
    out = tmp_path / "out"
    result = eval_cli(capsys, monkeypatch, "--model", str(case["model"]), "--include-path", str(case["tasks"]),
                      "--tasks", "mine-calib,mine-ood", "--out", str(out))  # fmt: skip
    assert result.code == 0, result.err
    runs = read_results(out)
    calib, ood = runs["mine-calib"], runs["mine-ood"]
    names = {m["name"] for m in calib["metrics"]}
    assert {"ece", "nll", "accuracy"} <= names and not names & {"temperature", "ece_ts", "nll_ts"}
    assert (
        "temperature scaling skipped" in calib["parameters"]["notes"][0] and "reliability_ts" not in calib["artifacts"]
    )
    assert "note: exported mine-calib: temperature scaling skipped" in result.out
    assert "note: exported mine-ood: mahalanobis, knn skipped" in result.out
    assert calib["dataset_fingerprints"].keys() == {"test"} and ood["dataset_fingerprints"].keys() == {"test", "far"}
    test, far = case["truth"]["test"], case["truth"]["far"]
    logits, labels = test["logits"], test["labels"]
    assert metric(calib, "accuracy") == pytest.approx(accuracy_score(labels, logits.argmax(1)), abs=1e-12)
    assert metric(calib, "nll") == pytest.approx(log_loss(labels, softmax(logits, axis=1), labels=[0, 1, 2]), rel=1e-6)
    assert metric(calib, "ece") == pytest.approx(ece_reference(logits, labels), abs=1e-5)
    scores = {
        "msp": lambda z: softmax(z, axis=1).max(axis=1),
        "max_logit": lambda z: z.max(axis=1),
        "energy": lambda z: logsumexp(z, axis=1),
    }
    truth = np.r_[np.ones(len(logits)), np.zeros(len(far["logits"]))]
    for name, score in scores.items():
        expected = roc_auc_score(truth, np.r_[score(logits), score(far["logits"])])
        assert metric(ood, f"auroc.{name}.far") == pytest.approx(expected, abs=1e-9)
    assert not any(m["name"].startswith(("auroc.mahalanobis", "auroc.knn")) for m in ood["metrics"])
    # Re-scored by `harness validate` from the submission alone, with the task folder included.
    checked = run_cli(capsys, monkeypatch, "validate", "--include-path", str(case["tasks"]), str(out))
    assert checked.code == 0, checked.err
    # Worker processes (spawned afresh) see the included tasks too.
    monkeypatch.setattr("harness.validation.MIN_FILES_FOR_WORKERS", 1)
    in_workers = run_cli(capsys, monkeypatch, "validate", "--jobs", "2", "--include-path", str(case["tasks"]), str(out))
    assert in_workers.code == 0 and in_workers.out == checked.out, in_workers.err
    unknown = run_cli(capsys, monkeypatch, "validate", str(out))
    assert unknown.code == 2 and "unknown task 'mine-calib'" in unknown.err


def test_optional_splits_are_used_when_present(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from scipy.optimize import minimize_scalar
    from sklearn.covariance import EmpiricalCovariance
    from sklearn.metrics import roc_auc_score

    case = predictions_case(tmp_path, calib=True, train=True, features=True)
    out = tmp_path / "out"
    result = eval_cli(capsys, monkeypatch, "--model", str(case["model"]), "--include-path", str(case["tasks"]),
                      "--tasks", "mine-calib,mine-ood", "--out", str(out))  # fmt: skip
    assert result.code == 0, result.err
    assert "note:" not in result.out
    runs = read_results(out)
    calib_run, ood_run = runs["mine-calib"], runs["mine-ood"]
    assert "notes" not in calib_run["parameters"] and "notes" not in ood_run["parameters"]
    calib = case["truth"]["calib"]

    def nll(log_t: float) -> float:
        z = calib["logits"] / np.exp(log_t)
        return float(np.mean(logsumexp(z, axis=1) - z[np.arange(len(z)), calib["labels"]]))

    fitted = float(
        np.exp(minimize_scalar(nll, bounds=(np.log(0.05), np.log(100)), method="bounded", options={"xatol": 1e-10}).x)
    )
    assert metric(calib_run, "temperature") == pytest.approx(fitted, rel=1e-4)
    # Mahalanobis: class means and a shared covariance of the train features (scikit-learn's estimator).
    train, test, far = (case["truth"][s] for s in ("train", "test", "far"))
    x, y = train["features"].astype(np.float64), train["labels"]
    means = np.stack([x[y == c].mean(axis=0) for c in range(3)])
    covariance = EmpiricalCovariance(assume_centered=True).fit(x - means[y])

    def score(features: np.ndarray) -> np.ndarray:
        return -np.min([covariance.mahalanobis(features.astype(np.float64) - mean) for mean in means], axis=0)

    expected = roc_auc_score(
        np.r_[np.ones(len(test["labels"])), np.zeros(len(far["labels"]))],
        np.r_[score(test["features"]), score(far["features"])],
    )
    assert metric(ood_run, "auroc.mahalanobis.far") == pytest.approx(expected, abs=1e-9)
    assert any(m["name"] == "auroc.knn.far" for m in ood_run["metrics"])


def test_a_predictions_file_may_leave_out_the_optional_splits(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    case = predictions_case(tmp_path, calib=True, train=True)
    with np.load(case["model"] / "predictions.npz") as loaded:
        kept = {k: loaded[k] for k in loaded.files if not k.startswith(("calib.", "train."))}
    np.savez(case["model"] / "predictions.npz", **kept)
    out = tmp_path / "out"
    result = eval_cli(capsys, monkeypatch, "--model", str(case["model"]), "--include-path", str(case["tasks"]),
                      "--tasks", "mine-calib,mine-ood", "--out", str(out))  # fmt: skip
    assert result.code == 0, result.err
    assert "temperature scaling skipped" in result.out and "mahalanobis, knn skipped" in result.out


def test_mismatched_predictions_are_exit_code_2(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    case = predictions_case(tmp_path)
    file = case["model"] / "predictions.npz"
    with np.load(file) as loaded:
        arrays = {k: loaded[k] for k in loaded.files}
    args = [
        "--model",
        str(case["model"]),
        "--include-path",
        str(case["tasks"]),
        "--tasks",
        "mine-calib",
        "--out",
        str(tmp_path / "o"),
    ]
    np.savez(file, **{**arrays, "test.ids": arrays["test.ids"][:-5], "test.logits": arrays["test.logits"][:-5]})
    result = eval_cli(capsys, monkeypatch, *args)
    assert result.code == 2 and "5 of 150 sample ids of split 'test' have no prediction" in error_line(result)
    np.savez(file, **{**arrays, "test.logits": arrays["test.logits"][:-1]})  # 150 ids, 149 rows
    result = eval_cli(capsys, monkeypatch, *args)
    assert result.code == 2 and "logits must have shape (150, k), got (149, 3)" in error_line(result)
    assert not (tmp_path / "o").exists()


# ----------------------------------------------------------------------------- errors before any model loads


def hf_classifier_folder(root: Path) -> Path:
    """A folder detected as an HF image classifier (its weights are never read: nothing may load it)."""
    root.mkdir(parents=True)
    (root / "config.json").write_text(json.dumps({"architectures": ["ViTForImageClassification"]}))
    return root


@pytest.mark.parametrize(
    ("files", "tasks", "message"),
    [
        (
            {"test.csv": "id,label\na,0\nb,1\n"},
            "calibration",
            "split 'test' of task 'mine' has labels and ids but no inputs",
        ),
        (
            {"test.csv": "id,text\na,hi\n"},
            "calibration",
            "needs a label for every sample (calibration compares confidences with labels), but 1 of 1 samples of split 'test' have none",
        ),
        ({"test.csv": "text,label\nhi,7\n"}, "calibration-classes", "outside the label space"),
        ({"test.csv": "text,label\n"}, "calibration", "split 'test' of dataset 'mine-data' is empty"),
        ({"heldout.txt": b"\xff\xfe broken"}, "lm_loss", "not UTF-8 text"),
        ({"heldout.csv": "f1,label\n1,0\n"}, "lm_loss", "task 'mine' reads text, but split 'heldout' holds no text"),
        ({"test.csv": "text,label\nhi,0\n"}, "longtail", "the dataset has no train split"),
        ({"test.csv": "text,label\nhi,0\n", "far.csv": "text\nx\n"}, "ood-no-sets", "no OOD set"),
    ],
)
def test_bad_own_data_fails_with_exit_2_before_the_model_loads(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    files: dict[str, Any],
    tasks: str,
    message: str,
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for name, content in files.items():
        (data / name).write_bytes(content if isinstance(content, bytes) else content.encode())
    adapter = tasks.split("-")[0]
    text = task_template(adapter, "mine", data=str(data))
    if tasks == "calibration-classes":
        text = text.replace("params: {}", "params: {classes: [a, b]}")
    if tasks == "ood-no-sets":
        text = text.replace("[ood_near]", "[]").replace("[ood_far]", "[]")
    (tmp_path / "mine.yaml").write_text(text)
    model = hf_classifier_folder(tmp_path / "model")
    no_model_loads(monkeypatch)
    result = eval_cli(
        capsys, monkeypatch, "--model", str(model), "--tasks", str(tmp_path / "mine.yaml"), "--out", str(tmp_path / "o")
    )
    assert result.code == 2
    line = error_line(result)
    assert message in line and "[at " in line and " -> " in line  # what, where, what to do
    assert not (tmp_path / "o").exists()


# ----------------------------------------------------------------------------- task files, --include-path, task new


def test_task_files_by_path_and_include_path(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    case = predictions_case(tmp_path)
    by_path = eval_cli(
        capsys,
        monkeypatch,
        "--model",
        str(case["model"]),
        "--tasks",
        str(case["tasks"] / "mine-ood.yaml"),
        "--out",
        str(tmp_path / "a"),
    )
    assert by_path.code == 0, by_path.err
    listed = run_cli(capsys, monkeypatch, "tasks", "--include-path", str(case["tasks"]))
    assert listed.code == 0 and "mine-calib" in listed.out and "longtail-r10" in listed.out  # added to the built-ins
    # A clash with a built-in name is an error that names both files.
    clash = tmp_path / "clash"
    clash.mkdir()
    (clash / "calib.yaml").write_text(task_template("calibration", "calib", data=str(case["data"])))
    for args in (
        ("tasks", "--include-path", str(clash)),
        ("eval", "--model", str(case["model"]), "--tasks", str(clash / "calib.yaml")),
    ):
        result = run_cli(capsys, monkeypatch, *args)
        line = error_line(result)
        assert result.code == 2 and "task 'calib' is defined twice" in line
        assert str(harness_tasks.specs_dir() / "calib.yaml") in line and str(clash / "calib.yaml") in line
    # A file named on --tasks that is not there, and an invalid included spec, name the file.
    missing = eval_cli(capsys, monkeypatch, "--model", str(case["model"]), "--tasks", "nothere.yaml")
    assert missing.code == 2 and "task path does not exist [at nothere.yaml]" in error_line(missing)
    (clash / "calib.yaml").write_text("name: calib\nversion: 0\n")
    (clash / "calib.yaml").rename(clash / "bad.yaml")
    invalid = run_cli(capsys, monkeypatch, "tasks", "--include-path", str(clash))
    assert invalid.code == 2 and str(clash / "bad.yaml") in error_line(invalid)


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_task_new_templates_validate_once_the_path_is_filled_in(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path, adapter: str
) -> None:
    file = tmp_path / "specs" / f"my-{adapter}.yaml"
    result = run_cli(capsys, monkeypatch, "task", "new", "--adapter", adapter, "--out", str(file))
    assert result.code == 0 and PLACEHOLDER_PATH in file.read_text()
    file.write_text(file.read_text().replace(PLACEHOLDER_PATH, str(tmp_path / "my data")))
    spec = load_spec(file)
    assert spec.adapter == adapter and spec.name == f"my-{adapter}" and spec.dataset.path == str(tmp_path / "my data")
    filled = run_cli(
        capsys,
        monkeypatch,
        "task",
        "new",
        "--adapter",
        adapter,
        "--data",
        "data/my data",
        "--out",
        str(tmp_path / "x.yaml"),
    )
    assert filled.code == 0 and load_spec(tmp_path / "x.yaml").dataset.path == "data/my data"
    again = run_cli(capsys, monkeypatch, "task", "new", "--adapter", adapter, "--out", str(tmp_path / "x.yaml"))
    assert again.code == 2 and "the file exists" in error_line(again)
    printed = run_cli(capsys, monkeypatch, "task", "new", "--adapter", adapter)
    assert printed.code == 0 and "name: my-task" in printed.out


def test_task_new_refuses_unknown_adapters_and_names(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    unknown = run_cli(capsys, monkeypatch, "task", "new", "--adapter", "calibrate")
    assert unknown.code == 2 and "no template for adapter 'calibrate'" in error_line(unknown)
    bad = run_cli(capsys, monkeypatch, "task", "new", "--out", str(tmp_path / "my task.yaml"))
    assert bad.code == 2 and "is not a task name" in error_line(bad)


# ----------------------------------------------------------------------------- lm_loss on your own text


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weight GPT-2 with a word-level tokenizer, built offline (seconds)."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    folder = tmp_path_factory.mktemp("lm") / "tiny-gpt"
    words = ["the", "cat", "dog", "sat", "ran", "on", "a", "mat", "far", "away"]
    vocab = {t: i for i, t in enumerate(["<unk>", "<s>", "</s>", *words])}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>", bos_token="<s>", eos_token="</s>")
    torch.manual_seed(0)
    model = GPT2LMHeadModel(
        GPT2Config(
            vocab_size=len(vocab), n_positions=32, n_embd=16, n_layer=1, n_head=2, bos_token_id=1, eos_token_id=2
        )
    )
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def loss_reference(model_folder: Path, texts: list[str]) -> float:
    """Total NLL / total tokens, each document predicted from the BOS token on, in one forward pass each."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_folder)
    model = AutoModelForCausalLM.from_pretrained(model_folder).eval()
    total, count = 0.0, 0
    for text in texts:
        ids = [tokenizer.bos_token_id, *tokenizer(text, add_special_tokens=False)["input_ids"]]
        assert len(ids) <= 32  # one window
        with torch.no_grad():
            logits = model(torch.tensor([ids[:-1]])).logits[0]
        total += float(torch.nn.functional.cross_entropy(logits, torch.tensor(ids[1:]), reduction="sum"))
        count += len(ids) - 1
    return total / count


@pytest.mark.parametrize("layout", ["heldout.txt", "heldout/", "heldout.csv"])
def test_lm_loss_on_your_own_text(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tiny_lm: Path, layout: str
) -> None:
    """Regression: `adapter: lm_loss, dataset: {kind: local}` on a text table crashed with
    "TypeError: 'TextSplit' object is not iterable"; plain text did not exist."""
    documents = ["the cat sat on a mat", "a dog ran far away\nthe dog sat", "cat"]
    data = tmp_path / "data"
    data.mkdir()
    if layout == "heldout.txt":
        (data / "heldout.txt").write_text("\n\n".join(documents) + "\n")
    elif layout == "heldout/":
        (data / "heldout").mkdir()
        for i, text in enumerate(documents):
            (data / "heldout" / f"doc{i}.txt").write_text(text)
    else:  # the case: a table with a text column
        write_csv(data / "heldout.csv", ["text", "label"], [[t, 0] for t in documents])
    spec = tmp_path / "my-loss.yaml"
    spec.write_text(task_template("lm_loss", "my-loss", data=str(data)))
    out = tmp_path / "out"
    result = eval_cli(capsys, monkeypatch, "--model", str(tiny_lm), "--tasks", str(spec), "--out", str(out))
    assert result.code == 0, result.err
    run = read_results(out)["my-loss"]
    assert metric(run, "loss_nats") == pytest.approx(loss_reference(tiny_lm, documents), rel=1e-5)
    assert metric(run, "perplexity") == pytest.approx(np.exp(metric(run, "loss_nats")), rel=1e-9)
    assert run["parameters"]["n_documents"] == 3


def test_a_builtin_task_on_predictions_without_calib_is_still_re_scored(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from harness.data.digits import digits_ood_suite
    from harness.trust import Tier
    from harness.validation import validate_files

    test = digits_ood_suite().split("test")
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(len(test), 6))
    logits[np.arange(len(test)), test.y] += 3.0
    model = tmp_path / "model"
    model.mkdir()
    np.savez(model / "predictions.npz", **{"test.ids": np.array(test.ids), "test.logits": logits})
    (model / "card.json").write_text(json.dumps({"name": "p", "trained_on": "digits-ood"}))
    result = eval_cli(capsys, monkeypatch, "--model", str(model), "--tasks", "calib", "--out", str(tmp_path / "out"))
    assert result.code == 0, result.err
    assert "temperature scaling skipped" in result.out
    tiers: dict[str, Tier] = {}
    valid, problems = validate_files([tmp_path / "out"], tiers=tiers)
    assert not problems and len(valid) == 1 and list(tiers.values()) == ["re-scored"]


def test_longtail_on_own_labels_and_predictions(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from sklearn.metrics import balanced_accuracy_score

    rng = np.random.default_rng(3)
    data, model = tmp_path / "data", tmp_path / "model"
    train_labels = np.repeat([0, 1, 2], [150, 50, 5])  # many, medium and few-shot classes
    write_csv(data / "train.csv", ["label"], [[CLASSES[y]] for y in train_labels])  # labels are enough
    labels = np.repeat([0, 1, 2], 40)
    ids = [f"t{i}" for i in range(len(labels))]
    write_csv(data / "test.csv", ["id", "label"], [[i, CLASSES[y]] for i, y in zip(ids, labels, strict=True)])
    logits = rng.normal(size=(len(labels), 3))
    logits[np.arange(len(labels)), labels] += np.array([3.0, 1.0, 0.0])[labels]
    model.mkdir()
    np.savez(model / "predictions.npz", **{"test.ids": np.array(ids), "test.logits": logits})
    spec = tmp_path / "mine-lt.yaml"
    spec.write_text(
        task_template("longtail", "mine-lt", data=str(data)).replace("params: {}", f"params: {{classes: {CLASSES}}}")
    )
    out = tmp_path / "out"
    result = eval_cli(capsys, monkeypatch, "--model", str(model), "--tasks", str(spec), "--out", str(out))
    assert result.code == 0, result.err
    run = read_results(out)["mine-lt"]
    predictions = logits.astype(np.float32).argmax(axis=1)
    assert metric(run, "balanced_accuracy") == pytest.approx(balanced_accuracy_score(labels, predictions), abs=1e-12)
    assert metric(run, "many_shot_accuracy") == pytest.approx(float(np.mean(predictions[labels == 0] == 0)), abs=1e-12)
    assert metric(run, "few_shot_accuracy") == pytest.approx(float(np.mean(predictions[labels == 2] == 2)), abs=1e-12)
    assert run["artifacts"]["per_class"]["train_count"] == [150, 50, 5]
