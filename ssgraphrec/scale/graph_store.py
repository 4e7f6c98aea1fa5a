"""Where the sampler finds a node's neighbours: the whole CSR on every rank, or each
rank's own rows of it (prototype, docs/distributed.md).

:class:`ReplicatedGraph` holds the whole symmetric graph as CSR arrays, 16 bytes per
interaction (two directed entries of 8 bytes) on every rank. :class:`RowShardedGraph`
holds on rank ``r`` only the adjacency rows of the nodes ``[lo_r, hi_r)`` whose
embedding rows it also owns (:class:`~ssgraphrec.scale.RowShardedEmbedding`'s
partition), so the graph's memory per rank falls as the table's does. A hop of
sampling then sends each frontier node to its owner, which draws that node's
neighbours from its rows and sends them back, with ``all_to_all_single`` as the
table does: the role the partitioned graph store of ``torch_geometric.distributed``
plays, whose sampler needs ``pyg-lib`` (no wheels for this package's torch).

Both answer the same two questions, so the sampler
(:func:`~ssgraphrec.scale.sample_subgraph`) runs on either:

* ``sample(frontier, fanout, generator)``: for each frontier node, ``fanout``
  neighbours drawn uniformly without replacement (all of them when ``fanout < 0``
  or the node has fewer), and the node's degree;
* ``degrees(ids)``: the degree of each id.

Every rank must call them the same number of times (they are collectives when
sharded), with frontiers of any size, empty included.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..distributed import SINGLE, DistContext, shard_bounds, shard_owner
from .sharded_table import exchange


def _edges_of(crow: Tensor, nodes: Tensor) -> tuple[Tensor, Tensor]:
    """(segment, position in ``col``) of every edge of ``nodes`` (rows of ``crow``),
    grouped by segment in the order of ``nodes``."""
    start, degree = crow[nodes], crow[nodes + 1] - crow[nodes]
    segment = torch.repeat_interleave(torch.arange(nodes.numel()), degree)
    offsets = torch.cumsum(degree, 0) - degree
    position = start[segment] + torch.arange(segment.numel()) - offsets[segment]
    return segment, position


def _keep(segment: Tensor, degree: Tensor, fanout: int,
          generator: torch.Generator | None) -> Tensor:
    """Which edges to keep: all when ``fanout < 0``, else ``fanout`` uniform draws
    without replacement per segment (random keys, the lowest ``fanout`` of each)."""
    if fanout < 0:
        return torch.ones_like(segment, dtype=torch.bool)
    keys = torch.rand(segment.numel(), generator=generator, dtype=torch.float64)
    order = torch.argsort(segment.double() + keys)          # by segment, then by key
    offsets = torch.cumsum(degree, 0) - degree
    rank = torch.empty_like(order)
    rank[order] = torch.arange(order.numel())
    return (rank - offsets[segment]) < fanout


def sample_rows(crow: Tensor, col: Tensor, rows: Tensor, fanout: int,
                generator: torch.Generator | None) -> tuple[Tensor, Tensor, Tensor]:
    """``(taken, neighbours, degree)`` of CSR rows ``rows``: how many neighbours each
    row kept, the kept neighbours grouped by row in the order of ``rows``, and each
    row's degree."""
    segment, position = _edges_of(crow, rows)
    degree = crow[rows + 1] - crow[rows]
    kept = _keep(segment, degree, fanout, generator)
    taken = torch.bincount(segment[kept], minlength=rows.numel())
    return taken, col[position[kept]], degree


def _csr_bytes(crow: Tensor, col: Tensor) -> int:
    return crow.numel() * crow.element_size() + col.numel() * col.element_size()


class ReplicatedGraph:
    """The whole symmetric graph as CSR arrays ``crow``, ``col`` (global node ids)."""

    def __init__(self, crow: Tensor, col: Tensor):
        self.crow, self.col = crow, col
        self.num_nodes = crow.numel() - 1
        #: bytes sent to other ranks by sampling (none: every rank has every row)
        self.sent_bytes = 0

    @property
    def nbytes(self) -> int:
        """Bytes of the CSR arrays this rank holds."""
        return _csr_bytes(self.crow, self.col)

    def sample(self, frontier: Tensor, fanout: int, generator: torch.Generator | None = None
               ) -> tuple[Tensor, Tensor, Tensor]:
        """``(segment, neighbours, degree)``: each kept edge's frontier index and
        neighbour, and each frontier node's degree."""
        taken, neighbours, degree = sample_rows(self.crow, self.col, frontier, fanout, generator)
        return torch.repeat_interleave(torch.arange(frontier.numel()), taken), neighbours, degree

    def degrees(self, ids: Tensor) -> Tensor:
        """Each id's degree."""
        return self.crow[ids + 1] - self.crow[ids]


