"""The user-item graph and the adjacency of its augmented views.

Dropping edges from a sorted edge list keeps it sorted, so
:class:`BipartiteGraph` builds the adjacency of an augmented view (a subset of
the training edges, given by their ids ``e_id``) with masks and prefix sums
only, without a re-sort; :func:`view_adjacency` picks that path or, for views
that add edges, :func:`bipartite_adjacency` of the explicit edge list.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .kernels import Adjacency, adjacency_from_edges


class BipartiteGraph:
    """The user-item graph, held in the two sorted orders the adjacency needs.

    The bipartite graph with ``U`` users and ``I`` items becomes an
    undirected graph on ``U + I`` nodes (users first, items offset by ``U``).
    Its symmetric normalized adjacency (LightGCN, He et al. SIGIR 2020, Eq. 7)

    ``A_hat = D^-1/2 [[0, R], [R^T, 0]] D^-1/2``

    is written in CSR as user rows (edges in (user, item) order) followed by
    item rows (the same edges in (item, user) order). Both orders are computed
    once here; any subset of edges (an augmented view) keeps both orders, so
    building its adjacency needs no sort.

    Args:
        edge_index: ``[2, E]`` user and item ids (duplicates are merged).
        num_users: ``U``.
        num_items: ``I``.
        edge_weight: optional ``[E]`` weights (default 1).
    """

    def __init__(self, edge_index: Tensor, num_users: int, num_items: int,
                 edge_weight: Tensor | None = None):
        edge_index = edge_index.long()
        key = edge_index[0] * num_items + edge_index[1]
        key, order = torch.sort(key)
        unique = torch.ones_like(key, dtype=torch.bool)
        unique[1:] = key[1:] != key[:-1]
        order = order[unique]
        self.num_users = int(num_users)
        self.num_items = int(num_items)
        self.user = edge_index[0, order]
        self.item = edge_index[1, order]
        self.weight = None if edge_weight is None else edge_weight[order].float()
        # (item, user) order of the same edges, as a permutation of the user order.
        self.by_item = torch.argsort(self.item * num_users + self.user)

    @property
    def num_edges(self) -> int:
        return int(self.user.numel())

    @property
    def num_nodes(self) -> int:
        return self.num_users + self.num_items

    @property
    def device(self) -> torch.device:
        return self.user.device

    def edge_index(self) -> Tensor:
        """``[2, E]`` edges in (user, item) order."""
        return torch.stack([self.user, self.item])

    def keep_mask(self, e_id: Tensor | None) -> Tensor | None:
        """Boolean mask over this graph's edges for the edge ids ``e_id``."""
        if e_id is None:
            return None
        keep = torch.zeros(self.num_edges, dtype=torch.bool, device=self.device)
        keep[e_id.to(self.device)] = True
        return keep

    def normalized_adjacency(self, e_id: Tensor | None = None, backend: str = "torch",
                             dtype: torch.dtype = torch.float32) -> Adjacency:
        """Symmetric normalized adjacency of the graph, or of the view ``e_id``.

        Degrees are those of the view itself, as SGL re-normalizes each
        augmented graph (Wu et al. SIGIR 2021, Eq. 2 applied to ``s(G)``).
        Isolated nodes get an all-zero row.
        """
        keep = self.keep_mask(e_id)
        U = self.num_users
        if keep is None:
            user_order = torch.arange(self.num_edges, device=self.device)
            item_order = self.by_item
        else:
            user_order = keep.nonzero().view(-1)
            item_order = self.by_item[keep[self.by_item]]
        u, i = self.user[user_order], self.item[user_order]
        w = torch.ones(u.numel(), dtype=dtype, device=self.device) if self.weight is None \
            else self.weight[user_order].to(dtype)
        deg = torch.zeros(self.num_nodes, dtype=dtype, device=self.device)
        deg.index_add_(0, u, w)
        deg.index_add_(0, i + U, w)
        dinv = deg.pow(-0.5)
        dinv[torch.isinf(dinv)] = 0.0
        w_edge = torch.zeros(self.num_edges, dtype=dtype, device=self.device)
        w_edge[user_order] = dinv[u] * w * dinv[i + U]
        counts = torch.cat([
            torch.bincount(u, minlength=U),
            torch.bincount(self.item[item_order], minlength=self.num_items),
        ])
        crow = torch.zeros(self.num_nodes + 1, dtype=torch.long, device=self.device)
        crow[1:] = torch.cumsum(counts, 0)
        col = torch.cat([i + U, self.user[item_order]])
        value = torch.cat([w_edge[user_order], w_edge[item_order]])
        return Adjacency(crow, col, value, self.num_nodes, symmetric=True, backend=backend)


