"""Graph diffusion: add each user's most similar not-yet-connected items as edges."""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.data import HeteroData
from torch_geometric.transforms import BaseTransform

from ..data.schema import INTERACTS
from ..errors import ConfigError
from ..sparse import segment_pointer
from .base import EDGE_ATTRS, EdgeType, edge_ids, register_augmentation

SIMILARITIES = ("dot", "cosine")
#: The node attribute that carries the model's current embeddings into the transform.
EMBEDDING = "emb"


def with_embeddings(data: HeteroData, user_emb: Tensor, item_emb: Tensor,
                    node_types: tuple[str, str] = ("user", "item")) -> HeteroData:
    """A shallow copy of ``data`` whose user and item stores carry ``emb``: the (detached)
    embeddings :class:`GraphDiffusion` scores pairs with. ``data`` is not changed."""
    out = copy.copy(data)
    out[node_types[0]][EMBEDDING] = user_emb.detach()
    out[node_types[1]][EMBEDDING] = item_emb.detach()
    return out


def edge_id_base(store) -> int:
    """The number of edges of the store before any transform subset it.

    Edges a transform adds get ids from here up, so that they can never be
    mistaken for original edges. Recorded as ``num_base_edges`` by
    :func:`ssgraphrec.transforms.base.keep_edges`; a store never subset has
    all its original edges.
    """
    if "num_base_edges" in store:
        return int(store.num_base_edges)
    if "e_id" not in store:
        return int(store.edge_index.size(1))
    raise ValueError("graph_diffusion: the edge store has e_id but no num_base_edges, so the "
                     "original edge count (the first id free for added edges) is unknown")


