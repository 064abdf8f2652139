"""A deterministic synthetic language: a seeded PCFG with number agreement, and the suite built from it.

The language-model part of Harness follows the setting of Liu et al., "Same Pre-training Loss, Better
Downstream" (ICML 2023): small GPT-2-style models are pre-trained on text sampled from a probabilistic
context-free grammar, then evaluated on held-out loss and on downstream tasks in the same language.

The grammar (`default_grammar`)
- 242 words: determiners, nouns and verbs in singular and plural forms (intransitive, transitive,
  clause-taking and the copula), names, adjectives, degree words, adverbs, prepositions, conjunctions,
  relative and complement "that"/"who", and the full stop "." as a word of its own.
- Non-terminals ROOT, S (clause), NP, VP, PP, RC (relative clause), SBAR (complement clause) and AdjP.
  Number is compiled into the symbols (NP_sg, NP_pl, VP_sg, ...), so the grammar stays context-free
  while the verb agrees with its subject, also across an intervening PP, relative clause or coordination
  ("the dog near the cats sleeps", "the dog that the cats chase sleeps", "the dog and the cat sleep").
  Determiners agree with their noun ("this dog", "these dogs"; "the" is both).
- Recursion (NP -> NP PP, NP -> NP RC, NP_pl -> NP_sg and NP_sg, VP -> VP PP, VP -> Adv VP,
  VP -> SV SBAR) is flagged per rule: below `max_recursion` flagged rules on the path from the root, rules
  are drawn with their fixed probabilities; at the limit, flagged rules are dropped and the rest
  renormalised. Sentences longer than `max_sentence_words` (40) words are rejected and drawn again
  (about 0.6% of draws).
- Words of a category are drawn with Zipf weights 1 / rank (rank = position in the word list).
- `Grammar.accepts` (an Earley recogniser over the same rules, without the depth limit) decides whether a
  word sequence is in the language; `Grammar.is_prefix` whether it can still be completed.

Determinism: all randomness comes from numpy's PCG64 (`numpy.random.Generator`), read as float64
uniforms in fixed blocks and turned into choices with cumulative sums computed in Python, so the same
seed gives byte-identical text on every machine. Each split has its own stream (SeedSequence(seed)
spawned in a fixed order), so enlarging one split does not change the others, except that evaluation
splits drop sentences that occur in `pretrain` and therefore depend on it.

The suite (`language_suite`) and its default sizes (seed 0; builds in about 2 s on one CPU core):
- `pretrain`: documents of consecutive sentences joined by single spaces, packed greedily up to
  `max_document_words` words (default 128); 100,000 sentences (12.3 words on average), 1.23M words in
  10,228 documents.
- `heldout`: 4,000 sentences (none of them occurs in pretrain; short, frequent sentences are therefore
  rarer than in pretrain), packed the same way: 53k words in 444 documents. No document is longer than
  `max_document_words` words, so a model with n_positions >= max_document_words scores a whole document,
  conditioned on one end-of-text token, in one window (see harness/data/lm_eval_tasks.py).
- `prompts`: 64 prefixes (4 to 16 words) of fresh documents for greedy continuation, with the rest of the
  document as `continuation`.
- `minimal_pairs`: BLiMP-style pairs (100 per phenomenon, 6 phenomena, 600 in all): a grammatical sentence
  and an ungrammatical one that differs in exactly one word (`position`). Every good sentence is accepted
  by the grammar and every bad one rejected (checked while building). Phenomena:
  `agreement_simple` (the dog sleeps / *sleep), `agreement_attractor_pp` (the dog near the cats
  sleeps / *sleep), `agreement_attractor_rc` (the dog that the cats chase sleeps / *sleep; also
  subject relatives whose object has the other number), `agreement_coordination` (the dog and the cat sleep /
  *sleeps), `agreement_in_relative_clause` (the dogs that chase the cat sleep / *chases),
  `determiner_noun` (this dog / *these dog).
- `multiple_choice`: 400 items with a context, 4 choices and one correct `label`. Half are
  `agreement_across_attractor`: the context is a subject whose nearest noun has the other number (PP,
  relative clause or coordination; plus any adverb before the verb), the choices are the next word, and
  exactly one of the four verb forms agrees with the subject (the other three, including the other form
  of the gold verb, agree with the attractor). The other half are `grammatical_completion`: the context is a sentence prefix and the
  choices complete it up to "."; the gold is the original completion and the distractors are corrupted
  copies (one word's number flipped, two adjacent words swapped, or one word replaced by a word of another
  category) that the grammar rejects. Choices of an item have the same number of words.
- `probe`: every constituent span (start, end exclusive, in words) of the first 500 held-out sentences with
  the non-terminal that generated it (S, NP, VP, PP, RC, SBAR, AdjP; ROOT, the whole sentence, is left
  out; where two constituents cover the same words the outer one is kept), for a linear probe: about 5,300
  spans.
Every split has a `fingerprint`: sha256 over its name and its records as canonical JSON.

Text is word-level: words separated by single spaces, no leading or trailing space, so counting words
with `text.split()` counts the tokens of `build_tokenizer`, and a document tokenizes the same whether or
not other text precedes it.

Example:
    >>> generate_sentences(np.random.default_rng(123), 2)[1].text
    'a big dog finds every small king .'
    >>> default_grammar().accepts("the dog near the cats sleep .".split())
    False
    >>> suite = language_suite(seed=0)  # about 2 s
    >>> suite.minimal_pairs[0].good, suite.minimal_pairs[0].bad
    ('a horse sleeps always .', 'a horse sleep always .')
"""

from __future__ import annotations

import bisect
import hashlib
import inspect
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from functools import cached_property
from itertools import accumulate
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, NamedTuple, TypeVar

import numpy as np

from harness.data import checked_positions, named_split
from harness.errors import HarnessError

if TYPE_CHECKING:  # transformers is imported only when a tokenizer is built
    from transformers import PreTrainedTokenizerFast

# ----------------------------------------------------------------------------------------------------
# The grammar
# ----------------------------------------------------------------------------------------------------

EOS_TOKEN = "<eos>"
PAD_TOKEN = "<pad>"
UNK_TOKEN = "<unk>"
SPECIAL_TOKENS = (PAD_TOKEN, UNK_TOKEN, EOS_TOKEN)

NUMBERS = ("sg", "pl")
VERB_CATEGORIES = ("IV", "TV", "SV", "Cop")


class Span(NamedTuple):
    """A constituent: words [start, end) of a sentence generated by non-terminal `label` (features dropped)."""

    start: int
    end: int
    label: str


