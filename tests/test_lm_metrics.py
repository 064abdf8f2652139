"""Language-model metrics against independent implementations (scipy, torch) and constructed cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.spatial.distance import jensenshannon
from scipy.special import softmax as scipy_softmax
from scipy.stats import entropy

from harness.metrics import lm

LN2 = np.log(2.0)
SHAPES = [(7,), (5, 3), (4, 6, 11), (2, 3, 4, 50)]


def random_logits(seed: int, shape: tuple[int, ...], scale: float) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=shape) * scale, rng.normal(size=shape) * scale


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("scale", [0.1, 1.0, 5.0, 30.0])  # 30: near one-hot distributions
def test_js_matches_scipy(seed: int, shape: tuple[int, ...], scale: float) -> None:
    p_logits, q_logits = random_logits(seed, shape, scale)
    ours = lm.js_divergence(p_logits, q_logits)
    # scipy returns the JS *distance* (the square root), natural log by default.
    theirs = jensenshannon(scipy_softmax(p_logits, axis=-1), scipy_softmax(q_logits, axis=-1), axis=-1) ** 2
    assert ours.shape == shape[:-1]
    np.testing.assert_allclose(ours, theirs, rtol=1e-7, atol=1e-12)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("scale", [0.1, 1.0, 5.0])
def test_kl_matches_scipy(seed: int, shape: tuple[int, ...], scale: float) -> None:
    p_logits, q_logits = random_logits(seed, shape, scale)
    ours = lm.kl_divergence(p_logits, q_logits)
    theirs = entropy(scipy_softmax(p_logits, axis=-1), scipy_softmax(q_logits, axis=-1), axis=-1)
    np.testing.assert_allclose(ours, theirs, rtol=1e-8, atol=1e-13)


def test_extreme_logits_stay_exact() -> None:
    p = np.array([[1e4, 0.0, 0.0], [1e4, 0.0, -1e4], [0.0, 0.0, 0.0]])
    q = np.array([[0.0, 1e4, 0.0], [1e4, 0.0, -1e4], [-1e4, 1e4, 1e4]])
    js = lm.js_divergence(p, q)
    theirs = jensenshannon(scipy_softmax(p, axis=-1), scipy_softmax(q, axis=-1), axis=-1) ** 2
    np.testing.assert_allclose(js, theirs, atol=1e-12)
    assert js[0] == pytest.approx(LN2) and js[1] == 0.0
    # KL stays finite where scipy's probabilities underflow to 0: it is exactly the logit gap, 1e4 nats.
    assert lm.kl_divergence(p[:1], q[:1])[0] == pytest.approx(1e4)
    assert np.isfinite(lm.kl_divergence(p, q)).all()


def test_minus_infinity_logits_are_zero_probabilities() -> None:
    p = np.array([[0.0, 1.0, -np.inf]])
    q = np.array([[-np.inf, 1.0, 0.5]])
    pp, qq = scipy_softmax(p, axis=-1), scipy_softmax(q, axis=-1)
    assert lm.js_divergence(p, q)[0] == pytest.approx(jensenshannon(pp[0], qq[0]) ** 2, rel=1e-12)
    assert lm.kl_divergence(p, q)[0] == np.inf  # q rules out a token that p allows
    assert lm.kl_divergence(q[:, [1, 2]], q[:, [1, 2]])[0] == 0.0
    with pytest.raises(ValueError, match="all -inf"):
        lm.js_divergence(np.full((1, 3), -np.inf), p)
    with pytest.raises(ValueError, match="NaN"):
        lm.kl_divergence(np.array([[np.nan, 0.0]]), np.zeros((1, 2)))


@pytest.mark.parametrize("shape", SHAPES)
def test_identical_inputs_give_zero(shape: tuple[int, ...]) -> None:
    logits, _ = random_logits(0, shape, 8.0)
    assert np.abs(lm.js_divergence(logits, logits)).max() < 1e-15
    assert np.abs(lm.kl_divergence(logits, logits)).max() < 1e-15
    assert lm.top1_agreement(logits, logits) == 1.0
    # Shifting all logits of a position by a constant does not change the distribution.
    assert np.abs(lm.js_divergence(logits, logits + 3.0)).max() < 1e-12


def test_js_bounds_and_symmetry_on_random_inputs() -> None:
    p, q = random_logits(7, (200, 9), 20.0)
    js = lm.js_divergence(p, q)
    assert (js >= 0).all() and (js <= LN2).all()
    np.testing.assert_array_equal(js, lm.js_divergence(q, p))


finite_logits = st.floats(min_value=-1e4, max_value=1e4, allow_nan=False, allow_infinity=False)


@settings(max_examples=200, deadline=None)
@given(
    st.integers(min_value=1, max_value=6).flatmap(
        lambda v: st.tuples(
            arrays(np.float64, (3, v), elements=finite_logits), arrays(np.float64, (3, v), elements=finite_logits)
        )
    )
)
def test_js_is_bounded_symmetric_and_finite(pair: tuple[np.ndarray, np.ndarray]) -> None:
    p, q = pair
    js = lm.js_divergence(p, q)
    assert np.isfinite(js).all()
    assert (js >= 0.0).all() and (js <= LN2).all()
    np.testing.assert_allclose(js, lm.js_divergence(q, p), atol=1e-15)
    assert (lm.kl_divergence(p, q) >= 0.0).all()


def test_shape_errors() -> None:
    with pytest.raises(ValueError, match="same shape"):
        lm.js_divergence(np.zeros((2, 3)), np.zeros((2, 4)))
    with pytest.raises(ValueError, match="empty"):
        lm.kl_divergence(np.zeros((0, 3)), np.zeros((0, 3)))


def test_top1_agreement_known_values_and_ties() -> None:
    ref = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]])
    cand = np.array([[1.0, 0.0], [1.0, 0.0], [0.2, 0.1]])
    # Third position: the tie in ref goes to index 0, which cand also picks.
    assert lm.top1_agreement(ref, cand) == pytest.approx(2 / 3)


# ---------------------------------------------------------------------------------------------------
# Divergent token metrics
# ---------------------------------------------------------------------------------------------------


def test_no_divergence_gives_n_and_zero() -> None:
    ref = np.arange(12).reshape(3, 4)
    np.testing.assert_array_equal(lm.first_divergent_token(ref, ref), [4, 4, 4])
    np.testing.assert_array_equal(lm.share_divergent_tokens(ref, ref), [0.0, 0.0, 0.0])
    assert lm.divergent_token_summary(ref, ref) == {"fdtm_mean": 4.0, "fdtm_median": 4.0, "sdtm": 0.0}


def test_known_divergences() -> None:
    ref = np.array([[5, 6, 7, 8, 9]] * 4)
    cand = np.array(
        [
            [0, 6, 7, 8, 9],  # diverges at position 0
            [5, 6, 0, 8, 0],  # first at 2, two divergent tokens
            [5, 6, 7, 8, 0],  # only the last
            [1, 1, 1, 1, 1],  # everywhere
        ]
    )
    np.testing.assert_array_equal(lm.first_divergent_token(cand, ref), [0, 2, 4, 0])
    np.testing.assert_allclose(lm.share_divergent_tokens(cand, ref), [0.2, 0.4, 0.2, 1.0])
    assert lm.divergent_positions(cand, ref)[1].tolist() == [False, False, True, False, True]
    summary = lm.divergent_token_summary(cand, ref)
    assert summary == pytest.approx({"fdtm_mean": 1.5, "fdtm_median": 1.0, "sdtm": 0.45})


def test_valid_mask_for_short_continuations() -> None:
    ref = np.array([[1, 2, 3, 0], [1, 2, 3, 4]])
    cand = np.array([[1, 2, 3, 9], [1, 2, 3, 9]])  # prompt 0's reference stopped after 3 tokens
    valid = np.array([[True, True, True, False], [True, True, True, True]])
    np.testing.assert_array_equal(lm.first_divergent_token(cand, ref, valid), [3, 3])
    np.testing.assert_allclose(lm.share_divergent_tokens(cand, ref, valid), [0.0, 0.25])
    with pytest.raises(ValueError, match="first N_i"):
        lm.first_divergent_token(cand, ref, np.array([[True, False, True, False], [True] * 4]))
    with pytest.raises(ValueError, match="at least one valid"):
        lm.share_divergent_tokens(cand, ref, np.array([[False] * 4, [True] * 4]))
    with pytest.raises(ValueError, match="boolean"):
        lm.share_divergent_tokens(cand, ref, valid.astype(int))


def test_prediction_input_errors() -> None:
    with pytest.raises(ValueError, match="shape"):
        lm.first_divergent_token(np.zeros((2, 3), dtype=int), np.zeros((2, 4), dtype=int))
    with pytest.raises(ValueError, match="integer"):
        lm.first_divergent_token(np.zeros((2, 3)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="no tokens"):
        lm.first_divergent_token(np.zeros((0, 3), dtype=int), np.zeros((0, 3), dtype=int))


class BigramModel:
    """A fixed random next-token model: logits depend on the last two tokens."""

    def __init__(self, vocab: int, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.a = rng.normal(size=(vocab, vocab)) * 3
        self.b = rng.normal(size=(vocab, vocab))

    def logits(self, tokens: np.ndarray) -> np.ndarray:
        """Next-token logits after each prefix tokens[:t+1], shape (T, V)."""
        previous = np.concatenate([tokens[:1], tokens[:-1]])
        out: np.ndarray = self.a[tokens] + self.b[previous]
        return out


def greedy_then_teacher_forced(
    reference: BigramModel, candidate: BigramModel, prompts: np.ndarray, n: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The protocol: reference greedy continuation; candidate and reference scored on prompt + continuation."""
    ref_tokens, cand_pred, ref_logits, cand_logits = [], [], [], []
    for prompt in prompts:
        tokens = list(prompt)
        for _ in range(n):
            tokens.append(int(reference.logits(np.array(tokens))[-1].argmax()))
        sequence = np.array(tokens)
        positions = slice(len(prompt) - 1, len(sequence) - 1)  # logits that predict the continuation
        ref_tokens.append(sequence[len(prompt) :])
        cand_logits.append(candidate.logits(sequence)[positions])
        ref_logits.append(reference.logits(sequence)[positions])
        cand_pred.append(cand_logits[-1].argmax(axis=-1))
    return np.array(cand_pred), np.array(ref_tokens), np.array(ref_logits), np.array(cand_logits)


