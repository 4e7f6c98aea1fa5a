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
from .blocks import (
    ColumnBlocks,
    block_width,
    budget_is_set,
    exact_candidate_widths,
    fastest_width,
    time_blocked_pass,
)
from .exactness import rows_path_exact
from .reorder import (
    REORDER_AFTER_PASSES,
    Reordering,
    locality_order,
    permuted_csr,
    reorder_setting,
    reorder_wanted,
)
from .restrict import csr_rows, csr_transpose, row_nnz_share, zeros_with_rows

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
            *csr_transpose(self.crow, self.col, self.value, self.size), self.size, self.backend
        )
        #: measured block widths, by (columns, dtype, threads) (:meth:`block_width`)
        self._widths: dict[tuple, int] = {}
        #: on a copy made by :meth:`reordered`: its renumbering of the nodes
        self.reordering: Reordering | None = None
        self._reordered: Adjacency | None = None
        #: passes of :func:`propagate_mean` with an operand past the cache budget so far
        self._passes_past_budget = 0

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

    def matmul_add(self, x: Tensor, add: Tensor, transpose: bool = False,
                   in_place: bool = False) -> Tensor:
        """``add + A @ x`` (or ``A^T``) without autograd: one ``addmm`` for PyTorch's
        kernel instead of a product and a sum. In a new tensor, or with ``in_place``
        written into ``add`` (which the caller no longer needs): that saves the copy
        of ``add`` that ``addmm`` makes into a new result, with the same bits."""
        if self.backend == "torch_sparse":
            product = self.matmul(x, transpose)
            return add.add_(product) if in_place else add + product
        kernel = self._kernel if (not transpose or self._kernel_t is None) else self._kernel_t
        return torch.addmm(add, kernel, x, out=add) if in_place else torch.addmm(add, kernel, x)

    def matmul_blocks(self, layout: ColumnBlocks, x_blocks: Tensor, add: Tensor | None = None,
                      transpose: bool = False, in_place: bool = False) -> Tensor:
        """``A @ x`` (``+ add``; or ``A^T``) on ``x`` held in the column blocks ``layout``
        (:class:`~ssgraphrec.sparse.blocks.ColumnBlocks`), without autograd: one product
        per block, each column bit-for-bit the whole product's. PyTorch's CPU kernel only.
        ``in_place`` writes the sum into ``add`` (:meth:`matmul_add`).
        """
        if self.backend != "torch" or x_blocks.device.type != "cpu":
            raise ValueError("matmul_blocks: column blocks are for PyTorch's CPU kernel")
        kernel = self._kernel if (not transpose or self._kernel_t is None) else self._kernel_t
        return layout.product(kernel, x_blocks, add, in_place)

    def block_width(self, x: Tensor, products: int = 1) -> int:
        """Columns per block for CPU products of this matrix with ``x`` (``[N, d]``):
        :func:`~ssgraphrec.sparse.blocks.block_width`'s rule where ``x`` fits the cache
        budget (whole), blocking does not apply or ``$SSGRAPHREC_SPMM_BLOCK_BYTES`` fixes
        the budget; else the fastest of the candidate widths that give the whole product's
        bits on this machine (:func:`~ssgraphrec.sparse.blocks.exact_candidate_widths`),
        measured on ``x`` the first time this matrix meets such an ``x``, each as a pass
        of ``products`` products with its conversion into blocks and back
        (:func:`~ssgraphrec.sparse.blocks.fastest_width`,
        :func:`~ssgraphrec.sparse.blocks.time_blocked_pass`), and kept."""
        width = block_width(x)
        if width == x.size(1) or budget_is_set() or self.backend != "torch":
            return width
        key = (x.size(1), x.dtype, torch.get_num_threads())
        if key not in self._widths:
            self._widths[key] = fastest_width(
                lambda w: time_blocked_pass(self._kernel, x, w, products),
                exact_candidate_widths(x.size(1), x.device))
        return self._widths[key]

    def reordered(self) -> Adjacency:
        r"""This matrix with its nodes renumbered in their locality order,
        :math:`\mathbf{P}\mathbf{A}\mathbf{P}^\top` (:mod:`~ssgraphrec.sparse.reorder`),
        made the first time it is asked for and kept; its :attr:`reordering` holds the
        renumbering. Every row, of the matrix and of its transpose, keeps its entries in
        their stored order, so a product in the new numbering has the bits of the
        product it stands for."""
        if self.reordering is not None:
            return self
        if self._reordered is None:
            renumbering = locality_order(self.crow, self.col, self.size, self.symmetric)
            renumbering = renumbering.to(self.device)
            arrays = permuted_csr(self.crow, self.col, self.value, renumbering.order, renumbering.rank)
            adj = Adjacency(*arrays, self.size, symmetric=True, backend=self.backend)
            if not self.symmetric:   # the transpose's rows in their own stored order, renamed
                transpose = csr_transpose(self.crow.long(), self.col.long(), self.value, self.size)
                adj.symmetric = False
                adj._kernel_t = _make_kernel(
                    *permuted_csr(*transpose, renumbering.order, renumbering.rank),
                    self.size, self.backend)
            adj.reordering = renumbering
            self._reordered = adj
        return self._reordered

    def count_pass(self, x: Tensor) -> bool:
        """Count a pass of :func:`propagate_mean` on ``x``, and say whether it runs in
        the locality order (:meth:`reordered`): where
        :func:`~ssgraphrec.sparse.reorder.reorder_wanted` wants it for ``x``, from this
        matrix's :data:`~ssgraphrec.sparse.reorder.REORDER_AFTER_PASSES`-th such pass on
        (``$SSGRAPHREC_SPMM_REORDER=on``: from the first), so that a matrix used for a
        step or two (a view drawn per step) does not pay for the order."""
        if self.reordering is not None or self.backend != "torch" or not reorder_wanted(x):
            return False
        if reorder_setting() == "on":
            return True
        self._passes_past_budget += 1
        return self._passes_past_budget >= REORDER_AFTER_PASSES

    @property
    def measured_widths(self) -> dict[tuple, int]:
        """The widths :meth:`block_width` has measured so far, by (columns, dtype,
        threads): a copy, for studies and logs."""
        return dict(self._widths)

    def rows_share(self, rows: Tensor) -> float:
        """The share of the non-zeros that lie in ``rows`` (distinct)."""
        return row_nnz_share(self.crow, rows)

    def restrict(self, rows: Tensor, backward: bool = True) -> RowRestriction:
        """The rows ``rows`` (distinct) of this matrix for a product, and, with
        ``backward``, the same columns of its transpose for that product's backward pass
        (:class:`RowRestriction`): for sorted ``rows``, every entry of either product is
        the same sum as in the whole one."""
        if self.backend != "torch":
            raise ValueError("Adjacency.restrict: PyTorch's kernel only")
        sub = csr_rows(self.crow, self.col, self.value, rows)
        columns_t = (_make_kernel(*csr_transpose(*sub, self.size), rows.numel(), "torch")
                     if backward else None)
        return RowRestriction(_make_kernel(*sub, self.size, "torch"), columns_t)