@dataclass(frozen=True)
class Rule:
    """lhs -> rhs with probability `prob`; `recursive` rules are dropped at the depth limit."""

    lhs: str
    rhs: tuple[str, ...]
    prob: float
    recursive: bool = False


@dataclass(frozen=True)
class Sentence:
    """Words, the pre-terminal of each word (`tags`, e.g. "N_sg"), and the labelled constituent spans.

    `spans` hold every non-terminal of the parse tree (ROOT included), children before parents.
    """

    words: tuple[str, ...]
    tags: tuple[str, ...]
    spans: tuple[Span, ...]

    @property
    def text(self) -> str:
        return " ".join(self.words)

    def __len__(self) -> int:
        return len(self.words)


def label_of(symbol: str) -> str:
    """The category of a symbol without its number feature: "NP_sg" -> "NP", "Det_pl" -> "Det"."""
    return symbol.split("_", 1)[0]


@dataclass(frozen=True, eq=False)
class Grammar:
    """A PCFG whose terminals are pre-terminal categories, each rewriting to a word of `lexicon`.

    `rules` rewrite non-terminals; `lexicon` maps each pre-terminal to its words in rank order (Zipf
    weights 1 / rank**zipf_exponent). Checked at construction: the probabilities of each left-hand side
    sum to 1, every symbol is defined, every non-terminal has a non-recursive rule and the non-recursive
    rules contain no cycle (so generation always terminates), and words contain no whitespace.
    """

    rules: tuple[Rule, ...]
    lexicon: Mapping[str, tuple[str, ...]]
    start: str = "ROOT"
    max_recursion: int = 3
    max_sentence_words: int = 40
    zipf_exponent: float = 1.0

    def __post_init__(self) -> None:
        nonterminals = {rule.lhs for rule in self.rules}
        overlap = nonterminals & set(self.lexicon)
        if overlap:
            raise ValueError(f"symbols are both non-terminals and pre-terminals: {sorted(overlap)}")
        if self.start not in nonterminals:
            raise ValueError(f"start symbol {self.start!r} has no rule")
        for lhs in sorted(nonterminals):
            rules = [rule for rule in self.rules if rule.lhs == lhs]
            total = sum(rule.prob for rule in rules)
            if abs(total - 1.0) > 1e-9 or any(rule.prob <= 0 for rule in rules):
                raise ValueError(f"rule probabilities of {lhs} must be positive and sum to 1, got {total}")
            if all(rule.recursive for rule in rules):
                raise ValueError(f"{lhs} needs at least one non-recursive rule")
            for rule in rules:
                unknown = [s for s in rule.rhs if s not in nonterminals and s not in self.lexicon]
                if unknown or not rule.rhs:
                    raise ValueError(f"rule {lhs} -> {rule.rhs} uses undefined symbols {unknown}")
        for category, words in self.lexicon.items():
            if not words or any(not w or w != w.strip() or len(w.split()) != 1 for w in words):
                raise ValueError(f"lexicon entry {category!r} must hold non-empty words without whitespace")
        self._check_base_rules_acyclic(nonterminals)
        if self.max_recursion < 0 or self.max_sentence_words < 2:
            raise ValueError("max_recursion must be >= 0 and max_sentence_words >= 2")

    def _check_base_rules_acyclic(self, nonterminals: set[str]) -> None:
        edges = {lhs: set[str]() for lhs in nonterminals}
        for rule in self.rules:
            if not rule.recursive:
                edges[rule.lhs].update(s for s in rule.rhs if s in nonterminals)
        state: dict[str, int] = {}

        def visit(symbol: str) -> None:
            state[symbol] = 1
            for child in edges[symbol]:
                if state.get(child) == 1:
                    raise ValueError(f"non-recursive rules form a cycle through {symbol} -> {child}: flag one")
                if child not in state:
                    visit(child)
            state[symbol] = 2

        for symbol in sorted(nonterminals):
            if symbol not in state:
                visit(symbol)

    @cached_property
    def nonterminals(self) -> tuple[str, ...]:
        return tuple(sorted({rule.lhs for rule in self.rules}))

    @cached_property
    def labels(self) -> tuple[str, ...]:
        """Non-terminal labels without number features (the probe's classes), sorted."""
        return tuple(sorted({label_of(symbol) for symbol in self.nonterminals}))

    @cached_property
    def vocabulary(self) -> tuple[str, ...]:
        """Every word of the language, sorted."""
        return tuple(sorted({word for words in self.lexicon.values() for word in words}))

    @cached_property
    def categories(self) -> dict[str, frozenset[str]]:
        """word -> the pre-terminals that can produce it ("the" -> {Det_sg, Det_pl})."""
        out: dict[str, set[str]] = {}
        for category, words in self.lexicon.items():
            for word in words:
                out.setdefault(word, set()).add(category)
        return {word: frozenset(cats) for word, cats in out.items()}

    @cached_property
    def counterparts(self) -> dict[str, str]:
        """word -> the same word in the other number, for nouns and verbs ("dog" <-> "dogs", "is" <-> "are")."""
        out: dict[str, str] = {}
        for category in ("N", *VERB_CATEGORIES):
            singular = self.lexicon.get(f"{category}_sg", ())
            plural = self.lexicon.get(f"{category}_pl", ())
            for sg, pl in zip(singular, plural, strict=True):
                out[sg] = pl
                out[pl] = sg
        return out

    def accepts(self, words: Sequence[str]) -> bool:
        """True when `words` is a sentence of the language (Earley recognition, no depth limit)."""
        chart = self._earley(words)
        if chart is None:
            return False
        table = self._tables
        return any(
            origin == 0 and dot == len(table.rhs[rule]) and table.lhs[rule] == table.start
            for rule, dot, origin in chart
        )

    def is_prefix(self, words: Sequence[str]) -> bool:
        """True when some sentence of the language starts with `words`."""
        return self._earley(words) is not None

    def _earley(self, words: Sequence[str]) -> list[tuple[int, int, int]] | None:
        """Earley chart at the last position, or None when no sentence starts with `words`.

        The grammar has no empty rules, so a completed item always started at an earlier position and
        completion only needs the items waiting at that (already closed) position.
        """
        table = self._tables
        n_words = len(words)
        word_categories = [table.word_categories.get(word, frozenset()) for word in words]
        seen: list[set[tuple[int, int, int]]] = [set() for _ in range(n_words + 1)]
        items: list[list[tuple[int, int, int]]] = [[] for _ in range(n_words + 1)]
        waiting: list[dict[int, list[tuple[int, int, int]]]] = [{} for _ in range(n_words + 1)]

        def add(position: int, item: tuple[int, int, int]) -> None:
            if item not in seen[position]:
                seen[position].add(item)
                items[position].append(item)

        for rule in table.by_lhs[table.start]:
            add(0, (rule, 0, 0))
        for position in range(n_words + 1):
            queue = items[position]
            predicted: set[int] = set()
            index = 0
            while index < len(queue):
                rule, dot, origin = queue[index]
                index += 1
                rhs = table.rhs[rule]
                if dot < len(rhs):
                    symbol = rhs[dot]
                    if symbol < table.n_nonterminals:
                        waiting[position].setdefault(symbol, []).append((rule, dot, origin))
                        if symbol not in predicted:
                            predicted.add(symbol)
                            for child in table.by_lhs[symbol]:
                                add(position, (child, 0, position))
                    elif position < n_words and symbol in word_categories[position]:
                        add(position + 1, (rule, dot + 1, origin))
                else:
                    for parent, parent_dot, parent_origin in waiting[origin].get(table.lhs[rule], ()):
                        add(position, (parent, parent_dot + 1, parent_origin))
            if position < n_words and not items[position + 1]:
                return None
        return items[n_words]

    @cached_property
    def _tables(self) -> _Tables:
        return _Tables.build(self)


