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
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from ..errors import ConfigError
from .blocks import block_width, blocked_product, from_blocks, to_blocks

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

    def matmul_add(self, x: Tensor, add: Tensor, transpose: bool = False) -> Tensor:
        """``add + A @ x`` (or ``A^T``) in a new tensor, without autograd: one
        ``addmm`` for PyTorch's kernel instead of a product and a sum."""
        if self.backend == "torch_sparse":
            return add + self.matmul(x, transpose)
        kernel = self._kernel if (not transpose or self._kernel_t is None) else self._kernel_t
        return torch.addmm(add, kernel, x)

    def matmul_blocks(self, x_blocks: Tensor, add: Tensor | None = None,
                      transpose: bool = False) -> Tensor:
        """``A @ x`` (``+ add``; or ``A^T``) on column blocks ``[nb, N, b]``
        (:func:`~ssgraphrec.sparse.blocks.to_blocks`), without autograd: one product
        per block, each column bit-for-bit the whole product's. PyTorch's CPU kernel only.
        """
        if self.backend != "torch" or x_blocks.device.type != "cpu":
            raise ValueError("matmul_blocks: column blocks are for PyTorch's CPU kernel")
        kernel = self._kernel if (not transpose or self._kernel_t is None) else self._kernel_t
        return blocked_product(kernel, x_blocks, add)


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


class _LayerMean(torch.autograd.Function):
    r"""The mean of layers ``first..last`` of :math:`\mathbf{E}^{(k)} = \mathbf{A}_k
    \mathbf{E}^{(k-1)} (+ \Delta^{(k)})`, and any layers tapped, without saving a layer.

    The map is linear in :math:`\mathbf{E}^{(0)}` (a perturbation :math:`\Delta^{(k)}`
    is an offset without gradient, as SimGCL's noise), so the backward pass needs the
    matrices only. With :math:`\mathbf{G}` the mean's gradient divided by the number
    of layers averaged and :math:`\mathbf{T}_k` a tapped layer's gradient,
    :math:`\nabla \mathbf{E}^{(0)}` is Horner's rule from the last layer,
    :math:`\mathbf{V} \leftarrow \mathbf{A}_{k}^\top \mathbf{V} + [\text{layer } k - 1
    \text{ averaged}]\,\mathbf{G} + \mathbf{T}_{k-1}`, one ``addmm`` per layer. The
    forward pass accumulates the layers in place, in the order of
    :meth:`~ssgraphrec.nn.LightGCNEncoder.readout`, so the mean is bit-for-bit the
    layer-by-layer one.
    """

    @staticmethod
    def forward(ctx, x: Tensor, adjs: tuple[Adjacency, ...], first: int,  # type: ignore[override]
                last: int, taps: tuple[int, ...], perturb: Callable[[Tensor], Tensor] | None,
                keep_layers: bool):
        ctx.adjs, ctx.first, ctx.last, ctx.taps = adjs, first, last, taps
        ctx.count = last - first + 1
        ctx.layout = layout = _Layout(x, adjs, perturb is None)
        h = layout.enter(x)
        total = h.clone() if first == 0 else None
        layers = [h]
        for k, adj in enumerate(adjs, 1):
            h = layout.product(adj, h)
            if perturb is not None:                 # never blocked (see _Layout)
                h = perturb(h)
            layers.append(h)
            if first <= k <= last:
                total = h.clone() if total is None else total.add_(h)
        if total is None:
            raise ValueError("layer mean: no layers to average (skip_ego needs at least one layer)")
        total = layout.exit(total.div_(ctx.count))
        extra = [layout.exit(layers[t]) for t in taps]
        if keep_layers:
            extra = [layout.exit(layer) for layer in layers[1:]]
            ctx.mark_non_differentiable(*extra)
        return (total, *extra) if extra else total

    @staticmethod
    def backward(ctx, grad: Tensor, *grads: Tensor | None):  # type: ignore[override]
        layout: _Layout = ctx.layout
        mean_grad = layout.enter_divided(grad, ctx.count) if grad is not None else None
        tap_grads = dict.fromkeys(ctx.taps)
        for t, g in zip(ctx.taps, grads, strict=False):
            if g is not None:
                g = layout.enter(g.contiguous())
                tap_grads[t] = g if tap_grads[t] is None else tap_grads[t] + g

        def added_at(k: int) -> Tensor | None:
            terms = [t for t in (mean_grad if ctx.first <= k <= ctx.last else None,
                                 tap_grads.get(k)) if t is not None]
            return terms[0] if len(terms) == 1 else (terms[0] + terms[1] if terms else None)

        v = added_at(len(ctx.adjs))
        for k in range(len(ctx.adjs), 0, -1):     # adjs[k - 1] made layer k
            v_add = added_at(k - 1)
            if v is None:
                v = v_add
            else:
                v = layout.product(ctx.adjs[k - 1], v, v_add, transpose=True)
        return (layout.exit(v) if v is not None else None), None, None, None, None, None, None


