"""LightGCN on row-sharded tables and sampled neighbourhoods: the route past one
machine's memory, as a working prototype (docs/distributed.md).

Each rank holds ``1/N`` of the embedding rows (:class:`RowShardedEmbedding`) and
their Adam moments, and propagates only its batch's sampled neighbourhood
(:func:`sample_subgraph`), fetching those rows from their owners. With
``shard_graph`` the graph is split the same way (:class:`RowShardedGraph`): a rank
holds the adjacency rows of the nodes whose embeddings it owns, and the sampler asks
the owners for their nodes' neighbours, so nothing that grows with the graph is
replicated. One rank's loss is its share of the global
batch's BPR sum divided by the global batch size, so that the gradients the owners
receive add up to those of the one-process mean.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..distributed import SINGLE, DistContext
from ..losses import bpr_loss, l2_regularization
from .graph_store import ReplicatedGraph, RowShardedGraph
from .sampled_propagation import propagate_subgraph, sample_subgraph
from .sharded_table import RowShardedEmbedding


class ShardedSampledLightGCN(nn.Module):
    """LightGCN (He et al., SIGIR 2020) with sharded tables and sampled propagation.

    Args:
        crow, col: the symmetric user-item graph over ``num_users + num_items``
            nodes (users first), as CSR arrays (no weights: LightGCN's come from
            the degrees).
        num_users, num_items, emb_dim, num_layers, reg: as for LightGCN.
        fanouts: neighbours drawn per node at each hop (``-1``: all; length
            ``num_layers``).
        ctx: the ranks; generator: seeds the table (identical on every rank).
        shard_graph: keep only this rank's adjacency rows (:class:`RowShardedGraph`)
            instead of the whole CSR (:class:`ReplicatedGraph`).
    """

    def __init__(self, crow: Tensor, col: Tensor, num_users: int, num_items: int, *,
                 emb_dim: int = 64, num_layers: int = 3, reg: float = 1e-4,
                 fanouts: list[int] | None = None, ctx: DistContext = SINGLE,
                 generator: torch.Generator | None = None, shard_graph: bool = False):
        super().__init__()
        fanouts = [-1] * num_layers if fanouts is None else list(fanouts)
        if len(fanouts) != num_layers:
            raise ValueError(f"fanouts needs one entry per layer ({num_layers}), got {fanouts}")
        self.graph = RowShardedGraph.from_csr(crow, col, ctx) if shard_graph \
            else ReplicatedGraph(crow, col)
        self.num_users, self.num_layers, self.reg, self.fanouts = num_users, num_layers, reg, fanouts
        self.table = RowShardedEmbedding(num_users + num_items, emb_dim, ctx, generator=generator)
        #: nodes of the last step's sampled neighbourhood
        self.last_subgraph_nodes = 0

    def loss(self, users: Tensor, pos: Tensor, neg: Tensor, global_batch: int,
             generator: torch.Generator | None = None) -> Tensor:
        """This rank's share of the global batch's BPR + L2 (item ids from 0)."""
        wanted = torch.cat([users, pos + self.num_users, neg + self.num_users])
        seeds, slot = torch.unique(wanted, return_inverse=True)
        graph = sample_subgraph(self.graph, seeds, self.fanouts, generator)
        self.last_subgraph_nodes = graph.nodes.numel()
        ego = self.table(graph.nodes)
        final = propagate_subgraph(ego, graph, self.num_layers)
        n = users.numel()
        u, i, j = final[slot[:n]], final[slot[n:2 * n]], final[slot[2 * n:]]
        e_u, e_i, e_j = ego[slot[:n]], ego[slot[n:2 * n]], ego[slot[2 * n:]]
        # the sums over this rank's rows (means times n), divided by the global batch
        return (bpr_loss(u, i, j) + self.reg * l2_regularization(e_u, e_i, e_j)) * n / global_batch
