"""Past one machine's memory (prototype): row-sharded embedding tables, a row-sharded
graph and neighbour-sampled propagation (docs/distributed.md)."""

from .graph_store import ReplicatedGraph, RowShardedGraph
from .prototype import ShardedSampledLightGCN
from .sampled_propagation import Subgraph, propagate_subgraph, sample_subgraph
from .sharded_table import RowShardedEmbedding

__all__ = ["ReplicatedGraph", "RowShardedEmbedding", "RowShardedGraph", "ShardedSampledLightGCN",
           "Subgraph", "propagate_subgraph", "sample_subgraph"]