@dataclass
class RowRestriction:
    r"""Some rows :math:`R` of an :class:`Adjacency`: the product
    :math:`\mathbf{A}_{R,:}\mathbf{X}` (``[|R|, d]``) and, with ``transpose``,
    :math:`\mathbf{A}^\top_{:,R}\mathbf{Y}` (``[N, d]``, ``Y`` indexed like ``R``), by
    the interface of :class:`Adjacency` that :class:`_LayerMean` uses
    (:mod:`~ssgraphrec.sparse.restrict`). PyTorch's kernel only."""

    rows_kernel: Tensor
    #: ``None`` where the restriction was made for a forward product only
    columns_kernel_t: Tensor | None
    backend: str = "torch"

    def _pick(self, transpose: bool) -> Tensor:
        if not transpose:
            return self.rows_kernel
        if self.columns_kernel_t is None:
            raise ValueError("RowRestriction: made without its transpose "
                             "(Adjacency.restrict(rows, backward=False))")
        return self.columns_kernel_t

    def matmul(self, x: Tensor, transpose: bool = False) -> Tensor:
        """``A[R, :] @ x``, or ``A^T[:, R] @ x``."""
        return _apply_kernel(self._pick(transpose), x, self.backend)

    def matmul_add(self, x: Tensor, add: Tensor, transpose: bool = False,
                   in_place: bool = False) -> Tensor:
        """``add + matmul(x, transpose)`` in one ``addmm`` (into ``add`` with
        ``in_place``, :meth:`Adjacency.matmul_add`)."""
        kernel = self._pick(transpose)
        return torch.addmm(add, kernel, x, out=add) if in_place else torch.addmm(add, kernel, x)

    def matmul_blocks(self, layout: ColumnBlocks, x_blocks: Tensor, add: Tensor | None = None,
                      transpose: bool = False, in_place: bool = False) -> Tensor:
        """:meth:`matmul` (``+ add``, into ``add`` with ``in_place``) on column blocks."""
        return layout.product(self._pick(transpose), x_blocks, add, in_place)


