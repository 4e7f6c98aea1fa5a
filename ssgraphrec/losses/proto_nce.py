"""InfoNCE against a fixed candidate set: prototypes, or all nodes of a layer."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

#: Rows of logits per block of :class:`FullSoftmaxNCE`: about this many floats (4 MiB), so
#: that a block's logits stay in the cache while they are exponentiated and multiplied,
#: yet a block has enough rows for an efficient product. With one thread, a loss of 2,048
#: queries over Gowalla's 40,981 items took 1.6 s forward and backward in blocks of 2**18
#: floats (6 rows), 1.0 s in blocks of 2**20 (25 rows) and 1.5 s in blocks of 2**24; over
#: lastfm-80-20's 17,632 items the first three were within 5 % of each other.
BLOCK_FLOATS = 2**20


class FullSoftmaxNCE(torch.autograd.Function):
    r"""Per-row :math:`\log \sum_j \exp(\mathbf{q}_b \cdot \mathbf{c}_j) - \mathbf{q}_b
    \cdot \mathbf{c}_{t_b}`: cross-entropy over all candidates, in blocks of rows.

    Equal to ``F.cross_entropy(q @ c.t(), t, reduction="none")`` (tested, with
    gradients), without the ``[B, K]`` logits: the forward keeps only the
    per-row log-sum-exp, and the backward recomputes each block's logits, turns
    them into softmax weights in place and multiplies them into the gradients.
    With all items as candidates (NCL's structure loss on Gowalla: 2048 x 40,981
    floats, 336 MB per copy) this saves the memory of several such tensors and,
    measured on lastfm-80-20 with one thread, about 30 % of the time, at the
    price of one more product per block.
    """

    @staticmethod
    def forward(ctx, q: Tensor, c: Tensor, target: Tensor) -> Tensor:  # type: ignore[override]
        block = max(1, BLOCK_FLOATS // max(c.size(0), 1))
        lse = q.new_empty(q.size(0))
        for s in range(0, q.size(0), block):
            lse[s:s + block] = torch.logsumexp(q[s:s + block] @ c.t(), dim=1)
        ctx.save_for_backward(q, c, target, lse)
        ctx.block = block
        return lse - (q * c[target]).sum(1)

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        q, c, target, lse = ctx.saved_tensors
        need_q, need_c = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        grad_q = torch.zeros_like(q) if need_q else None
        grad_c = torch.zeros_like(c) if need_c else None
        for s in range(0, q.size(0), ctx.block):
            rows = slice(s, s + ctx.block)
            weight = (q[rows] @ c.t()).sub_(lse[rows, None]).exp_().mul_(grad[rows, None])
            if need_q:
                grad_q[rows] = weight @ c
            if need_c:
                grad_c.addmm_(weight.t(), q[rows])
        # the positive term, -(q_b . c_t_b)
        if need_q:
            grad_q -= grad[:, None] * c[target]
        if need_c:
            grad_c.index_add_(0, target, -grad[:, None] * q)
        return grad_q, grad_c, None


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
