"""Sparse kernels: the CSR adjacency and propagation ``X' = A X`` on two backends.

* ``"torch"``: PyTorch's own CSR kernel (``torch.sparse.mm``; MKL on CPU,
  cuSPARSE on CUDA), always available;
* ``"torch_sparse"``: ``torch_sparse.SparseTensor`` when that package is
  installed.

The symmetric normalized adjacency ``D^-1/2 A D^-1/2`` of an undirected graph is
its own transpose, so the backward pass ``dX = A^T dY`` reuses the forward CSR
instead of building (or sorting into) a transpose.
"""

from __future__ import annotations

import importlib.util
import warnings
from dataclasses import dataclass

import torch
from torch import Tensor

from ..errors import ConfigError

BACKENDS = ("torch", "torch_sparse")


def has_torch_sparse() -> bool:
    """Whether the optional ``torch_sparse`` extension is importable."""
    return importlib.util.find_spec("torch_sparse") is not None


def resolve_backend(name: str) -> str:
    """Map ``"auto"`` to a concrete backend and validate ``name``."""
    if name == "auto":
        return "torch_sparse" if has_torch_sparse() else "torch"
    if name not in BACKENDS:
        raise ConfigError(
            f"unknown sparse backend {name!r}; expected one of auto, {', '.join(BACKENDS)}"
        )
    if name == "torch_sparse" and not has_torch_sparse():
        raise ConfigError(
            "sparse backend 'torch_sparse' asked for, but the torch_sparse package is not "
            "installed (pip install 'ssgraphrec[sparse]'), or use --sparse-backend torch"
        )
    return name


@dataclass
class Adjacency:
    """A square sparse matrix in CSR form, ready for :func:`propagate`.

    Attributes:
        crow: CSR row pointers, shape ``[N + 1]``.
        col: column indices, sorted within each row, shape ``[nnz]``.
        value: non-zero values, shape ``[nnz]``.
        size: ``N``.
        symmetric: whether the matrix equals its transpose (then the backward
            pass reuses it).
        backend: ``"torch"`` or ``"torch_sparse"``.
    """

    crow: Tensor
    col: Tensor
    value: Tensor
    size: int
    symmetric: bool = True
    backend: str = "torch"

    def __post_init__(self) -> None:
        self.backend = resolve_backend(self.backend)
        self._kernel = _make_kernel(self.crow, self.col, self.value, self.size, self.backend)
        self._kernel_t = None if self.symmetric else _make_kernel(
            *_transpose_csr(self.crow, self.col, self.value, self.size), self.size, self.backend
        )

    @property
    def nnz(self) -> int:
        return int(self.col.numel())

    @property
    def device(self) -> torch.device:
        return self.value.device

    def to_dense(self) -> Tensor:
        """Dense copy, for tests on small graphs."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return torch.sparse_csr_tensor(
                self.crow, self.col, self.value, (self.size, self.size)).to_dense()

    def matmul(self, x: Tensor, transpose: bool = False) -> Tensor:
        """``A @ x`` (or ``A^T @ x``) without autograd; see :func:`propagate`."""
        kernel = self._kernel if (not transpose or self._kernel_t is None) else self._kernel_t
        return _apply_kernel(kernel, x, self.backend)


def _make_kernel(crow: Tensor, col: Tensor, value: Tensor, size: int, backend: str):
    if backend == "torch_sparse":
        from torch_sparse import SparseTensor

        return SparseTensor(rowptr=crow, col=col, value=value, sparse_sizes=(size, size),
                            is_sorted=True, trust_data=True)
    if col.numel() < 2**31 and size < 2**31:
        # 32-bit indices: PyTorch's CPU kernel would otherwise convert them on every product.
        crow, col = crow.int(), col.int()
    with warnings.catch_warnings():  # CSR is "beta" in PyTorch; we rely on sparse.mm only
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(crow, col, value, (size, size))


def _apply_kernel(kernel, x: Tensor, backend: str, into_new: bool | None = None) -> Tensor:
    """``kernel @ x``; ``into_new`` (default: on the CPU) selects the write-into path."""
    if backend == "torch_sparse":
        from torch_sparse import matmul

        return matmul(kernel, x, reduce="sum")
    if into_new is None:
        into_new = x.device.type == "cpu"
    if into_new:
        # Write the product straight into a fresh tensor (beta=0 ignores its contents),
        # saving the zero-fill and the copy that torch.sparse.mm makes on the CPU.
        out = x.new_empty(kernel.size(0), x.size(1))
        return torch.addmm(out, kernel, x, beta=0, out=out)
    return torch.sparse.mm(kernel, x)


def _transpose_csr(crow: Tensor, col: Tensor, value: Tensor, size: int):
    """CSR of the transpose (a stable sort by column; used for non-symmetric matrices)."""
    row = torch.repeat_interleave(torch.arange(size, device=col.device), crow.diff())
    perm = torch.argsort(col * size + row)
    counts = torch.bincount(col, minlength=size)
    crow_t = torch.zeros(size + 1, dtype=crow.dtype, device=crow.device)
    crow_t[1:] = torch.cumsum(counts, 0)
    return crow_t, row[perm], value[perm]


class _SparseMatmul(torch.autograd.Function):
    """``Y = A X`` with ``dX = A^T dY``; for a symmetric ``A`` that is ``A dY``.

    The gradient with respect to the (fixed) matrix values is not needed by any
    method and is not computed.
    """

    @staticmethod
    def forward(ctx, x: Tensor, adj: Adjacency) -> Tensor:  # type: ignore[override]
        ctx.adj = adj
        return adj.matmul(x)

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        adj: Adjacency = ctx.adj
        return adj.matmul(grad.contiguous(), transpose=True), None


def propagate(adj: Adjacency, x: Tensor) -> Tensor:
    """One propagation step ``A @ x``, differentiable with respect to ``x``."""
    if x.dim() != 2 or x.size(0) != adj.size:
        raise ValueError(f"propagate: x must have shape [{adj.size}, d], got {tuple(x.shape)}")
    if torch.is_grad_enabled() and x.requires_grad:
        return _SparseMatmul.apply(x, adj)
    return adj.matmul(x)


def segment_pointer(index: Tensor, size: int) -> Tensor:
    """CSR pointer of a sorted index vector: value ``v`` owns ``ptr[v]:ptr[v+1]``."""
    ptr = torch.zeros(size + 1, dtype=torch.long, device=index.device)
    ptr[1:] = torch.cumsum(torch.bincount(index.long(), minlength=size), 0)
    return ptr


def adjacency_from_edges(edge_index: Tensor, value: Tensor, size: int, *, symmetric: bool = False,
                         backend: str = "torch") -> Adjacency:
    """:class:`Adjacency` of the square ``size x size`` matrix with entries ``value`` at ``edge_index``.

    ``edge_index`` must be sorted by (row, column) without duplicates (as a
    coalesced sparse COO tensor's indices are); rows without entries are
    all-zero. ``symmetric`` is a promise the caller makes (a row-normalized
    matrix such as the MHCN motif channels is not symmetric).
    """
    row, col = edge_index[0].long(), edge_index[1].long()
    crow = segment_pointer(row, size)
    return Adjacency(crow, col, value, size, symmetric=symmetric, backend=backend)
