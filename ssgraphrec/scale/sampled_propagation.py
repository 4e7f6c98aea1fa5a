r"""Layer-wise neighbour-sampled LightGCN propagation (prototype).

Full propagation touches every edge at every step. Here a step propagates only
over the ``L``-hop neighbourhood of its seed nodes (the batch's users and items),
with at most ``fanouts[h]`` neighbours drawn per node at hop ``h``, as GraphSAGE
(Hamilton et al., NeurIPS 2017) and PyG's ``NeighborLoader`` do. PyG's sampler
needs ``pyg-lib`` or ``torch-sparse``, which have no wheels for the torch this
package runs on, so the sampling is written here on the graph's CSR arrays, held
whole on every rank or row-sharded over the ranks (:mod:`~ssgraphrec.scale.graph_store`).

The edge weights are LightGCN's (He et al., SIGIR 2020, Eq. 7),
:math:`1/\sqrt{d_i d_j}` with the full graph's degrees; a node that keeps ``f`` of
its ``d > f`` neighbours weighs them by ``d / f``, so that its sampled sum is an
unbiased estimate of the full one. With every neighbour kept (fanout ``-1``) the
seeds' layers equal full propagation exactly (tested): a node at hop ``h`` has all
its neighbours, which is all its first ``L - h`` layers need.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .graph_store import ReplicatedGraph, RowShardedGraph

GraphStore = ReplicatedGraph | RowShardedGraph


@dataclass
class Subgraph:
    """The sampled neighbourhood of ``seeds``: ``nodes[:len(seeds)]`` are the seeds."""

    #: global ids of the subgraph's nodes, the seeds first
    nodes: Tensor
    #: local (source, target) of each sampled edge: the target aggregates the source
    source: Tensor
    target: Tensor
    #: each edge's weight: LightGCN's normalisation times the target's sampling scale
    weight: Tensor
    num_seeds: int


def sample_subgraph(graph: GraphStore, seeds: Tensor, fanouts: list[int],
                    generator: torch.Generator | None = None) -> Subgraph:
    """The ``len(fanouts)``-hop sampled neighbourhood of ``seeds`` (distinct global ids)
    in ``graph`` (:class:`~ssgraphrec.scale.ReplicatedGraph`, or this rank's
    :class:`~ssgraphrec.scale.RowShardedGraph`: then every rank calls this together)."""
    nodes, frontier = seeds, seeds
    targets, sources, scales = [], [], []
    for fanout in fanouts:   # no early exit: a sharded graph's hops are collectives
        segment, neighbours, degree = graph.sample(frontier, fanout, generator)
        taken = torch.bincount(segment, minlength=frontier.numel()).clamp_min(1)
        targets.append(frontier[segment])
        sources.append(neighbours)
        scales.append((degree.to(torch.float32) / taken)[segment])
        unique = torch.unique(neighbours)
        new = unique[~torch.isin(unique, nodes)]
        nodes, frontier = torch.cat([nodes, new]), new
    target = torch.cat(targets) if targets else seeds.new_empty(0)
    source = torch.cat(sources) if sources else seeds.new_empty(0)
    scale = torch.cat(scales) if scales else torch.empty(0)
    order = torch.argsort(nodes)
    ordered = nodes[order]

    def local(ids: Tensor) -> Tensor:
        return order[torch.searchsorted(ordered, ids)]

    source, target = local(source), local(target)
    degree = graph.degrees(nodes).to(torch.float32)
    weight = scale / torch.sqrt(degree[target] * degree[source])
    return Subgraph(nodes, source, target, weight, seeds.numel())


def propagate_subgraph(ego: Tensor, graph: Subgraph, num_layers: int) -> Tensor:
    """The seeds' LightGCN embeddings, the mean of layers ``0..num_layers`` (Eq. 8),
    from the subgraph nodes' layer-0 rows ``ego`` (``[len(graph.nodes), d]``)."""
    h, total = ego, ego[:graph.num_seeds]
    messages = graph.weight[:, None]
    for _ in range(num_layers):
        h = ego.new_zeros(ego.shape).index_add(0, graph.target, messages * h[graph.source])
        total = total + h[:graph.num_seeds]
    return total / (num_layers + 1)
