"""Sparse matrix algebra on coalesced COO tensors, for the structure builders.

Motif-induced hypergraphs (:mod:`ssgraphrec.transforms.social_motifs`), session
hypergraph operators and line graphs are built once, from sparse products,
element-wise products and sums; propagation then runs on the CSR
:class:`~ssgraphrec.sparse.kernels.Adjacency`. Every function here returns a
coalesced COO tensor (or its ``(index, value)``), and none builds a dense matrix.
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor


def coo(index: Tensor, value: Tensor, n: int, m: int | None = None,
        coalesced: bool = False) -> Tensor:
    """The ``n x m`` (default square) sparse matrix with ``value`` at ``index``, coalesced
    (duplicates summed) unless the caller promises ``coalesced``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        out = torch.sparse_coo_tensor(index, value, (n, n if m is None else m),
                                      check_invariants=False, is_coalesced=coalesced)
    return out if coalesced else out.coalesce()


def binary(edge_index: Tensor, n: int, m: int | None = None, dtype=torch.float32) -> Tensor:
    """0/1 matrix of the (deduplicated) pairs ``edge_index``."""
    x = coo(edge_index.long(), torch.ones(edge_index.size(1), dtype=dtype,
                                          device=edge_index.device), n, m)
    return coo(x.indices(), torch.ones_like(x.values()), n, m, coalesced=True)


def prune(x: Tensor, keep: Tensor | None = None) -> Tensor:
    """``x`` without its explicit zeros (and without the entries where ``keep`` is False)."""
    mask = x.values() != 0
    if keep is not None:
        mask &= keep
    n, m = x.shape
    return coo(x.indices()[:, mask], x.values()[mask], n, m, coalesced=True)


def transpose(x: Tensor) -> Tensor:
    return x.t().coalesce()


def matmul(x: Tensor, y: Tensor) -> Tensor:
    """The sparse-sparse product ``x @ y``."""
    with warnings.catch_warnings():  # sparse @ sparse goes through CSR, "beta" in PyTorch
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse.mm(x, y).coalesce()


def hadamard(x: Tensor, mask: Tensor) -> Tensor:
    """Element-wise product ``x ⊙ mask`` of two sparse matrices (the intersection)."""
    return prune(torch.mul(x, mask).coalesce())


def add(*xs: Tensor) -> Tensor:
    """The sum of sparse matrices of one shape, without explicit zeros."""
    if len(xs) == 1:
        return xs[0]
    out = xs[0]
    for x in xs[1:]:
        out = out + x
    return prune(out.coalesce())


def symmetrize(c: Tensor) -> Tensor:
    """``C + Cᵀ``."""
    return add(c, transpose(c))


def row_normalize(x: Tensor) -> Tensor:
    """``D⁻¹ A`` of a coalesced sparse ``A``; all-zero rows stay all-zero."""
    row = x.indices()[0]
    total = torch.zeros(x.size(0), dtype=x.dtype, device=x.device)
    total.index_add_(0, row, x.values())
    n, m = x.shape
    return coo(x.indices(), x.values() / total[row], n, m, coalesced=True)


def sparse_product(a_index: Tensor, a_value: Tensor, a_shape: tuple[int, int], b_index: Tensor,
                   b_value: Tensor, b_shape: tuple[int, int]) -> tuple[Tensor, Tensor]:
    """The sparse-sparse product ``A @ B`` as ``(index, value)``, sorted by (row, column).

    ``A`` and ``B`` are given as ``[2, nnz]`` index pairs (duplicates are
    summed) and values. Structure builders (hypergraph operators, line graphs)
    call this instead of building sparse tensors themselves; entries that are
    structurally non-zero but sum to zero are kept.
    """
    if a_shape[1] != b_shape[0]:
        raise ValueError(f"sparse_product: shapes {a_shape} and {b_shape} do not chain")
    out = matmul(coo(a_index.long(), a_value, *a_shape), coo(b_index.long(), b_value, *b_shape))
    return out.indices(), out.values()
