"""Task adapter `flatness`: how sharp the held-out loss is around an LM checkpoint.

Metrics (conventions in harness/models/lm_inference.py, which computes the per-sample values):
- hessian_trace: Fisher-trace estimate of tr(H) per token, sum_d ||grad log p(y_d)||^2 / sum_d T_d
  with y sampled from the model (Liu et al., ICML 2023); bootstrap CI over documents.
- hessian_trace_hutchinson: mean of v^T H v over Rademacher probes (H: Hessian of the mean loss of
  the same documents); CI from the probes' standard error.
- noise_loss_increase.<scale>: mean over seeds of the loss increase under relative Gaussian weight
  noise of that scale; CI from the seeds' standard error.
Lower is flatter for all. Seeds, document and probe counts are recorded.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from harness.models.base import Capability
from harness.schema import MetricValue, TaskSpec
from harness.stats import stratified_counts
from harness.tasks.base import (
    ExpectedSamples,
    Outcome,
    Request,
    Samples,
    SplitOutputs,
    bootstrap_metric,
    stderr_metric,
)

DEFAULTS: dict[str, Any] = {
    "n_docs": 32,
    "n_probes": 8,
    "noise_scales": [0.01, 0.03, 0.1],
    "n_noise_seeds": 4,
    "seed": 0,
}


def _params(spec: TaskSpec) -> dict[str, Any]:
    return {key: spec.parameters.get(key, default) for key, default in DEFAULTS.items()}


class FlatnessAdapter:
    name = "flatness"
    description = "sharpness of the held-out loss: Hessian trace (Fisher and Hutchinson) and loss under weight noise"
    capability = Capability.CAUSAL_LM
    #: the probes and noise losses are over the first n_docs documents together
    subsettable = False

    def metric_names(self, spec: TaskSpec) -> list[str]:
        scales = _params(spec)["noise_scales"]
        return ["hessian_trace", "hessian_trace_hutchinson", *(f"noise_loss_increase.{s:g}" for s in scales)]

    def requests(self, spec: TaskSpec) -> list[Request]:
        params = tuple((k, tuple(v) if isinstance(v, list) else v) for k, v in sorted(_params(spec).items()))
        return [Request("lm-flatness", "heldout", params)]

    def check_splits(self, spec: TaskSpec, splits: dict[str, Any]) -> None:
        """Before any model loads: the split holds text (plain-text documents, a text column, or records)."""
        from harness.data.text import split_texts

        for split in splits.values():
            split_texts(split, f"task {spec.name!r}")

    def expected_samples(self, spec: TaskSpec) -> dict[str, ExpectedSamples]:
        """Fisher terms of the first `n_docs` held-out documents, `n_probes` probes, and one row per
        (noise scale, seed) whose scale and seed columns the spec fixes."""
        from harness.data import get_split, load_suite

        params = _params(spec)
        heldout = list(get_split(load_suite(spec.dataset), "heldout").ids)[: int(params["n_docs"])]
        n_probes, seeds, scales = int(params["n_probes"]), int(params["n_noise_seeds"]), params["noise_scales"]
        rows = [(float(scale), float(seed)) for scale in scales for seed in range(seeds)]
        noise = np.asarray(rows, dtype=np.float64).reshape(-1, 2)
        return {
            "fisher": ExpectedSamples(heldout, np.zeros(len(heldout), np.int64), ["sq_grad_norm", "tokens"], whole=frozenset({"tokens"})),
            "hutchinson": ExpectedSamples([f"probe-{i}" for i in range(n_probes)], np.zeros(n_probes, np.int64), ["vHv"]),
            "noise": ExpectedSamples(
                [f"noise-{i}" for i in range(len(rows))], np.zeros(len(rows), np.int64), ["scale", "seed", "loss_increase"],
                fixed={"scale": noise[:, 0], "seed": noise[:, 1]},
            ),
        }  # fmt: skip

    def samples(self, spec: TaskSpec, inputs: dict[str, SplitOutputs]) -> list[Samples]:
        out = inputs["heldout"].outputs
        ids = list(inputs["heldout"].split.ids)[: len(out["fisher"])]
        scales, delta = out["noise_scales"], out["noise_delta"]
        noise = np.array([[scales[i], s, delta[i, s]] for i in range(delta.shape[0]) for s in range(delta.shape[1])])
        zeros = np.zeros
        return [
            Samples("fisher", ids, zeros(len(ids), np.int64), np.stack([out["fisher"], out["tokens"]], axis=1), ["sq_grad_norm", "tokens"]),
            Samples("hutchinson", [f"probe-{i}" for i in range(len(out["hutchinson"]))], zeros(len(out["hutchinson"]), np.int64), out["hutchinson"][:, None].astype(np.float64), ["vHv"]),
            Samples("noise", [f"noise-{i}" for i in range(len(noise))], zeros(len(noise), np.int64), noise.reshape(-1, 3), ["scale", "seed", "loss_increase"]),
        ]  # fmt: skip

    def score(self, spec: TaskSpec, samples: dict[str, Samples], seed: int) -> Outcome:
        n_resamples = int(spec.parameters.get("n_resamples", 1000))  # type: ignore[arg-type]
        fisher = samples["fisher"].values
        (counts,) = stratified_counts([len(fisher)], n_resamples, seed)
        trace = float(fisher[:, 0].sum() / fisher[:, 1].sum())
        metrics: list[MetricValue] = [
            # documents are resampled (a document's tokens are not independent): n counts documents
            bootstrap_metric(
                "hessian_trace", trace, (counts @ fisher[:, 0]) / (counts @ fisher[:, 1]), len(fisher), "documents"
            ),
            stderr_metric("hessian_trace_hutchinson", samples["hutchinson"].values[:, 0], "probes"),
        ]
        noise = samples["noise"].values
        for scale in np.unique(noise[:, 0]):
            metrics.append(stderr_metric(f"noise_loss_increase.{scale:g}", noise[noise[:, 0] == scale, 2], "seeds"))
        return Outcome(metrics=metrics, parameters={**_params(spec), "n_resamples": n_resamples})


ADAPTER = FlatnessAdapter()
