"""Inverted dropout with a mask drawn from uniform numbers (cheaper than ``F.dropout`` on CPU).

Srivastava et al., "Dropout: A Simple Way to Prevent Neural Networks from
Overfitting", JMLR 2014, Sec. 4 (the "inverted" form that scales the kept
units by ``1 / (1 - p)`` during training, so evaluation needs no rescaling).

The distribution is that of :func:`torch.nn.functional.dropout`: each entry
is kept independently with probability ``1 - p``. The mask comes from one
:func:`torch.rand` draw compared with ``p`` instead of PyTorch's CPU
``bernoulli_`` kernel, which on one thread costs about three times as much
for the ``[nodes, 128]`` inputs of a graph encoder. Gradients flow through
the product with the (constant) mask, exactly as for ``F.dropout``.
"""

from __future__ import annotations

import torch
from torch import Tensor


def dropout(x: Tensor, p: float, training: bool = True,
            generator: torch.Generator | None = None) -> Tensor:
    """``x * mask / (1 - p)`` with ``mask ~ Bernoulli(1 - p)`` entrywise; ``x`` when not training.

    Args:
        x: any floating tensor.
        p: drop probability in ``[0, 1)``.
        training: apply dropout only when True (as ``F.dropout``).
        generator: optional seeded generator (on any device; the mask is
            drawn there and moved to ``x``'s device).
    """
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout probability must lie in [0, 1), got {p}")
    if not training or p == 0.0:
        return x
    gen_device = generator.device if generator is not None else x.device
    keep = torch.rand(x.shape, generator=generator, device=gen_device, dtype=x.dtype)
    scale = keep.ge_(p).mul_(1.0 / (1.0 - p)).to(x.device)   # 0 or 1 / (1 - p)
    return x * scale
