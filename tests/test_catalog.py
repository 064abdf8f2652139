"""The standard-benchmark catalog (tasks/catalog/): every task end to end on a fixture mirror, data
resolved offline-first with actionable errors, `harness data`, and models fitted by their label names.

Nothing is downloaded: tests/data/make_catalog_mirror.py writes tiny copies of every catalog dataset
in the mirror's real formats, and the specs are the catalog's own, shrunk only where they size
full datasets (row slices, ImageNet's crop)."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from cli_helpers import run_cli

sys.path.insert(0, str(Path(__file__).parent / "data"))
import make_catalog_mirror as mirror_fixture

from harness.errors import HarnessError
from harness.schema import HubSplit

TASKS = Path(__file__).resolve().parents[1] / "tasks"
#: the catalog's tasks, by the model the end-to-end test runs them on
IMAGE_AND_TEXT_RUNS = {
    "cifar10": [
        "ood-cifar10",
        "ood-cifar10-openood",
        "calib-cifar10",
        "lt-cifar10-r10",
        "lt-cifar10-r50",
        "lt-cifar10-r100",
    ],
    "cifar100": [
        "ood-cifar100",
        "ood-cifar100-openood",
        "calib-cifar100",
        "lt-cifar100-r10",
        "lt-cifar100-r50",
        "lt-cifar100-r100",
    ],
    "imagenet": ["ood-imagenet", "ood-imagenet200", "calib-imagenet", "lt-imagenet"],
    "clinc": ["ood-clinc150"],
    "sst2": ["ood-sst2-20ng"],
}
RETRIEVAL_TASKS = ["beir-scifact", "beir-nfcorpus", "beir-fiqa", "beir-arguana"]
LM_TASKS = ["lm-wikitext103", "lm-c4", "calib-openbookqa", "calib-arc-challenge", "compression-wikitext"]


def catalog_names() -> set[str]:
    return {f.stem for f in (TASKS / "catalog").rglob("*.yaml")}


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The fixture mirror, the shrunk specs and the classifiers (about 20 s), built once."""
    root = tmp_path_factory.mktemp("catalog")
    mirror_fixture.build_data(root / "data")
    mirror_fixture.fixture_specs(TASKS, root / "tasks")
    return {"root": root, "models": mirror_fixture.build_models(root / "models")}


@pytest.fixture
def on_mirror(catalog: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setenv("HARNESS_DATA_DIR", str(catalog["root"] / "data"))
    monkeypatch.setenv("HARNESS_TASKS_DIR", str(catalog["root"] / "tasks"))
    return catalog


def eval_ok(capsys: Any, monkeypatch: Any, model: Path, tasks: list[str], out: Path, *extra: str) -> dict[str, Any]:
    """`harness eval` of `model` on `tasks` (exit 0); the submission it wrote."""
    result = run_cli(capsys, monkeypatch, "eval", "--model", str(model), "--tasks", ",".join(tasks), "--no-store", "--out", str(out), *extra)  # fmt: skip
    assert result.code == 0, result.err + result.out
    written = sorted(out.rglob("*.json"), key=lambda f: f.stat().st_mtime)[-1]
    submission = json.loads(written.read_text())
    assert sorted(r["task"] for r in submission["results"]) == sorted(tasks)
    return submission


# --------------------------------------------------------------------------- every task, end to end


def test_the_end_to_end_runs_cover_the_whole_catalog() -> None:
    covered = {t for tasks in IMAGE_AND_TEXT_RUNS.values() for t in tasks} | set(RETRIEVAL_TASKS) | set(LM_TASKS)
    assert covered == catalog_names()


def test_image_text_and_retrieval_tasks_run_end_to_end_and_validate(
    on_mirror: dict[str, Any], tmp_path: Path, capsys: Any, monkeypatch: Any
) -> None:
    from harness.models.sentence_encoder import packaged_minilm_path

    out = tmp_path / "submissions"
    for model, tasks in IMAGE_AND_TEXT_RUNS.items():
        submission = eval_ok(capsys, monkeypatch, on_mirror["models"][model], tasks, out)
        for run in submission["results"]:
            assert all(math.isfinite(m["value"]) for m in run["metrics"])
    retrieval = eval_ok(capsys, monkeypatch, packaged_minilm_path(), RETRIEVAL_TASKS, out)
    arguana = next(r for r in retrieval["results"] if r["task"] == "beir-arguana")
    assert arguana["parameters"]["own_documents_removed"] == 8  # every query is a document of the corpus
    # the runs bind to the catalog data: `harness validate` re-reads it and re-scores every run
    result = run_cli(capsys, monkeypatch, "validate", str(out))
    assert result.code == 0, result.err + result.out
    assert f"{len(IMAGE_AND_TEXT_RUNS) + 1} valid" in result.out


@pytest.mark.slow
def test_language_model_tasks_run_end_to_end(
    on_mirror: dict[str, Any], lm_zoo: Path, tmp_path: Path, capsys: Any, monkeypatch: Any
) -> None:
    """WikiText-103 and C4 loss with bits per byte, OpenBookQA and ARC-Challenge (3 to 5 choices)
    calibration over choices (lm-eval's own prompts), and a compressed zoo model against its reference on
    real-text prompts."""
    candidate = lm_zoo / "synthlang-gpt2-tiny-base-int8"  # its card names the reference beside it
    submission = eval_ok(capsys, monkeypatch, candidate, LM_TASKS, tmp_path / "submissions")
    runs = {r["task"]: {m["name"]: m for m in r["metrics"]} for r in submission["results"]}
    for task in ("lm-wikitext103", "lm-c4"):
        loss, bits = runs[task]["loss_nats"]["value"], runs[task]["bits_per_byte"]["value"]
        parameters = next(r["parameters"] for r in submission["results"] if r["task"] == task)
        assert bits == pytest.approx(loss * parameters["n_tokens"] / parameters["n_bytes"] / math.log(2))
    assert runs["calib-openbookqa"]["accuracy"]["n"] == 24  # the fixture's OpenBookQA test questions
    # ARC's questions have 3, 4 and 5 choices in turn: the missing ones carry probability 0 in the stored logits
    assert runs["calib-arc-challenge"]["accuracy"]["n"] == 20
    import pyarrow.parquet as pq

    written = sorted((tmp_path / "submissions").rglob("*.parquet"), key=lambda f: f.stat().st_mtime)[-1]
    table = pq.read_table(written).to_pandas()
    arc = table[(table["task"] == "calib-arc-challenge") & (table["split"] == "test")]
    values = np.stack(arc["values"].to_numpy())
    real = values > values.max(axis=1, keepdims=True) - 1000.0
    assert values.shape == (20, 5) and real.sum(axis=1).tolist() == [3 + n % 3 for n in range(20)]
    assert 0 < runs["compression-wikitext"]["top1_agreement"]["value"] <= 1
    result = run_cli(capsys, monkeypatch, "validate", str(tmp_path / "submissions"))
    assert result.code == 0, result.err + result.out


def test_bits_per_byte_equals_lm_evals_aggregation() -> None:
    """Our bits_per_byte from per-document (NLL, bytes) is lm-eval's bits_per_byte of (loglik, bytes)."""
    from lm_eval.api.metrics import bits_per_byte

    from harness.schema import DatasetSource, TaskSpec
    from harness.tasks.base import Samples
    from harness.tasks.lm_loss import ADAPTER

    rng = np.random.default_rng(0)
    nll, tokens, n_bytes = rng.uniform(10, 500, 40), rng.integers(5, 100, 40), rng.integers(20, 600, 40)
    spec = TaskSpec(
        name="bpb", version=1, adapter="lm_loss", description="", main_metric="bits_per_byte",
        dataset=DatasetSource(name="synthlang"), parameters={"bits_per_byte": True, "n_resamples": 50},
    )  # fmt: skip
    block = Samples("heldout", [f"d{i}" for i in range(40)], np.zeros(40, np.int64), np.stack([nll, tokens, n_bytes], 1), ["nll_sum", "n_tokens", "n_bytes"])  # fmt: skip
    ours = next(m for m in ADAPTER.score(spec, {"heldout": block}, 0).metrics if m.name == "bits_per_byte")
    assert ours.value == pytest.approx(bits_per_byte(list(zip(-nll, n_bytes, strict=True))))


# --------------------------------------------------------------------------- offline-first data


def test_tasks_lists_the_catalog_as_needing_data(tmp_path: Path, capsys: Any, monkeypatch: Any) -> None:
    monkeypatch.setenv("HARNESS_DATA_DIR", str(tmp_path / "empty"))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "no-hf-cache"))
    result = run_cli(capsys, monkeypatch, "tasks")
    assert result.code == 0
    for name in catalog_names():
        assert f"harness data fetch {name}" in result.out.replace("\n", " ") or name in result.out
    assert "needs data" in result.out
    listing = run_cli(capsys, monkeypatch, "data", "list", "calib-cifar10")
    assert "mteb/cifar10@69a62dd171e24a133d193073e73fda4dbb823266:train" in listing.out and "missing" in listing.out