def _make_kernel(crow: Tensor, col: Tensor, value: Tensor, size: int, backend: str):
    """The product kernel of a CSR matrix with ``len(crow) - 1`` rows and ``size`` columns."""
    if backend == "torch_sparse":
        from torch_sparse import SparseTensor

        return SparseTensor(rowptr=crow, col=col, value=value,
                            sparse_sizes=(crow.numel() - 1, size), is_sorted=True, trust_data=True)
    if col.numel() < 2**31 and size < 2**31:
        # 32-bit indices: PyTorch's CPU kernel would otherwise convert them on every product.
        crow, col = crow.int(), col.int()
    with warnings.catch_warnings():  # CSR is "beta" in PyTorch; we rely on sparse.mm only
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(crow, col, value, (crow.numel() - 1, size))


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

    With ``rows`` (:math:`R`), the mean is taken at those rows only and is zero
    elsewhere: the last layer is the product :math:`\mathbf{A}_{K,(R,:)}
    \mathbf{E}^{(K-1)}` of those rows (:meth:`Adjacency.restrict`), the layers before
    it are whole (the last one needs them), and a tap of the last layer is zero outside
    :math:`R` too. The backward pass reads the gradient at :math:`R` only, and its first
    product is :math:`\mathbf{A}^\top_{K,(:,R)} \mathbf{V}_R`. Every entry computed is
    the same sum as without ``rows``. With ``compact`` the mean is returned at ``R``
    only, ``[|R|, d]`` in the order of ``R``, and so is its gradient read.

    In the forward pass the first sum of two layers makes the new tensor and the later
    ones add in place; in the backward pass the lowest averaged layer's ``addmm`` writes
    into :math:`\mathbf{G}`, which no layer reads after it (one copy fewer each).
    """

    @staticmethod
    def forward(ctx, x: Tensor, adjs: tuple[Adjacency, ...], first: int,  # type: ignore[override]
                last: int, taps: tuple[int, ...], perturb: Callable[[Tensor], Tensor] | None,
                keep_layers: bool, rows: Tensor | None = None, compact: bool = False):
        num_layers = len(adjs)
        reordering = None
        if (perturb is None and adjs and all(a is adjs[0] for a in adjs)
                and adjs[0].count_pass(x)):
            adjs = (adjs[0].reordered(),) * num_layers     # the locality order (see _Layout)
            reordering = adjs[0].reordering
        if rows is not None:                      # the last product at these rows only
            last_rows = rows if reordering is None else reordering.ranks(rows)
            adjs = (*adjs[:-1], adjs[-1].restrict(last_rows))
        ctx.adjs, ctx.first, ctx.last, ctx.taps, ctx.rows = adjs, first, last, taps, rows
        ctx.compact = compact
        ctx.num_nodes = x.size(0)
        ctx.count = last - first + 1
        # The backward pass has no perturbation (an offset without gradient), so it may
        # take column blocks where the forward pass, perturbed, may not (see _Layout).
        layout = _Layout(x, adjs, perturb is None, reordering)
        ctx.layout = layout if perturb is None else _Layout(x, adjs)

        def averaged(h: Tensor, k: int) -> Tensor:
            """Layer ``k`` where the mean reads it: at ``rows`` when given."""
            return layout.select(h, rows) if rows is not None and k < num_layers else h

        h = layout.enter(x)
        total = averaged(h, 0) if first == 0 else None
        owned = False     # the first sum makes a new tensor, the later ones add in place
        layers = [h]
        for k, adj in enumerate(adjs, 1):
            h = layout.product(adj, h)
            if perturb is not None:                 # never blocked forward (see _Layout)
                h = perturb(h) if rows is None or k < num_layers \
                    else _perturbed_at_rows(perturb, h, rows, x.size(0))
            layers.append(h)
            if first <= k <= last:
                if total is None:
                    total = averaged(h, k)
                elif owned:
                    total.add_(averaged(h, k))
                else:
                    total, owned = total + averaged(h, k), True
        if total is None:
            raise ValueError("layer mean: no layers to average (skip_ego needs at least one layer)")
        if not owned:                               # one layer averaged: still that layer
            total = total.clone()
        at_rows = rows is not None                   # layer K, the mean: |R| rows
        total = layout.exit(total.div_(ctx.count), at_rows)
        extra = [layout.exit(layers[t], at_rows and t == num_layers) for t in taps]
        if rows is not None:
            if not compact:                         # else the mean stays [|R|, d]
                total = zeros_with_rows(total, rows, x.size(0))
            extra = [zeros_with_rows(e, rows, x.size(0)) if t == num_layers else e
                     for t, e in zip(taps, extra, strict=True)]
        if keep_layers:
            extra = [layout.exit(layer, at_rows and k == num_layers)
                     for k, layer in enumerate(layers[1:], 1)]
            if rows is not None:                    # layer K was taken at rows only
                extra[-1] = zeros_with_rows(extra[-1], rows, x.size(0))
            ctx.mark_non_differentiable(*extra)
        return (total, *extra) if extra else total

    @staticmethod
    def backward(ctx, grad: Tensor, *grads: Tensor | None):  # type: ignore[override]
        layout: _Layout = ctx.layout
        rows, num_layers = ctx.rows, len(ctx.adjs)
        mean_grad = None
        if grad is not None:               # with rows: read there only, [|R|, d]
            mean_grad = layout.enter_divided(
                grad.index_select(0, rows) if rows is not None and not ctx.compact else grad,
                ctx.count, rows is not None)
        tap_grads = dict.fromkeys(ctx.taps)
        for t, g in zip(ctx.taps, grads, strict=False):
            if g is not None:
                at_rows = rows is not None and t == num_layers
                if at_rows:
                    g = g.index_select(0, rows)
                g = layout.enter(g.contiguous(), at_rows)
                tap_grads[t] = g if tap_grads[t] is None else tap_grads[t] + g
        averaged = range(ctx.first, ctx.last + 1)

        def at_rows_only(k: int) -> bool:
            """Whether the mean's gradient enters layer ``k`` at ``rows`` only, added after
            the product (:func:`added_at_rows`) instead of as a whole matrix of zeros
            elsewhere: a layer below K, with ``rows``, without a tap's gradient."""
            return (rows is not None and mean_grad is not None and k in averaged
                    and k < num_layers and tap_grads.get(k) is None)

        def added_at(k: int) -> Tensor | None:
            """The gradient entering layer ``k`` besides its product's."""
            mean_term = mean_grad if k in averaged else None
            tap = tap_grads.get(k)
            if rows is not None and k < num_layers and mean_term is not None:
                if tap is None:
                    return None                     # at_rows_only(k)
                return layout.add_at_rows(tap.clone(), rows, mean_term)
            terms = [t for t in (mean_term, tap) if t is not None]
            return terms[0] if len(terms) == 1 else (terms[0] + terms[1] if terms else None)

        def added_at_rows(v: Tensor | None, k: int, owned: bool) -> Tensor | None:
            """``v`` plus the mean's gradient of layer ``k`` where :func:`at_rows_only`
            (in place where ``owned``: ``v`` is a product of this pass)."""
            if not at_rows_only(k):
                return v
            if v is None:
                v = layout.zeros(ctx.num_nodes, mean_grad)
            elif not owned:
                v = v.clone()
            return layout.add_at_rows(v, rows, mean_grad)

        def spent(v_add: Tensor | None, k: int, v: Tensor) -> bool:
            """Whether ``v_add``, layer ``k``'s added gradient, may take the sum with the
            product of ``v`` in place (no ``addmm`` copy of it): a sum made by
            :func:`added_at`, or the mean's gradient at its lowest layer, never a tap's
            gradient as autograd gave it, nor ``v`` itself."""
            if v_add is None or v_add is v or any(v_add is t for t in tap_grads.values()):
                return False
            return v_add is not mean_grad or k == ctx.first

        v = added_at(num_layers)
        for k in range(num_layers, 0, -1):     # adjs[k - 1] made layer k
            v_add = added_at(k - 1)
            owned = v is not None
            v = layout.product(ctx.adjs[k - 1], v, v_add, transpose=True,
                               in_place=spent(v_add, k - 1, v)) if owned else v_add
            v = added_at_rows(v, k - 1, owned)
        return (layout.exit(v) if v is not None else None), *(None,) * 8


