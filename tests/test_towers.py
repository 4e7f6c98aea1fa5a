"""Two-tower encoders, batch softmax with log-Q, the queue, and the two-tower methods."""

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F

from ssgraphrec.data import build_dataset
from ssgraphrec.data.attributes import ID_FIELD
from ssgraphrec.data.synthetic_features import FeatureSyntheticConfig, make_feature_synthetic
from ssgraphrec.errors import ConfigError
from ssgraphrec.losses import MemoryBank, log_q_of_items, sampled_softmax
from ssgraphrec.methods import METHODS
from ssgraphrec.methods.base import BPRBatch
from ssgraphrec.nn.towers import ItemTower, UserTower, field_bags
from ssgraphrec.train import Trainer


@pytest.fixture(scope="module")
def feature_data():
    raw = make_feature_synthetic(FeatureSyntheticConfig(num_users=300, num_items=200), seed=3)
    return build_dataset(raw, split="random", test_ratio=0.2, val_ratio=0.1, seed=3)


def test_field_bags_are_per_field_means_with_exact_values():
    table = torch.tensor([[1.0, 0.0], [3.0, 2.0], [5.0, 4.0], [0.0, 8.0]])
    col_field = torch.tensor([0, 0, 1, 1])
    # item 0 has values 0, 1 (field 0) and 3 (field 1); item 1 has value 2; item 2 none.
    edges = torch.tensor([[0, 0, 0, 1], [0, 1, 3, 2]])
    bags, counts = field_bags(edges, torch.tensor([2, 0, 1, 0]), 3, table, col_field, 2)
    assert counts.tolist() == [[0, 0], [2, 1], [0, 1], [2, 1]]
    expected_0 = [[2.0, 1.0], [0.0, 8.0]]
    assert bags[1].tolist() == expected_0 and bags[3].tolist() == expected_0
    assert bags[2].tolist() == [[0.0, 0.0], [5.0, 4.0]]
    assert bags[0].abs().sum() == 0


def test_field_bags_exclude_leaves_the_target_out_of_the_mean():
    table = torch.tensor([[1.0], [3.0], [8.0]])
    edges = torch.tensor([[0, 0, 0, 1], [0, 1, 2, 2]])
    bags, counts = field_bags(edges, torch.tensor([0, 0, 1, 1]), 2, table, None, 1,
                              exclude=torch.tensor([2, -1, 0, 2]))
    # user 0 without item 2: (1 + 3) / 2; without nothing: 12 / 3; user 1 does not have
    # item 0, so nothing is left out; without its only item 2: an empty mean.
    assert bags[:, 0, 0].tolist() == [2.0, 4.0, 8.0, 0.0]
    assert counts[:, 0].tolist() == [2.0, 3.0, 1.0, 0.0]


def test_item_tower_uses_the_field_default_for_a_masked_field():
    torch.manual_seed(0)
    tower = ItemTower(2, 3, torch.tensor([0, 0, 1]), 2, 4, [5], use_id=False)
    edges = torch.tensor([[0, 0, 1], [0, 2, 1]])
    tower.set_graph(edges)
    masked = torch.tensor([[0], [0]])  # the view keeps item 0's field-0 value only
    out = tower(torch.tensor([0]), masked)
    expected_in = torch.cat([tower.attr.weight[0], tower.default[1]]).view(1, -1)
    assert torch.allclose(out, tower.mlp(expected_in))
    full = tower(torch.tensor([0]))
    assert torch.allclose(full, tower.mlp(torch.cat([tower.attr.weight[0],
                                                     tower.attr.weight[2]]).view(1, -1)))


def test_user_tower_mean_of_history_excluding_the_target():
    torch.manual_seed(0)
    history = torch.tensor([[0, 0, 1], [0, 1, 1]])
    tower = UserTower(2, 2, history, 3, [3])
    w = tower.history_items.weight
    out = tower(torch.tensor([0, 0]), exclude=torch.tensor([1, -1]))
    assert torch.allclose(out[0], tower.mlp(w[0].view(1, -1))[0])
    assert torch.allclose(out[1], tower.mlp(((w[0] + w[1]) / 2).view(1, -1))[0])