@dataclass(frozen=True)
class _Tables:
    """The grammar compiled to integers: symbols 0..n_nonterminals-1 are non-terminals, the rest pre-terminals."""

    symbols: tuple[str, ...]
    n_nonterminals: int
    start: int
    lhs: tuple[int, ...]
    rhs: tuple[tuple[int, ...], ...]
    recursive: tuple[bool, ...]
    by_lhs: tuple[tuple[int, ...], ...]
    rule_cdf: tuple[tuple[float, ...], ...]  # per non-terminal, over by_lhs
    base_rules: tuple[tuple[int, ...], ...]  # per non-terminal, its non-recursive rules
    base_cdf: tuple[tuple[float, ...], ...]
    words: tuple[tuple[str, ...], ...]  # per pre-terminal (index symbol - n_nonterminals)
    word_cdf: tuple[tuple[float, ...], ...]
    word_categories: dict[str, frozenset[int]]

    @staticmethod
    def build(grammar: Grammar) -> _Tables:
        nonterminals = grammar.nonterminals
        preterminals = tuple(sorted(grammar.lexicon))
        symbols = nonterminals + preterminals
        index = {symbol: i for i, symbol in enumerate(symbols)}
        lhs = tuple(index[rule.lhs] for rule in grammar.rules)
        rhs = tuple(tuple(index[s] for s in rule.rhs) for rule in grammar.rules)
        by_lhs = tuple(tuple(r for r, rule in enumerate(grammar.rules) if rule.lhs == nt) for nt in nonterminals)
        base = tuple(tuple(r for r in rules if not grammar.rules[r].recursive) for rules in by_lhs)

        def cdf(weights: Sequence[float]) -> tuple[float, ...]:
            sums = list(accumulate(weights))
            return tuple(s / sums[-1] for s in sums)

        words = tuple(grammar.lexicon[p] for p in preterminals)
        word_cdf = tuple(cdf([1.0 / (rank + 1) ** grammar.zipf_exponent for rank in range(len(w))]) for w in words)
        word_categories: dict[str, set[int]] = {}
        for p, ws in zip(preterminals, words, strict=True):
            for w in ws:
                word_categories.setdefault(w, set()).add(index[p])
        return _Tables(
            symbols=symbols,
            n_nonterminals=len(nonterminals),
            start=index[grammar.start],
            lhs=lhs,
            rhs=rhs,
            recursive=tuple(rule.recursive for rule in grammar.rules),
            by_lhs=by_lhs,
            rule_cdf=tuple(cdf([grammar.rules[r].prob for r in rules]) for rules in by_lhs),
            base_rules=base,
            base_cdf=tuple(cdf([grammar.rules[r].prob for r in rules]) for rules in base),
            words=words,
            word_cdf=word_cdf,
            word_categories={w: frozenset(c) for w, c in word_categories.items()},
        )


def _lexicon() -> dict[str, tuple[str, ...]]:
    nouns = (
        ("dog", "dogs"), ("cat", "cats"), ("bird", "birds"), ("horse", "horses"), ("fox", "foxes"),
        ("wolf", "wolves"), ("mouse", "mice"), ("rabbit", "rabbits"), ("lion", "lions"), ("bear", "bears"),
        ("farmer", "farmers"), ("teacher", "teachers"), ("doctor", "doctors"), ("child", "children"),
        ("man", "men"), ("woman", "women"), ("student", "students"), ("king", "kings"), ("queen", "queens"),
        ("baker", "bakers"), ("sailor", "sailors"), ("pilot", "pilots"), ("artist", "artists"),
        ("friend", "friends"), ("neighbor", "neighbors"), ("house", "houses"), ("tree", "trees"),
        ("river", "rivers"), ("garden", "gardens"), ("box", "boxes"), ("book", "books"), ("car", "cars"),
        ("table", "tables"), ("city", "cities"), ("bridge", "bridges"), ("boat", "boats"), ("stone", "stones"),
        ("window", "windows"), ("door", "doors"), ("hill", "hills"),
    )  # fmt: skip
    intransitive = (
        ("sleeps", "sleep"), ("runs", "run"), ("laughs", "laugh"), ("sings", "sing"), ("waits", "wait"),
        ("smiles", "smile"), ("swims", "swim"), ("falls", "fall"), ("dances", "dance"), ("cries", "cry"),
        ("jumps", "jump"), ("works", "work"), ("rests", "rest"), ("wanders", "wander"), ("arrives", "arrive"),
        ("shines", "shine"),
    )  # fmt: skip
    transitive = (
        ("sees", "see"), ("likes", "like"), ("chases", "chase"), ("finds", "find"), ("follows", "follow"),
        ("helps", "help"), ("watches", "watch"), ("loves", "love"), ("carries", "carry"), ("pushes", "push"),
        ("visits", "visit"), ("paints", "paint"), ("hears", "hear"), ("meets", "meet"), ("catches", "catch"),
        ("feeds", "feed"), ("holds", "hold"), ("admires", "admire"), ("avoids", "avoid"), ("greets", "greet"),
    )  # fmt: skip
    clausal = (("thinks", "think"), ("says", "say"), ("believes", "believe"), ("hopes", "hope"), ("knows", "know"))
    copula = (("is", "are"), ("was", "were"))
    lexicon: dict[str, tuple[str, ...]] = {
        "Det_sg": ("the", "a", "this", "every", "each"),
        "Det_pl": ("the", "some", "these", "those", "many", "few"),
        "Name": ("alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy"),
        "Adj": (
            "big", "small", "old", "young", "happy", "sad", "red", "green", "quiet", "loud", "brave", "clever",
            "tall", "tiny", "gentle", "angry", "bright", "dark", "lazy", "busy", "calm", "proud", "strange",
            "friendly",
        ),
        "Deg": ("very", "quite", "rather", "too"),
        "Adv": (
            "quickly", "slowly", "often", "rarely", "always", "never", "quietly", "happily", "suddenly",
            "sometimes", "again", "today",
        ),
        "P": ("near", "behind", "with", "under", "beside", "above", "without", "inside", "across", "around"),
        "Conj": ("and", "but", "while"),
        "Cc": ("and",),
        "Rel": ("that", "who"),
        "Comp": ("that",),
        "Punct": (".",),
    }  # fmt: skip
    for category, pairs in (("N", nouns), ("IV", intransitive), ("TV", transitive), ("SV", clausal), ("Cop", copula)):
        lexicon[f"{category}_sg"] = tuple(sg for sg, _ in pairs)
        lexicon[f"{category}_pl"] = tuple(pl for _, pl in pairs)
    return lexicon


