"""Edge generation with sampled negatives (GPT-GNN, Hu et al., KDD 2020)."""

from __future__ import annotations

import torch
from torch import Tensor

from .cross_entropy import mean_cross_entropy


def edge_generation_loss(pos: Tensor, neg: Tensor, false_negative: Tensor | None = None
                         ) -> Tensor:
    r"""Softmax cross-entropy of each masked edge against negative candidates.

    Hu et al., "GPT-GNN", KDD 2020, Sec. 3.3, Eq. 6: a masked edge's
    endpoint must score higher than negatives not linked to the query node,
    :math:`-\log \frac{\exp s^+}{\exp s^+ + \sum_{j} \exp s^-_j}`.

    Args:
        pos: ``[E]`` score of each masked edge.
        neg: ``[E, N]`` scores of the negatives of each edge.
        false_negative: ``[E, N]`` True where a "negative" is in fact linked
            to the query node; those are left out of the softmax.
    """
    if pos.numel() == 0:
        return pos.sum() * 0.0
    if false_negative is not None:
        neg = neg.masked_fill(false_negative, -float("inf"))
    logits = torch.cat([pos[:, None], neg], 1)
    target = torch.zeros(pos.numel(), dtype=torch.long, device=pos.device)
    return mean_cross_entropy(logits, target)
