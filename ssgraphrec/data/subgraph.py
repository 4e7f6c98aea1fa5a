"""h-hop enclosing sub-graphs of a batch of user-item edges, vectorised.

Cao et al., "Bipartite Graph Embedding via Mutual Information Maximization"
(BiGI), WSDM 2021, Sec. 3.3: an edge ``(u, v)`` is represented by its h-hop
enclosing sub-graph, the nodes within ``h`` hops of ``u`` or of ``v``; BiGI's
subgraph-level attention reads the sub-graph out from the user's side (``u``
attends over the sub-graph's items) and from the item's side (``v`` attends
over its users). For ``h = 1`` the sub-graph's items are ``u``'s neighbours
(``v`` among them) and its users ``v``'s neighbours (``u`` among them),
exactly the neighbour lists of the authors' ``AttDGI``; like their loader
(``--min_neighbor 100``), at most ``num_neighbors`` of each side are kept, a
uniform sample without replacement.

Everything is computed for the whole batch at once: the reachable set is a
dense ``[B, U + I]`` indicator grown by ``h`` sparse products with the
(unnormalised, undirected) bipartite adjacency, and the sample is the top
``num_neighbors`` of seeded random keys on the reached entries. No loop runs
over edges or nodes.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from ..sparse import Adjacency, adjacency_from_edges
from .schema import sort_pairs


class EnclosingSubgraphs(NamedTuple):
    """Padded node lists of a batch of sub-graphs (row ``b`` is edge ``b``).

    ``users`` / ``items``: ``[B, K]`` ids (0 where padded); ``user_mask`` /
    ``item_mask``: ``[B, K]`` booleans, True on real entries.
    """

    users: Tensor
    user_mask: Tensor
    items: Tensor
    item_mask: Tensor


def reach_adjacency(edge_index: Tensor, num_users: int, num_items: int) -> Adjacency:
    """0/1 symmetric adjacency over ``U + I`` nodes (users first) for reachability."""
    u, i = edge_index[0].long(), edge_index[1].long() + num_users
    both = sort_pairs(torch.stack([torch.cat([u, i]), torch.cat([i, u])]), num_users + num_items)
    ones = torch.ones(both.size(1), device=both.device)
    return adjacency_from_edges(both, ones, num_users + num_items, symmetric=True)


def reachable(adj: Adjacency, seeds: Tensor, hops: int) -> Tensor:
    """``[B, N]`` booleans: nodes within ``hops`` hops of any seed of each row.

    Args:
        adj: 0/1 adjacency over ``N`` nodes (:func:`reach_adjacency`).
        seeds: ``[B, S]`` node ids, the seeds of each row.
        hops: ``h >= 0``.
    """
    reach = torch.zeros(seeds.size(0), adj.size, device=seeds.device)
    reach.scatter_(1, seeds.long(), 1.0)
    for _ in range(hops):  # h sparse products on the whole batch
        reach = ((reach + adj.matmul(reach.t().contiguous()).t()) > 0).float()
    return reach.bool()


def _sample(reached: Tensor, k: int, generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
    """Up to ``k`` reached columns per row, uniformly without replacement."""
    k = min(k, reached.size(1))
    gen_device = generator.device if generator is not None else reached.device
    keys = torch.rand(reached.shape, generator=generator, device=gen_device).to(reached.device)
    keys = torch.where(reached, keys, torch.full_like(keys, -1.0))
    top, idx = torch.topk(keys, k, dim=1)
    mask = top >= 0
    return torch.where(mask, idx, torch.zeros_like(idx)), mask


def enclosing_subgraphs(adj: Adjacency, edges: Tensor, num_users: int, hops: int = 1,
                        num_neighbors: int = 100,
                        generator: torch.Generator | None = None) -> EnclosingSubgraphs:
    """The h-hop enclosing sub-graphs of ``edges`` (``[2, B]`` user, item pairs).

    Args:
        adj: :func:`reach_adjacency` of the training graph.
        edges: the batch's edges.
        num_users: ``U`` (item ``i`` is node ``U + i`` of ``adj``).
        hops: ``h >= 1``.
        num_neighbors: at most this many users and this many items per
            sub-graph (a seeded uniform sample when there are more).
        generator: the seeded generator of the sample.
    """
    if hops < 1:
        raise ValueError(f"hops must be >= 1, got {hops}")
    if num_neighbors < 1:
        raise ValueError(f"num_neighbors must be >= 1, got {num_neighbors}")
    seeds = torch.stack([edges[0].long(), edges[1].long() + num_users], 1)
    reach = reachable(adj, seeds, hops)
    users, user_mask = _sample(reach[:, :num_users], num_neighbors, generator)
    items, item_mask = _sample(reach[:, num_users:], num_neighbors, generator)
    return EnclosingSubgraphs(users, user_mask, items, item_mask)
