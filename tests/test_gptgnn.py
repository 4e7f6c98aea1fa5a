"""GPT-GNN: the dummy-node trick leaks nothing, edge masks follow the node order,
the generation losses match hand-computed values, and pre-training + fine-tuning
learns planted structure."""

import dataclasses
import math

import pytest
import torch

from ssgraphrec.data import SyntheticConfig, build_dataset, make_synthetic
from ssgraphrec.data.schema import ATTR, HAS_ATTR, USER_ATTR, USER_HAS_ATTR, interaction_data
from ssgraphrec.errors import ConfigError
from ssgraphrec.losses.attribute_generation import attribute_generation_loss
from ssgraphrec.losses.edge_generation import edge_generation_loss
from ssgraphrec.methods import GPTGNN, GPTGNNConfig, LightGCN, LightGCNConfig, MostPop
from ssgraphrec.methods.base import MethodConfig
from ssgraphrec.train import Trainer

# 6 users, 5 items; user attributes: gender (values 0, 1), age (value 2); item genre (0, 1).
TRAIN = torch.tensor([[0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5],
                      [0, 1, 2, 1, 3, 0, 4, 2, 3, 1, 4, 0, 3]])
SMALL = GPTGNNConfig(emb_dim=8, num_heads=2, num_layers=3, dropout=0.0, neg_samp_num=4)


def toy(user0_gender: int = 0):
    data = interaction_data(6, 5, TRAIN)
    gender = [user0_gender, 1, 0, 1, 0, 1]
    data[USER_ATTR].num_nodes = 3
    data[USER_ATTR].field = torch.tensor([0, 0, 1])
    data[USER_HAS_ATTR].edge_index = torch.tensor([[u for u in range(6) for _ in (0, 1)],
                                                   [v for g in gender for v in (g, 2)]])
    data[ATTR].num_nodes = 2
    data[ATTR].field = torch.tensor([0, 0])
    data[HAS_ATTR].edge_index = torch.tensor([[0, 1, 2, 3, 4], [0, 1, 0, 1, 0]])
    return data


def model(data, cfg=SMALL, seed=0):
    torch.manual_seed(seed)
    m = GPTGNN(data, cfg, generator=torch.Generator().manual_seed(seed))
    return m.eval()


def represent(m, targets):
    view = m.pretrain_views(targets)
    with torch.no_grad():
        h = m.encoder(view["graph"], view["dummies"])
    return view, h


def test_attribute_generation_copy_sees_neither_its_attributes_nor_its_id_input():
    targets = torch.tensor([0, 6 + 1])  # user 0, then item 1
    a, b = model(toy(user0_gender=0)), model(toy(user0_gender=1))
    view_a, ha = represent(a, targets)
    _, hb = represent(b, targets)
    dummy = 6 + int(view_a["slot"]["user"][0])
    # Its gender differs between the two graphs: the dummy copy is the same, the real one not.
    assert torch.allclose(ha["user"][dummy], hb["user"][dummy], atol=1e-6)
    assert not torch.allclose(ha["user"][0], hb["user"][0], atol=1e-4)
    # Its id input changes: still the same dummy, over all three layers.
    a.generator.manual_seed(0)
    view_a, ha = represent(a, targets)
    with torch.no_grad():
        a.encoder.emb["user"][0] += 1.0
    a.generator.manual_seed(0)
    _, hc = represent(a, targets)
    assert torch.allclose(ha["user"][dummy], hc["user"][dummy], atol=1e-6)
    assert not torch.allclose(ha["user"][0], hc["user"][0], atol=1e-4)


def pairs(t):
    return sorted(zip(t[0].tolist(), t[1].tolist(), strict=True))


def test_masked_edges_belong_to_the_later_target_in_the_node_order():
    m = model(toy(), dataclasses.replace(SMALL, mask_ratio=1.0))
    view = m.pretrain_views(torch.tensor([0, 6 + 1]))  # user 0 first, item 1 second
    assert pairs(view["masked_by_user"]) == [(0, 0), (0, 2)]
    assert pairs(view["masked_by_item"]) == [(0, 1), (1, 1), (4, 1)]
    view = m.pretrain_views(torch.tensor([6 + 1, 0]))  # item 1 first
    assert pairs(view["masked_by_user"]) == [(0, 0), (0, 1), (0, 2)]
    assert pairs(view["masked_by_item"]) == [(1, 1), (4, 1)]
    g = view["graph"]
    # no message leaves a target, and the real copies receive nothing masked
    ui, iu = g[("user", "interacts", "item")], g[("item", "rev_interacts", "user")]
    assert not (ui[0] == 0).any() and not (iu[0] == 1).any()
    assert not ((ui[1] == 1).any() or (iu[1] == 0).any())
    assert not (g[USER_HAS_ATTR][0] == 0).any()
    # dummies (user 6 + 0, item 5 + 0) get no attribute edges
    assert int(g[("user_attr", "rev_has", "user")][1].max()) < 6
    assert int(g[("attr", "rev_has", "item")][1].max()) < 5
    none = model(toy(), dataclasses.replace(SMALL, mask_ratio=0.0))
    v0 = none.pretrain_views(torch.tensor([0, 6 + 1]))
    assert v0["masked_by_user"].size(1) == 0 and v0["masked_by_item"].size(1) == 0


