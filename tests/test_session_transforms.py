"""Session structure builders (DHCN hypergraph, line graph) and sequence augmentations
(CL4SRec crop / mask / reorder, CoSeRec substitute / insert): exact effects."""

import math

import networkx as nx
import numpy as np
import pytest
import torch
import torch_geometric.transforms as T
from networkx.algorithms import bipartite
from torch_geometric.data import HeteroData

from ssgraphrec.data.schema import CONTAINS, ITEM, SESSION
from ssgraphrec.errors import ConfigError
from ssgraphrec.sparse import propagate
from ssgraphrec.transforms import (
    AUGMENTATIONS,
    ItemCooccurrence,
    ItemCrop,
    ItemInsert,
    ItemMask,
    ItemReorder,
    ItemSubstitute,
    SessionHypergraph,
    SessionLineGraph,
    hypergraph_adjacency,
    item_cooccurrence,
    line_graph,
    line_graph_adjacency,
    make_augmentation,
)
from ssgraphrec.transforms.session_hypergraph import HYPERGRAPH
from ssgraphrec.transforms.session_line_graph import LINE_GRAPH


def sessions_data(seqs: list[list[int]], num_items: int, train: list[bool] | None = None) -> HeteroData:
    """HeteroData of the schema's session store, built by hand from item lists."""
    data = HeteroData()
    data[SESSION].num_nodes = len(seqs)
    data[ITEM].num_nodes = num_items
    sess = [s for s, seq in enumerate(seqs) for _ in seq]
    items = [i for seq in seqs for i in seq]
    pos = [p for seq in seqs for p in range(len(seq))]
    data[CONTAINS].edge_index = torch.tensor([sess, items], dtype=torch.long).view(2, -1)
    data[CONTAINS].position = torch.tensor(pos, dtype=torch.long)
    data[SESSION].target = torch.full((len(seqs),), -1, dtype=torch.long)
    if train is not None:
        data[SESSION].train_mask = torch.tensor(train)
    return data


def random_sessions(n_sessions=30, n_items=25, max_len=7, seed=0, empty=False):
    rng = np.random.default_rng(seed)
    lo = 0 if empty else 1
    return [rng.integers(0, n_items, rng.integers(lo, max_len + 1)).tolist() for _ in range(n_sessions)]


def as_lists(data: HeteroData, key: str = "edge_index") -> list[list[int]]:
    """Items of each session in position order."""
    store = data[CONTAINS]
    out: list[list[int]] = [[] for _ in range(int(data[SESSION].num_nodes))]
    for s, i in store.edge_index.t().tolist():
        out[s].append(i)
    return out


def check_sorted_positions(data: HeteroData) -> None:
    store = data[CONTAINS]
    s = store.edge_index[0]
    assert torch.all(s[1:] >= s[:-1])
    for sess in range(int(data[SESSION].num_nodes)):
        pos = store.position[s == sess].tolist()
        assert pos == list(range(len(pos)))


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def snapshot(data: HeteroData) -> dict:
    store = data[CONTAINS]
    return {k: store[k].clone() for k in store.keys()}


def assert_unchanged(data: HeteroData, snap: dict) -> None:
    store = data[CONTAINS]
    assert set(store.keys()) == set(snap)
    for k, v in snap.items():
        assert torch.equal(store[k], v), k


# -- hypergraph operator -------------------------------------------------------------------


def dense_operator(seqs, n_items, weight=None):
    h = np.zeros((n_items, len(seqs)))
    for e, seq in enumerate(seqs):
        h[list(set(seq)), e] = 1.0
    w = np.ones(len(seqs)) if weight is None else np.asarray(weight, dtype=float)
    d = h @ w
    b = h.sum(0)
    d_inv = np.divide(1.0, d, out=np.zeros_like(d), where=d > 0)
    b_inv = np.divide(1.0, b, out=np.zeros_like(b), where=b > 0)
    return (d_inv[:, None] * h) @ np.diag(w * b_inv) @ h.T


