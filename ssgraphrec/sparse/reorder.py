r"""A locality order of a sparse matrix's nodes, so that a CPU product gathers from the cache.

A CSR product ``Y = A X`` reads, for every non-zero ``(i, j)``, the row ``X[j]``.
Rows computed one after another read rows of ``X`` that lie as far apart as the
node ids of their neighbours: on Diginetica's DHCN operator (43,097 items) the mean
distance between the two ends of a non-zero is 11,126 ids. Numbering the nodes in
reverse Cuthill-McKee order (Cuthill and McKee, "Reducing the bandwidth of sparse
symmetric matrices", ACM 1969; reversed as George, 1971), a breadth-first order
from a low-degree node that numbers each node's unvisited neighbours together,
brings neighbours' ids close (the mean distance falls to 7,244), so that
consecutive rows share the rows of ``X`` they read while those are still in the
cache. On two threads of a 2-vCPU machine, one product of the DHCN operator with 100
columns took 0.75x the time and one of Gowalla's adjacency (70,839 nodes) with 64
columns 0.86x, and an S²-DHCN training step 0.84x
(``python benchmarks/reorder.py``, ``benchmarks/results/spmm-reorder-2threads.json``;
``benchmarks/results/spmm-reorder-steps-2threads.json``).

The reordered matrix :math:`\mathbf{P}\mathbf{A}\mathbf{P}^\top` keeps the entries of
each row in their stored order (:func:`permuted_csr`), only renamed, so each entry of
:math:`(\mathbf{P}\mathbf{A}\mathbf{P}^\top)(\mathbf{P}\mathbf{X})` is the same sum, in
the same order, as the entry of :math:`\mathbf{A}\mathbf{X}` it stands for: the product
is bit-for-bit unchanged (PyTorch's CPU kernel adds a row's terms in their stored
order; ``tests/test_reorder.py`` checks it on this machine's kernel).
"""

from __future__ import annotations

import os
from contextlib import AbstractContextManager
from dataclasses import dataclass

import torch
from torch import Tensor

from ..environment import environment_variable
from ..errors import ConfigError
from .blocks import cache_budget


def symmetric_pattern(crow: Tensor, col: Tensor, size: int) -> tuple[Tensor, Tensor]:
    """CSR row pointers and sorted columns of the pattern of :math:`A + A^\\top` (each
    pair once), for a square CSR matrix of ``size`` rows: the graph the order walks."""
    row = torch.repeat_interleave(torch.arange(size, device=col.device), crow.diff(),
                                  output_size=col.numel())
    col = col.long()
    key = torch.unique(torch.cat([row * size + col, col * size + row]))
    rows, cols = key.div(size, rounding_mode="floor"), key.remainder(size)
    pointer = torch.zeros(size + 1, dtype=torch.long, device=col.device)
    torch.cumsum(torch.bincount(rows, minlength=size), 0, out=pointer[1:])
    return pointer, cols


#: Nodes :func:`cuthill_mckee` checks at once for the next component's start.
START_WINDOW = 4096


def cuthill_mckee(crow: Tensor, col: Tensor, size: int) -> Tensor:
    """The reverse Cuthill-McKee order of a graph with a symmetric pattern (CSR
    ``crow``, ``col``, as :func:`symmetric_pattern` gives): ``order[k]`` is the node
    numbered ``k``.

    Each connected component is walked breadth first from its node of least degree
    (lowest id on ties); a level's unvisited neighbours are numbered by their first
    parent's number, then by degree, then by id, as Cuthill and McKee number them. The
    order of all components is reversed at the end. Vectorised per level: a level
    costs a few tensor operations, not one per node."""
    crow, col = crow.long(), col.long()
    degree = crow.diff()
    visited = torch.zeros(size, dtype=torch.bool)
    levels: list[Tensor] = []
    starts = torch.argsort(degree, stable=True)   # low degree first, lowest id on ties
    degree_span = int(degree.max()) + 1 if size else 1
    next_start = 0
    while next_start < size:
        # the next component's start: the first unvisited node of ``starts``, looked for a
        # window at a time (each node is passed over once, by a tensor operation)
        window = starts[next_start:next_start + START_WINDOW]
        fresh = (~visited.index_select(0, window)).nonzero()
        if fresh.numel() == 0:
            next_start += window.numel()
            continue
        next_start += int(fresh[0, 0])
        frontier = starts[next_start:next_start + 1]
        visited[frontier] = True
        while frontier.numel():
            levels.append(frontier)
            counts = degree.index_select(0, frontier)
            total = int(counts.sum())
            if total == 0:
                break
            shift = crow.index_select(0, frontier) - (counts.cumsum(0) - counts)
            index = torch.repeat_interleave(shift, counts, output_size=total) + torch.arange(total)
            neighbours = col.index_select(0, index)
            fresh = ~visited.index_select(0, neighbours)
            neighbours = neighbours[fresh]
            if neighbours.numel() == 0:
                break
            parent = torch.repeat_interleave(torch.arange(frontier.numel()), counts,
                                             output_size=total)[fresh]
            nodes, slot = torch.unique(neighbours, return_inverse=True)   # ascending ids
            first_parent = torch.full((nodes.numel(),), total, dtype=torch.long).scatter_reduce_(
                0, slot, parent, "amin")
            key = first_parent * degree_span + degree.index_select(0, nodes)
            frontier = nodes.index_select(0, torch.argsort(key, stable=True))
            visited[frontier] = True
    order = torch.cat(levels) if levels else torch.zeros(0, dtype=torch.long)
    return order.flip(0)


