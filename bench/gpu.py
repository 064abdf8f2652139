"""Bench: the GPU path (issue 18). NOT YET RUN ON A GPU: no GPU was available when it was written.

usage: python bench/gpu.py [--device cuda|cpu] [--limit N]   (default: cuda when there is one; on the CPU
the first 64 samples of each split, so that the CPU run stays short)

(a) Agreement: zoo models (tiny profile, built in a temporary folder: a digits MLP, a GPT-2 of the LM
    zoo) and the packaged MiniLM encoder are evaluated on --device and on the CPU, float32 both; the
    per-sample outputs of every task (calib, ood; lm_loss, calib-lm; retrieval) must agree within
    |device - cpu| <= 1e-3 x max(1, max |cpu|) per block (TF32 is off for float32 matmuls in PyTorch,
    so the differences are float32 rounding, amplified at most by OOD's Mahalanobis precision matrix).
    With --device cpu both runs are on the CPU: the rows then only show that the path runs.
(b) LM scoring throughput on one model (GPT-2, 4 layers x 256, the zoo's tokenizer, seeded weights;
    bench/identity.py) on --device: tokens per second of Harness's `lm_loss` scoring against
    lm-eval's own `hf` backend (loglikelihood_rolling on synth_heldout, the same documents), and of the
    `synth_mc` lm-eval task through Harness's bridge against lm-eval's `hf` backend loading the same
    folder. Batches: Harness automatic (on CUDA: the largest that fits, halved on out-of-memory);
    lm-eval `auto` on CUDA, 64 on the CPU. Timings exclude model loading and lm-eval's task index; each
    is the faster of two runs (the first also pays for CUDA kernels and lm-eval's dataset build). The
    throughput target (Harness not slower than lm-eval) applies on CUDA; CPU rows are informative.
The whole script is sized to finish in under 8 minutes on one GPU.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common import Row, print_table

#: samples per split on the CPU (a GPU runs whole splits)
CPU_LIMIT = 64
#: |device - cpu| <= TOLERANCE x max(1, max |cpu|), per block of per-sample outputs
TOLERANCE = 1e-3


def _evaluate(path: Path, tasks: list[str], device: str, limit: int | None, cache: Path) -> tuple[Any, float]:
    from harness.runner import EvalOptions, Runner, load_models
    from harness.tasks import load_specs

    options = EvalOptions(device=device, limit=limit, cache_dir=cache)
    (handle,) = load_models([path], options, device)
    specs = [load_specs().get(name) for name in tasks]
    started = time.perf_counter()
    result = Runner(options).evaluate(handle, specs)
    return result, time.perf_counter() - started


def _largest_difference(device_result: Any, cpu_result: Any) -> float:
    import numpy as np

    worst = 0.0
    for (task, a), (_, b) in zip(device_result.samples, cpu_result.samples, strict=True):
        assert a.ids == b.ids, f"{task}/{a.split}: the samples differ"
        x, y = np.asarray(a.values, dtype=np.float64), np.asarray(b.values, dtype=np.float64)
        finite = np.isfinite(y)
        if not np.array_equal(finite, np.isfinite(x)):
            return float("inf")
        scale = max(1.0, float(np.abs(y[finite]).max())) if finite.any() else 1.0
        worst = max(worst, float(np.abs(x[finite] - y[finite]).max(initial=0.0)) / scale)
    return worst


def agreement(zoo: Path, device: str, limit: int | None, root: Path) -> list[Row]:
    from harness.models.sentence_encoder import packaged_minilm_path
    from harness.zoo import zoo_models

    lm = next(p for p in zoo_models(zoo) if p.name.startswith("synthlang-gpt2") and "-base-" not in p.name)
    cases = [
        (zoo / "digits-mlp-wide", ["calib", "ood"]),
        (lm, ["lm_loss", "calib-lm"]),
        (packaged_minilm_path(), ["retrieval"]),
    ]
    rows = []
    for path, tasks in cases:
        on_device, device_s = _evaluate(path, tasks, device, limit, root / f"cache-{device}")
        on_cpu, cpu_s = _evaluate(path, tasks, "cpu", limit, root / "cache-cpu-reference")
        difference = _largest_difference(on_device, on_cpu)
        label = f"{on_device.submission.model.name} ({', '.join(tasks)})"
        rows += [
            Row("gpu", f"{label}: |{device} - cpu| / scale", difference, "", f"<= {TOLERANCE:g}", difference <= TOLERANCE),
            Row("gpu", f"{label}: evaluation on {device} / on cpu", device_s / cpu_s, "x"),
        ]  # fmt: skip
    return rows


def _synchronize(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _best_of_2(device: str, fn: Callable[[], Any]) -> tuple[float, Any]:
    """(seconds, result) of the faster of two calls: the first also pays one-time costs (CUDA kernels,
    lm-eval building its dataset from the task files), which are not scoring throughput."""
    times, result = [], None
    for _ in range(2):
        _synchronize(device)
        started = time.perf_counter()
        result = fn()
        _synchronize(device)
        times.append(time.perf_counter() - started)
    return min(times), result


def _lm_eval(model: Any, task: str, include_path: str, limit: int | None) -> Any:
    """lm-eval's simple_evaluate on `model` (a loaded HFLM), with the task index Harness's bridge uses."""
    import lm_eval

    from harness.data.lm_eval_source import task_manager

    return lm_eval.simple_evaluate(
        model=model, tasks=[task], task_manager=task_manager(include_path), limit=limit, log_samples=True,
        bootstrap_iters=1000, verbosity="ERROR",
    )  # fmt: skip


def throughput(zoo: Path, device: str, limit: int | None, root: Path) -> list[Row]:
    from identity import bench_model
    from lm_eval.models.huggingface import HFLM

    from harness.data import get_split, load_suite
    from harness.data.lm_eval_source import synthlang_lm_eval_suite, task_manager
    from harness.models import load_model
    from harness.models.base import InferenceOptions, LoadOptions
    from harness.registry import INFERENCE
    from harness.schema import ModelCard
    from harness.tasks import adapter_for, load_specs
    from harness.zoo import zoo_models

    reference = next(
        p
        for p in zoo_models(zoo)
        if "compression-reference" in ModelCard.model_validate_json((p / "card.json").read_text()).tags
    )
    path = bench_model(reference, root / "bench-gpt2-4x256")
    handle: Any = load_model(path, LoadOptions(device=device))
    include = str(synthlang_lm_eval_suite().include_path)
    task_manager(include)  # index lm-eval's tasks once, outside every timing
    lm_eval_batch: int | str = "auto" if device.startswith("cuda") else 64
    theirs = HFLM(pretrained=str(path), device=device, batch_size=lm_eval_batch, dtype="float32")
    on_gpu = device.startswith("cuda")
    rows = [Row("gpu", f"automatic LM batch at {handle.max_length} tokens on {device}", handle.auto_batch_size(handle.max_length), "seqs")]  # fmt: skip

    # lm_loss: Harness's rolling log-likelihood against lm-eval's loglikelihood_rolling, same documents
    heldout = get_split(load_suite(load_specs().get("lm_loss").dataset), "heldout", limit)
    texts = [document.text for document in heldout]
    ours_s, ours = _best_of_2(device, lambda: handle.rolling_nll(texts, InferenceOptions()))
    theirs_s, _ = _best_of_2(device, lambda: _lm_eval(theirs, "synth_heldout", include, limit))
    tokens = float(ours["n_tokens"].sum())
    ratio = theirs_s / ours_s
    rows += [
        Row("gpu", f"lm_loss: {tokens:.0f} tokens, harness / lm-eval seconds", ours_s, f"/ {theirs_s:.3g} s"),
        Row("gpu", f"lm_loss tokens/s, harness ({device})", tokens / ours_s, "tok/s"),
        Row("gpu", f"lm_loss tokens/s, lm-eval hf backend ({device})", tokens / theirs_s, "tok/s"),
        Row("gpu", "lm_loss: harness / lm-eval throughput", ratio, "x", ">= 1 (on CUDA)", ratio >= 1 if on_gpu else None),
    ]  # fmt: skip

    # an lm-eval task: through Harness's bridge (the loaded model, Harness's batches) and lm-eval alone
    spec = load_specs().get("synth_mc")
    (request,) = adapter_for(spec).requests(spec)
    split = get_split(load_suite(spec.dataset), request.split, limit)
    bridge_s, _ = _best_of_2(device, lambda: INFERENCE.get("lm-eval").run(handle, split, InferenceOptions()))
    alone_s, results = _best_of_2(device, lambda: _lm_eval(theirs, split.name, include, limit))
    tokenizer = handle.tokenizer
    tokens = float(
        sum(
            len(tokenizer(context + continuation)["input_ids"])
            for sample in results["samples"][split.name]
            for context, continuation in sample["arguments"]
        )
    )
    rows += [
        Row("gpu", f"synth_mc: {tokens:.0f} tokens, harness bridge / lm-eval seconds", bridge_s, f"/ {alone_s:.3g} s"),
        Row("gpu", f"synth_mc tokens/s, harness lm-eval bridge ({device})", tokens / bridge_s, "tok/s"),
        Row("gpu", f"synth_mc tokens/s, lm-eval hf backend ({device})", tokens / alone_s, "tok/s"),
        Row("gpu", "synth_mc: harness bridge / lm-eval throughput", alone_s / bridge_s, "x"),
    ]
    return rows


def run(device: str | None = None, limit: int | None = -1) -> list[Row]:
    """Every row of this bench; `limit` -1: automatic (whole splits on CUDA, CPU_LIMIT on the CPU)."""
    import torch

    from harness.zoo import FAMILIES

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if limit == -1:
        limit = None if device.startswith("cuda") else CPU_LIMIT
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        os.environ["HARNESS_CACHE_DIR"] = str(root / "tasks-cache")
        for family in ("digits", "lm"):
            FAMILIES.get(family)(root / "zoo", "tiny", lambda name: None)  # type: ignore[operator]
        rows = agreement(root / "zoo", device, limit, root) + throughput(root / "zoo", device, limit, root)
    elapsed = time.perf_counter() - started
    if device.startswith("cuda"):
        rows.append(Row("gpu", f"whole bench on {torch.cuda.get_device_name(0)}", elapsed, "s", "< 480", elapsed < 480))
    else:
        rows.append(Row("gpu", f"whole bench on the CPU (limit {limit})", elapsed, "s"))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=("cuda", "cpu"), default=None)
    parser.add_argument("--limit", type=int, default=-1, help="samples per split (default: all on CUDA, 64 on CPU)")
    args = parser.parse_args()
    rows = run(args.device, args.limit)
    print_table(rows, "bench/gpu.py")
    return 0 if all(row.ok is not False for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
