"""Bench: language-model tasks (issue 4).

- lm_loss throughput: tokens per second of Harness's rolling log-likelihood against
  lm-evaluation-harness's loglikelihood_rolling (task synth_heldout) on the same model and corpus,
  and the relative difference of the two perplexities (target: at least 1.5x, same values to 1e-4).
- compression: the time to score 8 compressed candidates against one reference divided by the time
  for 1 candidate, each from a cold cache (target: at most 4, because the reference's greedy
  continuation and its other outputs are computed once and cached).
The models come from the LM zoo (tiny profile, built in a temporary folder).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from common import Row, print_table, timer

from harness.data import clear_suites
from harness.models.base import InferenceOptions
from harness.runner import EvalOptions, Runner, load_models
from harness.schema import ModelCard
from harness.tasks import load_specs
from harness.tasks.compression import with_reference
from harness.zoo import zoo_models


def _lm_eval_rolling(handle: Any, include_path: str) -> tuple[float, float]:
    """(seconds, word perplexity) of lm-eval's synth_heldout on the loaded model."""
    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    lm = HFLM(
        pretrained=handle.model, tokenizer=handle.tokenizer, batch_size=64, max_length=handle.max_length, device="cpu"
    )
    manager = TaskManager(include_path=include_path, verbosity="ERROR")
    with timer() as t:
        results = lm_eval.simple_evaluate(
            model=lm, tasks=["synth_heldout"], task_manager=manager, bootstrap_iters=0, verbosity="ERROR"
        )
    return t[0], float(results["results"]["synth_heldout"]["word_perplexity,none"])


def run() -> list[Row]:
    from harness.data import load_suite
    from harness.zoo.lm import build

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        os.environ["HARNESS_CACHE_DIR"] = str(root / "cache")
        build(root / "zoo", profile="tiny")
        options = EvalOptions(cache_dir=root / "cache", batch_size=64)
        cards = {p: ModelCard.model_validate_json((p / "card.json").read_text()) for p in zoo_models(root / "zoo")}
        reference_path = next(p for p, c in cards.items() if "compression-reference" in c.tags)
        candidates = [p for p, c in cards.items() if c.compression is not None]
        (reference,) = load_models([reference_path], options, "cpu")

        heldout = load_suite(load_specs().get("lm_loss").dataset).split("heldout")
        texts = [d.text for d in heldout]
        with timer() as t:
            ours = reference.rolling_nll(texts, InferenceOptions(batch_size=64))  # type: ignore[attr-defined]
        tokens = float(ours["n_tokens"].sum())
        import math

        our_ppl = math.exp(float(ours["nll_sum"].sum()) / tokens)
        suite = load_suite(load_specs().get("synth_mc").dataset)  # the synthetic lm-eval tasks, synth_heldout included
        lm_eval_s, lm_eval_ppl = _lm_eval_rolling(reference, str(suite.include_path))
        speedup = lm_eval_s / t[0]
        rows += [
            Row("lm", "lm_loss tokens/s (harness)", tokens / t[0], "tok/s"),
            Row("lm", "lm-eval loglikelihood_rolling tokens/s", tokens / lm_eval_s, "tok/s"),
            Row("lm", "lm_loss speed-up over lm-eval", speedup, "x", ">= 1.5", speedup >= 1.5),
            Row(
                "lm",
                "|ppl harness - ppl lm-eval| / ppl",
                abs(our_ppl - lm_eval_ppl) / lm_eval_ppl,
                "",
                "< 1e-4",
                abs(our_ppl - lm_eval_ppl) / lm_eval_ppl < 1e-4,
            ),
        ]

        spec = with_reference(load_specs().get("compression"), str(reference_path))
        chosen = (candidates * 8)[:8]
        times = {}
        for count in (1, 8):
            cache = root / f"cache-{count}"
            os.environ["HARNESS_CACHE_DIR"] = str(cache)  # cold reference and candidate caches
            clear_suites()
            runner = Runner(EvalOptions(cache_dir=cache, batch_size=64))
            handles = load_models(chosen[:count], options, "cpu")
            with timer() as t:
                for index, handle in enumerate(handles):
                    # The same variant twice would hit the cache: use a distinct salt per slot.
                    handle.settings = {**handle.settings, "bench_slot": str(index)}
                    runner.evaluate(handle, [spec])
            times[count] = t[0]
        ratio = times[8] / times[1]
        rows += [
            Row("lm", "compression: 1 candidate (cold, incl. reference)", times[1], "s"),
            Row("lm", "compression: 8 candidates (cold, incl. reference)", times[8], "s"),
            Row("lm", "compression: time(8) / time(1)", ratio, "x", "<= 4", ratio <= 4),
        ]
    return rows


if __name__ == "__main__":
    print_table(run(), "bench/lm.py")
