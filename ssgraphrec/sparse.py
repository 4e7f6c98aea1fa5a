"""The one place that touches sparse kernels.

Propagation ``X' = A X`` on a normalized adjacency ``A`` is the inner loop of
every graph recommender here. This module builds ``A`` once, in sorted CSR
form, and offers :func:`propagate` on two backends:

* ``"torch"``: PyTorch's own CSR kernel (``torch.sparse.mm``; MKL on CPU,
  cuSPARSE on CUDA), always available;
* ``"torch_sparse"``: ``torch_sparse.SparseTensor`` when that package is
  installed.

Two facts about the matrices of this field are exploited:

* the symmetric normalized adjacency ``D^-1/2 A D^-1/2`` of an undirected graph
  is its own transpose, so the backward pass ``dX = A^T dY`` reuses the
  forward CSR instead of building (or sorting into) a transpose;
* dropping edges from a sorted edge list keeps it sorted, so
  :class:`BipartiteGraph` builds the adjacency of an augmented view (a subset
  of the training edges, given by their ids ``e_id``) with masks and prefix
  sums only, without a re-sort.
"""

from __future__ import annotations

import importlib.util
import warnings
from dataclasses import dataclass

import torch
from torch import Tensor

from .errors import ConfigError

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


class BipartiteGraph:
    """The user-item graph, held in the two sorted orders the adjacency needs.

    The bipartite graph with ``U`` users and ``I`` items becomes an
    undirected graph on ``U + I`` nodes (users first, items offset by ``U``).
    Its symmetric normalized adjacency (LightGCN, He et al. SIGIR 2020, Eq. 7)

    ``A_hat = D^-1/2 [[0, R], [R^T, 0]] D^-1/2``

    is written in CSR as user rows (edges in (user, item) order) followed by
    item rows (the same edges in (item, user) order). Both orders are computed
    once here; any subset of edges (an augmented view) keeps both orders, so
    building its adjacency needs no sort.

    Args:
        edge_index: ``[2, E]`` user and item ids (duplicates are merged).
        num_users: ``U``.
        num_items: ``I``.
        edge_weight: optional ``[E]`` weights (default 1).
    """

    def __init__(self, edge_index: Tensor, num_users: int, num_items: int,
                 edge_weight: Tensor | None = None):
        edge_index = edge_index.long()
        key = edge_index[0] * num_items + edge_index[1]
        key, order = torch.sort(key)
        unique = torch.ones_like(key, dtype=torch.bool)
        unique[1:] = key[1:] != key[:-1]
        order = order[unique]
        self.num_users = int(num_users)
        self.num_items = int(num_items)
        self.user = edge_index[0, order]
        self.item = edge_index[1, order]
        self.weight = None if edge_weight is None else edge_weight[order].float()
        # (item, user) order of the same edges, as a permutation of the user order.
        self.by_item = torch.argsort(self.item * num_users + self.user)

    @property
    def num_edges(self) -> int:
        return int(self.user.numel())

    @property
    def num_nodes(self) -> int:
        return self.num_users + self.num_items

    @property
    def device(self) -> torch.device:
        return self.user.device

    def edge_index(self) -> Tensor:
        """``[2, E]`` edges in (user, item) order."""
        return torch.stack([self.user, self.item])

    def keep_mask(self, e_id: Tensor | None) -> Tensor | None:
        """Boolean mask over this graph's edges for the edge ids ``e_id``."""
        if e_id is None:
            return None
        keep = torch.zeros(self.num_edges, dtype=torch.bool, device=self.device)
        keep[e_id.to(self.device)] = True
        return keep

    def normalized_adjacency(self, e_id: Tensor | None = None, backend: str = "torch",
                             dtype: torch.dtype = torch.float32) -> Adjacency:
        """Symmetric normalized adjacency of the graph, or of the view ``e_id``.

        Degrees are those of the view itself, as SGL re-normalizes each
        augmented graph (Wu et al. SIGIR 2021, Eq. 2 applied to ``s(G)``).
        Isolated nodes get an all-zero row.
        """
        keep = self.keep_mask(e_id)
        U = self.num_users
        if keep is None:
            user_order = torch.arange(self.num_edges, device=self.device)
            item_order = self.by_item
        else:
            user_order = keep.nonzero().view(-1)
            item_order = self.by_item[keep[self.by_item]]
        u, i = self.user[user_order], self.item[user_order]
        w = torch.ones(u.numel(), dtype=dtype, device=self.device) if self.weight is None \
            else self.weight[user_order].to(dtype)
        deg = torch.zeros(self.num_nodes, dtype=dtype, device=self.device)
        deg.index_add_(0, u, w)
        deg.index_add_(0, i + U, w)
        dinv = deg.pow(-0.5)
        dinv[torch.isinf(dinv)] = 0.0
        w_edge = torch.zeros(self.num_edges, dtype=dtype, device=self.device)
        w_edge[user_order] = dinv[u] * w * dinv[i + U]
        counts = torch.cat([
            torch.bincount(u, minlength=U),
            torch.bincount(self.item[item_order], minlength=self.num_items),
        ])
        crow = torch.zeros(self.num_nodes + 1, dtype=torch.long, device=self.device)
        crow[1:] = torch.cumsum(counts, 0)
        col = torch.cat([i + U, self.user[item_order]])
        value = torch.cat([w_edge[user_order], w_edge[item_order]])
        return Adjacency(crow, col, value, self.num_nodes, symmetric=True, backend=backend)


