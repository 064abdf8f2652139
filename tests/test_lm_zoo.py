"""The language-model zoo: tiny GPT-2 pre-training sweep and compressed variants, as real HF checkpoints."""

from __future__ import annotations

import itertools
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from harness.compress import CompressionSpec, components, describe
from harness.data.language import LanguageSuite, build_tokenizer, language_suite
from harness.errors import HarnessError
from harness.schema import ModelCard
from harness.zoo import zoo_models
from harness.zoo.lm import (
    COMPRESSED_FAMILY,
    FAMILY,
    PLANS,
    SAME_LOSS_FAMILY,
    SEQ_LEN,
    Recipe,
    build,
    continuation_logprobs,
    packed_windows,
    quick_scores,
    same_loss_runs,
    tokenize,
    train,
)

TINY = PLANS["tiny"]


@pytest.fixture(scope="module")
def suite() -> LanguageSuite:
    return language_suite(seed=0)


def card(folder: Path) -> ModelCard:
    return ModelCard.model_validate_json((folder / "card.json").read_text())


def load(folder: Path) -> torch.nn.Module:
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(folder, local_files_only=True).eval()


# --------------------------------------------------------------------------- the built zoo


@pytest.mark.slow
def test_tiny_profile_builds_the_sweep_and_every_variant(lm_zoo: Path) -> None:
    names = {folder.name for folder in zoo_models(lm_zoo)}
    sweep = {recipe.checkpoint_name(step) for recipe in TINY.runs for step in recipe.checkpoints}
    variants = {f"{TINY.variant_prefix}-{variant.suffix}" for variant in TINY.variants}
    assert names == sweep | variants
    assert TINY.reference in sweep
    assert not list(lm_zoo.glob(".*")), "temporary folders were left behind"


@pytest.mark.slow
def test_checkpoints_load_offline_with_auto_classes(lm_zoo: Path) -> None:
    from transformers import AutoTokenizer

    for folder in zoo_models(lm_zoo):
        assert (folder / "model.safetensors").exists()
        assert not list(folder.glob("*.bin")), "weights must be safetensors only"
        model = load(folder)
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        assert model.config.n_positions >= SEQ_LEN
        assert tokenizer.eos_token == tokenizer.bos_token == "<eos>"
        assert model.config.eos_token_id == model.config.bos_token_id == tokenizer.eos_token_id == 2
        assert model.config.pad_token_id == tokenizer.pad_token_id == 0
        ids = tokenizer("the dog sleeps .")["input_ids"]
        assert tokenizer.unk_token_id not in ids and tokenizer.eos_token_id not in ids
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([[2, *ids]])).logits
        assert logits.shape == (1, len(ids) + 1, len(tokenizer))
        assert torch.isfinite(logits).all()


@pytest.mark.slow
def test_cards_validate_and_name_the_reference_and_the_compression(lm_zoo: Path) -> None:
    cards = {folder.name: card(folder) for folder in zoo_models(lm_zoo)}
    reference = cards[TINY.reference]
    assert "compression-reference" in reference.tags
    for name, model_card in cards.items():
        assert model_card.name == name
        assert model_card.org == "harness-zoo"
        assert model_card.kind == "hf-causal-lm"
        assert model_card.trained_on == "synthlang"
        assert model_card.n_parameters is not None and model_card.n_parameters > 0
        if model_card.family in (FAMILY, SAME_LOSS_FAMILY):
            assert model_card.reference is None and model_card.compression is None
            assert model_card.pretrain_loss_nats is not None and 0 < model_card.pretrain_loss_nats < 6
            for key in ("n_layer", "n_embd", "n_head", "steps", "optimizer", "lr", "batch_size", "seq_len", "seed"):
                assert key in model_card.recipe, key
        else:
            assert model_card.family == COMPRESSED_FAMILY
            assert model_card.reference == reference.model_id
            assert model_card.pretrain_loss_nats is None
            assert model_card.recipe == reference.recipe
            assert model_card.n_parameters == reference.n_parameters
            # a compressed copy is not a step of a training run
            assert model_card.training_run is model_card.step is model_card.tokens_seen is None
    variants = {f"{TINY.variant_prefix}-{v.suffix}": v.spec for v in TINY.variants}
    for name, spec in variants.items():
        compression = cards[name].compression
        assert compression is not None
        assert {k: v for k, v in compression.items() if k != "achieved_sparsity"} == describe(spec)
        if spec.method == "prune":
            assert compression["achieved_sparsity"] == pytest.approx(spec.sparsity, abs=1e-3)


