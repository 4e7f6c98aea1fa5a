r"""DHCN's hypergraph convolution operator: sessions as hyperedges over items.

Xia et al., "Self-Supervised Hypergraph Convolutional Networks for
Session-based Recommendation", AAAI 2021, Sec. 3.2, Eq. 2: items are nodes,
each session is a hyperedge, and one convolution layer is

.. math::
    \mathbf{X}^{(l+1)} = \mathbf{D}^{-1}\mathbf{H}\mathbf{W}\mathbf{B}^{-1}\mathbf{H}^\top \mathbf{X}^{(l)}

with the item x session incidence :math:`\mathbf{H}` (0/1: an item repeated in
a session counts once), the hyperedge weights :math:`\mathbf{W}` (the identity
in DHCN: every session weighs 1), the node degrees
:math:`D_{ii} = \sum_\epsilon W_{\epsilon\epsilon} H_{i\epsilon}` and the
hyperedge degrees :math:`B_{\epsilon\epsilon} = \sum_i H_{i\epsilon}` (session
sizes). The item x item operator is formed once by a sparse product, never
densely.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch_geometric.data import HeteroData
from torch_geometric.transforms import BaseTransform

from ..data.schema import CONTAINS, ITEM
from ..errors import ConfigError
from ..sparse import Adjacency, adjacency_from_edges, sparse_product
from .base import EdgeType
from .session_ops import default_session_mask, incidence_pairs

#: Edge type under which :class:`SessionHypergraph` stores the operator.
HYPERGRAPH = (ITEM, "hypergraph", ITEM)


def hypergraph_operator(pairs: Tensor, num_sessions: int, num_items: int,
                        weight: Tensor | None = None) -> tuple[Tensor, Tensor]:
    r"""``(edge_index, value)`` of :math:`\mathbf{D}^{-1}\mathbf{H}\mathbf{W}\mathbf{B}^{-1}\mathbf{H}^\top`.

    Args:
        pairs: ``[2, nnz]`` distinct (session, item) pairs (see
            :func:`~ssgraphrec.transforms.session_ops.incidence_pairs`).
        num_sessions, num_items: sizes of the id spaces.
        weight: optional ``[num_sessions]`` non-negative hyperedge weights
            (default: 1 each, as DHCN).

    Returns:
        ``[2, E]`` (item, item) pairs sorted by (row, column) and their values.
        Rows of items in no (positively weighted) session are empty.
    """
    session, item = pairs[0].long(), pairs[1].long()
    dtype = torch.float32 if weight is None else weight.dtype
    w = torch.ones(num_sessions, dtype=dtype, device=pairs.device) if weight is None \
        else weight.to(pairs.device)
    size = torch.bincount(session, minlength=num_sessions).to(dtype)                # B
    deg = torch.zeros(num_items, dtype=dtype, device=pairs.device)                  # D
    deg.index_add_(0, item, w[session])
    deg_inv = torch.where(deg > 0, 1.0 / deg, torch.zeros_like(deg))
    left = deg_inv[item] * w[session] / size[session]                               # D^-1 H W B^-1
    index, value = sparse_product(
        torch.stack([item, session]), left, (num_items, num_sessions),
        pairs, torch.ones(session.numel(), dtype=dtype, device=pairs.device),
        (num_sessions, num_items))
    keep = value != 0
    return index[:, keep], value[keep]


class SessionHypergraph(BaseTransform):
    r"""Builds DHCN's hypergraph operator (Xia et al. AAAI 2021, Eq. 2) from the sessions.

    Reads the incidences ``data[edge_type]`` of the sessions selected by
    ``mask`` (default: ``train_mask`` when the data has one, else every
    session) and adds the edge type ``('item', 'hypergraph', 'item')`` with

    * ``edge_index``: the non-zero (item, item) pairs, sorted by (row, column);
    * ``edge_weight``: :math:`(\mathbf{D}^{-1}\mathbf{H}\mathbf{W}\mathbf{B}^{-1}\mathbf{H}^\top)_{ij}`.

    Stored as an edge type (not as an :class:`~ssgraphrec.sparse.Adjacency`)
    so that it moves, copies and saves with the data like every other store;
    :func:`hypergraph_adjacency` turns it into an ``Adjacency`` for
    :func:`~ssgraphrec.sparse.propagate_mean`. A structure builder, deterministic,
    not registered for ``--aug``.

    Args:
        mask: name of a boolean session attribute selecting the hyperedges.
        weight: name of a session attribute holding hyperedge weights
            (default: none, i.e. :math:`\mathbf{W} = \mathbf{I}` as DHCN).
        edge_type: the session-item edge type read.
    """

    def __init__(self, mask: str | None = None, weight: str | None = None,
                 edge_type: EdgeType = CONTAINS):
        self.mask = mask
        self.weight = weight
        self.edge_type = tuple(edge_type)

    def forward(self, data: HeteroData) -> HeteroData:
        if self.edge_type not in data.edge_types:
            raise ConfigError(f"SessionHypergraph: the data has no edge type {self.edge_type}")
        src, _, dst = self.edge_type
        n_sessions, n_items = int(data[src].num_nodes), int(data[dst].num_nodes)
        weight = None
        if self.weight is not None:
            if self.weight not in data[src]:
                raise ConfigError(f"SessionHypergraph: the data has no {src} attribute {self.weight!r}")
            weight = data[src][self.weight].float()
            if bool((weight < 0).any()):
                raise ConfigError("SessionHypergraph: hyperedge weights must be non-negative")
        pairs = incidence_pairs(data, default_session_mask(data, self.mask), self.edge_type)
        index, value = hypergraph_operator(pairs, n_sessions, n_items, weight)
        store = data[(dst, HYPERGRAPH[1], dst)]
        store.edge_index = index
        store.edge_weight = value
        return data

    def __repr__(self) -> str:
        return f"{type(self).__name__}(mask={self.mask!r}, weight={self.weight!r})"


def hypergraph_adjacency(data: HeteroData, backend: str = "torch") -> Adjacency:
    """The operator stored by :class:`SessionHypergraph`, ready for
    :func:`~ssgraphrec.sparse.propagate_mean` (not symmetric)."""
    if HYPERGRAPH not in data.edge_types:
        raise KeyError(f"no {HYPERGRAPH} in the data; apply SessionHypergraph first")
    store = data[HYPERGRAPH]
    return adjacency_from_edges(store.edge_index, store.edge_weight, int(data[ITEM].num_nodes),
                                symmetric=False, backend=backend)

