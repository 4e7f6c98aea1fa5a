"""Local-global mutual-information maximisation with a binary discriminator (DGI style)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def local_global_mim_loss(pos_logits: Tensor, neg_logits: Tensor) -> Tensor:
    r"""Binary cross-entropy of real local representations (1) vs. corrupted ones (0).

    Velickovic et al., "Deep Graph Infomax", ICLR 2019, Eq. 1, and BiGI (Cao
    et al., WSDM 2021, Sec. 3.4, Eq. 8): with :math:`D(l, g)` the
    discriminator's probability that local representation :math:`l` comes
    from the graph summarised by :math:`g`,

    .. math::
        \mathcal{L}_m = -\frac{1}{|P| + |N|}\Bigl(\sum_{l \in P}\log D(l, g)
            + \sum_{\tilde l \in N}\log\bigl(1 - D(\tilde l, g)\bigr)\Bigr),

    the mean binary cross-entropy over positives and negatives together (the
    authors' ``nn.BCELoss`` on the concatenated probabilities), written
    with logits: :math:`-\log\sigma(x) = \mathrm{softplus}(-x)`.

    Args:
        pos_logits: ``[P]`` discriminator logits of real local representations.
        neg_logits: ``[N]`` logits of corrupted ones.
    """
    return torch.cat([F.softplus(-pos_logits), F.softplus(neg_logits)]).mean()
