"""MHCN's motif-induced hypergraphs: hand counts, an independent enumeration, bounded memory."""

from __future__ import annotations

import itertools
import random

import networkx as nx
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch_geometric.data import HeteroData

from ssgraphrec.data import FOLLOWS, INTERACTS
from ssgraphrec.errors import ConfigError
from ssgraphrec.sparse import Adjacency
from ssgraphrec.transforms import SocialMotifs, channel_adjacencies, motif_adjacencies
from ssgraphrec.transforms.social_motifs import CHANNEL_EDGE_TYPES, motif_channels

MOTIFS = [f"M{k}" for k in range(1, 11)]


def as_tensor(pairs) -> torch.Tensor:
    return torch.tensor(pairs, dtype=torch.long).view(-1, 2).t()


def dense_counts(pairs: dict[tuple[int, int], int], n: int) -> torch.Tensor:
    """A symmetric count matrix from counts of unordered pairs."""
    out = torch.zeros(n, n)
    for (a, b), c in pairs.items():
        out[a, b] = out[b, a] = c
    return out


# -- a small graph counted by hand ----------------------------------------------------
#
#   social links (-> one way, <-> both ways):
#     0 <-> 1, 1 <-> 2, 0 <-> 2        triangle {0,1,2}, all mutual:            M4
#     2 -> 3, 3 -> 4, 4 -> 2           triangle {2,3,4}, a one-way cycle:       M1
#     0 -> 5, 1 -> 5                   triangle {0,1,5}: the mutual pair 0<->1
#                                      both follow 5:                            M7
#     plus noise the builder must ignore: a self-loop 3 -> 3, 2 -> 3 repeated.
#   No other triple of users is linked pairwise (e.g. {0,2,3}: 0 and 3 are not linked).
#
#   items:  user 0: {a, b}   user 1: {a, b}   user 2: {a}   user 3: {a, b}
#           user 4: {c}      user 5: {c}
#   user-user-item triangles:
#     item a, users {0,1,2,3}: (0,1) (0,2) (1,2) mutual -> M8; (2,3) one way -> M9;
#                              (0,3) (1,3) unlinked -> M10
#     item b, users {0,1,3}:   (0,1) mutual -> M8; (0,3) (1,3) unlinked -> M10
#     item c, users {4,5}:     (4,5) unlinked -> M10
#   so A_M8: (0,1)=2 (items a and b), (0,2)=1, (1,2)=1; A_M9: (2,3)=1;
#      A_M10: (0,3)=2, (1,3)=2, (4,5)=1.

HAND_SOCIAL = [(0, 1), (1, 0), (1, 2), (2, 1), (0, 2), (2, 0),
               (2, 3), (3, 4), (4, 2),
               (0, 5), (1, 5),
               (3, 3), (2, 3)]
A, B, C = 0, 1, 2
HAND_ITEMS = [(0, A), (0, B), (1, A), (1, B), (2, A), (3, A), (3, B), (4, C), (5, C)]
HAND_EXPECTED = {
    "M1": {(2, 3): 1, (3, 4): 1, (2, 4): 1},
    "M4": {(0, 1): 1, (1, 2): 1, (0, 2): 1},
    "M7": {(0, 1): 1, (0, 5): 1, (1, 5): 1},
    "M8": {(0, 1): 2, (0, 2): 1, (1, 2): 1},
    "M9": {(2, 3): 1},
    "M10": {(0, 3): 2, (1, 3): 2, (4, 5): 1},
}


def hand_data() -> HeteroData:
    data = HeteroData()
    data["user"].num_nodes = 6
    data["item"].num_nodes = 3
    data[FOLLOWS].edge_index = as_tensor(HAND_SOCIAL)
    data[INTERACTS].edge_index = as_tensor(HAND_ITEMS)
    return data


def test_motif_counts_of_a_hand_drawn_graph():
    got = motif_adjacencies(as_tensor(HAND_SOCIAL), as_tensor(HAND_ITEMS), 6, 3)
    for name in MOTIFS:
        expected = dense_counts(HAND_EXPECTED.get(name, {}), 6)
        assert torch.equal(got[name].to_dense(), expected), name


