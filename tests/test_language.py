"""The synthetic language: grammar, suite, tokenizer, and its lm-eval tasks run end to end offline."""

from __future__ import annotations

import hashlib
import math
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from harness.data import language as lang
from harness.errors import HarnessError

SMALL = {
    "n_train_sentences": 3_000,
    "n_heldout_sentences": 300,
    "n_prompts": 16,
    "n_pairs_per_phenomenon": 40,
    "n_multiple_choice": 80,
    "n_probe_sentences": 50,
}


@pytest.fixture(scope="module")
def suite() -> lang.LanguageSuite:
    return lang.language_suite(seed=0, **SMALL)


@pytest.fixture(scope="module")
def grammar() -> lang.Grammar:
    return lang.default_grammar()


def sentences_of(text: str) -> list[str]:
    """Split a document into its sentences (each ends with the word ".")."""
    out, current = [], []
    for word in text.split(" "):
        current.append(word)
        if word == ".":
            out.append(" ".join(current))
            current = []
    assert not current, "a document must end with a full stop"
    return out


# ---------------------------------------------------------------------------------------------------
# Determinism and sizes
# ---------------------------------------------------------------------------------------------------


def test_same_seed_same_fingerprints_different_seed_differs(suite: lang.LanguageSuite) -> None:
    again = lang.language_suite(seed=0, **SMALL)
    other = lang.language_suite(seed=1, **SMALL)
    assert again.fingerprints == suite.fingerprints
    for name, fingerprint in other.fingerprints.items():
        assert fingerprint != suite.fingerprints[name], name


def test_generation_is_pinned_across_machines() -> None:
    # PCG64 float64 uniforms and Python float cumulative sums are platform independent; this pins them.
    # A deliberate change of the grammar or the builders changes these values (and every cache key).
    sentences = lang.generate_sentences(np.random.default_rng(123), 3)
    assert [s.text for s in sentences] == [
        "the dog thinks that those dogs are near the dogs that sleep beside heidi that the rather small foxes "
        "that swim see .",
        "a big dog finds every small king .",
        "the old rabbits think that the sad child likes this dog .",
    ]
    small = lang.language_suite(
        seed=0,
        n_train_sentences=500,
        n_heldout_sentences=50,
        n_pairs_per_phenomenon=5,
        n_multiple_choice=10,
        n_probe_sentences=5,
        n_prompts=4,
    )
    assert {name: fingerprint[:16] for name, fingerprint in small.fingerprints.items()} == {
        "pretrain": "c801a45cfede2677",
        "heldout": "03f08bfb29328828",
        "prompts": "c9dc0a29a04e7e38",
        "minimal_pairs": "5159ddd0780f0520",
        "multiple_choice": "01b1cb2851dc8c2c",
        "probe": "0f070905e3e6f382",
    }


def test_generate_sentence_and_tree(grammar: lang.Grammar) -> None:
    rng = np.random.default_rng(0)
    sentence = lang.generate_sentence(rng, grammar)
    assert sentence.words[-1] == "." and len(sentence.tags) == len(sentence.words)
    root = sentence.spans[-1]
    assert root == lang.Span(0, len(sentence), "ROOT")
    for span in sentence.spans:
        assert 0 <= span.start < span.end <= len(sentence)
        assert span.label in grammar.labels
    # Tags are the pre-terminals that produced each word.
    for word, tag in zip(sentence.words, sentence.tags, strict=True):
        assert tag in grammar.categories[word]
    # Trees or not, the same stream gives the same words.
    with_tree = lang.generate_sentences(np.random.default_rng(5), 50, grammar)
    without = lang.generate_sentences(np.random.default_rng(5), 50, grammar, with_tree=False)
    assert [s.words for s in with_tree] == [s.words for s in without]