def test_hypergraph_hand_drawn_three_sessions():
    # s0 = {0, 1}, s1 = {1, 2, 3} (item 2 twice: counts once), s2 = {3}; 4 items.
    # B = diag(2, 3, 1); D = (1, 2, 1, 2) hyperedges per item.
    # row 0: item 0 is only in s0 -> (1/1) * (1/2) on items {0, 1}      = [1/2, 1/2, 0, 0]
    # row 1: in s0 and s1 -> 1/2 * (1/2 on {0,1} + 1/3 on {1,2,3})       = [1/4, 5/12, 1/6, 1/6]
    # row 2: only in s1 -> (1/1) * (1/3 on {1,2,3})                       = [0, 1/3, 1/3, 1/3]
    # row 3: in s1 and s2 -> 1/2 * (1/3 on {1,2,3} + 1/1 on {3})         = [0, 1/6, 1/6, 2/3]
    data = sessions_data([[0, 1], [1, 2, 3, 2], [3]], 4)
    out = SessionHypergraph()(data)
    got = hypergraph_adjacency(out).to_dense()
    want = torch.tensor([[1 / 2, 1 / 2, 0, 0],
                         [1 / 4, 5 / 12, 1 / 6, 1 / 6],
                         [0, 1 / 3, 1 / 3, 1 / 3],
                         [0, 1 / 6, 1 / 6, 2 / 3]])
    assert torch.allclose(got, want, atol=1e-7)
    assert torch.allclose(got.sum(1), torch.ones(4))  # D^-1 H B^-1 H^T is row-stochastic
    assert HYPERGRAPH not in data.edge_types  # the input is untouched


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_hypergraph_matches_dense_numpy(seed):
    seqs = random_sessions(seed=seed, empty=True)
    train = [bool(x) for x in np.random.default_rng(seed + 10).integers(0, 2, len(seqs))]
    data = sessions_data(seqs, 25, train)
    out = SessionHypergraph()(data)  # train_mask by default
    want = dense_operator([s for s, t in zip(seqs, train, strict=True) if t], 25)
    np.testing.assert_allclose(hypergraph_adjacency(out).to_dense().numpy(), want, atol=1e-6)
    ei = out[HYPERGRAPH].edge_index
    key = ei[0] * 25 + ei[1]
    assert torch.all(key[1:] > key[:-1])  # sorted, no duplicates
    everything = SessionHypergraph(mask=None)(sessions_data(seqs, 25))
    np.testing.assert_allclose(hypergraph_adjacency(everything).to_dense().numpy(),
                               dense_operator(seqs, 25), atol=1e-6)


def test_hypergraph_weighted_and_propagation():
    seqs = random_sessions(seed=4)
    data = sessions_data(seqs, 25)
    w = torch.rand(len(seqs), generator=gen(4)) + 0.1
    data[SESSION].w = w
    out = SessionHypergraph(weight="w")(data)
    adj = hypergraph_adjacency(out)
    want = dense_operator(seqs, 25, w.double().numpy())
    np.testing.assert_allclose(adj.to_dense().numpy(), want, atol=1e-6)
    x = torch.randn(25, 3, generator=gen(5))
    np.testing.assert_allclose(propagate(adj, x).numpy(), want @ x.double().numpy(), atol=1e-5)
    with pytest.raises(ConfigError):
        SessionHypergraph(weight="nope")(data)


# -- line graph -----------------------------------------------------------------------------


