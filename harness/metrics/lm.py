"""Language-model metrics: next-token distribution divergences, divergent token metrics, perplexity.

Conventions (shared by every function here):
- Logits are arrays of shape (..., V): the last axis is the vocabulary, every other axis is a position
  (for example (n_prompts, N, V)). Distributions are softmax(logits) along the last axis, computed in
  float64 from a stable log-softmax (the row maximum is subtracted before exponentiating).
- Logits must not contain NaN or +inf. -inf is allowed (a token the model rules out) as long as every
  position keeps at least one finite logit; a probability of 0 contributes 0 to every sum (0 log 0 = 0).
- Logarithms are natural: divergences and negative log-likelihoods are in nats.
- In comparisons of two models, "reference" (p, `ref_*`) is the model being compressed and "candidate"
  (q, `cand_*`) is its compressed variant. KL is KL(reference || candidate).
- Argmax ties go to the lowest token index, as numpy's argmax does.
- Empty inputs raise ValueError.

Divergent token metrics (after the Divergent Token Metrics paper), "teacher-forced" variant: the reference
greedily continues each prompt for N tokens (`ref_tokens`, shape (n_prompts, N)); the candidate is fed
prompt + that continuation in one forward pass and `cand_pred[i, n]` is its argmax prediction for the
token at continuation position n. The divergent positions are D_i = {n : cand_pred[i, n] != ref_tokens[i, n]}.
Because the candidate always sees the reference's tokens, positions after the first divergence are still
scored (a free-running candidate would have gone elsewhere); this is what "teacher-forced" names.
- FDT_i (first divergent token) = min D_i, or N_i when D_i is empty: higher is better.
- SDT_i (share of divergent tokens) = |D_i| / N_i: lower is better.
- N_i is N unless a `valid` mask says the reference continuation of prompt i is shorter (for example the
  reference emitted end-of-text and stopped): `valid[i, n]` is True for the first N_i positions and False
  after them, and positions marked False are ignored. A prompt with N_i = 0 is an error.
FDTM and SDTM are the mean (and, for FDTM, the median) of these per-prompt values over prompts.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

from harness.metrics import MetricInfo

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
BoolArray = NDArray[np.bool_]

LN2 = float(np.log(2.0))

FDTM_MEAN = MetricInfo(
    "fdtm_mean",
    True,
    "first divergent token, teacher-forced: mean over prompts of the first continuation position where the "
    "candidate's argmax differs from the reference's greedy token (N when none), in tokens",
)
FDTM_MEDIAN = MetricInfo(
    "fdtm_median", True, "first divergent token, teacher-forced: median over prompts (N when no divergence), in tokens"
)
SDTM = MetricInfo(
    "sdtm",
    False,
    "share of divergent tokens, teacher-forced: mean over prompts of |{n : candidate argmax != reference greedy "
    "token n}| / N, in [0, 1]",
)
JS_MEAN = MetricInfo(
    "js_mean",
    False,
    "Jensen-Shannon divergence between reference and candidate next-token distributions, natural log, "
    "mean over positions, in [0, ln 2]",
)
KL_MEAN = MetricInfo(
    "kl_mean",
    False,
    "KL(reference || candidate) between next-token distributions, natural log (nats), mean over positions",
)
TOP1_AGREEMENT = MetricInfo(
    "top1_agreement",
    True,
    "share of positions where the candidate's argmax token equals the reference's (ties: lowest index)",
)
# Diagnostic: a property of the reference, the same for every candidate compared with it; ranking
# candidates by it would rank their references.
PPL_REFERENCE = MetricInfo(
    "ppl_reference",
    False,
    "perplexity of the reference on the held-out corpus: exp(total NLL / total tokens)",
    diagnostic=True,
)
PPL_CANDIDATE = MetricInfo(
    "ppl_candidate", False, "perplexity of the candidate on the held-out corpus: exp(total NLL / total tokens)"
)
PPL_RATIO = MetricInfo(
    "ppl_ratio", False, "candidate perplexity / reference perplexity on the same held-out tokens; 1 = unchanged"
)
MC_FLIPS = MetricInfo(
    "mc_flips",
    False,
    "share of multiple-choice items whose correctness differs between reference and candidate (both directions)",
)
LOSS_NATS = MetricInfo(
    "loss_nats", False, "held-out mean per-token cross-entropy, natural log (nats): total NLL / total tokens"
)
PERPLEXITY = MetricInfo("perplexity", False, "held-out perplexity: exp(total NLL / total tokens) = exp(loss_nats)")
BITS_PER_BYTE = MetricInfo(
    "bits_per_byte",
    False,
    "held-out bits per UTF-8 byte: total NLL (nats) / total bytes of the documents / ln 2; independent of the "
    "tokenizer, so models with different vocabularies compare (lm-eval's bits_per_byte)",
)
# Diagnostics: sharpness describes where a checkpoint sits in the loss landscape; whether flatter is
# better is the question the correlation page asks, so the flatness metrics are shown, never ranked.
HESSIAN_TRACE = MetricInfo(
    "hessian_trace",
    False,
    "trace of the Hessian of the held-out loss per token, estimated by the Fisher trace: sum over documents of "
    "||grad log p(y)||^2 with y sampled from the model, / tokens (Liu et al. 2023); lower = flatter",
    diagnostic=True,
)
HESSIAN_TRACE_HUTCHINSON = MetricInfo(
    "hessian_trace_hutchinson",
    False,
    "Hutchinson estimate of the trace of the Hessian of the mean held-out loss: mean of v^T H v, v Rademacher",
    diagnostic=True,
)
NOISE_LOSS_INCREASE = MetricInfo(
    "noise_loss_increase",
    False,
    "expected held-out loss increase (nats) under relative Gaussian weight noise theta + s * |theta| * eps; "
    "qualified by the scale s",
    diagnostic=True,
)
PROBE_ACCURACY = MetricInfo(
    "probe_accuracy",
    True,
    "accuracy of a linear probe (logistic regression on frozen mean-pooled span representations) predicting which "
    "grammar non-terminal generated a span; held-out sentences, mean over seeds",
)
CHOICE_ACCURACY = MetricInfo(
    "choice_accuracy", True, "share of items whose correct choice has the highest summed log-likelihood"
)
LM_EVAL = MetricInfo(
    "lm_eval",
    True,
    "a metric reported by lm-evaluation-harness (qualified by its name, e.g. lm_eval.acc); its direction is "
    "the one lm-eval declares for the task",
)


def check_logits(logits: ArrayLike, name: str = "logits") -> FloatArray:
    """Validate logits of shape (..., V) and return them as float64; raises ValueError with what is wrong."""
    array = np.asarray(logits, dtype=np.float64)
    if array.ndim < 1 or array.shape[-1] == 0:
        raise ValueError(f"{name} must have shape (..., V) with V >= 1, got {array.shape}")
    if array.size == 0:
        raise ValueError(f"{name} is empty: shape {array.shape}")
    if np.isnan(array).any() or np.isposinf(array).any():
        raise ValueError(f"{name} contain NaN or +inf")
    if not np.isfinite(array).any(axis=-1).all():
        raise ValueError(f"every position of {name} needs at least one finite logit (a row is all -inf)")
    return array


def check_pair(p_logits: ArrayLike, q_logits: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Validate two logit arrays of the same shape (..., V)."""
    p = check_logits(p_logits, "p_logits")
    q = check_logits(q_logits, "q_logits")
    if p.shape != q.shape:
        raise ValueError(f"p_logits and q_logits must have the same shape, got {p.shape} and {q.shape}")
    return p, q


