"""Sparse propagation against dense references, across backends."""

import pytest
import torch
from dense_reference import normalized_adjacency_reference

from ssgraphrec.errors import ConfigError
from ssgraphrec.sparse import (
    Adjacency,
    BipartiteGraph,
    has_torch_sparse,
    propagate,
    propagate_mean,
    resolve_backend,
)


def random_bipartite(num_users=7, num_items=9, num_edges=30, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.stack([torch.randint(0, num_users, (num_edges,), generator=g),
                        torch.randint(0, num_items, (num_edges,), generator=g)])


def test_normalized_adjacency_matches_dense_reference():
    ei = random_bipartite()
    graph = BipartiteGraph(ei, 7, 9)
    adj = graph.normalized_adjacency()
    dense = normalized_adjacency_reference(graph.edge_index(), 7, 9)
    assert torch.allclose(adj.to_dense(), dense, atol=1e-6)
    # duplicates were merged: 2 * unique pairs non-zeros
    unique = torch.unique(ei[0] * 9 + ei[1]).numel()
    assert adj.nnz == 2 * unique


def test_view_adjacency_equals_adjacency_built_from_scratch():
    ei = random_bipartite(num_edges=40, seed=1)
    graph = BipartiteGraph(ei, 7, 9)
    keep = torch.tensor([k % 3 != 0 for k in range(graph.num_edges)])
    e_id = keep.nonzero().view(-1)
    view = graph.normalized_adjacency(e_id).to_dense()
    sub = graph.edge_index()[:, keep]
    assert torch.allclose(view, normalized_adjacency_reference(sub, 7, 9), atol=1e-6)
    # CSR invariants: columns sorted within each row.
    adj = graph.normalized_adjacency(e_id)
    for r in range(adj.size):
        cols = adj.col[adj.crow[r]:adj.crow[r + 1]]
        assert torch.all(cols[1:] > cols[:-1])


def test_propagate_forward_and_backward_match_dense():
    graph = BipartiteGraph(random_bipartite(seed=2), 7, 9)
    adj = graph.normalized_adjacency()
    dense = adj.to_dense()
    x = torch.randn(16, 4, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_()
    up = torch.randn(16, 4)
    y = propagate(adj, propagate(adj, x))
    y_ref = dense @ (dense @ x_ref)
    (y * up).sum().backward()
    (y_ref * up).sum().backward()
    assert torch.allclose(y, y_ref, atol=1e-5)
    assert torch.allclose(x.grad, x_ref.grad, atol=1e-5)


def test_nonsymmetric_adjacency_backward_uses_the_transpose():
    from ssgraphrec.sparse import Adjacency

    dense = torch.tensor([[0.0, 2.0, 0.0], [0.0, 0.0, 3.0], [1.0, 0.0, 0.0]])
    csr = dense.to_sparse_csr()
    adj = Adjacency(csr.crow_indices(), csr.col_indices(), csr.values(), 3, symmetric=False)
    x = torch.randn(3, 2, requires_grad=True)
    up = torch.randn(3, 2)
    (propagate(adj, x) * up).sum().backward()
    assert torch.allclose(x.grad, dense.t() @ up, atol=1e-6)


@pytest.mark.skipif(not has_torch_sparse(), reason="torch_sparse is not installed")
def test_torch_sparse_backend_gives_the_same_numbers():
    graph = BipartiteGraph(random_bipartite(seed=3), 7, 9)
    a = graph.normalized_adjacency(backend="torch")
    b = graph.normalized_adjacency(backend="torch_sparse")
    x1 = torch.randn(16, 5, requires_grad=True)
    x2 = x1.detach().clone().requires_grad_()
    up = torch.randn(16, 5)
    (propagate(a, x1) * up).sum().backward()
    (propagate(b, x2) * up).sum().backward()
    assert torch.allclose(propagate(a, x1), propagate(b, x2), atol=1e-6)
    assert torch.allclose(x1.grad, x2.grad, atol=1e-6)


def test_backend_names_are_checked():
    assert resolve_backend("torch") == "torch"
    with pytest.raises(ConfigError, match="unknown sparse backend"):
        resolve_backend("cusparse")
    if not has_torch_sparse():
        with pytest.raises(ConfigError, match="not installed"):
            resolve_backend("torch_sparse")


def test_isolated_nodes_get_zero_rows_after_propagation():
    # user 2 and item 3 have no edges; their rows must be exactly zero (the CPU kernel
    # writes into an uninitialised output tensor).
    ei = torch.tensor([[0, 0, 1], [0, 1, 2]])
    graph = BipartiteGraph(ei, 3, 4)
    adj = graph.normalized_adjacency()
    x = torch.full((7, 3), float("nan"))
    x[[0, 1, 3, 4, 5]] = torch.randn(5, 3)
    y = propagate(adj, torch.nan_to_num(x, nan=1.0))
    assert torch.equal(y[2], torch.zeros(3)) and torch.equal(y[3 + 3], torch.zeros(3))
    assert torch.allclose(y, adj.to_dense() @ torch.nan_to_num(x, nan=1.0), atol=1e-6)


def test_cpu_write_into_path_equals_the_plain_sparse_mm_used_on_cuda():
    from ssgraphrec.sparse.kernels import _apply_kernel

    graph = BipartiteGraph(random_bipartite(seed=4), 7, 9)
    adj = graph.normalized_adjacency()
    x = torch.randn(16, 8)
    a = _apply_kernel(adj._kernel, x, "torch", into_new=True)
    b = _apply_kernel(adj._kernel, x, "torch", into_new=False)
    assert torch.allclose(a, b, atol=1e-6)


def test_lightgcn_encoder_is_the_layer_mean_of_dense_propagation():
    from ssgraphrec.nn import LightGCNEncoder

    graph = BipartiteGraph(random_bipartite(seed=5), 7, 9)
    adj = graph.normalized_adjacency()
    enc = LightGCNEncoder(7, 9, emb_dim=4, num_layers=3)
    dense = adj.to_dense()
    e0 = enc.ego().detach()
    expected = (e0 + dense @ e0 + dense @ dense @ e0 + dense @ dense @ dense @ e0) / 4
    users, items = enc(adj)
    assert torch.allclose(torch.cat([users, items]), expected, atol=1e-6)
    (users.sum() + items.sum()).backward()
    ones = torch.ones(16, 1)
    grad = (ones + dense @ ones + dense @ dense @ ones + dense @ dense @ dense @ ones) / 4
    assert torch.allclose(enc.user_emb.grad, grad[:7].expand(7, 4), atol=1e-5)


def _layer_by_layer(adjs, x, skip_ego):
    """The reference the fused mean replaces: one autograd product per layer, then the mean."""
    layers = [x]
    for adj in adjs:
        layers.append(propagate(adj, layers[-1]))
    layers = layers[1:] if skip_ego else layers
    total = layers[0]
    for h in layers[1:]:
        total = total + h
    return total / len(layers)


def _nonsymmetric(seed):
    g = torch.Generator().manual_seed(seed)
    dense = torch.rand(6, 6, generator=g) * (torch.rand(6, 6, generator=g) < 0.4)
    csr = dense.to_sparse_csr()
    return Adjacency(csr.crow_indices(), csr.col_indices(), csr.values(), 6, symmetric=False)


@pytest.mark.parametrize("skip_ego", [False, True])
@pytest.mark.parametrize("case", ["one graph", "a graph per layer", "not symmetric", "one layer"])
def test_propagate_mean_equals_the_layer_by_layer_mean_and_its_gradient(case, skip_ego):
    if case == "not symmetric":
        adjs = [_nonsymmetric(s) for s in (1, 2, 3)]            # also a different one per layer
    elif case == "a graph per layer":
        adjs = [BipartiteGraph(random_bipartite(seed=s), 7, 9).normalized_adjacency()
                for s in (6, 7, 8)]
    else:
        adjs = [BipartiteGraph(random_bipartite(seed=6), 7, 9).normalized_adjacency()] * 3
    if case == "one layer":
        adjs = adjs[:1]
    n = adjs[0].size
    x = torch.randn(n, 5, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_()
    up = torch.randn(n, 5)
    arg = adjs[0] if case in ("one graph", "one layer") else tuple(adjs)
    y = propagate_mean(arg, x, len(adjs), skip_ego)
    y_ref = _layer_by_layer(adjs, x_ref, skip_ego)
    assert torch.equal(y, y_ref)                       # the same sums in the same order
    (y * up).sum().backward()
    (y_ref * up).sum().backward()
    assert torch.allclose(x.grad, x_ref.grad, atol=1e-6)
    assert not torch.allclose(x.grad, up / 4, atol=1e-3)   # the products reached the gradient
    with torch.no_grad():
        assert torch.equal(propagate_mean(arg, x, len(adjs), skip_ego), y_ref)


def test_propagate_mean_keeps_the_layers_without_gradient_and_checks_its_input():
    adj = BipartiteGraph(random_bipartite(seed=9), 7, 9).normalized_adjacency()
    x = torch.randn(16, 3, requires_grad=True)
    mean, *layers = propagate_mean(adj, x, 2, keep_layers=True)
    h1 = propagate(adj, x)
    assert torch.equal(layers[0], h1.detach()) and torch.equal(layers[1], propagate(adj, h1).detach())
    assert all(not h.requires_grad for h in layers) and mean.requires_grad
    mean.sum().backward()                              # the mean alone carries the gradient
    assert x.grad is not None
    assert torch.equal(propagate_mean(adj, x, 0), x)    # no layer: the embeddings themselves
    with pytest.raises(ValueError, match="no layers to average"):
        propagate_mean(adj, x, 0, skip_ego=True)
    with pytest.raises(ValueError, match="2 adjacencies for 3 layers"):
        propagate_mean((adj, adj), x, 3)
    with pytest.raises(ValueError, match=r"x must have shape \[16, d\]"):
        propagate_mean(adj, torch.randn(15, 3), 2)


def test_propagate_mean_taps_perturbs_and_averages_fewer_layers_as_layer_by_layer():
    """XSimGCL's and NCL's uses: a tapped layer with its own gradient, an offset added
    after each product (no gradient through it), a mean over the first layers only."""
    adj = BipartiteGraph(random_bipartite(seed=10), 7, 9).normalized_adjacency()
    offset = torch.randn(16, 4)

    def perturb(h):                                   # an offset that depends on h's signs
        return h + torch.sign(h) * offset

    x = torch.randn(16, 4, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_()
    up, up_tap = torch.randn(16, 4), torch.randn(16, 4)
    mean, tap = propagate_mean(adj, x, 3, taps=(3,), perturb=perturb, mean_layers=1)
    layers = [x_ref]
    for _ in range(3):
        layers.append(perturb(propagate(adj, layers[-1])))
    ref_mean, ref_tap = (layers[0] + layers[1]) / 2, layers[3]
    assert torch.equal(mean, ref_mean) and torch.equal(tap, ref_tap)
    ((mean * up).sum() + (tap * up_tap).sum()).backward()
    ((ref_mean * up).sum() + (ref_tap * up_tap).sum()).backward()
    assert torch.allclose(x.grad, x_ref.grad, atol=1e-6)
    x.grad = None
    (tap * up_tap).sum().backward()                   # only the tap used: no mean gradient
    dense = adj.to_dense()
    assert torch.allclose(x.grad, dense @ dense @ dense @ up_tap, atol=1e-5)
    for kwargs, message in [({"taps": (0,)}, r"taps must lie in 1\.\.3"),
                            ({"mean_layers": 4}, r"mean_layers must lie in 0\.\.3"),
                            ({"taps": (1,), "keep_layers": True}, "do not combine")]:
        with pytest.raises(ValueError, match=message):
            propagate_mean(adj, x, 3, **kwargs)


def _random_adjacency(n, edges, symmetric, seed):
    g = torch.Generator().manual_seed(seed)
    dense = torch.zeros(n, n)
    dense[torch.randint(n, (edges,), generator=g), torch.randint(n, (edges,), generator=g)] = \
        torch.rand(edges, generator=g)
    dense = dense + dense.t() if symmetric else dense
    csr = dense.to_sparse_csr()
    return Adjacency(csr.crow_indices(), csr.col_indices(), csr.values(), n, symmetric=symmetric)


def test_restricted_rows_and_columns_are_the_dense_sub_matrices():
    adj = _random_adjacency(30, 120, symmetric=False, seed=4)
    rows = torch.tensor([17, 2, 29, 5])                    # any order, distinct
    restricted = adj.restrict(rows)
    dense = adj.to_dense()
    x, y = torch.randn(30, 3), torch.randn(4, 3)
    assert torch.allclose(restricted.matmul(x), dense[rows] @ x, atol=1e-6)
    assert torch.allclose(restricted.matmul(y, transpose=True), dense[rows].t() @ y, atol=1e-6)
    assert torch.allclose(restricted.matmul_add(y, x, transpose=True), x + dense[rows].t() @ y,
                          atol=1e-6)
    assert adj.rows_share(rows) == pytest.approx(float((dense[rows] != 0).sum()) / adj.nnz)


@pytest.mark.parametrize("transpose", [False, True])
def test_matmul_add_in_place_writes_the_same_bits_into_add(transpose):
    """``in_place`` saves ``addmm``'s copy of ``add`` into a new result: the sum lands in
    ``add`` itself, with the bits of the sum in a new tensor."""
    adj = _random_adjacency(30, 120, symmetric=False, seed=5)
    x, add = torch.randn(30, 3), torch.randn(30, 3)
    kept = add.clone()
    expected = adj.matmul_add(x, add, transpose)
    assert torch.equal(add, kept)                          # a new tensor: add untouched
    out = adj.matmul_add(x, add, transpose, in_place=True)
    assert out is add and torch.equal(out, expected)
    assert not torch.equal(out, kept)
    restricted, y = adj.restrict(torch.tensor([2, 5, 17, 29])), torch.randn(4, 3)
    into = kept.clone()
    out = restricted.matmul_add(y, into, transpose=True, in_place=True)
    assert out is into and torch.equal(out, restricted.matmul_add(y, kept, transpose=True))


def test_propagate_mean_backward_sums_into_the_mean_gradient_at_its_lowest_layer(monkeypatch):
    """Each backward product takes the gradient added at its layer in one ``addmm``; at
    the lowest averaged layer the sum goes into the mean's gradient, which no layer reads
    after it (a copy fewer). A tap's gradient as autograd hands it over is never written
    into, and the mean is never the layer it averages alone."""
    from ssgraphrec.sparse import kernels

    flags: list[tuple[bool, bool]] = []
    real = kernels._Layout.product

    def product(self, adj, h, add=None, transpose=False, in_place=False):
        if transpose:                                   # the backward pass's products
            flags.append((add is not None, in_place))
        return real(self, adj, h, add, transpose, in_place)

    monkeypatch.setattr(kernels._Layout, "product", product)
    adj = BipartiteGraph(random_bipartite(seed=9), 7, 9).normalized_adjacency()
    plain, copied, summed_in_place = (False, False), (True, False), (True, True)
    cases = [(3, {}, [copied, copied, summed_in_place]),
             (3, {"skip_ego": True}, [copied, summed_in_place, plain]),
             (2, {"skip_ego": True}, [copied, plain]),  # the product reads the mean's gradient
             (1, {}, [copied]),
             (3, {"taps": (2, 3), "mean_layers": 1}, [copied, copied, summed_in_place])]
    for num_layers, kwargs, expected in cases:
        flags.clear()
        x = torch.randn(16, 4, requires_grad=True)
        out = propagate_mean(adj, x, num_layers, **kwargs)
        out = out if isinstance(out, tuple) else (out,)
        grads = [torch.randn(16, 4) for _ in out]
        handed = [g.clone() for g in grads]
        torch.autograd.backward(out, grads)
        assert flags == expected, (num_layers, kwargs)
        assert all(torch.equal(g, h) for g, h in zip(grads, handed, strict=True))
        x_ref = x.detach().clone().requires_grad_()
        layers = [x_ref]
        for _ in range(num_layers):
            layers.append(propagate(adj, layers[-1]))
        first = 1 if kwargs.get("skip_ego") else 0
        averaged = layers[first:kwargs.get("mean_layers", num_layers) + 1]
        ref = [sum(averaged[1:], averaged[0]) / len(averaged),
               *(layers[t] for t in kwargs.get("taps", ()))]
        torch.autograd.backward(ref, grads)
        assert torch.allclose(x.grad, x_ref.grad, atol=1e-5), (num_layers, kwargs)
    x = torch.randn(16, 4, requires_grad=True)
    mean, layer = propagate_mean(adj, x, 1, skip_ego=True, keep_layers=True)
    assert torch.equal(mean, layer) and mean.data_ptr() != layer.data_ptr()
    with torch.no_grad():
        alone = propagate_mean(adj, x, 0)
    assert torch.equal(alone, x) and alone.data_ptr() != x.data_ptr()


@pytest.mark.parametrize("blocked", [False, True])
@pytest.mark.parametrize("case", ["symmetric", "not symmetric, a graph per layer",
                                  "taps and noise", "last layer tapped", "skip ego"])
def test_propagate_mean_at_rows_equals_the_whole_mean_to_the_bit(case, blocked, monkeypatch):
    """With ``rows``, the last product is taken at those rows only, and the backward
    pass's first from them: the mean at ``rows`` and the gradient equal the whole
    mean's (masked outside ``rows``) to the bit, blocked or not."""
    import ssgraphrec.sparse.kernels as kernels
    from ssgraphrec.sparse.blocks import block_bytes, block_width

    monkeypatch.setattr(kernels, "ROWS_SHARE_LIMIT", 1.0)     # restrict whatever the share
    monkeypatch.setattr(kernels, "ROWS_MIN_NNZ", 0)
    n, d = 200, 50
    # blocks of 25 columns: exact on every machine measured (tests/test_exactness.py)
    assert block_width(torch.zeros(n, d), budget=25 * n * 4) == 25
    symmetric = case != "not symmetric, a graph per layer"
    adjs = tuple(_random_adjacency(n, 900, symmetric, seed=s)
                 for s in ((1, 1, 1) if symmetric else (1, 2, 3)))
    taps = {"taps and noise": (1,), "last layer tapped": (1, 3)}.get(case, ())
    noise = torch.randn(n, d)

    class Offset:                  # an offset by the signs, as SimGCL's noise, row by row
        def __call__(self, h):
            return h + 0.3 * torch.sign(h) * noise

        def at_rows(self, h, at, num_nodes):
            assert num_nodes == n
            return h + 0.3 * torch.sign(h) * noise[at]

    perturb = Offset() if case == "taps and noise" else None
    skip_ego = case == "skip ego"
    rows = torch.tensor([0, 3, 4, 50, 51, 120, 199])
    mask = torch.zeros(n, 1)
    mask[rows] = 1
    up = [torch.randn(n, d, generator=torch.Generator().manual_seed(s)) for s in range(3)]

    def run(at_rows, block):
        x = torch.randn(n, d, generator=torch.Generator().manual_seed(9)).requires_grad_()
        with block_bytes(25 * n * 4 if block else 0):
            out = propagate_mean(adjs, x, 3, skip_ego, taps=taps, perturb=perturb, rows=at_rows)
        out = out if isinstance(out, tuple) else (out,)
        read = [out[0] * mask] + [t * mask if tap == 3 else t for t, tap in zip(out[1:], taps, strict=True)]
        sum((r * u).sum() for r, u in zip(read, up, strict=False)).backward()
        return [r.detach() for r in read], x.grad, out[0].detach()

    values, grad, mean = run(rows, blocked)
    ref_values, ref_grad, ref_mean = run(None, blocked)
    assert all(torch.equal(v, r) for v, r in zip(values, ref_values, strict=True))
    assert torch.equal(grad, ref_grad)
    outside = mask.view(-1) == 0
    assert torch.equal(mean[outside], torch.zeros_like(mean[outside]))   # not computed there
    assert ref_mean[outside].abs().sum() > 0                # the whole mean is not zero there
    # a positive control: rows one short give another gradient
    assert not torch.equal(run(rows[:-1], blocked)[1], ref_grad)


def test_propagate_mean_at_rows_is_whole_past_its_limits_and_checks_rows(monkeypatch):
    import ssgraphrec.sparse.kernels as kernels

    adj = _random_adjacency(40, 150, symmetric=True, seed=5)
    rows = torch.arange(0, 40, 2)
    monkeypatch.setattr(Adjacency, "restrict", lambda *a: pytest.fail("restricted"))
    x = torch.randn(40, 4)
    for limit, min_nnz in [(0.0, 0), (1.0, adj.nnz + 1)]:    # too large a share, too small a graph
        monkeypatch.setattr(kernels, "ROWS_SHARE_LIMIT", limit)
        monkeypatch.setattr(kernels, "ROWS_MIN_NNZ", min_nnz)
        assert torch.equal(propagate_mean(adj, x, 2, rows=rows), propagate_mean(adj, x, 2))
    monkeypatch.undo()
    with pytest.raises(ValueError, match=r"rows must lie in 0\.\.39"):
        propagate_mean(adj, x, 2, rows=torch.tensor([3, 40]))
    with pytest.raises(ValueError, match="rows must be a 1-D tensor"):
        propagate_mean(adj, x, 2, rows=torch.tensor([[1, 2]]))
    for unsorted in ([4, 2], [2, 2]):            # a repeated row would count twice backward
        with pytest.raises(ValueError, match="rows must be sorted and distinct"):
            propagate_mean(adj, x, 2, rows=torch.tensor(unsorted))
    with pytest.raises(ValueError, match=r"made without its transpose"):
        adj.restrict(rows, backward=False).matmul(x, transpose=True)


@pytest.mark.parametrize("restricted", [False, True])
def test_propagate_mean_compact_is_the_mean_at_rows_with_the_same_gradient(restricted,
                                                                            monkeypatch):
    """``compact``: ``[|R|, d]``, the whole mean's rows ``R`` to the bit, and the gradient
    of a loss read there equal to the whole mean's; with the last product at ``R`` or
    whole. Taps and kept layers come as without it. It needs rows."""
    import ssgraphrec.sparse.kernels as kernels

    monkeypatch.setattr(kernels, "ROWS_SHARE_LIMIT", 1.0 if restricted else 0.0)
    monkeypatch.setattr(kernels, "ROWS_MIN_NNZ", 0)
    adj = _random_adjacency(40, 150, symmetric=True, seed=6)
    rows = torch.tensor([1, 4, 5, 17, 30, 39])
    up = torch.randn(rows.numel(), 4)
    x = torch.randn(40, 4, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_()
    compact = propagate_mean(adj, x, 3, rows=rows, compact=True)
    whole = propagate_mean(adj, x_ref, 3)
    assert compact.shape == (6, 4) and torch.equal(compact, whole[rows])
    (compact * up).sum().backward()
    (whole[rows] * up).sum().backward()
    assert torch.allclose(x.grad, x_ref.grad, atol=1e-6) and float(x.grad.abs().max()) > 0
    with torch.no_grad():
        assert torch.equal(propagate_mean(adj, x, 3, rows=rows, compact=True), compact)
    for kwargs in ({"taps": (2, 3)}, {"keep_layers": True}):
        mean, *others = propagate_mean(adj, x, 3, rows=rows, compact=True, **kwargs)
        _, *expected = propagate_mean(adj, x, 3, rows=rows, **kwargs)
        assert torch.equal(mean, compact) and len(others) == len(expected) > 1
        assert all(torch.equal(a, b) for a, b in zip(others, expected, strict=True))
    with pytest.raises(ValueError, match="compact needs rows"):
        propagate_mean(adj, x, 3, compact=True)


@pytest.mark.parametrize("blocked", [False, True])
def test_propagate_mean_at_rows_keeps_the_last_layer_at_those_rows_only(blocked, monkeypatch):
    """``keep_layers`` with ``rows`` (SimGCL's clean encoder): layers 1..K-1 whole, layer
    K equal to the whole one at ``rows`` and zero elsewhere, the mean as without ``keep_layers``."""
    import ssgraphrec.sparse.kernels as kernels
    from ssgraphrec.sparse.blocks import block_bytes, block_width

    monkeypatch.setattr(kernels, "ROWS_SHARE_LIMIT", 1.0)
    monkeypatch.setattr(kernels, "ROWS_MIN_NNZ", 0)
    n, d = 200, 50
    # blocks of 25 columns: exact on every machine measured (tests/test_exactness.py)
    assert block_width(torch.zeros(n, d), budget=25 * n * 4) == 25
    adj = _random_adjacency(n, 900, symmetric=True, seed=1)
    x = torch.randn(n, d, generator=torch.Generator().manual_seed(9))
    rows = torch.tensor([0, 3, 4, 50, 51, 120, 199])
    outside = torch.ones(n, dtype=torch.bool)
    outside[rows] = False
    with block_bytes(25 * n * 4 if blocked else 0):
        mean, *layers = propagate_mean(adj, x, 3, keep_layers=True, rows=rows)
        ref_mean, *ref_layers = propagate_mean(adj, x, 3, keep_layers=True)
        assert torch.equal(mean, propagate_mean(adj, x, 3, rows=rows))
    assert torch.equal(layers[0], ref_layers[0]) and torch.equal(layers[1], ref_layers[1])
    assert torch.equal(layers[2][rows], ref_layers[2][rows])
    assert torch.equal(mean[rows], ref_mean[rows])
    assert not layers[2][outside].any()                  # not computed there
    assert ref_layers[2][outside].abs().sum() > 0         # the whole layer is not zero there
