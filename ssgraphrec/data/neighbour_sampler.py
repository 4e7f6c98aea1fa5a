"""K-shot neighbour sampling on the user-item graph, vectorised over nodes.

PT-GNN (Hao et al., "Pre-Training Graph Neural Networks for Cold-Start Users
and Items Representation", WSDM 2021, Sec. 3.2 and 4.1) simulates a cold-start
node by showing the model only ``K`` of its neighbours, and each of those only
``K`` of theirs, down to ``L`` hops: a K-ary tree of sampled neighbourhoods.

The graph is held as one symmetric CSR over ``U + I`` nodes (users first, items
offset by ``U``). :meth:`NeighbourTable.shuffle` draws a random order of every
node's neighbours at once (random keys, one sort of all entries); a draw then
takes ``K`` consecutive entries of that order from a random start, wrapping
around, which gives ``K`` distinct neighbours per node (all of them, padded and
masked, when the node has fewer than ``K``) with index arithmetic only.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..sparse import BipartiteGraph


@dataclass
class NeighbourTree:
    """A K-ary tree of sampled neighbourhoods below a batch of root nodes.

    Attributes:
        nodes: ``nodes[d]`` holds the global node ids at depth ``d``, shape
            ``[B, K, ..., K]`` (``d`` times ``K``); ``nodes[0]`` are the roots.
        mask: ``mask[d]``, same shape: whether the slot holds a real neighbour
            (a slot is empty when its parent has fewer than ``K`` neighbours or
            is itself empty, or when it would show the root to itself).
    """

    nodes: list[Tensor]
    mask: list[Tensor]

    @property
    def depth(self) -> int:
        return len(self.nodes) - 1


class NeighbourTable:
    """Symmetric CSR of the user-item graph with per-node random neighbour orders.

    Args:
        graph: the training graph.
        generator: randomness of :meth:`shuffle` and :meth:`sample`.
    """

    def __init__(self, graph: BipartiteGraph, generator: torch.Generator | None = None):
        U = graph.num_users
        self.num_users = U
        self.num_nodes = graph.num_nodes
        # User rows in (user, item) order, then item rows in (item, user) order: sorted by row.
        self.col = torch.cat([graph.item + U, graph.user[graph.by_item]])
        self.row = torch.cat([graph.user, graph.item[graph.by_item] + U])
        counts = torch.bincount(self.row, minlength=self.num_nodes)
        self.rowptr = torch.zeros(self.num_nodes + 1, dtype=torch.long, device=self.col.device)
        self.rowptr[1:] = torch.cumsum(counts, 0)
        self.degree = counts
        self.generator = generator
        self.order = self.col  # neighbour order in use; shuffle() randomises it

    def _rand(self, shape: tuple[int, ...] | torch.Size, generator: torch.Generator | None) -> Tensor:
        gen = generator if generator is not None else self.generator
        device = gen.device if gen is not None else self.col.device
        return torch.rand(shape, generator=gen, device=device, dtype=torch.float64).to(
            self.col.device)

    def shuffle(self, generator: torch.Generator | None = None) -> None:
        """Draw a fresh random order of every node's neighbours (one sort of ``2E`` keys)."""
        key = self.row.double() + self._rand(self.row.shape, generator)
        self.order = self.col[torch.argsort(key)]

    def sample(self, nodes: Tensor, k: int, generator: torch.Generator | None = None,
               canonical: bool = False) -> tuple[Tensor, Tensor]:
        """``K`` distinct neighbours of every node: ``(neighbours, mask)``, shapes ``[*nodes.shape, K]``.

        A node with fewer than ``K`` neighbours gets all of them, the other
        slots masked out (their ids are 0 and must not be used). ``canonical``
        draws from the sorted neighbour order instead of the last
        :meth:`shuffle`, so that a seeded draw (evaluation) does not depend on
        the shuffles of training.
        """
        order = self.col if canonical else self.order
        flat = nodes.reshape(-1)
        deg = self.degree[flat]
        start = (self._rand(flat.shape, generator) * deg).long()
        j = torch.arange(k, device=flat.device)
        pos = (start[:, None] + j) % deg.clamp(min=1)[:, None]
        idx = (self.rowptr[flat][:, None] + pos).clamp(max=max(order.numel() - 1, 0))
        mask = j[None, :] < deg[:, None]
        if order.numel() == 0:
            out = torch.zeros_like(idx)
        else:
            out = torch.where(mask, order[idx], torch.zeros_like(idx))
        return out.view(*nodes.shape, k), mask.view(*nodes.shape, k)

    def tree(self, roots: Tensor, k: int, depth: int, generator: torch.Generator | None = None,
             canonical: bool = False) -> NeighbourTree:
        """Sample the ``depth``-hop K-shot tree below ``roots`` (shape ``[B]``).

        An occurrence of the root among its own 2-hop (or deeper, even-hop)
        neighbours is masked out: the model reconstructing a root must not see
        the root's own embedding. ``canonical``: see :meth:`sample`.
        """
        nodes, masks = [roots], [torch.ones_like(roots, dtype=torch.bool)]
        for d in range(1, depth + 1):
            nbrs, mask = self.sample(nodes[-1], k, generator, canonical)
            mask = mask & masks[-1].unsqueeze(-1)
            if d % 2 == 0:
                mask = mask & (nbrs != roots.view(-1, *([1] * d)))
            nodes.append(nbrs)
            masks.append(mask)
        return NeighbourTree(nodes, masks)
