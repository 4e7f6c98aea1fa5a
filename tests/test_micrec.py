"""MicRec: item positives (shared attributes, co-occurrence, title neighbours), its InfoNCE,
its training against popularity on planted structure, and its clear errors."""

from __future__ import annotations

import json
import math

import pytest
import torch

from ssgraphrec.data.schema import ATTR, HAS_ATTR, INTERACTS, interaction_data
from ssgraphrec.data.text_embeddings import TextEncoder
from ssgraphrec.errors import ConfigError
from ssgraphrec.losses import info_nce
from ssgraphrec.methods import MicRec, MicRecConfig, MostPop, TwoTower, TwoTowerConfig
from ssgraphrec.methods.base import BPRBatch, MethodConfig
from ssgraphrec.train.trainer import Trainer
from ssgraphrec.transforms.item_cooccurrence import ItemCooccurrence
from ssgraphrec.transforms.item_positives import (
    SharedAttributePositives,
    interaction_cooccurrence,
    linked,
    nearest_neighbour_graph,
)


# -- positives -------------------------------------------------------------------------
def test_shared_attribute_positives_share_an_informative_value_and_never_the_item_itself():
    # Value 0 is on every item (idf 0: never drawn); value 1 on {0, 1}; value 2 on
    # {2, 3, 4}; value 3 only on item 5 (no partner): item 5 has no positive.
    edges = torch.tensor([[0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4, 5],
                          [0, 0, 0, 0, 0, 0, 1, 1, 2, 2, 2, 3]])
    sampler = SharedAttributePositives(edges, num_items=6, num_attrs=4)
    items = torch.arange(6).repeat(300)
    pos, found = sampler.sample(items, torch.Generator().manual_seed(0))
    assert found[items != 5].all() and not found[items == 5].any()
    assert (pos[items == 0] == 1).all() and (pos[items == 1] == 0).all()
    for i, partners in [(2, {3, 4}), (3, {2, 4}), (4, {2, 3})]:
        drawn = pos[items == i]
        assert set(drawn.tolist()) == partners  # both partners drawn, never the item itself
        assert abs((drawn == min(partners)).float().mean().item() - 0.5) < 0.1
    assert (pos[items == 5] == 5).all()


def test_interaction_cooccurrence_follows_time_order_not_item_order():
    # User 0 clicks items 2, 0, 1 in that order (times 0, 1, 2): adjacent pairs (2,0), (0,1).
    train = torch.tensor([[0, 0, 0], [0, 1, 2]])
    data = interaction_data(1, 3, train)
    data[INTERACTS].time = torch.tensor([1.0, 2.0, 0.0])  # times of (0,0), (0,1), (0,2)
    graph = interaction_cooccurrence(data, window=1)
    assert graph.edge_index().tolist() == [[0, 0, 1, 2], [1, 2, 0, 0]]
    assert graph.weight.tolist() == [1.0, 1.0, 1.0, 1.0]
    wide = interaction_cooccurrence(data, window=2)  # now 2 and 1 co-occur as well
    assert wide.edge_index().size(1) == 6


def test_linked_matches_a_pairwise_check():
    g = torch.Generator().manual_seed(1)
    n = 30
    pairs = torch.unique(torch.randint(0, n, (2, 80), generator=g), dim=1)
    pairs = pairs[:, pairs[0] != pairs[1]]
    keys = torch.unique(torch.cat([pairs[0] * n + pairs[1], pairs[1] * n + pairs[0]]))
    row, col = keys // n, keys % n
    ptr = torch.zeros(n + 1, dtype=torch.long)
    ptr[1:] = torch.cumsum(torch.bincount(row, minlength=n), 0)
    graph = ItemCooccurrence(ptr, col, torch.ones(col.numel(), dtype=torch.float64))
    a, b = torch.randint(0, n, (25,), generator=g), torch.randint(0, n, (40,), generator=g)
    expected = torch.isin(a[:, None] * n + b[None, :], keys)
    assert torch.equal(linked(graph, a, b), expected)


def test_nearest_neighbour_graph_of_title_vectors():
    x = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9], [0.0, 0.0]])
    graph = nearest_neighbour_graph(x, k=1)
    # Each item's closest other item; item 4 has no title (zero vector): no neighbours.
    assert graph.edge_index().tolist() == [[0, 1, 2, 3], [1, 0, 3, 2]]


