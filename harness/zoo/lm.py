"""Tiny GPT-2 language models pre-trained on the synthetic language, and compressed variants of one of them.

The zoo family "lm" reproduces, at toy scale, the setting of Liu et al., "Same Pre-training Loss, Better
Downstream" (ICML 2023): models whose held-out loss is nearly the same can differ on downstream tasks, here
the synthetic language's minimal pairs (synth_blimp) and multiple-choice items (synth_mc). The loss of this
language is dominated by lexical choice (which noun, which verb), while the downstream items test number
agreement across attractors, a rare long-range dependency worth a small share of the loss; so agreement
can go from chance to solved while the held-out loss moves by about one per cent.

Pre-training runs: transformers `GPT2LMHeadModel`s initialised at random from a `GPT2Config` (word-level
vocabulary of `build_tokenizer()`, <eos> is BOS and EOS, <pad> is padding, n_positions = 128, no dropout)
trained on the `pretrain` split of `language_suite(seed=0)` with a plain torch loop. Each run is one
`Recipe`; some runs save intermediate checkpoints (`save_at`) as zoo models of their own, so "continued
training long after the loss has converged" is the same run saved again later, not a second run. Every
checkpoint's card names its run and place in it: `training_run` (the run's name, shared by its
checkpoints), `step` and `tokens_seen` (= step x batch size x 128). Two card families: "synthlang-gpt2",
the sweep over sizes, and "synthlang-same-loss", one architecture trained along different paths (below).
`PLANS` lists the runs of each profile.

Training data: each epoch the documents are shuffled (seeded), each is preceded by one <eos> token (so a
document's first word is predicted from <eos>, as Harness and lm-eval score held-out text), concatenated
and cut into windows of 128 predicted tokens (inputs of 128 tokens, targets shifted by one; consecutive
windows share one token so every token is a target once; the tail that does not fill a window is dropped,
so there is no padding to mask). Windows are drawn in a seeded random order in batches. Optimizers: AdamW
(decoupled weight decay on matrices only, betas (0.9, 0.98)), Adam (the same without weight decay) or SGD
with Nesterov momentum; linear warm-up then a constant learning rate (so an intermediate checkpoint is
the same thing as a shorter run's end), gradient norm clipped at 1. Everything is seeded, and each run
trains in one process with one torch thread (runs go to parallel worker processes, see `build`), so a
checkpoint's weights do not depend on how many cores built the zoo. `pretrain_loss_nats` on a card is the
mean training loss over the last 50 steps before the checkpoint.

The same-loss family (card family "synthlang-same-loss", tag "same-loss"; `SAME_LOSS_PATHS`), the claim's
own test bed in the spirit of Liu et al.'s synthetic-language experiments: one architecture (2x64, 124k
parameters, seed 0, so one initialisation) trained along the paths the paper varies: AdamW (lr 2e-3,
weight decay 0.1, batch 32), Adam (no weight decay), SGD with Nesterov momentum 0.9 (lr 0.5), and AdamW with
batch 8 (a quarter of the batch at the same learning rate: about four times the gradient noise). Each run
is saved along the way and trained on past the point where its held-out loss stops falling (AdamW and
Adam from about step 2000, AdamW batch 8 from about step 5000; with a constant learning rate the loss then
wanders by about 0.005 nats). Checkpoints of the full profile: AdamW at 750, 1000, 1500, 2000, 3000; Adam
at 1000, 1250, 2000, 3000; SGD at 2000, 2500, 3000; AdamW batch 8 at 1000, 3000, 5000, 8000. The demo
trains only the start of three paths (AdamW at 750 and 1000, Adam and AdamW batch 8 at 1000: the same
checkpoints); the family at the same loss reaches the demo's store through the shipped submissions.
What the harness measures on it (the shipped runs; table and statistics in docs/lm.md, printed by
`python bench/same_loss.py`): on the machine that built `submissions/`, 13 of the 16 checkpoints lie
within 0.05 nats of the best held-out loss, multiple choice 0.828-0.922, trace 99-696, and flatness does
not explain downstream among them (partial correlation given loss +0.29 [-0.26, +0.75]); past
convergence downstream moves by more than the loss; SGD is the flattest by Hessian trace and the
sharpest under weight noise. On the machine that designed the plan (a different CPU: the trained
weights differ, see docs/lm.md) the five checkpoints of the first matched loss showed flatter going
with better (rho -0.90, n = 5), and the 0.05-nat band no relation: read single pairs with the noise in
mind.

The size sweep (family "synthlang-gpt2", full profile): 2x32 (37k parameters, AdamW lr 3e-3, 3,500 steps,
saved at 1750) and 4x128 (841k, AdamW lr 1e-3, 1,000 steps, saved at 500, 750, 875), beside the 2x64 runs
of the same-loss family. Measured with `quick_scores` on the machine that designed the sweep:
- continued training at the same loss: 4x128 at step 875 and 1000 (3.085 and 3.086 nats; multiple-choice
  0.83 -> 0.95, minimal pairs 0.95 -> 1.00);
- sizes at matched loss: 4x128 at step 875 vs 2x64 AdamW at step 1500 vs 2x32 at step 3500 (3.085, 3.081,
  3.079): here the smaller models, trained for more steps, are the better ones downstream (0.83 vs 0.88
  vs 0.88 multiple-choice), the opposite of Liu et al.'s size result; at this scale the number of steps
  matters more than size.
Agreement across attractors is learnt abruptly and, with a constant learning rate, a checkpoint's
downstream accuracy moves by a few points from one checkpoint to the next, so read single pairs with
that noise in mind (multiple-choice has 400 items, minimal pairs 600).

The full profile (`PLANS["full"]`): 22 checkpoints from 6 runs plus 7 compressed variants, about 14
minutes of training on two idle cores of the machine that designed it (0.088 CPU s per 2x64 step of
32 x 128 tokens, 0.021 at batch 8); on a slower 2-core machine 0.21 and 0.06 s, about 30 minutes. The demo
profile: the four checkpoints above and five variants of AdamW step 1000, about 4 minutes of training on
the slower machine.

Compressed variants (family "synthlang-gpt2-compressed"): copies of one reference model of the sweep
(`Plan.reference`, the best-trained mid-size model, tagged "compression-reference") compressed with
`harness.compress`: global magnitude pruning at several sparsities, per-component pruning (every matrix to
the same sparsity), and simulated int8 / int4 per-channel weight quantization. Their cards name the
reference (`reference` = "harness-zoo/<name>") and the compression (`compression` = `describe(spec)` plus
the achieved sparsity). They are not trained, so they carry no pre-training loss of their own.

Every model is saved as a normal Hugging Face checkpoint: `save_pretrained` (config.json,
model.safetensors, generation_config.json) plus the tokenizer files plus card.json, written into a
temporary folder and renamed into place (as `harness.zoo.save_checkpoint` does), so a folder either holds
a whole checkpoint or does not exist.

`quick_scores` measures held-out loss, minimal-pair accuracy and multiple-choice accuracy with the same
conventions as lm-eval's synth_heldout / synth_blimp / synth_mc tasks (see harness/data/lm_eval_tasks.py);
it is a quick check of the zoo's design, not a task adapter (harness/tasks/ has those).
"""