def log_softmax(logits: ArrayLike) -> FloatArray:
    """log softmax along the last axis, float64, stable (the row maximum is subtracted first).

    Example: log_softmax([0, 0]) -> [-ln 2, -ln 2]. A -inf logit stays -inf.
    """
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    out: FloatArray = z - np.log(np.exp(z).sum(axis=-1, keepdims=True))
    return out


def softmax(logits: ArrayLike) -> FloatArray:
    """softmax along the last axis, float64, stable. Example: softmax([0, 0]) -> [0.5, 0.5]."""
    out: FloatArray = np.exp(log_softmax(logits))
    return out


def _expected_log_ratio(log_a: FloatArray, log_b: FloatArray) -> FloatArray:
    """sum_v a_v (log a_v - log b_v) along the last axis, with terms where a_v = 0 set to 0."""
    a = np.exp(log_a)
    with np.errstate(invalid="ignore"):  # -inf - -inf where both are 0; masked out below
        terms = np.where(a > 0.0, a * (log_a - log_b), 0.0)
    out: FloatArray = terms.sum(axis=-1)
    return out


def kl_divergence(p_logits: ArrayLike, q_logits: ArrayLike) -> FloatArray:
    """KL(p || q) = sum_v p_v (log p_v - log q_v) per position, natural log, p = softmax(p_logits).

    p is the reference, q the candidate. Shapes (..., V) -> (...). Computed from log-softmax so extreme
    logits (1e4) stay exact; terms with p_v = 0 are 0; it is +inf when q_v = 0 (a -inf logit) where
    p_v > 0. Tiny negative values from rounding are clipped at 0.
    Example: kl_divergence([[0, 0]], [[0, 0]]) -> [0.0].
    """
    p, q = check_pair(p_logits, q_logits)
    kl = _expected_log_ratio(log_softmax(p), log_softmax(q))
    out: FloatArray = np.maximum(kl, 0.0)
    return out