def networkx_line_graph(seqs):
    """Sessions linked when they share an item, weight |Sp ∩ Sq| / |Sp ∪ Sq| (networkx)."""
    g = nx.Graph()
    sessions = [("s", k) for k in range(len(seqs))]
    g.add_nodes_from(sessions, bipartite=0)
    g.add_edges_from((("s", k), ("i", i)) for k, seq in enumerate(seqs) for i in seq)
    proj = bipartite.overlap_weighted_projected_graph(g, sessions, jaccard=True)
    return {(u[1], v[1]): d["weight"] for u, v, d in proj.edges(data=True)}


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_line_graph_matches_networkx_exactly(seed):
    seqs = random_sessions(n_sessions=25, n_items=30, seed=seed, empty=True)
    data = sessions_data(seqs, 30)
    graph = line_graph(data[CONTAINS].edge_index, len(seqs), 30, dtype=torch.float64)
    want = networkx_line_graph(seqs)
    got = {}
    for (p, q), a in zip(graph.edge_index.t().tolist(), graph.overlap.tolist(), strict=True):
        got[(p, q)] = a
    # A + I: every session has its self-loop with weight 1
    assert all(got[(k, k)] == 1.0 for k in range(len(seqs)))
    off = {k: v for k, v in got.items() if k[0] != k[1]}
    sym = {}
    for (u, v), w in want.items():
        sym[(u, v)] = sym[(v, u)] = w
    assert off == sym  # exact equality of the Jaccard weights
    # D^-1 A_hat: rows sum to one, and each entry is A_hat / row sum
    dense = line_graph_adjacency(graph).to_dense()
    assert torch.allclose(dense.sum(1), torch.ones(len(seqs), dtype=dense.dtype))
    a_hat = torch.eye(len(seqs), dtype=torch.float64)
    for (p, q), w in sym.items():
        a_hat[p, q] = w
    assert torch.allclose(dense, a_hat / a_hat.sum(1, keepdim=True))


def test_line_graph_of_a_batch_is_the_induced_subgraph():
    seqs = random_sessions(n_sessions=40, n_items=20, seed=7)
    data = sessions_data(seqs, 20)
    batch = torch.tensor([31, 2, 17, 5, 0, 39])
    sub = line_graph(data[CONTAINS].edge_index, len(seqs), 20, batch, dtype=torch.float64)
    want = line_graph(data[CONTAINS].edge_index.clone(), len(seqs), 20, dtype=torch.float64)
    full = torch.sparse_coo_tensor(want.edge_index, want.overlap, (40, 40)).to_dense()
    got = torch.sparse_coo_tensor(sub.edge_index, sub.overlap, (6, 6)).to_dense()
    assert torch.equal(got, full[batch][:, batch])
    assert sub.num_nodes == 6
    # the per-batch path through the session pointer gives the same graph
    from ssgraphrec.transforms.session_ops import session_pointer
    ptr = session_pointer(data[CONTAINS].edge_index[0], len(seqs))
    fast = line_graph(data[CONTAINS].edge_index, len(seqs), 20, batch, ptr=ptr, dtype=torch.float64)
    assert all(torch.equal(a, b) for a, b in zip(fast[:3], sub[:3], strict=True))


def test_session_line_graph_transform_uses_train_sessions_in_global_ids():
    seqs = [[0, 1, 2], [2, 3], [3, 4], [0, 1]]
    data = sessions_data(seqs, 5, train=[True, False, True, True])
    out = SessionLineGraph()(data)
    store = out[LINE_GRAPH]
    # train sessions 0, 2, 3: 0-3 share {0, 1} of {0, 1, 2}: 2/3; session 2 shares nothing
    pairs = dict(zip(map(tuple, store.edge_index.t().tolist()), store.overlap.tolist(), strict=True))
    assert pairs.keys() == {(0, 0), (0, 3), (2, 2), (3, 0), (3, 3)}
    assert pairs[(0, 3)] == pytest.approx(2 / 3)
    # D^-1 A_hat row of session 0: (1, 2/3) / (5/3)
    w = dict(zip(map(tuple, store.edge_index.t().tolist()), store.edge_weight.tolist(), strict=True))
    assert w[(0, 0)] == pytest.approx(3 / 5) and w[(0, 3)] == pytest.approx(2 / 5)
    assert w[(2, 2)] == pytest.approx(1.0)
    assert LINE_GRAPH not in data.edge_types


def test_line_graph_refuses_too_many_paths():
    data = sessions_data([[0, 1]] * 50, 2)
    with pytest.raises(ConfigError, match="per batch"):
        line_graph(data[CONTAINS].edge_index, 50, 2, max_paths=100)
    assert line_graph(data[CONTAINS].edge_index, 50, 2, torch.arange(5), max_paths=100).num_nodes == 5


# -- CL4SRec augmentations -------------------------------------------------------------------


LENGTHS_SEQS = [[3, 1, 4, 1, 5, 9, 2, 6, 5, 3], [2, 7, 1], [8], [2, 8, 1, 8, 2], [0, 4, 5, 9, 7, 3, 6]]