def test_missing_data_is_one_line_naming_dataset_revision_split_and_the_command(
    catalog: dict[str, Any], tmp_path: Path, capsys: Any, monkeypatch: Any
) -> None:
    monkeypatch.setenv("HARNESS_DATA_DIR", str(tmp_path / "empty"))
    model = str(catalog["models"]["cifar10"])
    result = run_cli(capsys, monkeypatch, "eval", "--model", model, "--tasks", "calib-cifar10", "--no-store")
    assert result.code == 2
    (line,) = result.err.strip().splitlines()
    assert "mteb/cifar10@69a62dd171e24a133d193073e73fda4dbb823266:train" in line
    assert "`harness data fetch calib-cifar10`" in line and str(tmp_path / "empty") in line


def test_a_manual_split_says_where_to_download_it(tmp_path: Path, monkeypatch: Any) -> None:
    from harness.data.mirror import read_split

    monkeypatch.setenv("HARNESS_DATA_DIR", str(tmp_path))
    hub = HubSplit(dataset="openood/places365", split="test", ood=True, fetch="manual", url="https://example.org/x")
    with pytest.raises(HarnessError) as error:
        read_split(hub, task="ood-cifar10", harness_split="places365")
    assert (
        "https://example.org/x" in error.value.one_line() and "openood/places365/default/main" in error.value.one_line()
    )


def test_fetch_refuses_offline(capsys: Any, monkeypatch: Any) -> None:
    result = run_cli(capsys, monkeypatch, "data", "fetch", "calib-cifar10")
    assert result.code == 2
    assert "HF_HUB_OFFLINE" in result.err and "network access" in result.err


def test_fetch_writes_the_mirror_and_its_manifest(tmp_path: Path, capsys: Any, monkeypatch: Any) -> None:
    """`harness data fetch` with the hub replaced by local datasets: parquet files and a manifest with
    the resolved revision; the task then reads them."""
    import harness.data_cli as data_cli

    rng = np.random.default_rng(0)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "0")
    monkeypatch.setenv("HARNESS_DATA_DIR", str(tmp_path / "mirror"))
    sizes = {"train": 60, "test": 12}
    monkeypatch.setattr(
        data_cli, "_download", lambda hub: mirror_fixture.image_dataset(rng, sizes[hub.split], mirror_fixture.CIFAR10, ("img", "label"))
    )  # fmt: skip
    monkeypatch.setattr("harness.data.mirror.resolved_revision", lambda hub: "f" * 40)
    result = run_cli(capsys, monkeypatch, "data", "fetch", "lt-cifar10-r10")
    assert result.code == 0, result.err
    folder = tmp_path / "mirror" / "mteb/cifar10/default/69a62dd171e24a133d193073e73fda4dbb823266"
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["resolved_revision"] == "f" * 40 and manifest["splits"]["train"]["rows"] == 60
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    check = run_cli(capsys, monkeypatch, "data", "check", "lt-cifar10-r10")
    assert check.code == 0, check.err
    assert "mirror" in check.out


def test_data_check_reads_every_split(on_mirror: dict[str, Any], capsys: Any, monkeypatch: Any) -> None:
    result = run_cli(capsys, monkeypatch, "data", "check", "ood-clinc150", "beir-scifact", "lm-wikitext103")
    assert result.code == 0, result.err
    assert "oos" in result.out and "queries" in result.out


def test_a_split_reads_the_same_from_parquet_and_from_save_to_disk(tmp_path: Path, monkeypatch: Any) -> None:
    """The fingerprint covers content, not where it was read from: shared cached outputs."""
    import datasets

    from harness.data import clear_suites, load_suite
    from harness.schema import DatasetSource

    dataset = mirror_fixture.image_dataset(np.random.default_rng(0), 12, mirror_fixture.CIFAR10, ("img", "label"))
    source = DatasetSource(
        kind="hub", name="x", modality="image", splits={"test": HubSplit(dataset="a/b", split="test", input="img", label="label")}
    )  # fmt: skip
    prints = []
    for layout in ("parquet", "save_to_disk"):
        root = tmp_path / layout
        target = root / "a/b/default/main"
        target.mkdir(parents=True)
        if layout == "parquet":
            dataset.to_parquet(str(target / "test.parquet"))
        else:
            datasets.DatasetDict({"test": dataset}).save_to_disk(str(target))
        monkeypatch.setenv("HARNESS_DATA_DIR", str(root))
        clear_suites()
        suite = load_suite(source)
        assert suite.class_names == tuple(mirror_fixture.CIFAR10)
        prints.append(suite.split("test").fingerprint)
    assert prints[0] == prints[1]