def test_sampled_softmax_with_log_q_hand_computed():
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    x = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    log_q = torch.log(torch.tensor([0.5, 0.25]))
    loss = sampled_softmax(q, x, 1.0, log_q=log_q)
    c = 1 / math.sqrt(2)
    # row 0: logits [1 - log .5, c - log .25]; row 1: [0 - log .5, c - log .25]
    l0 = -(1 - math.log(0.5)) + math.log(math.exp(1 - math.log(0.5)) + math.exp(c - math.log(0.25)))
    l1 = -(c - math.log(0.25)) + math.log(math.exp(-math.log(0.5)) + math.exp(c - math.log(0.25)))
    assert loss.item() == pytest.approx((l0 + l1) / 2, rel=1e-6)


def test_sampled_softmax_counts_a_repeated_item_once():
    torch.manual_seed(0)
    q, x = torch.randn(3, 4), torch.randn(3, 4)
    x[2] = x[0]
    ids = torch.tensor([7, 8, 7])
    loss = sampled_softmax(q, x, 0.5, item_ids=ids)
    logits = F.normalize(q, dim=-1) @ F.normalize(x[:2], dim=-1).t() / 0.5
    expected = F.cross_entropy(logits, torch.tensor([0, 1, 0]))
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)


def test_log_q_is_the_click_share():
    assert torch.allclose(log_q_of_items(torch.tensor([3, 1, 0])).exp(),
                          torch.tensor([0.6, 0.2, 0.2]))


def test_log_q_with_a_batch_size_is_the_probability_of_being_in_the_batch():
    # Shares 0.25 and 0.75, batches of 2 clicks: P(in batch) = 1 - 0.75^2 and 1 - 0.25^2.
    p = log_q_of_items(torch.tensor([1, 3]), batch_size=2).exp()
    assert torch.allclose(p, torch.tensor([0.4375, 0.9375]))
    # An item holding 1% of the clicks is in nearly every batch of 4096: p -> 1, not 0.01.
    p = log_q_of_items(torch.tensor([1, 99]), batch_size=4096).exp()
    assert p[0] == pytest.approx(1.0) and p[1] == pytest.approx(1.0)
    # A rare item: about B * share (the share up to a constant factor).
    p = log_q_of_items(torch.tensor([1, 999_999]), batch_size=10).exp()
    assert p[0] == pytest.approx(1e-5, rel=1e-4)


def test_two_tower_log_q_matches_the_in_batch_frequency_of_its_own_batches(feature_data):
    from ssgraphrec.data.sampler import NegativeSampler, bpr_batches

    cls = METHODS.get("twotower")
    method = cls(feature_data, cls.config_class(batch_size=256))
    edges = feature_data["user", "interacts", "item"].edge_index
    n_items = int(feature_data["item"].num_nodes)
    sampler = NegativeSampler(edges, n_items)
    gen = torch.Generator().manual_seed(0)
    seen, batches = torch.zeros(n_items), 0
    for _ in range(20):
        for users, pos, _neg in bpr_batches(edges, sampler, 256, gen):
            if users.numel() == 256:
                seen[pos.unique()] += 1
                batches += 1
    observed = seen / batches
    clicked = torch.bincount(edges[1], minlength=n_items) > 0
    expected = method.log_q.exp()
    # The correction is the frequency with which an item is a column of a batch, not its
    # click share (which is off by up to the batch size for rare items and more for popular ones).
    assert (observed[clicked] - expected[clicked]).abs().max() < 0.08
    assert (observed[clicked] - expected[clicked]).abs().mean() < 0.02