def js_divergence(p_logits: ArrayLike, q_logits: ArrayLike) -> FloatArray:
    """Jensen-Shannon divergence per position: (KL(p || m) + KL(q || m)) / 2 with m = (p + q) / 2.

    Natural log, so values lie in [0, ln 2]; symmetric in p and q; exactly 0 for identical inputs. Shapes
    (..., V) -> (...). log m is computed as logaddexp(log p, log q) - ln 2, so zeros (0 log 0 = 0) and
    extreme logits (1e4) are safe. Rounding can push a value a few ulps outside [0, ln 2]; it is clipped.
    This is the square of scipy.spatial.distance.jensenshannon (which returns the JS distance).
    Example: js_divergence([[1e4, 0]], [[0, 1e4]]) -> [ln 2].
    """
    p, q = check_pair(p_logits, q_logits)
    log_p = log_softmax(p)
    log_q = log_softmax(q)
    # Where p_v = q_v, m_v is p_v exactly: identical inputs give exactly 0, not a rounding residue.
    log_m = np.where(log_p == log_q, log_p, np.logaddexp(log_p, log_q) - LN2)
    js = 0.5 * (_expected_log_ratio(log_p, log_m) + _expected_log_ratio(log_q, log_m))
    out: FloatArray = np.clip(js, 0.0, LN2)
    return out


def top1_agreement(ref_logits: ArrayLike, cand_logits: ArrayLike) -> float:
    """Share of positions where argmax(ref) == argmax(cand), ties going to the lowest index.

    Shapes (..., V); every position counts once. Example: ([[1, 0], [0, 1]], [[1, 0], [1, 0]]) -> 0.5.
    """
    ref, cand = check_pair(ref_logits, cand_logits)
    return float((ref.argmax(axis=-1) == cand.argmax(axis=-1)).mean())


def token_nll(logits: ArrayLike, targets: ArrayLike) -> FloatArray:
    """Negative log-likelihood -log softmax(logits)[target] per token, in nats.

    `logits` (..., V) and integer `targets` (...) in [0, V); the output has the shape of `targets`.
    Callers shift for next-token prediction themselves (logits[:-1] predict tokens[1:]).
    Example: token_nll([[0, 0]], [1]) -> [ln 2].
    """
    z = check_logits(logits)
    target = np.asarray(targets)
    if target.shape != z.shape[:-1]:
        raise ValueError(f"targets must have shape {z.shape[:-1]} (logits without the last axis), got {target.shape}")
    if not np.issubdtype(target.dtype, np.integer):
        raise ValueError(f"targets must be integer token ids, got dtype {target.dtype}")
    if target.min() < 0 or target.max() >= z.shape[-1]:
        raise ValueError(f"targets must lie in [0, {z.shape[-1]}), got [{target.min()}, {target.max()}]")
    picked = np.take_along_axis(log_softmax(z), target[..., None].astype(np.int64), axis=-1)[..., 0]
    out: FloatArray = -picked
    return out