def test_label_filters_must_name_the_datasets_classes(tmp_path: Path, monkeypatch: Any) -> None:
    """keep_labels / drop_labels name classes of the dataset: a misspelt one is an error, not a class
    that silently leaves the task's label space."""
    from harness.data import clear_suites, load_suite
    from harness.schema import DatasetSource

    dataset = mirror_fixture.image_dataset(np.random.default_rng(0), 20, mirror_fixture.CIFAR10, ("img", "label"))
    target = tmp_path / "a/b/default/main"
    target.mkdir(parents=True)
    dataset.to_parquet(str(target / "test.parquet"))
    monkeypatch.setenv("HARNESS_DATA_DIR", str(tmp_path))

    def suite(**filters: list[str]) -> Any:
        clear_suites()
        split = HubSplit(dataset="a/b", split="test", input="img", label="label", **filters)
        return load_suite(DatasetSource(kind="hub", name="x", modality="image", splits={"test": split}))

    kept = suite(keep_labels=["cat", "dog"])
    assert kept.class_names == ("cat", "dog")
    assert set(kept.split("test").y.tolist()) <= {0, 1} and len(kept.split("test")) == 4
    assert "truck" not in suite(drop_labels=["truck"]).class_names
    with pytest.raises(HarnessError, match=r"not among its 10 classes: 'dgo'") as raised:
        suite(keep_labels=["cat", "dgo"])
    assert "keep_labels / drop_labels" in (raised.value.fix or "")
    with pytest.raises(HarnessError, match=r"'lorry', 'plane'"):
        suite(drop_labels=["plane", "lorry"])


def test_unnamed_labels_filter_only_by_labels_the_rows_have(tmp_path: Path, monkeypatch: Any) -> None:
    """Without class names, a filter label no row carries is an error too (it would filter nothing)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from harness.data import clear_suites, load_suite
    from harness.schema import DatasetSource

    rng = np.random.default_rng(0)
    target = tmp_path / "a/b/default/main"
    target.mkdir(parents=True)
    images = [{"bytes": mirror_fixture.encoded(mirror_fixture.image(rng, y)), "path": None} for y in range(4)]
    pq.write_table(pa.table({"image": images, "label": [0, 1, 2, 3]}), target / "test.parquet")
    monkeypatch.setenv("HARNESS_DATA_DIR", str(tmp_path))

    def suite(**filters: list[str]) -> Any:
        clear_suites()
        split = HubSplit(dataset="a/b", split="test", label="label", **filters)
        return load_suite(DatasetSource(kind="hub", name="x", modality="image", splits={"test": split}))

    assert len(suite(drop_labels=["3"]).split("test")) == 3
    with pytest.raises(HarnessError, match=r"not among its 4 classes: 'bubbly'"):
        suite(drop_labels=["bubbly"])


def _files_mirror(root: Path, names: list[str | None]) -> Any:
    """A parquet split whose image column keeps the file `names` (None: bytes only)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(0)
    target = root / "a/b/default/main"
    target.mkdir(parents=True, exist_ok=True)
    images = [{"bytes": mirror_fixture.encoded(mirror_fixture.image(rng, i)), "path": n} for i, n in enumerate(names)]
    pq.write_table(pa.table({"image": images, "label": [i % 2 for i in range(len(names))]}), target / "test.parquet")


def test_drop_files_leaves_out_the_listed_files_by_name(tmp_path: Path, monkeypatch: Any) -> None:
    """OpenOOD's ImageNet holdout applied by file name: a listed name matches the file of that name, with
    any extension and with the hub's '_<synset>' suffix, and nothing else (not a longer number)."""
    from harness.data import clear_suites, load_suite
    from harness.data.catalog import file_list
    from harness.schema import DatasetSource

    listed = file_list("openood-imagenet-val")
    assert len(listed) == len(set(listed)) == 5000 and listed[:2] == [
        "ILSVRC2012_val_00000013",
        "ILSVRC2012_val_00000015",
    ]
    names = [
        "ILSVRC2012_val_00000013_n01440764.JPEG",  # listed, hub style
        "val/n01443537/ILSVRC2012_val_00000015.JPEG",  # listed, ImageFolder style
        "ILSVRC2012_val_00000014_n01440764.JPEG",  # not listed
        "ILSVRC2012_val_000000130_n01440764.JPEG",  # a longer number: not listed
        "ILSVRC2012_val_00000025.png",  # listed
    ]
    _files_mirror(tmp_path, names)
    monkeypatch.setenv("HARNESS_DATA_DIR", str(tmp_path))

    def suite(**fields: Any) -> Any:
        clear_suites()
        split = HubSplit(dataset="a/b", split="test", label="label", **fields)
        return load_suite(DatasetSource(kind="hub", name="x", modality="image", splits={"test": split}))

    assert suite(drop_files="openood-imagenet-val").split("test").ids == ["test-2", "test-3"]
    assert len(suite().split("test")) == 5
    with pytest.raises(
        ValueError,
        match=r"no file list 'imagenet-val' ships with Harness \(lists: openood-cifar10-near-cifar100-val, "
        r"openood-cifar10-val, openood-cifar100-val, openood-imagenet-val\)",
    ):
        HubSplit(dataset="a/b", split="test", drop_files="imagenet-val")
    # a copy whose files are named otherwise would silently keep everything: refused
    _files_mirror(tmp_path, [f"{i:05d}.jpg" for i in range(3)])
    with pytest.raises(HarnessError, match=r"none of the 3 files .* is in the file list 'openood-imagenet-val'"):
        suite(drop_files="openood-imagenet-val")
    _files_mirror(tmp_path, [None, None])
    with pytest.raises(HarnessError, match="keeps no image file names") as raised:
        suite(drop_files="openood-imagenet-val")
    assert "image folder" in (raised.value.fix or "")


# --------------------------------------------------------------------------- original row orders


def _block_labels(block: Any, rng: np.random.Generator) -> np.ndarray:
    """Labels with a block's fingerprint: its first labels, then the rest of its label counts, shuffled."""
    rest = np.asarray(block.label_counts) - np.bincount(block.first_labels, minlength=len(block.label_counts))
    return np.concatenate([block.first_labels, rng.permutation(np.repeat(np.arange(len(rest)), rest))])


