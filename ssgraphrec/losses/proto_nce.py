"""InfoNCE against a fixed candidate set: prototypes, or all nodes of a layer."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

#: Logits per block of :class:`FullSoftmaxNCE`, per thread: 2**17 floats (512 KiB, a
#: core's L2 cache on the benchmark machine), so that each thread's share of a block
#: stays in its cache while it is exponentiated and multiplied. Gowalla's structure loss
#: (1,300 queries against its 40,981 items, forward and backward) took 755 ms in blocks
#: of 2**17 floats on one thread, against 821 (2**18), 995 (2**19) and 1,028 (2**20); on
#: two threads 569 (2**17), 540 (2**18, the default there), 528 (2**19) and 565 ms
#: (2**20) (``benchmarks/results/full-softmax.json``, ``full-softmax-2threads.json``;
#: docs/benchmarks.md, "NCL's full softmax").
BLOCK_FLOATS_PER_THREAD = 2**17


def _candidates_per_block(queries: int) -> int:
    """Candidates per block of :class:`FullSoftmaxNCE`: a block of all ``queries`` rows
    holds about :data:`BLOCK_FLOATS_PER_THREAD` logits per thread."""
    total = BLOCK_FLOATS_PER_THREAD * torch.get_num_threads()
    return max(1, total // max(queries, 1))


class FullSoftmaxNCE(torch.autograd.Function):
    r"""Per-row :math:`\log \sum_j \exp(\mathbf{q}_b \cdot \mathbf{c}_j) - \mathbf{q}_b
    \cdot \mathbf{c}_{t_b}`: cross-entropy over all candidates, in blocks of candidates.

    Equal to ``F.cross_entropy(q @ c.t(), t, reduction="none")`` (tested, with
    gradients, to float rounding), without the ``[B, K]`` logits: the forward keeps a
    running maximum and sum of exponentials per row over the blocks of candidates (the
    online softmax of Milakov and Gimelshein, 2018), and the backward recomputes each
    block's logits, turns them into softmax weights in place and multiplies them into
    the gradients: the block's rows of ``grad_c`` written once, ``grad_q`` accumulated.
    With all items as candidates (NCL's structure loss on Gowalla: 2048 x 40,981 floats,
    336 MB per copy) this saves the memory of several such tensors, at the price of one
    more product per block.

    Blocks of candidates, not of queries: a block of all queries and some hundreds of
    candidates is a well-shaped product, and the backward pass writes each candidate's
    gradient once, where blocks of 25 queries against every candidate read and wrote
    the whole ``[K, d]`` gradient per block (docs/benchmarks.md, "NCL's full softmax").
    """

    @staticmethod
    def forward(ctx, q: Tensor, c: Tensor, target: Tensor) -> Tensor:  # type: ignore[override]
        block = _candidates_per_block(q.size(0))
        top = q.new_full((q.size(0),), float("-inf"))
        total = q.new_zeros(q.size(0))
        for s in range(0, c.size(0), block):
            logits = q @ c[s:s + block].t()
            new_top = torch.maximum(top, logits.amax(1))
            total.mul_((top - new_top).exp_()).add_(logits.sub_(new_top[:, None]).exp_().sum(1))
            top = new_top
        lse = top + total.log()
        ctx.save_for_backward(q, c, target, lse)
        return lse - (q * c[target]).sum(1)

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        q, c, target, lse = ctx.saved_tensors
        need_q, need_c = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        grad_q = torch.zeros_like(q) if need_q else None
        grad_c = torch.empty_like(c) if need_c else None
        block = _candidates_per_block(q.size(0))
        for s in range(0, c.size(0), block):
            cols = slice(s, s + block)
            weight = (q @ c[cols].t()).sub_(lse[:, None]).exp_().mul_(grad[:, None])
            if need_q:
                grad_q.addmm_(weight, c[cols])
            if need_c:
                torch.mm(weight.t(), q, out=grad_c[cols])
        subtract_positive_term(grad, q, c, target, grad_q, grad_c)
        return grad_q, grad_c, None


def subtract_positive_term(grad: Tensor, q: Tensor, c: Tensor, target: Tensor,
                           grad_q: Tensor | None, grad_c: Tensor | None) -> None:
    r"""The gradient of the positive term :math:`-\mathbf{q}_b \cdot \mathbf{c}_{t_b}`
    (weighted by ``grad``), added in place to whichever of ``grad_q`` and ``grad_c`` is
    asked for (not ``None``)."""
    if grad_q is not None:
        grad_q -= grad[:, None] * c[target]
    if grad_c is not None:
        grad_c.index_add_(0, target, -grad[:, None] * q)


def proto_nce(query: Tensor, prototypes: Tensor, target: Tensor, temperature: float = 0.1,
              reduction: str = "mean", weight: Tensor | None = None) -> Tensor:
    r"""InfoNCE of each query row against all ``prototypes``, its positive at ``target``.

    :math:`-\log \frac{\exp(s(\mathbf{q}, \mathbf{c}_{t(q)})/\tau)}
    {\sum_{j} \exp(s(\mathbf{q}, \mathbf{c}_j)/\tau)}` with cosine similarity
    ``s``, the sum running over every candidate (not over the batch, unlike
    :func:`ssgraphrec.losses.info_nce`).

    This is NCL's prototype-contrastive loss (Lin et al., "Improving Graph
    Collaborative Filtering with Neighborhood-enriched Contrastive Learning",
    WWW 2022, Sec. 3.3, :math:`\mathcal{L}_P^U`): the candidates are the k-means
    centroids and ``target`` each node's cluster. With the layer-0 embeddings
    of all users as candidates and ``target`` the users' own ids it is NCL's
    structure-contrastive loss (Sec. 3.2, :math:`\mathcal{L}_S^U`), whose
    negatives are all other users.

    Args:
        query: ``[B, d]`` embeddings.
        prototypes: ``[K, d]`` candidates.
        target: ``[B]`` index of each query's positive candidate.
        temperature: :math:`\tau > 0`.
        reduction: ``"mean"`` or ``"sum"`` over the queries (NCL's code sums).
        weight: ``[B]`` multiplicity of each query row: the loss is that of the rows
            repeated ``weight`` times (:func:`unique_rows`), the mean divided by
            ``weight.sum()``. A batch names a node once per interaction, and the
            all-candidate softmax of a repeated row costs as much as a new one.
    """
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
    # Scale the [B, d] queries rather than the [B, K] logits: with all users or items
    # as candidates (NCL's structure loss) the logits are the largest tensor of the step.
    q = F.normalize(query, dim=-1) / temperature
    c = F.normalize(prototypes, dim=-1)
    per_row = FullSoftmaxNCE.apply(q, c, target)
    if weight is None:
        return per_row.mean() if reduction == "mean" else per_row.sum()
    total = (per_row * weight.to(per_row.dtype)).sum()
    return total / weight.sum() if reduction == "mean" else total


def unique_rows(nodes: Tensor) -> tuple[Tensor, Tensor]:
    """``(distinct nodes, how often each occurs)`` of a batch's node ids, for the
    ``weight`` of :func:`proto_nce`."""
    return torch.unique(nodes, return_counts=True)
