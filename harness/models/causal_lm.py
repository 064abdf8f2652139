"""Hugging Face causal language models: config.json (a *ForCausalLM architecture) + safetensors + tokenizer.

Loaded with transformers offline (`local_files_only`), never with `trust_remote_code`, from
safetensors unless pickle is allowed; `LoadOptions.dtype` picks float32 (default), bfloat16 or
float16. Scoring follows lm-evaluation-harness's conventions so numbers agree with it:

- Rolling log-likelihood of a document: tokens = the tokenizer's encoding without special tokens;
  the first token is conditioned on one prefix token (the tokenizer's BOS, else EOS). A document
  longer than the model's maximum length L is cut into windows: the first predicts tokens 1..L from
  the prefix and tokens 1..L-1; each later window predicts the next (up to) L tokens from an input
  of exactly L tokens ending just before its last predicted token (so it sees the tokens before it).
- Choice log-likelihood: context and choice are joined by one space and encoded together; the
  choice's tokens are those after the context's tokens; an empty context is replaced by the prefix
  token. The score is the sum of the choice tokens' log-probabilities.
- Greedy continuation: the prompt is encoded after the prefix token and continued for exactly N
  tokens by argmax (EOS is an ordinary token; generation does not stop).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from numpy.typing import NDArray

from harness.errors import HarnessError
from harness.models import (
    DTYPES,
    checkpoint_hash,
    model_files,
    read_card,
    read_json,
    refuse_pickle,
    safetensors_parameter_count,
    torch_dtype,
    weight_files,
    with_model_facts,
)
from harness.models.base import Capability, InferenceOptions, LoadOptions, ModelHandle
from harness.models.batching import (
    CUDA_MAX_LM_BATCH,
    CUDA_MEMORY_SHARE,
    automatic_backoff,
    free_cuda_bytes,
    is_cuda,
    run_item_batches,
)

T = TypeVar("T")
R = TypeVar("R")


def is_causal_lm(path: Path) -> bool:
    config = path / "config.json"
    if not path.is_dir() or not config.exists():
        return False
    try:
        architectures = read_json(config).get("architectures") or []
    except AttributeError:  # not an object
        return False
    return any(str(a).endswith(("ForCausalLM", "LMHeadModel")) for a in architectures)


def rolling_windows(tokens: Sequence[int], prefix: int, max_length: int) -> Iterator[tuple[list[int], int]]:
    """(input tokens, number of predicted tokens at the end of the input) covering every token once."""
    n = len(tokens)
    if n == 0:
        return
    first = min(max_length, n)
    yield [prefix, *tokens[: first - 1]], first
    done = first
    while done < n:
        count = min(max_length, n - done)
        end = done + count
        yield list(tokens[max(end - max_length - 1, 0) : end - 1]), count
        done = end


#: memory the activations of one automatic batch may take (see CausalLMHandle.sequence_bytes)
ACTIVATIONS_BUDGET_BYTES = 32 * 2**20
#: the budget of lm-eval's batches: lm-eval keeps more copies of a batch's outputs than Harness does
LM_EVAL_BUDGET_BYTES = 8 * 2**20
#: copies of batch x length x vocab float32 values alive at once in `_logprobs` (logits, log-softmax, CPU copy)
LOGIT_COPIES = 3
#: the largest automatic batch (more sequences per batch stop paying on a CPU)
MAX_AUTO_BATCH = 64


class CausalLMHandle(ModelHandle):
    """A causal LM whose weights and tokenizer load on first use: a run whose outputs are all cached
    (and the checks before it) never pays for loading them. Everything the runner needs before
    inference (identity, settings, card, maximum length) comes from the files."""

    def __init__(
        self, *, loader: Callable[[], tuple[Any, Any]], device: str, config: dict[str, Any], **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self._loader = loader
        self.device = device
        self.max_length = int(
            next((config[a] for a in ("n_positions", "max_position_embeddings", "n_ctx") if config.get(a)), 2048)
        )
        self.settings = {**self.settings, "max_length": str(self.max_length)}

    @cached_property
    def _loaded(self) -> tuple[Any, Any]:
        return self._loader()

    @property
    def model(self) -> Any:
        return self._loaded[0]

    @property
    def tokenizer(self) -> Any:
        return self._loaded[1]

    @cached_property
    def prefix(self) -> int:
        """The token every sequence starts from: BOS, else EOS."""
        tokenizer = self.tokenizer
        prefix = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
        if prefix is None:
            raise HarnessError("the tokenizer has neither a BOS nor an EOS token", where=str(self.path))
        return int(prefix)

    @cached_property
    def pad(self) -> int:
        return int(self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.prefix)

    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    @torch.inference_mode()
    def _device_logprobs(self, inputs: Sequence[Sequence[int]]) -> torch.Tensor:
        """(batch, longest input, vocab) log-softmax at every position of each input (float32, on the
        model's device; positions past an input's length are padding)."""
        width = max(len(x) for x in inputs)
        ids = torch.full((len(inputs), width), self.pad, dtype=torch.long)
        mask = torch.zeros((len(inputs), width), dtype=torch.long)
        for row, sequence in enumerate(inputs):
            ids[row, : len(sequence)] = torch.as_tensor(sequence)
            mask[row, : len(sequence)] = 1
        logits = self.model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device)).logits.float()
        return torch.log_softmax(logits, dim=-1)

    def _logprobs(self, inputs: Sequence[Sequence[int]]) -> list[torch.Tensor]:
        """Log-softmax over the vocabulary at every position of each input (float32, on CPU: one copy per batch)."""
        logprobs = self._device_logprobs(inputs).cpu()
        return [logprobs[row, : len(sequence)] for row, sequence in enumerate(inputs)]

    @torch.inference_mode()
    def _target_sums(self, inputs: Sequence[Sequence[int]], targets: Sequence[Sequence[int]]) -> NDArray[np.float64]:
        """Per input: the sum (float64) of log p(target) over its last len(targets) positions, the targets
        being the tokens those positions predict. Gathered and summed on the device; one small copy per
        batch leaves it (the vocabulary-wide log-probabilities never do)."""
        logprobs = self._device_logprobs(inputs)
        width = max((len(t) for t in targets), default=0)
        index = torch.zeros((len(targets), width), dtype=torch.long)
        for row, target in enumerate(targets):
            index[row, : len(target)] = torch.as_tensor(target, dtype=torch.long)
        index = index.to(logprobs.device)
        sums = [
            logprobs[row, len(sequence) - len(target) : len(sequence)]
            .gather(1, index[row, : len(target), None])
            .double()
            .sum()
            for row, (sequence, target) in enumerate(zip(inputs, targets, strict=True))
        ]
        out: NDArray[np.float64] = torch.stack(sums).cpu().numpy()
        return out

    @property
    def vocab_size(self) -> int:
        return int(self.model.get_output_embeddings().weight.shape[0])

    def auto_batch_size(self, length: int, budget_bytes: int | None = None) -> int:
        """Sequences of `length` tokens per batch when no batch size is given: as many as keep the
        estimated float32 activations of one forward pass (`sequence_bytes`) within
        ACTIVATIONS_BUDGET_BYTES, between 1 and MAX_AUTO_BATCH. Peak memory is then bounded whatever
        the vocabulary, width and sequence length. On CUDA the budget is a share of the free device
        memory (CUDA_MEMORY_SHARE) and the cap CUDA_MAX_LM_BATCH; a batch that runs out of memory
        anyway is halved (`_run_batches`)."""
        if is_cuda(self.device):
            budget = int(free_cuda_bytes(self.device) * CUDA_MEMORY_SHARE) if budget_bytes is None else budget_bytes
            return max(1, min(CUDA_MAX_LM_BATCH, budget // self.sequence_bytes(length)))
        budget = ACTIVATIONS_BUDGET_BYTES if budget_bytes is None else budget_bytes
        return max(1, min(MAX_AUTO_BATCH, budget // self.sequence_bytes(length)))

    def sequence_bytes(self, length: int) -> int:
        """Estimated float32 bytes one sequence of `length` tokens holds at the peak of a forward pass:
        its logits and their log-softmax (LOGIT_COPIES x vocab per token), the hidden states of one
        layer (about 12 x width per token: residual, attention projections, the 4x MLP) and one
        layer's attention scores and weights (2 x heads x length^2)."""
        config: Any = self.model.config
        width = int(getattr(config, "n_embd", None) or getattr(config, "hidden_size", None) or 1024)
        heads = int(getattr(config, "n_head", None) or getattr(config, "num_attention_heads", None) or 16)
        length = max(1, length)
        values = LOGIT_COPIES * length * self.vocab_size + 12 * length * width + 2 * heads * length * length
        return 4 * values

    def _run_batches(
        self,
        items: Sequence[T],
        options: InferenceOptions,
        forward: Callable[[Sequence[T]], R],
        length: Callable[[T], int],
    ) -> Iterator[tuple[Sequence[T], R]]:
        """(batch, forward(batch)) over consecutive batches of `items`: `options.batch_size` each, or,
        when that is None, sized by `auto_batch_size` for the first (longest, as callers sort them) item
        of each batch, and on CUDA halved when a batch runs out of memory (harness/models/batching.py)."""
        size: int | Callable[[T], int] = options.batch_size or (lambda item: self.auto_batch_size(length(item)))
        backoff = automatic_backoff(self.device, options.batch_size)
        yield from run_item_batches(items, size, forward, backoff=backoff, where=str(self.path))

    def rolling_nll(self, texts: Sequence[str], options: InferenceOptions) -> dict[str, NDArray[Any]]:
        """Per document: summed negative log-likelihood (nats, float64) and number of scored tokens."""
        windows: list[tuple[int, list[int], list[int]]] = []  # (document, input, targets)
        n_tokens = np.zeros(len(texts), dtype=np.int64)
        for index, text in enumerate(texts):
            tokens = self.encode(text)
            n_tokens[index] = len(tokens)
            position = 0
            for inputs, count in rolling_windows(tokens, self.prefix, self.max_length):
                windows.append((index, inputs, list(tokens[position : position + count])))
                position += count
        nll = np.zeros(len(texts), dtype=np.float64)
        # Longest first keeps padding small within a batch.
        windows.sort(key=lambda w: -len(w[1]))

        def forward(batch: Sequence[tuple[int, list[int], list[int]]]) -> NDArray[np.float64]:
            return self._target_sums([w[1] for w in batch], [w[2] for w in batch])

        for batch, sums in self._run_batches(windows, options, forward, lambda window: len(window[1])):
            for (index, _, _), value in zip(batch, sums, strict=True):
                nll[index] -= float(value)
            options.advance(len({w[0] for w in batch}))
        return {"nll_sum": nll, "n_tokens": n_tokens}

    def choice_logliks(
        self, contexts: Sequence[str], choices: Sequence[Sequence[str]], options: InferenceOptions
    ) -> NDArray[np.float64]:
        """(n_items, max_choices) summed log-likelihoods of each choice given its context; -inf pads."""
        requests: list[tuple[int, int, list[int], int]] = []  # (item, choice, input, n_choice_tokens)
        for item, (context, options_) in enumerate(zip(contexts, choices, strict=True)):
            context_tokens = self.encode(context) if context else []
            for choice_index, choice in enumerate(options_):
                whole = self.encode(f"{context} {choice}" if context else choice)
                continuation = whole[len(context_tokens) :] if context else whole
                sequence = (context_tokens if context else [self.prefix]) + continuation
                sequence = sequence[-(self.max_length + 1) :]
                requests.append((item, choice_index, sequence, len(continuation)))
        out = np.full((len(contexts), max((len(c) for c in choices), default=0)), -np.inf)
        requests.sort(key=lambda r: -len(r[2]))

        def forward(batch: Sequence[tuple[int, int, list[int], int]]) -> NDArray[np.float64]:
            # the input is the sequence less its last token; the choice's tokens are its last `count`
            targets = [r[2][len(r[2]) - r[3] :] for r in batch]
            return self._target_sums([r[2][:-1] for r in batch], targets)

        for batch, sums in self._run_batches(requests, options, forward, lambda request: len(request[2])):
            for (item, choice_index, _, _), value in zip(batch, sums, strict=True):
                out[item, choice_index] = float(value)
            options.advance(len(batch))
        return out

    def classify(self, split: Any, options: InferenceOptions) -> dict[str, NDArray[Any]]:
        """Multiple-choice items as classification: logits = each choice's summed log-likelihood."""
        choices = getattr(split, "choices", None)
        if choices is None:
            raise HarnessError(
                f"a language model classifies multiple-choice items, but split {split.name!r} has none",
                where=str(self.path),
                fix="evaluate it on a multiple-choice dataset (e.g. synthlang-mc)",
            )
        return {"logits": self.choice_logliks(split.contexts, choices, options)}

    @torch.inference_mode()
    def greedy_continue(self, prompts: Sequence[str], n_tokens: int, options: InferenceOptions) -> NDArray[np.int64]:
        """(n_prompts, n_tokens) greedy continuation token ids of each prompt (after the prefix token)."""
        out = np.zeros((len(prompts), n_tokens), dtype=np.int64)
        for index, prompt in enumerate(prompts):
            sequence = [self.prefix, *self.encode(prompt)]
            past = None
            step_input = torch.as_tensor([sequence], device=self.device)
            tokens = torch.zeros(n_tokens, dtype=torch.long, device=self.device)
            for step in range(n_tokens):  # the tokens stay on the device: no round trip per token
                result = self.model(input_ids=step_input, past_key_values=past, use_cache=True)
                past = result.past_key_values
                token = result.logits[0, -1].float().argmax()
                tokens[step] = token
                step_input = token.view(1, 1)
            out[index] = tokens.cpu().numpy()
            options.advance(1)
        return out

    def teacher_forced(
        self, prefixes: Sequence[Sequence[int]], continuations: NDArray[np.int64], options: InferenceOptions
    ) -> Iterator[torch.Tensor]:
        """Per prompt: log-probabilities (N, V) predicting each continuation token, in one forward pass."""
        n = continuations.shape[1]
        sequences = [
            [*prefix, *continuation.tolist()] for prefix, continuation in zip(prefixes, continuations, strict=True)
        ]
        for batch, logprobs in self._run_batches(
            sequences, options, lambda batch: self._logprobs([s[:-1] for s in batch]), len
        ):
            for sequence, rows in zip(batch, logprobs, strict=True):
                yield rows[len(sequence) - 1 - n :]
            options.advance(len(batch))

    @torch.inference_mode()
    def hidden_states(self, texts: Sequence[str], options: InferenceOptions) -> list[NDArray[np.float32]]:
        """Last-layer hidden states (T, d) of each text's tokens (after the prefix token, which is dropped)."""
        out: list[NDArray[np.float32]] = []

        def forward(batch: Sequence[str]) -> tuple[list[list[int]], NDArray[np.float32]]:
            inputs = [[self.prefix, *self.encode(t)] for t in batch]
            width = max(len(x) for x in inputs)
            ids = torch.full((len(inputs), width), self.pad, dtype=torch.long)
            mask = torch.zeros_like(ids)
            for row, sequence in enumerate(inputs):
                ids[row, : len(sequence)] = torch.as_tensor(sequence)
                mask[row, : len(sequence)] = 1
            result = self.model(
                input_ids=ids.to(self.device), attention_mask=mask.to(self.device), output_hidden_states=True
            )
            return inputs, result.hidden_states[-1].float().cpu().numpy()  # one copy per batch

        for batch, (inputs, states) in self._run_batches(list(texts), options, forward, lambda text: self.max_length):
            out += [states[row, 1 : len(sequence)] for row, sequence in enumerate(inputs)]
            options.advance(len(batch))
        return out