def bipartite_adjacency(edge_index: Tensor, num_users: int, num_items: int,
                        edge_weight: Tensor | None = None, backend: str = "torch",
                        dtype: torch.dtype = torch.float32) -> Adjacency:
    """Symmetric normalized adjacency of an explicit user-item edge list.

    For views that *add* edges (e.g. :class:`ssgraphrec.transforms.GraphDiffusion`),
    which the subset path of :meth:`BipartiteGraph.normalized_adjacency` cannot
    express. Cost: a fresh :class:`BipartiteGraph`, i.e. two sorts of the view's
    ``E'`` edges (``O(E' log E')``), where a subset view needs only masks and
    prefix sums (``O(E)``); paid once per view per epoch.
    """
    return BipartiteGraph(edge_index, num_users, num_items, edge_weight).normalized_adjacency(
        backend=backend, dtype=dtype)


def _edges_of_ids(graph: BipartiteGraph, store, e_id: Tensor) -> tuple[Tensor, Tensor | None]:
    """``[2, len(e_id)]`` edges with ids ``e_id`` and their weights (``None`` if unweighted).

    Ids below ``graph.num_edges`` name the graph's edges; larger ids name edges a
    transform added, looked up in the store's ``e_id`` / ``edge_index``
    (weight 1).
    """
    E = graph.num_edges
    e_id = e_id.to(graph.device)
    orig = e_id < E
    user = torch.empty_like(e_id)
    item = torch.empty_like(e_id)
    user[orig], item[orig] = graph.user[e_id[orig]], graph.item[e_id[orig]]
    added = ~orig
    if bool(added.any()):
        store_ids = store.e_id.to(graph.device)
        pos = (store_ids >= E).nonzero().view(-1)
        table = torch.full((int(store_ids.max()) - E + 1,), -1, dtype=torch.long,
                           device=graph.device)
        table[store_ids[pos] - E] = pos
        wanted = e_id[added] - E
        if bool((wanted >= table.numel()).any()) or bool((table[wanted] < 0).any()):
            raise ValueError("view_adjacency: an added edge id has no edge in the store")
        where = table[wanted]
        ei = store.edge_index.to(graph.device)
        user[added], item[added] = ei[0, where], ei[1, where]
    weight = None
    if graph.weight is not None:
        weight = torch.ones(e_id.numel(), dtype=graph.weight.dtype, device=graph.device)
        weight[orig] = graph.weight[e_id[orig]]
    return torch.stack([user, item]), weight


def _ids_adjacency(graph: BipartiteGraph, store, e_id: Tensor, backend: str) -> Adjacency:
    if e_id.numel() == 0 or int(e_id.max()) < graph.num_edges:
        return graph.normalized_adjacency(e_id, backend)  # a subset: no sort needed
    edges, weight = _edges_of_ids(graph, store, e_id)
    return bipartite_adjacency(edges, graph.num_users, graph.num_items, weight, backend)


def view_adjacency(graph: BipartiteGraph, store, backend: str = "torch") -> Adjacency | list[Adjacency]:
    """Adjacency of an augmented view's edge store (see :mod:`ssgraphrec.transforms`).

    A store with ``layer_e_id`` (random walk) gives one adjacency per layer; a
    store with ``e_id`` gives the adjacency of those edges; otherwise the
    whole graph's. Edge ids ``>= graph.num_edges`` are edges a transform added
    (graph diffusion); a view with any of them is built from its explicit
    edge list (:func:`bipartite_adjacency`), a pure subset without a sort.
    """
    if "layer_e_id" in store:
        return [_ids_adjacency(graph, store, e, backend) for e in store.layer_e_id]
    if "e_id" in store:
        return _ids_adjacency(graph, store, store.e_id, backend)
    return graph.normalized_adjacency(None, backend)


def bipartite_row_normalized(edge_index: Tensor, num_users: int, num_items: int,
                             backend: str = "torch") -> Adjacency:
    r"""The block matrix :math:`\begin{pmatrix}0 & D_U^{-1}A\\ D_I^{-1}A^\top & 0\end{pmatrix}`.

    One product with ``[x_users; x_items]`` gives ``[mean of each user's
    items; mean of each item's users]``: BiGI's row-normalised ``UV`` and
    ``VU`` matrices (``utils/GraphMaker.py``, ``normalize``) in one
    (non-symmetric) :class:`~ssgraphrec.sparse.Adjacency`; a node without
    edges gets zeros.
    """
    u, i = edge_index[0].long(), edge_index[1].long()
    n = num_users + num_items
    deg_u = torch.bincount(u, minlength=num_users).float()
    deg_i = torch.bincount(i, minlength=num_items).float()
    rows = torch.cat([u, i + num_users])
    cols = torch.cat([i + num_users, u])
    vals = torch.cat([1.0 / deg_u[u], 1.0 / deg_i[i]])
    order = torch.argsort(rows * n + cols)
    return adjacency_from_edges(torch.stack([rows[order], cols[order]]), vals[order], n,
                                symmetric=False, backend=backend)