class RowShardedGraph:
    """Rank ``r``'s adjacency rows of nodes ``[lo_r, hi_r)`` (the partition of
    :func:`~ssgraphrec.distributed.shard_bounds`), neighbours as global ids.

    Build it from this rank's rows (``crow`` over ``hi - lo`` rows, ``col`` of their
    neighbours), as a loader of a partitioned file would, or with :meth:`from_csr`
    from the whole graph's arrays (tests and benchmarks). On one process it is the
    whole graph.
    """

    def __init__(self, crow: Tensor, col: Tensor, num_nodes: int, ctx: DistContext = SINGLE):
        self.num_nodes, self.ctx = num_nodes, ctx
        self.lo, self.hi = shard_bounds(num_nodes, ctx)
        if crow.numel() != self.hi - self.lo + 1:
            raise ValueError(f"rank {ctx.rank} owns rows [{self.lo}, {self.hi}) of {num_nodes}: "
                             f"crow needs {self.hi - self.lo + 1} entries, got {crow.numel()}")
        self.crow, self.col = crow, col
        #: bytes this rank has sent while sampling (node ids, counts and neighbours)
        self.sent_bytes = 0

    @classmethod
    def from_csr(cls, crow: Tensor, col: Tensor, ctx: DistContext = SINGLE) -> RowShardedGraph:
        """This rank's rows of the whole graph's CSR arrays (copied, so that the whole
        arrays can be freed)."""
        num_nodes = crow.numel() - 1
        lo, hi = shard_bounds(num_nodes, ctx)
        start, end = int(crow[lo]), int(crow[hi])
        return cls((crow[lo:hi + 1] - start).clone(), col[start:end].clone(), num_nodes, ctx)

    @property
    def nbytes(self) -> int:
        """Bytes of the CSR arrays this rank holds."""
        return _csr_bytes(self.crow, self.col)

    def owner(self, ids: Tensor) -> Tensor:
        """The rank that holds each node's adjacency row."""
        return shard_owner(ids, self.num_nodes, self.ctx.world_size)

    def _route(self, ids: Tensor) -> tuple[Tensor, list[int], list[int], Tensor]:
        """Send each id to its owner: (the order that groups ``ids`` by owner, the
        counts sent to and received from each rank, the local rows asked of this rank)."""
        world = self.ctx.world_size
        owner = self.owner(ids)
        order = torch.argsort(owner, stable=True)
        send = torch.bincount(owner, minlength=world)
        recv = exchange(send, [1] * world, [1] * world)
        send_counts, recv_counts = send.tolist(), recv.tolist()
        asked = exchange(ids[order], send_counts, recv_counts) - self.lo
        self.sent_bytes += (world + ids.numel()) * ids.element_size()
        return order, send_counts, recv_counts, asked

    def _reply(self, values: Tensor, recv_counts: list[int], send_counts: list[int]) -> Tensor:
        """Send one row of ``values`` back per asked id (the route reversed)."""
        self.sent_bytes += values.numel() * values.element_size()
        return exchange(values, recv_counts, send_counts)

    def sample(self, frontier: Tensor, fanout: int, generator: torch.Generator | None = None
               ) -> tuple[Tensor, Tensor, Tensor]:
        """As :meth:`ReplicatedGraph.sample`; the owners draw the neighbours of their
        rows (with their own ``generator``) and send them back."""
        if not self.ctx.distributed:
            taken, neighbours, degree = sample_rows(self.crow, self.col, frontier - self.lo,
                                                    fanout, generator)
            return torch.repeat_interleave(torch.arange(frontier.numel()), taken), neighbours, degree
        order, send_counts, recv_counts, asked = self._route(frontier)
        taken, neighbours, degree = sample_rows(self.crow, self.col, asked, fanout, generator)
        # per asked node: (kept, degree); then the kept neighbours, as many per rank as
        # the asking rank's nodes kept (their sum is known to both sides from the counts)
        answer = self._reply(torch.stack([taken, degree], 1), recv_counts, send_counts)
        per_rank = [int(chunk.sum()) for chunk in taken.split(recv_counts)]
        arrived = [int(chunk[:, 0].sum()) for chunk in answer.split(send_counts)]
        neighbours = self._reply(neighbours, per_rank, arrived)
        frontier_degree = torch.empty_like(frontier)
        frontier_degree[order] = answer[:, 1]
        # ``neighbours`` come grouped by frontier node in the order ``order``
        segment = torch.repeat_interleave(order, answer[:, 0])
        return segment, neighbours, frontier_degree

    def degrees(self, ids: Tensor) -> Tensor:
        """Each id's degree, asked of its owner."""
        if not self.ctx.distributed:
            local = ids - self.lo
            return self.crow[local + 1] - self.crow[local]
        order, send_counts, recv_counts, asked = self._route(ids)
        answer = self._reply(self.crow[asked + 1] - self.crow[asked], recv_counts, send_counts)
        out = torch.empty_like(ids)
        out[order] = answer
        return out