def test_default_sizes_and_build_time() -> None:
    start = time.perf_counter()
    full = lang.language_suite(seed=0)
    elapsed = time.perf_counter() - start
    assert elapsed < 15.0  # about 2 s on one core
    n_words = sum(len(d.text.split()) for d in full.pretrain)
    assert 1_100_000 < n_words < 1_400_000
    assert sum(d.n_sentences for d in full.pretrain) == 100_000
    assert sum(d.n_sentences for d in full.heldout) == 4_000
    assert len(full.prompts) == 64
    assert len(full.minimal_pairs) == 600
    assert Counter(p.phenomenon for p in full.minimal_pairs) == dict.fromkeys(lang.MINIMAL_PAIR_PHENOMENA, 100)
    assert len(full.multiple_choice) == 400
    assert Counter(m.phenomenon for m in full.multiple_choice) == dict.fromkeys(lang.CHOICE_PHENOMENA, 200)
    assert len({p.sentence for p in full.probe}) == 500
    assert max(len(d.text.split()) for d in [*full.pretrain, *full.heldout]) <= 128


def test_split_lookup(suite: lang.LanguageSuite) -> None:
    assert suite.split("heldout") is suite.heldout
    assert len(suite.split("pretrain").head(3)) == 3
    assert suite.split("pretrain").head(3).fingerprint != suite.pretrain.fingerprint
    with pytest.raises(HarnessError, match="no split 'test'"):
        suite.split("test")
    with pytest.raises(HarnessError, match="at least 1"):
        lang.language_suite(n_train_sentences=0)


# ---------------------------------------------------------------------------------------------------
# The grammar and the recogniser
# ---------------------------------------------------------------------------------------------------


def test_recogniser_on_hand_examples(grammar: lang.Grammar) -> None:
    good = [
        "the dog sleeps .",
        "the dogs sleep .",
        "the dog near the cats sleeps .",
        "the dog that the cats chase sleeps .",
        "the dog and the cat sleep .",
        "alice thinks that the dogs are happy .",
    ]
    bad = [
        "the dog sleep .",
        "the dog near the cats sleep .",
        "the dog that the cats chase sleep .",
        "the dog and the cat sleeps .",
        "these dog sleeps .",
        "dog sleeps .",  # a singular noun needs a determiner
        "the dog sleeps",  # no full stop
        "the dog zzz .",
    ]
    for text in good:
        assert grammar.accepts(text.split()), text
    for text in bad:
        assert not grammar.accepts(text.split()), text
    assert grammar.is_prefix(["the", "dog", "near", "the", "cats"])
    assert not grammar.is_prefix(["the", "dog", "near", "the", "cats", "sleep"])
    assert grammar.is_prefix([])


def test_every_generated_sentence_is_accepted(grammar: lang.Grammar) -> None:
    for sentence in lang.generate_sentences(np.random.default_rng(9), 300, grammar):
        assert grammar.accepts(sentence.words), sentence.text
        assert len(sentence) <= grammar.max_sentence_words


def test_grammar_checks_its_rules() -> None:
    rules = (lang.Rule("ROOT", ("X", "Punct"), 0.5),)
    lexicon = {"X": ("x",), "Punct": (".",)}
    with pytest.raises(ValueError, match="sum to 1"):
        lang.Grammar(rules=rules, lexicon=lexicon)
    with pytest.raises(ValueError, match="non-recursive"):
        lang.Grammar(rules=(lang.Rule("ROOT", ("ROOT", "X"), 1.0, recursive=True),), lexicon=lexicon)
    with pytest.raises(ValueError, match="cycle"):
        lang.Grammar(rules=(lang.Rule("ROOT", ("ROOT", "X"), 1.0),), lexicon=lexicon)
    with pytest.raises(ValueError, match="undefined"):
        lang.Grammar(rules=(lang.Rule("ROOT", ("Y",), 1.0),), lexicon=lexicon)


def test_vocabulary_and_agreement_pairs(grammar: lang.Grammar) -> None:
    assert 100 <= len(grammar.vocabulary) <= 300
    assert grammar.counterparts["dog"] == "dogs" and grammar.counterparts["are"] == "is"
    assert grammar.counterparts["mice"] == "mouse"
    assert set(grammar.labels) == {"ROOT", "S", "NP", "VP", "PP", "RC", "SBAR", "AdjP"}


# ---------------------------------------------------------------------------------------------------
# The splits
# ---------------------------------------------------------------------------------------------------


def test_text_is_single_spaced_words(suite: lang.LanguageSuite) -> None:
    for document in [*suite.pretrain, *suite.heldout]:
        assert document.text == " ".join(document.text.split())
        assert len(sentences_of(document.text)) == document.n_sentences


