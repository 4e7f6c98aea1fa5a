"""Areas under the ROC and precision-recall curves, vectorised, with ties.

The link-prediction metrics of BiNE (Gao et al., SIGIR 2018) and BiGI (Cao et
al., WSDM 2021, Sec. 4.3, Table 4): AUC-ROC and AUC-PR, the latter computed
by the authors' code as scikit-learn's ``average_precision_score``
(caojiangxia/BiGI ``utils/scorer.py``). Both functions agree with
scikit-learn on tied scores:

* AUC-ROC is the Mann-Whitney statistic: the probability that a random
  positive scores above a random negative, ties counting one half
  (equivalently the trapezoid area under the ROC curve);
* average precision is :math:`\\sum_t (R_t - R_{t-1}) P_t` over the distinct
  score thresholds :math:`t` from the highest down, where tied scores form
  one threshold (no interpolation).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..errors import SSGraphRecError


def _check(scores: Tensor, labels: Tensor, what: str) -> tuple[Tensor, Tensor]:
    scores = scores.reshape(-1).double()
    labels = labels.reshape(-1).bool()
    if scores.numel() != labels.numel():
        raise ValueError(f"{what}: {scores.numel()} scores but {labels.numel()} labels")
    n_pos = int(labels.sum())
    if n_pos == 0 or n_pos == labels.numel():
        missing = "positive" if n_pos == 0 else "negative"
        raise SSGraphRecError(f"{what} needs positive and negative examples; the "
                              f"{labels.numel()} labelled pairs have no {missing} one")
    if not bool(torch.isfinite(scores).all()):
        raise ValueError(f"{what}: scores contain NaN or infinity")
    return scores, labels


def auc_roc(scores: Tensor, labels: Tensor) -> float:
    """Area under the ROC curve of ``scores`` for binary ``labels`` (ties count 1/2)."""
    scores, labels = _check(scores, labels, "AUC-ROC")
    # Mid-ranks: every member of a group of tied scores gets the group's mean rank.
    uniq, inverse, counts = torch.unique(scores, return_inverse=True, return_counts=True)
    ends = torch.cumsum(counts, 0).double()           # rank of the last member (1-based)
    mid = ends - (counts.double() - 1.0) / 2.0          # mean rank of the group
    ranks = mid[inverse]
    n_pos = labels.sum().double()
    n_neg = labels.numel() - n_pos
    u = ranks[labels].sum() - n_pos * (n_pos + 1.0) / 2.0
    return float(u / (n_pos * n_neg))


def average_precision(scores: Tensor, labels: Tensor) -> float:
    """AUC-PR as average precision over distinct thresholds (scikit-learn's definition)."""
    scores, labels = _check(scores, labels, "AUC-PR")
    order = torch.argsort(scores, descending=True, stable=True)
    s, y = scores[order], labels[order].double()
    tp = torch.cumsum(y, 0)
    fp = torch.cumsum(1.0 - y, 0)
    # The last position of each run of tied scores is one threshold.
    last = torch.ones_like(s, dtype=torch.bool)
    last[:-1] = s[1:] != s[:-1]
    tp, fp = tp[last], fp[last]
    precision = tp / (tp + fp)
    recall = tp / tp[-1]
    step = torch.diff(recall, prepend=recall.new_zeros(1))
    return float((step * precision).sum())