from __future__ import annotations

import copy
import functools
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import torch
import torch.nn.functional as F

from harness.compress import CompressionSpec, compress, describe
from harness.data.language import EOS_TOKEN, PAD_TOKEN, LanguageSuite, build_tokenizer, language_suite
from harness.schema import ModelCard
from harness.zoo import check_profile, save_checkpoint

if TYPE_CHECKING:  # transformers is imported when a model is built
    from transformers import GPT2LMHeadModel, PreTrainedTokenizerFast

ORG = "harness-zoo"
FAMILY = "synthlang-gpt2"
#: one architecture trained to the same held-out loss along different paths (see the module docstring)
SAME_LOSS_FAMILY = "synthlang-same-loss"
COMPRESSED_FAMILY = "synthlang-gpt2-compressed"
KIND = "hf-causal-lm"
SEQ_LEN = 128
#: training loss on a card: mean over this many steps before the checkpoint
LOSS_WINDOW = 50
#: parallel training processes (one torch thread each): the zoo is designed for two cores
MAX_WORKERS = 2
LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class Recipe:
    """One pre-training run. Its checkpoints are named `<name>-step<N>` for N in `save_at` and `steps`.

    `optimizer` is "adamw", "adam" (no weight decay) or "sgd" (Nesterov momentum `momentum`);
    `weight_decay` applies to AdamW only. The learning rate rises linearly over `warmup_steps` and then
    stays at `lr`.
    """

    name: str
    n_layer: int
    n_embd: int
    n_head: int
    steps: int
    optimizer: str = "adamw"
    lr: float = 2e-3
    weight_decay: float = 0.1
    momentum: float = 0.9
    warmup_steps: int = 100
    batch_size: int = 32
    seq_len: int = SEQ_LEN
    seed: int = 0
    save_at: tuple[int, ...] = ()
    #: the model card's family: FAMILY (the sweep over sizes) or SAME_LOSS_FAMILY
    family: str = FAMILY

    def __post_init__(self) -> None:
        if self.optimizer not in ("adamw", "adam", "sgd"):
            raise ValueError(f"recipe {self.name}: unknown optimizer {self.optimizer!r} (adamw, adam or sgd)")
        if self.n_embd % self.n_head:
            raise ValueError(f"recipe {self.name}: n_embd {self.n_embd} is not divisible by n_head {self.n_head}")
        if any(not 0 < step < self.steps for step in self.save_at):
            raise ValueError(f"recipe {self.name}: save_at steps must lie in (0, {self.steps})")
        if self.family not in (FAMILY, SAME_LOSS_FAMILY):
            raise ValueError(f"recipe {self.name}: family {self.family!r} is not {FAMILY} or {SAME_LOSS_FAMILY}")

    @property
    def checkpoints(self) -> tuple[int, ...]:
        return tuple(sorted({*self.save_at, self.steps}))

    @property
    def tokens_per_step(self) -> int:
        """Training tokens per optimizer step (batch_size windows of seq_len predicted tokens)."""
        return self.batch_size * self.seq_len

    @property
    def architecture(self) -> tuple[int, int, int, int]:
        """(n_layer, n_embd, n_head, seq_len): what makes two runs the same model up to its weights."""
        return (self.n_layer, self.n_embd, self.n_head, self.seq_len)

    @property
    def cost(self) -> float:
        """Rough training cost (multiply-adds of the matrices and the attention, times tokens), to order runs."""
        per_token = self.n_layer * (12 * self.n_embd**2 + 2 * self.seq_len * self.n_embd) + 2 * self.n_embd * 256
        return float(per_token * self.steps * self.batch_size * self.seq_len)

    def checkpoint_name(self, step: int) -> str:
        return f"{self.name}-step{step}"

    def card_recipe(self, step: int) -> dict[str, str | int | float]:
        """The recipe as it ends up on the card of the checkpoint saved at `step`."""
        recipe: dict[str, str | int | float] = {
            key: value for key, value in asdict(self).items() if key not in ("name", "save_at", "steps", "family")
        }
        if self.optimizer != "sgd":
            del recipe["momentum"]
        if self.optimizer != "adamw":
            del recipe["weight_decay"]
        recipe.update(
            run=self.name,
            steps=step,
            run_steps=self.steps,
            schedule="linear warm-up, then constant",
            grad_clip=1.0,
            tokens_seen=step * self.tokens_per_step,
            packing="documents after <eos>, packed",
        )
        return recipe


