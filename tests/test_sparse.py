"""Sparse propagation against dense references, across backends."""

import pytest
import torch
from dense_reference import normalized_adjacency_reference

from ssgraphrec.errors import ConfigError
from ssgraphrec.sparse import (
    BipartiteGraph,
    has_torch_sparse,
    propagate,
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
