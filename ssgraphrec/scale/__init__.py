"""Past one machine's memory (prototype): row-sharded embedding tables and
neighbour-sampled propagation (docs/distributed.md)."""

from .prototype import ShardedSampledLightGCN
from .sampled_propagation import Subgraph, propagate_subgraph, sample_subgraph
from .sharded_table import RowShardedEmbedding

__all__ = ["RowShardedEmbedding", "ShardedSampledLightGCN", "Subgraph", "propagate_subgraph",
           "sample_subgraph"]