def _rules() -> tuple[Rule, ...]:
    rules = [
        Rule("ROOT", ("S", "Punct"), 0.85),
        Rule("ROOT", ("S", "Conj", "S", "Punct"), 0.15),
        Rule("S", ("NP_sg", "VP_sg"), 0.5),
        Rule("S", ("NP_pl", "VP_pl"), 0.5),
        Rule("NP_sg", ("Det_sg", "N_sg"), 0.42),
        Rule("NP_sg", ("Det_sg", "AdjP", "N_sg"), 0.16),
        Rule("NP_sg", ("Name",), 0.10),
        Rule("NP_sg", ("NP_sg", "PP"), 0.16, recursive=True),
        Rule("NP_sg", ("NP_sg", "RC_sg"), 0.16, recursive=True),
        Rule("NP_pl", ("Det_pl", "N_pl"), 0.32),
        Rule("NP_pl", ("Det_pl", "AdjP", "N_pl"), 0.12),
        Rule("NP_pl", ("N_pl",), 0.08),
        Rule("NP_pl", ("AdjP", "N_pl"), 0.04),
        Rule("NP_pl", ("NP_pl", "PP"), 0.16, recursive=True),
        Rule("NP_pl", ("NP_pl", "RC_pl"), 0.16, recursive=True),
        Rule("NP_pl", ("NP_sg", "Cc", "NP_sg"), 0.12, recursive=True),
        Rule("PP", ("P", "NP_sg"), 0.5),
        Rule("PP", ("P", "NP_pl"), 0.5),
        Rule("SBAR", ("Comp", "S"), 1.0),
        Rule("AdjP", ("Adj",), 0.75),
        Rule("AdjP", ("Deg", "Adj"), 0.25),
    ]
    for x in NUMBERS:
        rules += [
            Rule(f"RC_{x}", ("Rel", f"VP_{x}"), 0.6),
            Rule(f"RC_{x}", ("Rel", "NP_sg", "TV_sg"), 0.2),
            Rule(f"RC_{x}", ("Rel", "NP_pl", "TV_pl"), 0.2),
            Rule(f"VP_{x}", (f"IV_{x}",), 0.22),
            Rule(f"VP_{x}", (f"IV_{x}", "Adv"), 0.08),
            Rule(f"VP_{x}", (f"TV_{x}", "NP_sg"), 0.15),
            Rule(f"VP_{x}", (f"TV_{x}", "NP_pl"), 0.15),
            Rule(f"VP_{x}", (f"Cop_{x}", "AdjP"), 0.12),
            Rule(f"VP_{x}", (f"Cop_{x}", "PP"), 0.06),
            Rule(f"VP_{x}", (f"VP_{x}", "PP"), 0.08, recursive=True),
            Rule(f"VP_{x}", ("Adv", f"VP_{x}"), 0.06, recursive=True),
            Rule(f"VP_{x}", (f"SV_{x}", "SBAR"), 0.08, recursive=True),
        ]
    return tuple(rules)


def default_grammar(max_recursion: int = 3, max_sentence_words: int = 40) -> Grammar:
    """The grammar of the built-in language (rules and words are fixed in this module)."""
    return Grammar(
        rules=_rules(), lexicon=_lexicon(), max_recursion=max_recursion, max_sentence_words=max_sentence_words
    )


# ----------------------------------------------------------------------------------------------------
# Sampling
# ----------------------------------------------------------------------------------------------------

_BLOCK = 4096  # uniforms drawn from the Generator at a time


class _Sampler:
    """Draws words, phrases and sentences from a grammar with uniforms read in blocks from a Generator."""

    def __init__(self, grammar: Grammar, rng: np.random.Generator) -> None:
        self.grammar = grammar
        self.tables = grammar._tables
        self.rng = rng
        self._buffer: list[float] = []
        self._next = 0
        self._symbol = {symbol: i for i, symbol in enumerate(self.tables.symbols)}

    def uniform(self) -> float:
        if self._next == len(self._buffer):
            self._buffer = self.rng.random(_BLOCK).tolist()
            self._next = 0
        value = self._buffer[self._next]
        self._next += 1
        return value

    def integer(self, n: int) -> int:
        """A uniform integer in [0, n)."""
        return min(int(self.uniform() * n), n - 1)

    def word(self, preterminal: str) -> str:
        p = self._symbol[preterminal] - self.tables.n_nonterminals
        return self.tables.words[p][bisect.bisect_right(self.tables.word_cdf[p], self.uniform())]

    def phrase(
        self,
        symbol: str,
        depth: int = 0,
        tags: list[str] | None = None,
        spans: list[Span] | None = None,
    ) -> list[str]:
        """Words generated from `symbol` with `depth` recursive rules already used above it."""
        words: list[str] = []
        self._expand(self._symbol[symbol], depth, words, tags, spans)
        return words

    def _expand(
        self, symbol: int, depth: int, words: list[str], tags: list[str] | None, spans: list[Span] | None
    ) -> None:
        t = self.tables
        if symbol >= t.n_nonterminals:
            p = symbol - t.n_nonterminals
            words.append(t.words[p][bisect.bisect_right(t.word_cdf[p], self.uniform())])
            if tags is not None:
                tags.append(t.symbols[symbol])
            return
        if depth < self.grammar.max_recursion:
            rule = t.by_lhs[symbol][bisect.bisect_right(t.rule_cdf[symbol], self.uniform())]
        else:
            rule = t.base_rules[symbol][bisect.bisect_right(t.base_cdf[symbol], self.uniform())]
        start = len(words)
        child_depth = depth + t.recursive[rule]
        for child in t.rhs[rule]:
            self._expand(child, child_depth, words, tags, spans)
        if spans is not None:
            spans.append(Span(start, len(words), label_of(t.symbols[symbol])))

    def sentence(self, with_tree: bool = True) -> Sentence:
        """A sentence from the start symbol; over-long ones are drawn again."""
        while True:
            tags: list[str] | None = [] if with_tree else None
            spans: list[Span] | None = [] if with_tree else None
            words = self.phrase(self.grammar.start, 0, tags, spans)
            if len(words) <= self.grammar.max_sentence_words:
                return Sentence(tuple(words), tuple(tags or ()), tuple(spans or ()))