class Trained(NamedTuple):
    """A saved checkpoint: training wall seconds so far, and CPU seconds of its training process so far."""

    name: str
    seconds: float
    cpu_seconds: float


@dataclass(frozen=True)
class Variant:
    """A compressed copy of the plan's reference model, saved as `<prefix>-<suffix>`."""

    suffix: str
    spec: CompressionSpec


@dataclass(frozen=True)
class Plan:
    """What a profile builds: pre-training runs, the reference checkpoint and its compressed variants."""

    runs: tuple[Recipe, ...]
    reference: str
    variant_prefix: str
    variants: tuple[Variant, ...]


def _variants(sparsities: Sequence[int], per_component: Sequence[int], bits: Sequence[int]) -> tuple[Variant, ...]:
    return (
        *(Variant(f"prune-global-{s}", CompressionSpec("prune", sparsity=s / 100, scope="global")) for s in sparsities),
        *(
            Variant(f"prune-per-component-{s}", CompressionSpec("prune", sparsity=s / 100, scope="per_component"))
            for s in per_component
        ),
        *(Variant(f"int{b}", CompressionSpec("quantize", bits=b)) for b in bits),
    )


@dataclass(frozen=True)
class SameLossPath:
    """How one run of the same-loss family trains; everything else (architecture, seed, data) is shared."""

    suffix: str
    optimizer: str
    lr: float
    batch_size: int


#: the same-loss family's runs: 2x64 GPT-2s (124k parameters) that differ only in how they are trained
SAME_LOSS_ARCHITECTURE = {"n_layer": 2, "n_embd": 64, "n_head": 2}
SAME_LOSS_PATHS = (
    SameLossPath("adamw", "adamw", 2e-3, 32),
    SameLossPath("adam", "adam", 2e-3, 32),  # no weight decay
    SameLossPath("sgd", "sgd", 0.5, 32),  # Nesterov momentum 0.9
    SameLossPath("adamw-b8", "adamw", 2e-3, 8),  # a quarter of the batch: four times the gradient noise
)