def _cifar10_train(order: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """CIFAR-10-like training labels whose blocks carry the real batches' fingerprints: (the original order,
    data_batch_1 ... data_batch_5; a copy with the batches in `order`)."""
    from harness.data.orders import row_order

    rng = np.random.default_rng(0)
    blocks = {b.name: _block_labels(b, rng) for b in row_order("cifar10-train").blocks}
    original = np.concatenate([blocks[f"data_batch_{i}"] for i in range(1, 6)])
    return original, np.concatenate([blocks[f"data_batch_{i}"] for i in order])


def test_shipped_row_orders_are_consistent() -> None:
    """The row orders' transcribed facts agree with each other and with the datasets' class names."""
    from harness.data.orders import RowOrder, row_order

    cifar10 = row_order("cifar10-train")
    assert cifar10.classes == mirror_fixture.CIFAR10  # CIFAR-10's label ids 0-9 (the hub's ClassLabel names)
    assert [b.name for b in cifar10.blocks] == [f"data_batch_{i}" for i in range(1, 6)]
    assert {b.rows for b in cifar10.blocks} == {10_000}
    assert np.sum([b.label_counts for b in cifar10.blocks], axis=0).tolist() == [5000] * 10
    cifar100 = row_order("cifar100-train")
    openood = yaml.safe_load((TASKS / "catalog/ood/ood-cifar100-openood.yaml").read_text())
    assert cifar100.classes == openood["dataset"]["label_names"]  # the fine classes, alphabetical
    (block,) = cifar100.blocks
    assert block.rows == 50_000 and set(block.label_counts) == {500}
    assert [cifar100.classes[y] for y in block.first_labels[:4]] == ["cattle", "dinosaur", "apple", "boy"]
    with pytest.raises(ValueError, match="label_counts must be 2 counts summing to its rows"):
        RowOrder(
            name="x",
            classes=["a", "b"],
            blocks=[{"name": "b", "rows": 9, "label_counts": [5, 5], "first_labels": [0] * 5}],
        )
    with pytest.raises(ValueError, match="more of a class than label_counts"):
        RowOrder(
            name="x",
            classes=["a", "b"],
            blocks=[{"name": "b", "rows": 9, "label_counts": [4, 5], "first_labels": [0] * 5}],
        )
    with pytest.raises(
        ValueError,
        match=r"no row order 'cifar10' ships with Harness \(orders: cifar10-test, cifar10-train, cifar100-test, cifar100-train\)",
    ):
        HubSplit(dataset="a/b", split="train", label="label", row_order="cifar10")
    with pytest.raises(ValueError, match="row_order needs the split's label column"):
        HubSplit(dataset="a/b", split="train", row_order="cifar10-train")


def test_row_orders_agree_with_mtebs_statistics_of_the_pinned_copies() -> None:
    """MTEB's descriptive statistics (package data, computed on the very revisions the catalog pins) list
    each split's labels in order of first appearance: the pinned CIFAR-10 train split starts with
    data_batch_4's labels, not data_batch_1's (the hub's batch order), and the other splits start with
    their pickles' first labels; the class counts are the orders'."""
    import mteb

    from harness.data.orders import row_order
    from harness.schema import TaskSpec

    def first_appearances(labels: list[int]) -> list[int]:
        return list(dict.fromkeys(labels))

    stats_folder = Path(mteb.__file__).parent / "descriptive_stats" / "Image" / "ImageClassification"
    specs = {"calib-cifar10": "CIFAR10", "calib-cifar100": "CIFAR100"}
    pinned = {}
    for name, task in specs.items():
        spec = TaskSpec.model_validate(yaml.safe_load((TASKS / "catalog/calibration" / f"{name}.yaml").read_text()))
        hub = spec.dataset.splits["calib"]
        assert mteb.get_task(task).metadata.dataset == {"path": hub.dataset, "revision": hub.revision}
        pinned[task] = json.loads((stats_folder / f"{task}.json").read_text())
    cases = [  # (task, split, order, the block the copy starts with)
        ("CIFAR10", "train", "cifar10-train", "data_batch_4"),
        ("CIFAR10", "test", "cifar10-test", "test_batch"),
        ("CIFAR100", "train", "cifar100-train", "train"),
        ("CIFAR100", "test", "cifar100-test", "test"),
    ]
    for task, split, name, first in cases:
        order = row_order(name)
        labels = pinned[task][split]["label_statistics"]["labels"]
        seen = [int(y) for y in labels]  # in order of first appearance in the pinned copy
        block = next(b for b in order.blocks if b.name == first)
        expected = first_appearances(block.first_labels)
        assert seen[: len(expected)] == expected, (task, split)
        totals = np.sum([b.label_counts for b in order.blocks], axis=0).tolist()
        assert [labels[str(c)]["count"] for c in range(len(order.classes))] == totals
    torchvision_start = first_appearances(row_order("cifar10-train").blocks[0].first_labels)
    assert [int(y) for y in pinned["CIFAR10"]["train"]["label_statistics"]["labels"]][:3] != torchvision_start[:3]


def test_original_positions_undo_the_hubs_batch_order() -> None:
    """The hub's CIFAR-10 train rows are data_batch_4, 3, 2, 5, 1: each block is recognised by its label
    counts and first labels and the rows are put back in torchvision's order; any other copy is refused."""
    from harness.data.orders import original_positions, row_order

    order = row_order("cifar10-train")
    original, hub = _cifar10_train([4, 3, 2, 5, 1])
    positions = original_positions([mirror_fixture.CIFAR10[y] for y in hub], order, "the copy", "here")
    assert hub[positions].tolist() == original.tolist()
    # Guo et al.'s last 5,000 (data_batch_5's second half) are hub rows 35,000-39,999, not its last 5,000
    assert positions[45_000:] == list(range(35_000, 40_000))
    assert original_positions(original.tolist(), order, "the copy", "here") == list(range(50_000))  # unnamed ids
    with pytest.raises(HarnessError, match=r"not 'cifar10-train' in any block order: rows 0 on match none") as raised:
        original_positions(np.sort(hub).tolist(), order, "the copy", "here")  # an image folder: sorted by class
    assert "sorted by class" in (raised.value.fix or "")
    relabelled = hub.copy()
    relabelled[15_000] = (relabelled[15_000] + 1) % 10  # one label changed in the second block (data_batch_3)
    with pytest.raises(HarnessError, match="rows 10,000 on match none of its blocks"):
        original_positions(relabelled.tolist(), order, "the copy", "here")
    with pytest.raises(HarnessError, match="has 49,999 rows; row order 'cifar10-train' is 50,000"):
        original_positions(hub[:-1].tolist(), order, "the copy", "here")
    with pytest.raises(HarnessError, match=r"labels that are not among the 10 classes .*'plane'"):
        original_positions(["plane"] + [mirror_fixture.CIFAR10[y] for y in hub[1:]], order, "the copy", "here")


def _write_cifar10_train(root: Path, labels: np.ndarray, hub: HubSplit) -> None:
    """A 50,000-row CIFAR-10 train split in the mirror, as `harness data fetch` writes it (one image per
    class, shared by its rows: only the labels and the row order matter here)."""
    import datasets

    from harness.data.mirror import write_dataset_split

    rng = np.random.default_rng(0)
    blobs = [mirror_fixture.encoded(mirror_fixture.image(rng, y)) for y in range(10)]
    features = datasets.Features({"img": datasets.Image(), "label": datasets.ClassLabel(names=mirror_fixture.CIFAR10)})
    rows = {"img": [{"bytes": blobs[y], "path": None} for y in labels], "label": labels.tolist()}
    write_dataset_split(datasets.Dataset.from_dict(rows, features=features), hub, root)


def test_cifar10_positions_mean_the_original_order_in_any_copy(tmp_path: Path, monkeypatch: Any) -> None:
    """calib-cifar10 fits its temperature on torchvision's last 5,000 training images, not the hub copy's
    last rows (half of data_batch_1, which a model trained on the first 45,000 has seen). Ids are original
    positions: a copy in the hub's batch order and one in torchvision's are the same suite (same
    fingerprint, shared cached outputs). CIFAR-LT reads only class counts, which no order changes."""
    from harness.data import clear_suites, load_suite
    from harness.schema import DatasetSource, TaskSpec

    def spec(path: str) -> TaskSpec:
        return TaskSpec.model_validate(yaml.safe_load((TASKS / "catalog" / path).read_text()))

    calib = spec("calibration/calib-cifar10.yaml").dataset.splits["calib"]
    long_tail = spec("longtail/lt-cifar10-r100.yaml").dataset.splits["train"]
    assert calib.row_order == "cifar10-train" and calib.rows == "45000:50000" and long_tail.labels_only
    source = DatasetSource(kind="hub", name="x", modality="image", splits={"calib": calib, "train": long_tail})
    suites = {}
    for name, batches in {"hub": [4, 3, 2, 5, 1], "torchvision": [1, 2, 3, 4, 5]}.items():
        original, copy = _cifar10_train(batches)
        _write_cifar10_train(tmp_path / name, copy, calib)
        monkeypatch.setenv("HARNESS_DATA_DIR", str(tmp_path / name))
        clear_suites()
        suites[name] = suite = load_suite(source)
        assert suite.split("calib").ids == [f"train-{i}" for i in range(45_000, 50_000)]
        assert suite.split("calib").y.tolist() == original[45_000:].tolist()
        held = ", ".join(f"data_batch_{i}" for i in batches)  # what `harness data check` shows of the copy
        assert suite.split("calib").source.endswith(f"cifar10-train blocks as held: {held})")
    assert suites["hub"].split("calib").fingerprint == suites["torchvision"].split("calib").fingerprint
    counts = [np.bincount(s.split("train").y, minlength=10).tolist() for s in suites.values()]
    assert counts[0] == counts[1] == [int(5000 * 0.01 ** (c / 9)) for c in range(10)]
    # without the row order, the hub copy's last 5,000 rows would be data_batch_1's second half
    original, _ = _cifar10_train([4, 3, 2, 5, 1])
    monkeypatch.setenv("HARNESS_DATA_DIR", str(tmp_path / "hub"))
    clear_suites()
    unordered = calib.model_copy(update={"row_order": None})
    naive = load_suite(DatasetSource(kind="hub", name="x", modality="image", splits={"calib": unordered}))
    assert naive.split("calib").y.tolist() == original[5_000:10_000].tolist()


def test_a_copy_that_lost_the_order_is_refused_with_the_fix(tmp_path: Path, monkeypatch: Any) -> None:
    """An image-folder mirror of CIFAR-10's train split (rows sorted by class) cannot say which images are
    the last 5,000: reading it is an error naming the split, the order and what to mirror instead."""
    from harness.data import clear_suites, load_suite
    from harness.schema import DatasetSource, TaskSpec

    calib = TaskSpec.model_validate(
        yaml.safe_load((TASKS / "catalog/calibration/calib-cifar10.yaml").read_text())
    ).dataset.splits["calib"]
    _, copy = _cifar10_train([4, 3, 2, 5, 1])
    _write_cifar10_train(tmp_path, np.sort(copy), calib)
    monkeypatch.setenv("HARNESS_DATA_DIR", str(tmp_path))
    clear_suites()
    with pytest.raises(
        HarnessError, match=r"mteb/cifar10@69a62dd.*:train is not 'cifar10-train' in any block"
    ) as raised:
        load_suite(DatasetSource(kind="hub", name="x", modality="image", splits={"calib": calib}))
    assert "image folder" in (raised.value.fix or "") and "harness data fetch" in (raised.value.fix or "")


def _write_test_split(root: Path, hub: HubSplit, labels: np.ndarray, classes: list[str]) -> None:
    """A CIFAR test split in the mirror, as `harness data fetch` writes it (one image per class)."""
    import datasets

    from harness.data.mirror import write_dataset_split

    rng = np.random.default_rng(1)
    blobs = [mirror_fixture.encoded(mirror_fixture.image(rng, y % 10)) for y in range(len(classes))]
    column = hub.label or "label"
    features = datasets.Features({"img": datasets.Image(), column: datasets.ClassLabel(names=classes)})
    rows = {"img": [{"bytes": blobs[y], "path": None} for y in labels], column: labels.tolist()}
    write_dataset_split(datasets.Dataset.from_dict(rows, features=features), hub, root)


def test_openoods_cifar_holdouts_are_left_out_by_class_and_number(tmp_path: Path, monkeypatch: Any) -> None:
    """OpenOOD names its held-out CIFAR images as cifar2png numbers them (cifar10/test/airplane/0187.png:
    the 187th airplane in the test pickle's order): the hub tasks leave out exactly those, checked against
    names built here from the rows' classes and running counts."""
    from harness.data import clear_suites, load_suite
    from harness.data.catalog import file_list
    from harness.data.orders import row_order
    from harness.schema import DatasetSource, TaskSpec

    def splits(path: str) -> dict[str, HubSplit]:
        return TaskSpec.model_validate(yaml.safe_load((TASKS / "catalog" / path).read_text())).dataset.splits

    cifar10, cifar100 = splits("ood/ood-cifar10.yaml"), splits("ood/ood-cifar100.yaml")
    rng = np.random.default_rng(0)
    labels = {}
    for name, hub in (("cifar10-test", cifar10["test"]), ("cifar100-test", cifar100["test"])):
        order = row_order(name)
        labels[name] = _block_labels(order.blocks[0], rng)
        _write_test_split(tmp_path, hub, labels[name], order.classes)
    monkeypatch.setenv("HARNESS_DATA_DIR", str(tmp_path))

    def expected(name: str, folder: str, listed: str) -> list[str]:
        """Ids of the rows whose cifar2png file name is not in the list, by a running count per class."""
        classes, held_out, seen, kept = row_order(name).classes, set(file_list(listed)), {}, []
        for row, y in enumerate(labels[name]):
            seen[y] = seen.get(y, 0) + 1
            if f"{folder}/{classes[y]}/{seen[y]:04d}.png" not in held_out:
                kept.append(f"test-{row}")
        return kept

    cases = [
        (cifar10["test"], "cifar10-test", "cifar10/test", "openood-cifar10-val", 900),
        (cifar10["cifar100"], "cifar100-test", "cifar100/test", "openood-cifar10-near-cifar100-val", None),
        (cifar100["test"], "cifar100-test", "cifar100/test", "openood-cifar100-val", 90),
    ]
    for hub, order, folder, listed, per_class in cases:
        assert hub.drop_class_ranks == listed and hub.row_order == order
        clear_suites()
        split = load_suite(DatasetSource(kind="hub", name="x", modality="image", splits={"s": hub})).split("s")
        assert split.ids == expected(order, folder, listed) and len(split) == 9000
        if per_class is not None:  # the ID holdouts are balanced (100 and 10 per class)
            assert set(np.bincount(split.y).tolist()) == {per_class}
        else:
            assert set(split.y.tolist()) == {-1}  # near-OOD: the label column only selects
    # a list for another dataset names images the split lacks; a list needs the original order
    clear_suites()
    wrong = cifar10["test"].model_copy(update={"drop_class_ranks": "openood-cifar100-val"})
    with pytest.raises(HarnessError, match=r"names 1000 images that split mteb/cifar10.* does not have"):
        load_suite(DatasetSource(kind="hub", name="x", modality="image", splits={"s": wrong}))
    with pytest.raises(ValueError, match="drop_class_ranks needs a row_order"):
        HubSplit(dataset="a/b", split="test", label="label", drop_class_ranks="openood-cifar10-val")


def test_openood_imagenet_test_sets_leave_out_its_validation_images(on_mirror: dict[str, Any]) -> None:
    """ood-imagenet's ID set is the validation split less OpenOOD's holdout: on the fixture (files
    ILSVRC2012_val_00000001..60) the rows whose number is not in the list, checked by number here."""
    from harness.data import load_suite
    from harness.schema import FILE_LISTS
    from harness.tasks import load_specs

    lines = (FILE_LISTS / "openood-imagenet-val.txt").read_text().split()
    held_out = {int(w.removeprefix("ILSVRC2012_val_")) for w in lines if w.startswith("ILSVRC2012_val_")}
    expected = [f"validation-{row}" for row in range(60) if row + 1 not in held_out]
    assert len(expected) == 55
    assert load_suite(load_specs().get("ood-imagenet").dataset).split("test").ids == expected
    calibration = load_suite(load_specs().get("calib-imagenet").dataset)  # calibration keeps every image
    assert len(calibration.split("calib")) + len(calibration.split("test")) == 50  # (rows 0:50 and 50:, shrunk)


def test_with_splits_reads_several_splits_as_one_set(on_mirror: dict[str, Any], capsys: Any, monkeypatch: Any) -> None:
    """OpenOOD's MNIST (far-OOD) is its 70,000 images: the hub copy's test split, then its train split."""
    from harness.data import load_suite
    from harness.tasks import load_specs

    suite = load_suite(load_specs().get("ood-cifar10").dataset)
    mnist, texture = suite.split("mnist"), suite.split("texture")
    assert mnist.ids == [f"test-{i}" for i in range(20)] + [f"train-{i}" for i in range(12)]
    assert (mnist.y == -1).all() and mnist.x[0:32].shape == (32, 32, 32, 3)
    assert texture.ids[:1] == ["test/banded/0000.jpeg"] and texture.ids[-1:] == ["train/spiralled/0000.jpeg"]
    assert len(texture) == 18 and (texture.y == -1).all()
    # for ImageNet, OpenOOD's Textures leave out 4 of DTD's classes (by the hub copy's class names)
    imagenet_texture = load_suite(load_specs().get("ood-imagenet").dataset).split("texture")
    assert [i.split("/")[1] for i in imagenet_texture.ids] == ["banded", "banded", "grid", "grid", "banded", "grid"]
    listed = run_cli(capsys, monkeypatch, "data", "list", "ood-cifar10")
    assert "mteb/mnist@cf6afcbae72cc3bb1fc07a9480fe0d8e0b615fcd:test+train" in listed.out.replace("\n", "")


def test_with_splits_are_fetched_split_by_split(tmp_path: Path, capsys: Any, monkeypatch: Any) -> None:
    import harness.data_cli as data_cli
    from harness.data.mirror import mirror_folder, where_found

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "0")
    monkeypatch.setenv("HARNESS_DATA_DIR", str(tmp_path / "mirror"))
    fetched: list[str] = []

    def download(hub: HubSplit) -> Any:
        fetched.append(f"{hub.dataset}:{hub.split}")
        return mirror_fixture.image_dataset(np.random.default_rng(0), 4, ["0", "1"], ("image", "label"))

    monkeypatch.setattr(data_cli, "_download", download)
    monkeypatch.setattr("harness.data.mirror.resolved_revision", lambda hub: None)
    result = run_cli(capsys, monkeypatch, "data", "fetch", "ood-cifar10")
    assert result.code == 1  # Places365 is manual
    assert "mteb/mnist:test" in fetched and "mteb/mnist:train" in fetched and "mteb/dtd:train" in fetched
    mnist = HubSplit(dataset="mteb/mnist", revision="cf6afcbae72cc3bb1fc07a9480fe0d8e0b615fcd", split="test", with_splits=["train"])  # fmt: skip
    assert where_found(mnist) == "mirror" and (mirror_folder(mnist) / "train.parquet").is_file()
    assert where_found(mnist.model_copy(update={"with_splits": ["validation"]})) is None