def test_queue_softmax_is_the_softmax_over_every_copy_in_batch_and_queue():
    from ssgraphrec.losses.queue_softmax import queue_softmax

    g = torch.Generator().manual_seed(0)
    query, items = torch.randn(3, 4, generator=g), torch.randn(3, 4, generator=g)
    ids = torch.tensor([5, 5, 7])
    queued = torch.randn(4, 4, generator=g)
    queued_ids = torch.tensor([7, 9, 2, 9])  # oldest first
    got = queue_softmax(query, items, ids, queued, queued_ids, temperature=0.5)
    # One column per copy: the batch's rows (item 5 twice, with the first row's encoding),
    # the queue's rows; an item of the batch has its fresh encoding, item 9 its newest copy.
    rep = {5: items[0], 7: items[2], 9: queued[3], 2: queued[2]}
    pool = [5, 5, 7, 7, 9, 2, 9]
    q = F.normalize(query, dim=-1)
    cols = F.normalize(torch.stack([rep[j] for j in pool]), dim=-1)
    logits = q @ cols.t() / 0.5
    expected = 0.0
    for i, y in enumerate(ids.tolist()):
        own = torch.tensor([j == y for j in pool])
        expected += -(logits[i][own].exp().sum() / logits[i].exp().sum()).log() / 3
    assert got.item() == pytest.approx(float(expected), rel=1e-5)
    # A popular item is as many negatives as it has copies: tripling item 2 in the queue
    # raises the loss of every row (all else equal).
    more = queue_softmax(query, items, ids, torch.cat([queued, queued[2:3], queued[2:3]]),
                         torch.cat([queued_ids, torch.tensor([2, 2])]), temperature=0.5)
    assert more > got


def test_memory_bank_is_a_fifo_queue():
    bank = MemoryBank(3, 1)
    bank.enqueue(torch.tensor([[1.0], [2.0]]), torch.tensor([1, 2]))
    bank.enqueue(torch.tensor([[3.0], [4.0]]), torch.tensor([3, 4]))
    rows, ids = bank.negatives()
    assert rows.view(-1).tolist() == [2.0, 3.0, 4.0] and ids.tolist() == [2, 3, 4]


def fit(name, data, tmp_path, epochs, **params):
    cls = METHODS.get(name)
    cfg = dataclasses.replace(cls.config_class(), **params)
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    method = cls(data, cfg, generator=torch.Generator().manual_seed(1))
    trainer = Trainer(method, data, tmp_path, epochs=epochs, patience=0, generator=gen,
                      progress=False, log=lambda msg: None, head_share=0.1)
    return trainer.fit()


@pytest.mark.parametrize("name,params", [
    ("twotower", {}),
    ("ssl4rec", {"aug": "field_mask", "ssl_batch_size": 128}),
    ("ssl4rec", {"aug": "correlated_field_mask", "ssl_batch_size": 128}),
    ("clrec", {}),
])
def test_two_tower_methods_beat_popularity_on_planted_attributes(feature_data, tmp_path, name,
                                                                  params):
    pop = fit("mostpop", feature_data, tmp_path / "pop", 0)
    res = fit(name, feature_data, tmp_path / name, 5, lr=1e-2, batch_size=512, emb_dim=16,
              hidden="32,16", **params)
    assert res["test"]["recall@20"] > 1.5 * pop["test"]["recall@20"], \
        (res["test"]["recall@20"], pop["test"]["recall@20"])
    tail = res["test_slices"]["tail_items"]["metrics"]["recall@20"]
    assert tail > pop["test_slices"]["tail_items"]["metrics"]["recall@20"]


def test_ssl4rec_loss_has_both_terms_and_views_are_complementary(feature_data):
    cls = METHODS.get("ssl4rec")
    method = cls(feature_data, cls.config_class(aug="field_mask", dropout_rate=0.0),
                 generator=torch.Generator().manual_seed(0))
    a, b = method.views()
    full = method.features["item", "has", "attr"].edge_index
    key = lambda e: set(map(tuple, e.t().tolist()))  # noqa: E731
    assert key(a) | key(b) == key(full) and not key(a) & key(b)
    e = feature_data["user", "interacts", "item"].edge_index[:, :64]
    terms = method.loss(BPRBatch(e[0], e[1], e[1]))
    assert set(terms) == {"softmax", "ssl"} and all(torch.isfinite(t) for t in terms.values())