def same_loss_runs(checkpoints: dict[str, tuple[int, ...]]) -> tuple[Recipe, ...]:
    """The same-loss family's runs, `checkpoints[suffix]` = the steps saved (the last one ends the run).

    Every profile builds its runs from `SAME_LOSS_PATHS` here, so a shorter profile's checkpoints are the
    longer one's, byte for byte (a constant learning rate after warm-up: stopping earlier changes nothing
    before).
    """
    paths = {path.suffix: path for path in SAME_LOSS_PATHS}
    unknown = sorted(set(checkpoints) - set(paths))
    if unknown:
        raise ValueError(f"unknown same-loss runs {unknown}: use {sorted(paths)}")
    return tuple(
        Recipe(
            f"synthlang-gpt2-2x64-{suffix}",
            **SAME_LOSS_ARCHITECTURE,
            steps=max(steps),
            optimizer=paths[suffix].optimizer,
            lr=paths[suffix].lr,
            batch_size=paths[suffix].batch_size,
            save_at=tuple(sorted(set(steps) - {max(steps)})),
            family=SAME_LOSS_FAMILY,
        )
        for suffix, steps in checkpoints.items()
    )


PLANS: dict[str, Plan] = {
    "full": Plan(
        runs=(
            Recipe("synthlang-gpt2-2x32-adamw", 2, 32, 2, steps=3500, lr=3e-3, save_at=(1750,)),
            Recipe("synthlang-gpt2-4x128-adamw", 4, 128, 4, steps=1000, lr=1e-3, save_at=(500, 750, 875)),
            *same_loss_runs(
                {
                    "adamw": (750, 1000, 1500, 2000, 3000),
                    "adam": (1000, 1250, 2000, 3000),
                    "sgd": (2000, 2500, 3000),
                    "adamw-b8": (1000, 3000, 5000, 8000),
                }
            ),
        ),
        reference="synthlang-gpt2-2x64-adamw-step2000",
        variant_prefix="synthlang-gpt2-base",
        variants=_variants((30, 50, 70), (50, 70), (8, 4)),
    ),
    # The demo trains the start of the same-loss family's paths (AdamW to 1000 steps, saved at 750; Adam and
    # AdamW with batch 8 to 1000): about four minutes of training on two cores, its checkpoints the full
    # profile's, byte for byte. The family at the same loss (15 checkpoints) comes from the shipped
    # submissions (`make shipped` evaluates the full profile), which the demo's store shows beside its runs.
    "demo": Plan(
        runs=same_loss_runs({"adamw": (750, 1000), "adam": (1000,), "adamw-b8": (1000,)}),
        reference="synthlang-gpt2-2x64-adamw-step1000",
        variant_prefix="synthlang-gpt2-demo-base",
        variants=_variants((50, 70), (50,), (8, 4)),
    ),
    # Seconds of training: one same-loss pair (one architecture, two optimizers and batch sizes) and one
    # run of another size.
    "tiny": Plan(
        runs=(
            Recipe(
                "synthlang-gpt2-tiny-2x32-adamw", 2, 32, 2, steps=200, lr=3e-3, batch_size=16, save_at=(50,),
                family=SAME_LOSS_FAMILY,
            ),
            Recipe(
                "synthlang-gpt2-tiny-2x32-sgd-b8", 2, 32, 2, steps=100, lr=0.5, batch_size=8, optimizer="sgd",
                family=SAME_LOSS_FAMILY,
            ),
            Recipe("synthlang-gpt2-tiny-1x32-adam", 1, 32, 2, steps=100, lr=3e-3, batch_size=16, optimizer="adam"),
        ),
        reference="synthlang-gpt2-tiny-2x32-adamw-step200",
        variant_prefix="synthlang-gpt2-tiny-base",
        variants=_variants((50,), (50,), (8, 4)),
    ),
}  # fmt: skip


# --------------------------------------------------------------------------- training


def token_id(tokenizer: PreTrainedTokenizerFast, token: str) -> int:
    """The id of one token of the vocabulary."""
    found = tokenizer.convert_tokens_to_ids(token)
    if not isinstance(found, int):
        raise ValueError(f"{token!r} is not a single token of the tokenizer")
    return found


def tokenize(tokenizer: PreTrainedTokenizerFast, texts: Sequence[str]) -> list[list[int]]:
    """Token ids of each text, without special tokens."""
    encoded = tokenizer(list(texts), add_special_tokens=False)["input_ids"]
    return [list(ids) for ids in encoded]