def _perturbed_at_rows(perturb: Callable[[Tensor], Tensor], h: Tensor, rows: Tensor,
                       num_nodes: int) -> Tensor:
    """``perturb`` of a layer taken at ``rows`` only: by its ``at_rows`` where it has one
    (:meth:`~ssgraphrec.nn.UniformNoise.at_rows` draws as for the whole layer)."""
    at_rows = getattr(perturb, "at_rows", None)
    return at_rows(h, rows, num_nodes) if at_rows is not None else perturb(h)


class _Layout:
    """How :class:`_LayerMean` holds its layers: ``[N, d]`` as given, or in column
    blocks (:mod:`~ssgraphrec.sparse.blocks`) where ``x`` outgrows the cache on
    PyTorch's CPU kernel and ``may_block``, as wide as the pass's first whole matrix
    measures (:meth:`Adjacency.block_width`); and, with a ``reordering``, with the rows
    of the whole layers in the matrices' locality order
    (:meth:`Adjacency.reordered`): entering and leaving the layout renumbers them, in
    the same copy that makes or joins the blocks. Layers taken at some rows ``R`` only
    (``at_rows``) are held in the order of ``R``. Blocked, renumbered or not, every
    entry is the same sum.

    A perturbation works on whole rows (SimGCL's noise normalises each row), so a
    perturbed forward pass is not blocked: turning each layer into rows and back cost
    more than the blocks saved (XSimGCL's step on Gowalla took 1.08x as long in a first
    run of ``benchmarks/spmm_blocks.py``). Its backward pass, a chain of products with
    no perturbation, is blocked as an unperturbed one. Nor is a perturbed pass
    renumbered: its noise is drawn by node, and gathering it into the new numbering
    would cost a copy per layer.
    """

    def __init__(self, x: Tensor, adjs: tuple[Adjacency, ...], may_block: bool = True,
                 reordering: Reordering | None = None):
        whole = x.size(1)
        torch_kernel = all(a.backend == "torch" for a in adjs)
        # the first whole matrix measures the width (a lone restricted one takes the rule)
        measure = next((a for a in adjs if isinstance(a, Adjacency)), None)
        if not (may_block and torch_kernel):
            self.width = whole
        else:
            self.width = (measure.block_width(x, len(adjs)) if measure is not None
                          else block_width(x))
        self.blocked = self.width < whole
        self.blocks = ColumnBlocks(whole, self.width) if self.blocked else None
        self.reordering = reordering

    def _renumbered(self, at_rows: bool) -> Reordering | None:
        """The renumbering for a whole layer; ``None`` for one at rows, or none."""
        return None if at_rows else self.reordering

    def enter(self, x: Tensor, at_rows: bool = False) -> Tensor:
        """``x`` (``[N, d]`` by node, or ``[|R|, d]`` in the order of ``R``) in this layout."""
        renumbering = self._renumbered(at_rows)
        if self.blocked:
            return self.blocks.split(x, None if renumbering is None else renumbering.order)
        return x if renumbering is None else renumbering.gather(x)

    def enter_divided(self, x: Tensor, divisor: int, at_rows: bool = False) -> Tensor:
        """``enter(x / divisor)`` in a new tensor, in one pass fewer when blocked."""
        renumbering = self._renumbered(at_rows)
        if self.blocked:
            return self.blocks.split(
                x, None if renumbering is None else renumbering.order).div_(divisor)
        return (x.contiguous() / divisor if renumbering is None
                else renumbering.gather(x).div_(divisor))

    def exit(self, h: Tensor, at_rows: bool = False) -> Tensor:
        """The inverse of :meth:`enter`: ``[N, d]`` by node (``[|R|, d]``), a new tensor
        where ``h`` is blocked or renumbered."""
        renumbering = self._renumbered(at_rows)
        if self.blocked:
            return self.blocks.join(h, None if renumbering is None else renumbering.rank)
        return h if renumbering is None else renumbering.restore(h)

    def _rows(self, rows: Tensor) -> Tensor:
        """Where the nodes ``rows`` lie in this layout's whole layers."""
        return rows if self.reordering is None else self.reordering.ranks(rows)

    def select(self, h: Tensor, rows: Tensor) -> Tensor:
        """The nodes ``rows`` of the whole layer ``h`` (held in this layout), in this
        layout, in the order of ``rows``."""
        rows = self._rows(rows)
        return self.blocks.select(h, rows) if self.blocked else h.index_select(0, rows)

    def zeros(self, num_rows: int, like: Tensor) -> Tensor:
        """Zeros of ``num_rows`` rows in this layout, of ``like``'s type and device."""
        if self.blocked:
            return like.new_zeros(num_rows * self.blocks.columns)
        return like.new_zeros(num_rows, like.size(1))

    def add_at_rows(self, h: Tensor, rows: Tensor, values: Tensor) -> Tensor:
        """The whole layer ``h`` with ``values`` (``[len(rows), d]``, this layout) added at
        the distinct nodes ``rows``, in place."""
        rows = self._rows(rows)
        if self.blocked:
            return self.blocks.add_at_rows(h, rows, values)
        return h.index_add_(0, rows, values)

    def product(self, adj: Adjacency, h: Tensor, add: Tensor | None = None,
                transpose: bool = False, in_place: bool = False) -> Tensor:
        """``A h (+ add)`` (or ``A^T``) in this layout; ``in_place`` writes the sum into
        ``add``."""
        if self.blocked:
            return adj.matmul_blocks(self.blocks, h, add, transpose, in_place)
        if add is None:
            return adj.matmul(h, transpose)
        return adj.matmul_add(h, add, transpose, in_place)