def generate_sentences(
    rng: np.random.Generator, n: int, grammar: Grammar | None = None, with_tree: bool = True
) -> list[Sentence]:
    """`n` sentences drawn from `grammar` (default: `default_grammar()`) with uniforms from `rng`.

    The same Generator state gives the same sentences on every machine. Uniforms are read from `rng` in
    blocks of 4096, so the Generator ends in a state that depends on how many blocks were used.
    `with_tree=False` skips tags and spans (faster); the words are the same either way.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    sampler = _Sampler(grammar or default_grammar(), rng)
    return [sampler.sentence(with_tree) for _ in range(n)]


def generate_sentence(rng: np.random.Generator, grammar: Grammar | None = None) -> Sentence:
    """One sentence with its parse tree (labelled spans). Example: the words of a sentence end with "."."""
    return generate_sentences(rng, 1, grammar)[0]


# ----------------------------------------------------------------------------------------------------
# Records and splits
# ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Record:
    """One item of a split; `id` is unique within the split."""

    id: str


@dataclass(frozen=True)
class Document(Record):
    """Consecutive sentences joined by single spaces."""

    text: str
    n_sentences: int


@dataclass(frozen=True)
class Prompt(Record):
    """The first words of a document (`text`) and the rest of that document (`continuation`)."""

    text: str
    continuation: str


@dataclass(frozen=True)
class MinimalPair(Record):
    """A grammatical and an ungrammatical sentence that differ in the word at `position` only."""

    good: str
    bad: str
    phenomenon: str
    position: int


@dataclass(frozen=True)
class ChoiceItem(Record):
    """A context, candidate continuations (each to be appended after one space) and the correct `label`."""

    context: str
    choices: tuple[str, ...]
    label: int
    phenomenon: str


@dataclass(frozen=True)
class ProbeSpan(Record):
    """Words [start, end) of `sentence` form a constituent generated by non-terminal `label`."""

    sentence: str
    start: int
    end: int
    label: str

    @property
    def text(self) -> str:
        return " ".join(self.sentence.split()[self.start : self.end])


R = TypeVar("R", bound=Record)


def fingerprint_records(name: str, records: Sequence[Record]) -> str:
    """sha256 over a split's name and each record as canonical JSON (sorted keys, no spaces), one per line."""
    digest = hashlib.sha256()
    digest.update(name.encode())
    for record in records:
        digest.update(b"\n")
        digest.update(json.dumps(asdict(record), sort_keys=True, separators=(",", ":")).encode())
    return digest.hexdigest()


@dataclass(frozen=True)
class RecordSplit(Generic[R]):
    """A named, fingerprinted tuple of records with unique ids. The fingerprint is computed from the
    records unless given: only `_read_stored_suite` gives it, for bytes whose split it fingerprinted
    before in this process (hashing 68k records costs about a second)."""

    name: str
    records: tuple[R, ...]
    fingerprint: str = ""

    def __post_init__(self) -> None:
        ids = [record.id for record in self.records]
        if len(set(ids)) != len(ids):
            raise HarnessError(f"split {self.name!r} has duplicate record ids", where=f"split {self.name}")
        if not self.fingerprint:
            object.__setattr__(self, "fingerprint", fingerprint_records(self.name, self.records))

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[R]:
        return iter(self.records)

    def __getitem__(self, index: int) -> R:
        return self.records[index]

    @property
    def ids(self) -> list[str]:
        return [record.id for record in self.records]

    def head(self, n: int) -> RecordSplit[R]:
        return RecordSplit(self.name, self.records[:n])

    def take(self, indices: Sequence[int]) -> RecordSplit[R]:
        """The records at `indices`, in that order."""
        return RecordSplit(self.name, tuple(self.records[i] for i in checked_positions(indices, len(self), self.name)))


SPLITS = ("pretrain", "heldout", "prompts", "minimal_pairs", "multiple_choice", "probe")


@dataclass(frozen=True, eq=False)
class LanguageSuite:
    """The synthetic-language splits built by `language_suite`; `split(name)` looks one up by name."""

    name: str
    seed: int
    grammar: Grammar
    pretrain: RecordSplit[Document]
    heldout: RecordSplit[Document]
    prompts: RecordSplit[Prompt]
    minimal_pairs: RecordSplit[MinimalPair]
    multiple_choice: RecordSplit[ChoiceItem]
    probe: RecordSplit[ProbeSpan]
    description: str

    @property
    def splits(self) -> dict[str, RecordSplit[Any]]:
        return {name: getattr(self, name) for name in SPLITS}

    def split(self, name: str) -> RecordSplit[Any]:
        return named_split(self.name, self.splits, name)

    @property
    def fingerprints(self) -> dict[str, str]:
        return {name: split.fingerprint for name, split in self.splits.items()}


# ----------------------------------------------------------------------------------------------------
# Building the suite
# ----------------------------------------------------------------------------------------------------


def pack_documents(sentences: Sequence[Sentence], max_words: int, prefix: str) -> list[Document]:
    """Consecutive sentences packed greedily into documents of at most `max_words` words, in order."""
    documents: list[Document] = []
    current: list[str] = []
    n_words = 0
    for sentence in sentences:
        if len(sentence) > max_words:
            raise ValueError(f"a sentence of {len(sentence)} words does not fit into {max_words}-word documents")
        if current and n_words + len(sentence) > max_words:
            documents.append(Document(f"{prefix}-{len(documents)}", " ".join(current), len(current)))
            current, n_words = [], 0
        current.append(sentence.text)
        n_words += len(sentence)
    if current:
        documents.append(Document(f"{prefix}-{len(documents)}", " ".join(current), len(current)))
    return documents