def test_openood_image_lists_define_the_sets(on_mirror: dict[str, Any]) -> None:
    """ood-cifar10-openood reads OpenOOD's own lists: each set is exactly the files its list names (an
    image beside them that the list leaves out stays out), with the list's labels (ID) or -1 (OOD)."""
    from harness.data import load_suite
    from harness.tasks import load_specs

    base = on_mirror["root"] / "data" / "openood/benchmark/default/v1.5"
    suite = load_suite(load_specs().get("ood-cifar10-openood").dataset)
    for name, listing in (("test", "test_cifar10"), ("tin", "test_tin"), ("mnist", "test_mnist")):
        lines = [
            line.split() for line in (base / "benchmark_imglist/cifar10" / f"{listing}.txt").read_text().splitlines()
        ]
        split = suite.split(name)
        assert split.ids == [f"{listing}/{path}" for path, _ in lines]
        assert split.y.tolist() == [int(label) for _, label in lines]
    assert len(suite.split("test")) == 39 and len(list((base / "images_classic/cifar10/test").rglob("*.png"))) == 40
    assert suite.class_names[:2] == ("airplane", "automobile") and suite.split("mnist").x[0:4].shape == (4, 32, 32, 3)


def test_image_lists_refuse_paths_outside_their_root_and_missing_files(tmp_path: Path, monkeypatch: Any) -> None:
    from harness.data import clear_suites, load_suite
    from harness.schema import DatasetSource

    base = tmp_path / "openood/benchmark/default/v1.5"
    (base / "images/set").mkdir(parents=True)
    (base / "images/set/a.png").write_bytes(mirror_fixture.encoded(mirror_fixture.image(np.random.default_rng(0), 0)))
    monkeypatch.setenv("HARNESS_DATA_DIR", str(tmp_path))
    hub = HubSplit(dataset="openood/benchmark", revision="v1.5", split="test_x", image_list="lists/x.txt", image_root="images", ood=True, fetch="manual", url="https://example.org")  # fmt: skip

    def read(lines: str) -> Any:
        (base / "lists").mkdir(exist_ok=True)
        (base / "lists/x.txt").write_text(lines)
        clear_suites()
        return load_suite(DatasetSource(kind="hub", name="x", modality="image", splits={"test": hub})).split("test")

    assert read("set/a.png -1\n").ids == read("set/a.png -1\r\n").ids == ["test_x/set/a.png"]  # CRLF copies
    with pytest.raises(HarnessError, match="line 2 is not 'path label'"):
        read("set/a.png -1\n../../../../etc/passwd -1\n")
    with pytest.raises(HarnessError, match="line 1 is not 'path label'"):
        read("set/a.png\n")
    with pytest.raises(HarnessError, match=r"line 1 names set/b\.png, which is not under") as raised:
        read("set/b.png -1\n")
    assert "OpenOOD's data/ folder" in (raised.value.fix or "")
    (base / "lists/x.txt").unlink()
    clear_suites()
    with pytest.raises(HarnessError, match=r"not available offline") as raised:
        load_suite(DatasetSource(kind="hub", name="x", modality="image", splits={"test": hub}))
    assert "lists/x.txt and images/ under" in (raised.value.fix or "")
    with pytest.raises(ValueError):
        HubSplit(dataset="openood/benchmark", split="x", image_list="../x.txt")