# -- loss ------------------------------------------------------------------------------
def masked_info_nce(anchor, positive, temperature=1.0, **options):
    """MicRec's use of the InfoNCE: inner products, tau = 1 by default."""
    return info_nce(anchor, positive, temperature, similarity="dot", **options)


def test_masked_info_nce_matches_hand_computed_value_and_drops_masked_negatives():
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    p = torch.tensor([[2.0, 0.0], [1.0, 1.0]])
    # logits (dot, tau=1): row 0 = [2, 1], row 1 = [0, 1]
    row0 = -math.log(math.exp(2) / (math.exp(2) + math.exp(1)))
    row1 = -math.log(math.exp(1) / (math.exp(0) + math.exp(1)))
    assert masked_info_nce(a, p).item() == pytest.approx((row0 + row1) / 2)
    # Masking p_1 as a negative of a_0 leaves row 0 with its positive only (loss 0).
    mask = torch.tensor([[False, True], [False, False]])
    assert masked_info_nce(a, p, not_negative=mask).item() == pytest.approx(row1 / 2)
    # A row of weight 0 does not count.
    assert masked_info_nce(a, p, weight=torch.tensor([0.0, 1.0])).item() == pytest.approx(row1)
    # tau = 0.5 doubles the logits.
    half = -math.log(math.exp(4) / (math.exp(4) + math.exp(2)))
    assert masked_info_nce(a[:1], p[:1].repeat(1, 1), 0.5).item() == pytest.approx(0.0)
    assert masked_info_nce(a, p, 0.5).item() == pytest.approx(
        (half - math.log(math.exp(2) / (1 + math.exp(2)))) / 2)


# -- the method ------------------------------------------------------------------------
def planted(num_users: int = 240, num_items: int = 120, groups: int = 4, per_user: int = 14,
            seed: int = 0):
    """Users and items in ``groups`` communities; a user clicks items of its own group
    (popularity-skewed), in a time order; the item's group is an attribute value, plus a
    value shared by all items. Test: each user's last click."""
    g = torch.Generator().manual_seed(seed)
    item_group = torch.arange(num_items) % groups
    user_group = torch.arange(num_users) % groups
    pop = (torch.arange(num_items, dtype=torch.float) + 1).pow(-0.7)
    weights = pop[None, :] * (item_group[None, :] == user_group[:, None])
    items = torch.multinomial(weights, per_user, replacement=False, generator=g)
    users = torch.arange(num_users)[:, None].expand(-1, per_user)
    train = torch.stack([users[:, :-1].reshape(-1), items[:, :-1].reshape(-1)])
    test = torch.stack([users[:, -1], items[:, -1]])
    data = interaction_data(num_users, num_items, train, None, test, name="planted")
    # Time = place in the user's draw order, in edge_index order.
    order = torch.argsort(train[0] * num_items + train[1])
    data[INTERACTS].time = torch.arange(per_user - 1).repeat(num_users).double()[order]
    attr_item = torch.cat([torch.arange(num_items), torch.arange(num_items)])
    attr_value = torch.cat([torch.zeros(num_items, dtype=torch.long), 1 + item_group])
    data[HAS_ATTR].edge_index = torch.stack([attr_item, attr_value])[
        :, torch.argsort(attr_item * (groups + 1) + attr_value)]
    data[ATTR].num_nodes = groups + 1
    data[ATTR].field = torch.zeros(groups + 1, dtype=torch.long)
    data[ATTR].raw_id = ["all"] + [f"group={k}" for k in range(groups)]
    data.attr_fields = ["group"]
    return data


def small_cfg(**kw) -> MicRecConfig:
    return MicRecConfig(batch_size=256, lr=5e-3, emb_dim=16, hidden="32,16", **kw)


def test_micrec_beats_popularity_on_planted_communities(tmp_path):
    data = planted()
    gen = torch.Generator().manual_seed(0)
    micrec = MicRec(data, small_cfg(), generator=torch.Generator().manual_seed(1))
    trained = Trainer(micrec, data, tmp_path / "m", epochs=12, ks=[10, 20], monitor="hit@10",
                      generator=gen, progress=False, log=lambda _: None).fit()
    pop = Trainer(MostPop(data, MethodConfig()), data, tmp_path / "p", epochs=0, ks=[10, 20],
                  monitor="hit@10", generator=gen, progress=False, log=lambda _: None).fit()
    assert trained["test"]["hit@10"] > 1.5 * pop["test"]["hit@10"]
    assert micrec.info["semantic_positives"].startswith("attributes")
    assert "time order" in micrec.info["session_positives"]


