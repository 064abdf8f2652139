"""Bench: cold and warm runs against lm-evaluation-harness, whole commands (issue 16).

On the same local model (a GPT-2 of 4 layers x 256 dimensions, about 3.2M parameters, on the zoo's
synthetic-language tokenizer, written here with seeded random weights so that compute, not process
start-up, dominates) and the same data (the synthetic language's lm-eval tasks, written to a local
include folder):
- a multiple-choice task: `harness eval --tasks synth_mc` against `lm_eval --tasks synth_mc`;
- a rolling-loss task: `harness eval --tasks lm_loss` against `lm_eval --tasks synth_heldout` (the
  same held-out documents, lm-eval's loglikelihood_rolling).
Both start from prepared data: lm-eval from the task files, Harness from the same generated language
and task files (stored in its cache folder), and neither has any model output cached when it runs cold.
Each command runs as its own process, at its defaults (Harness: automatic batches; lm-eval: batch
size 1), and is measured for wall time and peak resident memory (the child's ru_maxrss). Harness runs
cold (an empty cache) and warm (the same cache again); lm-eval has no per-sample cache and runs cold.
Targets: cold not slower than lm-eval, warm at least 3x faster than lm-eval, peak memory not above
lm-eval's.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from common import Row, print_table

BIN = Path(sys.executable).parent
#: runs a command as a child and prints its wall time and peak resident memory as JSON
MEASURE = """
import json, resource, subprocess, sys, time
started = time.perf_counter()
done = subprocess.run(sys.argv[1:], capture_output=True, text=True)
seconds = time.perf_counter() - started
if done.returncode != 0:
    sys.stderr.write(done.stdout[-2000:] + done.stderr[-4000:])
    sys.exit(done.returncode)
peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps({"seconds": seconds, "peak_mib": peak_kib / 1024}))
"""


def measure(command: list[str], env: dict[str, str]) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-c", MEASURE, *command], capture_output=True, text=True, env=env, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:4])} ... failed:\n{done.stderr[-3000:]}")
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def bench_model(reference: Path, out: Path) -> Path:
    """A larger GPT-2 than the tiny zoo's, with the reference's tokenizer and card (seeded random weights)."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from harness.schema import ModelCard

    base = GPT2Config.from_pretrained(str(reference))
    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=base.vocab_size, n_positions=base.n_positions, n_layer=4, n_embd=256, n_head=4,
        bos_token_id=base.bos_token_id, eos_token_id=base.eos_token_id,
    )  # fmt: skip
    GPT2LMHeadModel(config).save_pretrained(str(out), safe_serialization=True)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(reference / name, out / name)
    card = ModelCard.model_validate_json((reference / "card.json").read_text())
    (out / "card.json").write_text(card.model_copy(update={"name": "bench-gpt2-4x256"}).model_dump_json())
    return out


def run() -> list[Row]:
    from harness.data.lm_eval_source import synthlang_lm_eval_suite
    from harness.schema import ModelCard
    from harness.zoo import zoo_models
    from harness.zoo.lm import build

    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
        env["HF_DATASETS_CACHE"] = str(root / "hf-datasets")
        os.environ["HARNESS_CACHE_DIR"] = str(root / "tasks-cache")
        build(root / "zoo", profile="tiny")
        reference = next(
            p
            for p in zoo_models(root / "zoo")
            if "compression-reference" in ModelCard.model_validate_json((p / "card.json").read_text()).tags
        )
        reference = bench_model(reference, root / "bench-gpt2-4x256")
        include = str(synthlang_lm_eval_suite().include_path)
        jobs = (("multiple choice", "synth_mc", "synth_mc"), ("rolling loss", "lm_loss", "synth_heldout"))
        for label, ours, theirs in jobs:
            lm_eval = measure(
                [
                    str(BIN / "lm_eval"), "--model", "hf", "--model_args", f"pretrained={reference},dtype=float32",
                    "--tasks", theirs, "--include_path", include, "--device", "cpu",
                ],
                env,
            )  # fmt: skip
            cache = root / f"cache-{ours}"
            # Both sides start from prepared data (lm-eval reads the task files written above): the
            # synthetic language, generated once above, is stored in Harness's cache too; no model
            # output is cached, so the cold run does every forward pass.
            for prepared in ("language", "lm_eval_tasks"):
                shutil.copytree(root / "tasks-cache" / prepared, cache / prepared)
            harness = [
                str(BIN / "harness"), "eval", "--model", str(reference), "--tasks", ours, "--no-store",
                "--out", str(root / "subs"), "--cache-dir", str(cache),
            ]  # fmt: skip
            cold = measure(harness, env)
            warm = measure(harness, env)
            faster, speedup = cold["seconds"] / lm_eval["seconds"], lm_eval["seconds"] / warm["seconds"]
            memory = lm_eval["peak_mib"]
            rows += [
                Row("identity", f"{label}: lm-eval (batch 1, its default)", lm_eval["seconds"], "s"),
                Row("identity", f"{label}: harness cold", cold["seconds"], "s"),
                Row("identity", f"{label}: harness warm (cache)", warm["seconds"], "s"),
                Row("identity", f"{label}: cold / lm-eval", faster, "x", "<= 1", faster <= 1),
                Row("identity", f"{label}: lm-eval / warm", speedup, "x", ">= 3", speedup >= 3),
                Row("identity", f"{label}: peak memory lm-eval", memory, "MiB"),
                Row("identity", f"{label}: peak memory harness cold", cold["peak_mib"], "MiB", f"<= {memory:.0f}",
                    cold["peak_mib"] <= memory),
                Row("identity", f"{label}: peak memory harness warm", warm["peak_mib"], "MiB"),
            ]  # fmt: skip
    return rows


if __name__ == "__main__":
    print_table(run(), "bench/identity.py")