def packed_windows(
    documents: Sequence[Sequence[int]], eos_id: int, seq_len: int, generator: torch.Generator
) -> torch.Tensor:
    """(n_windows, seq_len + 1) token ids: shuffled documents, each after one <eos>, packed end to end.

    Window i holds stream[i * seq_len : (i + 1) * seq_len + 1]: inputs are its first seq_len tokens and
    targets its last seq_len, so consecutive windows share one token and every token is a target once.
    """
    order = torch.randperm(len(documents), generator=generator).tolist()
    stream: list[int] = []
    for index in order:
        stream.append(eos_id)
        stream.extend(documents[index])
    n_windows = (len(stream) - 1) // seq_len
    if n_windows < 1:
        raise ValueError(f"the documents hold {len(stream)} tokens, fewer than one window of {seq_len + 1}")
    tokens = torch.tensor(stream[: n_windows * seq_len + 1], dtype=torch.long)
    return tokens.unfold(0, seq_len + 1, seq_len)


def make_model(recipe: Recipe, tokenizer: PreTrainedTokenizerFast) -> GPT2LMHeadModel:
    """A randomly initialised GPT-2 (seeded by `recipe.seed`) for the tokenizer's vocabulary."""
    from transformers import GPT2Config, GPT2LMHeadModel

    eos_id = token_id(tokenizer, EOS_TOKEN)
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=recipe.seq_len,
        n_embd=recipe.n_embd,
        n_layer=recipe.n_layer,
        n_head=recipe.n_head,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=eos_id,
        eos_token_id=eos_id,
        pad_token_id=token_id(tokenizer, PAD_TOKEN),
    )
    torch.manual_seed(recipe.seed)
    return GPT2LMHeadModel(config)


def make_optimizer(recipe: Recipe, model: torch.nn.Module) -> torch.optim.Optimizer:
    """AdamW / Adam / SGD as the recipe says; weight decay (AdamW) applies to matrices only."""
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=recipe.lr, momentum=recipe.momentum, nesterov=True)
    decay = recipe.weight_decay if recipe.optimizer == "adamw" else 0.0
    groups = [
        {"params": [p for p in model.parameters() if p.ndim >= 2], "weight_decay": decay},
        {"params": [p for p in model.parameters() if p.ndim < 2], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=recipe.lr, betas=(0.9, 0.98))


Checkpoint = Callable[[int, "GPT2LMHeadModel", float, float], None]


def train(
    recipe: Recipe,
    documents: Sequence[Sequence[int]],
    tokenizer: PreTrainedTokenizerFast,
    on_checkpoint: Checkpoint = lambda step, model, loss, seconds: None,
) -> GPT2LMHeadModel:
    """Pre-train one model; call `on_checkpoint(step, model, train_loss_nats, seconds)` at each checkpoint.

    The model is in eval mode during the call; the callback must not change it (copy it to compress it).
    `train_loss_nats` is the mean training loss of the last `LOSS_WINDOW` steps, `seconds` the training
    time so far (wall clock, callbacks excluded).
    """
    eos_id = token_id(tokenizer, EOS_TOKEN)
    model = make_model(recipe, tokenizer)
    module: torch.nn.Module = model  # PreTrainedModel.train / .eval are untyped; these are nn.Module's
    optimizer = make_optimizer(recipe, model)
    warmup = max(1, recipe.warmup_steps)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / warmup))
    generator = torch.Generator().manual_seed(recipe.seed)
    checkpoints = set(recipe.checkpoints)
    losses: list[float] = []
    seconds = 0.0
    started = time.perf_counter()
    module.train()
    while len(losses) < recipe.steps:
        windows = packed_windows(documents, eos_id, recipe.seq_len, generator)
        if len(windows) < recipe.batch_size:
            raise ValueError(f"recipe {recipe.name}: {len(windows)} windows do not fill one batch")
        order = torch.randperm(len(windows), generator=generator)
        for start in range(0, len(order) - recipe.batch_size + 1, recipe.batch_size):
            batch = windows[order[start : start + recipe.batch_size]]
            logits = model(input_ids=batch[:, :-1]).logits
            loss: torch.Tensor = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1))
            optimizer.zero_grad(set_to_none=True)
            torch.autograd.backward(loss)
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            losses.append(loss.item())
            step = len(losses)
            if step in checkpoints:
                seconds += time.perf_counter() - started
                module.eval()
                window = losses[-LOSS_WINDOW:]
                on_checkpoint(step, model, sum(window) / len(window), seconds)
                module.train()
                started = time.perf_counter()
            if step >= recipe.steps:
                break
    module.eval()
    return model


# --------------------------------------------------------------------------- saving


