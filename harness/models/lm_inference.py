"""Inference kinds of causal language models (cached by the runner like any forward pass).

- `lm-rolling-nll`: per document, summed NLL (nats) and token count (lm-evaluation-harness's
  rolling log-likelihood convention, see harness/models/causal_lm.py).
- `lm-span-features`: per probe span, the mean of the last-layer hidden states over the span's
  tokens (the synthetic language is word-level: token i is word i).
- `lm-flatness`: sharpness of the held-out loss (params: n_docs, n_probes, noise_scales,
  n_noise_seeds, seed):
  * `fisher` per document d: ||grad_theta sum_t log p(y_t | x_<t)||^2 with y_t sampled from the
    model's own predictive distribution at each position of the held-out text. Positions are sampled
    independently and each score has mean zero, so E||sum_t g_t||^2 = sum_t E||g_t||^2; summed over
    documents and divided by the number of tokens this estimates the trace of the Fisher information
    per token, which equals the Hessian trace of the loss at a minimiser (Liu et al., ICML 2023).
  * `hutchinson` per probe: v^T H v with Rademacher v, H the Hessian of the mean held-out loss of the
    n_docs documents (double backward); its mean over probes estimates tr(H) directly.
  * `noise_delta` (scale, seed): loss(theta + scale * |theta| * eps) - loss(theta), eps ~ N(0, 1),
    every parameter perturbed relative to its own magnitude.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from harness.errors import HarnessError
from harness.models.base import Arrays, Capability, Inference, InferenceOptions


def _rolling(handle: Any, split: Any, options: InferenceOptions) -> Arrays:
    from harness.data.text import split_texts  # documents, a text column, or the synthetic language's records

    return dict(handle.rolling_nll(split_texts(split), options))


def _span_features(handle: Any, split: Any, options: InferenceOptions) -> Arrays:
    spans = list(split)
    by_sentence: dict[str, list[int]] = defaultdict(list)
    for index, span in enumerate(spans):
        by_sentence[span.sentence].append(index)
    sentences = list(by_sentence)
    states = handle.hidden_states(sentences, options)
    features = np.zeros((len(spans), states[0].shape[1] if states else 0), dtype=np.float32)
    for sentence, hidden in zip(sentences, states, strict=True):
        if hidden.shape[0] != len(sentence.split()):
            raise HarnessError(
                "span features need one token per word, but the tokenizer split a probe sentence differently",
                where=str(handle.path),
                fix="the probe task is defined for word-level tokenizers such as the synthetic language's",
            )
        for index in by_sentence[sentence]:
            features[index] = hidden[spans[index].start : spans[index].end].mean(axis=0)
    return {"features": features}


def _mean_loss(handle: Any, batch: list[list[int]]) -> torch.Tensor:
    """Mean token NLL of documents given as [prefix, w1, ..., wT] (padded; padding not scored)."""
    width = max(len(b) for b in batch) - 1
    ids = torch.full((len(batch), width), handle.pad, dtype=torch.long)
    targets = torch.full((len(batch), width), -100, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, tokens in enumerate(batch):
        n = len(tokens) - 1
        ids[row, :n] = torch.as_tensor(tokens[:-1])
        targets[row, :n] = torch.as_tensor(tokens[1:])
        mask[row, :n] = 1
    logits = handle.model(input_ids=ids.to(handle.device), attention_mask=mask.to(handle.device)).logits.float()
    return torch.nn.functional.cross_entropy(logits.transpose(1, 2), targets.to(handle.device), ignore_index=-100)


def _flatness(handle: Any, split: Any, options: InferenceOptions) -> Arrays:
    # Hessian-vector products need double backward, which the fused CPU attention kernels lack.
    from torch.nn.attention import SDPBackend, sdpa_kernel

    with sdpa_kernel(SDPBackend.MATH):
        return _flatness_estimates(handle, split, options)


def _flatness_estimates(handle: Any, split: Any, options: InferenceOptions) -> Arrays:
    params = options.params
    n_docs = min(int(params.get("n_docs", 32)), len(split))
    n_probes = int(params.get("n_probes", 8))
    scales = [float(s) for s in params.get("noise_scales", (0.01, 0.03, 0.1))]
    n_seeds = int(params.get("n_noise_seeds", 4))
    seed = int(params.get("seed", 0))
    model = handle.model
    weights = [p for p in model.parameters() if p.requires_grad]
    from harness.data.text import split_texts

    documents = [
        ([handle.prefix, *handle.encode(text)])[: handle.max_length + 1] for text in split_texts(split)[:n_docs]
    ]
    generator = torch.Generator().manual_seed(seed)

    fisher = np.zeros(n_docs)
    tokens = np.zeros(n_docs)
    for index, document in enumerate(documents):
        inputs = torch.as_tensor([document[:-1]], device=handle.device)
        logits = model(input_ids=inputs).logits[0].float()
        with torch.no_grad():
            sampled = torch.multinomial(torch.softmax(logits, dim=-1).cpu(), 1, generator=generator)[:, 0]
        log_likelihood = torch.log_softmax(logits, dim=-1).gather(1, sampled.to(handle.device)[:, None]).sum()
        grads = torch.autograd.grad(log_likelihood, weights)
        fisher[index] = float(sum((g.double() ** 2).sum() for g in grads))
        tokens[index] = len(document) - 1
        options.advance(1)

    loss = _mean_loss(handle, documents)
    grads = torch.autograd.grad(loss, weights, create_graph=True)
    hutchinson = np.zeros(n_probes)
    for probe in range(n_probes):
        vectors = [torch.randint(0, 2, w.shape, generator=generator).to(w) * 2 - 1 for w in weights]
        dot = torch.stack([(g * v).sum() for g, v in zip(grads, vectors, strict=True)]).sum()
        hessian_vector = torch.autograd.grad(dot, weights, retain_graph=probe < n_probes - 1)
        hutchinson[probe] = float(sum((h * v).sum() for h, v in zip(hessian_vector, vectors, strict=True)))
    del grads

    noise_delta = np.zeros((len(scales), n_seeds))
    with torch.no_grad():
        base = float(_mean_loss(handle, documents))
        originals = [w.detach().clone() for w in weights]
        for i, scale in enumerate(scales):
            for s in range(n_seeds):
                noise = torch.Generator().manual_seed(seed * 1_000_003 + i * 1_009 + s)
                for w, original in zip(weights, originals, strict=True):
                    w.copy_(original + scale * original.abs() * torch.randn(w.shape, generator=noise).to(w))
                noise_delta[i, s] = float(_mean_loss(handle, documents)) - base
        for w, original in zip(weights, originals, strict=True):
            w.copy_(original)
    return {
        "fisher": fisher,
        "tokens": tokens,
        "hutchinson": hutchinson,
        "noise_scales": np.asarray(scales),
        "noise_delta": noise_delta,
        "base_loss": np.asarray([base]),
    }


LM_ROLLING_NLL = Inference(
    name="lm-rolling-nll", version=1, capability=Capability.CAUSAL_LM, run=_rolling, shardable=True
)
LM_SPAN_FEATURES = Inference(
    name="lm-span-features", version=1, capability=Capability.CAUSAL_LM, run=_span_features, shardable=True
)
LM_FLATNESS = Inference(name="lm-flatness", version=1, capability=Capability.CAUSAL_LM, run=_flatness)


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    """Send file descriptor 2 to /dev/null (third-party output that bypasses Python's sys.stderr)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def _lm_eval(handle: Any, split: Any, options: InferenceOptions) -> Arrays:
    """Run one lm-eval task through its Python API on the loaded model; per-document results.

    Outputs: `doc_id`, `target` (-1 when not an integer), one array per per-document metric value
    (`metric:<name>`; metrics whose value is a (numerator, weight) pair, such as word_perplexity,
    give `metric:<name>:0` and `:1`), the choice log-likelihoods of multiple-choice tasks
    (`choice_logliks`, -inf padded), lm-eval's own aggregates and stderrs (`aggregate:<name>`,
    `stderr:<name>`) and directions (`higher:<name>`).
    """
    import lm_eval
    from lm_eval.models.huggingface import HFLM

    from harness.data.lm_eval_source import manager_for
    from harness.models.batching import is_cuda
    from harness.models.causal_lm import LM_EVAL_BUDGET_BYTES

    try:
        with quiet_stderr():  # lm-eval's warnings, progress bars and `git` probe write straight to stderr
            lm = HFLM(
                pretrained=handle.model,
                tokenizer=handle.tokenizer,
                # lm-eval pads each batch to its longest request and keeps more copies of its outputs:
                # a smaller budget than Harness's own batches; on CUDA its own search ("auto": the
                # largest batch that fits, halved on out-of-memory)
                batch_size=options.batch_size
                or (
                    "auto"
                    if is_cuda(handle.device)
                    else handle.auto_batch_size(handle.max_length, LM_EVAL_BUDGET_BYTES)
                ),
                max_length=handle.max_length,
                device=str(handle.device),
            )
            results = lm_eval.simple_evaluate(
                model=lm,
                tasks=[split.name],
                task_manager=manager_for(split.name, split.include_path),
                limit=split.limit,
                # a subset of documents by position (`LMEvalTask.take`); lm-eval refuses it beside a limit
                samples=None if split.samples is None else {split.name: list(split.samples)},
                log_samples=True,
                bootstrap_iters=1000,
            )
    except (KeyError, ValueError, FileNotFoundError, ConnectionError) as error:
        raise HarnessError(
            f"lm-evaluation-harness could not run task {split.name!r}: {str(error).splitlines()[0] if str(error) else error!r}",
            fix="check the task name (`lm_eval --tasks list`) and that its data is available offline",
        ) from None
    if results is None or split.name not in results.get("samples", {}):
        raise HarnessError(f"lm-evaluation-harness returned no samples for task {split.name!r}")
    logged = sorted(results["samples"][split.name], key=lambda s: int(s["doc_id"]))
    summary = results["results"][split.name]
    higher = results.get("higher_is_better", {}).get(split.name, {})
    names = [key.split(",")[0] for key in summary if "," in key and "_stderr" not in key]
    out: Arrays = {
        "doc_id": np.asarray([int(s["doc_id"]) for s in logged], dtype=np.int64),
        "target": np.asarray([s["target"] if isinstance(s.get("target"), int) else -1 for s in logged], dtype=np.int64),
    }
    for name in names:
        values = [s.get(name) for s in logged]
        if all(isinstance(v, int | float) for v in values):
            out[f"metric:{name}"] = np.asarray(values, dtype=np.float64)
        elif all(isinstance(v, list | tuple) and len(v) == 2 for v in values):
            out[f"metric:{name}:0"] = np.asarray([float(v[0]) for v in values])
            out[f"metric:{name}:1"] = np.asarray([float(v[1]) for v in values])
        else:
            continue
        out[f"aggregate:{name}"] = np.asarray([float(summary[f"{name},none"])])
        stderr = summary.get(f"{name}_stderr,none")
        out[f"stderr:{name}"] = np.asarray([float(stderr) if isinstance(stderr, int | float) else np.nan])
        out[f"higher:{name}"] = np.asarray([bool(higher.get(name, True))])
    responses = [s.get("resps") or [] for s in logged]
    if responses and all(r and isinstance(r[0], list) and isinstance(r[0][0], list | tuple) for r in responses):
        width = max(len(r) for r in responses)
        logliks = np.full((len(responses), width), -np.inf)
        for row, response in enumerate(responses):
            logliks[row, : len(response)] = [float(choice[0][0]) for choice in response]
        out["choice_logliks"] = logliks
    options.advance(len(split))
    return out


LM_EVAL = Inference(name="lm-eval", version=1, capability=Capability.CAUSAL_LM, run=_lm_eval)


def _compare(handle: Any, split: Any, logprobs: Any) -> dict[str, NDArray[Any]]:
    """Candidate vs reference per prompt and position: argmax token, JS and KL(reference || candidate)."""
    from harness.metrics.lm import js_divergence, kl_divergence

    predictions, js, kl = [], [], []
    for candidate, reference in zip(logprobs, split.reference_logprobs, strict=True):
        candidate = candidate.double().numpy()
        predictions.append(candidate.argmax(axis=1))
        js.append(js_divergence(reference, candidate))
        kl.append(kl_divergence(reference, candidate))
    return {"prediction": np.asarray(predictions, dtype=np.int64), "js": np.asarray(js), "kl": np.asarray(kl)}


def _teacher_forced(handle: Any, split: Any, options: InferenceOptions) -> Arrays:
    prefixes = [[handle.prefix, *tokens] for tokens in split.prompts]
    return dict(_compare(handle, split, handle.teacher_forced(prefixes, split.continuations, options)))


def _component_sweep(handle: Any, split: Any, options: InferenceOptions) -> Arrays:
    """Compress one component at a time (params: method, bits or sparsity) and compare with the model itself.

    Outputs: `components` (names), `fdt` and `sdt` (n_components, n_prompts) against the split's
    reference continuation (the model's own greedy continuation when it is its own reference).
    """
    from harness.compress import CompressionSpec, components, compress
    from harness.metrics.lm import first_divergent_token, share_divergent_tokens

    params = options.params
    names = components(handle.model)
    prefixes = [[handle.prefix, *tokens] for tokens in split.prompts]
    weights = dict(handle.model.named_parameters())
    fdt = np.zeros((len(names), len(split)))
    sdt = np.zeros((len(names), len(split)))
    quiet = InferenceOptions(batch_size=options.batch_size)
    for row, name in enumerate(names):
        spec = CompressionSpec(
            method=params.get("method", "quantize"),
            bits=params.get("bits"),
            sparsity=params.get("sparsity"),
            scope="per_component",
            targets=(name,),
        )
        weight = weights[f"{name}.weight"]
        original = weight.detach().clone()
        try:
            with torch.no_grad():
                compress(handle.model, spec)
            predictions = _compare(handle, split, handle.teacher_forced(prefixes, split.continuations, quiet))[
                "prediction"
            ]
        finally:
            with torch.no_grad():
                weight.copy_(original)
        fdt[row] = first_divergent_token(predictions, split.continuations)
        sdt[row] = share_divergent_tokens(predictions, split.continuations)
        options.advance(1)
    return {"components": np.asarray(names), "fdt": fdt, "sdt": sdt}


LM_TEACHER_FORCED = Inference(
    name="lm-teacher-forced", version=1, capability=Capability.CAUSAL_LM, run=_teacher_forced, shardable=True
)
LM_COMPONENT_SWEEP = Inference(
    name="lm-component-sweep", version=1, capability=Capability.CAUSAL_LM, run=_component_sweep
)
