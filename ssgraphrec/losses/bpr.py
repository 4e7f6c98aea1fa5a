"""Bayesian personalised ranking loss."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def bpr_loss(user: Tensor, pos_item: Tensor, neg_item: Tensor) -> Tensor:
    r"""Rendle et al., "BPR", UAI 2009:
    :math:`-\frac{1}{B}\sum \ln \sigma(\hat y_{ui} - \hat y_{uj})` with dot-product scores."""
    pos = (user * pos_item).sum(-1)
    neg = (user * neg_item).sum(-1)
    return F.softplus(neg - pos).mean()