def save_hf_checkpoint(
    folder: Path, model: torch.nn.Module, tokenizer: PreTrainedTokenizerFast, card: ModelCard
) -> Path:
    """Write model (safetensors), tokenizer and card.json into `folder` atomically (temp folder + rename)."""

    def write(tmp: Path) -> None:
        model.save_pretrained(tmp)  # type: ignore[operator]
        tokenizer.save_pretrained(tmp)

    return save_checkpoint(folder, {}, card, write)


def n_parameters(model: torch.nn.Module) -> int:
    """Number of parameters, tied matrices counted once."""
    return sum(p.numel() for p in model.parameters())


# --------------------------------------------------------------------------- the family


def build(out: Path, profile: str = "full", on_model: Callable[[str], None] = lambda name: None) -> list[Path]:
    """Train the profile's pre-training runs and compress its reference model into out/<name>/.

    Runs train in parallel worker processes, one per core (at most `MAX_WORKERS`), each with one torch
    thread: on two cores this is faster than one process with two threads, and it degrades gracefully on a
    busy machine, where OpenMP threads that wait for each other can slow training down tenfold. A worker is
    `python -m harness.zoo.lm` (a plain subprocess, so callers need no `if __name__ == "__main__"` guard);
    with one core the runs train in this process. Results do not depend on the number of workers.
    `on_model(name)` is called for each checkpoint once its run is saved, and for each compressed variant.
    Returns the checkpoint folders: the sweep in plan order, then the variants.
    """
    check_profile(profile)
    plan = PLANS[profile]
    out = Path(out).resolve()
    runs = sorted(plan.runs, key=lambda recipe: recipe.cost, reverse=True)  # longest first balances the workers
    workers = max(1, min(MAX_WORKERS, os.cpu_count() or 1, len(runs)))
    timings: dict[str, list[Trained]] = {}
    if workers == 1:
        previous_threads = torch.get_num_threads()
        try:
            for recipe in runs:
                timings[recipe.name] = _train_run(recipe, out, profile, plan.reference)
                for trained in timings[recipe.name]:
                    on_model(trained.name)
        finally:
            torch.set_num_threads(previous_threads)
    else:
        for recipe, saved in _train_in_workers(runs, out, profile, plan.reference, workers):
            timings[recipe.name] = saved
            for trained in saved:
                on_model(trained.name)
    for recipe in plan.runs:
        for trained in timings[recipe.name]:
            LOGGER.info("trained %s: %.1f s of training, %.1f CPU s in its process", *trained)
    folders = [out / recipe.checkpoint_name(step) for recipe in plan.runs for step in recipe.checkpoints]
    return folders + _compress_reference(out, plan, profile, on_model)


