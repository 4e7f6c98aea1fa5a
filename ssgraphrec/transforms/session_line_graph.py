r"""DHCN's line graph channel: sessions adjacent when they share an item.

Xia et al., "Self-Supervised Hypergraph Convolutional Networks for
Session-based Recommendation", AAAI 2021, Sec. 3.3. The line graph of the
session hypergraph has a node per session; sessions :math:`s_p, s_q` sharing an
item are linked with weight

.. math::  W_{pq} = |S_p \cap S_q| \,/\, |S_p \cup S_q|

(:math:`S_p` the *set* of items of :math:`s_p`). With self-loops,
:math:`\hat{\mathbf{A}} = \mathbf{A} + \mathbf{I}`, and its row degrees
:math:`\hat{D}_{pp} = \sum_q \hat{A}_{pq}`, the convolution is
:math:`\hat{\mathbf{D}}^{-1}\hat{\mathbf{A}}\,\Theta`. The authors' code
(``get_overlap``) builds the line graph per mini-batch of sessions, because the
line graph of a whole training set has about :math:`\sum_i d_i^2` entries
(:math:`d_i` the number of sessions holding item :math:`i`), which popular items
make enormous; :func:`line_graph` therefore takes a ``subset`` of sessions.

The intersections are the non-zeros of the sparse product
:math:`\mathbf{H}^\top\mathbf{H}` (session x session, values = shared items);
the unions follow from the session sizes,
:math:`|S_p \cup S_q| = |S_p| + |S_q| - |S_p \cap S_q|`.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor
from torch_geometric.data import HeteroData
from torch_geometric.transforms import BaseTransform

from ..data.schema import CONTAINS, SESSION, sort_pairs
from ..errors import ConfigError
from ..sparse import Adjacency, adjacency_from_edges, sparse_product
from .base import EdgeType
from .session_ops import default_session_mask, num_sessions

#: Edge type under which :class:`SessionLineGraph` stores the line graph.
LINE_GRAPH = (SESSION, "overlaps", SESSION)
#: Default bound on the session-item-session paths of one line graph (see :func:`line_graph`).
MAX_PATHS = 1 << 28


class LineGraph(NamedTuple):
    """A session line graph on ``num_nodes`` sessions.

    Attributes:
        edge_index: ``[2, E]`` (session, session) pairs sorted by (row, column),
            the diagonal included.
        overlap: :math:`\\hat{A}_{pq}`: the Jaccard weight
            :math:`|S_p \\cap S_q| / |S_p \\cup S_q|` off the diagonal, 1 on it.
        weight: :math:`(\\hat{D}^{-1}\\hat{A})_{pq}`, the row-normalized operator.
        num_nodes: number of sessions (rows).
    """

    edge_index: Tensor
    overlap: Tensor
    weight: Tensor
    num_nodes: int


def line_graph(edge_index: Tensor, num_sessions: int, num_items: int, subset: Tensor | None = None,
               *, ptr: Tensor | None = None, dtype: torch.dtype = torch.float32,
               max_paths: int = MAX_PATHS) -> LineGraph:
    r"""The line graph :math:`\hat{\mathbf{A}} = \mathbf{A} + \mathbf{I}` of a set of sessions.

    Args:
        edge_index: ``[2, nnz]`` (session, item) incidences, in any order;
            repeated items count once.
        num_sessions, num_items: sizes of the id spaces.
        subset: the sessions to link: a ``[B]`` tensor of distinct session ids (a
            mini-batch, as DHCN) or a ``[num_sessions]`` boolean mask. Node
            ``k`` of the result is the ``k``-th session of the subset (for a
            mask: the ``k``-th selected session in id order). Default: all.
        ptr: the session CSR pointer of ``edge_index`` when it is sorted by
            session, as the schema's ``data['session', 'contains', 'item']`` is
            (:func:`~ssgraphrec.transforms.session_ops.session_pointer`). With
            it, a batch ``subset`` reads only its own incidences (cost
            ``O(batch incidences)``, not ``O(nnz + num_sessions)``): the way to
            call this once per mini-batch.
        dtype: dtype of ``overlap`` and ``weight`` (the Jaccard ratios are
            computed in float64 from exact counts, then cast).
        max_paths: refuse (``ConfigError``) a line graph with more
            session-item-session paths :math:`\sum_i d_i^2` than this, the
            memory of the product; build per batch instead.
    """
    ei = edge_index.long()
    device = ei.device
    if subset is not None and ptr is not None:
        ids = subset.to(device)
        ids = ids.nonzero().view(-1) if ids.dtype == torch.bool else ids.long()
        n = int(ids.numel())
        ptr = ptr.to(device)
        start, length = ptr[ids], ptr[ids + 1] - ptr[ids]
        row = torch.repeat_interleave(torch.arange(n, device=device), length)
        first = torch.cumsum(length, 0) - length
        where = start[row] + torch.arange(row.numel(), device=device) - first[row]
        return _line_graph(torch.stack([row, ei[1, where]]), n, num_items, dtype, max_paths)
    if subset is None:
        local = torch.arange(num_sessions, device=device)
        n = num_sessions
    else:
        subset = subset.to(device)
        ids = subset.nonzero().view(-1) if subset.dtype == torch.bool else subset.long()
        n = int(ids.numel())
        local = torch.full((num_sessions,), -1, dtype=torch.long, device=device)
        local[ids] = torch.arange(n, device=device)
        if n and int(torch.bincount(ids, minlength=num_sessions).max()) > 1:
            raise ValueError("line_graph: the subset names a session twice")
    row = local[ei[0]]
    return _line_graph(torch.stack([row, ei[1]])[:, row >= 0], n, num_items, dtype, max_paths)


def _line_graph(incidence: Tensor, n: int, num_items: int, dtype: torch.dtype,
                max_paths: int) -> LineGraph:
    """:func:`line_graph` of ``[2, nnz]`` (local session, item) incidences on ``n`` sessions."""
    device = incidence.device
    pairs = sort_pairs(incidence, num_items)
    item_deg = torch.bincount(pairs[1], minlength=num_items)
    paths = int((item_deg * item_deg).sum())
    if paths > max_paths:
        raise ConfigError(
            f"line_graph: {paths} session-item-session paths exceed max_paths={max_paths}; "
            "build the line graph per batch of sessions (subset=...), as DHCN does")
    size = torch.bincount(pairs[0], minlength=n).double()
    ones = torch.ones(pairs.size(1), dtype=torch.float64, device=device)
    index, inter = sparse_product(pairs, ones, (n, num_items), pairs.flip(0), ones, (num_items, n))
    p, q = index
    overlap = inter / (size[p] + size[q] - inter)
    empty = (size == 0).nonzero().view(-1)
    if empty.numel():  # A + I: a session without items still has its self-loop
        index = torch.cat([index, empty.expand(2, -1)], 1)
        overlap = torch.cat([overlap, torch.ones(empty.numel(), dtype=overlap.dtype, device=device)])
        order = torch.argsort(index[0] * n + index[1])
        index, overlap = index[:, order], overlap[order]
    deg = torch.zeros(n, dtype=torch.float64, device=device)
    deg.index_add_(0, index[0], overlap)
    weight = overlap / deg[index[0]]
    return LineGraph(index, overlap.to(dtype), weight.to(dtype), n)


class SessionLineGraph(BaseTransform):
    r"""Builds DHCN's session line graph (Xia et al. AAAI 2021, Sec. 3.3) over selected sessions.

    Reads ``data[edge_type]`` and adds the edge type
    ``('session', 'overlaps', 'session')`` over the sessions selected by
    ``mask`` (default: ``train_mask`` when present, else all), in global
    session ids (unselected sessions have no row), with

    * ``edge_index``: pairs of sessions sharing an item and every selected
      session's self-loop, sorted by (row, column);
    * ``overlap``: :math:`\hat{A}_{pq}` (Jaccard weight, 1 on the diagonal);
    * ``edge_weight``: :math:`(\hat{D}^{-1}\hat{A})_{pq}`, DHCN's
      row-normalized operator.

    For a large training set use :func:`line_graph` per batch instead (see
    ``max_paths``). A structure builder, deterministic, not registered for
    ``--aug``.
    """

    def __init__(self, mask: str | None = None, edge_type: EdgeType = CONTAINS,
                 dtype: torch.dtype = torch.float32, max_paths: int = MAX_PATHS):
        self.mask = mask
        self.edge_type = tuple(edge_type)
        self.dtype = dtype
        self.max_paths = int(max_paths)

    def forward(self, data: HeteroData) -> HeteroData:
        if self.edge_type not in data.edge_types:
            raise ConfigError(f"SessionLineGraph: the data has no edge type {self.edge_type}")
        n = num_sessions(data)
        mask = default_session_mask(data, self.mask)
        ids = None if mask is None else mask.nonzero().view(-1)
        graph = line_graph(data[self.edge_type].edge_index, n, int(data[self.edge_type[2]].num_nodes),
                           ids, dtype=self.dtype, max_paths=self.max_paths)
        index = graph.edge_index if ids is None else ids.to(graph.edge_index.device)[graph.edge_index]
        store = data[LINE_GRAPH]
        store.edge_index = index
        store.overlap = graph.overlap
        store.edge_weight = graph.weight
        return data

    def __repr__(self) -> str:
        return f"{type(self).__name__}(mask={self.mask!r})"


def line_graph_adjacency(graph: LineGraph | HeteroData, backend: str = "torch") -> Adjacency:
    r""":math:`\hat{D}^{-1}\hat{A}` as an :class:`~ssgraphrec.sparse.Adjacency` (not symmetric),
    from a :class:`LineGraph` or from the output of :class:`SessionLineGraph`."""
    if isinstance(graph, LineGraph):
        return adjacency_from_edges(graph.edge_index, graph.weight, graph.num_nodes, backend=backend)
    if LINE_GRAPH not in graph.edge_types:
        raise KeyError(f"no {LINE_GRAPH} in the data; apply SessionLineGraph first")
    store = graph[LINE_GRAPH]
    return adjacency_from_edges(store.edge_index, store.edge_weight, num_sessions(graph),
                                backend=backend)