def test_clrec_fills_its_queue(feature_data):
    cls = METHODS.get("clrec")
    method = cls(feature_data, cls.config_class(batch_size=32, queue_batches=2))
    e = feature_data["user", "interacts", "item"].edge_index
    for k in range(3):
        method.loss(BPRBatch(e[0, k * 32:(k + 1) * 32], e[1, k * 32:(k + 1) * 32], e[1, :32]))
    rows, ids = method.queue.negatives()
    assert rows.size(0) == 64 and ids.tolist() == e[1, 32:96].tolist()


def test_clrec_queue_holds_stale_detached_representations(feature_data):
    cls = METHODS.get("clrec")
    method = cls(feature_data, cls.config_class(batch_size=32, queue_batches=2))
    opt = torch.optim.SGD(method.parameters(), lr=1.0)
    e = feature_data["user", "interacts", "item"].edge_index
    first, second = e[:, :32], e[:, 32:64]
    only_first = first[1][~torch.isin(first[1], second[1])]
    opt.zero_grad()
    method.loss(BPRBatch(first[0], first[1], first[1]))["contrastive"].backward()
    with torch.no_grad():
        rep_then = method.item_tower(first[1]).clone()
    opt.step()  # the towers change; the queue keeps the representations of their time
    opt.zero_grad()
    loss = method.loss(BPRBatch(second[0], second[1], second[1]))["contrastive"]
    queued, ids = method.queue.negatives()
    assert ids[:32].tolist() == first[1].tolist()
    assert torch.allclose(queued[:32], rep_then)
    with torch.no_grad():
        assert not torch.allclose(queued[:32], method.item_tower(first[1]))
    loss.backward()
    # No gradient through the queue: the ID embeddings of items seen only in the first batch
    # (queued negatives now) get none from the second batch's loss.
    feats = method.features
    edges = feats["item", "has", "attr"].edge_index
    id_edge = feats["attr"].field[edges[1]] == feats.attr_fields.index(ID_FIELD)
    own = edges[1][id_edge & torch.isin(edges[0], only_first)]
    assert own.numel() > 0
    assert method.item_tower.attr.weight.grad[own].abs().sum() == 0


@pytest.mark.parametrize("params,message", [
    ({"aug": "edge_drop"}, "field_mask, correlated_field_mask"),
    ({"aug": "field_mask", "mask_fields": "colour"}, "no attribute field 'colour'"),
    ({"mask_ratio": 1.0}, "mask_ratio must be a probability in [0, 1)"),
    ({"hidden": "128,x"}, "hidden must be positive layer sizes"),
])
def test_ssl4rec_bad_settings_give_one_clear_error(feature_data, params, message):
    cls = METHODS.get("ssl4rec")
    with pytest.raises(ConfigError, match=None) as exc:
        cls(feature_data, dataclasses.replace(cls.config_class(), **params))
    assert message in str(exc.value)


def test_feature_clustering_finds_planted_groups_and_pulls_to_them():
    from ssgraphrec.nn import FeatureClustering

    x = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    fc = FeatureClustering(2, generator=torch.Generator().manual_seed(0)).fit(x)
    a = fc.assignment.tolist()
    assert a[0] == a[1] and a[2] == a[3] and a[0] != a[2]
    rows = torch.arange(4)
    assert fc.loss(rows, x) < fc.loss(rows, x.flip(1))  # own prototype closer than the other
    with pytest.raises(RuntimeError, match="before fit"):
        FeatureClustering(2).loss(rows, x)


@pytest.mark.slow
@pytest.mark.realdata
def test_ssl4rec_on_ml_100k_far_above_popularity(real_dataset, data_root, tmp_path):
    from ssgraphrec.data import load_dataset

    real_dataset("ml-100k")
    data = load_dataset("ml-100k", root=data_root, seed=0)
    pop = fit("mostpop", data, tmp_path / "pop", 0)["test"]["recall@20"]
    res = fit("ssl4rec", data, tmp_path / "ssl", 2, lr=1e-2, aug="correlated_field_mask")
    assert res["test"]["recall@20"] > 1.3 * pop, (res["test"]["recall@20"], pop)
