"""Task adapters `compression` and `compression_components`: how far a compressed model drifts.

`compression` compares a candidate with its reference (harness/data/reference.py). The reference
greedily continues each prompt for N tokens once (cached); the candidate runs teacher-forced on
prompt + continuation in one forward pass. Divergent positions D = {n : argmax candidate(n) !=
reference token n}. Metrics (names after the Divergent Token Metrics paper; variant
"teacher-forced", recorded with every run):
- fdtm_mean / fdtm_median: first divergent position per prompt (N when D is empty);
- sdtm: |D| / N, mean over prompts;
- js_mean: Jensen-Shannon divergence (natural log, in [0, ln 2]) between the two next-token
  distributions, mean over positions; kl_mean: KL(reference || candidate);
- top1_agreement: share of positions where both argmax tokens agree;
- ppl_reference, ppl_candidate, ppl_ratio on the held-out corpus (same tokens);
- mc_flips: share of multiple-choice items whose correctness differs between the two.
CIs: bootstrap over prompts (over documents for perplexities, items for flips).

`compression_components` runs on a reference itself: each attention and MLP matrix of each layer
is compressed alone (params `method` and `bits` or `sparsity`), scored with FDTM against the
model's own greedy continuation, and the components are ranked (artifact `ranking`, most sensitive
first), as the Divergent Token Metrics paper does to decide what to prune or quantize.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from harness.data import load_suite
from harness.errors import HarnessError
from harness.intervals import median_interval
from harness.metrics.lm import first_divergent_token, share_divergent_tokens
from harness.models.base import Capability, ModelHandle
from harness.schema import MetricValue, TaskSpec
from harness.stats import stratified_counts
from harness.tasks.base import ExpectedSamples, Outcome, Request, Samples, SplitOutputs, bootstrap_metric

CANDIDATE_METRICS = (
    "fdtm_mean", "fdtm_median", "sdtm", "js_mean", "kl_mean", "top1_agreement",
    "ppl_reference", "ppl_candidate", "ppl_ratio", "mc_flips",
)  # fmt: skip


def with_reference(spec: TaskSpec, reference: str) -> TaskSpec:
    """`spec` with its dataset's reference set to `reference` (a path)."""
    dataset = spec.dataset.model_copy(update={"params": {**spec.dataset.params, "reference": reference}})
    return spec.model_copy(update={"dataset": dataset})


def _language_splits(spec: TaskSpec) -> tuple[list[str], list[str], Any]:
    """Prompt ids, held-out document ids and the choice split the reference suite is built on."""
    from harness.data.choices import synthlang_choice_suite
    from harness.data.language import language_suite

    if spec.dataset.kind == "hub":  # a catalog task: real text and an lm-eval multiple-choice task
        from harness.data.catalog import reference_data

        prompt_items, heldout_split, choice_items = reference_data(spec.dataset)
        return [i for i, _ in prompt_items], list(heldout_split.ids), choice_items
    seed = int(spec.dataset.params.get("seed", 0))  # type: ignore[arg-type]
    n_prompts = int(spec.dataset.params.get("n_prompts", 64))  # type: ignore[arg-type]
    language = language_suite(seed=seed)
    prompts = [p.id for p in list(language.prompts)[:n_prompts]]
    return prompts, list(language.heldout.ids), synthlang_choice_suite(seed=seed).split("test")