def test_attribute_generation_loss_is_a_softmax_per_field():
    logits = torch.tensor([[1.0, 2.0, 0.0]])
    field = torch.tensor([0, 0, 1])
    loss = attribute_generation_loss(logits, torch.tensor([0, 0]), torch.tensor([1, 2]), field)
    # value 1 against value 0 of its field; value 2 is alone in its field: -log 1 = 0
    expected = (math.log(math.e + math.e ** 2) - 2.0 + 0.0) / 2
    assert loss.item() == pytest.approx(expected)


def test_edge_generation_loss_leaves_true_neighbours_out_of_the_negatives():
    pos, neg = torch.tensor([1.0]), torch.tensor([[0.0, 5.0]])
    masked = edge_generation_loss(pos, neg, torch.tensor([[False, True]]))
    assert masked.item() == pytest.approx(math.log(1 + math.exp(-1.0)))
    plain = edge_generation_loss(pos, neg)
    assert plain.item() == pytest.approx(-math.log(math.e / (math.e + 1 + math.exp(5))))


def test_pretrain_loss_has_both_generation_terms_and_reaches_every_head():
    m = model(toy()).train()
    batches, n = m.pretrain_batches(torch.Generator().manual_seed(0))
    assert n == 1
    terms = m.pretrain_loss(next(iter(batches)))
    assert set(terms) == {"edge_gen", "attr_gen"}
    sum(terms.values()).backward()
    assert m.attr_decoders["user"].linear.weight.grad.abs().sum() > 0
    assert m.attr_decoders["item"].linear.weight.grad.abs().sum() > 0
    assert m.match_item.linear.weight.grad is not None


def test_exported_tables_initialise_lightgcn_and_a_wrong_size_is_refused():
    m = model(toy())
    state = m.encoder_state_dict()
    assert state["encoder.user_emb"].shape == (6, 8)
    assert state["encoder.item_emb"].std().item() == pytest.approx(SMALL.transfer_std, rel=1e-4)
    lgcn = LightGCN(toy(), LightGCNConfig(emb_dim=8))
    lgcn.load_encoder_state_dict(state, "pre/encoder.pt")
    assert torch.equal(lgcn.encoder.item_emb.detach(), state["encoder.item_emb"])
    big = LightGCN(toy(), LightGCNConfig(emb_dim=16))
    with pytest.raises(ConfigError, match=r"pre/encoder.pt: parameter 'encoder.user_emb' has "
                                          r"shape \(6, 8\), method 'lightgcn' needs \(6, 16\)"):
        big.load_encoder_state_dict(state, "pre/encoder.pt")


def test_bad_gptgnn_settings_are_clear_errors():
    with pytest.raises(ConfigError, match="emb_dim 10 must be a multiple of num_heads 4"):
        GPTGNN(toy(), dataclasses.replace(SMALL, emb_dim=10, num_heads=4))
    with pytest.raises(ConfigError, match="mask_ratio"):
        GPTGNN(toy(), dataclasses.replace(SMALL, mask_ratio=1.5))


def test_pretrained_and_finetuned_gptgnn_beats_popularity(tmp_path):
    raw = make_synthetic(SyntheticConfig(num_users=200, num_items=200, num_communities=4,
                                         mean_interactions=20, in_community=0.9,
                                         popularity_exponent=0.3, social=False), seed=3)
    data = build_dataset(raw, test_ratio=0.2, val_ratio=0.0, seed=3)
    pop = Trainer(MostPop(data, MethodConfig()), data, tmp_path / "pop", epochs=0,
                  generator=torch.Generator(), progress=False).fit()["test"]
    cfg = GPTGNNConfig(emb_dim=16, num_heads=2, num_layers=2, lr=1e-2, batch_size=512,
                       pretrain_batch_size=100)
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    m = GPTGNN(data, cfg, generator=gen)
    res = Trainer(m, data, tmp_path / "gpt", epochs=14, patience=0, scheme="pretrain_finetune",
                  pretrain_epochs=2, generator=gen, progress=False, log=lambda msg: None).fit()
    assert res["phases"]["pretrain"]["epochs"] == 2
    assert (tmp_path / "gpt" / "encoder.pt").is_file()
    # about 0.26 against 0.17
    assert res["test"]["recall@20"] > 1.3 * pop["recall@20"], (res["test"], pop)