class _Builder:
    """Draws the evaluation items; every sentence it returns is absent from the pre-training text."""

    def __init__(self, grammar: Grammar, rng: np.random.Generator, exclude: set[str]) -> None:
        self.grammar = grammar
        self.sampler = _Sampler(grammar, rng)
        self.exclude = exclude
        lexicon = grammar.lexicon
        self.number_dets = {x: tuple(d for d in lexicon[f"Det_{x}"] if d != "the") for x in NUMBERS}
        self.verbs = {x: tuple(w for c in VERB_CATEGORIES for w in lexicon[f"{c}_{x}"]) for x in NUMBERS}

    def fresh_sentence(self, min_words: int = 1) -> Sentence:
        while True:
            sentence = self.sampler.sentence()
            if len(sentence) >= min_words and sentence.text not in self.exclude:
                return sentence

    def other(self, x: str) -> str:
        return "pl" if x == "sg" else "sg"

    def simple_np(self, x: str) -> list[str]:
        return [self.sampler.word(f"Det_{x}"), self.sampler.word(f"N_{x}")]

    def verb_phrase(self, x: str) -> tuple[list[str], int]:
        """A VP of number x (depth-limited) and the index of its agreeing verb (its first verb)."""
        tags: list[str] = []
        words = self.sampler.phrase(f"VP_{x}", self.grammar.max_recursion - 1, tags)
        first_verb = next(i for i, tag in enumerate(tags) if label_of(tag) in VERB_CATEGORIES)
        return words, first_verb

    def subject(self, kind: str, x: str) -> tuple[list[str], str]:
        """A subject NP of the given construction and its number (`x` for all but coordination)."""
        s = self.sampler
        y = self.other(x)
        if kind == "simple":
            return self.simple_np(x), x
        if kind == "pp":
            return [*self.simple_np(x), s.word("P"), *self.simple_np(y)], x
        if kind == "rc":
            if s.uniform() < 0.5:  # object relative: the embedded subject is the attractor
                return [*self.simple_np(x), s.word("Rel"), *self.simple_np(y), s.word(f"TV_{y}")], x
            return [*self.simple_np(x), s.word("Rel"), s.word(f"TV_{x}"), *self.simple_np(y)], x
        if kind == "coordination":
            return [*self.simple_np("sg"), s.word("Cc"), *self.simple_np("sg")], "pl"
        raise ValueError(f"unknown subject kind {kind!r}")

    def minimal_pair(self, phenomenon: str) -> tuple[list[str], int, str]:
        """A good sentence, the position of the word to change and its replacement."""
        s = self.sampler
        x = NUMBERS[s.integer(2)]
        if phenomenon == "agreement_in_relative_clause":
            head = self.simple_np(x)
            relative, verb = self.verb_phrase(x)
            predicate, _ = self.verb_phrase(x)
            words = [*head, s.word("Rel"), *relative, *predicate, "."]
            position = len(head) + 1 + verb
            return words, position, self.grammar.counterparts[words[position]]
        if phenomenon == "determiner_noun":
            det = self.number_dets[x][s.integer(len(self.number_dets[x]))]
            others = self.number_dets[self.other(x)]
            predicate, _ = self.verb_phrase(x)
            words = [det, s.word(f"N_{x}"), *predicate, "."]
            return words, 0, others[s.integer(len(others))]
        kind = {
            "agreement_simple": "simple",
            "agreement_attractor_pp": "pp",
            "agreement_attractor_rc": "rc",
            "agreement_coordination": "coordination",
        }[phenomenon]
        subject, number = self.subject(kind, x)
        predicate, verb = self.verb_phrase(number)
        words = [*subject, *predicate, "."]
        position = len(subject) + verb
        return words, position, self.grammar.counterparts[words[position]]

    def agreement_choice(self) -> tuple[list[str], list[str], int] | None:
        """Context up to the main verb, four next-word verbs, and the gold index."""
        s = self.sampler
        kind = ("pp", "rc", "coordination")[s.integer(3)]
        subject, number = self.subject(kind, NUMBERS[s.integer(2)])
        predicate, verb = self.verb_phrase(number)
        gold = predicate[verb]
        wrong = self.verbs[self.other(number)]
        distractors = [self.grammar.counterparts[gold]]
        while len(distractors) < 3:
            candidate = wrong[s.integer(len(wrong))]
            if candidate not in distractors:
                distractors.append(candidate)
        context = [*subject, *predicate[:verb]]
        label = s.integer(4)
        choices = [*distractors[:label], gold, *distractors[label:]]
        if " ".join([*subject, *predicate, "."]) in self.exclude:
            return None
        return context, choices, label

    def corrupt(self, words: list[str]) -> list[str] | None:
        """One corrupted copy of `words` (the final "." is never touched), or None when no change applies."""
        s = self.sampler
        n = len(words) - 1
        kind = s.integer(3)
        out = list(words)
        i = s.integer(n)
        if kind == 0:  # flip the number of a noun, verb or determiner
            word = words[i]
            if word in self.grammar.counterparts:
                out[i] = self.grammar.counterparts[word]
            else:
                x = next((x for x in NUMBERS if word in self.number_dets[x]), None)
                if x is None:
                    return None
                others = self.number_dets[self.other(x)]
                out[i] = others[s.integer(len(others))]
        elif kind == 1:  # swap two adjacent words
            if n < 2:
                return None
            i = s.integer(n - 1)
            out[i], out[i + 1] = out[i + 1], out[i]
        else:  # a word of another category
            vocabulary = self.grammar.vocabulary
            replacement = vocabulary[s.integer(len(vocabulary))]
            categories = self.grammar.categories
            if replacement == "." or categories[replacement] & categories[words[i]]:
                return None
            out[i] = replacement
        return out if out != words else None

    def completion_choice(self) -> tuple[list[str], list[str], int] | None:
        """Context = a sentence prefix; four completions, the original one at the gold index."""
        s = self.sampler
        sentence = list(self.fresh_sentence(min_words=5).words)
        cut = 1 + s.integer(len(sentence) - 3)  # the completion keeps at least two words and the "."
        context, rest = sentence[:cut], sentence[cut:]
        completions = [" ".join(rest)]
        for _ in range(40):
            corrupted = self.corrupt(rest)
            if corrupted is None:
                continue
            text = " ".join(corrupted)
            if text not in completions and not self.grammar.accepts(context + corrupted):
                completions.append(text)
            if len(completions) == 4:
                break
        else:
            return None
        label = s.integer(4)
        distractors = completions[1:]
        return context, [*distractors[:label], completions[0], *distractors[label:]], label


MINIMAL_PAIR_PHENOMENA = (
    "agreement_simple",
    "agreement_attractor_pp",
    "agreement_attractor_rc",
    "agreement_coordination",
    "agreement_in_relative_clause",
    "determiner_noun",
)
CHOICE_PHENOMENA = ("agreement_across_attractor", "grammatical_completion")

_STREAMS = ("pretrain", "heldout", "prompts", "minimal_pairs", "multiple_choice")