class CompressionAdapter:
    name = "compression"
    description = "compressed vs reference LM: FDTM, SDTM (teacher-forced), JS, KL, top-1, perplexity ratio, flips"
    capability = Capability.CAUSAL_LM

    def metric_names(self, spec: TaskSpec) -> list[str]:
        return list(CANDIDATE_METRICS)

    def fits(self, spec: TaskSpec, handle: ModelHandle) -> str | None:
        if spec.dataset.params.get("reference") or handle.card.reference:
            return None
        return f"task {spec.name!r} compares a model with its reference: pass --reference PATH (the card names none)"

    def resolve(self, spec: TaskSpec, handle: ModelHandle) -> TaskSpec:
        """Without an explicit reference, use the card's reference when its folder sits beside the model."""
        if spec.dataset.params.get("reference") or not handle.card.reference:
            return spec
        sibling = Path(handle.path).parent / handle.card.reference.split("/")[-1]
        if not sibling.exists():
            raise HarnessError(
                f"the card names reference {handle.card.reference!r}, but {sibling} does not exist",
                where=str(handle.path),
                fix="pass --reference PATH",
            )
        return with_reference(spec, str(sibling))

    def requests(self, spec: TaskSpec) -> list[Request]:
        return [
            Request("lm-teacher-forced", "continuations"),
            Request("lm-rolling-nll", "heldout"),
            Request("classify", "choices"),
        ]

    def expected_samples(self, spec: TaskSpec) -> dict[str, ExpectedSamples]:
        """The prompts, held-out documents and choice items of the synthetic language (read without the
        reference model); the reference's own columns are checked by `harness verify`, which re-runs it."""
        prompts, heldout, choices = _language_splits(spec)
        zeros = np.zeros
        return {
            "continuations": ExpectedSamples(prompts, zeros(len(prompts), np.int64), ["fdt", "sdt", "js_mean", "kl_mean", "top1_agreement"], whole=frozenset({"fdt"})),
            "heldout": ExpectedSamples(heldout, zeros(len(heldout), np.int64), ["nll_candidate", "n_tokens", "nll_reference"], whole=frozenset({"n_tokens"})),
            "choices": ExpectedSamples(list(choices.ids), np.asarray(choices.y, np.int64), ["correct_candidate", "correct_reference"], whole=frozenset({"correct_candidate", "correct_reference"})),
        }  # fmt: skip

    def samples(self, spec: TaskSpec, inputs: dict[str, SplitOutputs]) -> list[Samples]:
        suite: Any = load_suite(spec.dataset)
        continuations = inputs["continuations"]
        out = continuations.outputs
        reference = continuations.split.continuations
        fdt = first_divergent_token(out["prediction"], reference)
        sdt = share_divergent_tokens(out["prediction"], reference)
        agree = (out["prediction"] == reference).mean(axis=1)
        prompts = np.stack([fdt, sdt, out["js"].mean(axis=1), out["kl"].mean(axis=1), agree], axis=1)
        heldout = inputs["heldout"]
        ref_nll = np.asarray([suite.reference_nll[i] for i in heldout.split.ids])
        documents = np.stack([heldout.outputs["nll_sum"], heldout.outputs["n_tokens"], ref_nll], axis=1)
        choices = inputs["choices"]
        correct = np.asarray(choices.outputs["logits"]).argmax(axis=1) == choices.split.y
        ref_correct = np.asarray([suite.reference_correct[i] for i in choices.split.ids])
        zeros = np.zeros
        return [
            Samples("continuations", list(continuations.split.ids), zeros(len(fdt), np.int64), prompts.astype(np.float64), ["fdt", "sdt", "js_mean", "kl_mean", "top1_agreement"]),
            Samples("heldout", list(heldout.split.ids), zeros(len(ref_nll), np.int64), documents.astype(np.float64), ["nll_candidate", "n_tokens", "nll_reference"]),
            Samples("choices", list(choices.split.ids), choices.split.y, np.stack([correct, ref_correct], axis=1).astype(np.float64), ["correct_candidate", "correct_reference"]),
        ]  # fmt: skip

    def score(self, spec: TaskSpec, samples: dict[str, Samples], seed: int) -> Outcome:
        n_resamples = int(spec.parameters.get("n_resamples", 1000))  # type: ignore[arg-type]
        prompts, documents, items = (
            samples["continuations"].values,
            samples["heldout"].values,
            samples["choices"].values,
        )
        p_counts, d_counts, i_counts = stratified_counts([len(prompts), len(documents), len(items)], n_resamples, seed)
        n = len(prompts)
        median = np.asarray([np.median(np.repeat(prompts[:, 0], row.astype(np.int64))) for row in p_counts])
        metrics: list[MetricValue] = [
            bootstrap_metric("fdtm_mean", float(prompts[:, 0].mean()), p_counts @ prompts[:, 0] / n, n, "prompts"),
            bootstrap_metric(
                "fdtm_median",
                float(np.median(prompts[:, 0])),
                median,
                n,
                "prompts",
                interval=(*median_interval(prompts[:, 0]), "order-statistic"),
            ),
            bootstrap_metric("sdtm", float(prompts[:, 1].mean()), p_counts @ prompts[:, 1] / n, n, "prompts"),
            bootstrap_metric("js_mean", float(prompts[:, 2].mean()), p_counts @ prompts[:, 2] / n, n, "prompts"),
            bootstrap_metric("kl_mean", float(prompts[:, 3].mean()), p_counts @ prompts[:, 3] / n, n, "prompts"),
            bootstrap_metric("top1_agreement", float(prompts[:, 4].mean()), p_counts @ prompts[:, 4] / n, n, "prompts"),
        ]
        tokens = d_counts @ documents[:, 1]
        ppl_candidate = np.exp(d_counts @ documents[:, 0] / tokens)
        ppl_reference = np.exp(d_counts @ documents[:, 2] / tokens)
        total = documents[:, 1].sum()
        point_candidate = float(np.exp(documents[:, 0].sum() / total))
        point_reference = float(np.exp(documents[:, 2].sum() / total))
        n_documents = len(documents)  # documents are resampled, not tokens
        ratio = point_candidate / point_reference
        metrics += [
            bootstrap_metric("ppl_candidate", point_candidate, ppl_candidate, n_documents, "documents"),
            bootstrap_metric("ppl_reference", point_reference, ppl_reference, n_documents, "documents"),
            bootstrap_metric("ppl_ratio", ratio, ppl_candidate / ppl_reference, n_documents, "documents"),
        ]
        flipped = (items[:, 0] != items[:, 1]).astype(np.float64)
        flips = i_counts @ flipped / len(items)
        metrics.append(bootstrap_metric("mc_flips", float(flipped.mean()), flips, len(items), "items", proportion=True))
        return Outcome(
            metrics=metrics,
            artifacts={"fdt_histogram": np.bincount(prompts[:, 0].astype(np.int64)).tolist()},
            parameters={
                "variant": "teacher-forced",
                "reference": Path(str(spec.dataset.params.get("reference"))).name,
                "n_prompts": n,
                "n_tokens": int(spec.dataset.params.get("n_tokens", 32)),  # type: ignore[arg-type]
                "n_resamples": n_resamples,
            },
        )


