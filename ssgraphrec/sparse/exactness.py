r"""Which rearranged CSR products give the whole product's bits on this machine.

Column blocks (:mod:`~ssgraphrec.sparse.blocks`) and the last product at a batch's rows
(:func:`~ssgraphrec.sparse.restricts_rows`) rest on one property of PyTorch's CSR
product: each entry is its row's terms summed in the order of the row's non-zeros,
whatever the number of columns multiplied and whatever other non-zeros the matrix
holds. Then a product in column blocks equals the whole product to the bit, and so do
a product of some rows alone (the rows path's forward pass, :math:`\mathbf{A}_{R,:}
\mathbf{E}`) and a product from which the terms that multiply zero rows were dropped
(its backward pass, :math:`\mathbf{A}^\top_{:,R}\mathbf{V}_R` for
:math:`\mathbf{A}^\top\mathbf{V}` with :math:`\mathbf{V}` zero outside :math:`R`).

The property belongs to the kernel PyTorch calls, not to the product: on the AMD EPYC
benchmark machine it held for every width; on a 2-vCPU Intel Xeon machine (the same
torch 2.13 CPU wheel) the kernel for 4, 8, 12, 16, 20 and 24 columns sums in another
order, so that blocks of 16 columns and the dropped terms both changed the last bit
of some entries, while 1 to 3, 5 to 7, ..., and every width from 25 up kept it. A
width measured by timing (:meth:`~ssgraphrec.sparse.Adjacency.block_width`) would
then make two runs with one seed differ. So each rearrangement is checked here, once
per process, by its result on a probe matrix, and the fast paths take it only where
it gives the whole product's bits.
"""

from __future__ import annotations

from functools import cache, lru_cache

import torch
from torch import Tensor

#: Rows (and columns) of the probe matrix: enough for row lengths from 0 to a few
#: hundred non-zeros, small enough for a check of a few milliseconds.
PROBE_NODES = 512


@lru_cache(maxsize=4)
def _probe(device: str) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The probe: a CSR matrix whose row lengths spread from 0 to about 300 (as a
    power-law graph's do), its copy without the non-zeros of the columns in a random
    half, the rows of the other half alone, and the first half as a mask. 32-bit
    indices, as :class:`~ssgraphrec.sparse.Adjacency` makes them."""
    g = torch.Generator().manual_seed(2020)
    n = PROBE_NODES
    lengths = (torch.rand(n, generator=g) ** 4 * 300).long()
    rows = torch.repeat_interleave(torch.arange(n), lengths)
    cols = torch.randint(0, n, (rows.numel(),), generator=g)
    keys = torch.unique(rows * n + cols)                   # sorted, distinct (row, col)
    rows, cols = keys // n, keys % n
    values = torch.rand(keys.numel(), generator=g)
    dropped = torch.rand(n, generator=g) < 0.5
    keep = ~dropped[cols]
    taken = ~dropped[rows]                                  # the other half's rows, alone
    renumbered = torch.cumsum(~dropped, 0) - 1

    def csr(r: Tensor, c: Tensor, v: Tensor, m: int = n) -> Tensor:
        crow = torch.zeros(m + 1, dtype=torch.long)
        crow[1:] = torch.bincount(r, minlength=m).cumsum(0)
        return torch.sparse_csr_tensor(crow.int(), c.int(), v, (m, n)).to(device)

    return (csr(rows, cols, values), csr(rows[keep], cols[keep], values[keep]),
            csr(renumbered[rows[taken]], cols[taken], values[taken], int((~dropped).sum())),
            dropped.to(device))


def _product(kernel: Tensor, x: Tensor) -> Tensor:
    out = x.new_empty(kernel.size(0), x.size(1))
    return torch.addmm(out, kernel, x, beta=0, out=out)


def _x(columns: int, device: str) -> Tensor:
    g = torch.Generator().manual_seed(columns)
    return torch.randn(PROBE_NODES, columns, generator=g).to(device)


@cache
def _blocks_exact(columns: int, widths: tuple[int, ...], device: str, threads: int) -> bool:
    if widths == (columns,):
        return True
    kernel = _probe(device)[0]
    x = _x(columns, device)
    starts = [sum(widths[:j]) for j in range(len(widths))]
    blocked = torch.cat([_product(kernel, x[:, s:s + w].contiguous())
                         for s, w in zip(starts, widths, strict=True)], 1)
    return bool(torch.equal(blocked, _product(kernel, x)))


def blocks_exact(columns: int, widths: tuple[int, ...], device: torch.device | str = "cpu") -> bool:
    """Whether a CSR product with ``columns`` columns taken in column blocks of
    ``widths`` (:func:`~ssgraphrec.sparse.blocks.split_widths`) gives the whole
    product's bits on this machine, with this many threads (checked once on the probe)."""
    return _blocks_exact(int(columns), tuple(int(w) for w in widths), torch.device(device).type,
                         torch.get_num_threads())


@cache
def _rows_path_exact(columns: int, device: str, threads: int) -> bool:
    kernel, without, alone, dropped = _probe(device)
    x = _x(columns, device)
    whole = _product(kernel, x)
    if not torch.equal(_product(alone, x), whole[~dropped]):
        return False
    x[dropped] = 0
    return bool(torch.equal(_product(kernel, x), _product(without, x)))


def rows_path_exact(columns: int, device: torch.device | str = "cpu") -> bool:
    """Whether the two rearrangements of the rows path (:func:`~ssgraphrec.sparse.restricts_rows`)
    keep every entry's bits for products with ``columns`` columns on this machine, with
    this many threads (checked once on the probe): some rows of a CSR matrix multiplied
    alone (its forward product), and a product without the terms that multiply zero rows
    of the operand (its backward one)."""
    return _rows_path_exact(int(columns), torch.device(device).type, torch.get_num_threads())