def test_item_crop_keeps_a_contiguous_run_of_the_right_length():
    for seed in range(5):
        data = sessions_data(LENGTHS_SEQS, 10)
        snap = snapshot(data)
        out = ItemCrop(0.6, generator=gen(seed))(data)
        assert_unchanged(data, snap)
        check_sorted_positions(out)
        for seq, cropped in zip(LENGTHS_SEQS, as_lists(out), strict=True):
            assert len(cropped) == max(1, math.floor(0.6 * len(seq)))
            starts = [k for k in range(len(seq) - len(cropped) + 1) if seq[k:k + len(cropped)] == cropped]
            assert starts  # a contiguous run, in order
        assert torch.equal(out[CONTAINS].edge_index, data[CONTAINS].edge_index[:, out[CONTAINS].e_id])


def test_item_crop_start_is_random_and_min_one():
    data = sessions_data([list(range(10))], 10)
    starts = {as_lists(ItemCrop(0.3, generator=gen(s))(data))[0][0] for s in range(40)}
    assert starts == set(range(8))  # every start 0 .. 10 - 3 is drawn
    out = ItemCrop(0.0, generator=gen(0))(sessions_data([[1, 2], [3]], 4))
    assert [len(x) for x in as_lists(out)] == [1, 1]


def test_item_mask_marks_exactly_gamma_of_each_session():
    data = sessions_data(LENGTHS_SEQS, 10)
    snap = snapshot(data)
    out = ItemMask(0.5, generator=gen(1))(data)
    assert_unchanged(data, snap)
    store = out[CONTAINS]
    assert torch.equal(store.edge_index, data[CONTAINS].edge_index)  # edges stay
    assert store.mask.dtype == torch.bool
    for sess, seq in enumerate(LENGTHS_SEQS):
        assert int(store.mask[store.edge_index[0] == sess].sum()) == math.floor(0.5 * len(seq))
    # masks from two seeds differ; a mask composes with a crop (the attribute follows the edges)
    other = ItemMask(0.5, generator=gen(2))(data)[CONTAINS].mask
    assert not torch.equal(other, store.mask)
    both = T.Compose([ItemMask(0.5, generator=gen(1)), ItemCrop(0.6, generator=gen(3))])(data)
    assert torch.equal(both[CONTAINS].mask, store.mask[both[CONTAINS].e_id])


def test_item_reorder_shuffles_only_a_contiguous_window():
    seq = list(range(20))
    data = sessions_data([seq, [5, 6, 7]], 20)
    snap = snapshot(data)
    changed = 0
    for seed in range(10):
        out = ItemReorder(0.5, generator=gen(seed))(data)
        assert_unchanged(data, snap)
        check_sorted_positions(out)
        new = as_lists(out)[0]
        assert sorted(new) == seq  # the multiset stays
        diff = [k for k in range(20) if new[k] != seq[k]]
        if diff:
            changed += 1
            lo, hi = diff[0], diff[-1]
            assert hi - lo + 1 <= 10  # inside one window of floor(0.5 * 20) places
            assert sorted(new[lo:hi + 1]) == seq[lo:hi + 1]
        assert sorted(as_lists(out)[1]) == [5, 6, 7]
        # every per-edge attribute moved with its incidence
        e_id = out[CONTAINS].e_id
        assert torch.equal(out[CONTAINS].edge_index, data[CONTAINS].edge_index[:, e_id])
    assert changed >= 8


def test_sessions_option_leaves_other_sessions_alone():
    data = sessions_data(LENGTHS_SEQS, 10, train=[True, False, True, False, True])
    for t in (ItemCrop(0.5, sessions="train_mask", generator=gen()),
              ItemReorder(0.9, sessions="train_mask", generator=gen()),
              ItemSubstitute(0.9, sessions="train_mask", generator=gen())):
        got = as_lists(t(data))
        assert got[1] == LENGTHS_SEQS[1] and got[3] == LENGTHS_SEQS[3]
    mask = ItemMask(0.9, sessions="train_mask", generator=gen())(data)[CONTAINS]
    assert not bool(mask.mask[(mask.edge_index[0] == 1) | (mask.edge_index[0] == 3)].any())
    with pytest.raises(ConfigError):
        ItemCrop(0.5, sessions="nope")(data)