def test_model_against_itself() -> None:
    model = BigramModel(30, seed=1)
    prompts = np.random.default_rng(2).integers(0, 30, size=(8, 5))
    cand_pred, ref_tokens, ref_logits, cand_logits = greedy_then_teacher_forced(model, model, prompts, 16)
    assert lm.divergent_token_summary(cand_pred, ref_tokens) == {"fdtm_mean": 16.0, "fdtm_median": 16.0, "sdtm": 0.0}
    assert lm.js_divergence(ref_logits, cand_logits).max() == 0.0
    assert lm.kl_divergence(ref_logits, cand_logits).max() == 0.0
    assert lm.top1_agreement(ref_logits, cand_logits) == 1.0


def test_perturbed_model_diverges() -> None:
    reference = BigramModel(30, seed=1)
    candidate = BigramModel(30, seed=1)
    candidate.a = candidate.a + np.random.default_rng(3).normal(size=candidate.a.shape) * 2.0
    prompts = np.random.default_rng(2).integers(0, 30, size=(8, 5))
    cand_pred, ref_tokens, ref_logits, cand_logits = greedy_then_teacher_forced(reference, candidate, prompts, 16)
    summary = lm.divergent_token_summary(cand_pred, ref_tokens)
    assert summary["fdtm_mean"] < 16.0 and summary["sdtm"] > 0.0
    # SDT and top-1 agreement count the same positions: the candidate's argmax vs the reference's greedy token.
    assert 1.0 - summary["sdtm"] == pytest.approx(lm.top1_agreement(ref_logits, cand_logits))


