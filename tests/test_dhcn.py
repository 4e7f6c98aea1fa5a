"""S²-DHCN: channels against dense references, readout, loss terms, learning, CLI."""

from __future__ import annotations

import dataclasses
import json
import pickle

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from click.testing import CliRunner

from ssgraphrec.cli import main
from ssgraphrec.data.sessions import flatten_sessions, prefix_samples, session_data
from ssgraphrec.errors import ConfigError
from ssgraphrec.eval.next_item import evaluate_next_item
from ssgraphrec.losses import cross_channel_mim_loss
from ssgraphrec.methods import DHCN, METHODS, DHCNConfig, MostPop
from ssgraphrec.methods.base import MethodConfig
from ssgraphrec.methods.dhcn import resolve_dataset_defaults
from ssgraphrec.nn.dhcn import SoftAttentionReadout, reverse_padded

# Session samples (prefix -> next item) over 6 items; split 0/1/2 = train/val/test.
SESSIONS = [[0, 1, 2], [1, 3], [2, 2, 4], [4, 0], [3], [5, 1, 0, 2], [0, 4], [2, 3, 1]]
TARGETS = [3, 0, 5, 1, 2, 4, 1, 0]
SPLIT = [0, 0, 0, 0, 0, 0, 1, 2]
NUM_ITEMS = 6


@pytest.fixture
def tiny():
    return session_data(SESSIONS, NUM_ITEMS, targets=TARGETS, split=torch.tensor(SPLIT), name="tiny")


def make(data, seed=0, **params) -> DHCN:
    torch.manual_seed(seed)
    cfg = dataclasses.replace(DHCNConfig(), **{"emb_dim": 8, "num_layers": 2, **params})
    return DHCN(data, cfg, backend="torch", generator=torch.Generator().manual_seed(seed))


def layer_mean_dense(op: np.ndarray, x: np.ndarray, layers: int) -> np.ndarray:
    out, cur = x.copy(), x.copy()
    for _ in range(layers):
        cur = op @ cur
        out += cur
    return out / (layers + 1)


def test_paper_defaults_and_dataset_values():
    cfg = DHCNConfig()
    assert (cfg.emb_dim, cfg.num_layers, cfg.batch_size, cfg.lr, cfg.reg) == (100, 3, 100, 1e-3, 1e-5)
    tmall = resolve_dataset_defaults(cfg, "tmall")
    assert (tmall.ssl_weight, tmall.position_embedding) == (0.02, False)
    digi = resolve_dataset_defaults(cfg, "diginetica")
    assert (digi.ssl_weight, digi.position_embedding) == (0.01, True)
    other = resolve_dataset_defaults(cfg, "tiny")
    assert (other.ssl_weight, other.position_embedding) == (0.01, True)
    kept = resolve_dataset_defaults(dataclasses.replace(cfg, ssl_weight=0.5, position_embedding=True),
                                    "tmall")
    assert (kept.ssl_weight, kept.position_embedding) == (0.5, True)
    assert METHODS.get("dhcn") is DHCN


def test_bad_config_is_refused(tiny):
    with pytest.raises(ConfigError):
        make(tiny, ssl_weight=-1.0)
    with pytest.raises(ConfigError):
        make(tiny, num_layers=-1)


def test_loss_terms_shapes_and_gradients(tiny):
    model = make(tiny)
    batch = torch.tensor([0, 2, 5, 3])
    terms = model.loss(batch)
    assert set(terms) == {"ce", "reg", "ssl"}
    assert all(t.dim() == 0 and torch.isfinite(t) and t.item() > 0 for t in terms.values())
    sum(terms.values()).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    scores = model.score(torch.tensor([6, 7]), "test")
    assert scores.shape == (2, NUM_ITEMS)
    # the prediction is theta_h . X_h over every item
    ce = F.cross_entropy(model.score(batch, "val"), tiny["session"].target[batch])
    assert torch.allclose(ce, terms["ce"])


