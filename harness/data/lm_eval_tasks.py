"""The synthetic-language downstream tasks as lm-evaluation-harness tasks with local data files.

`write_lm_eval_tasks(folder, suite)` writes `folder/data/*.jsonl` and one YAML per task into `folder`,
with absolute data paths, so lm-eval finds the data from any working directory and never downloads:

    import lm_eval
    from lm_eval.tasks import TaskManager
    names = write_lm_eval_tasks(tasks_folder, language_suite(seed=0))
    results = lm_eval.simple_evaluate(
        model="hf", model_args=f"pretrained={model_folder},dtype=float32", tasks=names,
        task_manager=TaskManager(include_path=str(tasks_folder)), device="cpu", batch_size=16,
    )
    results["results"]["synth_blimp"]["acc,none"]; results["results"]["synth_heldout"]["word_perplexity,none"]

(`tasks=["synth_language"]`, the tag every task carries, runs all three.) Set HF_HUB_OFFLINE=1 and
HF_DATASETS_OFFLINE=1: the `json` dataset builder ships with `datasets` and works offline (it still writes
its Arrow cache under ~/.cache/huggingface/datasets or $HF_DATASETS_CACHE).

Tasks
- `synth_blimp` (multiple_choice, metric acc): minimal pairs scored as BLiMP is, with an empty context and
  the two full sentences as choices, target 0: correct when log p(good) > log p(bad).
- `synth_mc` (multiple_choice, metrics acc and acc_norm): context, four choices, `label`.
- `synth_heldout` (loglikelihood_rolling, metrics word_perplexity, byte_perplexity, bits_per_byte): the
  held-out documents, as lm-eval's wikitext task reports them.

What lm-eval 0.4.13 does with the "hf" model and `build_tokenizer`'s tokenizer (checked by the slow test
in tests/test_language.py, which recomputes synth_heldout's log-likelihood by hand):
- Rolling log-likelihood (synth_heldout): the document is encoded with the tokenizer's defaults, which add
  no special token; lm-eval then prepends one prefix token = the tokenizer's BOS id (<eos>, id 2; EOS
  when there is no BOS; the `prefix_token_id` model arg overrides it) and scores every document token:
  log p(w_1 | <eos>) + log p(w_2 | <eos> w_1) + ... No EOS is appended and the <eos> itself is not scored.
- Windows: the maximum length is the model config's `n_positions` (then `max_position_embeddings`,
  `n_ctx`, the tokenizer's `model_max_length` unless "infinite", else 2048; the `max_length` model arg
  overrides). A document of T <= max_length tokens is one window (input <eos> w_1..w_{T-1}). Longer
  documents are cut into chunks of L = max_length predicted tokens, and a chunk sees nothing before its own
  start except one token: the first chunk's input is <eos> w_1..w_{L-1}, a later full chunk's input is
  the token before it and the chunk minus its last token. A last, shorter chunk of k tokens is scored
  with an input of the L tokens before its last token (so it sees L - k + 1 earlier tokens). Example with
  L = 4 and 10 tokens: predict w1-w4 from <eos> w1 w2 w3; w5-w8 from w4 w5 w6 w7; w9-w10 from w6 w7 w8 w9.
  Held-out documents have at most `max_document_words` (128) tokens, so any model with n_positions >= 128
  scores each one in a single window.
- word_perplexity = exp(-sum of document log-likelihoods / sum of words), words counted as
  len(re.split(r"\\s+", text)). The text is words separated by single spaces with no leading or trailing
  space, so the word count equals the token count and word_perplexity = exp(held-out mean token NLL) =
  exp(loss_nats) computed as above. byte_perplexity and bits_per_byte divide by UTF-8 bytes instead
  (spaces included), so they are not per-token numbers.
- `add_bos_token=True` (model arg) makes this tokenizer add <eos> itself, on top of the prefix token:
  rolling scores then include p(<eos> | <eos>) and differ. Leave it unset.
- Multiple choice: each choice is appended to the context after `target_delimiter` (one space; the
  whitespace pre-tokenizer drops it, so tokens are the same as for the joined text). An empty context
  (synth_blimp) is replaced by the prefix token, so each sentence is scored conditioned on <eos>. A
  non-empty context (synth_mc) gets no <eos> in front (the first context word sits at position 0 of
  the model); only the choice's tokens are scored. acc compares summed log-likelihoods; acc_norm divides
  them by the choice's length in characters (in bytes in lm-eval's code; the same for this ASCII text).
- Inputs are padded on the right inside a batch without an attention mask, which does not change the
  scores of a causal model; results agree across batch sizes up to float32 rounding.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from harness.data.language import LanguageSuite

TAG = "synth_language"
TASKS = ("synth_blimp", "synth_mc", "synth_heldout")


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, sort_keys=True) + "\n")


def _task_config(name: str, data_file: Path, fingerprint: str, **fields: Any) -> dict[str, Any]:
    return {
        "task": name,
        "tag": [TAG],
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"test": str(data_file)}},
        "test_split": "test",
        **fields,
        "metadata": {"version": 1.0, "fingerprint": fingerprint},
    }


def write_lm_eval_tasks(folder: Path, suite: LanguageSuite) -> list[str]:
    """Write the data files and task YAMLs for `suite` into `folder`; return the task names.

    Files: `folder/data/{synth_blimp,synth_mc,synth_heldout}.jsonl` and `folder/<task>.yaml`. Existing
    files of the same names are overwritten; nothing else in `folder` is touched. Each YAML records the
    split's fingerprint under `metadata`. Pass `TaskManager(include_path=str(folder))` to lm-eval.
    """
    folder = Path(folder).resolve()
    data = folder / "data"
    blimp_file = data / "synth_blimp.jsonl"
    mc_file = data / "synth_mc.jsonl"
    heldout_file = data / "synth_heldout.jsonl"
    _write_jsonl(
        blimp_file,
        [
            {"id": p.id, "sentence_good": p.good, "sentence_bad": p.bad, "phenomenon": p.phenomenon}
            for p in suite.minimal_pairs
        ],
    )
    _write_jsonl(
        mc_file,
        [
            {"id": m.id, "context": m.context, "choices": list(m.choices), "label": m.label, "phenomenon": m.phenomenon}
            for m in suite.multiple_choice
        ],
    )
    _write_jsonl(heldout_file, [{"id": d.id, "text": d.text} for d in suite.heldout])

    accuracy = {"metric": "acc", "aggregation": "mean", "higher_is_better": True}
    configs = [
        _task_config(
            "synth_blimp",
            blimp_file,
            suite.minimal_pairs.fingerprint,
            output_type="multiple_choice",
            doc_to_text="",
            doc_to_choice="{{[sentence_good, sentence_bad]}}",
            doc_to_target=0,
            num_fewshot=0,
            metric_list=[accuracy],
        ),
        _task_config(
            "synth_mc",
            mc_file,
            suite.multiple_choice.fingerprint,
            output_type="multiple_choice",
            doc_to_text="context",
            doc_to_choice="choices",
            doc_to_target="label",
            num_fewshot=0,
            metric_list=[accuracy, {"metric": "acc_norm", "aggregation": "mean", "higher_is_better": True}],
        ),
        _task_config(
            "synth_heldout",
            heldout_file,
            suite.heldout.fingerprint,
            output_type="loglikelihood_rolling",
            doc_to_text="",
            doc_to_target="text",
            num_fewshot=0,
            metric_list=[{"metric": "word_perplexity"}, {"metric": "byte_perplexity"}, {"metric": "bits_per_byte"}],
        ),
    ]
    for config in configs:
        text = f"# Written by harness.data.lm_eval_tasks for dataset {suite.name!r}, seed {suite.seed}.\n"
        text += yaml.safe_dump(config, sort_keys=False)
        (folder / f"{config['task']}.yaml").write_text(text, encoding="utf-8")
    return [str(config["task"]) for config in configs]
