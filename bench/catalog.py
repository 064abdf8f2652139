"""Bench: the standard-benchmark catalog (issue 14) on its fixture mirror.

- Every catalog task: the wall time and peak memory (max RSS) of a whole `harness eval` in a fresh
  process (interpreter start, imports, data read from the mirror, model load, inference with a cold
  cache, metrics with 1,000 bootstrap resamples, submission written), on the model the catalog test
  uses for it (tiny random ViT / BERT classifiers, the packaged all-MiniLM-L6-v2, the LM zoo's tiny
  GPT-2s; tests/data/make_catalog_mirror.py). The fixture mirror is tiny (tens of images, 48
  articles): these rows measure the fixed cost of a run, not a real benchmark's.
- Per-sample throughput against the peer tool on the same model and data, where there is one:
  * lm-wikitext103 / lm-c4: Harness's rolling log-likelihood against lm-evaluation-harness's
    loglikelihood_rolling on the same documents (documents per second), and the relative difference
    of the two bits-per-byte values (target < 1e-4: the same numbers);
  * calib-openbookqa, calib-arc-challenge: Harness's choice log-likelihoods against lm-eval's own
    openbookqa and arc_challenge tasks (read from the mirror; ARC's items have 3 to 5 choices) (items per
    second), and whether both pick the same answers (accuracy equal);
  * beir-*: Harness's retrieval task against MTEB's retrieval evaluation on the same BEIR folder and
    encoder (queries per second, corpus encoding included), and abs(nDCG@10 Harness - MTEB).
  Image and text classification have no peer tool that runs on these datasets (OpenOOD needs its own
  image lists and checkpoints): only the whole-run rows.
Timings share the machine with whatever else runs (2 cores here): read them as orders of magnitude.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from common import Row, print_table, timer

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "data"))
sys.path.insert(0, str(HERE.parent / "tests"))

import make_catalog_mirror as fixture  # noqa: E402
from mteb_reference import mteb_beir_scores  # noqa: E402

#: the language and retrieval data are this many times the test's fixture (48 articles, 96 questions)
SCALE = 4
#: a whole `harness eval` in a fresh interpreter; prints its peak memory (KiB) on the last stderr line
WRAPPER = (
    "import atexit, resource, sys\n"
    "atexit.register(lambda: print(f'PEAK_RSS_KB={resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}', file=sys.stderr))\n"
    "sys.argv = ['harness', *sys.argv[1:]]\n"
    "from harness.cli import main\n"
    "main()\n"
)
RUNS = {
    "cifar10": ["ood-cifar10", "calib-cifar10", "lt-cifar10-r10", "lt-cifar10-r50", "lt-cifar10-r100"],
    "cifar100": ["ood-cifar100", "calib-cifar100", "lt-cifar100-r10", "lt-cifar100-r50", "lt-cifar100-r100"],
    "imagenet": ["ood-imagenet", "ood-imagenet200", "calib-imagenet", "lt-imagenet"],
    "clinc": ["ood-clinc150"],
    "sst2": ["ood-sst2-20ng"],
    "minilm": ["beir-scifact", "beir-nfcorpus", "beir-fiqa", "beir-arguana"],
    "lm": ["lm-wikitext103", "lm-c4", "calib-openbookqa", "calib-arc-challenge"],
    "lm-candidate": ["compression-wikitext"],
}


def whole_eval(model: Path, task: str, env: dict[str, str], out: Path) -> tuple[float, float]:
    """(seconds, peak MiB) of `harness eval --model model --tasks task` in a fresh process, cold cache."""
    command = [sys.executable, "-c", WRAPPER, "eval", "--model", str(model), "--tasks", task, "--no-store"]
    command += ["--out", str(out), "--cache-dir", str(out / "cache" / task)]
    with timer() as t:
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"harness eval {task} failed: {done.stderr[-2000:]}")
    peak = next(line for line in reversed(done.stderr.splitlines()) if line.startswith("PEAK_RSS_KB="))
    return t[0], int(peak.split("=")[1]) / 1024


def _lm_eval_task(folder: Path, name: str, texts: list[str]) -> Path:
    """An lm-eval loglikelihood_rolling task over `texts` (the documents Harness scores)."""
    folder.mkdir(parents=True, exist_ok=True)
    data = folder / f"{name}.jsonl"
    data.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    config = {
        "task": name,
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"test": str(data)}},
        "test_split": "test",
        "output_type": "loglikelihood_rolling",
        "doc_to_text": "",
        "doc_to_target": "{{text}}",
        "metric_list": [{"metric": "bits_per_byte"}],
    }
    (folder / f"{name}.yaml").write_text(json.dumps(config))  # JSON is YAML
    return folder


def _simple_evaluate(
    handle: Any, task: str | None, include_path: str | None, task_object: Any = None
) -> tuple[float, dict[str, Any]]:
    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    lm = HFLM(
        pretrained=handle.model, tokenizer=handle.tokenizer, batch_size=64, max_length=handle.max_length, device="cpu"
    )
    manager = TaskManager(include_path=include_path) if include_path else None
    with timer() as t:
        results = lm_eval.simple_evaluate(
            model=lm, tasks=[task_object or task], task_manager=manager, bootstrap_iters=0, verbosity="ERROR"
        )
    return t[0], results


def lm_rows(reference: Path, root: Path) -> list[Row]:
    """Harness vs lm-eval on the catalog's LM documents and OpenBookQA and ARC items (the same model)."""
    from harness.data import load_suite
    from harness.data.catalog import lm_eval_task_object
    from harness.models import load_model
    from harness.models.base import InferenceOptions
    from harness.tasks import load_specs

    handle: Any = load_model(reference)
    specs = load_specs()
    rows: list[Row] = []
    for task, split in (("lm-wikitext103", "test"), ("lm-c4", "validation")):
        texts = list(load_suite(specs.get(task).dataset).split(split).texts)
        with timer() as t:
            ours = handle.rolling_nll(texts, InferenceOptions(batch_size=64))
        our_bpb = float(ours["nll_sum"].sum()) / sum(len(x.encode()) for x in texts) / math.log(2)
        name = task.replace("-", "_") + "_bench"
        seconds, results = _simple_evaluate(handle, name, str(_lm_eval_task(root / "lm_eval" / name, name, texts)))
        their_bpb = float(results["results"][name]["bits_per_byte,none"])
        difference = abs(our_bpb - their_bpb) / their_bpb
        rows += [
            Row("catalog", f"{task}: Harness rolling NLL ({len(texts)} docs)", len(texts) / t[0], "docs/s"),
            Row("catalog", f"{task}: lm-eval loglikelihood_rolling", len(texts) / seconds, "docs/s"),
            Row("catalog", f"{task}: speed-up over lm-eval", seconds / t[0], "x"),
            Row("catalog", f"{task}: abs(bpb Harness - lm-eval) / bpb", difference, "", "< 1e-4", difference < 1e-4),
        ]
    for task, peer in (("calib-openbookqa", "openbookqa"), ("calib-arc-challenge", "arc_challenge")):
        spec = specs.get(task)
        test = load_suite(spec.dataset).split("test")
        with timer() as t:
            logits = handle.classify(test, InferenceOptions(batch_size=64))["logits"]  # -inf pads missing choices
        ours = float((logits.argmax(axis=1) == test.y).mean())
        hub = spec.dataset.splits["test"]
        task_object = lm_eval_task_object(spec.dataset, [hub])  # lm-eval's own task, reading the mirror's copy
        seconds, results = _simple_evaluate(handle, None, None, task_object)
        theirs = float(next(iter(results["results"].values()))["acc,none"])
        rows += [
            Row("catalog", f"{task}: Harness choice log-likelihoods ({len(test)} items)", len(test) / t[0], "items/s"),
            Row("catalog", f"{task}: lm-eval {peer}", len(test) / seconds, "items/s"),
            Row("catalog", f"{task}: speed-up over lm-eval", seconds / t[0], "x"),
            Row("catalog", f"{task}: abs(accuracy Harness - lm-eval)", abs(ours - theirs), "", "== 0", ours == theirs),
        ]
    return rows


