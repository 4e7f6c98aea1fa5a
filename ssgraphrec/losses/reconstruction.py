"""Embedding reconstruction by cosine similarity."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def cosine_reconstruction(pred: Tensor, target: Tensor, eps: float = 1e-8) -> Tensor:
    r"""Per-row cosine similarity :math:`\cos(\hat{\mathbf{h}}_v, \mathbf{h}_v)`, shape ``[B]``.

    Hao et al., "Pre-Training Graph Neural Networks for Cold-Start Users and
    Items Representation", WSDM 2021, Eq. 2: the pre-training GNN maximises the
    cosine similarity between the embedding it reconstructs for a simulated
    cold-start node and the node's ground-truth embedding. PT-GNN's neighbour
    sampler uses the same quantity as its reward (Sec. 4.3).
    """
    return F.cosine_similarity(pred, target, dim=-1, eps=eps)


def cosine_reconstruction_loss(pred: Tensor, target: Tensor) -> Tensor:
    r"""Negative mean cosine similarity, :math:`-\frac{1}{B}\sum_v \cos(\hat{\mathbf{h}}_v,
    \mathbf{h}_v)` (Hao et al., WSDM 2021, Eq. 2, as a loss to minimise); ``-1`` is perfect."""
    return -cosine_reconstruction(pred, target).mean()
