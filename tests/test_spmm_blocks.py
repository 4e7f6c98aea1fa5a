"""Column-blocked CPU products (ssgraphrec/sparse/blocks.py): the layout, the width
rules, and propagation in blocks equal to propagation whole, bit for bit."""

import os

import pytest
import torch
from propagation_runs import run_propagate_mean
from torch import Tensor

from ssgraphrec.errors import ConfigError
from ssgraphrec.sparse import Adjacency, BipartiteGraph, blocks
from ssgraphrec.sparse.blocks import (
    BLOCK_BYTES_ENV,
    ColumnBlocks,
    block_budget,
    block_bytes,
    block_width,
    candidate_widths,
    exact_candidate_widths,
    fastest_width,
    split_widths,
    time_blocked_pass,
)
from ssgraphrec.sparse.exactness import blocks_exact

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


def _all_exact(monkeypatch) -> None:
    """Every width's blocks exact, as on a machine whose kernel sums in order: for the
    tests of how a width is chosen (which widths are exact here is the probe's, tested
    in tests/test_exactness.py)."""
    monkeypatch.setattr(blocks, "blocks_exact", lambda *args, **kwargs: True)


def _exact_width(d: int, candidates: list[int]) -> int:
    """The first of ``candidates`` whose blocks give the whole product's bits on this
    machine (16 or 32 where every width does; 6 or 33 where the kernel for 4 to 24
    columns in steps of 4 sums in another order)."""
    exact = [w for w in candidates if blocks_exact(d, split_widths(d, w))]
    assert exact, f"no width of {candidates} gives the whole product's bits for {d} columns"
    return exact[0]


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


def test_block_width_takes_the_widest_fitting_divisor_of_at_least_16_columns(monkeypatch):
    _all_exact(monkeypatch)
    x = torch.zeros(1000, 100)                               # 4,000 bytes per column
    assert block_width(x, budget=400_000) == 100             # fits whole: no blocking
    assert block_width(x, budget=399_999) == 50
    assert block_width(x, budget=100_000) == 25
    assert block_width(x, budget=90_000) == 20               # 20 is the narrowest allowed
    assert block_width(x, budget=1_000) == 20                # nothing fits: the narrowest
    assert block_width(x, budget=0) == 100                   # blocking off
    assert block_width(torch.zeros(1000, 31), budget=1) == 31   # no divisor >= 16 below 31
    assert block_width(torch.zeros(1000, 64, device="meta"), budget=1) == 64   # CPU only
    # a divisor whose blocks would change the product's bits is never taken
    monkeypatch.setattr(blocks, "blocks_exact", lambda d, widths, device: widths[0] != 25)
    assert block_width(x, budget=100_000) == 20
    monkeypatch.setattr(blocks, "blocks_exact", lambda d, widths, device: False)
    assert block_width(x, budget=100_000) == 100


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


@pytest.mark.parametrize("width", [16, 20, 17, 25])
@pytest.mark.parametrize("transpose", [False, True])
def test_blocked_product_has_the_whole_products_bits_where_the_probe_finds_them(transpose, width):
    """On this test's matrix, blocks give the whole product's bits exactly where the
    probe of :mod:`ssgraphrec.sparse.exactness` says they do (everywhere on a kernel that
    sums in order; not in blocks of 16 or 20 on one that sums 4 to 24 columns otherwise)."""
    adj = _nonsymmetric(1)
    x, add = torch.randn(N, D), torch.randn(N, D)
    layout = ColumnBlocks(D, width)
    exact = blocks_exact(D, layout.widths)
    whole = adj.matmul(x, transpose)
    blocked = adj.matmul_blocks(layout, layout.split(x), transpose=transpose)
    assert torch.equal(layout.join(blocked), whole) == exact
    assert torch.allclose(layout.join(blocked), whole, rtol=1e-5, atol=1e-6)
    with_add = adj.matmul_blocks(layout, layout.split(x), layout.split(add), transpose)
    assert torch.equal(layout.join(with_add), adj.matmul_add(x, add, transpose)) == exact
    into = layout.split(add)                               # the sum written into add
    in_place = adj.matmul_blocks(layout, layout.split(x), into, transpose, in_place=True)
    assert in_place is into and torch.equal(in_place, with_add)
    assert not torch.equal(whole, adj.matmul(x, not transpose))   # the transpose is used


def _force_blocks(monkeypatch, n: int, width: int) -> list[tuple[int, ...]]:
    """Blocks of ``width`` columns for ``n`` rows; returns a list of the block widths of
    each blocked product made."""
    monkeypatch.setenv(BLOCK_BYTES_ENV, str(n * 4 * width))
    calls: list[tuple[int, ...]] = []
    real = ColumnBlocks.product

    def counting(self, kernel, x_blocks, add=None, in_place=False):
        calls.append(self.widths)
        return real(self, kernel, x_blocks, add, in_place)

    monkeypatch.setattr(ColumnBlocks, "product", counting)
    return calls


CASES = {
    "mean": {},
    "skip ego": {"skip_ego": True},
    "kept layers": {"keep_layers": True},
    "tap, perturbation, shorter mean": {"taps": (3,), "mean_layers": 1, "perturb": "signs"},
    "tap, shorter mean": {"taps": (3,), "mean_layers": 1},
    "two taps, not symmetric, a graph per layer": {"taps": (1, 2), "graphs": "per layer"},
}