def test_images_of_mixed_sizes_need_a_resize(tmp_path: Path) -> None:
    from harness.data.images import EncodedImageSplit

    rng = np.random.default_rng(0)
    blobs = tuple(mirror_fixture.encoded(mirror_fixture.image(rng, 0, size)) for size in ((30, 20), (20, 30)))
    split = EncodedImageSplit("test", blobs, np.zeros(2, np.int64), ["a", "b"])
    with pytest.raises(HarnessError, match="resize and center_crop"):
        split.x[0:2]
    cropped = EncodedImageSplit("test", blobs, np.zeros(2, np.int64), ["a", "b"], (("resize", 16), ("center_crop", 16)))
    assert cropped.x[0:2].shape == (2, 16, 16, 3) and cropped.fingerprint != split.fingerprint


def test_long_tail_subsample_is_ldams() -> None:
    """Our CIFAR-LT draw equals LDAM-DRW's IMBALANCECIFAR10.gen_imbalanced_data (transcribed here)."""
    from harness.data.catalog import long_tail_positions

    targets = np.random.default_rng(3).permutation(np.repeat(np.arange(10), 500))
    for ratio in (10, 50, 100):
        np.random.seed(0)  # LDAM: np.random.seed(rand_number) in __init__, then gen_imbalanced_data
        img_max = len(targets) / 10
        counts = [int(img_max * ((1.0 / ratio) ** (i / (10 - 1.0)))) for i in range(10)]
        expected = []
        for the_class, the_img_num in zip(np.unique(targets), counts, strict=True):
            idx = np.where(targets == the_class)[0]
            np.random.shuffle(idx)
            expected.extend(idx[:the_img_num].tolist())
        assert long_tail_positions(targets, 10, ratio, 0).tolist() == expected