def retrieval_rows(root: Path) -> list[Row]:
    from harness.data import clear_suites
    from harness.data.mirror import mirror_folder
    from harness.models import load_model
    from harness.models.sentence_encoder import packaged_minilm_path
    from harness.runner import EvalOptions, Runner
    from harness.tasks import load_specs

    rows: list[Row] = []
    for task in RUNS["minilm"]:
        spec = load_specs().get(task)
        clear_suites()
        handle = load_model(packaged_minilm_path())
        with timer() as t:
            result = Runner(EvalOptions(cache_dir=root / "retrieval-cache" / task)).evaluate(handle, [spec])
        ours = result.submission.results[0].metric("ndcg_at_10")
        seconds, scores = mteb_beir_scores(
            mirror_folder(spec.dataset.splits["test"]),
            packaged_minilm_path(),
            ignore_identical_ids=bool(spec.parameters.get("ignore_identical_ids", False)),
        )
        theirs = float(scores["ndcg_at_10"])
        rows += [
            Row("catalog", f"{task}: Harness retrieval task ({ours.n} queries)", ours.n / t[0], "queries/s"),
            Row("catalog", f"{task}: MTEB retrieval evaluation", ours.n / seconds, "queries/s"),
            Row("catalog", f"{task}: abs(nDCG@10 Harness - MTEB)", abs(ours.value - theirs), "", "< 1e-4", abs(ours.value - theirs) < 1e-4),
        ]  # fmt: skip
    return rows


def run() -> list[Row]:
    from harness.models.sentence_encoder import packaged_minilm_path
    from harness.zoo.lm import build as build_lm_zoo

    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        env = {
            **os.environ,
            "HF_HUB_OFFLINE": "1",
            "HF_DATASETS_OFFLINE": "1",
            "HARNESS_DATA_DIR": str(root / "data"),
            "HARNESS_TASKS_DIR": str(root / "tasks"),
            "HARNESS_CACHE_DIR": str(root / "cache"),
            "TOKENIZERS_PARALLELISM": "false",
        }
        os.environ.update(env)
        fixture.build_data(root / "data", scale=SCALE)
        fixture.fixture_specs(HERE.parent / "tasks", root / "tasks")
        models = {k: Path(v) for k, v in fixture.build_models(root / "models").items()}
        build_lm_zoo(root / "lm-zoo", profile="tiny")
        models["minilm"] = packaged_minilm_path()
        models["lm"] = root / "lm-zoo" / "synthlang-gpt2-tiny-2x32-adamw-step200"
        models["lm-candidate"] = root / "lm-zoo" / "synthlang-gpt2-tiny-base-int8"
        for model, tasks in RUNS.items():
            for task in tasks:
                seconds, peak = whole_eval(models[model], task, env, root / "runs")
                rows += [
                    Row("catalog", f"{task}: whole `harness eval` ({model} model, cold cache)", seconds, "s"),
                    Row("catalog", f"{task}: peak memory of that process", peak, "MiB"),
                ]
        rows += lm_rows(models["lm"], root)
        rows += retrieval_rows(root)
    return rows


if __name__ == "__main__":
    print_table(run(), "bench/catalog.py")