def test_heldout_and_eval_sentences_are_not_in_pretrain(suite: lang.LanguageSuite) -> None:
    pretrain = {s for d in suite.pretrain for s in sentences_of(d.text)}
    heldout = [s for d in suite.heldout for s in sentences_of(d.text)]
    assert len(heldout) == SMALL["n_heldout_sentences"]
    assert not pretrain & set(heldout)
    assert not pretrain & {p.good for p in suite.minimal_pairs}
    for prompt in suite.prompts:
        assert not pretrain & set(sentences_of(f"{prompt.text} {prompt.continuation}"))


def test_minimal_pairs_differ_in_one_word_and_bad_is_ungrammatical(
    suite: lang.LanguageSuite, grammar: lang.Grammar
) -> None:
    assert set(p.phenomenon for p in suite.minimal_pairs) == set(lang.MINIMAL_PAIR_PHENOMENA)
    for pair in suite.minimal_pairs:
        good, bad = pair.good.split(), pair.bad.split()
        assert len(good) == len(bad)
        assert [i for i, (g, b) in enumerate(zip(good, bad, strict=True)) if g != b] == [pair.position]
        assert grammar.accepts(good), pair
        assert not grammar.accepts(bad), pair
        changed, replacement = good[pair.position], bad[pair.position]
        if pair.phenomenon == "determiner_noun":
            assert {changed, replacement} <= set(grammar.lexicon["Det_sg"]) ^ set(grammar.lexicon["Det_pl"])
        else:  # the same verb in the other number
            assert grammar.counterparts[changed] == replacement
            assert any(lang.label_of(c) in lang.VERB_CATEGORIES for c in grammar.categories[changed])
    # Attractor items put a noun of the other number between the subject's head and the verb.
    for pair in suite.minimal_pairs:
        if pair.phenomenon == "agreement_attractor_pp":
            words = pair.good.split()
            head, attractor = words[1], words[4]
            assert grammar.counterparts[head] != head and (head in grammar.lexicon["N_sg"]) != (
                attractor in grammar.lexicon["N_sg"]
            )


def test_multiple_choice_items(suite: lang.LanguageSuite, grammar: lang.Grammar) -> None:
    for item in suite.multiple_choice:
        assert len(item.choices) == 4 and len(set(item.choices)) == 4 and 0 <= item.label < 4
        context = item.context.split()
        lengths = {len(choice.split()) for choice in item.choices}
        assert len(lengths) == 1
        if item.phenomenon == "agreement_across_attractor":
            grammatical = [grammar.is_prefix([*context, choice]) for choice in item.choices]
        else:
            grammatical = [grammar.accepts([*context, *choice.split()]) for choice in item.choices]
        assert grammatical == [i == item.label for i in range(4)], item
    labels = Counter(item.label for item in suite.multiple_choice)
    assert len(labels) == 4  # gold positions are spread over the four slots


def test_prompts(suite: lang.LanguageSuite) -> None:
    assert len(suite.prompts) == SMALL["n_prompts"]
    for prompt in suite.prompts:
        assert 4 <= len(prompt.text.split()) <= 16 and prompt.continuation


def test_probe_spans(suite: lang.LanguageSuite, grammar: lang.Grammar) -> None:
    assert len(suite.probe) > 5 * SMALL["n_probe_sentences"]
    labels = Counter(span.label for span in suite.probe)
    assert set(labels) <= set(grammar.labels) - {"ROOT"}
    assert {"S", "NP", "VP", "PP"} <= set(labels)
    heldout = {s for d in suite.heldout for s in sentences_of(d.text)}
    for span in suite.probe:
        n_words = len(span.sentence.split())
        assert 0 <= span.start < span.end <= n_words
        assert span.sentence in heldout
        assert span.text == " ".join(span.sentence.split()[span.start : span.end])
        if span.label == "S":
            assert span.end < n_words  # a clause never includes the full stop


# ---------------------------------------------------------------------------------------------------
# Tokenizer
# ---------------------------------------------------------------------------------------------------