@register_augmentation("graph_diffusion")
class GraphDiffusion(BaseTransform):
    r"""Add each user's ``k`` most similar unconnected items as edges (``graph_diffusion``).

    The similarity of user ``u`` and item ``i`` is the score of the current
    model, :math:`\langle \mathbf{e}_u, \mathbf{e}_i \rangle` (``"dot"``) or its
    cosine (``"cosine"``): the view diffuses the graph along the model's own
    predictions, adding the ``k`` highest-scoring unobserved user-item pairs of
    each user as edges (fewer for a user with fewer than ``k`` items left). A
    pair is "unobserved" when it is not an edge of the input store, so after
    ``edge_drop`` a dropped training edge may come back as an added edge.

    Scores are computed in batches of ``batch_size`` users with ``torch.topk``
    (memory ``O(batch_size * I)``, time ``O(U I d)``); the input's edges are
    masked with one sort of the edge list. The added edges are appended after
    the existing ones, ordered by user and then by decreasing score, and are
    recorded in ``e_id`` with ids ``>= the original edge count`` (see
    :func:`edge_id_base`), so :func:`ssgraphrec.sparse.view_adjacency` knows to
    build the view from its explicit edge list. After ``random_walk`` the new
    ids are appended to every layer's ``layer_e_id`` as well. ``edge_weight``
    of added edges is 1; other per-edge attributes (``time``, ``position``,
    ``edge_attr``) have no value for an added edge and are refused.

    The embeddings are read at call time from the data, as node attributes
    ``emb`` of the user and item stores (:func:`with_embeddings`); the transform
    holds no model state. SGL attaches its current embeddings at the start of
    every epoch.

    Args:
        k: edges added per user (>= 1). Not a published setting: 5 is a small
            addition next to typical user degrees.
        similarity: ``"dot"`` or ``"cosine"``.
        batch_size: users scored at once.
        edge_type: the (user, rel, item) edge type acted on.
    """

    name = "graph_diffusion"

    #: Reads the model's embeddings from the data (``emb``; :func:`with_embeddings`).
    uses_embeddings = True

    def __init__(self, k: int = 5, similarity: str = "dot", batch_size: int = 1024,
                 edge_type: EdgeType = INTERACTS):
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ConfigError(f"GraphDiffusion k must be an integer >= 1, got {k!r}")
        if similarity not in SIMILARITIES:
            raise ConfigError(f"GraphDiffusion similarity must be one of {', '.join(SIMILARITIES)}, "
                              f"got {similarity!r}")
        if batch_size < 1:
            raise ConfigError(f"GraphDiffusion batch_size must be >= 1, got {batch_size}")
        self.k = k
        self.similarity = similarity
        self.batch_size = batch_size
        self.edge_type = tuple(edge_type)

    def forward(self, data: HeteroData) -> HeteroData:
        if self.edge_type not in data.edge_types:
            raise KeyError(f"GraphDiffusion: the data has no edge type {self.edge_type}")
        store = data[self.edge_type]
        src_type, _, dst_type = self.edge_type
        if EMBEDDING not in data[src_type] or EMBEDDING not in data[dst_type]:
            raise ValueError("GraphDiffusion needs the current embeddings on the data: "
                             f"data[{src_type!r}].{EMBEDDING} and data[{dst_type!r}].{EMBEDDING} "
                             "(with_embeddings(data, users, items); SGL does so every epoch)")
        users, items = data[src_type][EMBEDDING], data[dst_type][EMBEDDING]
        num_users, num_items = data[src_type].num_nodes, data[dst_type].num_nodes
        if users.dim() != 2 or items.dim() != 2 or users.size(1) != items.size(1):
            raise ValueError(f"GraphDiffusion: embeddings must be [U, d] and [I, d], got "
                             f"{tuple(users.shape)} and {tuple(items.shape)}")
        if users.size(0) != num_users or items.size(0) != num_items:
            raise ValueError(f"GraphDiffusion: embeddings for {users.size(0)} users and "
                             f"{items.size(0)} items, the data has {num_users} and "
                             f"{num_items}")
        refused = [key for key in EDGE_ATTRS if key in store and key not in ("e_id", "edge_weight")]
        if refused:
            raise ValueError(f"GraphDiffusion cannot give added edges a value of {refused}")
        new_edges = self.top_unobserved(store.edge_index, users, items)
        self._append(store, new_edges)
        return data

    @torch.no_grad()
    def top_unobserved(self, edge_index: Tensor, users: Tensor, items: Tensor) -> Tensor:
        """``[2, n]`` the ``k`` best-scoring (user, item) pairs of each user that are not in
        ``edge_index``, by user and then by decreasing score of ``users @ items.T``."""
        device = edge_index.device
        num_users, num_items = users.size(0), items.size(0)
        users, items = users.to(device), items.to(device)
        if self.similarity == "cosine":
            users, items = F.normalize(users, dim=-1), F.normalize(items, dim=-1)
        order = torch.argsort(edge_index[0], stable=True)
        eu, ei = edge_index[0, order], edge_index[1, order]
        crow = segment_pointer(eu, num_users)
        k = min(self.k, num_items)
        out_u, out_i = [], []
        for start in range(0, num_users, self.batch_size):
            end = min(start + self.batch_size, num_users)
            scores = users[start:end] @ items.t()
            lo, hi = int(crow[start]), int(crow[end])
            scores[eu[lo:hi] - start, ei[lo:hi]] = float("-inf")
            top = torch.topk(scores, k, dim=1)
            valid = top.values > float("-inf")  # users with fewer than k items left
            rows = torch.arange(start, end, device=device)[:, None].expand(-1, k)
            out_u.append(rows[valid])
            out_i.append(top.indices[valid])
        if not out_u:
            return torch.empty(2, 0, dtype=torch.long, device=device)
        return torch.stack([torch.cat(out_u), torch.cat(out_i)])

    def _append(self, store, new_edges: Tensor) -> None:
        base = edge_id_base(store)
        old_ids = edge_ids(store)
        first = max(base, int(old_ids.max()) + 1 if old_ids.numel() else 0)
        new_ids = torch.arange(first, first + new_edges.size(1), device=old_ids.device)
        n_new = new_edges.size(1)
        if "edge_weight" in store:
            w = store.edge_weight
            store.edge_weight = torch.cat([w, w.new_ones(n_new)])
        store.edge_index = torch.cat([store.edge_index, new_edges.to(store.edge_index.dtype)], 1)
        store.e_id = torch.cat([old_ids, new_ids])
        store.num_base_edges = base
        if "layer_e_id" in store:
            store.layer_e_id = [torch.cat([e, new_ids.to(e.device)]) for e in store.layer_e_id]

    def __repr__(self) -> str:
        return (f"GraphDiffusion(k={self.k}, similarity={self.similarity!r}, "
                f"edge_type={self.edge_type})")
