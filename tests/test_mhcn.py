"""MHCN: encoder, hierarchical mutual-information loss, method contract, learning."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from ssgraphrec.data import FOLLOWS, INTERACTS, SyntheticConfig, build_dataset, make_synthetic
from ssgraphrec.errors import ConfigError
from ssgraphrec.losses import hierarchical_mim_loss
from ssgraphrec.methods import METHODS, MHCN, MHCNConfig
from ssgraphrec.methods.base import BPRBatch
from ssgraphrec.nn import ChannelAttention, SelfGating
from ssgraphrec.train import Trainer

SOCIAL = SyntheticConfig(num_users=600, num_items=400, num_communities=6, mean_interactions=25,
                         social=True)


@pytest.fixture(autouse=True)
def one_thread():
    """Two OpenMP threads on a busy two-core machine spin far more than they compute;
    these small models run much faster (and as fast on an idle machine) on one."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def social_data():
    return build_dataset(make_synthetic(SOCIAL, seed=1), split="random", test_ratio=0.2,
                         val_ratio=0.1, seed=1)


def batch_of(data, n=64) -> BPRBatch:
    ei = data[INTERACTS].edge_index[:, :n]
    return BPRBatch(ei[0], ei[1], (ei[1] + 7) % data["item"].num_nodes)


def make(data, seed=0, **params) -> MHCN:
    torch.manual_seed(seed)
    cfg = dataclasses.replace(MHCNConfig(), **params)
    return MHCN(data, cfg, backend="torch", generator=torch.Generator().manual_seed(seed))


def test_paper_defaults():
    cfg = MHCNConfig()
    assert (cfg.emb_dim, cfg.num_layers, cfg.ssl_weight, cfg.lr, cfg.batch_size, cfg.reg,
            cfg.purchase_min_common) == (50, 2, 0.01, 1e-3, 2000, 1e-3, 2)


def test_loss_has_named_terms_and_gradients_reach_every_part(social_data):
    model = make(social_data)
    terms = model.loss(batch_of(social_data))
    assert set(terms) == {"bpr", "reg", "ssl"}
    assert all(torch.isfinite(v) and v.item() > 0 for v in terms.values())
    sum(terms.values()).backward()
    enc = model.encoder
    for name, p in [("user_emb", enc.user_emb), ("item_emb", enc.item_emb),
                    *model.named_parameters()]:
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name
    users, items = model.embeddings()
    assert users.shape == (social_data["user"].num_nodes, 50)
    assert items.shape == (social_data["item"].num_nodes, 50)


def test_ssl_term_only_reaches_the_model_through_ssl_weight(social_data):
    batch = batch_of(social_data)
    model = make(social_data, ssl_weight=0.0)
    state = model.generator.get_state()
    plain = model.loss(batch)
    # No self-supervision: the term is an exact zero, outside the graph, and no
    # corruption was drawn.
    assert plain["ssl"].item() == 0.0 and not plain["ssl"].requires_grad
    assert torch.equal(model.generator.get_state(), state)
    sum(plain.values()).backward()
    grad_plain = model.encoder.user_emb.grad.clone()
    # The same parameters with beta > 0: same BPR and reg, plus a positive ssl term that
    # changes the gradient and is linear in beta.
    ssl = make(social_data, ssl_weight=0.01)
    ssl.load_state_dict(model.state_dict())
    terms = ssl.loss(batch)
    assert torch.allclose(terms["bpr"], plain["bpr"]) and torch.allclose(terms["reg"], plain["reg"])
    assert terms["ssl"].item() > 0
    sum(terms.values()).backward()
    assert not torch.allclose(ssl.encoder.user_emb.grad, grad_plain)
    double = make(social_data, ssl_weight=0.02)
    double.load_state_dict(model.state_dict())
    assert torch.allclose(double.loss(batch)["ssl"], 2 * terms["ssl"], rtol=1e-5)


def test_mhcn_needs_social_links():
    no_social = build_dataset(make_synthetic(dataclasses.replace(SOCIAL, social=False), seed=1),
                              test_ratio=0.2, val_ratio=0.0)
    with pytest.raises(ConfigError, match=r"MHCN needs social links \('user', 'follows', 'user'\)"):
        MHCN(no_social, MHCNConfig())
    no_social[FOLLOWS].edge_index = torch.zeros(2, 0, dtype=torch.long)
    with pytest.raises(ConfigError, match="empty"):
        MHCN(no_social, MHCNConfig())


def test_mhcn_rejects_bad_settings(social_data):
    for bad in ({"ssl_weight": -1.0}, {"num_layers": -1}, {"purchase_min_common": 0}):
        with pytest.raises(ConfigError):
            make(social_data, **bad)


def test_mhcn_beats_popularity_on_planted_communities(social_data, tmp_path):
    def fit(name, epochs, **params):
        cls = METHODS.get(name)
        cfg = dataclasses.replace(cls.config_class(), **params)
        torch.manual_seed(0)
        gen = torch.Generator().manual_seed(0)
        method = cls(social_data, cfg, backend="torch", generator=gen)
        return Trainer(method, social_data, tmp_path / name, epochs=epochs, patience=0,
                       generator=gen, progress=False, log=lambda msg: None).fit()["test"]

    pop = fit("mostpop", 0)
    res = fit("mhcn", 4, lr=5e-3, batch_size=1024)
    assert res["recall@20"] > 1.5 * pop["recall@20"], (res["recall@20"], pop["recall@20"])
    assert res["ndcg@20"] > 1.5 * pop["ndcg@20"]


# -- building blocks ------------------------------------------------------------------


def test_self_gating_and_channel_attention():
    torch.manual_seed(0)
    x = torch.randn(5, 4)
    gate = SelfGating(4)
    assert torch.allclose(gate(x), x * torch.sigmoid(gate.linear(x)))
    att = ChannelAttention(4)
    channels = [torch.randn(5, 4) for _ in range(3)]
    mixed = att(channels)
    scores = torch.stack([(c @ att.weight * att.query).sum(-1) for c in channels], 1)
    alpha = torch.softmax(scores, 1)
    assert torch.allclose(mixed, sum(alpha[:, k:k + 1] * channels[k] for k in range(3)))
    # identical channels: the mix is that channel, whatever the attention says
    assert torch.allclose(att([channels[0]] * 3), channels[0], atol=1e-6)


def test_hierarchical_mim_loss_formula():
    torch.manual_seed(0)
    p, z, pc, zc, zg = (torch.randn(6, 3) for _ in range(5))

    def nls(x):  # -log sigmoid
        return -torch.log(torch.sigmoid(x))

    h = z.mean(0)
    local = nls((p * z).sum(1) - (pc * z).sum(1)) + nls((pc * z).sum(1) - (zc * p).sum(1))
    glob = nls((z * h).sum(1) - (zg * h).sum(1))
    expected = (local + glob).sum()
    assert torch.allclose(hierarchical_mim_loss(p, z, pc, zc, zg), expected, atol=1e-5)
    assert torch.allclose(hierarchical_mim_loss(p, z, pc, zc, zg, reduction="mean"), expected / 6,
                          atol=1e-6)
    # agreeing pairs cost less than random ones
    aligned = F.normalize(torch.randn(6, 3), dim=1) * 3
    low = hierarchical_mim_loss(aligned, aligned, aligned.roll(1, 0), -aligned, -aligned)
    assert low < expected
    with pytest.raises(ValueError):
        hierarchical_mim_loss(p, z, pc, zc, reduction="max")
