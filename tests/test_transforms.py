"""Augmentations: exact effect, seeding, composition, no mutation of the input."""

import pytest
import torch
import torch_geometric.transforms as T
from dense_reference import normalized_adjacency_reference

from ssgraphrec.data import INTERACTS, interaction_data
from ssgraphrec.errors import ConfigError, SSGraphRecError
from ssgraphrec.sparse import BipartiteGraph, view_adjacency
from ssgraphrec.transforms import AUGMENTATIONS, EdgeDrop, NodeDrop, RandomWalk, make_augmentation


def toy(num_users=20, num_items=30, per_user=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    users = torch.arange(num_users).repeat_interleave(per_user)
    items = torch.randint(0, num_items, (users.numel(),), generator=g)
    return interaction_data(num_users, num_items, torch.stack([users, items]))


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_edge_drop_keeps_exactly_the_right_number_of_edges_in_order():
    data = toy()
    before = data[INTERACTS].edge_index.clone()
    n = before.size(1)
    out = EdgeDrop(0.25, generator=gen())(data)
    store = out[INTERACTS]
    assert store.edge_index.size(1) == round(n * 0.75)
    # kept edges are the original edges at e_id, in their original order
    assert torch.equal(store.edge_index, before[:, store.e_id])
    assert torch.all(store.e_id[1:] > store.e_id[:-1])
    # the input is untouched
    assert torch.equal(data[INTERACTS].edge_index, before)
    assert "e_id" not in data[INTERACTS]


def test_same_seed_same_view_other_seed_other_view():
    data = toy()
    a = EdgeDrop(0.3, generator=gen(1))(data)[INTERACTS].e_id
    b = EdgeDrop(0.3, generator=gen(1))(data)[INTERACTS].e_id
    c = EdgeDrop(0.3, generator=gen(2))(data)[INTERACTS].e_id
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_node_drop_removes_every_edge_of_dropped_nodes_and_only_those():
    data = toy()
    out = NodeDrop(0.2, generator=gen(3))(data)
    ei = data[INTERACTS].edge_index
    kept = out[INTERACTS].edge_index
    kept_users = set(kept[0].tolist())
    kept_items = set(kept[1].tolist())
    # every original edge between two surviving endpoints survives
    survivors = [(u, i) for u, i in ei.t().tolist()]
    dropped_users = set(range(20)) - kept_users
    assert len(dropped_users) >= 4  # 20 * 0.2 = 4 users dropped (others may become isolated)
    for u, i in survivors:
        if u in kept_users and i in kept_items:
            assert (u, i) in set(map(tuple, kept.t().tolist()))


def test_node_drop_drops_exactly_p_of_each_node_type():
    data = toy(num_users=50, num_items=40, per_user=40)  # dense: every node has edges
    out = NodeDrop(0.1, generator=gen(4))(data)
    kept = out[INTERACTS].edge_index
    assert len(set(kept[0].tolist())) == 45
    assert len(set(kept[1].tolist())) == 36


def test_random_walk_gives_a_different_view_per_layer():
    data = toy()
    n = data[INTERACTS].edge_index.size(1)
    out = RandomWalk(0.2, num_layers=3, generator=gen(5))(data)
    layers = out[INTERACTS].layer_e_id
    assert len(layers) == 3
    assert all(e.numel() == round(n * 0.8) for e in layers)
    assert not torch.equal(layers[0], layers[1])
    graph = BipartiteGraph(data[INTERACTS].edge_index, 20, 30)
    adjs = view_adjacency(graph, out[INTERACTS])
    assert isinstance(adjs, list) and len(adjs) == 3


def test_composition_with_pyg_compose_and_view_adjacency():
    data = toy()
    view = T.Compose([EdgeDrop(0.2, generator=gen(6)), NodeDrop(0.1, generator=gen(7))])(data)
    store = view[INTERACTS]
    ei = data[INTERACTS].edge_index
    assert torch.equal(store.edge_index, ei[:, store.e_id])
    graph = BipartiteGraph(ei, 20, 30)
    adj = view_adjacency(graph, store).to_dense()
    assert torch.allclose(adj, normalized_adjacency_reference(store.edge_index, 20, 30), atol=1e-6)


def test_registry_and_bad_parameters():
    assert {"edge_drop", "node_drop", "random_walk"} <= set(AUGMENTATIONS)
    aug = make_augmentation("random_walk", p=0.3, num_layers=2, generator=gen())
    assert isinstance(aug, RandomWalk) and aug.num_layers == 2
    with pytest.raises(ConfigError, match=r"\[0, 1\)"):
        EdgeDrop(1.0)
    with pytest.raises(ConfigError):
        NodeDrop(-0.1)
    with pytest.raises(SSGraphRecError, match="unknown augmentation"):
        make_augmentation("edge_dorp")
