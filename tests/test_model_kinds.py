"""HF classifier folders and predictions files load offline, detect their kind and classify."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from harness.data.arrays import ArraySplit, TextSplit
from harness.data.digits import digits_suite
from harness.errors import HarnessError
from harness.models import load_model
from harness.models.base import Capability, InferenceOptions, LoadOptions


@pytest.fixture(scope="module")
def tiny_vit(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from transformers import ViTConfig, ViTForImageClassification

    torch.manual_seed(0)
    config = ViTConfig(
        image_size=8, patch_size=4, num_channels=1, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, num_labels=10,
    )  # fmt: skip
    folder = tmp_path_factory.mktemp("vit")
    ViTForImageClassification(config).save_pretrained(folder)
    return folder


def word_tokenizer(words: list[str]) -> object:
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", *words])}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]"
    )


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    tokenizer = word_tokenizer(["good", "bad", "movie", "very"])
    config = BertConfig(
        vocab_size=8, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
        max_position_embeddings=32, num_labels=2,
    )  # fmt: skip
    folder = tmp_path_factory.mktemp("bert")
    BertForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)  # type: ignore[attr-defined]
    return folder


def test_hf_image_classifier_gives_logits_and_head_features(tiny_vit: Path) -> None:
    handle = load_model(tiny_vit)
    assert handle.kind == "hf-classifier" and handle.card.family == "vit"
    assert handle.capabilities == {Capability.LOGITS, Capability.FEATURES}
    split = digits_suite().split("test").head(20)
    out = handle.classify(split, InferenceOptions(batch_size=8))  # type: ignore[attr-defined]
    assert out["logits"].shape == (20, 10) and out["features"].shape == (20, 16)
    # The features are the head's input: applying the head reproduces the logits.
    head = handle.model.classifier  # type: ignore[attr-defined]
    with torch.no_grad():
        again = head(torch.from_numpy(out["features"])).numpy()
    assert np.allclose(again, out["logits"], atol=1e-5)
    # (n, H, W, C) images give the same outputs as flat (n, C*H*W) ones for one channel.
    images = ArraySplit("test", split.x.reshape(-1, 8, 8, 1), split.y, split.ids)
    assert np.allclose(handle.classify(images, InferenceOptions())["logits"], out["logits"], atol=1e-6)  # type: ignore[attr-defined]


def test_hf_text_classifier(tiny_bert: Path) -> None:
    handle = load_model(tiny_bert)
    texts = TextSplit("test", ["good movie", "very bad movie", "bad"], np.array([1, 0, 0]), ["a", "b", "c"])
    out = handle.classify(texts, InferenceOptions(batch_size=2))  # type: ignore[attr-defined]
    assert out["logits"].shape == (3, 2) and out["features"].shape == (3, 16)
    with pytest.raises(HarnessError, match="needs text"):
        handle.classify(digits_suite().split("test"), InferenceOptions())  # type: ignore[attr-defined]


def test_hf_pickle_weights_are_refused_unless_allowed(tiny_vit: Path, tmp_path: Path) -> None:
    import shutil

    from safetensors.torch import load_file

    folder = tmp_path / "pickled"
    shutil.copytree(tiny_vit, folder)
    state = load_file(folder / "model.safetensors")
    (folder / "model.safetensors").unlink()
    torch.save(state, folder / "pytorch_model.bin")
    with pytest.raises(HarnessError, match="pickle"):
        load_model(folder)
    allowed = load_model(folder, LoadOptions(allow_pickle=True))
    split = digits_suite().split("test").head(5)
    reference = load_model(tiny_vit).classify(split, InferenceOptions())  # type: ignore[attr-defined]
    assert np.allclose(allowed.classify(split, InferenceOptions())["logits"], reference["logits"])  # type: ignore[attr-defined]


def write_predictions_npz(folder: Path, with_features: bool = True) -> dict[str, np.ndarray]:
    suite = digits_suite()
    rng = np.random.default_rng(0)
    arrays: dict[str, np.ndarray] = {}
    for name in ("calib", "test"):
        split = suite.split(name)
        order = rng.permutation(len(split))  # stored out of order on purpose
        arrays[f"{name}.ids"] = np.asarray(split.ids)[order]
        arrays[f"{name}.logits"] = rng.normal(size=(len(split), 10)).astype(np.float32)
        if with_features:
            arrays[f"{name}.features"] = rng.normal(size=(len(split), 4)).astype(np.float32)
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(folder / "predictions.npz", **arrays)  # type: ignore[arg-type]
    return arrays


def test_predictions_npz_are_matched_by_id(tmp_path: Path) -> None:
    arrays = write_predictions_npz(tmp_path / "preds")
    handle = load_model(tmp_path / "preds")
    assert handle.kind == "predictions" and Capability.FEATURES in handle.capabilities
    split = digits_suite().split("test")
    out = handle.classify(split, InferenceOptions())  # type: ignore[attr-defined]
    position = {sample: i for i, sample in enumerate(arrays["test.ids"])}
    expected = arrays["test.logits"][[position[i] for i in split.ids]]
    assert np.array_equal(out["logits"], expected)
    with pytest.raises(HarnessError, match="no split 'train'"):
        handle.classify(digits_suite().split("train"), InferenceOptions())  # type: ignore[attr-defined]


def test_predictions_parquet_without_features(tmp_path: Path) -> None:
    split = digits_suite().split("test")
    table = pa.table(
        {
            "split": ["test"] * len(split),
            "sample_id": split.ids,
            "logits": np.eye(10, dtype=np.float32)[split.y].tolist(),
        }
    )
    pq.write_table(table, tmp_path / "predictions.parquet")
    handle = load_model(tmp_path / "predictions.parquet")
    assert handle.capabilities == {Capability.LOGITS}
    out = handle.classify(split, InferenceOptions())  # type: ignore[attr-defined]
    assert (out["logits"].argmax(axis=1) == split.y).all()


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda a: a.update({"test.logits": a["test.logits"][:-1]}), "logits must have shape"),
        (lambda a: a.update({"test.ids": np.r_[a["test.ids"][:-1], a["test.ids"][:1]]}), "duplicate sample ids"),
        (lambda a: a["test.logits"].__setitem__((0, 0), np.nan), "NaN or inf"),
        (lambda a: a.update({"test.weird": a["test.ids"]}), "unexpected array"),
    ],
)
def test_bad_predictions_are_rejected(tmp_path: Path, mutate: object, message: str) -> None:
    arrays = write_predictions_npz(tmp_path / "p")
    mutate(arrays)  # type: ignore[operator]
    np.savez(tmp_path / "p" / "predictions.npz", **arrays)  # type: ignore[arg-type]
    with pytest.raises(HarnessError, match=message):
        load_model(tmp_path / "p", LoadOptions())


def test_predictions_missing_ids_are_reported(tmp_path: Path) -> None:
    arrays = write_predictions_npz(tmp_path / "p")
    keep = slice(0, 100)
    arrays["test.ids"], arrays["test.logits"], arrays["test.features"] = (
        arrays["test.ids"][keep], arrays["test.logits"][keep], arrays["test.features"][keep],
    )  # fmt: skip
    np.savez(tmp_path / "p" / "predictions.npz", **arrays)  # type: ignore[arg-type]
    handle = load_model(tmp_path / "p")
    with pytest.raises(HarnessError, match="have no prediction"):
        handle.classify(digits_suite().split("test"), InferenceOptions())  # type: ignore[attr-defined]
