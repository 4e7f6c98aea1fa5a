"""Hierarchical mutual-information maximisation with a ranking loss (MHCN)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def _score(a: Tensor, b: Tensor) -> Tensor:
    """The discriminator :math:`f_D`: a dot product per row (``b`` may be one row)."""
    return (a * b).sum(-1)


def hierarchical_mim_loss(node: Tensor, local: Tensor, node_corrupt: Tensor,
                          local_corrupt: Tensor, local_corrupt_global: Tensor | None = None,
                          reduction: str = "sum") -> Tensor:
    r"""Node ↔ local sub-graph ↔ whole graph mutual information, as rankings.

    Yu et al., "Self-Supervised Multi-Channel Hypergraph Convolutional Network
    for Social Recommendation", WWW 2021, Sec. 3.3: a user's embedding
    :math:`p_u` should agree more with its own user-centred sub-hypergraph
    :math:`z_u` (``local``, e.g. the row ``u`` of :math:`\hat D^{-1} A\,P`) than a
    corrupted user does, and a sub-hypergraph should agree more with the
    hypergraph summary :math:`h = \mathrm{mean}_u z_u` than a corrupted one.
    With :math:`f_D(a, b) = a^\top b` and :math:`-\log\sigma(x) =
    \mathrm{softplus}(-x)`, per node (the form of the authors' code,
    ``hierarchical_self_supervision`` in Coder-Yu/QRec ``MHCN.py``)

    * local: :math:`-\log\sigma(f_D(p_u, z_u) - f_D(\tilde p_u, z_u))
      - \log\sigma(f_D(\tilde p_u, z_u) - f_D(p_u, \tilde z_u))`, a ranking
      *true pair > corrupted user > corrupted sub-graph*;
    * global: :math:`-\log\sigma(f_D(z_u, h) - f_D(\tilde z_u, h))`.

    The corruptions (DGI style) are supplied by the caller; MHCN uses a row
    shuffle for :math:`\tilde p` and a row-and-column shuffle for
    :math:`\tilde z` (:mod:`ssgraphrec.nn.perturb`), drawn separately for the
    local and the global term.

    Args:
        node: ``[N, d]`` node embeddings :math:`p`.
        local: ``[N, d]`` their sub-graph embeddings :math:`z`.
        node_corrupt: ``[N, d]`` corrupted nodes :math:`\tilde p`.
        local_corrupt: ``[N, d]`` corrupted sub-graphs for the local term.
        local_corrupt_global: corrupted sub-graphs for the global term
            (default: ``local_corrupt``).
        reduction: ``"sum"`` over nodes (the authors' code) or ``"mean"``.
    """
    if reduction not in ("sum", "mean"):
        raise ValueError(f"reduction must be 'sum' or 'mean', got {reduction!r}")
    if local_corrupt_global is None:
        local_corrupt_global = local_corrupt
    pos = _score(node, local)
    neg_node = _score(node_corrupt, local)
    neg_local = _score(local_corrupt, node)
    loss = F.softplus(neg_node - pos) + F.softplus(neg_local - neg_node)
    summary = local.mean(0)
    loss = loss + F.softplus(_score(local_corrupt_global, summary) - _score(local, summary))
    return loss.sum() if reduction == "sum" else loss.mean()