@pytest.mark.slow
def test_longer_training_reaches_a_lower_heldout_loss(lm_zoo: Path, suite: LanguageSuite) -> None:
    tokenizer = build_tokenizer(suite.grammar)
    continued = [recipe for recipe in TINY.runs if len(recipe.checkpoints) > 1]
    assert continued, "the tiny profile must save one run at two steps"
    for recipe in continued:
        losses = [
            quick_scores(load(lm_zoo / recipe.checkpoint_name(step)), tokenizer, suite)["heldout_loss_nats"]
            for step in recipe.checkpoints
        ]
        assert losses == sorted(losses, reverse=True), losses
        assert losses[-1] < losses[0] - 0.05
        # The card's self-reported training loss tells the same story.
        reported = [card(lm_zoo / recipe.checkpoint_name(step)).pretrain_loss_nats for step in recipe.checkpoints]
        assert reported == sorted(reported, reverse=True)  # type: ignore[type-var]


@pytest.mark.slow
def test_cards_carry_the_checkpoint_series_of_their_run(lm_zoo: Path) -> None:
    """training_run, step and tokens_seen: checkpoints of one run share the run, later ones saw more tokens."""
    cards = [card(folder) for folder in zoo_models(lm_zoo) if card(folder).compression is None]
    recipes = {recipe.name: recipe for recipe in TINY.runs}
    series: dict[str, list[ModelCard]] = {}
    for model_card in cards:
        assert model_card.training_run in recipes, model_card.name
        recipe = recipes[model_card.training_run]
        assert model_card.family == recipe.family
        assert model_card.name == recipe.checkpoint_name(model_card.step or 0)
        assert model_card.step == model_card.recipe["steps"]
        assert model_card.training_run == model_card.recipe["run"]
        assert model_card.tokens_seen == model_card.step * recipe.batch_size * recipe.seq_len
        assert model_card.tokens_seen == model_card.recipe["tokens_seen"]
        assert f"batch-{recipe.batch_size}" in model_card.tags
        assert ("same-loss" in model_card.tags) == (recipe.family == SAME_LOSS_FAMILY)
        series.setdefault(recipe.name, []).append(model_card)
    assert set(series) == set(recipes)
    for name, run_cards in series.items():
        run_cards.sort(key=lambda c: c.step or 0)
        assert [c.step for c in run_cards] == list(recipes[name].checkpoints)
        tokens = [c.tokens_seen or 0 for c in run_cards]
        assert tokens == sorted(set(tokens)), "tokens_seen must increase along a run"
    # two batch sizes in the tiny same-loss family: tokens_seen is not a multiple of one batch
    same_loss = [c for c in cards if c.family == SAME_LOSS_FAMILY]
    assert len({recipes[str(c.training_run)].batch_size for c in same_loss}) > 1


