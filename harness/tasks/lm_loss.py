"""Task adapter `lm_loss`: held-out cross-entropy of a causal language model, measured by Harness.

loss_nats = total NLL / total tokens over the held-out documents (natural log), perplexity =
exp(loss_nats), with lm-evaluation-harness's rolling log-likelihood convention (each document's
first token conditioned on the BOS/EOS prefix token; long documents in disjoint windows), so the
numbers equal lm-eval's word perplexity on a word-level tokenizer. CIs: seeded bootstrap over
documents (the ratio of resampled sums). The split is `parameters.split` (default heldout): the
built-in synthetic language's, or your own plain text (a local dataset's `<split>.txt`, documents
separated by blank lines, or `<split>/*.txt`, one document per file; harness/data/text.py).

With parameter `bits_per_byte: true` (the catalog's WikiText-103 and C4 tasks) each document's UTF-8
byte count is recorded too, and `bits_per_byte` = total NLL / total bytes / ln 2 is reported: unlike
loss per token it does not depend on the tokenizer, so models with different vocabularies compare
(lm-eval's bits_per_byte, on the same documents).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from harness.models.base import Capability
from harness.schema import TaskSpec
from harness.stats import stratified_counts
from harness.tasks.base import ExpectedSamples, Outcome, Request, Samples, SplitOutputs, bootstrap_metric


class LMLossAdapter:
    name = "lm_loss"
    description = "held-out mean per-token cross-entropy (nats) and perplexity of a causal LM"
    capability = Capability.CAUSAL_LM

    def metric_names(self, spec: TaskSpec) -> list[str]:
        return ["loss_nats", "perplexity", *(["bits_per_byte"] if _bytes(spec) else [])]

    def requests(self, spec: TaskSpec) -> list[Request]:
        return [Request("lm-rolling-nll", str(spec.parameters.get("split", "heldout")))]

    def check_splits(self, spec: TaskSpec, splits: dict[str, Any]) -> None:
        """Before any model loads: the split holds text (plain-text documents, a text column, or records)."""
        from harness.data.text import split_texts

        for split in splits.values():
            split_texts(split, f"task {spec.name!r}")

    def expected_samples(self, spec: TaskSpec) -> dict[str, ExpectedSamples]:
        from harness.data import get_split, load_suite

        name = str(spec.parameters.get("split", "heldout"))
        split = get_split(load_suite(spec.dataset), name)
        zeros = np.zeros(len(split), np.int64)
        if _bytes(spec):
            from harness.data.text import split_texts

            n_bytes = np.asarray([len(t.encode("utf-8")) for t in split_texts(split)], np.float64)
            fields, whole = ["nll_sum", "n_tokens", "n_bytes"], frozenset({"n_tokens", "n_bytes"})
            return {name: ExpectedSamples(list(split.ids), zeros, fields, whole=whole, fixed={"n_bytes": n_bytes})}
        return {name: ExpectedSamples(list(split.ids), zeros, ["nll_sum", "n_tokens"], whole=frozenset({"n_tokens"}))}

    def samples(self, spec: TaskSpec, inputs: dict[str, SplitOutputs]) -> list[Samples]:
        ((name, outputs),) = inputs.items()
        columns, fields = [outputs.outputs["nll_sum"], outputs.outputs["n_tokens"]], ["nll_sum", "n_tokens"]
        if _bytes(spec):  # the document's own bytes: the same for every tokenizer
            from harness.data.text import split_texts

            columns.append(np.asarray([len(t.encode("utf-8")) for t in split_texts(outputs.split)]))
            fields.append("n_bytes")
        values = np.stack(columns, axis=1).astype(np.float64)
        return [Samples(name, list(outputs.split.ids), np.zeros(len(values), np.int64), values, fields)]

    def score(self, spec: TaskSpec, samples: dict[str, Samples], seed: int) -> Outcome:
        n_resamples = int(spec.parameters.get("n_resamples", 1000))  # type: ignore[arg-type]
        (block,) = samples.values()
        nll, tokens = block.values[:, 0], block.values[:, 1]
        (counts,) = stratified_counts([len(nll)], n_resamples, seed)
        loss = float(nll.sum() / tokens.sum())
        resampled = (counts @ nll) / (counts @ tokens)
        n_tokens = int(tokens.sum())
        metrics = [
            # documents are resampled (a document's tokens are not independent): n counts documents
            bootstrap_metric("loss_nats", loss, resampled, len(nll), "documents"),
            bootstrap_metric("perplexity", float(np.exp(loss)), np.exp(resampled), len(nll), "documents"),
        ]
        parameters: dict[str, Any] = {"n_documents": len(nll), "n_tokens": n_tokens, "n_resamples": n_resamples}
        if _bytes(spec):
            n_bytes = block.values[:, 2]
            bits = float(nll.sum() / n_bytes.sum() / np.log(2.0))
            resampled_bits = (counts @ nll) / (counts @ n_bytes) / np.log(2.0)
            metrics.append(bootstrap_metric("bits_per_byte", bits, resampled_bits, len(nll), "documents"))
            parameters["n_bytes"] = int(n_bytes.sum())
        return Outcome(metrics=metrics, parameters=parameters)


def _bytes(spec: TaskSpec) -> bool:
    """Whether the task counts bytes too (parameter `bits_per_byte`)."""
    return bool(spec.parameters.get("bits_per_byte", False))


ADAPTER = LMLossAdapter()