#: bump when generation changes what a seed produces (invalidates the on-disk copies of built suites)
LANGUAGE_VERSION = 1
_RECORD_TYPES: dict[str, type[Record]] = {
    "pretrain": Document, "heldout": Document, "prompts": Prompt, "minimal_pairs": MinimalPair,
    "multiple_choice": ChoiceItem, "probe": ProbeSpan,
}  # fmt: skip


def language_suite(
    seed: int = 0,
    n_train_sentences: int = 100_000,
    n_heldout_sentences: int = 4_000,
    n_prompts: int = 64,
    n_pairs_per_phenomenon: int = 100,
    n_multiple_choice: int = 400,
    n_probe_sentences: int = 500,
    max_document_words: int = 128,
    max_recursion: int = 3,
) -> LanguageSuite:
    """Build the synthetic-language suite (splits and sizes in the module docstring), fixed by `seed`.

    Evaluation text never repeats a pre-training sentence (`heldout`, `prompts`, the good sentences of
    `minimal_pairs`, the sentences behind `multiple_choice`), nor a pre-training document.
    A built suite is kept in the output cache (`language/<key>.json` with a sha256 sidecar, keyed by
    the arguments and LANGUAGE_VERSION), so later processes read it instead of generating it again
    (seconds per process); a copy whose checksum does not match is ignored and rebuilt. Fingerprints
    are computed from the records either way.
    """
    arguments = {
        "version": LANGUAGE_VERSION, "seed": seed, "n_train_sentences": n_train_sentences,
        "n_heldout_sentences": n_heldout_sentences, "n_prompts": n_prompts,
        "n_pairs_per_phenomenon": n_pairs_per_phenomenon, "n_multiple_choice": n_multiple_choice,
        "n_probe_sentences": n_probe_sentences, "max_document_words": max_document_words,
        "max_recursion": max_recursion,
    }  # fmt: skip
    stored = _stored_suite_path(arguments)
    if (suite := _read_stored_suite(stored, max_recursion)) is not None:
        return suite
    suite = _build_language_suite(**{k: v for k, v in arguments.items() if k != "version"})
    _write_stored_suite(stored, suite)
    return suite


