"""The probe of which rearranged CSR products keep the whole product's bits on this
machine (ssgraphrec/sparse/exactness.py), and the fast paths' use of it."""

import pytest
import torch

import ssgraphrec.sparse.kernels as kernels
from ssgraphrec.sparse import Adjacency, propagate_mean
from ssgraphrec.sparse.blocks import split_widths
from ssgraphrec.sparse.exactness import blocks_exact, rows_path_exact


def _matrix(n: int, nnz: int, seed: int) -> torch.Tensor:
    """A random CSR matrix of another size and structure than the probe's, with 32-bit
    indices as the package's kernels have them."""
    g = torch.Generator().manual_seed(seed)
    keys = torch.unique(torch.randint(0, n * n, (nnz,), generator=g))
    crow = torch.zeros(n + 1, dtype=torch.long)
    crow[1:] = torch.bincount(keys // n, minlength=n).cumsum(0)
    values = torch.rand(keys.numel(), generator=g)
    return torch.sparse_csr_tensor(crow.int(), (keys % n).int(), values, (n, n))


def _product(kernel: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    out = x.new_empty(kernel.size(0), x.size(1))
    return torch.addmm(out, kernel, x, beta=0, out=out)


def test_the_probe_predicts_which_blocks_keep_the_bits_of_another_matrix():
    """Column blocks of every width from 1 to 40 of 48 columns: the probe's answer is
    what a product of an unrelated matrix in those blocks shows."""
    kernel = _matrix(700, 20_000, seed=3)
    x = torch.randn(700, 48, generator=torch.Generator().manual_seed(4))
    whole = _product(kernel, x)
    answers = {}
    for width in range(1, 41):
        widths = split_widths(48, width)
        starts = [sum(widths[:j]) for j in range(len(widths))]
        blocked = torch.cat([_product(kernel, x[:, s:s + w].contiguous())
                             for s, w in zip(starts, widths, strict=True)], 1)
        answers[width] = blocks_exact(48, widths)
        assert torch.equal(blocked, whole) == answers[width], width
        assert torch.allclose(blocked, whole, rtol=1e-5, atol=1e-5)   # rounding at most
    assert blocks_exact(48, (48,))                       # the whole product is itself
    assert answers[1] and answers[48 // 2 + 1]          # one column, and 25 + 23


def test_the_probe_predicts_which_widths_keep_the_bits_of_the_rows_path():
    """For 1 to 40 columns: some rows of a matrix multiplied alone (the rows path's
    forward product) and a product without the terms of the zero rows of ``x`` (its
    backward one) keep the whole product's bits where the probe says so."""
    n = 700
    kernel = _matrix(n, 20_000, seed=5)
    zero = torch.rand(n, generator=torch.Generator().manual_seed(6)) < 0.4
    crow, col, val = kernel.crow_indices().long(), kernel.col_indices().long(), kernel.values()
    keep = ~zero[col]
    rows = torch.repeat_interleave(torch.arange(n), crow.diff())
    kept_crow = torch.zeros(n + 1, dtype=torch.long)
    kept_crow[1:] = torch.bincount(rows[keep], minlength=n).cumsum(0)
    without = torch.sparse_csr_tensor(kept_crow.int(), col[keep].int(), val[keep], (n, n))
    taken = ~zero[rows]                      # the rows outside ``zero``, multiplied alone
    alone_crow = torch.zeros(int((~zero).sum()) + 1, dtype=torch.long)
    alone_crow[1:] = torch.bincount(rows[taken], minlength=n)[~zero].cumsum(0)
    alone = torch.sparse_csr_tensor(alone_crow.int(), col[taken].int(), val[taken],
                                    (alone_crow.numel() - 1, n))
    for d in range(1, 41):
        x = torch.randn(n, d, generator=torch.Generator().manual_seed(d))
        kept = torch.equal(_product(alone, x), _product(kernel, x)[~zero])
        x[zero] = 0
        kept = kept and torch.equal(_product(kernel, x), _product(without, x))
        assert kept == rows_path_exact(d), d
    assert rows_path_exact(1) and rows_path_exact(64)


def test_the_rows_path_is_refused_where_dropped_terms_would_change_the_bits(monkeypatch):
    n, d = 60, 8
    g = torch.Generator().manual_seed(1)
    dense = torch.rand(n, n, generator=g) * (torch.rand(n, n, generator=g) < 0.2)
    dense = dense + dense.t()
    csr = dense.to_sparse_csr()
    adj = Adjacency(csr.crow_indices(), csr.col_indices(), csr.values(), n)
    x = torch.randn(n, d, generator=g)
    rows = torch.tensor([2, 9, 30])
    monkeypatch.setattr(kernels, "ROWS_SHARE_LIMIT", 1.0)
    monkeypatch.setattr(kernels, "ROWS_MIN_NNZ", 0)
    restricted = []
    real = Adjacency.restrict
    monkeypatch.setattr(Adjacency, "restrict",
                        lambda self, *a, **k: restricted.append(1) or real(self, *a, **k))
    monkeypatch.setattr(kernels, "rows_path_exact", lambda columns, device: columns != d)
    assert not kernels.restricts_rows(adj, rows, d) and kernels.restricts_rows(adj, rows, d + 1)
    whole = propagate_mean(adj, x, 2)
    assert torch.equal(propagate_mean(adj, x, 2, rows=rows), whole) and not restricted
    at_rows = propagate_mean(adj, x[:, :d - 1].contiguous(), 2, rows=rows)   # allowed
    assert restricted and not at_rows[torch.tensor([0, 1])].any()            # zero off rows


@pytest.mark.parametrize("device", ["cpu"])
def test_the_checks_are_kept_per_width_and_thread_count(device, monkeypatch):
    import ssgraphrec.sparse.exactness as exactness

    calls = []
    real = exactness._product
    monkeypatch.setattr(exactness, "_product", lambda k, x: calls.append(x.size(1)) or real(k, x))
    exactness._blocks_exact.cache_clear()
    exactness._rows_path_exact.cache_clear()
    blocks_exact(30, (15, 15), device)
    rows_path_exact(30, device)
    made = len(calls)
    assert made == 3 + 4              # two blocks and the whole; the rows path's two pairs
    blocks_exact(30, (15, 15), device)
    rows_path_exact(30, device)
    assert len(calls) == made                        # kept
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1 if threads > 1 else 2)
        blocks_exact(30, (15, 15), device)
        assert len(calls) == made + 3                # checked again for another thread count
    finally:
        torch.set_num_threads(threads)
