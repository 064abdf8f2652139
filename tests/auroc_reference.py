"""DeLong's variance of AUROC written from the midrank formulation, independent of harness.metrics.ood."""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata


def delong_by_midranks(id_scores: np.ndarray, sets: list[np.ndarray], weights: list[float]) -> float:
    """DeLong's variance of sum_k w_k AUROC_k from midranks (Sun & Xu 2014's formulation, scipy's rankdata):
    an ID sample's placement against set k is (its rank among ID + set k - its rank among ID) / n_k."""
    component = np.zeros(id_scores.size)
    ood_term = 0.0
    for scores, weight in zip(sets, weights, strict=True):
        both = rankdata(np.r_[id_scores, scores])
        id_place = (both[: id_scores.size] - rankdata(id_scores)) / scores.size
        ood_place = 1.0 - (both[id_scores.size :] - rankdata(scores)) / id_scores.size
        component += weight * id_place
        ood_term += weight**2 * (np.var(ood_place, ddof=1) if scores.size > 1 else 0.0) / scores.size
    return float((np.var(component, ddof=1) if id_scores.size > 1 else 0.0) / id_scores.size + ood_term)
