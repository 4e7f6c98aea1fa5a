r"""Layer-wise neighbour-sampled LightGCN propagation (prototype).

Full propagation touches every edge at every step. Here a step propagates only
over the ``L``-hop neighbourhood of its seed nodes (the batch's users and items),
with at most ``fanouts[h]`` neighbours drawn per node at hop ``h``, as GraphSAGE
(Hamilton et al., NeurIPS 2017) and PyG's ``NeighborLoader`` do. PyG's sampler
needs ``pyg-lib`` or ``torch-sparse``, which have no wheels for the torch this
package runs on, so the sampling is written here on the graph's CSR arrays.

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


def _edges_of(crow: Tensor, frontier: Tensor) -> tuple[Tensor, Tensor]:
    """(segment, position in ``col``) of every edge of the ``frontier`` nodes."""
    start, degree = crow[frontier], crow[frontier + 1] - crow[frontier]
    segment = torch.repeat_interleave(torch.arange(frontier.numel()), degree)
    offsets = torch.cumsum(degree, 0) - degree
    position = start[segment] + torch.arange(segment.numel()) - offsets[segment]
    return segment, position


def _keep(segment: Tensor, degree: Tensor, fanout: int,
          generator: torch.Generator | None) -> Tensor:
    """Which edges to keep: all when ``fanout < 0``, else ``fanout`` uniform draws
    without replacement per segment (random keys, the lowest ``fanout`` of each)."""
    if fanout < 0:
        return torch.ones_like(segment, dtype=torch.bool)
    keys = torch.rand(segment.numel(), generator=generator, dtype=torch.float64)
    order = torch.argsort(segment.double() + keys)          # by segment, then by key
    offsets = torch.cumsum(degree, 0) - degree
    rank = torch.empty_like(order)
    rank[order] = torch.arange(order.numel())
    return (rank - offsets[segment]) < fanout


def sample_subgraph(crow: Tensor, col: Tensor, seeds: Tensor, fanouts: list[int],
                    generator: torch.Generator | None = None) -> Subgraph:
    """The ``len(fanouts)``-hop sampled neighbourhood of ``seeds`` (distinct global ids)
    in the symmetric graph of CSR ``crow``, ``col``."""
    degree_all = (crow[1:] - crow[:-1]).to(torch.float32)
    nodes, frontier = seeds, seeds
    targets, sources, scales = [], [], []
    for fanout in fanouts:
        if frontier.numel() == 0:
            break
        segment, position = _edges_of(crow, frontier)
        degree = crow[frontier + 1] - crow[frontier]
        kept = _keep(segment, degree, fanout, generator)
        segment, position = segment[kept], position[kept]
        taken = torch.bincount(segment, minlength=frontier.numel()).clamp_min(1)
        targets.append(frontier[segment])
        sources.append(col[position])
        scales.append((degree.to(torch.float32) / taken)[segment])
        unique = torch.unique(sources[-1])
        new = unique[~torch.isin(unique, nodes)]
        nodes, frontier = torch.cat([nodes, new]), new
    target = torch.cat(targets) if targets else seeds.new_empty(0)
    source = torch.cat(sources) if sources else seeds.new_empty(0)
    scale = torch.cat(scales) if scales else torch.empty(0)
    weight = scale / torch.sqrt(degree_all[target] * degree_all[source])
    order = torch.argsort(nodes)
    ordered = nodes[order]

    def local(ids: Tensor) -> Tensor:
        return order[torch.searchsorted(ordered, ids)]

    return Subgraph(nodes, local(source), local(target), weight, seeds.numel())


def propagate_subgraph(ego: Tensor, graph: Subgraph, num_layers: int) -> Tensor:
    """The seeds' LightGCN embeddings, the mean of layers ``0..num_layers`` (Eq. 8),
    from the subgraph nodes' layer-0 rows ``ego`` (``[len(graph.nodes), d]``)."""
    h, total = ego, ego[:graph.num_seeds]
    messages = graph.weight[:, None]
    for _ in range(num_layers):
        h = ego.new_zeros(ego.shape).index_add(0, graph.target, messages * h[graph.source])
        total = total + h[:graph.num_seeds]
    return total / (num_layers + 1)
