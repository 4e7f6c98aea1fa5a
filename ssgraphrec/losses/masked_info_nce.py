"""InfoNCE over in-batch negatives, with known false negatives left out of the denominator."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def masked_info_nce(anchor: Tensor, positive: Tensor, temperature: float = 1.0,
                    similarity: str = "dot", not_negative: Tensor | None = None,
                    weight: Tensor | None = None) -> Tensor:
    r"""Mean InfoNCE of ``anchor[i]`` against ``positive[i]``, the other rows of ``positive``
    as negatives.

    Xie et al., "Multi-granularity Item-based Contrastive Recommendation"
    (arXiv:2207.01387, 2022), Sec. 3, item CL losses:
    :math:`-\log \frac{\exp(s(a_i, p_i)/\tau)}{\exp(s(a_i, p_i)/\tau) + \sum_{j \in N_i}
    \exp(s(a_i, p_j)/\tau)}` with in-batch negatives ``N_i``; van den Oord et
    al. 2018.

    Args:
        anchor, positive: ``[B, d]`` representations.
        temperature: :math:`\tau` (MicRec: 1).
        similarity: ``"dot"`` (inner product, the score of the two-tower
            model) or ``"cos"``.
        not_negative: ``[B, B]`` boolean, True where ``positive[j]`` must not be a
            negative of ``anchor[i]`` (the same item, or an item known to be
            related to it); the diagonal is always kept as the positive.
        weight: ``[B]`` per-row weights (0: the row has no positive and does not
            count); default 1.
    """
    if similarity not in ("dot", "cos"):
        raise ValueError(f"similarity must be 'dot' or 'cos', got {similarity!r}")
    if similarity == "cos":
        anchor, positive = F.normalize(anchor, dim=-1), F.normalize(positive, dim=-1)
    logits = anchor @ positive.t() / temperature
    n = logits.size(0)
    eye = torch.eye(n, dtype=torch.bool, device=logits.device)
    if not_negative is not None:
        logits = logits.masked_fill(not_negative & ~eye, -float("inf"))
    per_row = F.cross_entropy(logits, torch.arange(n, device=logits.device), reduction="none")
    if weight is None:
        return per_row.mean()
    weight = weight.to(per_row.dtype)
    return (per_row * weight).sum() / weight.sum().clamp(min=1.0)