@pytest.mark.parametrize("cls", [ItemCrop, ItemMask, ItemReorder, ItemSubstitute, ItemInsert])
@pytest.mark.parametrize("bad", [-0.1, 1.5, 2])
def test_ratio_outside_unit_interval_is_a_config_error(cls, bad):
    with pytest.raises(ConfigError):
        cls(bad)


def test_registered_names_and_compose():
    for name, cls in [("item_crop", ItemCrop), ("item_mask", ItemMask), ("item_reorder", ItemReorder),
                      ("item_substitute", ItemSubstitute), ("item_insert", ItemInsert)]:
        assert AUGMENTATIONS.get(name) is cls
        assert isinstance(make_augmentation(name, generator=gen()), cls)
    data = sessions_data(LENGTHS_SEQS, 10)
    view = T.Compose([ItemCrop(0.8, generator=gen()), ItemMask(0.3, generator=gen()),
                      ItemReorder(0.5, generator=gen()), ItemInsert(0.3, generator=gen()),
                      ItemSubstitute(0.3, generator=gen()), SessionHypergraph(),
                      SessionLineGraph()])(data)
    check_sorted_positions(view)
    assert HYPERGRAPH in view.edge_types and LINE_GRAPH in view.edge_types


def test_degenerate_calls_change_something():
    data = sessions_data([[0, 1, 2, 3]], 4)
    assert as_lists(ItemCrop(0.5, generator=gen())(data))[0] != [0, 1, 2, 3]
    assert bool(ItemMask(0.25, generator=gen())(data)[CONTAINS].mask.any())
    orders = {tuple(as_lists(ItemReorder(0.99, generator=gen(s))(data))[0]) for s in range(5)}
    assert len(orders) > 1
    assert as_lists(ItemSubstitute(0.0, generator=gen())(data))[0] != [0, 1, 2, 3]  # max(1, ...)
    assert len(as_lists(ItemInsert(0.0, generator=gen())(data))[0]) == 5


# -- CoSeRec augmentations --------------------------------------------------------------------


def test_item_cooccurrence_counts_adjacent_pairs_of_train_sessions():
    data = sessions_data([[0, 1, 0, 2], [1, 0], [3, 4]], 6, train=[True, True, False])
    g = item_cooccurrence(data)
    pairs = dict(zip(map(tuple, g.edge_index().t().tolist()), g.weight.tolist(), strict=True))
    # adjacent pairs: (0,1), (1,0), (0,2) in s0; (1,0) in s1; s2 is not training
    assert pairs == {(0, 1): 3.0, (1, 0): 3.0, (0, 2): 1.0, (2, 0): 1.0}
    g2 = ItemCooccurrence.from_data(data, window=2)
    pairs2 = dict(zip(map(tuple, g2.edge_index().t().tolist()), g2.weight.tolist(), strict=True))
    # window 2 adds (1, 2) of s0; (0, 0) of s0 is not a pair of distinct items
    assert pairs2 == {**pairs, (1, 2): 1.0, (2, 1): 1.0}
    with pytest.raises(ConfigError):
        item_cooccurrence(data, window=0)


def test_cooccurrence_sampling_is_proportional_to_weight():
    g = ItemCooccurrence(torch.tensor([0, 3, 3, 4]), torch.tensor([0, 1, 2, 0]),
                         torch.tensor([1.0, 3.0, 6.0, 2.0]))
    items = torch.tensor([0] * 20000 + [1, 2])
    nb, found = g.sample(items, gen(0))
    assert found[:20000].all() and not found[20000] and found[20001]
    assert nb[20000] == 1 and nb[20001] == 0  # no neighbour: unchanged
    freq = torch.bincount(nb[:20000], minlength=3).double() / 20000
    assert torch.allclose(freq, torch.tensor([0.1, 0.3, 0.6], dtype=torch.float64), atol=0.02)


def neighbour_sets(g: ItemCooccurrence) -> dict[int, set[int]]:
    out: dict[int, set[int]] = {}
    for a, b in g.edge_index().t().tolist():
        out.setdefault(a, set()).add(b)
    return out


