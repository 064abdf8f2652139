"""Local folders and HF datasets as dataset sources, offline, with folders the tests write."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from harness.data import get_split, load_suite, named_split
from harness.data.digits import digits_ood_suite, digits_suite
from harness.errors import HarnessError
from harness.runner import EvalOptions, Runner, load_models
from harness.schema import DatasetSource
from harness.tasks import load_spec

SPLITS = ("train", "calib", "test")


def write_npz(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in SPLITS:
        split = digits_ood_suite().split(name)
        np.savez(folder / f"{name}.npz", x=split.x, y=split.y, ids=np.asarray(split.ids))


def spec_file(folder: Path, dataset: str) -> Path:
    file = folder / "localcalib.yaml"
    file.write_text(
        "name: localcalib\nversion: 1\nadapter: calibration\ndescription: d\n"
        f"dataset: {dataset}\nparameters: {{n_resamples: 50}}\nmain_metric: ece\n"
    )
    return file


def test_local_npz_equals_the_builtin_suite(tmp_path: Path) -> None:
    write_npz(tmp_path / "data")
    suite = load_suite(DatasetSource(kind="local", name="mydigits", path=str(tmp_path / "data")))
    assert suite.n_classes == 6
    for name in SPLITS:
        assert suite.split(name).fingerprint == digits_ood_suite().split(name).fingerprint


def test_evaluating_on_a_local_dataset_matches_the_builtin_one(tiny_zoo: Path, tmp_path: Path) -> None:
    write_npz(tmp_path / "data")
    local = load_spec(spec_file(tmp_path, f"{{kind: local, name: mydigits, path: '{tmp_path / 'data'}'}}"))
    builtin = load_spec(spec_file(tmp_path, "{kind: builtin, name: digits-ood, params: {seed: 0}}"))
    options = EvalOptions(cache_dir=tmp_path / "cache")
    handle = load_models([tiny_zoo / "digits-mlp-wide"], options, "cpu")[0]
    a = Runner(options).evaluate(handle, [local])
    b = Runner(options).evaluate(handle, [builtin])
    assert a.cache_misses == 2 and b.cache_hits == 2  # same fingerprints -> the same cached outputs
    assert a.submission.results[0].metrics == b.submission.results[0].metrics


def test_parquet_text_and_vector_splits(tmp_path: Path) -> None:
    pq.write_table(pa.table({"text": ["a b", "c"], "label": [0, 1], "id": ["x", "y"]}), tmp_path / "test.parquet")
    pq.write_table(pa.table({"x": [[0.0, 1.0], [1.0, 0.0]], "label": [1, 0]}), tmp_path / "train.parquet")
    suite = load_suite(DatasetSource(kind="local", name="p", path=str(tmp_path)))
    assert suite.split("test").texts == ["a b", "c"] and suite.split("test").ids == ["x", "y"]
    assert suite.split("train").x.shape == (2, 2) and suite.split("train").ids == ["train-0", "train-1"]


def test_image_folder(tmp_path: Path) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for label in ("cat", "dog"):
            (tmp_path / split / label).mkdir(parents=True)
            for i in range(3):
                pixels = rng.integers(0, 256, size=(6, 6), dtype=np.uint8)
                Image.fromarray(pixels, mode="L").save(tmp_path / split / label / f"{i}.png")
    suite = load_suite(DatasetSource(kind="local", name="pets", path=str(tmp_path)))
    test = suite.split("test")
    assert test.x.shape == (6, 6, 6, 1) and test.y.tolist() == [0, 0, 0, 1, 1, 1]
    pixels = np.asarray(test.x)  # the images stay encoded; an array decodes them all
    assert pixels.min() >= 0.0 and pixels.max() <= 1.0
    assert test.ids[0] == "test/cat/0.png"


def test_hf_dataset_saved_to_disk(tmp_path: Path) -> None:
    import datasets
    from PIL import Image

    split = digits_suite().split("test").head(12)
    images = [Image.fromarray(np.rint(x.reshape(8, 8) * 255).astype(np.uint8), mode="L") for x in split.x]
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(num_classes=10)})
    data = datasets.Dataset.from_dict({"image": images, "label": split.y.tolist()}, features=features)
    datasets.DatasetDict({"validation": data}).save_to_disk(str(tmp_path / "hf"))
    source = DatasetSource(
        kind="hf", name="digits-copy", path=str(tmp_path / "hf"), params={"splits": {"test": "validation"}}
    )
    suite = load_suite(source)
    test = suite.split("test")
    assert suite.n_classes == 10 and test.x.shape == (12, 8, 8, 1)
    assert np.allclose(test.x.reshape(12, 64), split.x, atol=1 / 255)
    with pytest.raises(HarnessError, match="no split 'train'"):
        load_suite(source.model_copy(update={"params": {"splits": {"test": "train"}}}))


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({}, "no dataset found"),
        ({"test.npz": {"inputs": np.zeros((2, 2))}}, "an .npz split holds arrays y"),
        ({"test.npz": {"x": np.zeros((2, 2)), "y": np.array([0.5, 1.5])}}, "labels must be integers"),
        (
            {"test.npz": {"x": np.zeros((2, 2)), "y": np.array([0, 1]), "ids": np.array(["a", "a"])}},
            "duplicate sample ids",
        ),
        ({"test.npz": {"x": np.zeros((3, 2)), "y": np.array([0, 1])}}, "3 inputs, 2 labels"),
    ],
)
def test_bad_local_data_is_a_clear_error(tmp_path: Path, files: dict[str, dict[str, np.ndarray]], message: str) -> None:
    for name, arrays in files.items():
        np.savez(tmp_path / name, **arrays)  # type: ignore[arg-type]
    with pytest.raises(HarnessError, match=message):
        load_suite(DatasetSource(kind="local", name=f"bad-{len(files)}-{message[:5]}", path=str(tmp_path)))


def test_empty_local_split_is_a_clear_error(tmp_path: Path) -> None:
    np.savez(tmp_path / "test.npz", x=np.zeros((0, 4)), y=np.zeros(0, dtype=np.int64))
    suite = load_suite(DatasetSource(kind="local", name="empty", path=str(tmp_path)))
    with pytest.raises(HarnessError, match="is empty"):
        get_split(suite, "test")


def test_an_unknown_split_names_the_dataset_and_lists_its_splits() -> None:
    assert named_split("d", {"train": 1, "test": 2}, "test") == 2
    with pytest.raises(HarnessError, match="dataset 'digits' has no split 'valid'") as raised:
        digits_suite().split("valid")
    assert raised.value.fix == "known splits: " + ", ".join(digits_suite().splits)
