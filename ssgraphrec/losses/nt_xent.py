"""NT-Xent: InfoNCE over both views, the 2N - 2 other samples of the batch as negatives."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def nt_xent(view1: Tensor, view2: Tensor, temperature: float = 1.0,
            similarity: str = "dot") -> Tensor:
    r"""Mean NT-Xent of SimCLR (Chen et al., ICML 2020, Eq. 1), as CL4SRec uses it.

    The ``2N`` rows of both views are the anchors; the positive of row ``i`` of
    one view is row ``i`` of the other view, and the negatives are the
    remaining ``2N - 2`` rows of both views (Xie et al., CL4SRec, ICDE 2022,
    Eq. 6):
    :math:`-\log \frac{\exp(s(z_i, z_j)/\tau)}{\sum_{k \ne i} \exp(s(z_i, z_k)/\tau)}`.
    Unlike :func:`~ssgraphrec.losses.info_nce` (negatives from the other view
    only), each anchor also meets the other samples of its own view.

    Args:
        view1, view2: ``[N, d]`` representations of the two views.
        temperature: :math:`\tau`.
        similarity: ``"dot"`` (inner product, the CL4SRec / CoSeRec code) or
            ``"cos"`` (cosine, SimCLR).
    """
    if similarity not in ("dot", "cos"):
        raise ValueError(f"similarity must be 'dot' or 'cos', got {similarity!r}")
    z = torch.cat([view1, view2])
    if similarity == "cos":
        z = F.normalize(z, dim=-1)
    n = view1.size(0)
    logits = (z @ z.t()) / temperature
    logits.fill_diagonal_(float("-inf"))
    idx = torch.arange(n, device=z.device)
    target = torch.cat([idx + n, idx])
    return F.cross_entropy(logits, target)
