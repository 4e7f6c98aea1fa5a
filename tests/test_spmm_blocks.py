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
    candidate_widths,
    fastest_width,
    from_blocks,
    time_blocked_product,
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


def test_candidate_widths_are_the_divisors_of_at_least_16_columns_and_the_whole():
    assert candidate_widths(100) == [20, 25, 50, 100]
    assert candidate_widths(64) == [16, 32, 64]
    assert candidate_widths(31) == [31]
    assert candidate_widths(16) == [16]


def test_fastest_width_takes_the_least_median_time_with_the_widths_in_turn():
    order: list[int] = []
    times = {16: iter([5.0, 0.9, 5.0, 0.8, 5.0]), 32: iter([1.0, 1.0, 1.2, 1.0, 3.0]),
             64: iter([2.0] * 5)}

    def timer(width: int) -> float:
        order.append(width)
        return next(times[width])

    # 16 has the best single times but is slow most of the time: the median counts
    assert fastest_width(timer, [16, 32, 64]) == 32
    assert order == [16, 32, 64] * 5                         # in turn, round by round
    assert fastest_width(lambda w: 1.0, [25, 50]) == 25       # a tie: the first
    with pytest.raises(ValueError, match="no widths"):
        fastest_width(lambda w: 1.0, [])


def test_time_blocked_product_runs_the_product_in_the_blocks_asked(monkeypatch):
    adj, x = _nonsymmetric(6), torch.randn(N, D)
    seen: list[tuple] = []
    real = blocks.blocked_product
    monkeypatch.setattr(blocks, "blocked_product",
                        lambda kernel, xb, add=None: seen.append(tuple(xb.shape)) or real(kernel, xb))
    assert time_blocked_product(adj._kernel, x, 16) >= 0
    assert time_blocked_product(adj._kernel, x, D) >= 0
    assert seen == [(3, N, 16), (1, N, D)]


def _small_cache(monkeypatch, cache_bytes: int) -> None:
    """An automatic budget (no environment variable) of a third of ``cache_bytes``."""
    monkeypatch.delenv(BLOCK_BYTES_ENV, raising=False)
    monkeypatch.setattr(blocks, "last_level_cache_bytes", lambda: cache_bytes)


def _timed_widths(monkeypatch, fastest: int) -> list[int]:
    """Timings in which ``fastest`` columns win; returns the widths timed."""
    timed: list[int] = []

    def fake(kernel, x, width):
        timed.append(width)
        return 0.5 if width == fastest else 1.0

    monkeypatch.setattr("ssgraphrec.sparse.kernels.time_blocked_product", fake)
    return timed


def test_adjacency_measures_a_width_past_the_budget_once_and_keeps_it(monkeypatch):
    adj, x = _nonsymmetric(7), torch.randn(N, D)
    _small_cache(monkeypatch, 3 * N * 4 * 16)     # the rule would take 16 columns
    timed = _timed_widths(monkeypatch, fastest=24)
    assert block_width(x) == 16
    assert adj.block_width(x) == 24               # the measured width, not the rule's
    r = blocks.TUNING_ROUNDS
    assert sorted(set(timed)) == [16, 24, 48] and len(timed) == 3 * r
    assert adj.block_width(x) == 24 and len(timed) == 3 * r  # kept: not measured again
    assert _nonsymmetric(7).block_width(x) == 24 and len(timed) == 6 * r   # per matrix
    assert adj.block_width(torch.randn(N, 32)) == 16 and len(timed) == 8 * r   # per width
    threads = torch.get_num_threads()
    assert adj.measured_widths == {(D, torch.float32, threads): 24,
                                   (32, torch.float32, threads): 16}
    # within the budget, or with the budget set, the rule decides and nothing is timed
    _small_cache(monkeypatch, 3 * N * 4 * D)
    assert _nonsymmetric(8).block_width(x) == D
    monkeypatch.setenv(BLOCK_BYTES_ENV, str(N * 4 * 16))
    assert _nonsymmetric(8).block_width(x) == 16
    assert len(timed) == 8 * r


@pytest.mark.parametrize("rows", [False, True])
def test_propagate_mean_takes_the_measured_width_bit_for_bit(rows, monkeypatch):
    adj, x, up = _bipartite(9), torch.randn(N, D), torch.randn(N, D)
    kwargs = {"rows": torch.tensor([1, 4, 17, 30])} if rows else {}
    monkeypatch.setenv(BLOCK_BYTES_ENV, "0")
    whole, grad_whole = _run(adj, x, up, [], **kwargs)
    calls = _force_blocks(monkeypatch, N, 16)     # counts the products in blocks
    _small_cache(monkeypatch, 3 * N * 4 * 16)     # ... but the budget is automatic
    timed = _timed_widths(monkeypatch, fastest=24)
    measured, grad_measured = _run(adj, x, up, [], **kwargs)
    assert len(timed) == 3 * blocks.TUNING_ROUNDS   # measured once, for both passes
    assert calls and set(calls) == {2}            # 2 blocks of the measured 24 columns
    assert torch.equal(measured[0], whole[0]) and torch.equal(grad_measured, grad_whole)
    assert not torch.equal(grad_whole, up)