def propagate_mean(adj: Adjacency | tuple[Adjacency, ...], x: Tensor, num_layers: int,
                   skip_ego: bool = False, keep_layers: bool = False, *,
                   taps: tuple[int, ...] = (), perturb: Callable[[Tensor], Tensor] | None = None,
                   mean_layers: int | None = None, rows: Tensor | None = None,
                   compact: bool = False):
    r"""LightGCN's readout (He et al., SIGIR 2020, Eq. 8) of ``num_layers`` products:
    the mean of :math:`\mathbf{E}^{(0)} = x, \mathbf{E}^{(k)} = \mathbf{A}
    \mathbf{E}^{(k-1)}` over ``k = 0..K`` (``1..K`` with ``skip_ego``), differentiable
    with respect to ``x`` and with the gradient of the layer-by-layer mean.

    No layer is saved for the backward pass (:class:`_LayerMean`), which is about a
    fifth faster per LightGCN step than :func:`propagate` per layer plus the mean
    (``python benchmarks/layer_mean.py``). On PyTorch's CPU kernel, layers that outgrow
    the cache are held in column blocks (:mod:`~ssgraphrec.sparse.blocks`), with the
    same result to the bit: those of the backward pass always, those of the forward
    pass where it is not perturbed.

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
            identity), since the backward pass treats it so. Where the last layer is
            taken at ``rows`` only, ``perturb.at_rows(layer, rows, N)`` is called if it
            exists (:meth:`~ssgraphrec.nn.UniformNoise.at_rows`, which draws the numbers
            of the whole layer), else ``perturb`` on those rows.
        mean_layers: average layers up to this one only (default ``K``; NCL
            propagates past its mean to reach its contrasted hop).
        rows: sorted distinct node ids where the caller reads the mean (and a tap or kept
            copy of layer ``K``), such as a batch's users and items; its other rows hold
            zeros or the mean, and their gradient is not read. Where these rows hold at
            most :data:`ROWS_SHARE_LIMIT` of the last adjacency's non-zeros, the last
            product is taken at these rows only and the backward pass's first product
            from them (:class:`_LayerMean`; PyTorch's kernel, ``mean_layers`` at ``K``,
            an adjacency of at least :data:`ROWS_MIN_NNZ` non-zeros;
            :func:`restricts_rows`): the same values and gradients at a fraction of two
            products' cost.
        compact: return the mean at ``rows`` only, ``[|R|, d]`` in their order (taps and
            kept layers as without it). Its gradient then stays ``[|R|, d]`` until this
            pass reads it: the caller's gathers do not each fill and sum a whole ``[N, d]``
            matrix of zeros (LightGCN's, SGL's and SimGCL's steps, the same bits).
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
    if compact and rows is None:
        raise ValueError("propagate_mean: compact needs rows")
    gather = None                                 # compact, from the whole mean
    if rows is not None:
        _check_rows(rows, x.size(0))
        if not _restrict_rows(adjs, rows, last, x.size(1)):
            gather, rows = (rows if compact else None), None
    args = (x, adjs, 1 if skip_ego else 0, last, taps, perturb, keep_layers, rows,
            compact and rows is not None)
    if torch.is_grad_enabled() and x.requires_grad:
        out = _LayerMean.apply(*args)
    else:
        with torch.no_grad():
            out = _LayerMean.forward(_NoCtx(), *args)
    if gather is None:
        return out
    if isinstance(out, tuple):                    # taps or kept layers stay whole
        return (out[0].index_select(0, gather), *out[1:])
    return out.index_select(0, gather)


#: :func:`propagate_mean` takes its last product at the rows a caller reads where they
#: hold at most this share of the last adjacency's non-zeros, and the adjacency has at
#: least :data:`ROWS_MIN_NNZ`. The restriction (:meth:`Adjacency.restrict`, a sort of
#: the rows' non-zeros) saves the rest of two products. Measured by
#: ``benchmarks/batch_rows.py`` (one thread): on Gowalla (1.47 M non-zeros; a batch of
#: 2,048 holds a sixth of them) the steps of LightGCN, SGL and XSimGCL took 0.81x to
#: 0.92x as long; on lastfm-80-20 (0.13 M) a LightGCN step gained nothing at a share of
#: 0.43 (batch 1,024), and LightGCN's and SGL's took 1.18x as long at 0.62 (batch 2,048).
ROWS_SHARE_LIMIT = 0.5
#: The fewest non-zeros of an adjacency whose last product :func:`propagate_mean`
#: restricts to the rows read (see :data:`ROWS_SHARE_LIMIT`).
ROWS_MIN_NNZ = 2**19


def _check_rows(rows: Tensor, num_nodes: int) -> None:
    """A :class:`ValueError` unless ``rows`` are sorted distinct ids in ``0..num_nodes - 1``
    (as ``torch.unique`` gives them)."""
    if rows.dim() != 1 or rows.dtype != torch.long:
        raise ValueError("propagate_mean: rows must be a 1-D tensor of node ids (int64)")
    if rows.numel() > 1 and not bool((rows[1:] > rows[:-1]).all()):
        raise ValueError("propagate_mean: rows must be sorted and distinct (torch.unique)")
    if rows.numel() and not (int(rows[0]) >= 0 and int(rows[-1]) < num_nodes):
        raise ValueError(f"propagate_mean: rows must lie in 0..{num_nodes - 1}")


def restricts_rows(adj: Adjacency, rows: Tensor, columns: int) -> bool:
    """Whether a product with ``adj`` and ``columns`` columns is worth taking at ``rows``
    (sorted distinct node ids) only: PyTorch's kernel, at least :data:`ROWS_MIN_NNZ`
    non-zeros, at most :data:`ROWS_SHARE_LIMIT` of them in ``rows``, and a kernel whose
    sums keep their bits when some rows are multiplied alone and when the terms of zero
    rows are dropped, as the path's forward and backward products do
    (:func:`~ssgraphrec.sparse.exactness.rows_path_exact`).
    :func:`propagate_mean` averaging all its layers takes its last product so where this
    holds for the last adjacency."""
    return (adj.backend == "torch" and adj.nnz >= ROWS_MIN_NNZ
            and adj.rows_share(rows) <= ROWS_SHARE_LIMIT
            and rows_path_exact(columns, adj.device))


def _restrict_rows(adjs: tuple[Adjacency, ...], rows: Tensor, last: int, columns: int) -> bool:
    """Whether :func:`propagate_mean` takes its last product at ``rows`` only."""
    if not adjs or last != len(adjs) or any(a.backend != "torch" for a in adjs):
        return False
    return restricts_rows(adjs[-1], rows, columns)


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
