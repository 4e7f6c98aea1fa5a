"""Methods learn planted structure: LightGCN and SGL beat popularity ranking."""

import dataclasses

import pytest
import torch

from ssgraphrec.data import INTERACTS, SyntheticConfig, build_dataset, make_synthetic
from ssgraphrec.errors import ConfigError
from ssgraphrec.methods import METHODS, SGL, SGLConfig
from ssgraphrec.methods.base import BPRBatch
from ssgraphrec.train import Trainer

SMALL = SyntheticConfig(num_users=600, num_items=400, num_communities=6, mean_interactions=25,
                        social=False)


@pytest.fixture(scope="module")
def small_data():
    return build_dataset(make_synthetic(SMALL, seed=1), split="random", test_ratio=0.2,
                         val_ratio=0.1, seed=1)


def fit(name, data, tmp_path, epochs, **params):
    cls = METHODS.get(name)
    cfg = dataclasses.replace(cls.config_class(), **params)
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    method = cls(data, cfg, backend="torch", generator=gen)
    trainer = Trainer(method, data, tmp_path, epochs=epochs, patience=0, generator=gen,
                      progress=False, log=lambda msg: None)
    return trainer.fit()


@pytest.mark.parametrize("name,params", [
    ("lightgcn", {"lr": 5e-3, "batch_size": 256}),
    ("sgl", {"lr": 5e-3, "batch_size": 256}),
])
def test_graph_methods_beat_popularity_on_planted_communities(small_data, tmp_path, name, params):
    pop = fit("mostpop", small_data, tmp_path / "pop", 0)["test"]
    res = fit(name, small_data, tmp_path / name, 15, **params)["test"]
    assert res["recall@20"] > 1.5 * pop["recall@20"], (res["recall@20"], pop["recall@20"])
    assert res["ndcg@20"] > 1.5 * pop["ndcg@20"]


def test_sgl_loss_has_named_terms_and_views_change_per_epoch(small_data):
    gen = torch.Generator().manual_seed(0)
    sgl = SGL(small_data, SGLConfig(emb_dim=16, num_layers=2), backend="torch", generator=gen)
    sgl.on_epoch_start(0)
    first = [a.value.clone() for a in sgl.view_adjs]
    ei = small_data[INTERACTS].edge_index[:, :64]
    batch = BPRBatch(ei[0], ei[1], torch.zeros_like(ei[1]))
    terms = sgl.loss(batch)
    assert set(terms) == {"bpr", "reg", "ssl"}
    sum(terms.values()).backward()
    assert sgl.encoder.user_emb.grad is not None
    sgl.on_epoch_start(1)
    assert not torch.equal(first[0], sgl.view_adjs[0].value)
    # two views of the same epoch differ from each other and from the full graph
    assert sgl.view_adjs[0].nnz < sgl.adj.nnz


def test_sgl_with_zero_ssl_weight_equals_lightgcn_loss(small_data):
    ei = small_data[INTERACTS].edge_index[:, :32]
    batch = BPRBatch(ei[0], ei[1], (ei[1] + 1) % 400)
    torch.manual_seed(3)
    sgl = SGL(small_data, SGLConfig(ssl_weight=0.0), backend="torch",
              generator=torch.Generator().manual_seed(0))
    lgn = METHODS.get("lightgcn")(small_data, METHODS.get("lightgcn").config_class(),
                                  backend="torch")
    lgn.load_state_dict(sgl.state_dict(), strict=False)
    a, b = sgl.loss(batch), lgn.loss(batch)
    assert torch.allclose(a["bpr"], b["bpr"]) and a["ssl"].item() == 0.0


def test_sgl_random_walk_uses_one_graph_per_layer(small_data):
    sgl = SGL(small_data, SGLConfig(aug="random_walk", num_layers=3), backend="torch",
              generator=torch.Generator().manual_seed(0))
    sgl.on_epoch_start(0)
    assert all(isinstance(v, list) and len(v) == 3 for v in sgl.view_adjs)


def test_sgl_rejects_bad_settings(small_data):
    with pytest.raises(ConfigError):
        SGL(small_data, SGLConfig(drop_ratio=1.0))
    with pytest.raises(ConfigError):
        SGL(small_data, SGLConfig(temperature=0.0))


def test_paper_defaults_are_the_published_ones():
    cfg = SGLConfig()
    assert (cfg.num_layers, cfg.temperature, cfg.drop_ratio, cfg.ssl_weight, cfg.reg,
            cfg.emb_dim, cfg.lr, cfg.batch_size) == (3, 0.2, 0.1, 0.1, 1e-4, 64, 1e-3, 2048)


def test_init_std_switches_xavier_for_a_normal_initialisation(small_data):
    from ssgraphrec.methods import LightGCN, LightGCNConfig
    torch.manual_seed(0)
    xavier = LightGCN(small_data, LightGCNConfig()).encoder.item_emb
    bound = (6.0 / sum(xavier.shape)) ** 0.5  # xavier_uniform_ on [items, dim]
    assert float(xavier.abs().max()) <= bound and float(xavier.abs().max()) > 0.9 * bound
    normal = LightGCN(small_data, LightGCNConfig(init_std=0.1)).encoder.item_emb
    assert abs(float(normal.std()) - 0.1) < 0.01 and float(normal.abs().max()) > bound
    with pytest.raises(ConfigError, match="init_std"):
        LightGCN(small_data, LightGCNConfig(init_std=-1.0))


def test_trainer_takes_the_fused_adam_with_the_update_of_the_unfused_one(small_data, tmp_path):
    """The trainer's Adam runs PyTorch's fused kernel on dense CPU parameters; its update
    is Adam's (Kingma and Ba, Algorithm 1), equal to the unfused kernel's to rounding, and
    far from a wrong update (plain SGD at the same rate)."""
    from ssgraphrec.train.trainer import adam

    method = METHODS.get("lightgcn")(small_data, METHODS.get("lightgcn").config_class(),
                                     generator=torch.Generator().manual_seed(0))
    trainer = Trainer(method, small_data, tmp_path, epochs=1, progress=False,
                      generator=torch.Generator().manual_seed(0), log=lambda msg: None)
    assert trainer.optimizer.defaults["fused"] is True
    g = torch.Generator().manual_seed(3)
    start = torch.randn(50, 8, generator=g)
    grads = [torch.randn(50, 8, generator=g) for _ in range(5)]

    def trained(make):
        p = torch.nn.Parameter(start.clone())
        opt = make([p])
        for grad in grads:
            p.grad = grad.clone()
            opt.step()
        return p.detach()

    fused = trained(lambda ps: adam(ps, 0.1))
    unfused = trained(lambda ps: torch.optim.Adam(ps, lr=0.1, foreach=False))
    sgd = trained(lambda ps: torch.optim.SGD(ps, lr=0.1))
    assert torch.allclose(fused, unfused, rtol=0, atol=1e-6)
    assert not torch.allclose(fused, sgd, rtol=0, atol=1e-2)
    assert not torch.equal(fused, start)
