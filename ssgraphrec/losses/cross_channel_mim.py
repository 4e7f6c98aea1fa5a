"""Cross-channel mutual-information maximisation with a binary discriminator (S²-DHCN)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def cross_channel_mim_loss(view_a: Tensor, view_b: Tensor, view_a_corrupt: Tensor,
                           reduction: str = "sum") -> Tensor:
    r"""Two channels' embeddings of the same rows should agree; a corrupted one should not.

    Xia et al., "Self-Supervised Hypergraph Convolutional Networks for
    Session-based Recommendation", AAAI 2021, Sec. 3.4, Eq. 9 (after DGI,
    Velickovic et al. ICLR 2019): with the discriminator
    :math:`f_D(a, b) = a^\top b`, per session

    .. math::
        -\log\sigma(f_D(\theta^h, \theta^l)) - \log\bigl(1 - \sigma(f_D(\tilde\theta^h, \theta^l))\bigr)

    where :math:`\theta^h` (``view_a``) and :math:`\theta^l` (``view_b``) are the
    hypergraph and line-graph embeddings of a session, and
    :math:`\tilde\theta^h` (``view_a_corrupt``) the hypergraph embeddings with
    rows and columns shuffled. This is what the authors' code computes
    (xiaxin1998/DHCN ``model.py``, ``SSL``: ``neg1 = score(sess_emb_lgcn,
    row_column_shuffle(sess_emb_hgnn))``, summed over the batch), written with
    :math:`-\log\sigma(x) = \mathrm{softplus}(-x)` and
    :math:`-\log(1 - \sigma(x)) = \mathrm{softplus}(x)`; the code adds ``1e-8``
    inside each log, which caps each term near 18.4 and otherwise changes
    nothing.

    Args:
        view_a: ``[N, d]`` first channel (:math:`\theta^h`).
        view_b: ``[N, d]`` second channel (:math:`\theta^l`).
        view_a_corrupt: ``[N, d]`` corrupted first channel (e.g.
            :func:`~ssgraphrec.nn.perturb.row_column_shuffle` of ``view_a``).
        reduction: ``"sum"`` over rows (the authors' code; the weight
            :math:`\beta` is tuned for it) or ``"mean"``.
    """
    if reduction not in ("sum", "mean"):
        raise ValueError(f"reduction must be 'sum' or 'mean', got {reduction!r}")
    pos = (view_a * view_b).sum(-1)
    neg = (view_a_corrupt * view_b).sum(-1)
    loss = F.softplus(-pos) + F.softplus(neg)
    return loss.sum() if reduction == "sum" else loss.mean()