def _matrices(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


@pytest.mark.slow
def test_compressed_variants_differ_from_the_reference_only_where_intended(lm_zoo: Path) -> None:
    base = _matrices(lm_zoo / TINY.reference)
    targets = {f"{name}.weight" for name in components(load(lm_zoo / TINY.reference))}
    assert targets and targets <= set(base)
    for variant in TINY.variants:
        compressed = _matrices(lm_zoo / f"{TINY.variant_prefix}-{variant.suffix}")
        assert set(compressed) == set(base)
        for key, tensor in base.items():
            if key not in targets:
                assert torch.equal(compressed[key], tensor), f"{variant.suffix} changed {key}"
        changed = [key for key in targets if not torch.equal(compressed[key], base[key])]
        assert changed, f"{variant.suffix} changed nothing"
        spec = variant.spec
        if spec.method == "prune":
            assert spec.sparsity is not None
            zeros = sum(int((compressed[k] == 0).sum()) for k in targets)
            total = sum(compressed[k].numel() for k in targets)
            assert zeros / total == pytest.approx(spec.sparsity, abs=1e-3)
            for key in targets:  # only zeros were introduced; survivors keep their values
                kept = compressed[key] != 0
                assert torch.equal(compressed[key][kept], base[key][kept])
                if spec.scope == "per_component":
                    assert float((~kept).float().mean()) == pytest.approx(spec.sparsity, abs=1 / kept.numel())
        else:
            assert spec.bits is not None
            for key in targets:  # GPT-2 Conv1D: output channels are columns
                for column in compressed[key].t():
                    assert column.unique().numel() <= 2**spec.bits - 1


# --------------------------------------------------------------------------- training pieces


def test_packed_windows_put_one_eos_before_each_document_and_cover_every_token() -> None:
    documents = [[10 + i] * (3 + i) for i in range(6)]
    windows = packed_windows(documents, eos_id=2, seq_len=4, generator=torch.Generator().manual_seed(0))
    assert windows.shape[1] == 5
    stream = torch.cat([windows[0], *(w[1:] for w in windows[1:])]).tolist()
    n_tokens = sum(len(d) + 1 for d in documents)
    assert len(stream) == (n_tokens - 1) // 4 * 4 + 1
    assert stream[0] == 2
    assert all(torch.equal(a[-1], b[0]) for a, b in itertools.pairwise(windows))
    # Each document appears whole, right after an <eos>.
    runs = " ".join(map(str, stream)).split(" 2 ")
    assert all(len(set(run.split())) == 1 for run in runs[1:-1])


def test_training_is_deterministic_and_reports_each_checkpoint(suite: LanguageSuite) -> None:
    tokenizer = build_tokenizer(suite.grammar)
    documents = tokenize(tokenizer, [d.text for d in suite.pretrain.head(40)])
    recipe = Recipe("micro", 1, 16, 2, steps=6, batch_size=4, warmup_steps=2, save_at=(3,))
    seen: list[tuple[int, float]] = []
    first = train(recipe, documents, tokenizer, lambda step, model, loss, seconds: seen.append((step, loss)))
    second = train(recipe, documents, tokenizer)
    assert [step for step, _ in seen] == [3, 6]
    for (name, a), (_, b) in zip(first.state_dict().items(), second.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    other = train(Recipe("micro", 1, 16, 2, steps=6, batch_size=4, warmup_steps=2, seed=1), documents, tokenizer)
    assert not torch.equal(first.transformer.h[0].attn.c_attn.weight, other.transformer.h[0].attn.c_attn.weight)


def test_recipes_and_profiles_are_checked() -> None:
    with pytest.raises(HarnessError, match="profile"):
        build(Path("unused"), profile="huge")
    with pytest.raises(ValueError, match="optimizer"):
        Recipe("x", 1, 16, 2, steps=10, optimizer="lion")
    with pytest.raises(ValueError, match="save_at"):
        Recipe("x", 1, 16, 2, steps=10, save_at=(10,))
    for plan in PLANS.values():
        names = [recipe.checkpoint_name(step) for recipe in plan.runs for step in recipe.checkpoints]
        assert plan.reference in names
        assert len(set(names)) == len(names)


@pytest.mark.parametrize("profile", sorted(PLANS))
def test_the_same_loss_family_is_one_architecture_trained_along_different_paths(profile: str) -> None:
    runs = [recipe for recipe in PLANS[profile].runs if recipe.family == SAME_LOSS_FAMILY]
    others = [recipe for recipe in PLANS[profile].runs if recipe.family != SAME_LOSS_FAMILY]
    assert len(runs) >= 2
    assert len({recipe.architecture for recipe in runs}) == 1, "one architecture"
    assert len({recipe.seed for recipe in runs}) == 1, "one initialisation"
    assert len({recipe.name for recipe in runs}) == len(runs)
    # what Liu et al. vary: the optimizer, the gradient noise (batch size), training on after convergence
    assert len({recipe.optimizer for recipe in runs}) >= 2
    assert len({recipe.batch_size for recipe in runs}) >= 2
    assert any(len(recipe.checkpoints) >= 2 for recipe in runs), "one run saved at several steps"
    # the other family holds the other sizes
    assert all(recipe.architecture != runs[0].architecture for recipe in others)
    if profile == "full":  # the demo trains the start of the paths; the shipped full family has them all
        assert len(runs) == 4 and {recipe.optimizer for recipe in runs} == {"adamw", "adam", "sgd"}
        assert any(len(recipe.checkpoints) >= 3 for recipe in runs)


def test_demo_checkpoints_are_the_full_profiles_byte_for_byte() -> None:
    """A demo run is a full run stopped earlier (same recipe but steps; a constant learning rate after
    warm-up), and it saves a subset of the full run's checkpoints: the same weights under the same names."""
    full = {recipe.name: recipe for recipe in PLANS["full"].runs}
    for recipe in PLANS["demo"].runs:
        assert recipe.name in full, recipe.name
        longer = full[recipe.name]
        assert replace(recipe, steps=longer.steps, save_at=longer.save_at) == longer
        assert set(recipe.checkpoints) <= set(longer.checkpoints)
    assert PLANS["demo"].reference in {
        recipe.checkpoint_name(step) for recipe in PLANS["full"].runs for step in recipe.checkpoints
    }


def test_same_loss_runs_are_built_from_one_table() -> None:
    (adamw, sgd) = same_loss_runs({"adamw": (10, 30, 20), "sgd": (5,)})
    assert adamw.checkpoints == (10, 20, 30) and adamw.steps == 30 and adamw.save_at == (10, 20)
    assert sgd.checkpoints == (5,) and sgd.optimizer == "sgd"
    assert adamw.architecture == sgd.architecture and adamw.family == sgd.family == SAME_LOSS_FAMILY
    assert adamw.tokens_per_step == adamw.batch_size * adamw.seq_len
    with pytest.raises(ValueError, match="unknown same-loss runs"):
        same_loss_runs({"lion": (10,)})
    with pytest.raises(ValueError, match="family"):
        Recipe("x", 1, 16, 2, steps=10, family="elsewhere")


def test_continuation_logprobs_match_a_plain_forward_pass() -> None:
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    model = GPT2LMHeadModel(
        GPT2Config(vocab_size=20, n_positions=16, n_embd=8, n_layer=1, n_head=2, bos_token_id=2, eos_token_id=2)
    ).eval()
    contexts = [[2], [2, 5, 6], [7]]
    continuations = [[3, 4, 5], [8], [9, 10]]
    got = continuation_logprobs(model, contexts, continuations, batch_size=2)
    for context, continuation, value in zip(contexts, continuations, got, strict=True):
        ids = [*context, *continuation]
        with torch.no_grad():
            log_probs = torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0].double(), dim=-1)
        expected = sum(float(log_probs[i - 1, ids[i]]) for i in range(len(context), len(ids)))
        assert value == pytest.approx(expected, abs=1e-6)


