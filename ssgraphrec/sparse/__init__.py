"""The one place that touches sparse matrices.

Propagation ``X' = A X`` on a normalized adjacency ``A`` is the inner loop of
every graph recommender here, and structure builders (motif hypergraphs, session
hypergraphs, line graphs) compose sparse products once. The package has four
modules, each with one job:

* :mod:`~ssgraphrec.sparse.kernels`: the CSR :class:`Adjacency`, the backends
  (PyTorch's CSR kernel, or ``torch_sparse`` when installed) and :func:`propagate`;
* :mod:`~ssgraphrec.sparse.bipartite`: the user-item :class:`BipartiteGraph` and
  the adjacency of augmented views (:func:`view_adjacency`);
* :mod:`~ssgraphrec.sparse.blocks`: column blocks of the dense operand, so that a
  CPU product's gathers stay in the cache;
* :mod:`~ssgraphrec.sparse.coo`: sparse algebra on coalesced COO tensors for the
  structure builders (products, element-wise products, sums, row normalization).
"""

from . import blocks
from .bipartite import (
    BipartiteGraph,
    bipartite_adjacency,
    bipartite_row_normalized,
    view_adjacency,
)
from .coo import sparse_product
from .kernels import (
    BACKENDS,
    Adjacency,
    adjacency_from_edges,
    has_torch_sparse,
    propagate,
    propagate_mean,
    resolve_backend,
    restricts_rows,
    segment_pointer,
)

__all__ = ["BACKENDS", "Adjacency", "BipartiteGraph", "adjacency_from_edges",
           "bipartite_adjacency", "blocks", "bipartite_row_normalized", "has_torch_sparse", "propagate",
           "propagate_mean", "resolve_backend", "restricts_rows", "segment_pointer", "sparse_product",
           "view_adjacency"]
