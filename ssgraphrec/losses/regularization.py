"""L2 regularisation of the embeddings a batch uses."""

from __future__ import annotations

from collections.abc import Iterable

from torch import Tensor


def l2_regularization(*embeddings: Tensor) -> Tensor:
    r""":math:`\frac{1}{2B}\sum \|\mathbf{e}\|_2^2` over the given ``[B, d]`` ego embeddings.

    As LightGCN (He et al. SIGIR 2020, Eq. 15) and SGL (Wu et al. SIGIR 2021,
    Eq. 12, :math:`\lambda_2 \|\Theta\|_2^2` on the batch's parameters) compute it;
    multiply by the method's weight.
    """
    batch = embeddings[0].size(0)
    return sum(e.pow(2).sum() for e in embeddings) / (2 * batch)


def parameter_l2(parameters: Iterable[Tensor]) -> Tensor:
    r""":math:`\frac{1}{2}\sum \|\theta\|_2^2` over every given parameter.

    The term whose gradient is Adam's coupled ``weight_decay`` (Xia et al.,
    DHCN, AAAI 2021, Sec. 4.1: L2 on all parameters); multiply by the weight.
    """
    return 0.5 * sum(p.pow(2).sum() for p in parameters)
