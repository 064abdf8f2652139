"""Task adapter `probe`: what a frozen language model's representations know about the grammar.

As in Liu et al. (ICML 2023): each probe span (a constituent of a held-out sentence) is represented
by the mean of the model's last-layer hidden states over its tokens, and a linear probe (multinomial
logistic regression on standardised features) predicts which grammar non-terminal generated it.
For each seed in `seeds`, the sentences are split in half at random (spans of one sentence stay
together), the probe is fitted on one half and scored on the other; probe_accuracy is the mean
over seeds. Per-sample outputs are the held-out predictions per seed (-1 where the span was in the
training half), so the accuracy re-scores from the submission. CI: bootstrap over spans.
"""

from __future__ import annotations

import numpy as np

from harness.models.base import Capability
from harness.schema import Scalar, TaskSpec
from harness.stats import stratified_counts
from harness.tasks.base import ExpectedSamples, Outcome, Request, Samples, SplitOutputs, bootstrap_metric


def _seeds(spec: TaskSpec) -> list[int]:
    seeds = spec.parameters.get("seeds", [0, 1, 2])
    assert isinstance(seeds, list)
    return [int(s) for s in seeds]  # type: ignore[arg-type]


class ProbeAdapter:
    name = "probe"
    description = "linear probe of frozen span representations: which non-terminal generated the span"
    capability = Capability.CAUSAL_LM
    #: the probe is fitted over the split's spans: a subset would change every prediction
    subsettable = False

    def metric_names(self, spec: TaskSpec) -> list[str]:
        return ["probe_accuracy"]

    def requests(self, spec: TaskSpec) -> list[Request]:
        return [Request("lm-span-features", "probe")]

    def expected_samples(self, spec: TaskSpec) -> dict[str, ExpectedSamples]:
        """Every span of the probe split with its non-terminal's index; predictions are class indices
        (-1 where the span was in a seed's training half)."""
        from harness.data import get_split, load_suite

        split = get_split(load_suite(spec.dataset), "probe")
        names = sorted({span.label for span in split})
        labels = np.asarray([names.index(span.label) for span in split], dtype=np.int64)
        fields = [f"prediction_seed_{s}" for s in _seeds(spec)]
        return {"probe": ExpectedSamples(list(split.ids), labels, fields, whole=frozenset(fields))}

    def samples(self, spec: TaskSpec, inputs: dict[str, SplitOutputs]) -> list[Samples]:
        from sklearn.linear_model import LogisticRegression
        from sklearn.preprocessing import StandardScaler

        split = inputs["probe"].split
        features = np.asarray(inputs["probe"].outputs["features"], dtype=np.float64)
        names = sorted({span.label for span in split})
        labels = np.asarray([names.index(span.label) for span in split], dtype=np.int64)
        sentences = np.asarray([span.sentence for span in split])
        unique = np.unique(sentences)
        predictions = np.full((len(labels), len(_seeds(spec))), -1.0)
        for column, seed in enumerate(_seeds(spec)):
            chosen = np.random.default_rng(seed).permutation(len(unique))[: len(unique) // 2]
            train = np.isin(sentences, unique[chosen])
            scaler = StandardScaler().fit(features[train])
            probe = LogisticRegression(max_iter=int(spec.parameters.get("max_iter", 500)))  # type: ignore[arg-type]
            probe.fit(scaler.transform(features[train]), labels[train])
            predictions[~train, column] = probe.predict(scaler.transform(features[~train]))
        return [Samples("probe", list(split.ids), labels, predictions, [f"prediction_seed_{s}" for s in _seeds(spec)])]

    def score(self, spec: TaskSpec, samples: dict[str, Samples], seed: int) -> Outcome:
        n_resamples = int(spec.parameters.get("n_resamples", 1000))  # type: ignore[arg-type]
        block = samples["probe"]
        held_out = block.values >= 0
        correct = (block.values == block.labels[:, None]) & held_out
        (counts,) = stratified_counts([len(block.labels)], n_resamples, seed)
        point = float(np.mean(correct.sum(axis=0) / held_out.sum(axis=0)))
        resampled = ((counts @ correct) / np.maximum(counts @ held_out, 1)).mean(axis=1)
        return Outcome(
            metrics=[bootstrap_metric("probe_accuracy", point, resampled, len(block.labels), "spans")],
            parameters={"seeds": list[Scalar](_seeds(spec)), "n_spans": len(block.labels), "n_resamples": n_resamples},
        )


ADAPTER = ProbeAdapter()
