"""Column-blocked CPU products (ssgraphrec/sparse/blocks.py): the layout, the width
rules, and propagation in blocks equal to propagation whole, bit for bit."""

import os

import pytest
import torch

from ssgraphrec.errors import ConfigError
from ssgraphrec.sparse import Adjacency, BipartiteGraph, blocks, propagate_mean
from ssgraphrec.sparse.blocks import (
    BLOCK_BYTES_ENV,
    ColumnBlocks,
    block_budget,
    block_bytes,
    block_width,
    candidate_widths,
    fastest_width,
    split_widths,
    time_blocked_product,
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
    equal = ColumnBlocks(D, 16)
    b = equal.split(x)
    assert b.shape == (N * D,) and equal.widths == (16, 16, 16)
    assert torch.equal(b.view(3, N, 16), x.view(N, 3, 16).transpose(0, 1))
    assert torch.equal(equal.views(b)[1], x[:, 16:32])
    assert torch.equal(equal.join(b), x)
    assert not torch.equal(equal.join(b.view(3, N, 16).flip(0).flatten()), x)   # block order
    ragged = ColumnBlocks(D, 20)                              # 20, 20 and the last 8
    r = ragged.split(x)
    views = ragged.views(r)
    assert [tuple(v.shape) for v in views] == [(N, 20), (N, 20), (N, 8)]
    assert all(v.is_contiguous() for v in views)
    assert torch.equal(views[2], x[:, 40:]) and torch.equal(r[:N * 20], x[:, :20].flatten())
    assert torch.equal(ragged.join(r), x)
    rows = torch.tensor([3, 0, 17])
    assert torch.equal(ragged.join(ragged.select(r, rows)), x[rows])
    assert ColumnBlocks(D, D).widths == (D,) == ColumnBlocks(D, 99).widths
    with pytest.raises(ValueError, match=r"expected \[N, 48\]"):
        ragged.split(x[:, :40])


@pytest.mark.parametrize("width", [16, 20, D])
def test_add_at_rows_adds_each_block_of_the_values_at_those_rows_in_place(width):
    """The backward pass adds the mean's gradient at a batch's rows only
    (``ColumnBlocks.add_at_rows``): in every block, at those rows, nowhere else."""
    layout = ColumnBlocks(D, width)
    x = torch.randn(N, D, generator=torch.Generator().manual_seed(1))
    rows = torch.tensor([0, 7, 8, 39])
    values = torch.randn(rows.numel(), D, generator=torch.Generator().manual_seed(2))
    held = layout.split(x)
    out = layout.add_at_rows(held, rows, layout.split(values))
    assert out is held                                          # in place
    expected = x.clone()
    expected[rows] += values
    assert torch.equal(layout.join(out), expected)
    assert torch.equal(layout.join(out)[1:7], x[1:7])          # other rows untouched


def test_split_widths_makes_the_last_block_narrower_where_the_width_does_not_divide():
    assert split_widths(100, 32) == (32, 32, 32, 4)
    assert split_widths(100, 25) == (25, 25, 25, 25)
    assert split_widths(64, 48) == (48, 16)
    assert split_widths(16, 16) == (16,)
    with pytest.raises(ValueError, match="at least one column"):
        split_widths(16, 0)


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


@pytest.mark.parametrize("width", [16, 20])
@pytest.mark.parametrize("transpose", [False, True])
def test_blocked_product_equals_the_whole_product_bit_for_bit(transpose, width):
    adj = _nonsymmetric(1)
    x, add = torch.randn(N, D), torch.randn(N, D)
    layout = ColumnBlocks(D, width)
    whole = adj.matmul(x, transpose)
    blocked = adj.matmul_blocks(layout, layout.split(x), transpose=transpose)
    assert torch.equal(layout.join(blocked), whole)
    with_add = adj.matmul_blocks(layout, layout.split(x), layout.split(add), transpose)
    assert torch.equal(layout.join(with_add), adj.matmul_add(x, add, transpose))
    assert not torch.equal(whole, adj.matmul(x, not transpose))   # the transpose is used


def _force_blocks(monkeypatch, n: int, width: int) -> list[tuple[int, ...]]:
    """Blocks of ``width`` columns for ``n`` rows; returns a list of the block widths of
    each blocked product made."""
    monkeypatch.setenv(BLOCK_BYTES_ENV, str(n * 4 * width))
    calls: list[tuple[int, ...]] = []
    real = ColumnBlocks.product

    def counting(self, kernel, x_blocks, add=None):
        calls.append(self.widths)
        return real(self, kernel, x_blocks, add)

    monkeypatch.setattr(ColumnBlocks, "product", counting)
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


@pytest.mark.parametrize("width, widths", [(16, (16, 16, 16)), (32, (32, 16))])
@pytest.mark.parametrize("case", list(CASES))
def test_propagate_mean_in_blocks_equals_it_whole_bit_for_bit(case, width, widths, monkeypatch):
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
    if width != 16:     # a width that does not divide D, as a measurement may pick
        monkeypatch.setattr(Adjacency, "block_width", lambda self, x: width)
    blocked, grad_blocked = _run(adjs, x, up, ups, **kwargs)
    if "perturb" in kwargs:        # rows for the noise forward; the backward pass blocked
        assert calls == [widths] * 3                       # its 3 products, in blocks
    else:
        assert calls and set(calls) == {widths}            # it did run in these blocks
    assert len(blocked) == len(whole)
    for a, b in zip(blocked, whole, strict=True):
        assert torch.equal(a, b)
    assert torch.equal(grad_blocked, grad_whole)
    assert not torch.equal(grad_whole, up)                 # the products reached the gradient


def test_candidate_widths_are_divisors_and_multiples_of_16_and_the_whole():
    assert candidate_widths(100) == [16, 20, 25, 32, 48, 50, 64, 80, 96, 100]
    assert candidate_widths(64) == [16, 32, 48, 64]
    assert candidate_widths(31) == [16, 31]
    assert candidate_widths(16) == [16]
    assert candidate_widths(8) == [8]


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
    real = ColumnBlocks.product
    monkeypatch.setattr(ColumnBlocks, "product", lambda self, kernel, xb, add=None:
                        seen.append(self.widths) or real(self, kernel, xb))
    assert time_blocked_product(adj._kernel, x, 16) >= 0
    assert time_blocked_product(adj._kernel, x, 20) >= 0
    assert time_blocked_product(adj._kernel, x, D) >= 0
    assert seen == [(16, 16, 16), (20, 20, 8), (D,)]


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
    assert sorted(set(timed)) == [16, 24, 32, 48] and len(timed) == 4 * r
    assert adj.block_width(x) == 24 and len(timed) == 4 * r  # kept: not measured again
    assert _nonsymmetric(7).block_width(x) == 24 and len(timed) == 8 * r   # per matrix
    assert adj.block_width(torch.randn(N, 32)) == 16 and len(timed) == 10 * r  # per width
    threads = torch.get_num_threads()
    assert adj.measured_widths == {(D, torch.float32, threads): 24,
                                   (32, torch.float32, threads): 16}
    # within the budget, or with the budget set, the rule decides and nothing is timed
    _small_cache(monkeypatch, 3 * N * 4 * D)
    assert _nonsymmetric(8).block_width(x) == D
    monkeypatch.setenv(BLOCK_BYTES_ENV, str(N * 4 * 16))
    assert _nonsymmetric(8).block_width(x) == 16
    assert len(timed) == 10 * r


@pytest.mark.parametrize("fastest, blocks_made", [(24, (24, 24)), (32, (32, 16))])
@pytest.mark.parametrize("rows", [False, True])
def test_propagate_mean_takes_the_measured_width_bit_for_bit(rows, fastest, blocks_made,
                                                            monkeypatch):
    adj, x, up = _bipartite(9), torch.randn(N, D), torch.randn(N, D)
    kwargs = {"rows": torch.tensor([1, 4, 17, 30])} if rows else {}
    monkeypatch.setenv(BLOCK_BYTES_ENV, "0")
    whole, grad_whole = _run(adj, x, up, [], **kwargs)
    calls = _force_blocks(monkeypatch, N, 16)     # counts the products in blocks
    _small_cache(monkeypatch, 3 * N * 4 * 16)     # ... but the budget is automatic
    timed = _timed_widths(monkeypatch, fastest=fastest)
    measured, grad_measured = _run(adj, x, up, [], **kwargs)
    assert len(timed) == 4 * blocks.TUNING_ROUNDS   # measured once, for both passes
    assert calls and set(calls) == {blocks_made}  # in blocks of the measured width
    assert torch.equal(measured[0], whole[0]) and torch.equal(grad_measured, grad_whole)
    assert not torch.equal(grad_whole, up)


def test_the_study_path_of_a_fixed_width_replaces_the_measured_width_where_it_blocks(monkeypatch):
    from ssgraphrec.bench.studies.spmm_blocks import PATHS, path

    adj, x = _nonsymmetric(10), torch.randn(N, D)
    _small_cache(monkeypatch, 3 * N * 4 * 16)     # x outgrows the budget
    _timed_widths(monkeypatch, fastest=24)
    with path("width:32")():
        assert adj.block_width(x) == 32
        assert adj.block_width(torch.randn(N, 16)) == 16     # fits: whole, as measured
    assert adj.block_width(x) == 24                          # the measured width again
    assert path("rule") is PATHS["rule"]
    for bad in ("width:", "width:0", "width:x", "blocks"):
        with pytest.raises(ValueError, match="unknown path"):
            path(bad)
