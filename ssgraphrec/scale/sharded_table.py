"""A row-wise sharded embedding table over ``torch.distributed`` (prototype).

Rank ``r`` holds rows ``[lo_r, hi_r)`` of the table (:func:`ssgraphrec.distributed.shard_bounds`)
as its own parameter, and its optimizer state for them: memory per rank is the
table's divided by the number of ranks. A lookup sends each requested id to the
rank that owns it and the rows back, with two ``all_to_all_single`` calls; the
backward pass sends the rows' gradients to their owners the same way, where they
are summed into the shard's gradient. This is the row-wise sharding of TorchRec's
``EmbeddingCollection`` (whose wheels need an ``fbgemm-gpu`` built for another torch
than the one this package runs on) written with PyTorch's own collectives; it is
not a parameter server: every rank is an owner and a client.

The shards are not wrapped in ``DistributedDataParallel``: each is one rank's own
parameter, and its gradient is complete once the backward exchange is done.
"""

from __future__ import annotations

import math

import torch
import torch.distributed as dist
from torch import Tensor, nn

from ..distributed import SINGLE, DistContext, shard_bounds, shard_owner


def exchange(send: Tensor, send_counts: list[int], recv_counts: list[int]) -> Tensor:
    """``all_to_all_single`` of the rows of ``send`` (grouped by destination rank)."""
    out = send.new_empty((sum(recv_counts), *send.shape[1:]))
    dist.all_to_all_single(out, send.contiguous(), recv_counts, send_counts)
    return out


class _ShardedLookup(torch.autograd.Function):
    @staticmethod
    def forward(ctx, ids: Tensor, weight: Tensor, table: RowShardedEmbedding) -> Tensor:  # type: ignore[override]
        owner = table.owner(ids)
        order = torch.argsort(owner, stable=True)
        send_counts = torch.bincount(owner, minlength=table.ctx.world_size)
        recv_counts = exchange(send_counts, [1] * table.ctx.world_size,
                                [1] * table.ctx.world_size)
        send_counts, recv_counts = send_counts.tolist(), recv_counts.tolist()
        asked = exchange(ids[order], send_counts, recv_counts) - table.lo
        rows = exchange(weight[asked], recv_counts, send_counts)
        out = torch.empty_like(rows)
        out[order] = rows
        ctx.save_for_backward(order, asked)
        ctx.counts = (send_counts, recv_counts)
        ctx.shard_rows = weight.size(0)
        table.sent_bytes += (ids.numel() * ids.element_size()
                             + sum(recv_counts) * weight.size(1) * weight.element_size())
        return out

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        order, asked = ctx.saved_tensors
        send_counts, recv_counts = ctx.counts
        arrived = exchange(grad[order], send_counts, recv_counts)
        grad_weight = grad.new_zeros((ctx.shard_rows, grad.size(1)))
        grad_weight.index_add_(0, asked, arrived)
        return None, grad_weight, None


class RowShardedEmbedding(nn.Module):
    """An embedding table of ``num_rows`` rows split row-wise over the ranks of ``ctx``.

    ``table(ids)`` returns the rows of any ids (every rank may ask for any row);
    gradients reach the owning ranks' shards. On one process it is an ordinary
    table. ``sent_bytes`` counts what this rank has sent in lookups (ids and rows;
    the backward pass sends as many gradient bytes as rows arrived).

    Args:
        num_rows, dim: the table's shape.
        ctx: the ranks (default: one process).
        init_std: 0 for Xavier-uniform rows over the whole table's shape (as
            :class:`~ssgraphrec.nn.LightGCNEncoder`), else ``N(0, init_std^2)``.
        generator: seeds the rows; every rank draws the whole table's numbers
            and keeps its own rows, so the table equals the unsharded one.
    """

    def __init__(self, num_rows: int, dim: int, ctx: DistContext = SINGLE,
                 init_std: float = 0.0, generator: torch.Generator | None = None):
        super().__init__()
        self.num_rows, self.dim, self.ctx = num_rows, dim, ctx
        self.lo, self.hi = shard_bounds(num_rows, ctx)
        full = torch.empty(num_rows, dim)
        if init_std > 0:
            full.normal_(0.0, init_std, generator=generator)
        else:
            bound = math.sqrt(6.0 / (num_rows + dim))
            full.uniform_(-bound, bound, generator=generator)
        self.weight = nn.Parameter(full[self.lo:self.hi].clone())
        self.sent_bytes = 0

    def owner(self, ids: Tensor) -> Tensor:
        """The rank that holds each id's row."""
        return shard_owner(ids, self.num_rows, self.ctx.world_size)

    def forward(self, ids: Tensor) -> Tensor:
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= self.num_rows):
            raise IndexError(f"ids must lie in [0, {self.num_rows}), got "
                             f"{int(ids.min())}..{int(ids.max())}")
        if not self.ctx.distributed:
            return self.weight[ids]
        return _ShardedLookup.apply(ids, self.weight, self)
