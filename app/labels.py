"""Words for what the app plots: axis titles with units and direction, and the colour palette.

A chart never shows a bare metric key: `axis_title("flatness/hessian_trace")` is "Flatness: Hessian
trace (lower = flatter)" and `axis_title("lm_loss/loss_nats")` is "Held-out loss, nats (lower is
better)". Unknown (submitted) metric names fall back to the name itself, with the direction when it is
known. Titles are plain text: whatever of them came from a submission is escaped by `chart_text`
where a chart uses them.

Groups (families, training runs, methods) get colours from a qualitative palette (Okabe & Ito's
colour-blind-safe set, then Tableau 10), never shades of one hue.
"""

from __future__ import annotations

from typing import Any

#: metric base name -> (words, unit or ""); qualified names ("auroc.energy.near") use the base
METRIC_WORDS: dict[str, tuple[str, str]] = {
    "accuracy": ("accuracy", "share"),
    "ece": ("expected calibration error (ECE)", ""),
    "ece_em": ("ECE, equal-mass bins", ""),
    "ece_ts": ("ECE after temperature scaling", ""),
    "ece_sq_debiased": ("debiased squared ECE", ""),
    "ece_noise_floor": ("ECE noise floor", ""),
    "ece_calibrated_p": ("p-value of 'calibrated'", ""),
    "mce": ("maximum calibration error", ""),
    "classwise_ece": ("class-wise ECE", ""),
    "brier": ("Brier score", ""),
    "nll": ("negative log-likelihood", "nats"),
    "nll_ts": ("NLL after temperature scaling", "nats"),
    "aurc": ("area under the risk-coverage curve", ""),
    "temperature": ("fitted temperature", ""),
    "auroc": ("AUROC", ""),
    "aupr_in": ("AUPR-In", ""),
    "aupr_out": ("AUPR-Out", ""),
    "fpr95": ("FPR@95TPR", "share of OOD accepted"),
    "balanced_accuracy": ("balanced accuracy", "share"),
    "many_shot_accuracy": ("many-shot accuracy", "share"),
    "medium_shot_accuracy": ("medium-shot accuracy", "share"),
    "few_shot_accuracy": ("few-shot accuracy", "share"),
    "worst_class_accuracy": ("worst-class accuracy", "share"),
    "fdtm_mean": ("first divergent token, mean", "tokens"),
    "fdtm_median": ("first divergent token, median", "tokens"),
    "sdtm": ("share of divergent tokens (SDTM)", "share"),
    "js_mean": ("Jensen-Shannon divergence, mean", "nats"),
    "kl_mean": ("KL(reference || candidate), mean", "nats"),
    "top1_agreement": ("top-1 agreement with the reference", "share"),
    "ppl_reference": ("reference perplexity", ""),
    "ppl_candidate": ("candidate perplexity", ""),
    "ppl_ratio": ("perplexity ratio (candidate / reference)", ""),
    "mc_flips": ("multiple-choice flips", "share"),
    "loss_nats": ("held-out loss", "nats"),
    "perplexity": ("held-out perplexity", ""),
    "hessian_trace": ("Hessian trace", ""),
    "hessian_trace_hutchinson": ("Hessian trace (Hutchinson)", ""),
    "noise_loss_increase": ("loss increase under weight noise", "nats"),
    "probe_accuracy": ("probe accuracy", "share"),
    "choice_accuracy": ("multiple-choice accuracy", "share"),
    "lm_eval": ("lm-eval", ""),
    "ndcg_at_10": ("nDCG@10", ""),
    "map_at_100": ("MAP@100", ""),
    "mrr_at_10": ("MRR@10", ""),
    "recall_at_1": ("Recall@1", ""),
    "recall_at_10": ("Recall@10", ""),
    "recall_at_100": ("Recall@100", ""),
}
LM_EVAL_WORDS = {
    "acc": ("accuracy", "share"),
    "acc_norm": ("length-normalised accuracy", "share"),
    "perplexity": ("perplexity", ""),
}
#: task names that read better in words
TASK_WORDS = {"lm_loss": "Held-out", "flatness": "Flatness", "calib": "Calibration", "ood": "OOD detection",
              "longtail": "Long tail", "compression": "Compression", "retrieval": "Retrieval"}  # fmt: skip