def perplexity(nll_sum_nats: ArrayLike, n_tokens: ArrayLike) -> float:
    """exp(total NLL / total tokens): the corpus perplexity from summed NLLs (nats) and token counts.

    Both arguments may be scalars or per-document arrays; they are summed first, so documents are
    weighted by their token counts (as lm-eval's word_perplexity aggregates). Raises ValueError when
    there are no tokens or the NLL is negative or not finite (a log-likelihood passed by mistake).
    Example: perplexity(2 * ln 2, 2) -> 2.0.
    """
    nll = np.asarray(nll_sum_nats, dtype=np.float64)
    count = np.asarray(n_tokens, dtype=np.float64)
    if nll.size == 0 or count.size == 0:
        raise ValueError("perplexity needs at least one NLL sum and one token count")
    total_nll = float(nll.sum())
    total_tokens = float(count.sum())
    if not np.isfinite(total_nll) or total_nll < 0.0:
        raise ValueError(f"the total NLL must be finite and >= 0 nats, got {total_nll} (pass -loglikelihood)")
    if total_tokens <= 0.0 or (count < 0).any():
        raise ValueError(f"token counts must be >= 0 with a positive total, got total {total_tokens}")
    return float(np.exp(total_nll / total_tokens))


def check_predictions(
    cand_pred: ArrayLike, ref_tokens: ArrayLike, valid: ArrayLike | None = None
) -> tuple[IntArray, IntArray, BoolArray]:
    """Validate (n_prompts, N) candidate predictions, reference tokens and an optional prefix mask."""
    pred = np.asarray(cand_pred)
    ref = np.asarray(ref_tokens)
    if pred.ndim != 2 or pred.shape != ref.shape:
        raise ValueError(
            f"cand_pred and ref_tokens must both have shape (n_prompts, N), got {pred.shape} and {ref.shape}"
        )
    if pred.size == 0:
        raise ValueError(f"no tokens to compare: shape {pred.shape}")
    for name, array in (("cand_pred", pred), ("ref_tokens", ref)):
        if not np.issubdtype(array.dtype, np.integer):
            raise ValueError(f"{name} must hold integer token ids, got dtype {array.dtype}")
    if valid is None:
        mask = np.ones(pred.shape, dtype=bool)
    else:
        mask = np.asarray(valid)
        if mask.shape != pred.shape or mask.dtype != np.bool_:
            raise ValueError(f"valid must be a boolean array of shape {pred.shape}, got {mask.dtype} {mask.shape}")
        if (mask[:, 1:] & ~mask[:, :-1]).any():
            raise ValueError("valid must be True for the first N_i positions of each row and False after them")
        if not mask[:, 0].all():
            raise ValueError("every prompt needs at least one valid continuation position (valid[:, 0] is False)")
    return pred.astype(np.int64), ref.astype(np.int64), mask


def divergent_positions(cand_pred: ArrayLike, ref_tokens: ArrayLike, valid: ArrayLike | None = None) -> BoolArray:
    """Boolean (n_prompts, N): True where the candidate's argmax differs from the reference token (D_i).

    Positions outside `valid` are False. Example: ([[1, 2, 3]], [[1, 0, 3]]) -> [[False, True, False]].
    """
    pred, ref, mask = check_predictions(cand_pred, ref_tokens, valid)
    out: BoolArray = (pred != ref) & mask
    return out


def first_divergent_token(cand_pred: ArrayLike, ref_tokens: ArrayLike, valid: ArrayLike | None = None) -> IntArray:
    """FDT per prompt: the first position n with cand_pred[i, n] != ref_tokens[i, n], or N_i when none.

    Teacher-forced (see the module docstring). Higher is better; values lie in [0, N_i].
    Example: ([[1, 2, 3], [1, 2, 3]], [[1, 2, 3], [0, 2, 3]]) -> [3, 0].
    """
    divergent = divergent_positions(cand_pred, ref_tokens, valid)
    n_valid = _valid_lengths(divergent.shape, valid)
    any_divergent = divergent.any(axis=1)
    out: IntArray = np.where(any_divergent, divergent.argmax(axis=1), n_valid).astype(np.int64)
    return out