@pytest.mark.slow
def test_quick_scores_agree_with_lm_eval(lm_zoo: Path, suite: LanguageSuite, tmp_path: Path) -> None:
    """The numbers used to design the zoo are the numbers lm-eval reports (on the first 16 items)."""
    import lm_eval
    from lm_eval.tasks import TaskManager

    from harness.data.lm_eval_tasks import write_lm_eval_tasks

    folder = lm_zoo / TINY.reference
    names = write_lm_eval_tasks(tmp_path / "tasks", suite)
    out = lm_eval.simple_evaluate(
        model="hf",
        model_args=f"pretrained={folder},dtype=float32",
        tasks=names,
        task_manager=TaskManager(include_path=str(tmp_path / "tasks")),
        limit=16,
        device="cpu",
        batch_size=16,
        log_samples=True,
    )
    assert out is not None
    model = load(folder)
    tokenizer = build_tokenizer(suite.grammar)
    eos = [tokenizer.eos_token_id]
    for sample in out["samples"]["synth_blimp"]:
        doc = sample["doc"]
        ours = continuation_logprobs(
            model, [eos, eos], tokenize(tokenizer, [doc["sentence_good"], doc["sentence_bad"]])
        )
        assert [r[0][0] for r in sample["resps"]] == pytest.approx(ours, abs=1e-3)
    for sample in out["samples"]["synth_mc"]:
        doc = sample["doc"]
        choices = tokenize(tokenizer, doc["choices"])
        context = tokenize(tokenizer, [doc["context"]])[0]
        ours = continuation_logprobs(model, [context] * len(choices), choices)
        assert [r[0][0] for r in sample["resps"]] == pytest.approx(ours, abs=1e-3)
    for sample in out["samples"]["synth_heldout"]:
        ours = continuation_logprobs(model, [eos], tokenize(tokenizer, [sample["doc"]["text"]]))[0]
        assert sample["filtered_resps"][0] == pytest.approx(ours, abs=1e-3)


def test_compression_spec_names_in_the_plans_are_valid() -> None:
    for plan in PLANS.values():
        suffixes = [variant.suffix for variant in plan.variants]
        assert len(set(suffixes)) == len(suffixes)
        assert all(isinstance(variant.spec, CompressionSpec) for variant in plan.variants)
        methods = {variant.spec.method for variant in plan.variants}
        assert methods == {"prune", "quantize"}