class _Layout:
    """How :class:`_LayerMean` holds its layers: ``[N, d]`` as given, or in column
    blocks (:mod:`~ssgraphrec.sparse.blocks`) where ``x`` outgrows the cache on
    PyTorch's CPU kernel and ``may_block``. Blocked or not, every entry is the same sum.

    A perturbation works on whole rows (SimGCL's noise normalises each row), so a
    perturbed propagation is not blocked: turning each layer into rows and back cost
    more than the blocks saved (XSimGCL's step on Gowalla took 1.08x as long in a first
    run of ``benchmarks/spmm_blocks.py``).
    """

    def __init__(self, x: Tensor, adjs: tuple[Adjacency, ...], may_block: bool = True):
        whole = x.size(1)
        torch_kernel = all(a.backend == "torch" for a in adjs)
        self.width = block_width(x) if may_block and torch_kernel else whole
        self.blocked = self.width < whole

    def enter(self, x: Tensor) -> Tensor:
        return to_blocks(x, self.width) if self.blocked else x

    def enter_divided(self, x: Tensor, divisor: int) -> Tensor:
        """``enter(x / divisor)`` in a new tensor, in one pass fewer when blocked."""
        if self.blocked:
            return to_blocks(x, self.width).div_(divisor)
        return x.contiguous() / divisor

    def exit(self, h: Tensor) -> Tensor:
        return from_blocks(h) if self.blocked else h

    def product(self, adj: Adjacency, h: Tensor, add: Tensor | None = None,
                transpose: bool = False) -> Tensor:
        """``A h (+ add)`` (or ``A^T``) in this layout."""
        if self.blocked:
            return adj.matmul_blocks(h, add, transpose)
        return adj.matmul(h, transpose) if add is None else adj.matmul_add(h, add, transpose)


def propagate_mean(adj: Adjacency | tuple[Adjacency, ...], x: Tensor, num_layers: int,
                   skip_ego: bool = False, keep_layers: bool = False, *,
                   taps: tuple[int, ...] = (), perturb: Callable[[Tensor], Tensor] | None = None,
                   mean_layers: int | None = None):
    r"""LightGCN's readout (He et al., SIGIR 2020, Eq. 8) of ``num_layers`` products:
    the mean of :math:`\mathbf{E}^{(0)} = x, \mathbf{E}^{(k)} = \mathbf{A}
    \mathbf{E}^{(k-1)}` over ``k = 0..K`` (``1..K`` with ``skip_ego``), differentiable
    with respect to ``x`` and with the gradient of the layer-by-layer mean.

    No layer is saved for the backward pass (:class:`_LayerMean`), which is about a
    fifth faster per LightGCN step than :func:`propagate` per layer plus the mean
    (``python benchmarks/layer_mean.py``). On PyTorch's CPU kernel, unperturbed layers
    that outgrow the cache are held in column blocks (:mod:`~ssgraphrec.sparse.blocks`),
    with the same result to the bit.

    Args:
        adj: the adjacency, or one per layer.
        x: :math:`\mathbf{E}^{(0)}`, ``[N, d]``.
        num_layers: products to take, ``K``.
        skip_ego: average layers ``1..K`` (SimGCL, XSimGCL).
        keep_layers: also return ``E^(1..K)``, detached: ``(mean, E1, ..., EK)``.
        taps: layers in ``1..K`` also returned, with gradient: ``(mean, E_t, ...)``
            (XSimGCL's contrasted layer, NCL's neighbour layer). Layer 0 is ``x``.
        perturb: applied to each product before it feeds the next,
            :math:`\mathbf{E}^{(k)} = \mathrm{perturb}(\mathbf{A}\mathbf{E}^{(k-1)})`; it
            must add an offset without gradient (SimGCL's noise, whose gradient is the
            identity), since the backward pass treats it so.
        mean_layers: average layers up to this one only (default ``K``; NCL
            propagates past its mean to reach its contrasted hop).
    """
    adjs = tuple(adj) if isinstance(adj, (tuple, list)) else (adj,) * num_layers
    if len(adjs) != num_layers:
        raise ValueError(f"propagate_mean: {len(adjs)} adjacencies for {num_layers} layers")
    if x.dim() != 2 or any(x.size(0) != a.size for a in adjs):
        raise ValueError(f"propagate_mean: x must have shape [{adjs[0].size if adjs else '?'}, d], "
                         f"got {tuple(x.shape)}")
    last = num_layers if mean_layers is None else mean_layers
    if not 0 <= last <= num_layers:
        raise ValueError(f"propagate_mean: mean_layers must lie in 0..{num_layers}, got {last}")
    taps = tuple(taps)
    if any(not 1 <= t <= num_layers for t in taps):
        raise ValueError(f"propagate_mean: taps must lie in 1..{num_layers}, got {taps}")
    if taps and keep_layers:
        raise ValueError("propagate_mean: taps and keep_layers do not combine")
    args = (x, adjs, 1 if skip_ego else 0, last, taps, perturb, keep_layers)
    if torch.is_grad_enabled() and x.requires_grad:
        return _LayerMean.apply(*args)
    with torch.no_grad():
        return _LayerMean.forward(_NoCtx(), *args)


class _NoCtx:
    """A stand-in for autograd's context when :class:`_LayerMean` runs without autograd."""

    def mark_non_differentiable(self, *tensors: Tensor) -> None:
        """Nothing to mark without autograd."""


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