def test_wikitext_lines_become_articles() -> None:
    from harness.data.catalog import wikitext_articles

    lines = [
        " \n",
        " = Alpha = \n",
        " \n",
        " first line \n",
        " = = Section = = \n",
        " more \n",
        " = Beta = \n",
        " b \n",
    ]
    assert wikitext_articles(lines) == ["= Alpha = \n \n first line \n = = Section = = \n more", "= Beta = \n b"]


# --------------------------------------------------------------------------- any model that fits


def test_label_names_map_by_name_synonyms_and_subsets() -> None:
    from harness.labels import map_labels

    task = ["tench, Tinca tinca", "goldfish, Carassius auratus", "hammerhead, hammerhead shark"]
    model = ["hammerhead, hammerhead shark", "tench", "ostrich", "Goldfish"]
    assert map_labels(task, model, 4).outputs.tolist() == [1, 3, 0]
    assert map_labels(["a", "b"], None, 2).outputs is None  # no names: by position, same number of outputs
    assert map_labels(["a", "b"], ["a", "b"], 2).outputs is None  # already the task's order
    with pytest.raises(HarnessError, match="--label-map") as error:
        map_labels(["cat", "dog"], ["chat", "chien", "oiseau"], 3)
    assert "'cat'" in error.value.what
    assert map_labels(["cat", "dog"], ["chat", "chien"], 2, (("chien", "dog"), ("0", "cat"))).outputs is None
    with pytest.raises(HarnessError, match="no label names"):
        map_labels(["a", "b"], None, 3)


def test_a_classifier_with_another_label_order_is_scored_in_the_tasks_order(
    on_mirror: dict[str, Any], tmp_path: Path
) -> None:
    from harness.data import load_suite
    from harness.models import load_model
    from harness.models.base import InferenceOptions
    from harness.runner import EvalOptions, Runner
    from harness.tasks import load_specs

    spec = load_specs().get("calib-cifar10")
    handle: Any = load_model(on_mirror["models"]["cifar10"])
    result = Runner(EvalOptions(cache_dir=tmp_path / "cache")).evaluate(handle, [spec])
    test = next(block for task, block in result.samples if block.split == "test")
    raw = handle.classify(load_suite(spec.dataset).split("test"), InferenceOptions())["logits"]
    names = [handle.model.config.id2label[i] for i in range(10)]
    order = [names.index(c) for c in mirror_fixture.CIFAR10]
    np.testing.assert_allclose(test.values, raw[:, order], rtol=1e-6)