def _train_in_workers(
    runs: Sequence[Recipe], out: Path, profile: str, reference: str, workers: int
) -> Iterator[tuple[Recipe, list[Trained]]]:
    """Train `runs` in at most `workers` concurrent subprocesses, in order; yield each run as it finishes."""
    environment = dict(os.environ)
    package_root = str(Path(__file__).resolve().parents[2])  # the folder that holds harness/
    environment["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, environment.get("PYTHONPATH")]))
    environment["OMP_NUM_THREADS"] = "1"
    pending = list(runs)
    running: list[tuple[subprocess.Popen[bytes], Recipe, Path]] = []
    with tempfile.TemporaryDirectory(prefix="harness-lm-zoo-") as logs:
        try:
            while pending or running:
                while pending and len(running) < workers:
                    recipe = pending.pop(0)
                    job = json.dumps(
                        {"recipe": asdict(recipe), "out": str(out), "profile": profile, "reference": reference}
                    )
                    log = Path(logs) / f"{recipe.name}.log"
                    # Files, not pipes: a worker never blocks on a full pipe while this loop sleeps.
                    with log.open("wb") as stderr, log.with_suffix(".json").open("wb") as stdout:
                        process = subprocess.Popen(
                            [sys.executable, "-m", "harness.zoo.lm", job], stdout=stdout, stderr=stderr, env=environment
                        )
                    running.append((process, recipe, log))
                finished = [entry for entry in running if entry[0].poll() is not None]
                if not finished:
                    time.sleep(0.2)
                    continue
                for entry in finished:
                    running.remove(entry)
                    process, recipe, log = entry
                    if process.returncode != 0:
                        tail = log.read_text(errors="replace")[-3000:]
                        raise RuntimeError(f"training {recipe.name} failed (exit code {process.returncode}):\n{tail}")
                    saved = json.loads(log.with_suffix(".json").read_text().strip().splitlines()[-1])
                    yield recipe, [Trained(str(name), float(wall), float(cpu)) for name, wall, cpu in saved]
        finally:
            for process, _, _ in running:  # only on errors: stop the workers this call started
                process.kill()
                process.wait()


def _worker_main(job_json: str) -> None:
    """Entry point of a training worker: train one run, print its `Trained` records as one JSON line."""
    job = json.loads(job_json)
    fields = job["recipe"]
    recipe = Recipe(**{**fields, "save_at": tuple(fields["save_at"])})
    saved = _train_run(recipe, Path(job["out"]), job["profile"], job["reference"])
    print(json.dumps(saved), flush=True)


@functools.cache
def _pretrain_documents() -> tuple[str, str, tuple[tuple[int, ...], ...]]:
    """(suite name, suite description, token ids of each pre-training document), built once per process."""
    suite = language_suite(seed=0)
    tokenizer = build_tokenizer(suite.grammar)
    documents = tuple(tuple(ids) for ids in tokenize(tokenizer, [d.text for d in suite.pretrain]))
    return suite.name, suite.description, documents


def _train_run(recipe: Recipe, out: Path, profile: str, reference: str) -> list[Trained]:
    """Train one run and save its checkpoints; returns what was saved, with timings."""
    torch.set_num_threads(1)
    suite_name, suite_description, documents = _pretrain_documents()
    tokenizer = build_tokenizer()
    saved: list[Trained] = []

    def save(step: int, model: GPT2LMHeadModel, loss: float, seconds: float) -> None:
        name = recipe.checkpoint_name(step)
        later = [s for s in recipe.checkpoints if s > step]
        card = ModelCard(
            name=name,
            org=ORG,
            family=recipe.family,
            kind=KIND,
            n_parameters=n_parameters(model),
            recipe=recipe.card_recipe(step),
            pretrain_loss_nats=loss,
            trained_on=suite_name,
            training_run=recipe.name,
            step=step,
            tokens_seen=step * recipe.tokens_per_step,
            tags=[
                "zoo",
                suite_name,
                profile,
                "pretrain-sweep",
                f"optimizer-{recipe.optimizer}",
                f"size-{recipe.n_layer}x{recipe.n_embd}",
                f"batch-{recipe.batch_size}",
                *(["same-loss"] if recipe.family == SAME_LOSS_FAMILY else []),
                *(["compression-reference"] if name == reference else []),
            ],
            description=(
                f"GPT-2 ({recipe.n_layer} layers, width {recipe.n_embd}, {recipe.n_head} heads) pre-trained from "
                f"scratch for {step} steps of {recipe.batch_size} x {recipe.seq_len} tokens with {recipe.optimizer} "
                f"(lr {recipe.lr:g}) on the pretrain split of {suite_description}"
                + (f"; the same run is saved again at step {', '.join(map(str, later))}" if later else "")
            ),
        )
        save_hf_checkpoint(out / name, model, tokenizer, card)
        saved.append(Trained(name, seconds, time.process_time()))

    train(recipe, documents, tokenizer, save)
    return saved


def _compress_reference(out: Path, plan: Plan, profile: str, on_model: Callable[[str], None]) -> list[Path]:
    """Save the plan's compressed variants of its reference checkpoint (read back from `out`)."""
    from transformers import GPT2LMHeadModel

    reference_folder = out / plan.reference
    base_card = ModelCard.model_validate_json((reference_folder / "card.json").read_text())
    base = GPT2LMHeadModel.from_pretrained(reference_folder, local_files_only=True)
    tokenizer = build_tokenizer()
    folders: list[Path] = []
    for variant in plan.variants:
        model = copy.deepcopy(base)
        stats = compress(model, variant.spec)
        compression = describe(variant.spec)
        if "sparsity" in stats:
            compression["achieved_sparsity"] = round(stats["sparsity"], 6)
        name = f"{plan.variant_prefix}-{variant.suffix}"
        card = ModelCard(
            name=name,
            org=ORG,
            family=COMPRESSED_FAMILY,
            kind=KIND,
            n_parameters=base_card.n_parameters,
            recipe=base_card.recipe,
            trained_on=base_card.trained_on,
            reference=base_card.model_id,
            compression=compression,
            tags=["zoo", str(base_card.trained_on), profile, "compressed", variant.spec.method],
            description=f"{base_card.model_id} compressed: {_describe_text(variant.spec)}; not trained further",
        )
        folders.append(save_hf_checkpoint(out / name, model, tokenizer, card))
        on_model(name)
    return folders


def _describe_text(spec: CompressionSpec) -> str:
    if spec.method == "prune":
        scope = "one threshold over all" if spec.scope == "global" else "the same sparsity in each of the"
        return (
            f"unstructured magnitude pruning to sparsity {spec.sparsity:g}, {scope} attention and MLP matrices "
            "(embeddings, LayerNorms and biases untouched)"
        )
    return (
        f"simulated symmetric int{spec.bits} quantization per output channel of the attention and MLP matrices "
        "(stored dequantized in float32; embeddings, LayerNorms and biases untouched)"
    )


# --------------------------------------------------------------------------- quick scoring


@torch.no_grad()
def continuation_logprobs(
    model: torch.nn.Module,
    contexts: Sequence[Sequence[int]],
    continuations: Sequence[Sequence[int]],
    batch_size: int = 64,
) -> list[float]:
    """sum log p(continuation | context) per item, in nats; each context needs at least one token.

    Input = (context + continuation)[:-1], right-padded in a batch (a causal model's scores of real tokens
    do not depend on padding that comes after them), scored in float64.
    """
    if len(contexts) != len(continuations):
        raise ValueError("contexts and continuations must have the same length")
    out: list[float] = []
    for start in range(0, len(contexts), batch_size):
        rows = list(zip(contexts[start : start + batch_size], continuations[start : start + batch_size], strict=True))
        if any(not context or not continuation for context, continuation in rows):
            raise ValueError("every context and continuation needs at least one token")
        width = max(len(c) + len(x) for c, x in rows) - 1
        inputs = torch.zeros((len(rows), width), dtype=torch.long)
        targets = torch.full((len(rows), width), -100, dtype=torch.long)
        for row, (context, continuation) in enumerate(rows):
            sequence = [*context, *continuation]
            inputs[row, : len(sequence) - 1] = torch.tensor(sequence[:-1])
            targets[row, len(context) - 1 : len(sequence) - 1] = torch.tensor(list(continuation))
        logits = model(input_ids=inputs, attention_mask=torch.ones_like(inputs)).logits.double()
        nll = F.cross_entropy(logits.transpose(1, 2), targets, ignore_index=-100, reduction="none")
        out.extend((-nll.sum(dim=1)).tolist())
    return out


def quick_scores(model: torch.nn.Module, tokenizer: PreTrainedTokenizerFast, suite: LanguageSuite) -> dict[str, float]:
    """Held-out loss and downstream accuracies of a model on `suite`, scored as lm-eval scores them.

    - "heldout_loss_nats": total NLL / total tokens over the heldout documents, each document conditioned
      on one <eos> (the first word is predicted from <eos>); exp of it is synth_heldout's word_perplexity.
    - "blimp_acc": share of minimal pairs with log p(good) > log p(bad), each sentence after <eos>.
    - "mc_acc": share of multiple-choice items whose highest summed choice log-likelihood is the label
      (context without <eos>, choice after it; ties go to the first choice).
    - "blimp_acc/<phenomenon>" and "mc_acc/<phenomenon>" per phenomenon.
    """
    eos = [token_id(tokenizer, EOS_TOKEN)]
    documents = tokenize(tokenizer, [document.text for document in suite.heldout])
    heldout = continuation_logprobs(model, [eos] * len(documents), documents)
    good = tokenize(tokenizer, [pair.good for pair in suite.minimal_pairs])
    bad = tokenize(tokenizer, [pair.bad for pair in suite.minimal_pairs])
    good_logp = continuation_logprobs(model, [eos] * len(good), good)
    bad_logp = continuation_logprobs(model, [eos] * len(bad), bad)
    contexts: list[list[int]] = []
    choices: list[list[int]] = []
    for item in suite.multiple_choice:
        context = tokenize(tokenizer, [item.context])[0]
        for choice in tokenize(tokenizer, list(item.choices)):
            contexts.append(context)
            choices.append(choice)
    choice_logp = continuation_logprobs(model, contexts, choices)
    outcomes: dict[str, list[bool]] = {"blimp_acc": [], "mc_acc": []}
    for pair, g, b in zip(suite.minimal_pairs, good_logp, bad_logp, strict=True):
        outcomes["blimp_acc"].append(g > b)
        outcomes.setdefault(f"blimp_acc/{pair.phenomenon}", []).append(g > b)
    offset = 0
    for item in suite.multiple_choice:
        scores = choice_logp[offset : offset + len(item.choices)]
        offset += len(item.choices)
        correct = max(range(len(scores)), key=scores.__getitem__) == item.label
        outcomes["mc_acc"].append(correct)
        outcomes.setdefault(f"mc_acc/{item.phenomenon}", []).append(correct)
    scores_out = {"heldout_loss_nats": -sum(heldout) / sum(len(d) for d in documents)}
    scores_out.update({name: sum(values) / len(values) for name, values in outcomes.items()})
    return scores_out


if __name__ == "__main__":
    _worker_main(sys.argv[1])
