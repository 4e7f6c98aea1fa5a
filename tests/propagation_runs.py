"""One forward and backward pass of ``propagate_mean``, for the tests that compare its paths."""

from __future__ import annotations

from torch import Tensor

from ssgraphrec.sparse import propagate_mean


def run_propagate_mean(adjs, x: Tensor, up: Tensor, ups: list[Tensor], **kwargs
                       ) -> tuple[list[Tensor], Tensor]:
    """The outputs of ``propagate_mean(adjs, x, K, **kwargs)`` (``K`` 3, or one layer per
    adjacency of a tuple) and the gradient of ``x`` for the loss that weighs the mean by
    ``up`` and each further output that has a gradient by the matching ``ups``."""
    x = x.detach().clone().requires_grad_()
    out = propagate_mean(adjs, x, len(adjs) if isinstance(adjs, tuple) else 3, **kwargs)
    outs = out if isinstance(out, tuple) else (out,)
    loss = (outs[0] * up).sum() + sum((o * u).sum() for o, u in zip(outs[1:], ups, strict=False)
                                      if o.requires_grad)
    loss.backward()
    return [o.detach() for o in outs], x.grad