def test_tokenizer_round_trip_and_context_independence(suite: lang.LanguageSuite) -> None:
    tokenizer = lang.build_tokenizer(suite.grammar)
    assert tokenizer.bos_token == tokenizer.eos_token == "<eos>"
    assert (tokenizer.pad_token_id, tokenizer.unk_token_id, tokenizer.eos_token_id) == (0, 1, 2)
    assert len(tokenizer) == len(suite.grammar.vocabulary) + 3
    texts = [d.text for d in suite.heldout] + [p.bad for p in suite.minimal_pairs] + [p.text for p in suite.prompts]
    for text in texts:
        ids = tokenizer.encode(text)
        assert len(ids) == len(text.split())
        assert tokenizer.unk_token_id not in ids
        assert tokenizer.decode(ids) == text
    a, b = suite.heldout[0].text, suite.heldout[1].text
    assert tokenizer.encode(f"{a} {b}") == tokenizer.encode(a) + tokenizer.encode(b)
    assert tokenizer.encode(" " + b) == tokenizer.encode(b)


def test_tokenizer_save_and_reload_offline(tmp_path: Path, suite: lang.LanguageSuite) -> None:
    from transformers import AutoTokenizer

    tokenizer = lang.build_tokenizer(suite.grammar)
    tokenizer.save_pretrained(tmp_path)
    reloaded = AutoTokenizer.from_pretrained(tmp_path)
    text = suite.heldout[0].text
    assert reloaded.encode(text) == tokenizer.encode(text)
    assert reloaded.decode(reloaded.encode(text)) == text
    assert (reloaded.bos_token_id, reloaded.eos_token_id, reloaded.pad_token_id) == (2, 2, 0)


# ---------------------------------------------------------------------------------------------------
# lm-evaluation-harness end to end
# ---------------------------------------------------------------------------------------------------


def test_task_files_are_written_with_absolute_paths(tmp_path: Path, suite: lang.LanguageSuite) -> None:
    import yaml

    from harness.data.lm_eval_tasks import write_lm_eval_tasks

    names = write_lm_eval_tasks(tmp_path / "tasks", suite)
    assert names == ["synth_blimp", "synth_mc", "synth_heldout"]
    for name in names:
        config = yaml.safe_load((tmp_path / "tasks" / f"{name}.yaml").read_text())
        data_file = Path(config["dataset_kwargs"]["data_files"]["test"])
        assert data_file.is_absolute() and data_file.exists()
    blimp = yaml.safe_load((tmp_path / "tasks" / "synth_blimp.yaml").read_text())
    assert blimp["metadata"]["fingerprint"] == suite.minimal_pairs.fingerprint
    n_lines = len((tmp_path / "tasks" / "data" / "synth_heldout.jsonl").read_text().splitlines())
    assert n_lines == len(suite.heldout)


