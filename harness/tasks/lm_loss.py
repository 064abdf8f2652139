"""Task adapter `lm_loss`: held-out cross-entropy of a causal language model, measured by Harness.

loss_nats = total NLL / total tokens over the held-out documents (natural log), perplexity =
exp(loss_nats), with lm-evaluation-harness's rolling log-likelihood convention (each document's
first token conditioned on the BOS/EOS prefix token; long documents in disjoint windows), so the
numbers equal lm-eval's word perplexity on a word-level tokenizer. CIs: seeded bootstrap over
documents (the ratio of resampled sums).
"""

from __future__ import annotations

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
        return ["loss_nats", "perplexity"]

    def requests(self, spec: TaskSpec) -> list[Request]:
        return [Request("lm-rolling-nll", str(spec.parameters.get("split", "heldout")))]

    def expected_samples(self, spec: TaskSpec) -> dict[str, ExpectedSamples]:
        from harness.data import get_split, load_suite

        name = str(spec.parameters.get("split", "heldout"))
        split = get_split(load_suite(spec.dataset), name)
        zeros = np.zeros(len(split), np.int64)
        return {name: ExpectedSamples(list(split.ids), zeros, ["nll_sum", "n_tokens"], whole=frozenset({"n_tokens"}))}

    def samples(self, spec: TaskSpec, inputs: dict[str, SplitOutputs]) -> list[Samples]:
        ((name, outputs),) = inputs.items()
        values = np.stack([outputs.outputs["nll_sum"], outputs.outputs["n_tokens"]], axis=1).astype(np.float64)
        return [
            Samples(name, list(outputs.split.ids), np.zeros(len(values), np.int64), values, ["nll_sum", "n_tokens"])
        ]

    def score(self, spec: TaskSpec, samples: dict[str, Samples], seed: int) -> Outcome:
        n_resamples = int(spec.parameters.get("n_resamples", 1000))  # type: ignore[arg-type]
        (block,) = samples.values()
        nll, tokens = block.values[:, 0], block.values[:, 1]
        (counts,) = stratified_counts([len(nll)], n_resamples, seed)
        loss = float(nll.sum() / tokens.sum())
        resampled = (counts @ nll) / (counts @ tokens)
        n_tokens = int(tokens.sum())
        return Outcome(
            metrics=[
                # documents are resampled (a document's tokens are not independent): n counts documents
                bootstrap_metric("loss_nats", loss, resampled, len(nll), "documents"),
                bootstrap_metric("perplexity", float(np.exp(loss)), np.exp(resampled), len(nll), "documents"),
            ],
            parameters={"n_documents": len(nll), "n_tokens": n_tokens, "n_resamples": n_resamples},
        )


ADAPTER = LMLossAdapter()