def test_loss_terms_follow_the_ablation_switches():
    data = planted(num_users=40, num_items=24)
    batch = BPRBatch(data[INTERACTS].edge_index[0, :64], data[INTERACTS].edge_index[1, :64],
                     data[INTERACTS].edge_index[1, :64])
    full = MicRec(data, small_cfg(), generator=torch.Generator().manual_seed(0)).loss(batch)
    assert set(full) == {"softmax", "feature_cl", "semantic_cl", "session_cl"}
    assert all(torch.isfinite(v) and v > 0 for v in full.values())
    for off in ("feature_cl", "semantic_cl", "session_cl"):
        terms = MicRec(data, small_cfg(**{off: False}),
                       generator=torch.Generator().manual_seed(0)).loss(batch)
        assert set(terms) == set(full) - {off}


def test_semantic_positives_from_titles_with_a_local_encoder(monkeypatch):
    data = planted(num_users=40, num_items=24)
    data.item_titles = [f"title {i % 4}" for i in range(24)]
    # A stand-in encoder: one-hot of the title's group, so title neighbours = same group.
    fake = TextEncoder("fake-encoder", lambda texts: torch.nn.functional.one_hot(
        torch.tensor([int(t.split()[-1]) for t in texts]), 4).float())
    monkeypatch.setattr("ssgraphrec.methods.micrec.find_encoder", lambda: fake)
    model = MicRec(data, small_cfg(semantic_neighbours=3), generator=torch.Generator().manual_seed(0))
    assert model.info["semantic_positives"].startswith("titles") and "fake-encoder" in \
        model.info["semantic_positives"]
    items = torch.arange(24)
    pos, found = model.semantic.sample(items, torch.Generator().manual_seed(0))
    assert found.all() and (pos % 4 == items % 4).all() and (pos != items).all()


def test_auto_falls_back_to_attributes_without_an_encoder_and_says_why(monkeypatch):
    data = planted(num_users=40, num_items=24)
    data.item_titles = [f"title {i}" for i in range(24)]
    monkeypatch.setattr("ssgraphrec.methods.micrec.find_encoder", lambda: None)
    model = MicRec(data, small_cfg(), generator=torch.Generator().manual_seed(0))
    assert model.info["semantic_positives"].startswith("attributes")
    assert "no local sentence encoder" in model.info["semantic_positives"]
    json.dumps(model.info)  # goes into results.json


# -- bad input -------------------------------------------------------------------------
def test_clear_errors_for_bad_settings(monkeypatch):
    data = planted(num_users=40, num_items=24)
    with pytest.raises(ConfigError, match=r"feature_mask_ratio must be a probability in \[0, 1\)"):
        MicRec(data, small_cfg(feature_mask_ratio=1.0))
    with pytest.raises(ConfigError, match="no item title column"):
        MicRec(data, small_cfg(semantic_source="titles"))
    data.item_titles = [f"title {i}" for i in range(24)]
    monkeypatch.setattr("ssgraphrec.methods.micrec.find_encoder", lambda: None)
    with pytest.raises(ConfigError, match="needs a local sentence-embedding model"):
        MicRec(data, small_cfg(semantic_source="titles"))
    with pytest.raises(ConfigError, match="semantic_source must be one of"):
        MicRec(data, small_cfg(semantic_source="tags"))
    bare = interaction_data(40, 24, data[INTERACTS].edge_index)
    with pytest.raises(ConfigError, match="semantic_cl=false"):
        MicRec(bare, small_cfg())


def test_without_item_cl_micrec_is_exactly_the_two_tower_model():
    # The item-CL settings must not change the base model (e.g. the main softmax's temperature).
    data = planted(num_users=40, num_items=24)
    batch = BPRBatch(data[INTERACTS].edge_index[0, :64], data[INTERACTS].edge_index[1, :64],
                     data[INTERACTS].edge_index[1, :64])
    shared = dict(batch_size=256, emb_dim=16, hidden="32,16")
    torch.manual_seed(0)
    base = TwoTower(data, TwoTowerConfig(**shared)).loss(batch)
    torch.manual_seed(0)
    off = MicRec(data, MicRecConfig(**shared, feature_cl=False, semantic_cl=False, session_cl=False),
                 generator=torch.Generator().manual_seed(0)).loss(batch)
    assert set(off) == {"softmax"}
    assert off["softmax"].item() == pytest.approx(base["softmax"].item(), abs=1e-6)