def test_channels_of_the_hand_drawn_graph():
    data = hand_data()
    out = SocialMotifs()(data)
    counts = {name: torch.sparse_coo_tensor(out[et].edge_index, out[et].motif_count, (6, 6))
              .to_dense() for name, et in CHANNEL_EDGE_TYPES.items()}
    # Social: M1 + M4 + M7; the pair (0, 1) is in the M4 and the M7 triangle.
    social = dense_counts({(0, 1): 2, (1, 2): 1, (0, 2): 1, (2, 3): 1, (3, 4): 1, (2, 4): 1,
                           (0, 5): 1, (1, 5): 1}, 6)
    assert torch.equal(counts["social"], social)
    assert torch.equal(counts["joint"], dense_counts({(0, 1): 2, (0, 2): 1, (1, 2): 1,
                                                      (2, 3): 1}, 6))
    # Purchase keeps pairs with >= 2 common items (QRec's H_p > 1): (4, 5) shares one.
    assert torch.equal(counts["purchase"], dense_counts({(0, 3): 2, (1, 3): 2}, 6))
    # Row-normalized: user 0's social row (0,1)=2, (0,2)=1, (0,5)=1 -> 1/2, 1/4, 1/4.
    adjs = channel_adjacencies(out)
    assert all(isinstance(a, Adjacency) and not a.symmetric for a in adjs.values())
    assert torch.allclose(adjs["social"].to_dense()[0], torch.tensor([0, .5, .25, 0, 0, .25]))
    for name, adj in adjs.items():
        dense = adj.to_dense()
        expected = counts[name] / counts[name].sum(1, keepdim=True).clamp(min=1)
        assert torch.allclose(dense, expected), name
        # Transposed products (the backward pass) use the transpose.
        x = torch.randn(6, 3)
        assert torch.allclose(adj.matmul(x, transpose=True), dense.t() @ x, atol=1e-6)


def test_transform_adds_channels_and_leaves_its_input_alone():
    data = hand_data()
    before = set(data.edge_types)
    out = SocialMotifs(purchase_min_common=1)(data)
    assert set(data.edge_types) == before
    assert set(out.edge_types) == before | set(CHANNEL_EDGE_TYPES.values())
    purchase = out[CHANNEL_EDGE_TYPES["purchase"]]
    assert purchase.edge_index.t().tolist() == [[0, 3], [1, 3], [3, 0], [3, 1], [4, 5], [5, 4]]
    for et in CHANNEL_EDGE_TYPES.values():
        ei = out[et].edge_index
        key = ei[0] * 6 + ei[1]
        assert torch.all(key[1:] > key[:-1])  # sorted by (row, col), no duplicates
        rows = torch.zeros(6).index_add_(0, ei[0], out[et].edge_weight)
        assert torch.allclose(rows[rows > 0], torch.ones(int((rows > 0).sum())))


def test_transform_needs_social_links_and_a_valid_threshold():
    data = hand_data()
    del data[FOLLOWS]
    with pytest.raises(ConfigError, match="follows"):
        SocialMotifs()(data)
    with pytest.raises(ConfigError, match="purchase_min_common"):
        SocialMotifs(purchase_min_common=0)


# -- an independent enumeration on random graphs -------------------------------------


def link_state(g: nx.DiGraph, a: int, b: int) -> str | None:
    """'both', 'ab' (a follows b only), 'ba', or None."""
    f, r = g.has_edge(a, b), g.has_edge(b, a)
    return "both" if f and r else "ab" if f else "ba" if r else None


def social_motif(g: nx.DiGraph, triple: tuple[int, int, int]) -> str | None:
    """The motif of three users by the definitions: every pair linked; which are mutual,
    and how the one-way links run."""
    pairs = list(itertools.combinations(triple, 2))
    states = {p: link_state(g, *p) for p in pairs}
    if None in states.values():
        return None
    mutual = [p for p, s in states.items() if s == "both"]
    one_way = [p if s == "ab" else p[::-1] for p, s in states.items() if s != "both"]
    if len(mutual) == 3:
        return "M4"
    if len(mutual) == 2:
        return "M3"
    if not mutual:  # three one-way links: a directed cycle or a transitive triangle
        return "M1" if not nx.is_directed_acyclic_graph(nx.DiGraph(one_way)) else "M5"
    third = (set(triple) - set(mutual[0])).pop()
    follows = sum(src == third for src, _ in one_way)
    # the third user follows both of the mutual pair (M6), is followed by both (M7),
    # or follows one and is followed by the other (M2)
    return {2: "M6", 0: "M7", 1: "M2"}[follows]


def enumerate_motifs(links, interactions, n_users: int) -> dict[str, torch.Tensor]:
    g = nx.DiGraph()
    g.add_nodes_from(range(n_users))
    g.add_edges_from((a, b) for a, b in links if a != b)
    counts = {m: torch.zeros(n_users, n_users) for m in MOTIFS}

    def add(m, a, b):
        counts[m][a, b] += 1
        counts[m][b, a] += 1

    for triple in itertools.combinations(range(n_users), 3):
        m = social_motif(g, triple)
        if m is not None:
            for a, b in itertools.combinations(triple, 2):
                add(m, a, b)
    bipartite = nx.Graph()
    bipartite.add_edges_from((("u", u), ("i", i)) for u, i in interactions)
    items = [node for node in bipartite if node[0] == "i"]
    for item in items:
        buyers = sorted(u for _, u in bipartite.neighbors(item))
        for a, b in itertools.combinations(buyers, 2):
            state = link_state(g, a, b)
            add("M8" if state == "both" else "M10" if state is None else "M9", a, b)
    return counts


