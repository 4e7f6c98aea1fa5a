"""Transforms: augmentations (PyG ``BaseTransform``) and structure builders.

>>> import torch_geometric.transforms as T
>>> from ssgraphrec.transforms import EdgeDrop, NodeDrop
>>> view = T.Compose([EdgeDrop(0.1), NodeDrop(0.05)])(data)  # doctest: +SKIP
"""

from .base import AUGMENTATIONS, EdgeAugmentation, make_augmentation, register_augmentation
from .edge_drop import EdgeDrop
from .graph_diffusion import GraphDiffusion
from .node_drop import NodeDrop
from .random_walk import RandomWalk
from .social_motifs import SocialMotifs, channel_adjacencies, motif_adjacencies

__all__ = ["AUGMENTATIONS", "EdgeAugmentation", "EdgeDrop", "GraphDiffusion", "NodeDrop", "RandomWalk",
           "SocialMotifs", "channel_adjacencies", "make_augmentation", "motif_adjacencies",
           "register_augmentation"]