def test_ood_scores_use_the_models_outputs_for_the_tasks_classes_only(
    on_mirror: dict[str, Any], tmp_path: Path
) -> None:
    """An 8-class ImageNet-style model on a 5-class task: MSP is the softmax over the 5 mapped outputs."""
    from harness.data import load_suite
    from harness.models import load_model
    from harness.models.base import InferenceOptions
    from harness.runner import EvalOptions, Runner
    from harness.tasks import load_specs

    spec = load_specs().get("ood-imagenet")
    handle: Any = load_model(on_mirror["models"]["imagenet"])
    result = Runner(EvalOptions(cache_dir=tmp_path / "cache")).evaluate(handle, [spec])
    test = next(block for task, block in result.samples if block.split == "test")
    raw = handle.classify(load_suite(spec.dataset).split("test"), InferenceOptions())["logits"].astype(np.float64)
    kept = raw[:, [1, 2, 3, 4, 0]]  # tench, goldfish, great white shark, tiger shark, hammerhead
    msp = np.exp(kept - kept.max(axis=1, keepdims=True))
    msp = (msp / msp.sum(axis=1, keepdims=True)).max(axis=1)
    np.testing.assert_allclose(test.values[:, test.fields.index("msp")], msp, rtol=1e-5)


def test_imagenet200_is_imagenet_restricted_to_the_imagenet_r_classes(
    on_mirror: dict[str, Any], tmp_path: Path
) -> None:
    """ood-imagenet200 keeps the validation images of ImageNet-R's 200 classes: on the mirror, 3 of its 5
    classes (tench and tiger shark are not among them); MSP is the softmax over those 3 outputs."""
    from harness.data import load_suite
    from harness.models import load_model
    from harness.models.base import InferenceOptions
    from harness.runner import EvalOptions, Runner
    from harness.tasks import load_specs

    catalog_spec = yaml.safe_load((TASKS / "catalog" / "ood" / "ood-imagenet200.yaml").read_text())
    keep = catalog_spec["dataset"]["splits"]["test"]["keep_labels"]
    assert len(keep) == len(set(keep)) == 200
    assert {"tench, Tinca tinca", "tiger shark, Galeocerdo cuvieri"}.isdisjoint(keep)
    spec = load_specs().get("ood-imagenet200")
    suite = load_suite(spec.dataset)
    assert suite.class_names == tuple(mirror_fixture.IMAGENET[i] for i in (1, 2, 4))
    test_split = suite.split("test")
    # 12 images of each of the 3, less OpenOOD's holdout: goldfish row 51, the shark rows 12 and 42, hammerhead 14 and 24
    assert len(test_split) == 31 and np.bincount(test_split.y).tolist() == [11, 10, 10]
    handle: Any = load_model(on_mirror["models"]["imagenet"])
    result = Runner(EvalOptions(cache_dir=tmp_path / "cache")).evaluate(handle, [spec])
    test = next(block for task, block in result.samples if block.split == "test")
    raw = handle.classify(test_split, InferenceOptions())["logits"].astype(np.float64)
    kept = raw[:, [2, 3, 0]]  # goldfish, great white shark, hammerhead in the model's outputs
    msp = np.exp(kept - kept.max(axis=1, keepdims=True))
    msp = (msp / msp.sum(axis=1, keepdims=True)).max(axis=1)
    np.testing.assert_allclose(test.values[:, test.fields.index("msp")], msp, rtol=1e-5)


def test_imagenet200_classes_are_openoods_in_its_label_order() -> None:
    """The spec's 200 class names are, in order, ImageNet's names for the classes of OpenOOD's ImageNet-200
    lists (tests/data/openood/imagenet200_classes.tsv, derived from those lists and ImageNet's synset
    files, as its header says), so an OpenOOD ImageNet-200 checkpoint (200 unnamed outputs) fits by
    position and an ImageNet-1k classifier by name."""
    rows = [
        line.split("\t")
        for line in (Path(__file__).parent / "data" / "openood" / "imagenet200_classes.tsv").read_text().splitlines()
        if line and not line.startswith("#")
    ][1:]
    assert [int(r[0]) for r in rows] == list(range(200))
    indices, wnids = [int(r[1]) for r in rows], [r[2] for r in rows]
    assert indices == sorted(indices) and wnids == sorted(wnids) and (wnids[0], wnids[-1]) == ("n01443537", "n12267677")
    spec = yaml.safe_load((TASKS / "catalog" / "ood" / "ood-imagenet200.yaml").read_text())
    assert spec["dataset"]["splits"]["test"]["keep_labels"] == [r[3] for r in rows]


def test_label_map_file_fits_a_model_with_other_names(
    on_mirror: dict[str, Any], tmp_path: Path, capsys: Any, monkeypatch: Any
) -> None:
    french = ["avion", "voiture", "oiseau", "chat", "cerf", "chien", "grenouille", "cheval", "bateau", "camion"]
    model = mirror_fixture.image_classifier(tmp_path / "vit-fr", french)
    refused = run_cli(capsys, monkeypatch, "eval", "--model", str(model), "--tasks", "calib-cifar10", "--no-store")
    assert refused.code == 2 and "--label-map" in refused.err and "'airplane'" in refused.err
    label_map = tmp_path / "labels.yaml"
    label_map.write_text(yaml.safe_dump(dict(zip(french, mirror_fixture.CIFAR10, strict=True))))
    submission = eval_ok(capsys, monkeypatch, model, ["calib-cifar10"], tmp_path / "out", "--label-map", str(label_map))
    assert len(submission["settings"]["label_map"]) == 16


def test_trained_on_restriction_says_what_fits(on_mirror: dict[str, Any], tmp_path: Path) -> None:
    from harness.models import load_model
    from harness.runner import unfit_reason
    from harness.tasks import load_specs

    specs = load_specs()
    vit = load_model(on_mirror["models"]["cifar10"])
    reason = unfit_reason(specs.get("calib"), vit)
    assert reason is not None and "digits-ood" in reason and "harness zoo build" in reason
    assert unfit_reason(specs.get("calib-cifar10"), vit) is None  # catalog tasks have no such restriction
    unnamed = load_model(mirror_fixture.image_classifier(tmp_path / "vit-6", [f"LABEL_{i}" for i in range(6)]))
    assert "no label names" in (unfit_reason(specs.get("calib-cifar10"), unnamed) or "")  # 6 outputs, 10 classes