def share_divergent_tokens(cand_pred: ArrayLike, ref_tokens: ArrayLike, valid: ArrayLike | None = None) -> FloatArray:
    """SDT per prompt: |D_i| / N_i, the share of continuation positions where the candidate diverges.

    Teacher-forced (see the module docstring). Lower is better; values lie in [0, 1].
    Example: ([[1, 2, 3, 4]], [[0, 2, 0, 4]]) -> [0.5].
    """
    divergent = divergent_positions(cand_pred, ref_tokens, valid)
    n_valid = _valid_lengths(divergent.shape, valid)
    out: FloatArray = divergent.sum(axis=1) / n_valid
    return out


def _valid_lengths(shape: tuple[int, ...], valid: ArrayLike | None) -> FloatArray:
    if valid is None:
        return np.full(shape[0], float(shape[1]))
    out: FloatArray = np.asarray(valid).sum(axis=1).astype(np.float64)
    return out


def divergent_token_summary(
    cand_pred: ArrayLike, ref_tokens: ArrayLike, valid: ArrayLike | None = None
) -> dict[str, float]:
    """FDTM and SDTM over prompts: {"fdtm_mean", "fdtm_median", "sdtm"} (teacher-forced).

    fdtm_mean / fdtm_median are the mean / median of the per-prompt FDT (N_i when no divergence, so
    a model compared with itself gets N); sdtm is the mean per-prompt SDT (0 for a model against itself).
    Example: ([[1, 2], [1, 2]], [[1, 2], [0, 2]]) -> fdtm_mean 1.0, fdtm_median 1.0, sdtm 0.25.
    """
    fdt = first_divergent_token(cand_pred, ref_tokens, valid)
    sdt = share_divergent_tokens(cand_pred, ref_tokens, valid)
    return {
        FDTM_MEAN.name: float(fdt.mean()),
        FDTM_MEDIAN.name: float(np.median(fdt)),
        SDTM.name: float(sdt.mean()),
    }


class ChoiceFlips(NamedTuple):
    """Correctness changes between two models on the same items.

    `share` = (lost + gained) / n_items; `lost` = items the reference got right and the candidate wrong;
    `gained` = items the reference got wrong and the candidate right.
    """

    share: float
    lost: int
    gained: int
    n_items: int


def choice_flips(ref_correct: ArrayLike, cand_correct: ArrayLike) -> ChoiceFlips:
    """Share of items whose correctness differs between reference and candidate, plus both directions.

    Inputs are boolean (or 0/1) arrays of shape (n_items,), item i of both referring to the same question.
    A candidate that fixes as many items as it breaks still flips 2 items: flips are not net accuracy.
    Example: ([1, 1, 0, 0], [1, 0, 1, 0]) -> share 0.5, lost 1, gained 1, n_items 4.
    """
    ref = np.asarray(ref_correct)
    cand = np.asarray(cand_correct)
    if ref.ndim != 1 or ref.shape != cand.shape:
        raise ValueError(f"ref_correct and cand_correct must both have shape (n_items,), got {ref.shape}, {cand.shape}")
    if ref.size == 0:
        raise ValueError("no items: choice_flips needs at least one item")
    for name, array in (("ref_correct", ref), ("cand_correct", cand)):
        if array.dtype != np.bool_ and not np.isin(array, (0, 1)).all():
            raise ValueError(f"{name} must be boolean or 0/1")
    ref_ok = ref.astype(bool)
    cand_ok = cand.astype(bool)
    lost = int((ref_ok & ~cand_ok).sum())
    gained = int((~ref_ok & cand_ok).sum())
    return ChoiceFlips(share=(lost + gained) / ref.size, lost=lost, gained=gained, n_items=int(ref.size))
