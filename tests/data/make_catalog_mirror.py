"""Tiny fixture copies of every catalog dataset, in the data mirror's layout and in real formats.

Nothing is downloaded: the data is generated here (seeded). Each dataset is written the way a user
would have it (docs/catalog.md, "The data mirror"):
- `Dataset.to_parquet` files with ClassLabel names in their metadata (CIFAR-10 through
  `harness.data.mirror.write_dataset_split`, the writer `harness data fetch` uses; MNIST, SVHN,
  ImageNet, CLINC150, SST-2, OpenBookQA);
- a `DatasetDict.save_to_disk` folder (CIFAR-100);
- ImageFolders of PNGs (TinyImageNet) and of JPEGs of mixed sizes (DTD), flat folders of JPEGs (the
  OpenOOD sets);
- JSON Lines (20 Newsgroups, C4), WikiText's raw text lines (`<split>.txt`), ImageNet-LT's train list;
- BEIR folders (corpus.jsonl, queries.jsonl, qrels/test.tsv) for the four retrieval tasks;
- OpenOOD's own data folder (image lists and the files they name) for ood-cifar10-openood.
Row counts are small, so `fixture_specs` shrinks what the real specs size for full datasets: row
slices that end beyond row 1000 are divided by 1000 (CIFAR's calib rows 45000:50000 become 45:50;
C4's 0:1000 stays) and ImageNet's 256/224
transform becomes 36/32, and `row_order` and `drop_class_ranks` are left out (an order fingerprints the
full dataset's label counts; tests/test_catalog.py checks the CIFAR specs' orders and holdouts on
full-size copies). Every other field of
every spec (ids, revisions, splits, columns, filters, long tails, label spaces) is used as written.

Also the tiny classifiers the catalog test runs: Hugging Face ViT image classifiers and BERT text
classifiers with random weights, their own image processor or tokenizer, and label names (id2label)
in an order or spelling that differs from the datasets', so the label mapping is exercised.

    python tests/data/make_catalog_mirror.py OUT    # writes OUT/data, OUT/tasks, OUT/models
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import yaml

CIFAR10 = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
CIFAR100 = [f"cifar100_class_{i:02d}" for i in range(100)]
IMAGENET = [
    "tench, Tinca tinca",
    "goldfish, Carassius auratus",
    "great white shark, white shark, man-eater, man-eating shark, Carcharodon carcharias",
    "tiger shark, Galeocerdo cuvieri",
    "hammerhead, hammerhead shark",
]
DTD_CLASSES = ["banded", "bubbly", "cobwebbed", "grid", "honeycombed", "spiralled"]
IMAGENET_WNIDS = ["n01440764", "n01443537", "n01484850", "n01491361", "n01494475"]
CLINC = ["transfer", "balance", "oos", "weather"]
SST2 = ["negative", "positive"]
WORDS = [
    "the", "a", "cat", "dog", "bird", "sees", "likes", "river", "bank", "money", "transfer", "balance",
    "weather", "rain", "sun", "good", "bad", "great", "awful", "movie", "plot", "film", "acting", "story",
    "space", "car", "engine", "computer", "graphics", "hockey", "game",
]  # fmt: skip

C10 = ("mteb/cifar10", None, "69a62dd171e24a133d193073e73fda4dbb823266")
C100 = ("mteb/cifar100", None, "ac5511f885f65fb75d31a9d8810a8440913f7721")


def folder(root: Path, dataset: str, config: str | None = None, revision: str = "main") -> Path:
    out = root / dataset / (config or "default") / revision
    out.mkdir(parents=True, exist_ok=True)
    return out


def image(rng: np.random.Generator, label: int, size: tuple[int, int] = (32, 32), mode: str = "RGB") -> Any:
    """A noisy image whose mean colour depends on its label."""
    from PIL import Image

    channels = 3 if mode == "RGB" else 1
    base = np.array([(37 * label) % 256, (91 * label) % 256, (53 * label) % 256][:channels], dtype=np.float64)
    pixels = np.clip(base + rng.normal(0, 40, (size[1], size[0], channels)), 0, 255).astype(np.uint8)
    return Image.fromarray(pixels[..., 0] if channels == 1 else pixels, mode)


def encoded(img: Any, kind: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, format=kind)
    return buffer.getvalue()


def image_dataset(rng: np.random.Generator, n: int, names: list[str], columns: tuple[str, str], **kw: Any) -> Any:
    import datasets

    labels = [i % len(names) for i in range(n)]
    features = datasets.Features({columns[0]: datasets.Image(), columns[1]: datasets.ClassLabel(names=names)})
    return datasets.Dataset.from_dict(
        {columns[0]: [image(rng, y, **kw) for y in labels], columns[1]: labels}, features=features
    )


def image_files(
    target: Path, rng: np.random.Generator, n: int, sizes: list[tuple[int, int]], kind: str = "JPEG"
) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        (target / f"{i:04d}.{kind.lower()}").write_bytes(encoded(image(rng, i, sizes[i % len(sizes)]), kind))


def sentences(rng: np.random.Generator, n: int, words: list[str] = WORDS, length: int = 8) -> list[str]:
    return [" ".join(rng.choice(words, size=int(rng.integers(3, length)))) for _ in range(n)]


def build_data(root: Path, scale: int = 1) -> None:
    """Every catalog dataset under `root` (the HARNESS_DATA_DIR of the test); `scale` multiplies the
    size of the language and retrieval data (bench/catalog.py times them against lm-eval and MTEB)."""
    import datasets

    from harness.data.mirror import write_dataset_split
    from harness.schema import HubSplit

    rng = np.random.default_rng(0)
    # CIFAR-10: parquet files written by the mirror's own writer (what `harness data fetch` does)
    dataset, config, revision = C10
    for split, n in (("train", 200), ("test", 40)):
        hub = HubSplit(dataset=dataset, revision=revision, split=split)
        write_dataset_split(image_dataset(rng, n, CIFAR10, ("img", "label")), hub, root, resolved=revision)
    # CIFAR-100: a save_to_disk folder
    dataset, config, revision = C100
    splits = {}
    for split, n in (("train", 200), ("test", 100)):  # every class in the test split (per-class accuracy)
        labels = [i % 100 for i in range(n)]
        features = datasets.Features(
            {
                "img": datasets.Image(),
                "fine_label": datasets.ClassLabel(names=CIFAR100),
                "coarse_label": datasets.ClassLabel(num_classes=20),
            }
        )
        splits[split] = datasets.Dataset.from_dict(
            {"img": [image(rng, y) for y in labels], "fine_label": labels, "coarse_label": [y // 5 for y in labels]},
            features=features,
        )
    datasets.DatasetDict(splits).save_to_disk(str(folder(root, dataset, config, revision)))
    # TinyImageNet valid: an ImageFolder of 64x64 PNGs
    tin = folder(root, "mteb/tiny-imagenet", None, "e04e259f646f750bd0bdb2a56c2a4577d89bee3d") / "valid"
    for c in ("n01443537", "n01629819", "n01641577"):
        image_files(tin / c, rng, 5, [(64, 64)], "PNG")
    # MNIST (greyscale 28x28) and SVHN: parquet; OpenOOD's MNIST is the test and train images
    mnist_folder = folder(root, "mteb/mnist", None, "cf6afcbae72cc3bb1fc07a9480fe0d8e0b615fcd")
    mnist = image_dataset(rng, 20, [str(d) for d in range(10)], ("image", "label"), size=(28, 28), mode="L")
    mnist.to_parquet(str(mnist_folder / "test.parquet"))
    extra = np.random.default_rng(1)  # splits added later draw apart, so the others keep their data
    mnist = image_dataset(extra, 12, [str(d) for d in range(10)], ("image", "label"), size=(28, 28), mode="L")
    mnist.to_parquet(str(mnist_folder / "train.parquet"))
    svhn = image_dataset(rng, 20, [str(d) for d in range(10)], ("image", "label"))
    svhn.to_parquet(str(folder(root, "ufldl-stanford/svhn", "cropped_digits") / "test.parquet"))
    # DTD and the OpenOOD sets: flat folders of JPEGs of mixed sizes
    # DTD: an ImageFolder per split (the hub copy names its 47 classes), with the 4 that OpenOOD leaves out
    # for ImageNet
    dtd = folder(root, "mteb/dtd", None, "96726183040de9e64a590d08eaac8de940dfcbdf")
    for texture in DTD_CLASSES:
        image_files(dtd / "test" / texture, rng, 2, [(60, 45), (40, 52)])
        image_files(dtd / "train" / texture, extra, 1, [(60, 45), (40, 52)])
    for name in ("places365", "ssb_hard", "ninco", "inaturalist", "openimage_o"):
        image_files(folder(root, f"openood/{name}") / "test", rng, 8, [(48, 40), (40, 40)])
    # ImageNet-1k validation: parquet of JPEGs of mixed sizes, real class names (5 of them), file names as
    # the hub's (ILSVRC2012_val_<n>_<synset>.JPEG): rows 12, 14, 24, 42 and 51 are in OpenOOD's holdout
    labels = [i % len(IMAGENET) for i in range(60)]
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=IMAGENET)})
    files = [
        {"bytes": encoded(image(rng, y, (48 + 4 * (i % 3), 40)), "JPEG"), "path": f"ILSVRC2012_val_{i + 1:08d}_{IMAGENET_WNIDS[y]}.JPEG"}
        for i, y in enumerate(labels)
    ]  # fmt: skip
    imagenet = datasets.Dataset.from_dict({"image": files, "label": labels}, features=features)
    imagenet.to_parquet(str(folder(root, "ILSVRC/imagenet-1k") / "validation.parquet"))
    # ImageNet-LT's train list (OLTR's ImageNet_LT_train.txt format: "path label"), a long tail over 5 classes
    lines = [
        f"train/n{c:08d}/img_{c}_{i}.JPEG {c}" for c, count in enumerate((120, 60, 25, 12, 5)) for i in range(count)
    ]
    (folder(root, "zhmiao/ImageNet_LT") / "train.txt").write_text("\n".join(lines) + "\n")
    # CLINC150 (plus): intents with out-of-scope ("oos") in the middle of the class list
    for split, n in (("train", 40), ("test", 24)):
        labels = [i % len(CLINC) for i in range(n)]
        features = datasets.Features({"text": datasets.Value("string"), "intent": datasets.ClassLabel(names=CLINC)})
        texts = [f"{CLINC[y]} " + s for y, s in zip(labels, sentences(rng, n), strict=True)]
        datasets.Dataset.from_dict({"text": texts, "intent": labels}, features=features).to_parquet(
            str(folder(root, "clinc/clinc_oos", "plus") / f"{split}.parquet")
        )
    # SST-2 (train, validation) and 20 Newsgroups (JSON Lines)
    for split, n in (("train", 30), ("validation", 16)):
        labels = [i % 2 for i in range(n)]
        features = datasets.Features(
            {
                "idx": datasets.Value("int32"),
                "sentence": datasets.Value("string"),
                "label": datasets.ClassLabel(names=SST2),
            }
        )
        datasets.Dataset.from_dict(
            {"idx": list(range(n)), "sentence": sentences(rng, n), "label": labels}, features=features
        ).to_parquet(str(folder(root, "stanfordnlp/sst2") / f"{split}.parquet"))
    with (folder(root, "SetFit/20_newsgroups") / "test.jsonl").open("w") as out:
        for i, text in enumerate(sentences(rng, 16, length=20)):
            out.write(json.dumps({"text": text, "label": i % 20, "label_text": f"group{i % 20}"}) + "\n")
    build_openood(root)
    build_language_data(root, rng, scale)
    build_beir(root, rng, scale)


def build_openood(root: Path) -> None:
    """OpenOOD's data folder (benchmark_imglist/ and images_classic/, as its download script writes it) for
    the CIFAR-10 and CIFAR-100 benchmarks, file names in OpenOOD's styles; each list leaves out the first
    image written for it."""
    rng = np.random.default_rng(2)
    base = folder(root, "openood/benchmark", None, "v1.5")
    images, lists = base / "images_classic", base / "benchmark_imglist" / "cifar10"
    lists.mkdir(parents=True, exist_ok=True)

    def write(listing: str, paths: list[str], labels: list[int], size: tuple[int, int], mode: str = "RGB") -> None:
        for path, label in zip(paths, labels, strict=True):
            kind = "PNG" if path.endswith(".png") else "JPEG"
            (images / path).parent.mkdir(parents=True, exist_ok=True)
            (images / path).write_bytes(encoded(image(rng, max(label, 0), size, mode), kind))
        listed = [f"{p} {y}" for p, y in zip(paths[1:], labels[1:], strict=True)]  # the first stays out
        (lists / f"{listing}.txt").write_text("\n".join(listed) + "\n")

    for split, per_class in (("train", 9), ("test", 4)):
        paths = [f"cifar10/{split}/{c}/{i + 1:04d}.png" for c in CIFAR10 for i in range(per_class)]
        write(f"{split}_cifar10", paths, [y for y in range(10) for _ in range(per_class)], (32, 32))
    ood = {
        "test_cifar100": ([f"cifar100/test/{c}/{i:04d}.png" for c in ("apple", "streetcar") for i in (1, 2, 3)], (32, 32)),
        "test_tin": ([f"tin/val/images/val_{i}.JPEG" for i in (0, 1, 3, 4, 5, 7)], (64, 64)),
        "test_mnist": ([f"mnist/{s}/{d}_{i}.jpg" for s, d, i in (("test", 7, 0), ("test", 2, 1), ("train", 5, 0), ("train", 0, 1), ("train", 4, 2))], (28, 28)),
        "test_svhn": ([f"svhn/test/{i:06d}_{i % 10}.jpg" for i in range(5)], (32, 32)),
        "test_texture": ([f"texture/{t}/{t}_{i:04d}.jpg" for t in ("banded", "gauzy") for i in (1, 2, 3)], (60, 45)),
        "test_places365": ([f"places365/field-cultivated/Places365_val_{i:08d}.jpg" for i in range(1, 6)], (48, 40)),
    }  # fmt: skip
    for listing, (paths, size) in ood.items():
        write(listing, paths, [-1] * len(paths), size, "L" if "mnist" in listing else "RGB")
    # CIFAR-100's lists: its own ID images (the fixture's class names), the CIFAR-10 sets' OOD files
    lists = base / "benchmark_imglist" / "cifar100"
    lists.mkdir(parents=True, exist_ok=True)
    for split, per_class in (("train", 3), ("test", 1)):
        paths = [f"cifar100/{split}/{c}/{i + 1:04d}.png" for c in CIFAR100 for i in range(per_class)]
        write(f"{split}_cifar100", paths, [y for y in range(100) for _ in range(per_class)], (32, 32))
    cifar10_test = (base / "benchmark_imglist" / "cifar10" / "test_cifar10.txt").read_text().splitlines()
    (lists / "test_cifar10.txt").write_text("".join(f"{line.split()[0]} -1\n" for line in cifar10_test))
    for listing in ood:
        if listing != "test_cifar100":
            (lists / f"{listing}.txt").write_text(
                (base / "benchmark_imglist" / "cifar10" / f"{listing}.txt").read_text()
            )


def build_language_data(root: Path, rng: np.random.Generator, scale: int = 1) -> None:
    """WikiText-103 raw lines, a C4 validation slice and OpenBookQA, from the synthetic language (so the
    zoo's tiny language models, whose tokenizer is its word list, read them)."""
    import datasets

    from harness.data.language import language_suite

    language = language_suite(seed=0)
    texts = [d.text for d in language.heldout]
    wikitext = folder(root, "Salesforce/wikitext", "wikitext-103-raw-v1")
    n = 12 * scale
    for split, start in (("validation", 0), ("test", n)):
        lines = []
        for article, text in enumerate(texts[start : start + n]):
            lines += [" \n", f" = Article {article} = \n", " \n"]
            words = text.split()
            lines += [" " + " ".join(words[i : i + 30]) + " \n" for i in range(0, len(words), 30)]
        (wikitext / f"{split}.txt").write_text("".join(lines))
    with (folder(root, "allenai/c4", "en") / "validation.jsonl").open("w") as out:
        for i, text in enumerate(texts[2 * n : 3 * n]):
            out.write(
                json.dumps({"text": text, "timestamp": "2019-04-25T12:00:00Z", "url": f"https://example.org/{i}"})
                + "\n"
            )
    # OpenBookQA has 4 choices per question: the synthetic items' own, then wrong answers of other items
    items = [item for item in language.multiple_choice if item.label < 4]
    wrong = [c for item in items for i, c in enumerate(item.choices) if i != item.label]
    for split, chunk in (("validation", items[: 20 * scale]), ("test", items[20 * scale : 44 * scale])):
        rows = []
        for n, item in enumerate(chunk):
            own = list(item.choices[:4])
            choices = own + [c for c in wrong[7 * n :] if c not in own][: 4 - len(own)]
            rows.append(
                {
                    "id": item.id,
                    "question_stem": item.context,
                    "choices": {"text": choices, "label": list("ABCD")},
                    "answerKey": "ABCD"[item.label],
                }
            )
        datasets.Dataset.from_list(rows).to_parquet(
            str(folder(root, "allenai/openbookqa", "main") / f"{split}.parquet")
        )
    # ARC-Challenge has 3 to 5 choices per question, labelled A-E or 1-5: items of 3, 4 and 5 choices in
    # turn (the synthetic item's own four, one dropped or a wrong answer of another item added)
    arc_items = [item for item in language.multiple_choice if item.label < 3][: 36 * scale]
    for split, chunk in (("validation", arc_items[: 16 * scale]), ("test", arc_items[16 * scale :])):
        rows = []
        for n, item in enumerate(chunk):
            width = 3 + n % 3
            own = list(item.choices[:width])
            choices = own + [c for c in wrong[5 * n :] if c not in own][: width - len(own)]
            keys = list("12345" if n % 4 == 3 else "ABCDE")[:width]
            rows.append(
                {
                    "id": f"arc-{item.id}",
                    "question": item.context,
                    "choices": {"text": choices, "label": keys},
                    "answerKey": keys[item.label],
                }
            )
        datasets.Dataset.from_list(rows).to_parquet(
            str(folder(root, "allenai/ai2_arc", "ARC-Challenge") / f"{split}.parquet")
        )


def build_beir(root: Path, rng: np.random.Generator, scale: int = 1) -> None:
    """A small BEIR folder for each retrieval task: 24 documents and 8 queries (times `scale`), graded qrels;
    ArguAna's queries are documents of its corpus, as in the real set."""
    for dataset, revision in (
        ("mteb/scifact", "d56462d0e63a25450459c4f213e49ffdb866f7f9"),
        ("mteb/nfcorpus", "ec0fa4fe99da2ff19ca1214b7966684033a58814"),
        ("mteb/fiqa", "27a168819829fe9bcd655c2df245fb19452e8e06"),
        ("mteb/arguana", "c22ab2a51041ffd869aaddef7af8d8215647e41a"),
    ):
        target = folder(root, dataset, None, revision)
        (target / "qrels").mkdir(exist_ok=True)
        docs = sentences(rng, 24 * scale, length=14)
        with (target / "corpus.jsonl").open("w") as out:
            for i, text in enumerate(docs):
                out.write(json.dumps({"_id": f"d{i}", "title": f"doc {i}", "text": text}) + "\n")
        # ArguAna's queries are arguments of its corpus (same id and text; its own document is not judged)
        arguments = dataset == "mteb/arguana"
        query_ids = [f"d{3 * q + 2}" if arguments else f"q{q}" for q in range(8 * scale)]
        with (target / "queries.jsonl").open("w") as out:
            for q, qid in enumerate(query_ids):
                text = docs[3 * q + 2] if arguments else " ".join(docs[3 * q].split()[:4])
                out.write(json.dumps({"_id": qid, "text": text}) + "\n")
        with (target / "qrels" / "test.tsv").open("w") as out:
            out.write("query-id\tcorpus-id\tscore\n")
            for q, qid in enumerate(query_ids):
                out.write(f"{qid}\td{3 * q}\t2\n{qid}\td{3 * q + 1}\t1\n")


# --------------------------------------------------------------------------- specs and models


#: the class names of the fixture copies whose classes are a few of the real dataset's
FIXTURE_CLASSES = {"ILSVRC/imagenet-1k": IMAGENET}


def fixture_specs(source: Path, target: Path) -> Path:
    """The task specs of `source` (a tasks/ folder) copied to `target`, the catalog's shrunk for the
    fixture mirror: row slices beyond row 1000 divided by 1000, ImageNet's 256/224 transform made 36/32,
    label filters (keep_labels) cut to the classes the fixture copy has, row orders and class ranks left out."""
    target.mkdir(parents=True, exist_ok=True)
    for file in source.glob("*.yaml"):
        (target / file.name).write_text(file.read_text())
    for file in sorted((source / "catalog").rglob("*.yaml")):
        raw = yaml.safe_load(file.read_text())
        dataset = raw["dataset"]
        for hub in dataset.get("splits", {}).values():
            start, _, stop = str(hub.get("rows") or ":").partition(":")
            if stop and int(stop) > 1000:  # a slice sized for the full dataset
                hub["rows"] = ":".join(str(int(v) // 1000) if v else "" for v in (start, stop))
            # an order recognises the full dataset's blocks by their label counts; its class ranks count in it
            hub.pop("row_order", None)
            hub.pop("drop_class_ranks", None)
            if hub.get("keep_labels") and hub["dataset"] in FIXTURE_CLASSES:
                hub["keep_labels"] = [c for c in hub["keep_labels"] if c in FIXTURE_CLASSES[hub["dataset"]]]
        if dataset.get("label_names") and len(dataset["label_names"]) == 100:  # OpenOOD's CIFAR-100 names
            dataset["label_names"] = CIFAR100
        prep = dataset.get("preprocessing", {})
        if prep.get("center_crop") == 224:
            prep.update(resize=36, center_crop=32)
        out = target / file.relative_to(source)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(yaml.safe_dump(raw, sort_keys=False))
    return target


def image_classifier(out: Path, labels: list[str]) -> Path:
    """A tiny ViT (32x32 images, random weights) with its image processor and id2label `labels`."""
    import torch
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    torch.manual_seed(0)
    config = ViTConfig(
        image_size=32, patch_size=8, num_channels=3, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=64, num_labels=len(labels), id2label=dict(enumerate(labels)),
        label2id={name: i for i, name in enumerate(labels)},
    )  # fmt: skip
    ViTForImageClassification(config).save_pretrained(str(out), safe_serialization=True)
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(str(out))
    return out


def text_classifier(out: Path, labels: list[str] | int) -> Path:
    """A tiny BERT (random weights) with a word-piece tokenizer built here; `labels` names or a count
    (then id2label is transformers' LABEL_0, LABEL_1, ...: no names)."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    torch.manual_seed(0)
    out.mkdir(parents=True, exist_ok=True)
    vocab = out / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *sorted(set(WORDS + CLINC))]) + "\n")
    tokenizer = BertTokenizerFast(vocab_file=str(vocab), do_lower_case=True)
    names = labels if isinstance(labels, list) else None
    config = BertConfig(
        vocab_size=tokenizer.vocab_size, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=64, num_labels=len(names) if names else int(labels),  # type: ignore[arg-type]
        **({"id2label": dict(enumerate(names)), "label2id": {n: i for i, n in enumerate(names)}} if names else {}),
    )  # fmt: skip
    BertForSequenceClassification(config).save_pretrained(str(out), safe_serialization=True)
    tokenizer.save_pretrained(str(out))
    return out


def build_models(root: Path) -> dict[str, Path]:
    """The classifiers of the catalog test, by what they are for."""
    rng = np.random.default_rng(1)
    cifar10 = [CIFAR10[i] for i in rng.permutation(10)]  # another order than the dataset's
    imagenet_model = [
        "hammerhead, hammerhead shark", "tench", "goldfish", "great white shark", "tiger shark", "cock", "hen", "ostrich",
    ]  # fmt: skip  # ImageNet-style synonyms, three classes beyond the task's
    return {
        "cifar10": image_classifier(root / "vit-cifar10", cifar10),
        "cifar100": image_classifier(root / "vit-cifar100", CIFAR100),
        "imagenet": image_classifier(root / "vit-imagenet", imagenet_model),
        "clinc": text_classifier(root / "bert-clinc", ["weather", "transfer", "balance"]),
        "sst2": text_classifier(root / "bert-sst2", 2),
    }


def main(out: Path) -> None:
    build_data(out / "data")
    fixture_specs(Path(__file__).resolve().parents[2] / "tasks", out / "tasks")
    build_models(out / "models")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
