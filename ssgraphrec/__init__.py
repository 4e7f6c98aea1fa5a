"""ssgraphrec: self-supervised recommendation on PyTorch Geometric.

Every scenario is a graph (``torch_geometric.data.HeteroData``) and every
self-supervised method is *views (transforms) -> encoder -> heads*.
"""

__version__ = "0.1.0"