def normalized_adjacency_reference(edge_index: Tensor, num_users: int, num_items: int) -> Tensor:
    """Dense ``D^-1/2 A D^-1/2`` of the bipartite graph, for tests on small graphs."""
    n = num_users + num_items
    a = torch.zeros(n, n)
    a[edge_index[0], edge_index[1] + num_users] = 1.0
    a = torch.maximum(a, a.t())
    deg = a.sum(1)
    dinv = deg.pow(-0.5)
    dinv[torch.isinf(dinv)] = 0.0
    return dinv[:, None] * a * dinv[None, :]


def bipartite_adjacency(edge_index: Tensor, num_users: int, num_items: int,
                        edge_weight: Tensor | None = None, backend: str = "torch",
                        dtype: torch.dtype = torch.float32) -> Adjacency:
    """Symmetric normalized adjacency of an explicit user-item edge list.

    For views that *add* edges (e.g. :class:`ssgraphrec.transforms.GraphDiffusion`),
    which the subset path of :meth:`BipartiteGraph.normalized_adjacency` cannot
    express. Cost: a fresh :class:`BipartiteGraph`, i.e. two sorts of the view's
    ``E'`` edges (``O(E' log E')``), where a subset view needs only masks and
    prefix sums (``O(E)``); paid once per view per epoch.
    """
    return BipartiteGraph(edge_index, num_users, num_items, edge_weight).normalized_adjacency(
        backend=backend, dtype=dtype)


def _edges_of_ids(graph: BipartiteGraph, store, e_id: Tensor) -> tuple[Tensor, Tensor | None]:
    """``[2, len(e_id)]`` edges with ids ``e_id`` and their weights (``None`` if unweighted).

    Ids below ``graph.num_edges`` name the graph's edges; larger ids name edges a
    transform added, looked up in the store's ``e_id`` / ``edge_index``
    (weight 1).
    """
    E = graph.num_edges
    e_id = e_id.to(graph.device)
    orig = e_id < E
    user = torch.empty_like(e_id)
    item = torch.empty_like(e_id)
    user[orig], item[orig] = graph.user[e_id[orig]], graph.item[e_id[orig]]
    added = ~orig
    if bool(added.any()):
        store_ids = store.e_id.to(graph.device)
        pos = (store_ids >= E).nonzero().view(-1)
        table = torch.full((int(store_ids.max()) - E + 1,), -1, dtype=torch.long,
                           device=graph.device)
        table[store_ids[pos] - E] = pos
        wanted = e_id[added] - E
        if bool((wanted >= table.numel()).any()) or bool((table[wanted] < 0).any()):
            raise ValueError("view_adjacency: an added edge id has no edge in the store")
        where = table[wanted]
        ei = store.edge_index.to(graph.device)
        user[added], item[added] = ei[0, where], ei[1, where]
    weight = None
    if graph.weight is not None:
        weight = torch.ones(e_id.numel(), dtype=graph.weight.dtype, device=graph.device)
        weight[orig] = graph.weight[e_id[orig]]
    return torch.stack([user, item]), weight


def _ids_adjacency(graph: BipartiteGraph, store, e_id: Tensor, backend: str) -> Adjacency:
    if e_id.numel() == 0 or int(e_id.max()) < graph.num_edges:
        return graph.normalized_adjacency(e_id, backend)  # a subset: no sort needed
    edges, weight = _edges_of_ids(graph, store, e_id)
    return bipartite_adjacency(edges, graph.num_users, graph.num_items, weight, backend)


def view_adjacency(graph: BipartiteGraph, store, backend: str = "torch") -> Adjacency | list[Adjacency]:
    """Adjacency of an augmented view's edge store (see :mod:`ssgraphrec.transforms`).

    A store with ``layer_e_id`` (random walk) gives one adjacency per layer; a
    store with ``e_id`` gives the adjacency of those edges; otherwise the
    whole graph's. Edge ids ``>= graph.num_edges`` are edges a transform added
    (graph diffusion); a view with any of them is built from its explicit
    edge list (:func:`bipartite_adjacency`), a pure subset without a sort.
    """
    if "layer_e_id" in store:
        return [_ids_adjacency(graph, store, e, backend) for e in store.layer_e_id]
    if "e_id" in store:
        return _ids_adjacency(graph, store, store.e_id, backend)
    return graph.normalized_adjacency(None, backend)


def adjacency_from_edges(edge_index: Tensor, value: Tensor, size: int, *, symmetric: bool = False,
                         backend: str = "torch") -> Adjacency:
    """:class:`Adjacency` of the square ``size x size`` matrix with entries ``value`` at ``edge_index``.

    ``edge_index`` must be sorted by (row, column) without duplicates (as a
    coalesced sparse COO tensor's indices are); rows without entries are
    all-zero. ``symmetric`` is a promise the caller makes (a row-normalized
    matrix such as the MHCN motif channels is not symmetric).
    """
    row, col = edge_index[0].long(), edge_index[1].long()
    crow = torch.zeros(size + 1, dtype=torch.long, device=row.device)
    crow[1:] = torch.cumsum(torch.bincount(row, minlength=size), 0)
    return Adjacency(crow, col, value, size, symmetric=symmetric, backend=backend)


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
    with warnings.catch_warnings():  # sparse @ sparse goes through CSR, "beta" in PyTorch
        warnings.simplefilter("ignore", UserWarning)
        a = torch.sparse_coo_tensor(a_index.long(), a_value, a_shape).coalesce()
        b = torch.sparse_coo_tensor(b_index.long(), b_value, b_shape).coalesce()
        out = torch.sparse.mm(a, b).coalesce()
    return out.indices(), out.values()