class ComponentSweepAdapter:
    name = "compression_components"
    description = "per-component sensitivity: compress one matrix at a time, rank components by FDTM"
    capability = Capability.CAUSAL_LM
    #: a sample is a component, its values one per prompt: a subset of prompts changes every sample
    subsettable = False

    def metric_names(self, spec: TaskSpec) -> list[str]:
        return ["fdtm_mean.most_sensitive", "fdtm_mean.least_sensitive", "sdtm.most_sensitive"]

    def resolve(self, spec: TaskSpec, handle: ModelHandle) -> TaskSpec:
        """The model is its own reference."""
        return with_reference(spec, str(handle.path))

    def requests(self, spec: TaskSpec) -> list[Request]:
        keys = ("method", "bits", "sparsity")
        return [Request("lm-component-sweep", "continuations", tuple((k, spec.parameters.get(k)) for k in keys))]

    def expected_samples(self, spec: TaskSpec) -> dict[str, ExpectedSamples]:
        """One row per component (named by the model), one column per prompt of the synthetic language."""
        prompts, _, _ = _language_splits(spec)
        return {name: ExpectedSamples(None, None, prompts) for name in ("fdt", "sdt")}

    def samples(self, spec: TaskSpec, inputs: dict[str, SplitOutputs]) -> list[Samples]:
        out = inputs["continuations"].outputs
        names = [str(n) for n in out["components"]]
        return [
            Samples("fdt", names, np.zeros(len(names), np.int64), np.asarray(out["fdt"], np.float64), list(inputs["continuations"].split.ids)),
            Samples("sdt", names, np.zeros(len(names), np.int64), np.asarray(out["sdt"], np.float64), list(inputs["continuations"].split.ids)),
        ]  # fmt: skip

    def score(self, spec: TaskSpec, samples: dict[str, Samples], seed: int) -> Outcome:
        n_resamples = int(spec.parameters.get("n_resamples", 1000))  # type: ignore[arg-type]
        fdt, sdt = samples["fdt"], samples["sdt"]
        n_prompts = fdt.values.shape[1]
        (counts,) = stratified_counts([n_prompts], n_resamples, seed)
        fdtm = fdt.values.mean(axis=1)
        sdtm = sdt.values.mean(axis=1)
        resampled_fdtm = fdt.values @ counts.T / n_prompts  # (components, resamples)
        order = np.argsort(fdtm, kind="stable")  # most sensitive (earliest divergence) first
        worst, best = int(order[0]), int(order[-1])
        metrics = [
            bootstrap_metric(
                "fdtm_mean.most_sensitive", float(fdtm[worst]), resampled_fdtm.min(axis=0), n_prompts, "prompts"
            ),
            bootstrap_metric(
                "fdtm_mean.least_sensitive", float(fdtm[best]), resampled_fdtm.max(axis=0), n_prompts, "prompts"
            ),
            bootstrap_metric(
                "sdtm.most_sensitive",
                float(sdtm[worst]),
                sdt.values[worst] @ counts.T / n_prompts,
                n_prompts,
                "prompts",
            ),
        ]
        metrics += [
            bootstrap_metric(f"fdtm_mean.{name}", float(fdtm[i]), resampled_fdtm[i], n_prompts, "prompts")
            for i, name in enumerate(fdt.ids)
        ]
        ranking = [{"component": fdt.ids[i], "fdtm_mean": float(fdtm[i]), "sdtm": float(sdtm[i])} for i in order]
        return Outcome(
            metrics=metrics,
            artifacts={"ranking": ranking},
            parameters={
                "variant": "teacher-forced",
                "method": str(spec.parameters.get("method")),
                "bits": spec.parameters.get("bits"),
                "sparsity": spec.parameters.get("sparsity"),
                "n_resamples": n_resamples,
            },
        )


ADAPTER = CompressionAdapter()
COMPONENTS_ADAPTER = ComponentSweepAdapter()