def language_summary(seed: int = 0) -> tuple[dict[str, str], dict[str, int]]:
    """(fingerprints, sizes) of every split of the default-sized suite for `seed`, read from the small
    summary stored beside the suite (checksummed like it); built and stored when missing."""
    arguments = _default_arguments(seed)
    file = _stored_suite_path(arguments).with_suffix(".summary.json")
    try:
        payload = file.read_bytes()
        if hashlib.sha256(payload).hexdigest() == file.with_suffix(".sha256").read_text().strip():
            raw = json.loads(payload)
            return dict(raw["fingerprints"]), {k: int(v) for k, v in raw["sizes"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass
    suite = language_suite(seed=seed)
    return suite.fingerprints, {name: len(split) for name, split in suite.splits.items()}


def _default_arguments(seed: int) -> dict[str, int]:
    defaults = {
        name: parameter.default
        for name, parameter in inspect.signature(language_suite).parameters.items()
        if name != "seed"
    }
    return {"version": LANGUAGE_VERSION, "seed": seed, **defaults}


def _stored_suite_path(arguments: dict[str, int]) -> Path:
    from harness.cache import default_cache_dir

    key = hashlib.sha256(json.dumps(arguments, sort_keys=True).encode()).hexdigest()[:24]
    return default_cache_dir() / "language" / f"synthlang-{key}.json"


#: sha256 of a stored suite's bytes -> its splits' fingerprints, computed on its first reading in this process
_STORED_FINGERPRINTS: dict[str, dict[str, str]] = {}


def _read_stored_suite(file: Path, max_recursion: int) -> LanguageSuite | None:
    try:
        payload = file.read_bytes()
        expected = file.with_suffix(".sha256").read_text().strip()
    except OSError:
        return None
    if hashlib.sha256(payload).hexdigest() != expected:
        return None
    try:
        raw = json.loads(payload)
        known = _STORED_FINGERPRINTS.get(expected, {})  # the same checked bytes read before: the same records
        splits: dict[str, Any] = {
            name: RecordSplit(
                name,
                tuple(_record(_RECORD_TYPES[name], fields) for fields in raw["splits"][name]),
                known.get(name, ""),
            )
            for name in SPLITS
        }
        _STORED_FINGERPRINTS[expected] = {name: split.fingerprint for name, split in splits.items()}
        return LanguageSuite(
            name=raw["name"], seed=raw["seed"], grammar=default_grammar(max_recursion=max_recursion),
            description=raw["description"], **splits,
        )  # fmt: skip
    except (ValueError, KeyError, TypeError, HarnessError):
        return None


def _record(kind: type[Record], fields: dict[str, Any]) -> Record:
    """A record from its JSON fields (JSON lists back to the tuples the records hold)."""
    values: dict[str, Any] = {key: tuple(v) if isinstance(v, list) else v for key, v in fields.items()}
    return kind(**values)


def _write_stored_suite(file: Path, suite: LanguageSuite) -> None:
    from harness.cache import atomic_write

    payload = json.dumps(
        {
            "name": suite.name,
            "seed": suite.seed,
            "description": suite.description,
            "splits": {name: [asdict(record) for record in suite.split(name)] for name in SPLITS},
        }
    ).encode()
    summary = json.dumps(
        {"fingerprints": suite.fingerprints, "sizes": {name: len(split) for name, split in suite.splits.items()}}
    ).encode()
    summary_file = file.with_suffix(".summary.json")
    try:  # data first, checksum last: a copy without its checksum is never read
        atomic_write(file, payload)
        atomic_write(file.with_suffix(".sha256"), hashlib.sha256(payload).hexdigest().encode())
        atomic_write(summary_file, summary)
        atomic_write(summary_file.with_suffix(".sha256"), hashlib.sha256(summary).hexdigest().encode())
    except OSError:
        pass  # a read-only cache only costs time


def _build_language_suite(
    seed: int,
    n_train_sentences: int,
    n_heldout_sentences: int,
    n_prompts: int,
    n_pairs_per_phenomenon: int,
    n_multiple_choice: int,
    n_probe_sentences: int,
    max_document_words: int,
    max_recursion: int,
) -> LanguageSuite:
    counts = {
        "n_train_sentences": n_train_sentences,
        "n_heldout_sentences": n_heldout_sentences,
        "n_prompts": n_prompts,
        "n_pairs_per_phenomenon": n_pairs_per_phenomenon,
        "n_multiple_choice": n_multiple_choice,
        "n_probe_sentences": n_probe_sentences,
    }
    for key, value in counts.items():
        if value < 1:
            raise HarnessError(f"{key} must be at least 1, got {value}", where="language_suite")
    grammar = default_grammar(max_recursion=max_recursion)
    if max_document_words < grammar.max_sentence_words:
        raise HarnessError(
            f"max_document_words ({max_document_words}) must be at least the longest sentence "
            f"({grammar.max_sentence_words} words)",
            where="language_suite",
        )
    streams = dict(zip(_STREAMS, np.random.SeedSequence(seed).spawn(len(_STREAMS)), strict=True))

    def rng(name: str) -> np.random.Generator:
        return np.random.default_rng(streams[name])

    train_sentences = generate_sentences(rng("pretrain"), n_train_sentences, grammar, with_tree=False)
    pretrain = pack_documents(train_sentences, max_document_words, "pretrain")
    seen = {sentence.text for sentence in train_sentences}

    heldout_builder = _Builder(grammar, rng("heldout"), seen)
    heldout_sentences = [heldout_builder.fresh_sentence() for _ in range(n_heldout_sentences)]
    heldout = pack_documents(heldout_sentences, max_document_words, "heldout")

    prompts = _prompts(_Builder(grammar, rng("prompts"), seen), n_prompts)
    pairs = _minimal_pairs(_Builder(grammar, rng("minimal_pairs"), seen), n_pairs_per_phenomenon)
    choices = _multiple_choice(_Builder(grammar, rng("multiple_choice"), seen), n_multiple_choice)
    probe = [
        ProbeSpan(f"probe-{s}-{span.start}-{span.end}", sentence.text, span.start, span.end, span.label)
        for s, sentence in enumerate(heldout_sentences[:n_probe_sentences])
        for span in _unique_spans(sentence.spans)
        if span.label != label_of(grammar.start)
    ]
    n_words = sum(len(sentence) for sentence in train_sentences)
    return LanguageSuite(
        name="synthlang",
        seed=seed,
        grammar=grammar,
        pretrain=RecordSplit("pretrain", tuple(pretrain)),
        heldout=RecordSplit("heldout", tuple(heldout)),
        prompts=RecordSplit("prompts", tuple(prompts)),
        minimal_pairs=RecordSplit("minimal_pairs", tuple(pairs)),
        multiple_choice=RecordSplit("multiple_choice", tuple(choices)),
        probe=RecordSplit("probe", tuple(probe)),
        description=(
            f"synthetic PCFG language with number agreement, seed {seed}: {n_train_sentences} pre-training "
            f"sentences ({n_words} words), {n_heldout_sentences} held-out sentences, max recursion {max_recursion}"
        ),
    )


def _unique_spans(spans: Sequence[Span]) -> list[Span]:
    """One span per (start, end): the outermost label (spans come children first)."""
    by_range = {(span.start, span.end): span for span in spans}
    return sorted(by_range.values(), key=lambda span: (span.start, -span.end))


def _prompts(builder: _Builder, n: int) -> list[Prompt]:
    prompts: list[Prompt] = []
    while len(prompts) < n:
        sentences = [builder.fresh_sentence() for _ in range(3)]
        words = [word for sentence in sentences for word in sentence.words]
        cut = 4 + builder.sampler.integer(13)  # 4..16 words, always short of the document's end
        if cut < len(words):
            prompts.append(Prompt(f"prompt-{len(prompts)}", " ".join(words[:cut]), " ".join(words[cut:])))
    return prompts


def _minimal_pairs(builder: _Builder, per_phenomenon: int) -> list[MinimalPair]:
    grammar = builder.grammar
    pairs: list[MinimalPair] = []
    for phenomenon in MINIMAL_PAIR_PHENOMENA:
        seen: set[str] = set()
        while len(seen) < per_phenomenon:
            good, position, replacement = builder.minimal_pair(phenomenon)
            bad = [*good[:position], replacement, *good[position + 1 :]]
            text = " ".join(good)
            if len(good) > grammar.max_sentence_words or text in seen or text in builder.exclude:
                continue
            # Correct by construction; the recogniser makes sure of it.
            if not grammar.accepts(good) or grammar.accepts(bad):
                raise AssertionError(f"minimal pair {phenomenon} is not as designed: {text!r} / {' '.join(bad)!r}")
            seen.add(text)
            pairs.append(MinimalPair(f"{phenomenon}-{len(seen) - 1}", text, " ".join(bad), phenomenon, position))
    return pairs


def _multiple_choice(builder: _Builder, n: int) -> list[ChoiceItem]:
    grammar = builder.grammar
    items: list[ChoiceItem] = []
    seen: set[tuple[str, tuple[str, ...]]] = set()
    n_agreement = (n + 1) // 2
    while len(items) < n:
        phenomenon = CHOICE_PHENOMENA[0] if len(items) < n_agreement else CHOICE_PHENOMENA[1]
        made = builder.agreement_choice() if phenomenon == CHOICE_PHENOMENA[0] else builder.completion_choice()
        if made is None:
            continue
        context, choices, label = made
        key = (" ".join(context), tuple(choices))
        if key in seen:
            continue
        if phenomenon == CHOICE_PHENOMENA[0]:
            ok = grammar.is_prefix([*context, choices[label]]) and not any(
                grammar.is_prefix([*context, choice]) for i, choice in enumerate(choices) if i != label
            )
            if not ok:
                raise AssertionError(f"agreement item is not as designed: {key}")
        seen.add(key)
        items.append(ChoiceItem(f"mc-{len(items)}", key[0], key[1], label, phenomenon))
    return items


# ----------------------------------------------------------------------------------------------------
# Tokenizer
# ----------------------------------------------------------------------------------------------------


def build_tokenizer(grammar: Grammar | None = None) -> PreTrainedTokenizerFast:
    """A word-level tokenizer for the language: one token per word, split on whitespace.

    Vocabulary: <pad> = 0, <unk> = 1, <eos> = 2, then the grammar's words in sorted order. <eos> is also
    the BOS token (as in GPT-2): put it between documents when pre-training; lm-eval conditions the first
    token of a document on it. No post-processor adds special tokens (add_special_tokens changes nothing),
    and decoding joins tokens with single spaces, so decode(encode(text)) == text for every text of the
    language. Save it with `save_pretrained(folder)`; `AutoTokenizer.from_pretrained(folder)` reloads it
    offline.
    """
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = (grammar or default_grammar()).vocabulary
    vocab = {token: i for i, token in enumerate((*SPECIAL_TOKENS, *words))}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK_TOKEN))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=backend,
        bos_token=EOS_TOKEN,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        unk_token=UNK_TOKEN,
        clean_up_tokenization_spaces=False,
    )
