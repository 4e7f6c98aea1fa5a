"""Transforms: augmentations (PyG ``BaseTransform``) and structure builders.

>>> import torch_geometric.transforms as T
>>> from ssgraphrec.transforms import EdgeDrop, NodeDrop
>>> view = T.Compose([EdgeDrop(0.1), NodeDrop(0.05)])(data)  # doctest: +SKIP
"""

from .base import AUGMENTATIONS, EdgeAugmentation, make_augmentation, register_augmentation
from .edge_drop import EdgeDrop
from .node_drop import NodeDrop
from .random_walk import RandomWalk

__all__ = ["AUGMENTATIONS", "EdgeAugmentation", "EdgeDrop", "NodeDrop", "RandomWalk",
           "make_augmentation", "register_augmentation"]
