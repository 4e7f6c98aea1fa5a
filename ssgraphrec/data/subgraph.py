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

Everything is computed for the whole batch at once, and no loop runs over
edges or nodes. For ``h = 1`` (BiGI's setting) the candidates are read
straight from the CSR rows of ``u`` and ``v`` (plus the other seed), and the
sample is the first ``num_neighbors`` of each row after one sort by (row,
seeded random key): ``O(B d log(B d))`` work for mean degree ``d``. For
``h > 1`` the reachable set is a dense ``[U + I, B]`` indicator grown by
``h`` sparse products with the (unnormalised, undirected) bipartite
adjacency, and the sample is the top ``num_neighbors`` of seeded random keys
on the reached entries. Both give a uniform sample without replacement of
the same set.
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

    Grown in the ``[N, B]`` layout of the sparse product (no strided add),
    returned as its transpose (a view).

    Args:
        adj: 0/1 adjacency over ``N`` nodes (:func:`reach_adjacency`).
        seeds: ``[B, S]`` node ids, the seeds of each row.
        hops: ``h >= 0``.
    """
    reach = torch.zeros(adj.size, seeds.size(0), device=seeds.device)
    reach.scatter_(0, seeds.long().t(), 1.0)
    for _ in range(hops):  # h sparse products on the whole batch
        reach = ((reach + adj.matmul(reach)) > 0).float()
    return reach.bool().t()


def _sample_rows(adj: Adjacency, rows: Tensor, extra: Tensor, offset: int, width: int,
                 k: int, generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
    """Up to ``k`` of ``{c - offset : c in row r of adj} | {extra}`` per ``r`` in ``rows``.

    A uniform sample without replacement of each row's neighbours together
    with one extra node (added when not already a neighbour), as ``[B,
    min(k, width)]`` padded ids and a mask.
    """
    device = rows.device
    crow, col = adj.crow.long(), adj.col.long()
    b = rows.numel()
    start, deg = crow[rows], crow[rows + 1] - crow[rows]
    owner = torch.repeat_interleave(torch.arange(b, device=device), deg)          # [T]
    first = torch.cumsum(deg, 0) - deg
    nodes = col[start[owner] + torch.arange(owner.numel(), device=device) - first[owner]]
    # The extra node joins its row unless it is one of the row's neighbours already.
    hit = nodes == (extra + offset)[owner]
    add = torch.bincount(owner[hit], minlength=b) == 0
    owner = torch.cat([owner, torch.arange(b, device=device)[add]])
    nodes = torch.cat([nodes - offset, extra[add]])
    # A seeded random order within each row: sort by (row, key); keep the first k.
    gen_device = generator.device if generator is not None else device
    rand = torch.rand(owner.numel(), generator=generator, device=gen_device,
                      dtype=torch.float64).to(device)
    order = torch.argsort(owner.double() + rand)
    owner, nodes = owner[order], nodes[order]
    count = torch.bincount(owner, minlength=b)
    rank = torch.arange(owner.numel(), device=device) - (torch.cumsum(count, 0) - count)[owner]
    k = min(k, width)
    keep = rank < k
    idx = torch.zeros(b, k, dtype=torch.long, device=device)
    mask = torch.zeros(b, k, dtype=torch.bool, device=device)
    idx[owner[keep], rank[keep]] = nodes[keep]
    mask[owner[keep], rank[keep]] = True
    return idx, mask


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
    u, v = edges[0].long(), edges[1].long()
    num_items = adj.size - num_users
    if hops == 1:
        users, user_mask = _sample_rows(adj, v + num_users, u, 0, num_users, num_neighbors,
                                        generator)
        items, item_mask = _sample_rows(adj, u, v, num_users, num_items, num_neighbors,
                                        generator)
        return EnclosingSubgraphs(users, user_mask, items, item_mask)
    reach = reachable(adj, torch.stack([u, v + num_users], 1), hops)
    users, user_mask = _sample(reach[:, :num_users], num_neighbors, generator)
    items, item_mask = _sample(reach[:, num_users:], num_neighbors, generator)
    return EnclosingSubgraphs(users, user_mask, items, item_mask)
