"""Link-prediction evaluation: AUC-ROC and AUC-PR of held-out edges against non-edges.

The protocol of BiNE (Gao et al., SIGIR 2018, Sec. 4.3) that BiGI (Cao et
al., WSDM 2021, Sec. 4.3) follows, as the BiGI code runs it
(caojiangxia/BiGI ``train_lp.py`` and ``utils/scorer.py``,
``link_prediction_logistic``): an edge ``(u, i)`` is described by the
concatenation ``[e_u ; e_i]`` of the learned embeddings; an L2-regularised
logistic regression (scikit-learn's objective with ``C = 0.001``) is fitted
on the training edges (label 1) and one sampled non-edge per training edge
(label 0); its probabilities on a split's held-out edges and their sampled
non-edges give AUC-ROC and AUC-PR (:mod:`ssgraphrec.eval.auc`).

The classifier is fitted here in PyTorch (L-BFGS on the exact objective, in
float64, deterministic), on the embeddings' device. Beside it, the metrics of
the plain inner product ``<e_u, e_i>`` are reported as ``dot_auc_roc`` and
``dot_auc_pr`` (no classifier; the natural score of a dot-product model).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.data import HeteroData

from ..data.link_negatives import NEG_KEYS
from ..data.schema import INTERACTS
from ..errors import SSGraphRecError
from .auc import auc_roc, average_precision

LINK_METRICS = ("auc_roc", "auc_pr", "dot_auc_roc", "dot_auc_pr")
POS_KEYS = {"train": "edge_index", "val": "val_edge_index", "test": "test_edge_index"}


def split_pairs(data: HeteroData, split: str) -> tuple[Tensor, Tensor]:
    """``(pairs [2, P + N], labels [P + N])`` of a split: its edges, then its negatives.

    Raises :class:`SSGraphRecError` when the split has no edges or no negatives
    (AUC is undefined without both).
    """
    if split not in POS_KEYS:
        raise ValueError(f"unknown split {split!r}; expected train, val or test")
    store = data[INTERACTS]
    name = getattr(data, "name", "") or "the dataset"
    neg_key = NEG_KEYS[split]
    neg = store[neg_key] if neg_key in store else None
    if neg is None or neg.size(1) == 0:
        raise SSGraphRecError(
            f"AUC asked for on the {split} split of {name}, which has no negative pairs: "
            "link prediction needs non-edges to score against; load a dataset registered "
            "for link prediction (e.g. bigi-dblp) or add them with "
            "ssgraphrec.data.link_negatives.add_link_negatives(data, seed)")
    pos = store[POS_KEYS[split]]
    if pos.size(1) == 0:
        raise SSGraphRecError(f"the {split} split of {name} is empty: nothing to evaluate")
    labels = torch.cat([torch.ones(pos.size(1)), torch.zeros(neg.size(1))]).to(pos.device)
    return torch.cat([pos, neg], 1), labels


def pair_features(users: Tensor, items: Tensor, pairs: Tensor) -> Tensor:
    """``[e_u ; e_i]`` of every pair (BiGI's ``concat_feature``)."""
    return torch.cat([users[pairs[0]], items[pairs[1]]], 1)


def fit_logistic(x: Tensor, y: Tensor, c: float = 1e-3, max_iter: int = 500) -> tuple[Tensor, Tensor]:
    r"""Weights and bias minimising :math:`\tfrac12\|w\|^2 + C\sum_n \log(1 + e^{-s_n (w^\top x_n + b)})`.

    scikit-learn's L2 logistic regression (the bias is not penalised), with
    :math:`s_n = \pm 1`; solved with L-BFGS in float64.
    """
    x = x.double()
    sign = y.double() * 2.0 - 1.0
    w = torch.zeros(x.size(1), dtype=torch.float64, device=x.device, requires_grad=True)
    b = torch.zeros(1, dtype=torch.float64, device=x.device, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=max_iter, tolerance_grad=1e-9,
                            tolerance_change=1e-12, history_size=20, line_search_fn="strong_wolfe")

    def closure() -> Tensor:
        opt.zero_grad()
        loss = 0.5 * (w * w).sum() + c * F.softplus(-sign * (x @ w + b)).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    return w.detach(), b.detach()


def evaluate_link_prediction(users: Tensor, items: Tensor, data: HeteroData,
                             split: str = "test", c: float = 1e-3) -> dict[str, float]:
    """AUC-ROC / AUC-PR of ``split`` from (user, item) embeddings.

    Args:
        users, items: ``[U, d]`` and ``[I, d]`` embeddings.
        data: link-prediction data (with ``*_neg_edge_index``, see
            :func:`ssgraphrec.data.link_negatives.add_link_negatives`).
        split: ``val`` or ``test``.
        c: inverse L2 strength of the classifier (BiGI: 0.001).
    """
    pairs, labels = split_pairs(data, split)
    train_pairs, train_labels = split_pairs(data, "train")
    users, items = users.detach().float(), items.detach().float()
    w, b = fit_logistic(pair_features(users, items, train_pairs), train_labels, c)
    prob = torch.sigmoid(pair_features(users, items, pairs).double() @ w + b)
    dot = (users[pairs[0]] * items[pairs[1]]).sum(1)
    return {
        "auc_roc": auc_roc(prob, labels),
        "auc_pr": average_precision(prob, labels),
        "dot_auc_roc": auc_roc(dot, labels),
        "dot_auc_pr": average_precision(dot, labels),
        "pairs_evaluated": int(labels.numel()),
    }
