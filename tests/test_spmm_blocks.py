"""Column-blocked CPU products (ssgraphrec/sparse/blocks.py): the layout, the width
rules, and propagation in blocks equal to propagation whole, bit for bit."""

import os

import pytest
import torch

from ssgraphrec.errors import ConfigError
from ssgraphrec.sparse import Adjacency, BipartiteGraph, blocks, propagate_mean
from ssgraphrec.sparse.blocks import (
    BLOCK_BYTES_ENV,
    block_budget,
    block_bytes,
    block_width,
    from_blocks,
    to_blocks,
)

N, D = 40, 48


def _nonsymmetric(seed: int, n: int = N) -> Adjacency:
    g = torch.Generator().manual_seed(seed)
    dense = torch.rand(n, n, generator=g) * (torch.rand(n, n, generator=g) < 0.2)
    csr = dense.to_sparse_csr()
    return Adjacency(csr.crow_indices(), csr.col_indices(), csr.values(), n, symmetric=False)


def _bipartite(seed: int) -> Adjacency:
    g = torch.Generator().manual_seed(seed)
    edges = torch.stack([torch.randint(0, 15, (120,), generator=g),
                         torch.randint(0, 25, (120,), generator=g)])
    return BipartiteGraph(edges, 15, 25).normalized_adjacency()


def test_blocks_round_trip_and_hold_each_block_contiguously():
    x = torch.arange(N * D, dtype=torch.float32).view(N, D)
    b = to_blocks(x, 16)
    assert b.shape == (3, N, 16) and b.is_contiguous()
    assert torch.equal(b[1], x[:, 16:32])
    assert torch.equal(from_blocks(b), x)
    assert not torch.equal(from_blocks(b.flip(0)), x)       # the order of blocks matters
    assert to_blocks(x, D).shape == (1, N, D)
    with pytest.raises(ValueError, match="do not divide"):
        to_blocks(x, 20)


def test_block_width_takes_the_widest_fitting_divisor_of_at_least_16_columns():
    x = torch.zeros(1000, 100)                               # 4,000 bytes per column
    assert block_width(x, budget=400_000) == 100             # fits whole: no blocking
    assert block_width(x, budget=399_999) == 50
    assert block_width(x, budget=100_000) == 25
    assert block_width(x, budget=90_000) == 20               # 20 is the narrowest allowed
    assert block_width(x, budget=1_000) == 20                # nothing fits: the narrowest
    assert block_width(x, budget=0) == 100                   # blocking off
    assert block_width(torch.zeros(1000, 31), budget=1) == 31   # no divisor >= 16 below 31
    assert block_width(torch.zeros(1000, 64, device="meta"), budget=1) == 64   # CPU only


def test_block_budget_reads_the_environment_and_rejects_bad_values(monkeypatch):
    monkeypatch.setenv(BLOCK_BYTES_ENV, "0")
    assert block_budget() == 0
    monkeypatch.setenv(BLOCK_BYTES_ENV, "123456")
    assert block_budget() == 123456
    for bad, message in [("lots", "whole number"), ("-5", ">= 0")]:
        monkeypatch.setenv(BLOCK_BYTES_ENV, bad)
        with pytest.raises(ConfigError, match=message):   # one message, no traceback
            block_budget()
    monkeypatch.delenv(BLOCK_BYTES_ENV)
    assert block_budget() > 0
    with block_bytes(0):
        assert block_budget() == 0
        with block_bytes(None):
            assert block_budget() > 0
        assert block_budget() == 0
    assert BLOCK_BYTES_ENV not in os.environ             # restored on exit


@pytest.mark.parametrize("transpose", [False, True])
def test_blocked_product_equals_the_whole_product_bit_for_bit(transpose):
    adj = _nonsymmetric(1)
    x, add = torch.randn(N, D), torch.randn(N, D)
    whole = adj.matmul(x, transpose)
    assert torch.equal(from_blocks(adj.matmul_blocks(to_blocks(x, 16), transpose=transpose)), whole)
    with_add = adj.matmul_blocks(to_blocks(x, 16), to_blocks(add, 16), transpose)
    assert torch.equal(from_blocks(with_add), adj.matmul_add(x, add, transpose))
    assert not torch.equal(whole, adj.matmul(x, not transpose))   # the transpose is used


def _force_blocks(monkeypatch, n: int, width: int) -> list[int]:
    """Blocks of ``width`` columns for ``n`` rows; returns a list that counts the
    blocked products made."""
    monkeypatch.setenv(BLOCK_BYTES_ENV, str(n * 4 * width))
    calls: list[int] = []
    real = blocks.blocked_product

    def counting(kernel, x_blocks, add=None):
        calls.append(x_blocks.size(0))
        return real(kernel, x_blocks, add)

    monkeypatch.setattr("ssgraphrec.sparse.kernels.blocked_product", counting)
    return calls


def _run(adjs, x, up, ups, **kwargs):
    x = x.detach().clone().requires_grad_()
    out = propagate_mean(adjs, x, len(adjs) if isinstance(adjs, tuple) else 3, **kwargs)
    outs = out if isinstance(out, tuple) else (out,)
    loss = (outs[0] * up).sum() + sum((o * u).sum() for o, u in zip(outs[1:], ups, strict=False)
                                      if o.requires_grad)
    loss.backward()
    return [o.detach() for o in outs], x.grad


CASES = {
    "mean": {},
    "skip ego": {"skip_ego": True},
    "kept layers": {"keep_layers": True},
    "tap, perturbation, shorter mean": {"taps": (3,), "mean_layers": 1, "perturb": "signs"},
    "tap, shorter mean": {"taps": (3,), "mean_layers": 1},
    "two taps, not symmetric, a graph per layer": {"taps": (1, 2), "graphs": "per layer"},
}


@pytest.mark.parametrize("case", list(CASES))
def test_propagate_mean_in_blocks_equals_it_whole_bit_for_bit(case, monkeypatch):
    kwargs = dict(CASES[case])
    adjs = (tuple(_nonsymmetric(s) for s in (2, 3, 4)) if kwargs.pop("graphs", None)
            else _bipartite(5))
    n = N
    if kwargs.get("perturb") == "signs":
        offset = torch.randn(n, D)
        kwargs["perturb"] = lambda h: h + torch.sign(h) * offset
    x, up = torch.randn(n, D), torch.randn(n, D)
    ups = [torch.randn(n, D) for _ in range(3)]
    monkeypatch.setenv(BLOCK_BYTES_ENV, "0")
    whole, grad_whole = _run(adjs, x, up, ups, **kwargs)
    calls = _force_blocks(monkeypatch, n, 16)
    blocked, grad_blocked = _run(adjs, x, up, ups, **kwargs)
    if "perturb" in kwargs:        # rows for the noise forward; the backward pass blocked
        assert calls == [3] * 3                            # its 3 products, in 3 blocks
    else:
        assert calls and set(calls) == {3}                 # it did run in 3 blocks of 16
    assert len(blocked) == len(whole)
    for a, b in zip(blocked, whole, strict=True):
        assert torch.equal(a, b)
    assert torch.equal(grad_blocked, grad_whole)
    assert not torch.equal(grad_whole, up)                 # the products reached the gradient