def test_item_substitute_uses_only_cooccurring_items():
    seqs = random_sessions(n_sessions=40, n_items=30, seed=3)
    data = sessions_data(seqs, 30)
    g = item_cooccurrence(data)
    nbrs = neighbour_sets(g)
    snap = snapshot(data)
    out = ItemSubstitute(0.5, g, generator=gen(1))(data)
    assert_unchanged(data, snap)
    check_sorted_positions(out)
    n_changed = 0
    for seq, new in zip(seqs, as_lists(out), strict=True):
        assert len(new) == len(seq)
        for a, b in zip(seq, new, strict=True):
            if a != b:
                n_changed += 1
                assert b in nbrs[a]
    assert n_changed > 0
    store = out[CONTAINS]
    fresh = store.e_id >= data[CONTAINS].edge_index.size(1)
    assert torch.equal(store.edge_index[:, ~fresh], data[CONTAINS].edge_index[:, store.e_id[~fresh]])


def test_item_substitute_leaves_items_without_neighbours():
    data = sessions_data([[0, 1], [5]], 6)
    g = item_cooccurrence(data)  # item 5 has no neighbour
    out = ItemSubstitute(0.9, g, generator=gen(0))(data)
    assert as_lists(out)[1] == [5]


def test_item_insert_puts_neighbours_right_before_chosen_items():
    seqs = random_sessions(n_sessions=40, n_items=30, seed=5)
    data = sessions_data(seqs, 30)
    data[CONTAINS].time = torch.arange(data[CONTAINS].edge_index.size(1))
    g = item_cooccurrence(data)
    nbrs = neighbour_sets(g)
    snap = snapshot(data)
    out = T.Compose([ItemMask(0.3, generator=gen(2)), ItemInsert(0.4, g, generator=gen(1))])(data)
    assert_unchanged(data, snap)
    check_sorted_positions(out)
    store = out[CONTAINS]
    n_old = data[CONTAINS].edge_index.size(1)
    fresh = store.e_id >= n_old
    assert int(fresh.sum()) > 0
    assert not bool(store.mask[fresh].any())
    # the original incidences keep their relative order and attributes
    assert torch.equal(store.e_id[~fresh], torch.arange(n_old))
    assert torch.equal(store.time[~fresh], data[CONTAINS].time)
    for k in fresh.nonzero().view(-1).tolist():
        nxt = k + 1
        assert store.edge_index[0, nxt] == store.edge_index[0, k] and not fresh[nxt]
        assert int(store.edge_index[1, k]) in nbrs[int(store.edge_index[1, nxt])]
        assert store.time[k] == store.time[nxt]
    for sess, seq in enumerate(seqs):  # at most max(1, floor(0.4 |s|)) insertions per session
        got = int((store.edge_index[0] == sess).sum())
        assert len(seq) <= got <= len(seq) + max(1, math.floor(0.4 * len(seq)))


def test_session_choice_applies_to_each_session_the_transform_it_chose():
    from ssgraphrec.transforms import ItemCrop, ItemReorder, SessionChoice

    seqs = [[1, 2, 3, 4, 5, 6]] * 6
    data = sessions_data(seqs, 10)
    # crop keeps 2 of 6 items (eta 1/3), reorder with beta 0 changes nothing
    choose = SessionChoice([ItemCrop(eta=1 / 3, generator=gen(1)), ItemReorder(beta=0.0)])
    data[SESSION].aug_choice = torch.tensor([0, 1, 0, 1, 1, 0])
    out = as_lists(choose(data))
    assert [len(s) for s in out] == [2, 6, 2, 6, 6, 2]
    assert all(out[s] == seqs[s] for s in (1, 3, 4))
    assert all(out[s] == seqs[s][out[s][0] - 1:out[s][0] + 1] for s in (0, 2, 5))
    # without a choice attribute, one is drawn per session, the same under one seed
    plain = sessions_data(seqs, 10)
    draws = [as_lists(SessionChoice([ItemCrop(eta=1 / 3, generator=gen(1)),
                                     ItemReorder(beta=0.0)], generator=gen(4))(plain))
             for _ in range(2)]
    assert draws[0] == draws[1] and {len(s) for s in draws[0]} == {2, 6}
