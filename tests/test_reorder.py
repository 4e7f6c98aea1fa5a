"""The locality order (ssgraphrec/sparse/reorder.py): the reverse Cuthill-McKee order,
the renumbered matrix, and propagation in it equal to propagation by node, bit for bit."""

import pytest
import torch
from propagation_runs import run_propagate_mean

import ssgraphrec.sparse.kernels as kernels
from ssgraphrec.errors import ConfigError
from ssgraphrec.sparse import Adjacency, BipartiteGraph, propagate_mean
from ssgraphrec.sparse.blocks import BLOCK_BYTES_ENV, ColumnBlocks, split_widths
from ssgraphrec.sparse.exactness import blocks_exact
from ssgraphrec.sparse.reorder import (
    REORDER_AFTER_PASSES,
    REORDER_ENV,
    Reordering,
    cuthill_mckee,
    locality_order,
    permuted_csr,
    reorder_mode,
    reorder_setting,
    reorder_wanted,
    symmetric_pattern,
)
from ssgraphrec.sparse.restrict import csr_transpose


def _csr(dense: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    csr = dense.to_sparse_csr()
    return csr.crow_indices(), csr.col_indices(), csr.values()


def _random_matrix(n: int, density: float, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, n, generator=g) * (torch.rand(n, n, generator=g) < density)


def _bandwidth(dense: torch.Tensor, rank: torch.Tensor) -> int:
    rows, cols = dense.nonzero().t()
    return int((rank[rows] - rank[cols]).abs().max())


def test_a_shuffled_path_gets_back_its_bandwidth_of_one():
    """A path 0-1-...-9 under shuffled labels: numbered end to end, neighbours adjacent."""
    labels = torch.randperm(10, generator=torch.Generator().manual_seed(0))
    dense = torch.zeros(10, 10)
    for a, b in zip(labels[:-1], labels[1:], strict=True):
        dense[a, b] = dense[b, a] = 1.0
    crow, col, _ = _csr(dense)
    assert _bandwidth(dense, torch.arange(10)) > 1                  # the labels scatter it
    order = cuthill_mckee(crow, col, 10)
    assert sorted(order.tolist()) == list(range(10))
    assert _bandwidth(dense, Reordering.of(order).rank) == 1
    # started from an end (degree 1, lowest label), then reversed: ends at that end
    ends = sorted(int(labels[i]) for i in (0, 9))
    assert int(order[-1]) == ends[0]


@pytest.mark.parametrize("window", [2, 4096], ids=["windows of 2 starts", "one window"])
def test_the_order_numbers_every_node_once_across_components_and_isolated_nodes(window,
                                                                              monkeypatch):
    import ssgraphrec.sparse.reorder as reorder

    monkeypatch.setattr(reorder, "START_WINDOW", window)
    dense = torch.zeros(12, 12)
    for a, b in ((0, 5), (5, 9), (2, 7), (7, 11), (7, 3)):   # two components; 1, 4, 6, 8, 10 alone
        dense[a, b] = dense[b, a] = 1.0
    dense[4, 4] = 1.0                                        # a self-loop
    order = cuthill_mckee(*_csr(dense)[:2], 12)
    assert sorted(order.tolist()) == list(range(12))
    rank = Reordering.of(order).rank
    # each component numbered in one run of numbers: the path 0-5-9, the star 7-{2, 3, 11}
    for component in ([0, 5, 9], [2, 3, 7, 11]):
        numbers = sorted(int(rank[v]) for v in component)
        assert numbers == list(range(numbers[0], numbers[0] + len(component)))
    assert _bandwidth(dense, rank) <= 3


def test_the_order_narrows_a_banded_matrix_under_shuffled_labels():
    n = 300
    dense = torch.zeros(n, n)
    for offset in (1, 2, 3):
        idx = torch.arange(n - offset)
        dense[idx, idx + offset] = dense[idx + offset, idx] = 1.0
    shuffle = torch.randperm(n, generator=torch.Generator().manual_seed(1))
    shuffled = dense[shuffle][:, shuffle]
    crow, col, _ = _csr(shuffled)
    rank = locality_order(crow, col, n, symmetric=True).rank
    assert _bandwidth(shuffled, torch.arange(n)) > 100
    assert _bandwidth(shuffled, rank) <= 6


def test_symmetric_pattern_is_that_of_a_plus_its_transpose():
    dense = _random_matrix(30, 0.1, 2)
    crow, col = symmetric_pattern(*_csr(dense)[:2], 30)
    pattern = torch.sparse_csr_tensor(crow, col, torch.ones(col.numel()), (30, 30)).to_dense()
    assert torch.equal(pattern, ((dense + dense.t()) != 0).float())


def test_permuted_csr_is_p_a_pt_with_each_rows_entries_in_their_stored_order():
    dense = _random_matrix(25, 0.2, 3)
    crow, col, value = _csr(dense)
    renumbering = Reordering.of(torch.randperm(25, generator=torch.Generator().manual_seed(4)))
    order, rank = renumbering.order, renumbering.rank
    new_crow, new_col, new_value = permuted_csr(crow, col, value, order, rank)
    assert torch.equal(torch.sparse_csr_tensor(new_crow, new_col, new_value, (25, 25)).to_dense(),
                       dense[order][:, order])
    for k in range(25):
        old = slice(int(crow[order[k]]), int(crow[order[k] + 1]))
        new = slice(int(new_crow[k]), int(new_crow[k + 1]))
        assert torch.equal(new_col[new], rank[col[old]])          # renamed, not re-sorted
        assert torch.equal(new_value[new], value[old])
    x = torch.randn(25, 3)
    assert torch.equal(renumbering.restore(renumbering.gather(x)), x)
    assert torch.equal(renumbering.gather(x), x[order])


@pytest.mark.parametrize("width", [1, 3, 4, 8, 16, 17, 24, 32, 64, 100])
def test_a_product_in_the_new_numbering_has_the_bits_of_the_product_by_node(width):
    """Many terms per row (about 120), so that another order of the sums would show in the
    bits, as it does with each row's columns sorted in the new numbering (1.4e-6 on the
    DHCN operator). PyTorch's CPU kernel, forward and transpose."""
    n = 400
    dense = _random_matrix(n, 0.3, 5) * torch.randn(n, n, generator=torch.Generator().manual_seed(6))
    adj = Adjacency(*_csr(dense), n, symmetric=False)
    renumbered = adj.reordered()
    renumbering = renumbered.reordering
    x = torch.randn(n, width, generator=torch.Generator().manual_seed(7))
    for transpose in (False, True):
        by_node = adj.matmul(x, transpose)
        renamed = renumbering.restore(renumbered.matmul(renumbering.gather(x), transpose))
        assert torch.equal(renamed, by_node)
        added = renumbering.restore(renumbered.matmul_add(
            renumbering.gather(x), renumbering.gather(by_node), transpose))
        assert torch.equal(added, adj.matmul_add(x, by_node, transpose))
    assert adj.reordered() is renumbered and renumbered.reordered() is renumbered   # kept


def _bipartite(seed: int, users: int = 30, items: int = 50, edges: int = 400) -> Adjacency:
    g = torch.Generator().manual_seed(seed)
    pairs = torch.stack([torch.randint(0, users, (edges,), generator=g),
                         torch.randint(0, items, (edges,), generator=g)])
    return BipartiteGraph(pairs, users, items).normalized_adjacency()


def _nonsymmetric(seed: int, n: int = 80) -> Adjacency:
    return Adjacency(*_csr(_random_matrix(n, 0.15, seed)), n, symmetric=False)


def _on_from_the_first_pass(monkeypatch) -> None:
    """``on``, with a cache budget of nothing: every CPU pass renumbered from the first."""
    import ssgraphrec.sparse.reorder as reorder

    monkeypatch.setenv(REORDER_ENV, "on")
    monkeypatch.setattr(reorder, "cache_budget", lambda: 0)


CASES = {
    "mean": {},
    "skip ego": {"skip_ego": True},
    "kept layers": {"keep_layers": True},
    "tap, shorter mean": {"taps": (3,), "mean_layers": 1},
    "two taps, not symmetric": {"taps": (1, 2), "graph": "nonsymmetric"},
    "rows": {"rows": True},
    "rows, tap of the last layer": {"rows": True, "taps": (3,)},
    "rows, tap below, skip ego": {"rows": True, "taps": (2,), "skip_ego": True},
    "rows, kept layers, not symmetric": {"rows": True, "keep_layers": True,
                                         "graph": "nonsymmetric"},
}


@pytest.mark.parametrize("blocked", [False, True], ids=["whole", "blocks"])
@pytest.mark.parametrize("case", list(CASES))
def test_propagate_mean_in_the_locality_order_equals_it_by_node_bit_for_bit(case, blocked,
                                                                            monkeypatch):
    kwargs = dict(CASES[case])
    adj = _nonsymmetric(8) if kwargs.pop("graph", None) else _bipartite(9)
    n, d = adj.size, 48
    g = torch.Generator().manual_seed(10)
    x, up = torch.randn(n, d, generator=g), torch.randn(n, d, generator=g)
    ups = [torch.randn(n, d, generator=g) for _ in range(3)]
    if kwargs.pop("rows", False):
        kwargs["rows"] = torch.tensor([1, 4, 17, 30, 41, 63])
        monkeypatch.setattr(kernels, "ROWS_SHARE_LIMIT", 1.0)   # the rows path on a small graph
        monkeypatch.setattr(kernels, "ROWS_MIN_NNZ", 0)
        monkeypatch.setattr(kernels, "rows_path_exact", lambda *args: True)
    monkeypatch.setenv(BLOCK_BYTES_ENV, "0")
    monkeypatch.setenv(REORDER_ENV, "off")
    by_node, grad_by_node = run_propagate_mean(adj, x, up, ups, **kwargs)
    assert adj._reordered is None
    _on_from_the_first_pass(monkeypatch)
    if blocked:   # a width whose blocks keep the whole product's bits on this machine
        width = next(w for w in (16, 6, 3) if blocks_exact(d, split_widths(d, w)))
        monkeypatch.setattr(Adjacency, "block_width", lambda self, x, products=1: width)
    restricted = []
    real_restrict = Adjacency.restrict
    monkeypatch.setattr(Adjacency, "restrict",
                        lambda self, rows, backward=True: restricted.append(self.reordering)
                        or real_restrict(self, rows, backward))
    blocked_products = []
    real_product = ColumnBlocks.product
    monkeypatch.setattr(ColumnBlocks, "product", lambda self, *args: blocked_products.append(1)
                        or real_product(self, *args))
    renumbered, grad_renumbered = run_propagate_mean(adj, x, up, ups, **kwargs)
    assert adj._reordered is not None                       # it did run renumbered
    assert bool(blocked_products) == blocked                # and in blocks where asked
    assert restricted == ([adj._reordered.reordering] if "rows" in kwargs else [])
    assert len(renumbered) == len(by_node)
    for a, b in zip(renumbered, by_node, strict=True):
        assert torch.equal(a, b)
    assert torch.equal(grad_renumbered, grad_by_node)
    assert not torch.equal(grad_by_node, up)                # the products reached the gradient


def test_a_perturbed_pass_and_a_graph_per_layer_stay_by_node(monkeypatch):
    _on_from_the_first_pass(monkeypatch)
    adj, x = _bipartite(11), torch.randn(80, 16)
    propagate_mean(adj, x, 3, perturb=lambda h: h + 0.1)
    assert adj._reordered is None
    propagate_mean((adj, _bipartite(12), adj), x, 3)
    assert adj._reordered is None
    propagate_mean(adj, x, 3)
    assert adj._reordered is not None


def test_auto_renumbers_a_matrix_past_the_budget_at_its_sixteenth_pass_and_on_at_its_first(
        monkeypatch):
    import ssgraphrec.sparse.reorder as reorder

    monkeypatch.delenv(REORDER_ENV, raising=False)
    small, large = torch.randn(80, 4), torch.randn(80, 64)
    monkeypatch.setattr(reorder, "cache_budget", lambda: 80 * 4 * 16)
    assert not reorder_wanted(small) and reorder_wanted(large)
    adj = _bipartite(13)
    for _ in range(3 * REORDER_AFTER_PASSES):          # within the budget: never
        propagate_mean(adj, small, 3)
    assert adj._reordered is None
    for _ in range(REORDER_AFTER_PASSES - 1):
        propagate_mean(adj, large, 3)
    assert adj._reordered is None
    propagate_mean(adj, large, 3)
    assert adj._reordered is not None
    with reorder_mode("on"):                            # past the budget, from the first pass
        assert not reorder_wanted(small) and reorder_wanted(large)
        adj = _bipartite(13)
        propagate_mean(adj, small, 3)
        assert adj._reordered is None
        propagate_mean(adj, large, 3)
        assert adj._reordered is not None
    with reorder_mode("off"):
        assert not reorder_wanted(large)
        adj = _bipartite(13)
        for _ in range(2 * REORDER_AFTER_PASSES):
            propagate_mean(adj, large, 3)
        assert adj._reordered is None
    assert reorder_setting() == "auto"                  # restored: unset


def test_the_setting_reads_the_environment_and_rejects_bad_values(monkeypatch):
    monkeypatch.setenv(REORDER_ENV, " On ")
    assert reorder_setting() == "on"
    monkeypatch.setenv(REORDER_ENV, "")
    assert reorder_setting() == "auto"
    monkeypatch.setenv(REORDER_ENV, "sometimes")
    with pytest.raises(ConfigError, match="auto, on or off"):
        reorder_setting()


def test_blocks_split_and_join_renumber_in_the_same_copy():
    x = torch.arange(7 * 5, dtype=torch.float32).view(7, 5)
    renumbering = Reordering.of(torch.tensor([3, 0, 6, 1, 5, 2, 4]))
    layout = ColumnBlocks(5, 2)
    split = layout.split(x, renumbering.order)
    assert torch.equal(split, layout.split(renumbering.gather(x)))
    assert torch.equal(layout.join(split, renumbering.rank), x)
    assert torch.equal(layout.join(layout.split(x), renumbering.order), renumbering.gather(x))


def test_the_transpose_of_a_nonsymmetric_matrix_keeps_its_own_stored_order():
    """The renumbered transpose is the renamed transpose of the matrix, not the transpose
    of the renamed matrix (whose rows would hold their entries by the new numbers)."""
    adj = _nonsymmetric(14, 60)
    renumbered = adj.reordered()
    crow_t, col_t, _ = csr_transpose(adj.crow, adj.col, adj.value, 60)
    kernel_t = renumbered._kernel_t
    rank = renumbered.reordering.rank
    order = renumbered.reordering.order
    for k in range(60):
        old = slice(int(crow_t[order[k]]), int(crow_t[order[k] + 1]))
        assert kernel_t.col_indices()[kernel_t.crow_indices()[k]:kernel_t.crow_indices()[k + 1]] \
            .long().tolist() == rank[col_t[old]].tolist()