def test_motif_counts_match_an_enumeration_of_triangles_on_random_graphs():
    seen = set()
    for seed in range(40):
        rnd = random.Random(seed)
        n, n_items = rnd.randint(3, 11), rnd.randint(1, 6)
        links = [(rnd.randrange(n), rnd.randrange(n)) for _ in range(rnd.randint(0, n * n // 2))]
        links += [(b, a) for a, b in links if rnd.random() < 0.5]  # make some links mutual
        inter = sorted({(rnd.randrange(n), rnd.randrange(n_items))
                        for _ in range(rnd.randint(0, 3 * n))})
        expected = enumerate_motifs(links, inter, n)
        # Small blocks of R Rᵀ rows exercise the blocked product.
        got = motif_adjacencies(as_tensor(links), as_tensor(inter), n, n_items,
                                block_paths=rnd.choice([1, 7, 1 << 20]))
        for m in MOTIFS:
            assert torch.equal(got[m].to_dense(), expected[m]), (seed, m)
            if expected[m].any():
                seen.add(m)
    assert seen == set(MOTIFS)  # every motif occurred somewhere


def test_channels_sum_their_motifs():
    rnd = random.Random(7)
    links = as_tensor([(rnd.randrange(15), rnd.randrange(15)) for _ in range(80)])
    inter = as_tensor(sorted({(rnd.randrange(15), rnd.randrange(5)) for _ in range(40)}))
    motifs = motif_adjacencies(links, inter, 15, 5, purchase_min_common=2)
    channels = motif_channels(links, inter, 15, 5)
    total = sum(motifs[f"M{k}"].to_dense() for k in range(1, 8))
    assert torch.equal(channels["social"].to_dense(), total)
    assert torch.equal(channels["joint"].to_dense(), motifs["M8"].to_dense() + motifs["M9"].to_dense())
    assert torch.equal(channels["purchase"].to_dense(), motifs["M10"].to_dense())
    assert channels["purchase"].values().min() >= 2


# -- bounded memory -------------------------------------------------------------------


class NoLargeDense(TorchDispatchMode):
    """Fails on any dense (strided) tensor with ``limit`` or more elements."""

    def __init__(self, limit: int):
        super().__init__()
        self.limit = limit
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor) and t.layout == torch.strided:
                self.largest = max(self.largest, t.numel())
                if t.numel() >= self.limit:
                    raise AssertionError(f"{func} built a dense tensor of shape {tuple(t.shape)}")
        return out


def test_twenty_thousand_users_without_a_dense_user_by_user_matrix():
    n, n_items = 20_000, 20_000
    gen = torch.Generator().manual_seed(0)
    links = torch.randint(0, n, (2, 100_000), generator=gen)
    links = torch.cat([links, links[:, :30_000].flip(0)], 1)  # some mutual links
    users = torch.arange(n).repeat_interleave(5)
    inter = torch.stack([users, torch.randint(0, n_items, (users.numel(),), generator=gen)])
    data = HeteroData()
    data["user"].num_nodes = n
    data["item"].num_nodes = n_items
    data[FOLLOWS].edge_index = links
    data[INTERACTS].edge_index = inter
    guard = NoLargeDense(limit=n * n // 10)
    with guard:
        out = SocialMotifs(purchase_min_common=1, block_paths=200_000)(data)
    assert guard.largest < n * n // 10
    # Sane sizes: symmetric channels, no more entries than there are paths to make them.
    item_deg = torch.bincount(inter[1], minlength=n_items)
    co_pairs = int((item_deg * (item_deg - 1)).sum())
    social, joint, purchase = (out[CHANNEL_EDGE_TYPES[c]] for c in ("social", "joint", "purchase"))
    assert 0 < social.edge_index.size(1) < 100 * links.size(1)
    assert 0 < joint.edge_index.size(1) <= 2 * links.size(1)
    assert 0 < purchase.edge_index.size(1) <= co_pairs
    for store in (social, joint, purchase):
        ei = store.edge_index
        flipped = torch.sort(ei[1] * n + ei[0]).values
        assert torch.equal(flipped, ei[0] * n + ei[1])  # counts are symmetric
        assert store.motif_count.min() >= 1