@pytest.mark.parametrize("candidates", [[16, 6, 3], [32, 33, 25]], ids=["dividing", "ragged"])
@pytest.mark.parametrize("case", list(CASES))
def test_propagate_mean_in_blocks_equals_it_whole_bit_for_bit(case, candidates, monkeypatch):
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
    whole, grad_whole = run_propagate_mean(adjs, x, up, ups, **kwargs)
    width = _exact_width(D, candidates)   # one that divides D, one that may not
    widths = split_widths(D, width)
    calls = _force_blocks(monkeypatch, n, 16)
    monkeypatch.setattr(Adjacency, "block_width", lambda self, x, products=1: width)
    blocked, grad_blocked = run_propagate_mean(adjs, x, up, ups, **kwargs)
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


def test_time_blocked_pass_chains_the_products_in_the_blocks_asked_and_converts_once(monkeypatch):
    adj, x = _nonsymmetric(6), torch.randn(N, D)
    seen: list[tuple] = []
    chained: list[Tensor] = []
    real = ColumnBlocks.product

    def product(self, kernel, xb, add=None):
        seen.append(self.widths)
        chained.append(xb)
        out = real(self, kernel, xb)
        chained.append(out)
        return out

    monkeypatch.setattr(ColumnBlocks, "product", product)
    converted: list[str] = []
    for name in ("split", "join"):
        real_conversion = getattr(ColumnBlocks, name)
        monkeypatch.setattr(ColumnBlocks, name, lambda self, t, _f=real_conversion, _n=name:
                            converted.append(_n) or _f(self, t))
    assert time_blocked_pass(adj._kernel, x, 16) >= 0
    assert time_blocked_pass(adj._kernel, x, 20, products=3) >= 0
    assert time_blocked_pass(adj._kernel, x, D, products=2) >= 0
    assert seen == [(16, 16, 16)] + [(20, 20, 8)] * 3 + [(D,)] * 2
    assert converted == ["split", "join"] * 2               # whole: no conversion
    # each product reads the one before it: three layers of A, not three of the first
    assert chained[3] is chained[4] and chained[5] is chained[6] and chained[9] is chained[10]
    assert torch.equal(chained[-1].view(N, D), adj.matmul(adj.matmul(x)))


def _small_cache(monkeypatch, cache_bytes: int) -> None:
    """An automatic budget (no environment variable) of a third of ``cache_bytes``."""
    monkeypatch.delenv(BLOCK_BYTES_ENV, raising=False)
    monkeypatch.setattr(blocks, "last_level_cache_bytes", lambda: cache_bytes)


def _timed_widths(monkeypatch, fastest: int) -> list[int]:
    """Timings in which ``fastest`` columns win; returns the widths timed."""
    timed: list[int] = []

    def fake(kernel, x, width, products):
        timed.append(width)
        return 0.5 if width == fastest else 1.0

    monkeypatch.setattr("ssgraphrec.sparse.kernels.time_blocked_pass", fake)
    return timed


def test_adjacency_measures_a_width_past_the_budget_once_and_keeps_it(monkeypatch):
    _all_exact(monkeypatch)
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
    # widths whose blocks would change the product's bits are not even timed
    monkeypatch.delenv(BLOCK_BYTES_ENV)
    _small_cache(monkeypatch, 3 * N * 4 * 16)
    monkeypatch.setattr(blocks, "blocks_exact", lambda d, widths, device: 24 not in widths)
    assert _nonsymmetric(8).block_width(x) == 16     # 24 would win, but is not exact
    assert 24 not in timed[10 * r:] and sorted(set(timed[10 * r:])) == [16, 32, 48]


@pytest.mark.parametrize("rows", [False, True])
def test_propagate_mean_takes_the_measured_width_bit_for_bit(rows, monkeypatch):
    """Each width this machine may measure (those whose blocks are exact) gives the
    whole propagation's bits, forward and backward, with and without the rows path."""
    import ssgraphrec.sparse.kernels as kernels

    adj, x, up = _bipartite(9), torch.randn(N, 64), torch.randn(N, 64)
    kwargs = {"rows": torch.tensor([1, 4, 17, 30])} if rows else {}
    monkeypatch.setattr(kernels, "ROWS_SHARE_LIMIT", 1.0)   # the rows path on this small graph
    monkeypatch.setattr(kernels, "ROWS_MIN_NNZ", 0)
    monkeypatch.setenv(BLOCK_BYTES_ENV, "0")
    whole, grad_whole = run_propagate_mean(adj, x, up, [], **kwargs)
    assert (whole[0][0] == 0).all() == rows          # row 0 is not among the rows: not computed
    exact = [w for w in exact_candidate_widths(64) if w < 64]
    assert exact                          # 32 on both machines measured so far
    for fastest in exact:
        adj = _bipartite(9)                       # a fresh matrix: measured again
        calls = _force_blocks(monkeypatch, N, 16)     # counts the products in blocks
        _small_cache(monkeypatch, 3 * N * 4 * 16)     # ... but the budget is automatic
        timed = _timed_widths(monkeypatch, fastest=fastest)
        measured, grad_measured = run_propagate_mean(adj, x, up, [], **kwargs)
        assert len(timed) == (len(exact) + 1) * blocks.TUNING_ROUNDS   # once, both passes
        assert calls and set(calls) == {split_widths(64, fastest)}  # the measured width
        assert torch.equal(measured[0], whole[0]) and torch.equal(grad_measured, grad_whole)
    assert not torch.equal(grad_whole, up)


def test_the_study_path_of_a_fixed_width_replaces_the_measured_width_where_it_blocks(monkeypatch):
    from ssgraphrec.bench.studies.spmm_blocks import PATHS, path

    _all_exact(monkeypatch)
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