# ---------------------------------------------------------------------------------------------------
# Likelihood metrics
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(3))
def test_token_nll_and_perplexity_match_torch(seed: int) -> None:
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(3, 17, 40)) * 4
    targets = rng.integers(0, 40, size=(3, 17))
    theirs = torch.nn.functional.cross_entropy(
        torch.as_tensor(logits).reshape(-1, 40), torch.as_tensor(targets).reshape(-1), reduction="none"
    ).reshape(3, 17)
    nll = lm.token_nll(logits, targets)
    np.testing.assert_allclose(nll, theirs.numpy(), rtol=1e-12)
    mean = torch.nn.functional.cross_entropy(
        torch.as_tensor(logits).reshape(-1, 40), torch.as_tensor(targets).reshape(-1)
    )
    assert lm.perplexity(nll.sum(), nll.size) == pytest.approx(float(torch.exp(mean)), rel=1e-12)
    # Per-document sums and counts aggregate the same way as one total.
    assert lm.perplexity(nll.sum(axis=1), [17, 17, 17]) == pytest.approx(lm.perplexity(nll.sum(), 51), rel=1e-12)


def test_likelihood_known_values_and_errors() -> None:
    assert lm.token_nll(np.array([[0.0, 0.0]]), np.array([1]))[0] == pytest.approx(LN2)
    assert lm.perplexity(2 * LN2, 2) == pytest.approx(2.0)
    assert np.isfinite(lm.token_nll(np.array([[1e4, -1e4]]), np.array([1]))).all()
    with pytest.raises(ValueError, match=">= 0"):
        lm.perplexity(-3.0, 2)  # a log-likelihood passed by mistake
    with pytest.raises(ValueError, match="positive total"):
        lm.perplexity(1.0, 0)
    with pytest.raises(ValueError, match="lie in"):
        lm.token_nll(np.zeros((2, 3)), np.array([0, 3]))
    with pytest.raises(ValueError, match="shape"):
        lm.token_nll(np.zeros((2, 3)), np.array([0, 1, 2]))


def test_choice_flips() -> None:
    flips = lm.choice_flips(np.array([1, 1, 0, 0]), np.array([1, 0, 1, 0]))
    assert flips == lm.ChoiceFlips(share=0.5, lost=1, gained=1, n_items=4)
    assert lm.choice_flips([True, False], [True, False]).share == 0.0
    with pytest.raises(ValueError, match="0/1"):
        lm.choice_flips([2, 1], [1, 1])
    with pytest.raises(ValueError, match="no items"):
        lm.choice_flips([], [])


def test_metric_infos_follow_the_registry_naming() -> None:
    names = {
        "fdtm_mean": True,
        "fdtm_median": True,
        "sdtm": False,
        "js_mean": False,
        "kl_mean": False,
        "top1_agreement": True,
        "ppl_reference": False,
        "ppl_candidate": False,
        "ppl_ratio": False,
        "mc_flips": False,
        "loss_nats": False,
        "perplexity": False,
    }
    for name, higher in names.items():
        info = getattr(lm, name.upper())
        assert info.name == name and info.higher_is_better is higher and info.convention
