"""Suite `synthlang-reference` (and catalog compression suites): what a compressed candidate is compared with.

Params: `reference` (path of the reference checkpoint), `seed`, `n_prompts`, `n_tokens` (N).
The reference model is run here, once, and everything it produces is cached on disk by its
checkpoint hash (the same output cache as the runner), so scoring 8 candidates costs 8 candidate
passes plus one reference pass:
- `continuations`: each prompt of the synthetic language and the reference's greedy continuation of
  N tokens, with the reference's own log-probabilities at those N positions (teacher-forced), so a
  candidate run teacher-forced on prompt + continuation is compared position by position;
- `heldout`: the held-out documents (the same split as lm_loss; the reference's summed NLL per
  document is attached for the perplexity ratio);
- `choices`: the multiple-choice test items (the same split as calib-lm) with the reference's
  correctness per item, for the share of flipped answers.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from harness.cache import OutputCache, cache_key, default_cache_dir
from harness.data import checked_positions, named_split
from harness.errors import HarnessError


@dataclass(frozen=True)
class ContinuationSplit:
    """Prompts (token ids after the prefix token), the reference's continuations (n, N) and its log-probs (n, N, V)."""

    name: str
    ids: list[str]
    prompts: list[list[int]]
    continuations: NDArray[np.int64]
    reference_logprobs: NDArray[np.float32]
    reference_hash: str
    fingerprint: str = field(init=False)

    def __post_init__(self) -> None:
        digest = hashlib.sha256(f"{self.name}|{self.reference_hash}|{self.ids}|{self.prompts}".encode())
        digest.update(np.ascontiguousarray(self.continuations).tobytes())
        object.__setattr__(self, "fingerprint", digest.hexdigest())

    def __len__(self) -> int:
        return len(self.ids)

    def head(self, n: int) -> ContinuationSplit:
        return ContinuationSplit(
            self.name,
            self.ids[:n],
            self.prompts[:n],
            self.continuations[:n],
            self.reference_logprobs[:n],
            self.reference_hash,
        )

    def take(self, indices: Sequence[int]) -> ContinuationSplit:
        """The prompts at `indices`, in that order, with their continuations and the reference's log-probs."""
        rows = checked_positions(indices, len(self), self.name)
        at = np.asarray(rows, dtype=np.intp)
        return ContinuationSplit(
            self.name,
            [self.ids[i] for i in rows],
            [self.prompts[i] for i in rows],
            self.continuations[at],
            self.reference_logprobs[at],
            self.reference_hash,
        )


@dataclass(frozen=True)
class ReferenceSuite:
    name: str
    reference_id: str
    reference_hash: str
    splits: dict[str, Any]
    #: per held-out document id: the reference's summed NLL (nats)
    reference_nll: dict[str, float]
    #: per multiple-choice item id: whether the reference answers it correctly
    reference_correct: dict[str, bool]
    description: str

    def split(self, name: str) -> Any:
        return named_split(self.name, self.splits, name)


def _cached(cache: OutputCache, key: str, compute: Any) -> dict[str, NDArray[Any]]:
    found = cache.get(key)
    if found is None:
        found = compute()
        cache.put(key, found)
    return found


def reference_suite(
    reference: str | None = None, seed: int = 0, n_prompts: int = 64, n_tokens: int = 32
) -> ReferenceSuite:
    """The synthetic language's prompts, held-out documents and multiple-choice test items."""
    from harness.data.choices import synthlang_choice_suite
    from harness.data.language import language_suite

    language = language_suite(seed=seed)
    prompts = [(p.id, p.text) for p in list(language.prompts)[:n_prompts]]
    choices = synthlang_choice_suite(seed=seed).split("test")
    return build_reference_suite("synthlang-reference", reference, prompts, language.heldout, choices, n_tokens)


def build_reference_suite(
    name: str, reference: str | None, prompts: Sequence[tuple[str, str]], heldout: Any, choices: Any, n_tokens: int
) -> ReferenceSuite:
    """Run the reference once (cached) on `prompts` ((id, text) pairs), the documents of `heldout` and
    the multiple-choice items of `choices`; catalog compression tasks build theirs from real data."""
    from harness.data.text import split_texts
    from harness.models import load_model
    from harness.models.base import InferenceOptions

    if not reference:
        raise HarnessError(
            "the compression task needs a reference model",
            fix="pass --reference PATH (zoo variants whose card names a reference found beside them need none)",
        )
    handle: Any = load_model(Path(reference))
    if not hasattr(handle, "teacher_forced"):
        raise HarnessError(f"the reference must be a causal language model, not {handle.kind!r}", where=reference)
    cache = OutputCache(default_cache_dir())
    salt = handle.identity
    options = InferenceOptions()  # automatic batches: bounded memory
    prompt_tokens = [handle.encode(text) for _, text in prompts]
    prompt_key = hashlib.sha256(repr(prompt_tokens).encode()).hexdigest()

    def continue_and_score() -> dict[str, NDArray[Any]]:
        continuation = handle.greedy_continue([text for _, text in prompts], n_tokens, options)
        prefixes = [[handle.prefix, *tokens] for tokens in prompt_tokens]
        logprobs = np.stack([lp.numpy() for lp in handle.teacher_forced(prefixes, continuation, options)])
        return {"continuation": continuation, "logprobs": logprobs.astype(np.float32)}

    greedy = _cached(cache, cache_key(salt, prompt_key, "reference-greedy", f"1|{n_tokens}"), continue_and_score)
    nll = _cached(
        cache,
        cache_key(salt, heldout.fingerprint, "lm-rolling-nll", 1),
        lambda: handle.rolling_nll(split_texts(heldout), options),
    )
    logits = _cached(
        cache, cache_key(salt, choices.fingerprint, "classify", 1), lambda: handle.classify(choices, options)
    )
    correct = np.asarray(logits["logits"]).argmax(axis=1) == choices.y
    continuations = ContinuationSplit(
        "continuations",
        [prompt_id for prompt_id, _ in prompts],
        prompt_tokens,
        np.asarray(greedy["continuation"], dtype=np.int64),
        np.asarray(greedy["logprobs"], dtype=np.float32),
        handle.checkpoint_hash,
    )
    return ReferenceSuite(
        name=name,
        reference_id=handle.card.model_id,
        reference_hash=handle.checkpoint_hash,
        splits={"continuations": continuations, "heldout": heldout, "choices": choices},
        reference_nll=dict(zip(heldout.ids, np.asarray(nll["nll_sum"], dtype=np.float64).tolist(), strict=True)),
        reference_correct=dict(zip(choices.ids, correct.tolist(), strict=True)),
        description=f"reference {handle.card.model_id} ({handle.checkpoint_hash[:12]}): {len(prompts)} prompts x {n_tokens} tokens",
    )
