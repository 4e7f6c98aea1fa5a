r"""Rows of a CSR matrix and their transpose, for a propagation whose last layer is
needed at a few rows only.

A training step of a LightGCN-style method reads its final embeddings at the batch's
users and items only: on Gowalla a batch of 2,048 interactions names about 5,700 of
70,839 nodes, whose rows hold about a sixth of the adjacency's non-zeros. The last
product is then needed at those rows, :math:`\mathbf{A}_{R,:}\mathbf{E}^{(K-1)}`, and
the first product of the backward pass takes a gradient that is zero outside them,
:math:`\mathbf{A}^\top_{:,R}\mathbf{G}_R`. Both sub-matrices keep every row's entries
in their stored order, so each entry of a product is the same sum as in the whole
product (an entry of the whole backward product adds exact zeros besides), provided
the rows are sorted: :math:`\mathbf{A}^\top_{:,R}` is the transpose of
:math:`\mathbf{A}_{R,:}`, built from those rows alone (:func:`csr_transpose`).
"""

from __future__ import annotations

import torch
from torch import Tensor


def csr_rows(crow: Tensor, col: Tensor, value: Tensor, rows: Tensor
             ) -> tuple[Tensor, Tensor, Tensor]:
    """CSR arrays of the rows ``rows`` (in that order) of a CSR matrix; the columns keep
    their indices and, within a row, their order."""
    starts = crow.index_select(0, rows)
    lengths = crow.index_select(0, rows + 1) - starts
    new_crow = torch.zeros(rows.numel() + 1, dtype=crow.dtype, device=crow.device)
    torch.cumsum(lengths, 0, out=new_crow[1:])
    total = int(new_crow[-1])
    shift = torch.repeat_interleave(starts - new_crow[:-1], lengths, output_size=total)
    index = shift + torch.arange(total, dtype=crow.dtype, device=crow.device)
    return new_crow, col.index_select(0, index), value.index_select(0, index)


def csr_transpose(crow: Tensor, col: Tensor, value: Tensor, num_columns: int
                  ) -> tuple[Tensor, Tensor, Tensor]:
    """CSR arrays of the transpose (``num_columns`` rows) of a CSR matrix: a stable sort
    by column, so every row of the transpose holds its entries by ascending column."""
    row = torch.repeat_interleave(torch.arange(crow.numel() - 1, device=col.device), crow.diff(),
                                  output_size=col.numel())
    order = torch.sort(col, stable=True).indices
    crow_t = torch.zeros(num_columns + 1, dtype=crow.dtype, device=crow.device)
    torch.cumsum(torch.bincount(col, minlength=num_columns), 0, out=crow_t[1:])
    return crow_t, row.index_select(0, order), value.index_select(0, order)


def row_nnz_share(crow: Tensor, rows: Tensor) -> float:
    """The share of a CSR matrix's non-zeros that lie in ``rows`` (distinct)."""
    total = int(crow[-1])
    if total == 0:
        return 1.0
    return float((crow[rows + 1] - crow[rows]).sum()) / total


def zeros_with_rows(values: Tensor, rows: Tensor, num_rows: int) -> Tensor:
    """``[num_rows, d]`` zeros with ``values`` (``[len(rows), d]``) at ``rows``: a
    quantity taken at some rows only, in the shape of the whole."""
    out = values.new_zeros(num_rows, values.size(1))
    out[rows] = values
    return out