class CausalLMLoader:
    kind = "hf-causal-lm"
    description = "Hugging Face AutoModelForCausalLM folder (config.json + safetensors + tokenizer)"
    expects = "config.json with a *ForCausalLM architecture, model.safetensors, tokenizer files"
    dtypes = DTYPES

    def detect(self, path: Path) -> bool:
        return is_causal_lm(path)

    def load(self, path: Path, options: LoadOptions) -> ModelHandle:
        refuse_pickle(path, options.allow_pickle)
        files = weight_files(path)
        if not files:
            raise HarnessError(
                "no weight files in the checkpoint folder", where=str(path), fix="save it with save_pretrained"
            )
        config = read_json(path / "config.json")
        n_parameters = safetensors_parameter_count(files)  # reads the headers: a truncated file fails here

        def load_weights() -> tuple[Any, Any]:
            import transformers

            transformers.utils.logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # Harness shows its own
            try:
                model = transformers.AutoModelForCausalLM.from_pretrained(
                    str(path),
                    local_files_only=True,
                    trust_remote_code=False,
                    use_safetensors=not options.allow_pickle,
                    dtype=torch_dtype(options.dtype),
                )
                tokenizer = transformers.AutoTokenizer.from_pretrained(str(path), local_files_only=True)
            except (OSError, ValueError, RuntimeError) as error:
                raise HarnessError(
                    f"transformers cannot load this checkpoint: {str(error).splitlines()[0]}",
                    where=str(path),
                    fix="a causal LM folder needs config.json, safetensors weights and tokenizer files",
                ) from None
            model.eval().to(options.device)  # type: ignore[no-untyped-call]
            return model, tokenizer

        card = read_card(path, self.kind)
        updates: dict[str, Any] = {}
        if card.n_parameters is None and n_parameters is not None:
            updates["n_parameters"] = n_parameters
        if card.family == "unknown" and config.get("model_type"):
            updates["family"] = str(config["model_type"])
        handle = CausalLMHandle(
            loader=load_weights,
            device=options.device,
            config=config,
            path=path,
            kind=self.kind,
            card=card.model_copy(update=updates) if updates else card,
            checkpoint_hash=checkpoint_hash(model_files(path), path),
            capabilities=frozenset({Capability.CAUSAL_LM, Capability.LOGITS}),
        )
        if handle.card.n_parameters is None:
            handle.card = with_model_facts(handle.card, handle.model)  # pickle weights: count on the model
        return handle


LOADER = CausalLMLoader()
