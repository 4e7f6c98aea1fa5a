r"""Mean cross-entropy over class indices, its gradient written in one pass.

For logits :math:`\mathbf{X} \in \mathbb{R}^{n \times m}`, targets :math:`t_i` and the
log-softmax :math:`\mathbf{O} = \log \operatorname{softmax}(\mathbf{X})` (by rows),
the mean loss is :math:`L = -\frac{1}{n} \sum_i O_{i, t_i}`, and its gradient is

.. math::
    \frac{\partial L}{\partial X_{ij}} = \frac{g}{n} \left(\exp(O_{ij}) - [j = t_i]\right)

for an upstream gradient :math:`g`. ``F.cross_entropy`` computes it in two steps: the
gradient of ``nll_loss`` as a zero-filled ``[n, m]`` matrix holding :math:`-g/n` at
the targets, then the log-softmax's backward pass, which sums each row of that matrix
and reads it once more. :class:`MeanCrossEntropy` writes :math:`\exp(\mathbf{O})\,g/n`
and subtracts :math:`g/n` at the ``n`` targets: one write of ``[n, m]`` instead of
three passes over it. At the sizes of the InfoNCE of SGL, SimGCL and XSimGCL
(``[n, n]`` logits over a batch's distinct users or items, ``n`` about 1,300 on
lastfm-80-20 and 1,880 on Gowalla) the loss's forward and backward take 13 to 23 %
less time (``benchmarks/cross_entropy.py``; docs/benchmarks.md, "The cross-entropy's
gradient in one pass"). The package's other mean cross-entropies take it too:
S²-DHCN's and SASRec's softmax over all items, the sampled and queue softmax of the
two-tower models and GPT-GNN's edge generation.

The loss is ``F.cross_entropy``'s to the bit (the same ``log_softmax`` and
``nll_loss``); the gradient equals it to float rounding, since PyTorch's log-softmax
backward kernel evaluates the exponential its own way (tested in
``tests/test_losses_cross_entropy.py``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable

#: The fewest logits that :func:`mean_cross_entropy` takes through
#: :class:`MeanCrossEntropy`. Below them the Python autograd function's fixed cost (tens
#: of microseconds a call) outweighs the passes it saves. One thread, forward and
#: backward, one pass against ``F.cross_entropy``: 0.05 against 0.03 ms at 64 x 64, 0.16
#: against 0.13 at 256 x 256, 0.88 against 0.83 at 700 x 700, 1.64 against 1.72 at
#: 900 x 900, 3.21 against 3.79 at 1,300 x 1,300 (``benchmarks/cross_entropy.py --only
#: loss``; ``benchmarks/results/cross-entropy-sizes-xeon.json``).
ONE_PASS_MIN_LOGITS = 2**19


class MeanCrossEntropy(torch.autograd.Function):
    """``F.cross_entropy(logits, target)`` (mean reduction) for ``[n, m]`` logits and
    ``[n]`` class indices, every one a valid class (no ``ignore_index``), with the
    backward pass of the module docstring."""

    @staticmethod
    def forward(ctx, logits: Tensor, target: Tensor) -> Tensor:  # type: ignore[override]
        log_probs = torch.log_softmax(logits, dim=1)
        ctx.save_for_backward(log_probs, target)
        return F.nll_loss(log_probs, target)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:  # type: ignore[override]
        log_probs, target = ctx.saved_tensors
        n = log_probs.size(0)
        at_target = -(grad / n)              # nll_loss's gradient at each row's target
        grad_logits = torch.exp(log_probs).mul_(-at_target)
        return grad_logits.scatter_add_(1, target[:, None], at_target.expand(n, 1)), None


def mean_cross_entropy(logits: Tensor, target: Tensor) -> Tensor:
    """``F.cross_entropy(logits, target)`` for ``[n, m]`` logits and ``[n]`` valid class
    indices, through :class:`MeanCrossEntropy` where a gradient is to be taken and the
    logits number at least :data:`ONE_PASS_MIN_LOGITS`."""
    if logits.dim() != 2 or logits.numel() < max(ONE_PASS_MIN_LOGITS, 1) or not (
            logits.requires_grad and torch.is_grad_enabled()):
        return F.cross_entropy(logits, target)
    return MeanCrossEntropy.apply(logits, target)
