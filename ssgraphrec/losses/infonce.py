"""InfoNCE / NT-Xent with in-batch negatives."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def info_nce(view1: Tensor, view2: Tensor, temperature: float = 0.2) -> Tensor:
    r"""Mean InfoNCE of matching rows of two views, other rows of ``view2`` as negatives.

    Wu et al. (SGL), SIGIR 2021, Eq. 10:
    :math:`-\log \frac{\exp(s(z'_u, z''_u)/\tau)}{\sum_v \exp(s(z'_u, z''_v)/\tau)}`
    with cosine similarity ``s``; van den Oord et al. 2018.
    """
    z1 = F.normalize(view1, dim=-1) / temperature  # scale [n, d] rather than [n, n] logits
    z2 = F.normalize(view2, dim=-1)
    logits = z1 @ z2.t()
    target = torch.arange(z1.size(0), device=z1.device)
    return F.cross_entropy(logits, target)
