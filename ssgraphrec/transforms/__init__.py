"""Transforms: augmentations (PyG ``BaseTransform``) and structure builders.

>>> import torch_geometric.transforms as T
>>> from ssgraphrec.transforms import EdgeDrop, NodeDrop
>>> view = T.Compose([EdgeDrop(0.1), NodeDrop(0.05)])(data)  # doctest: +SKIP
"""

from .base import (
                   AUGMENTATIONS,
                   EdgeAugmentation,
                   make_augmentation,
                   parse_augmentations,
                   register_augmentation,
)
from .edge_drop import EdgeDrop
from .feature_dropout import CategoricalDropout, FeatureDropout
from .feature_mask import CorrelatedFieldMask, FieldMask, field_mutual_information
from .feature_mix import FeatureMix, FeatureShuffle
from .graph_diffusion import GraphDiffusion
from .item_cooccurrence import ItemCooccurrence, item_cooccurrence
from .node_drop import NodeDrop
from .random_walk import RandomWalk
from .sequence_augment import ItemCrop, ItemMask, ItemReorder, SequenceAugmentation, SessionChoice
from .sequence_correlated import ItemInsert, ItemSubstitute
from .session_hypergraph import SessionHypergraph, hypergraph_adjacency, hypergraph_operator
from .session_line_graph import LineGraph, SessionLineGraph, line_graph, line_graph_adjacency
from .social_motifs import SocialMotifs, channel_adjacencies, motif_adjacencies

__all__ = ["AUGMENTATIONS", "EdgeAugmentation", "EdgeDrop", "GraphDiffusion", "ItemCooccurrence", "ItemCrop",
           "ItemInsert", "ItemMask", "ItemReorder", "ItemSubstitute", "LineGraph", "NodeDrop", "RandomWalk",
           "SequenceAugmentation", "SessionChoice", "SessionHypergraph", "SessionLineGraph", "SocialMotifs",
           "channel_adjacencies", "hypergraph_adjacency", "hypergraph_operator", "item_cooccurrence",
           "line_graph", "line_graph_adjacency", "make_augmentation", "motif_adjacencies",
           "parse_augmentations", "register_augmentation"]
__all__ += ["CategoricalDropout", "CorrelatedFieldMask", "FeatureDropout", "FeatureMix",
            "FeatureShuffle", "FieldMask", "field_mutual_information"]