@pytest.mark.slow
def test_lm_eval_runs_the_tasks_offline_and_matches_a_hand_computation(
    tmp_path: Path, suite: lang.LanguageSuite
) -> None:
    import lm_eval
    import torch
    from lm_eval.tasks import TaskManager
    from transformers import GPT2Config, GPT2LMHeadModel

    from harness.data.lm_eval_tasks import write_lm_eval_tasks
    from harness.metrics.lm import perplexity, token_nll

    tokenizer = lang.build_tokenizer(suite.grammar)
    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=len(tokenizer), n_positions=256, n_embd=32, n_layer=2, n_head=2,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )  # fmt: skip
    model = GPT2LMHeadModel(config).eval()
    model_folder = tmp_path / "model"
    model.save_pretrained(model_folder)  # safetensors
    tokenizer.save_pretrained(model_folder)
    assert (model_folder / "model.safetensors").exists()
    tasks_folder = tmp_path / "tasks"
    names = write_lm_eval_tasks(tasks_folder, suite)

    out = lm_eval.simple_evaluate(
        model="hf",
        model_args=f"pretrained={model_folder},dtype=float32",
        tasks=names,
        task_manager=TaskManager(include_path=str(tasks_folder)),
        limit=16,
        device="cpu",
        batch_size=8,
        log_samples=True,
    )
    assert out is not None
    results = out["results"]
    for name in ("synth_blimp", "synth_mc"):
        assert 0.0 <= results[name]["acc,none"] <= 1.0
    assert math.isfinite(results["synth_mc"]["acc_norm,none"])
    word_perplexity = results["synth_heldout"]["word_perplexity,none"]
    assert math.isfinite(word_perplexity) and word_perplexity > 1.0

    def log_probs(ids: list[int]) -> np.ndarray:
        """log p(ids[t] | ids[:t]) for t >= 1, computed here in float64 from the model's logits."""
        with torch.no_grad():
            logits = model(torch.tensor([ids])).logits[0].double().numpy()
        out: np.ndarray = -token_nll(logits[:-1], np.array(ids[1:]))
        return out

    eos = tokenizer.eos_token_id
    # synth_heldout: every word is scored, the first one conditioned on <eos>; words == tokens.
    nll, n_words = [], []
    for sample in out["samples"]["synth_heldout"]:
        text = sample["doc"]["text"]
        ours = log_probs([eos, *tokenizer.encode(text)]).sum()
        assert sample["filtered_resps"][0] == pytest.approx(ours, abs=1e-3)
        nll.append(-ours)
        n_words.append(len(text.split()))
    assert perplexity(nll, n_words) == pytest.approx(word_perplexity, rel=1e-5)
    # synth_blimp: empty context -> each sentence conditioned on <eos>.
    sample = out["samples"]["synth_blimp"][0]
    good = sample["doc"]["sentence_good"]
    assert sample["resps"][0][0][0] == pytest.approx(log_probs([eos, *tokenizer.encode(good)]).sum(), abs=1e-3)
    # synth_mc: a non-empty context gets no <eos> in front; only the choice's tokens are scored.
    sample = out["samples"]["synth_mc"][0]
    context, choice = sample["doc"]["context"], sample["doc"]["choices"][0]
    ids = tokenizer.encode(context) + tokenizer.encode(choice)
    ours = log_probs(ids)[-len(tokenizer.encode(choice)) :].sum()
    assert sample["resps"][0][0][0] == pytest.approx(ours, abs=1e-3)


def test_the_built_suite_is_stored_and_read_back_identically(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.data import language

    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path))
    built = language.language_suite(seed=3, n_train_sentences=500, n_heldout_sentences=60, n_probe_sentences=20)
    (stored,) = (tmp_path / "language").glob("synthlang-*[0-9a-f].json")
    again = language.language_suite(seed=3, n_train_sentences=500, n_heldout_sentences=60, n_probe_sentences=20)
    assert again.fingerprints == built.fingerprints and again.multiple_choice[0] == built.multiple_choice[0]
    # A copy that does not match its checksum is never used: the suite is generated again.
    stored.write_bytes(stored.read_bytes().replace(b"heldout-0", b"heldout-X", 1))
    rebuilt = language.language_suite(seed=3, n_train_sentences=500, n_heldout_sentences=60, n_probe_sentences=20)
    assert rebuilt.fingerprints == built.fingerprints
    # Bytes read before reuse the fingerprints computed then; other bytes (a checksum that matches an
    # edited copy) are fingerprinted from their records.
    third = language.language_suite(seed=3, n_train_sentences=500, n_heldout_sentences=60, n_probe_sentences=20)
    assert third.fingerprints == built.fingerprints
    assert all(split.fingerprint == language.fingerprint_records(name, split.records)
               for name, split in third.splits.items())  # fmt: skip
    edited = stored.read_bytes().replace(b"heldout-0", b"heldout-X", 1)
    stored.write_bytes(edited)
    stored.with_suffix(".sha256").write_text(hashlib.sha256(edited).hexdigest())
    changed = language.language_suite(seed=3, n_train_sentences=500, n_heldout_sentences=60, n_probe_sentences=20)
    assert changed.heldout.records[0].id == "heldout-X"
    assert changed.heldout.fingerprint == language.fingerprint_records("heldout", changed.heldout.records)
    assert changed.heldout.fingerprint != built.heldout.fingerprint
    assert changed.prompts.fingerprint == built.prompts.fingerprint


def test_the_summary_matches_the_suite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.data.language import language_suite, language_summary

    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path))
    fingerprints, sizes = language_summary(seed=0)  # builds and stores the suite
    suite = language_suite(seed=0)
    assert fingerprints == suite.fingerprints
    assert sizes == {name: len(split) for name, split in suite.splits.items()}
    assert language_summary(seed=0) == (fingerprints, sizes)  # now read from the stored summary