def test_hypergraph_channel_equals_dense_operator(tiny):
    model = make(tiny, num_layers=3)
    train = [s for s, k in zip(SESSIONS, SPLIT, strict=True) if k == 0]
    H = np.zeros((NUM_ITEMS, len(train)))
    for e, s in enumerate(train):
        H[s, e] = 1.0                       # repeats count once
    D, B = H.sum(1), H.sum(0)
    op = np.diag(np.where(D > 0, 1 / np.maximum(D, 1), 0)) @ H @ np.diag(1 / B) @ H.T
    x = model.encoder.item_emb.detach().double().numpy()
    want = layer_mean_dense(op, x, 3)
    got = model.item_embeddings().detach().double().numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert not np.allclose(op, op.T)                        # the backward needs the transpose
    up = torch.randn(NUM_ITEMS, x.shape[1], generator=torch.Generator().manual_seed(1))
    (model.item_embeddings() * up).sum().backward()
    grad_want = layer_mean_dense(op.T, up.double().numpy(), 3)
    np.testing.assert_allclose(model.encoder.item_emb.grad.double().numpy(), grad_want,
                               rtol=1e-5, atol=1e-6)


def test_line_graph_channel_equals_dense_computation(tiny):
    model = make(tiny, num_layers=2)
    batch = torch.tensor([5, 0, 2, 4, 1])
    got = model.line_graph_sessions(batch, model.inputs(batch)).detach().double().numpy()
    ego = model.encoder.item_emb.detach().double().numpy()
    sess = [SESSIONS[int(b)] for b in batch]
    theta = np.stack([ego[s].mean(0) for s in sess])       # mean over clicks, repeats included
    n = len(sess)
    A = np.eye(n)
    for p in range(n):
        for q in range(n):
            if p != q:
                a, b = set(sess[p]), set(sess[q])
                A[p, q] = len(a & b) / len(a | b)
    op = A / A.sum(1, keepdims=True)
    np.testing.assert_allclose(got, layer_mean_dense(op, theta, 2), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("position", [True, False])
def test_readout_matches_the_formula_and_ignores_padding(position):
    torch.manual_seed(0)
    d = 5
    readout = SoftAttentionReadout(d, max_positions=10, position=position)
    for p in readout.parameters():
        torch.nn.init.normal_(p)
    x = torch.randn(3, 4, d)
    lengths = [4, 2, 1]
    mask = torch.arange(4)[None, :] < torch.tensor(lengths)[:, None]
    x = x * mask.unsqueeze(-1)
    alpha = readout.weights(x, mask)
    assert alpha.shape == (3, 4)
    assert torch.all(alpha[~mask] == 0)
    theta = readout(x, mask)
    for r, m in enumerate(lengths):
        xs = x[r, :m]                                       # last click first
        s = xs.mean(0)
        if position:
            star = torch.tanh(readout.w_1(torch.cat([readout.pos_embedding.weight[:m], xs], -1)))
        else:
            star = torch.tanh(xs)
        a = (torch.sigmoid(readout.glu1(star) + readout.glu2(s)) @ readout.w_2).view(-1)
        torch.testing.assert_close(alpha[r, :m], a)
        torch.testing.assert_close(theta[r], (a[:, None] * xs).sum(0))
        # the same session alone, without padding columns, reads out the same
        torch.testing.assert_close(readout(xs[None], torch.ones(1, m, dtype=torch.bool))[0], theta[r])


def test_readout_sees_the_last_click_first(tiny):
    model = make(tiny)
    ids = model.inputs(torch.tensor([5, 1]))
    assert ids.tolist() == [[6, 2, 1, 3], [0, 0, 2, 4]]    # left-padded, +1
    assert reverse_padded(ids).tolist() == [[3, 1, 2, 6], [4, 2, 0, 0]]


def test_ssl_loss_is_the_authors_formula():
    torch.manual_seed(0)
    h, l, c = torch.randn(3, 7, 4).unbind(0)
    pos, neg = (h * l).sum(1), (c * l).sum(1)
    ref = torch.sum(-torch.log(1e-8 + torch.sigmoid(pos)) - torch.log(1e-8 + 1 - torch.sigmoid(neg)))
    torch.testing.assert_close(cross_channel_mim_loss(h, l, c), ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(cross_channel_mim_loss(h, l, c, reduction="mean"), ref / 7,
                               rtol=1e-5, atol=1e-5)


def test_ssl_weight_zero_is_plain_dhcn(tiny, monkeypatch):
    batch = torch.tensor([0, 1, 2, 3])
    plain = make(tiny, ssl_weight=0.0)
    monkeypatch.setattr(plain, "line_graph_sessions",
                        lambda *a: (_ for _ in ()).throw(AssertionError("line graph built")))
    terms = plain.loss(batch)
    assert terms["ssl"].item() == 0.0
    s2 = make(tiny, ssl_weight=0.5)
    terms2 = s2.loss(batch)
    assert terms2["ssl"].item() > 0
    torch.testing.assert_close(terms["ce"], terms2["ce"])     # same seed, same weights


def session_dataset(num_clusters=12, size=10, sessions=500, seed=0):
    """Sessions inside one item cluster each, following a fixed successor cycle (p = 0.9)."""
    rng = np.random.default_rng(seed)
    seqs = []
    for _ in range(sessions):
        c = rng.integers(num_clusters)
        cur = rng.integers(size)
        seq = [c * size + cur]
        for _ in range(rng.integers(2, 7)):
            cur = (cur + 1) % size if rng.random() < 0.9 else rng.integers(size)
            seq.append(c * size + cur)
        seqs.append(seq)
    ptr, items = flatten_sessions(seqs)
    sptr, sitems, targets = prefix_samples(ptr, items)
    owner = torch.repeat_interleave(torch.arange(sessions), (ptr.diff() - 1).clamp(min=0))
    split = torch.where(owner < int(0.8 * sessions), 0, 2)
    return session_data((sptr, sitems), num_clusters * size, targets=targets, split=split,
                        name="clusters")


def test_dhcn_learns_planted_sessions_and_beats_mostpop():
    data = session_dataset()
    model = make(data, emb_dim=32, ssl_weight=0.01)
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    gen = torch.Generator().manual_seed(0)
    for _ in range(4):
        model.train()
        for batch in model.train_batches(gen):
            loss = sum(model.loss(batch).values())
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    dhcn = evaluate_next_item(model.score, data, "test", model.num_items, [10])
    pop = MostPop(data, MethodConfig())
    base = evaluate_next_item(pop.score, data, "test", model.num_items, [10])
    # HR@10 about 1.0 (the cluster is found) against about 0.08 for popularity
    assert dhcn["hit@10"] > base["hit@10"] + 0.5, (dhcn, base)


def test_cli_trains_dhcn_on_session_pickles(tmp_path):
    folder = tmp_path / "sess"
    folder.mkdir()
    rng = np.random.default_rng(1)

    def samples(n):
        prefixes = [[int(i) for i in rng.integers(1, 30, rng.integers(1, 5))] for _ in range(n)]
        return prefixes, [int(i) for i in rng.integers(1, 30, n)]
    for name, n in (("train.txt", 300), ("test.txt", 60)):
        with open(folder / name, "wb") as fh:
            pickle.dump(samples(n), fh)
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["train", "--method", "dhcn", "--dataset", str(folder),
                                       "--epochs", "1", "--threads", "1", "--out", str(out),
                                       "--no-progress", "--set", "emb_dim=8", "--set", "num_layers=1"])
    assert result.exit_code == 0, result.output
    params = yaml.safe_load((out / "config.yaml").read_text())["params"]
    assert params["ssl_weight"] == 0.01 and params["position_embedding"] is True   # resolved
    res = json.loads((out / "results.json").read_text())
    assert 0.0 <= res["test"]["hit@20"] <= 1.0


def test_parameter_l2_is_half_the_squared_norm_of_every_parameter():
    from ssgraphrec.losses import parameter_l2

    # 0.5 * (1 + 4 + 9 + 16) = 15 for the parameters [1, 2] and [[3], [4]]
    params = [torch.tensor([1.0, 2.0]), torch.tensor([[3.0], [4.0]])]
    assert float(parameter_l2(params)) == pytest.approx(15.0)