def permuted_csr(crow: Tensor, col: Tensor, value: Tensor, order: Tensor, rank: Tensor
                 ) -> tuple[Tensor, Tensor, Tensor]:
    r"""CSR arrays of :math:`\mathbf{P}\mathbf{A}\mathbf{P}^\top` for a square CSR
    matrix: row ``k`` is row ``order[k]`` with every column ``j`` renamed ``rank[j]``,
    its entries in their stored order (so its columns are no longer ascending)."""
    crow = crow.long()
    lengths = crow.diff().index_select(0, order)
    new_crow = torch.zeros(order.numel() + 1, dtype=torch.long, device=crow.device)
    torch.cumsum(lengths, 0, out=new_crow[1:])
    total = int(new_crow[-1])
    shift = torch.repeat_interleave(crow.index_select(0, order) - new_crow[:-1], lengths,
                                    output_size=total)
    index = shift + torch.arange(total, device=crow.device)
    return new_crow, rank.index_select(0, col.long().index_select(0, index)), \
        value.index_select(0, index)


@dataclass(frozen=True)
class Reordering:
    """A renumbering of ``N`` nodes: node ``order[k]`` is numbered ``k``, and node ``j``
    is numbered ``rank[j]``."""

    order: Tensor
    rank: Tensor

    @classmethod
    def of(cls, order: Tensor) -> Reordering:
        """The renumbering that gives node ``order[k]`` the number ``k``."""
        rank = torch.empty_like(order)
        rank[order] = torch.arange(order.numel(), device=order.device)
        return cls(order, rank)

    def to(self, device: torch.device | str) -> Reordering:
        return Reordering(self.order.to(device), self.rank.to(device))

    def ranks(self, nodes: Tensor) -> Tensor:
        """The numbers of ``nodes``, in their order."""
        return self.rank.index_select(0, nodes)

    def gather(self, x: Tensor) -> Tensor:
        """``x`` (``[N, d]``, by node) by number: row ``k`` is ``x[order[k]]``."""
        return x.index_select(0, self.order)

    def restore(self, h: Tensor) -> Tensor:
        """The inverse of :meth:`gather`: ``h`` by number → by node."""
        return h.index_select(0, self.rank)


def locality_order(crow: Tensor, col: Tensor, size: int, symmetric: bool) -> Reordering:
    """The reverse Cuthill-McKee renumbering of a square CSR matrix's nodes (of
    :math:`A + A^\\top`'s pattern unless ``symmetric``), computed on the CPU."""
    crow, col = crow.long().cpu(), col.long().cpu()
    if not symmetric:
        crow, col = symmetric_pattern(crow, col, size)
    return Reordering.of(cuthill_mckee(crow, col, size))


#: Environment variable choosing when :func:`~ssgraphrec.sparse.propagate_mean` runs in
#: the locality order: ``auto`` (default: a matrix past the cache budget from its
#: :data:`REORDER_AFTER_PASSES`-th pass), ``on`` (past the budget, from the first pass:
#: for studies) or ``off``.
REORDER_ENV = "SSGRAPHREC_SPMM_REORDER"

#: Under ``auto``, a matrix is renumbered at its this-many-th pass with an operand past
#: the cache budget. The order and the renumbered copy of Gowalla's adjacency take about
#: 0.2 s, some twenty products; a pass of three products each way saves about 15 ms.
REORDER_AFTER_PASSES = 16


def reorder_setting() -> str:
    """``$SSGRAPHREC_SPMM_REORDER``: ``auto`` (unset or empty), ``on`` or ``off``."""
    text = os.environ.get(REORDER_ENV, "").strip().lower() or "auto"
    if text not in ("auto", "on", "off"):
        raise ConfigError(f"${REORDER_ENV} must be auto, on or off, got {text!r}")
    return text


def reorder_mode(value: str | None) -> AbstractContextManager[None]:
    """Run the code inside ``with`` at the setting ``value`` (``None``: unset, ``auto``),
    by setting :data:`REORDER_ENV`; restores it on exit."""
    return environment_variable(REORDER_ENV, value)


def reorder_wanted(x: Tensor) -> bool:
    """Whether a CPU pass on ``x`` (``[N, d]``) is worth the locality order: not ``off``,
    and ``x`` outgrows the cache budget (:func:`~ssgraphrec.sparse.blocks.cache_budget`,
    whatever ``$SSGRAPHREC_SPMM_BLOCK_BYTES`` says of blocks). While ``x`` fits the
    cache, the rows it gathers are there in any order (lastfm's adjacency, 19,524
    nodes, 64 columns: 0.93x per product on one thread)."""
    if reorder_setting() == "off" or x.device.type != "cpu":
        return False
    return x.numel() * x.element_size() > cache_budget()
