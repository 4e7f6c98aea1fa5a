"""Margin (hinge) loss between positive and negative scores."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def hinge_loss(pos: Tensor, neg: Tensor, margin: float) -> Tensor:
    r"""Mean of :math:`\max(0, \gamma - s^+ + s^-)` over row-aligned pairs.

    BiGI's edge reconstruction loss for recommendation (Cao et al., WSDM
    2021, Sec. 3.5, Eq. 9; the authors' ``HingeLoss`` with ``--margin 0.3``),
    on the sigmoid scores of an observed edge and of a sampled non-edge of
    the same user.
    """
    return F.relu(margin - pos + neg).mean()