#: flatness measures: "lower = flatter" says more than "lower is better" (they are not ranked)
FLATNESS_BASES = ("hessian_trace", "hessian_trace_hutchinson", "noise_loss_increase")
CARD_TITLES = {
    "card.n_parameters": "Parameters (card, count)",
    "card.pretrain_loss_nats": "Pre-training loss, nats (card, self-reported; lower is better)",
    "card.train_loss_nats": "Final training loss, nats (card; lower is better)",
    "card.compression.sparsity": "Sparsity (card, share of zero weights)",
    "card.compression.achieved_sparsity": "Achieved sparsity (card, share of zero weights)",
    "card.compression.bits": "Bits per weight (card)",
    "card.step": "Training step (card)",
    "card.tokens_seen": "Training tokens seen (card)",
}


def metric_words(metric: str) -> tuple[str, str]:
    """(words, unit) of a metric name; unknown names are their own words."""
    base, _, rest = metric.partition(".")
    if base == "lm_eval":
        name = rest.split(",")[0]
        return LM_EVAL_WORDS.get(name, (name.replace("_", " "), ""))
    if base not in METRIC_WORDS:
        return metric, ""
    words, unit = METRIC_WORDS[base]
    if rest and base in ("auroc", "aupr_in", "aupr_out", "fpr95"):
        score, _, group = rest.partition(".")
        words = f"{words}, {score} score" + (f", {group}" if group and group != "mean" else "")
    elif rest:
        words = f"{words} ({rest})"
    return words, unit


def direction_words(metric: str, higher_is_better: Any) -> str:
    base = metric.partition(".")[0]
    if base in FLATNESS_BASES:
        return "lower = flatter"
    if base == "temperature":
        return "fitted; 1 = unchanged"
    if higher_is_better is None or (isinstance(higher_is_better, float) and higher_is_better != higher_is_better):
        return ""
    return "higher is better" if bool(higher_is_better) else "lower is better"


def axis_title(variable: str, higher_is_better: Any = None) -> str:
    """An axis title in words for "task/metric" or "card.<field>": what, unit, direction."""
    if variable in CARD_TITLES:
        return CARD_TITLES[variable]
    if variable.startswith("card."):
        return variable.removeprefix("card.").replace("recipe.", "recipe: ").replace("_", " ") + " (card)"
    task, _, metric = variable.partition("/")
    if not metric:
        return variable
    words, unit = metric_words(metric)
    if higher_is_better is None:
        from harness.metrics import is_diagnostic, metric_info
        from harness.registry import METRICS

        known = metric.partition(".")[0] in METRICS  # a submitted name may be anything
        higher_is_better = metric_info(metric).higher_is_better if known and not is_diagnostic(metric) else None
    prefix = TASK_WORDS.get(task, task)
    if task == "lm_loss" and words.startswith("held-out "):
        text = f"Held-out {words.removeprefix('held-out ')}"
    else:
        text = f"{prefix}: {words}"
    details = ", ".join(p for p in (unit, direction_words(metric, higher_is_better)) if p)
    return f"{text} ({details})" if details else text


#: Okabe & Ito (colour-blind safe), then Tableau 10: neighbours are different hues
PALETTE = (
    "#0072B2", "#E69F00", "#009E73", "#CC79A7", "#D55E00", "#56B4E9", "#F0E442", "#000000",
    "#4E79A7", "#F28E2B", "#E15759", "#76B7B2", "#59A14F", "#EDC948", "#B07AA1", "#FF9DA7", "#9C755F", "#BAB0AC",
)  # fmt: skip
#: a sequential scale for a continuous variable (flatness): light to dark, readable on white
SEQUENTIAL = "Viridis"


def colours(groups: list[str]) -> dict[str, str]:
    """A colour per group, in the order given (cycling through PALETTE beyond its length)."""
    return {group: PALETTE[i % len(PALETTE)] for i, group in enumerate(groups)}
