"""Graph contrastive methods SimGCL, XSimGCL and NCL, and the pieces they share.

The building blocks are checked exactly: the uniform noise and the shuffles
(``nn/perturb.py``), the perturbed propagation of ``LightGCNEncoder``, k-means
(``nn/kmeans.py``), the prototype InfoNCE, graph diffusion and the adjacency
of views that add edges. The losses of the three methods are compared with
direct transcriptions of the papers' formulas (as the authors' code computes
them), and each method has to beat popularity ranking on planted communities.
"""

import dataclasses
import importlib
import math

import pytest
import torch
import torch.nn.functional as F
import torch_geometric.transforms as T
from click.testing import CliRunner
from dense_reference import normalized_adjacency_reference

import ssgraphrec.nn.lightgcn as lightgcn_module
import ssgraphrec.sparse.kernels as sparse_kernels

# the layer-by-layer propagation the methods ran before propagate_mean (the reference)
from ssgraphrec.bench.studies.layer_mean import layer_by_layer_propagate_mean
from ssgraphrec.cli import main
from ssgraphrec.data import INTERACTS, SyntheticConfig, build_dataset, interaction_data, make_synthetic
from ssgraphrec.errors import ConfigError
from ssgraphrec.losses import bpr_loss, info_nce, proto_nce
from ssgraphrec.losses.proto_nce import unique_rows
from ssgraphrec.methods import (
    METHODS,
    NCL,
    SGL,
    LightGCN,
    LightGCNConfig,
    NCLConfig,
    SGLConfig,
    SimGCL,
    SimGCLConfig,
    XSimGCL,
    XSimGCLConfig,
)
from ssgraphrec.methods.base import BPRBatch
from ssgraphrec.nn import (
    LightGCNEncoder,
    UniformNoise,
    kmeans,
    row_column_shuffle,
    row_shuffle,
    uniform_draw,
    uniform_noise,
)
from ssgraphrec.nn.kmeans import has_faiss
from ssgraphrec.sparse import (
    Adjacency,
    BipartiteGraph,
    bipartite_adjacency,
    view_adjacency,
)
from ssgraphrec.sparse.exactness import rows_path_exact
from ssgraphrec.sparse.kernels import RowRestriction
from ssgraphrec.train import Trainer
from ssgraphrec.transforms import AUGMENTATIONS, EdgeDrop, GraphDiffusion, RandomWalk, make_augmentation
from ssgraphrec.transforms.graph_diffusion import with_embeddings

# the module, not the function of the same name that ssgraphrec.losses exports
proto_nce_module = importlib.import_module("ssgraphrec.losses.proto_nce")
simgcl_module = importlib.import_module("ssgraphrec.methods.simgcl")
SMALL = SyntheticConfig(num_users=600, num_items=400, num_communities=6, mean_interactions=25,
                        social=False)

#: The embedding size of the tests of the rows path: 16 where the machine's CSR kernel
#: keeps its sums' bits when terms are dropped (the condition of the path), else 18 (the
#: kernel of one Intel machine for 4 to 24 columns in steps of 4 does not keep them).
ROWS_DIM = next(d for d in (16, 18, 17) if rows_path_exact(d))


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def small_data():
    return build_dataset(make_synthetic(SMALL, seed=1), split="random", test_ratio=0.2,
                         val_ratio=0.1, seed=1)


@pytest.fixture(scope="module")
def batch(small_data):
    ei = small_data[INTERACTS].edge_index
    perm = torch.randperm(ei.size(1), generator=gen(5))[:128]
    return BPRBatch(ei[0, perm], ei[1, perm], torch.randint(0, 400, (128,), generator=gen(6)))


def toy_graph(num_users=7, num_items=12, per_user=4, seed=0):
    """A small graph with unique edges in (user, item) order, and its data."""
    g = gen(seed)
    items = torch.stack([torch.randperm(num_items, generator=g)[:per_user] for _ in range(num_users)])
    ei = torch.stack([torch.arange(num_users).repeat_interleave(per_user), items.reshape(-1)])
    graph = BipartiteGraph(ei, num_users, num_items)
    return graph, interaction_data(num_users, num_items, graph.edge_index())


# -- perturbations ----------------------------------------------------------

def test_uniform_noise_has_norm_eps_the_embeddings_signs_and_the_generators_draws():
    x = torch.randn(40, 16, generator=gen(0))
    x[3] = 0.0                   # an isolated node: no noise
    x[5, :4] = 0.0               # some zero entries: still norm eps (SimGCL Eq. 7)
    d = uniform_noise(x, 0.1, gen(1))
    rows = torch.arange(40) != 3
    assert torch.allclose(d[rows].norm(dim=1), torch.full((39,), 0.1), atol=1e-6)
    assert torch.equal(d[3], torch.zeros(16)) and torch.equal(d[5, :4], torch.zeros(4))
    assert torch.all(d * x >= 0)                                       # same hyperoctant
    assert torch.equal(torch.sign(d), torch.sign(x))                   # U(0,1) > 0 a.s.
    # |Delta| is the generator's U(0,1) draw, normalised: Delta = eps * normalize(u * sign(e))
    u = uniform_draw(tuple(x.shape), generator=gen(1))
    assert torch.allclose(d[rows].abs(), 0.1 * F.normalize(u * x.sign().abs(), dim=-1)[rows])
    assert torch.equal(d, uniform_noise(x, 0.1, gen(1)))
    assert not torch.equal(d, uniform_noise(x, 0.1, gen(2)))
    assert torch.equal(UniformNoise(0.1, gen(1))(x), x + d)
    assert torch.equal(uniform_noise(x, 0.0, gen(1)), torch.zeros_like(x))


def test_uniform_draw_splits_each_random_word_into_four_16_bit_levels():
    words = torch.randint(-2**63, 2**63 - 1, (2,), generator=gen(3), dtype=torch.int64)
    levels = words.view(torch.int16)[:7].double() + 32768   # 0..65535
    u = uniform_draw((7,), torch.float64, generator=gen(3))
    assert torch.equal(u, (levels + 0.5) / 2**16)           # bin centres, never 0 or 1
    assert torch.equal(uniform_draw((7,), torch.float64, generator=gen(3)), u)
    assert not torch.equal(uniform_draw((7,), torch.float64, generator=gen(4)), u)
    big = uniform_draw((1000, 64), generator=gen(5))
    assert big.shape == (1000, 64) and big.dtype == torch.float32
    assert 0 < big.min() and big.max() < 1
    assert abs(big.mean() - 0.5) < 0.005 and abs(big.var() - 1 / 12) < 0.002
    counts = torch.histc(big, bins=16, min=0, max=1)        # 4,000 expected per bin
    assert counts.min() > 3700 and counts.max() < 4300


def test_noise_without_autograd_gives_the_values_and_gradients_of_the_autograd_formula():
    x0 = torch.randn(30, 8, generator=gen(4))
    x0[3, :2] = 0.0
    draw = torch.rand(30, 8, generator=gen(5))
    x = x0.clone().requires_grad_(True)
    ref = x0.clone().requires_grad_(True)
    out = UniformNoise(0.3).with_draw(x, draw)
    expected = ref + F.normalize(draw * torch.sign(ref), dim=-1) * 0.3
    assert torch.allclose(out, expected, atol=1e-7)
    weights = torch.randn(30, 8, generator=gen(6))
    (out.pow(2) * weights).sum().backward()
    (expected.pow(2) * weights).sum().backward()
    assert torch.allclose(x.grad, ref.grad, atol=1e-6)


@pytest.mark.parametrize("eps", [-0.1, float("nan")])
def test_negative_noise_is_a_config_error(eps):
    with pytest.raises(ConfigError):
        uniform_noise(torch.ones(2, 2), eps)
    with pytest.raises(ConfigError):
        UniformNoise(eps)


def test_row_shuffle_and_row_column_shuffle_permute_and_are_seeded():
    x = torch.arange(60.0).view(12, 5)   # row r holds 5r..5r+4
    r = row_shuffle(x, gen(0))
    assert sorted(map(tuple, r.tolist())) == sorted(map(tuple, x.tolist()))
    assert not torch.equal(r, x) and torch.equal(r, row_shuffle(x, gen(0)))
    rc = row_column_shuffle(x, gen(0))
    rows = (rc[:, 0] // 5).long()               # which row of x each row came from
    cols = (rc[0] % 5).long()                   # one column permutation shared by all rows
    assert sorted(rows.tolist()) == list(range(12)) and sorted(cols.tolist()) == list(range(5))
    assert torch.equal(rc, x[rows][:, cols])
    assert not torch.equal(cols, torch.arange(5)) and not torch.equal(rows, torch.arange(12))
    assert torch.equal(rc, row_column_shuffle(x, gen(0)))


def test_encoder_perturbs_propagated_layers_only_and_keeps_its_default():
    graph, _ = toy_graph()
    adj = graph.normalized_adjacency()
    torch.manual_seed(0)
    enc = LightGCNEncoder(7, 12, emb_dim=8, num_layers=2)
    with torch.no_grad():
        plain = enc.layers(adj)
        u, i = enc(adj)
        assert torch.allclose(torch.cat([u, i]), torch.stack(plain).mean(0))
        u1, i1 = enc.readout(plain, skip_ego=True)
        assert torch.allclose(torch.cat([u1, i1]), torch.stack(plain[1:]).mean(0))
        noisy = enc.layers(adj, perturb=UniformNoise(0.1, gen(0)))
        assert torch.equal(noisy[0], plain[0])
        for k in (1, 2):   # E'(k) = A E'(k-1) + Delta, |Delta| = eps (0 on isolated nodes)
            clean = adj.matmul(noisy[k - 1])
            expected = torch.where(clean.abs().sum(1) > 0, 0.1, 0.0)
            assert torch.allclose((noisy[k] - clean).norm(dim=1), expected, atol=1e-5)
        assert len(enc.layers(adj, num_layers=4)) == 5


def test_batch_index_and_distinct_at_place_a_batch_in_its_sorted_rows():
    """7 users, items after them (node 7 + item): rows sorted and distinct, positions
    that read each id back, and the distinct users and items by hand."""
    enc = LightGCNEncoder(7, 12, emb_dim=4, num_layers=1)
    users, pos, neg = torch.tensor([3, 1, 3, 6]), torch.tensor([2, 2, 11, 0]), \
        torch.tensor([5, 0, 9, 2])
    rows, (at_users, at_pos, at_neg) = enc.batch_index(users, pos, neg)
    assert rows.tolist() == [1, 3, 6, 7, 9, 12, 16, 18]
    assert torch.equal(rows[at_users], users) and torch.equal(rows[at_pos] - 7, pos)
    assert torch.equal(rows[at_neg] - 7, neg)
    users_at, distinct_users, items_at, distinct_items = enc.distinct_at(rows, at_users, at_pos)
    assert distinct_users.tolist() == [1, 3, 6] and distinct_items.tolist() == [0, 2, 11]
    assert users_at.tolist() == [0, 1, 2] and items_at.tolist() == [3, 4, 7]


# -- SimGCL and XSimGCL -----------------------------------------------------

def test_xsimgcl_propagates_once_per_batch_and_simgcl_as_its_streams_say(small_data, batch,
                                                                           monkeypatch):
    """The sparse products of one training step, forward and backward: (columns,
    transposed) of each call of the adjacency's kernel."""
    calls = []
    matmul, matmul_add = Adjacency.matmul, Adjacency.matmul_add

    def counted(self, x, transpose=False):
        calls.append((x.size(1), transpose))
        return matmul(self, x, transpose)

    def counted_add(self, x, add, transpose=False, in_place=False):
        calls.append((x.size(1), transpose))
        return matmul_add(self, x, add, transpose, in_place)

    def counted_rows(self, x, transpose=False):
        calls.append(("rows", x.size(1), transpose))
        return restricted_matmul(self, x, transpose)

    restricted_matmul = RowRestriction.matmul
    monkeypatch.setattr(Adjacency, "matmul", counted)
    monkeypatch.setattr(Adjacency, "matmul_add", counted_add)
    monkeypatch.setattr(RowRestriction, "matmul", counted_rows)
    monkeypatch.setattr(RowRestriction, "matmul_add",
                        lambda self, x, add, transpose=False, in_place=False:
                        add + counted_rows(self, x, transpose))
    monkeypatch.setattr(sparse_kernels, "ROWS_SHARE_LIMIT", 0.0)   # whole products first
    monkeypatch.setattr(sparse_kernels, "ROWS_MIN_NNZ", 0)

    def step(method) -> list[tuple[int, bool]]:
        calls.clear()
        sum(method.loss(batch).values()).backward()
        return sorted(calls, key=str)

    # the adjacency is symmetric, so a backward product is the same kernel (transpose=True)
    forward, backward = (ROWS_DIM, False), (ROWS_DIM, True)
    x = XSimGCL(small_data, XSimGCLConfig(emb_dim=ROWS_DIM), backend="torch", generator=gen())
    assert step(x) == [forward] * 3 + [backward] * 3
    # with the batch's rows: the last product at those rows, and the first backward one
    monkeypatch.setattr(sparse_kernels, "ROWS_SHARE_LIMIT", 1.0)
    assert step(x) == sorted([forward] * 2 + [backward] * 2
                             + [("rows", ROWS_DIM, False), ("rows", ROWS_DIM, True)], key=str)
    monkeypatch.setattr(sparse_kernels, "ROWS_SHARE_LIMIT", 0.0)
    # the default: one clean encoder with gradients, K - 1 offset products per noised view
    s = SimGCL(small_data, SimGCLConfig(emb_dim=ROWS_DIM), backend="torch", generator=gen())
    assert s.cfg.num_layers == 3
    assert step(s) == [forward] * (3 + 2 * 2) + [backward] * 3
    # with the batch's rows: the last product of the clean encoder and of each view's
    # offsets at those rows, and the first backward one
    monkeypatch.setattr(sparse_kernels, "ROWS_SHARE_LIMIT", 1.0)
    assert step(s) == sorted([forward] * (2 + 2) + [backward] * 2
                             + [("rows", ROWS_DIM, False)] * 3 + [("rows", ROWS_DIM, True)], key=str)
    monkeypatch.setattr(sparse_kernels, "ROWS_SHARE_LIMIT", 0.0)
    s = SimGCL(small_data, SimGCLConfig(emb_dim=ROWS_DIM, streams="separate"), backend="torch",
               generator=gen())
    assert step(s) == [forward] * 9 + [backward] * 9   # three encoders with gradients
    s = SimGCL(small_data, SimGCLConfig(emb_dim=ROWS_DIM, streams="fused"), backend="torch",
               generator=gen())
    assert step(s) == [(3 * ROWS_DIM, False)] * 3 + [(3 * ROWS_DIM, True)] * 3   # side by side


@pytest.mark.parametrize("threads", [1, 2])
def test_the_bpr_losss_gathers_give_the_bits_of_advanced_indexing(small_data, batch, threads):
    """``LightGCN.rec_loss`` gathers with ``index_select`` (a faster backward pass): its
    terms and every gradient equal those of ``x[idx]`` gathers to the bit, under the
    run's deterministic kernels, on one thread and on two."""
    from ssgraphrec.losses import l2_regularization
    from ssgraphrec.train.seed import deterministic_cpu_kernels

    def indexed(method, batch, users, items):
        u, i, j = batch
        enc = method.encoder
        return {"bpr": bpr_loss(users[u], items[i], items[j]),
                "reg": method.cfg.reg * l2_regularization(enc.user_emb[u], enc.item_emb[i],
                                                          enc.item_emb[j])}

    def step(loss_of):
        torch.manual_seed(7)
        method = LightGCN(small_data, LightGCNConfig(emb_dim=64, reg=0.1), backend="torch",
                          generator=gen(3))
        users, items = method.encoder(method.adj)
        terms = loss_of(method, batch, users, items)
        sum(terms.values()).backward()
        return ({k: float(v) for k, v in terms.items()},
                {k: p.grad.clone() for k, p in method.named_parameters()})

    deterministic_cpu_kernels()
    saved = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        terms, grads = step(lambda m, *a: m.rec_loss(*a))
        ref_terms, ref_grads = step(indexed)
    finally:
        torch.set_num_threads(saved)
    assert terms == ref_terms and grads.keys() == ref_grads.keys()
    assert all(torch.equal(g, ref_grads[k]) for k, g in grads.items())
    assert bool(torch.unique(batch[1]).numel() < batch[1].numel())   # items repeat: sums


@pytest.mark.parametrize("name", ["xsimgcl", "ncl", "ncl, neighbour layer inside the mean",
                                  "simgcl", "sgl", "lightgcn"])
def test_methods_on_propagate_mean_equal_the_layer_by_layer_path(small_data, batch, monkeypatch,
                                                                 name):
    """Loss terms and every gradient of one step equal those of the layer-by-layer
    encoders (the same noise draws: the generator is consumed in the same order)."""
    make = {
        "xsimgcl": lambda: XSimGCL(small_data, XSimGCLConfig(emb_dim=16, layer_cl=2),
                                   backend="torch", generator=gen(3)),
        "ncl": lambda: NCL(small_data, NCLConfig(emb_dim=16, num_layers=1, hyper_layers=1,
                                                 num_clusters=5, warm_up_epochs=0),
                           backend="torch", generator=gen(3)),
        "ncl, neighbour layer inside the mean": lambda: NCL(
            small_data, NCLConfig(emb_dim=16, num_layers=3, hyper_layers=1, num_clusters=5),
            backend="torch", generator=gen(3)),
        "simgcl": lambda: SimGCL(small_data, SimGCLConfig(emb_dim=16), backend="torch",
                                 generator=gen(3)),
        "sgl": lambda: SGL(small_data, SGLConfig(emb_dim=16), backend="torch", generator=gen(3)),
        "lightgcn": lambda: LightGCN(small_data, LightGCNConfig(emb_dim=16), backend="torch",
                                     generator=gen(3)),
    }[name]

    def step(reference: bool):
        torch.manual_seed(7)                        # the same initial embeddings
        method = make()
        if reference:
            monkeypatch.setattr(lightgcn_module, "propagate_mean", layer_by_layer_propagate_mean)
        if hasattr(method, "on_epoch_start"):
            method.on_epoch_start(0)
        terms = method.loss(batch)
        sum(terms.values()).backward()
        monkeypatch.undo()
        return ({k: float(v.detach()) for k, v in terms.items()},
                {k: p.grad.clone() for k, p in method.named_parameters() if p.grad is not None})

    terms, grads = step(reference=False)
    ref_terms, ref_grads = step(reference=True)
    assert terms.keys() == ref_terms.keys() and grads.keys() == ref_grads.keys() and grads
    for k, v in terms.items():
        assert v == pytest.approx(ref_terms[k], rel=1e-5, abs=1e-7), k
    for k, g in grads.items():
        assert torch.allclose(g, ref_grads[k], rtol=1e-4, atol=1e-6), k
    assert any(float(g.abs().max()) > 0 for g in grads.values())


@pytest.mark.parametrize("name", ["lightgcn", "sgl", "xsimgcl", "xsimgcl, last layer contrasted",
                                  "simgcl", "simgcl, one layer", "simgcl, two layers and the ego"])
def test_methods_at_the_batch_rows_equal_the_whole_propagation_to_the_bit(small_data, batch,
                                                                          monkeypatch, name):
    """The last product at the batch's rows only (``propagate_mean(rows=)``) gives every
    loss term and gradient of one step to the bit, the noise included (XSimGCL draws the
    whole last layer's numbers, so its generator moves on as before)."""
    make = {
        "lightgcn": lambda: LightGCN(small_data, LightGCNConfig(emb_dim=ROWS_DIM), backend="torch",
                                     generator=gen(3)),
        "sgl": lambda: SGL(small_data, SGLConfig(emb_dim=ROWS_DIM), backend="torch", generator=gen(3)),
        "xsimgcl": lambda: XSimGCL(small_data, XSimGCLConfig(emb_dim=ROWS_DIM), backend="torch",
                                   generator=gen(3)),
        "xsimgcl, last layer contrasted": lambda: XSimGCL(
            small_data, XSimGCLConfig(emb_dim=ROWS_DIM, layer_cl=3, num_layers=3), backend="torch",
            generator=gen(3)),
        "simgcl": lambda: SimGCL(small_data, SimGCLConfig(emb_dim=ROWS_DIM), backend="torch",
                                 generator=gen(3)),
        "simgcl, one layer": lambda: SimGCL(small_data, SimGCLConfig(emb_dim=ROWS_DIM, num_layers=1),
                                            backend="torch", generator=gen(3)),
        "simgcl, two layers and the ego": lambda: SimGCL(
            small_data, SimGCLConfig(emb_dim=ROWS_DIM, num_layers=2, skip_ego=False), backend="torch",
            generator=gen(3)),
    }[name]
    restricted = []
    for attr in ("matmul_blocks", "matmul", "matmul_add"):
        original = getattr(RowRestriction, attr)
        monkeypatch.setattr(RowRestriction, attr, lambda self, *a, _f=original, **k:
                            restricted.append(1) or _f(self, *a, **k))

    def step(limit: float):
        monkeypatch.setattr(sparse_kernels, "ROWS_SHARE_LIMIT", limit)
        monkeypatch.setattr(sparse_kernels, "ROWS_MIN_NNZ", 0)
        torch.manual_seed(7)
        method = make()
        if hasattr(method, "on_epoch_start"):
            method.on_epoch_start(0)
        terms = method.loss(batch)
        sum(terms.values()).backward()
        after = float(torch.rand(1, generator=method.generator))   # where the generator stands
        return ({k: float(v.detach()) for k, v in terms.items()},
                {k: p.grad.clone() for k, p in method.named_parameters() if p.grad is not None},
                after)

    terms, grads, after = step(1.0)
    assert restricted                                   # the rows path ran
    restricted.clear()
    ref_terms, ref_grads, ref_after = step(0.0)
    assert not restricted
    assert terms == ref_terms and after == ref_after
    assert grads.keys() == ref_grads.keys() and grads
    assert all(torch.equal(g, ref_grads[k]) for k, g in grads.items())


def _whole_table_terms(method, batch):
    """LightGCN's and SGL's loss terms as they were computed before ``mean_at``: every
    gather from the whole user and item tables of each encoder's output (SimGCL's: the
    step-bookkeeping study's copies of their losses as they were; XSimGCL's too)."""
    from ssgraphrec.bench.studies import step_bookkeeping as study

    if isinstance(method, XSimGCL):
        return study.whole_table_xsimgcl_loss(method, batch)
    if isinstance(method, SimGCL):
        return study.whole_table_simgcl_loss(method, batch)
    users, items = method.encoder(method.adj)
    terms = method.rec_loss(batch, users, items)
    if isinstance(method, SGL):
        u, i = torch.unique(batch.users), torch.unique(batch.pos_items)
        (u1, i1), (u2, i2) = (method.encoder(a) for a in method.view_adjs)
        tau = method.cfg.temperature
        terms["ssl"] = method.cfg.ssl_weight * (
            u.numel() * info_nce(u1[u], u2[u], tau, ids=u)
            + i.numel() * info_nce(i1[i], i2[i], tau, ids=i)) / batch.users.numel()
    return terms


@pytest.mark.parametrize("restricted", [False, True])
@pytest.mark.parametrize("name", ["lightgcn", "sgl", "simgcl", "xsimgcl"])
def test_gathers_from_the_mean_at_the_batch_rows_equal_the_whole_tables_to_the_bit(
        small_data, batch, monkeypatch, name, restricted):
    """LightGCN's, SGL's, SimGCL's and XSimGCL's steps gather the batch from the mean at
    its rows only (``[|R|, d]``; SimGCL's noised streams there too): every loss term and gradient
    equals, to the bit, the gathers from the whole user and item tables, with the last
    product at the rows or whole."""
    monkeypatch.setattr(sparse_kernels, "ROWS_SHARE_LIMIT", 1.0 if restricted else 0.0)
    monkeypatch.setattr(sparse_kernels, "ROWS_MIN_NNZ", 0)
    cls = {"lightgcn": (LightGCN, LightGCNConfig), "sgl": (SGL, SGLConfig),
           "simgcl": (SimGCL, SimGCLConfig), "xsimgcl": (XSimGCL, XSimGCLConfig)}[name]
    gathered: list[bool] = []
    propagate_mean = lightgcn_module.propagate_mean
    monkeypatch.setattr(lightgcn_module, "propagate_mean", lambda *a, **k: gathered.append(
        k["compact"]) or propagate_mean(*a, **k))

    def step(loss_of):
        torch.manual_seed(7)
        method = cls[0](small_data, cls[1](emb_dim=ROWS_DIM), backend="torch", generator=gen(3))
        if hasattr(method, "on_epoch_start"):
            method.on_epoch_start(0)
        terms = loss_of(method)
        sum(terms.values()).backward()
        return ({k: float(v.detach()) for k, v in terms.items()},
                {k: p.grad.clone() for k, p in method.named_parameters() if p.grad is not None})

    terms, grads = step(lambda m: m.loss(batch))
    assert gathered == [True] * (3 if name == "sgl" else 1)  # every encoder of the step
    ref_terms, ref_grads = step(lambda m: _whole_table_terms(m, batch))
    assert terms == ref_terms and grads.keys() == ref_grads.keys() and grads
    assert all(torch.equal(g, ref_grads[k]) for k, g in grads.items())


@pytest.mark.parametrize("name", ["lightgcn", "sgl", "simgcl", "xsimgcl"])
def test_step_bookkeeping_study_paths_give_the_same_gradients_and_restore_the_package(
        small_data, batch, monkeypatch, name):
    """The step-bookkeeping study's ``before`` path (the mean's gradient as a whole matrix,
    two slices, the unfused Adam, the gathers from whole tables, addmm's copies) and each
    change alone give the gradients of the package's path to the bit, the rows path
    running in all, and leave the package as it was."""
    from ssgraphrec.bench.studies import step_bookkeeping as study

    monkeypatch.setattr(sparse_kernels, "ROWS_SHARE_LIMIT", 1.0)
    monkeypatch.setattr(sparse_kernels, "ROWS_MIN_NNZ", 0)
    cls = {"lightgcn": (LightGCN, LightGCNConfig), "sgl": (SGL, SGLConfig),
           "simgcl": (SimGCL, SimGCLConfig), "xsimgcl": (XSimGCL, XSimGCLConfig)}[name]

    def package():
        return (sparse_kernels._LayerMean.backward, LightGCNEncoder.split, torch.optim.Adam.step,
                LightGCN.batch_rec_loss, SGL.loss, sparse_kernels._Layout.product, SimGCL.loss,
                XSimGCL.loss)

    saved = package()

    def grads(path):
        torch.manual_seed(7)
        method = cls[0](small_data, cls[1](emb_dim=ROWS_DIM), backend="torch", generator=gen(3))
        if hasattr(method, "on_epoch_start"):
            method.on_epoch_start(0)
        with path():
            sum(method.loss(batch).values()).backward()
        return {k: p.grad.clone() for k, p in method.named_parameters() if p.grad is not None}

    now = grads(study.now)
    assert now
    for path in (study.before, *study.CHANGES.values()):
        other = grads(path)
        assert now.keys() == other.keys()
        assert all(torch.equal(g, other[k]) for k, g in now.items()), path.__name__
    assert saved == package()
    with study.before():                          # the reference path is in place inside
        assert sparse_kernels._LayerMean.backward is study.whole_mean_gradient_backward
        assert torch.optim.Adam.step is not saved[2]
        assert LightGCN.batch_rec_loss is study.whole_table_rec_loss
        assert SGL.loss is study.whole_table_sgl_loss
        assert SimGCL.loss is study.whole_table_simgcl_loss
        assert XSimGCL.loss is study.whole_table_xsimgcl_loss
        assert sparse_kernels._Layout.product is not saved[5]


def test_step_bookkeeping_times_adam_fused_and_unfused_from_the_same_start():
    from ssgraphrec.bench.studies import step_bookkeeping as study

    row = study.adam_steps([(30, 8), (20, 8)], steps=4)
    assert row["shapes"] == [[30, 8], [20, 8]] and row["steps"] == 4
    assert row["fused_ms_per_step"] > 0 and row["unfused_ms_per_step"] > 0
    assert 0 <= row["max_abs_difference"] < 1e-5            # the same update, to rounding


@pytest.mark.parametrize("name", ["xsimgcl", "ncl"])
def test_contrastive_floor_records_each_steps_loss_sizes_and_restores_the_module(
        small_data, tmp_path, name):
    """The floor study reads a method's contrastive loss calls through its module: the
    InfoNCE of the batch's distinct users and items against each other, NCL's structure
    loss of them against every user and every item; the module is restored after."""
    import ssgraphrec.methods.ncl as ncl_module
    import ssgraphrec.methods.xsimgcl as xsimgcl_module
    from ssgraphrec.bench.studies import contrastive_floor as study

    module = {"xsimgcl": xsimgcl_module, "ncl": ncl_module}[name]
    loss_name = {"xsimgcl": "info_nce", "ncl": "proto_nce"}[name]
    original = getattr(module, loss_name)
    cls = METHODS.get(name)
    cfg = dataclasses.replace(cls.config_class(), emb_dim=16, batch_size=64)
    method = cls(small_data, cfg, backend="torch", generator=gen(3))
    trainer = Trainer(method, small_data, tmp_path, epochs=1, generator=gen(4), progress=False,
                      log=lambda msg: None)
    seen = []
    method_rec_terms = trainer.method.rec_terms

    def rec_terms(batch, *args):                 # the batches the steps draw
        seen.append((batch.users.unique().numel(), batch.pos_items.unique().numel()))
        return method_rec_terms(batch, *args)

    trainer.method.rec_terms = rec_terms
    calls = study.recorded_calls(trainer, steps=2)
    assert getattr(module, loss_name) is original
    assert len(calls) == len(seen) == 2
    users, items = small_data["user"].num_nodes, small_data["item"].num_nodes
    for step, (n_users, n_items) in zip(calls, seen, strict=True):
        candidates = (n_users, n_items) if name == "xsimgcl" else (users, items)
        assert [c[:4] for c in step[:2]] == [(loss_name, n_users, candidates[0], 16),
                                            (loss_name, n_items, candidates[1], 16)]
        assert step[0][4] == cfg.temperature
    assert study.loss_seconds(calls[0], reps=1) > 0


@pytest.mark.parametrize("streams", ["shared", "fused"])
@pytest.mark.parametrize("skip_ego,num_layers", [(True, 3), (False, 2), (True, 1)])
def test_simgcl_streams_equal_three_propagations_in_loss_and_gradients(
        small_data, batch, streams, skip_ego, num_layers):
    def loss_and_grads(streams):
        torch.manual_seed(5)  # the same initial embeddings
        s = SimGCL(small_data, SimGCLConfig(emb_dim=16, streams=streams, skip_ego=skip_ego,
                                            num_layers=num_layers),
                   backend="torch", generator=gen(11))  # the same noise draws
        terms = s.loss(batch)
        sum(terms.values()).backward()
        return ({k: v.detach() for k, v in terms.items()},
                [p.grad.clone() for p in s.parameters()])

    fast_terms, fast_grads = loss_and_grads(streams)
    plain_terms, plain_grads = loss_and_grads("separate")
    assert fast_terms.keys() == plain_terms.keys() == {"bpr", "reg", "ssl"}
    for k in fast_terms:
        assert torch.allclose(fast_terms[k], plain_terms[k], rtol=1e-5, atol=1e-7), k
    assert plain_terms["ssl"] > 0
    assert len(fast_grads) == len(plain_grads) == 2
    for fg, pg in zip(fast_grads, plain_grads, strict=True):
        assert fg.abs().sum() > 0
        assert torch.allclose(fg, pg, rtol=1e-4, atol=1e-7)


def test_simgcl_shared_streams_differ_from_separate_ones_under_other_noise(small_data, batch):
    """Positive control of the equality above: another noise stream changes the SSL term."""
    def ssl(streams, seed):
        torch.manual_seed(5)
        s = SimGCL(small_data, SimGCLConfig(emb_dim=16, streams=streams), backend="torch",
                   generator=gen(seed))
        return s.loss(batch)["ssl"].detach()

    assert not torch.allclose(ssl("shared", 11), ssl("separate", 12), rtol=1e-5, atol=1e-7)


def test_noise_offsets_need_a_propagated_layer(small_data):
    from ssgraphrec.nn import UniformNoise, noise_offsets

    s = SimGCL(small_data, SimGCLConfig(emb_dim=16), backend="torch", generator=gen())
    with pytest.raises(ValueError, match="no layers to offset"):
        noise_offsets(s.adj, [s.encoder.ego().detach()], UniformNoise(0.1, gen()))


def test_simgcl_streams_must_be_known(small_data):
    with pytest.raises(ConfigError, match="streams must be one of shared, separate, fused"):
        SimGCL(small_data, SimGCLConfig(emb_dim=16, streams="both"), backend="torch")


def perturbed_layers(method, seed):
    """The authors' perturbed LightGCN forward (SELFRec), with the method's noise draws."""
    enc, g = method.encoder, gen(seed)
    h = enc.ego()
    out = [h]
    for _ in range(enc.num_layers):
        h = lightgcn_module.propagate(method.adj, h)
        u = uniform_draw(tuple(h.shape), generator=g)
        h = h + torch.sign(h) * F.normalize(u, dim=-1) * method.cfg.eps
        out.append(h)
    return out


@pytest.mark.parametrize("layer_cl", [1, 2])
def test_xsimgcl_loss_contrasts_the_final_mean_with_layer_l_star(small_data, batch, layer_cl):
    torch.manual_seed(1)
    x = XSimGCL(small_data, XSimGCLConfig(emb_dim=16, layer_cl=layer_cl), backend="torch",
                generator=gen(7))
    terms = x.loss(batch)
    layers = perturbed_layers(x, 7)
    final = torch.stack(layers[1:]).mean(0)              # E(0) skipped
    fu, fi = final[:600], final[600:]
    cu, ci = layers[layer_cl][:600], layers[layer_cl][600:]
    u, i = batch.users.unique(), batch.pos_items.unique()
    assert torch.allclose(terms["bpr"], bpr_loss(fu[batch.users], fi[batch.pos_items],
                                                 fi[batch.neg_items]), atol=1e-6)
    ssl = 0.2 * (info_nce(fu[u], cu[u], 0.15) + info_nce(fi[i], ci[i], 0.15))
    assert torch.allclose(terms["ssl"], ssl, atol=1e-5)


def test_simgcl_loss_is_bpr_on_the_clean_encoder_plus_infonce_of_two_noised_ones(small_data,
                                                                                 batch):
    torch.manual_seed(1)
    s = SimGCL(small_data, SimGCLConfig(emb_dim=16), backend="torch", generator=gen(3))
    terms = s.loss(batch)
    enc = s.encoder
    clean = torch.stack(enc.layers(s.adj)[1:]).mean(0)
    g = gen(3)   # the two noised encoders draw from the method's generator, one after the other
    views = []
    for _ in range(2):
        h, acc = enc.ego(), []
        for _ in range(3):
            h = lightgcn_module.propagate(s.adj, h)
            h = h + torch.sign(h) * F.normalize(uniform_draw(tuple(h.shape), generator=g), dim=-1) * 0.1
            acc.append(h)
        views.append(torch.stack(acc).mean(0))
    u, i = batch.users.unique(), batch.pos_items.unique() + 600
    assert torch.allclose(terms["bpr"], bpr_loss(clean[batch.users], clean[batch.pos_items + 600],
                                                 clean[batch.neg_items + 600]), atol=1e-6)
    v1, v2 = views
    ssl = 0.5 * (info_nce(v1[u], v2[u], 0.2) + info_nce(v1[i], v2[i], 0.2))
    assert torch.allclose(terms["ssl"], ssl, atol=1e-5)
    u_eval, i_eval = s.embeddings()           # evaluation: the clean encoder
    assert torch.allclose(torch.cat([u_eval, i_eval]), clean)


# -- NCL --------------------------------------------------------------------

def test_proto_nce_is_infonce_over_all_candidates():
    q, c = torch.randn(5, 8, generator=gen(0)), torch.randn(7, 8, generator=gen(1))
    t = torch.tensor([0, 3, 3, 6, 1])
    qn, cn = F.normalize(q, dim=1), F.normalize(c, dim=1)
    pos = torch.exp((qn * cn[t]).sum(1) / 0.1)
    ttl = torch.exp(qn @ cn.t() / 0.1).sum(1)
    expected = -torch.log(pos / ttl)
    assert torch.allclose(proto_nce(q, c, t, 0.1, reduction="sum"), expected.sum(), atol=1e-4)
    assert torch.allclose(proto_nce(q, c, t, 0.1), expected.mean(), atol=1e-5)


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_weighted_proto_nce_equals_the_repeated_rows_with_gradients(reduction):
    # NCL passes each distinct node of a batch once, weighted by its repeats.
    table, c0 = torch.randn(6, 8, generator=gen(0)), torch.randn(9, 8, generator=gen(1))
    nodes = torch.tensor([4, 1, 4, 4, 0, 1, 5])
    targets = torch.tensor([2, 7, 3, 8, 0, 1])          # one positive per node
    ref_table, ref_c = table.clone().requires_grad_(), c0.clone().requires_grad_()
    reference = proto_nce(ref_table[nodes], ref_c, targets[nodes], 0.2, reduction=reduction)
    reference.backward()
    distinct, counts = unique_rows(nodes)
    assert distinct.tolist() == [0, 1, 4, 5] and counts.tolist() == [1, 2, 3, 1]
    w_table, w_c = table.clone().requires_grad_(), c0.clone().requires_grad_()
    weighted = proto_nce(w_table[distinct], w_c, targets[distinct], 0.2, reduction=reduction,
                         weight=counts)
    weighted.backward()
    assert torch.allclose(weighted, reference, rtol=1e-6)
    assert torch.allclose(w_table.grad, ref_table.grad, atol=1e-6)
    assert torch.allclose(w_c.grad, ref_c.grad, atol=1e-6)
    unweighted = proto_nce(table[distinct], c0, targets[distinct], 0.2, reduction=reduction)
    assert not torch.allclose(unweighted, reference, rtol=1e-3)   # the weights matter


# 37 queries, 9 candidates: blocks of one candidate; of 4, 4 and 1; one block (and the
# benchmark's reference path, in blocks of queries: of 1 query; of 16, 16 and 5; one)
@pytest.mark.parametrize("block_floats", [7, 4 * 37, 2**18])
@pytest.mark.parametrize("grads", [(True, True), (True, False)])
@pytest.mark.parametrize("path", ["candidate blocks", "query blocks"])
def test_blocked_full_softmax_nce_equals_cross_entropy_with_gradients(monkeypatch, block_floats,
                                                                      grads, path):
    from ssgraphrec.bench.studies.full_softmax import RowBlockedSoftmaxNCE

    # the same blocks on any number of threads (the candidates' block is per thread)
    monkeypatch.setattr(proto_nce_module, "BLOCK_FLOATS_PER_THREAD",
                        max(1, block_floats // torch.get_num_threads()))
    monkeypatch.setattr("ssgraphrec.bench.studies.full_softmax.ROW_BLOCK_FLOATS", block_floats)
    loss = (proto_nce_module.FullSoftmaxNCE if path == "candidate blocks"
            else RowBlockedSoftmaxNCE)
    q0, c0 = torch.randn(37, 8, generator=gen(0)), torch.randn(9, 8, generator=gen(1)) * 3
    t = torch.randint(0, 9, (37,), generator=gen(2))
    g = torch.rand(37, generator=gen(3))  # a weighted sum, so that every row's grad matters
    ref_q, ref_c = q0.clone().requires_grad_(grads[0]), c0.clone().requires_grad_(grads[1])
    (F.cross_entropy(ref_q @ ref_c.t(), t, reduction="none") * g).sum().backward()
    q, c = q0.clone().requires_grad_(grads[0]), c0.clone().requires_grad_(grads[1])
    per_row = loss.apply(q, c, t)
    assert torch.allclose(per_row, F.cross_entropy(q0 @ c0.t(), t, reduction="none"), atol=1e-5)
    (per_row * g).sum().backward()
    assert torch.allclose(q.grad, ref_q.grad, atol=1e-5)
    if grads[1]:
        assert torch.allclose(c.grad, ref_c.grad, atol=1e-5)
    else:
        assert c.grad is None


def test_ncl_loss_terms_follow_the_authors_code_and_the_warm_up(small_data, batch):
    torch.manual_seed(2)
    cfg = NCLConfig(emb_dim=16, num_clusters=8, warm_up_epochs=1)
    ncl = NCL(small_data, cfg, backend="torch", generator=gen(0))
    ncl.on_epoch_start(0)
    assert ncl.user_centroids is None          # no k-means during the warm-up
    terms = ncl.loss(batch)
    assert set(terms) == {"bpr", "reg", "ssl", "proto"} and terms["proto"].item() == 0.0
    ncl.on_epoch_start(1)
    assert ncl.user_centroids.shape == (8, 16) and ncl.item_centroids.shape == (8, 16)
    assert torch.allclose(ncl.user_centroids.norm(dim=1), torch.ones(8))
    assert int(ncl.user_cluster.max()) < 8 and ncl.item_cluster.numel() == 400
    terms = ncl.loss(batch)
    layers = ncl.encoder.layers(ncl.adj)
    e0, e2 = layers[0], layers[2]
    u, i = batch.users, batch.pos_items
    assert torch.unique(u).numel() < u.numel() and torch.unique(i).numel() < i.numel()  # repeats

    def nce(query, candidates, target):   # -log(pos / ttl), summed (ncl.py of RUCAIBox/NCL)
        qn, cn = F.normalize(query, dim=1), F.normalize(candidates, dim=1)
        pos = torch.exp((qn * cn[target]).sum(1) / 0.05)
        return -torch.log(pos / torch.exp(qn @ cn.t() / 0.05).sum(1)).sum()

    ssl = 1e-6 * (nce(e2[u], e0[:600], u) + 1.5 * nce(e2[600 + i], e0[600:], i))
    proto = 1e-7 * (nce(e0[u], ncl.user_centroids, ncl.user_cluster[u])
                    + nce(e0[600 + i], ncl.item_centroids, ncl.item_cluster[i]))
    assert torch.allclose(terms["ssl"], ssl, rtol=1e-4)
    assert torch.allclose(terms["proto"], proto, rtol=1e-4)
    terms["proto"].backward()                  # the prototype term trains the ego embeddings
    assert ncl.encoder.user_emb.grad.abs().sum() > 0


def test_ncl_propagates_to_the_contrasted_hop_but_averages_num_layers(small_data, batch,
                                                                      monkeypatch):
    calls = []
    matmul = Adjacency.matmul
    monkeypatch.setattr(Adjacency, "matmul",
                        lambda adj, x, transpose=False: calls.append(adj) or matmul(adj, x, transpose))
    ncl = NCL(small_data, NCLConfig(emb_dim=8, num_layers=1, hyper_layers=2), backend="torch",
              generator=gen())
    ncl.loss(batch)
    assert len(calls) == 4                       # hop 2 * hyper_layers = 4 > num_layers = 1
    calls.clear()
    ncl.embeddings()
    assert len(calls) == 1                       # LightGCN's mean over layers 0..1


# -- k-means ----------------------------------------------------------------

@pytest.mark.parametrize("seed", range(4))
def test_kmeans_recovers_planted_clusters(seed):
    centers = 5.0 * torch.eye(8)[:5]
    labels = torch.arange(5).repeat_interleave(40)
    x = centers[labels] + 0.3 * torch.randn(200, 8, generator=gen(10 + seed))
    centroids, assignment = kmeans(x, 5, generator=gen(seed))
    found = [assignment[labels == c].unique() for c in range(5)]
    assert all(f.numel() == 1 for f in found)                  # each planted cluster is one
    assert len({int(f) for f in found}) == 5                    # and they are all different
    for c in range(5):
        assert torch.allclose(centroids[found[c]].view(-1), x[labels == c].mean(0), atol=1e-5)


def test_kmeans_is_seeded_and_handles_more_clusters_than_points_and_duplicates():
    x = torch.randn(30, 4, generator=gen(0))
    a = kmeans(x, 6, generator=gen(1))
    b = kmeans(x, 6, generator=gen(1))
    assert torch.equal(a.centroids, b.centroids) and torch.equal(a.assignment, b.assignment)
    c, assign = kmeans(x[:5], 9, generator=gen(2))              # k > n: one point per cluster
    assert c.shape == (5, 4) and sorted(assign.tolist()) == list(range(5))
    dup = torch.tensor([[0.0, 0.0], [1.0, 1.0], [5.0, 5.0]]).repeat(10, 1)
    c, assign = kmeans(dup, 5, generator=gen(3))                # only 3 distinct points
    assert c.shape == (5, 2) and int(assign.max()) < 5
    assert torch.allclose(c[assign], dup)                        # every point sits on its centroid
    random_init = kmeans(x, 6, generator=gen(1), init="random")
    assert random_init.centroids.shape == (6, 4)


def test_kmeans_faiss_backend_is_optional():
    if has_faiss():
        pytest.skip("faiss is installed here")
    with pytest.raises(ConfigError):
        kmeans(torch.randn(10, 2), 2, backend="faiss")
    kmeans(torch.randn(10, 2), 2, backend="auto")               # falls back to torch


# -- graph diffusion --------------------------------------------------------

def brute_force_top(user_emb, item_emb, edge_index, k, cosine=False):
    if cosine:
        user_emb, item_emb = F.normalize(user_emb, dim=1), F.normalize(item_emb, dim=1)
    scores = user_emb @ item_emb.t()
    scores[edge_index[0], edge_index[1]] = float("-inf")
    return scores.topk(k, dim=1).indices


@pytest.mark.parametrize("similarity,batch_size", [("dot", 1024), ("dot", 3), ("cosine", 2)])
def test_graph_diffusion_adds_each_users_k_most_similar_non_edges(similarity, batch_size):
    graph, data = toy_graph()
    before = data[INTERACTS].edge_index.clone()
    E = before.size(1)
    ue, ie = torch.randn(7, 5, generator=gen(1)), torch.randn(12, 5, generator=gen(2))
    out = GraphDiffusion(k=3, similarity=similarity,
                         batch_size=batch_size)(with_embeddings(data, ue, ie))
    store = out[INTERACTS]
    assert torch.equal(store.edge_index[:, :E], before)          # existing edges first, unchanged
    added = store.edge_index[:, E:]
    assert added.size(1) == 7 * 3
    assert torch.equal(store.e_id, torch.arange(E + 21))         # added ids start at E
    existing = set(map(tuple, before.t().tolist()))
    assert not existing & set(map(tuple, added.t().tolist()))    # none was an edge
    assert torch.equal(added[0], torch.arange(7).repeat_interleave(3))
    expected = brute_force_top(ue, ie, before, 3, cosine=similarity == "cosine")
    assert torch.equal(added[1].view(7, 3), expected)            # best first
    # the input is untouched
    assert torch.equal(data[INTERACTS].edge_index, before) and "e_id" not in data[INTERACTS]


def test_graph_diffusion_adds_fewer_when_fewer_items_are_left():
    ei = torch.tensor([[0] * 10 + [1], list(range(10)) + [0]])
    data = interaction_data(2, 12, ei)
    out = GraphDiffusion(k=3)(with_embeddings(data, torch.randn(2, 4), torch.randn(12, 4)))
    added = out[INTERACTS].edge_index[:, 11:]
    assert (added[0] == 0).sum() == 2 and set(added[1, added[0] == 0].tolist()) == {10, 11}
    assert (added[0] == 1).sum() == 3


def test_graph_diffusion_errors_and_registration():
    graph, data = toy_graph()
    assert AUGMENTATIONS.get("graph_diffusion") is GraphDiffusion
    with pytest.raises(ValueError, match="embeddings"):
        GraphDiffusion()(data)
    with pytest.raises(ValueError):
        GraphDiffusion()(with_embeddings(data, torch.randn(3, 4), torch.randn(12, 4)))
    with pytest.raises(ConfigError, match="takes no argument 'user_emb'"):
        make_augmentation("graph_diffusion", user_emb=torch.randn(7, 4))
    with pytest.raises(ConfigError):
        GraphDiffusion(k=0)
    with pytest.raises(ConfigError):
        GraphDiffusion(similarity="euclidean")
    timed = data.clone()
    timed[INTERACTS].time = torch.arange(graph.num_edges)
    with pytest.raises(ValueError, match="time"):
        GraphDiffusion()(with_embeddings(timed, torch.randn(7, 4), torch.randn(12, 4)))


def view_edges(graph, store, e_id):
    """Reference (user, item) pairs of the view with ids e_id."""
    E = graph.num_edges
    added = {int(i): tuple(p) for i, p in zip(store.e_id.tolist(), store.edge_index.t().tolist(),
                                               strict=True) if i >= E}
    pairs = [(int(graph.user[i]), int(graph.item[i])) if i < E else added[i]
             for i in e_id.tolist()]
    return torch.tensor(pairs).t()


@pytest.mark.parametrize("order", ["drop_then_diffuse", "diffuse_then_drop", "random_walk"])
def test_views_that_add_edges_get_the_adjacency_of_their_edge_list(order):
    graph, data = toy_graph(num_users=9, num_items=15, per_user=5)
    E = graph.num_edges
    diffusion = GraphDiffusion(k=2)
    data = with_embeddings(data, torch.randn(9, 4, generator=gen(1)),
                           torch.randn(15, 4, generator=gen(2)))
    steps = {"drop_then_diffuse": [EdgeDrop(0.3, generator=gen(3)), diffusion],
             "diffuse_then_drop": [diffusion, EdgeDrop(0.3, generator=gen(3))],
             "random_walk": [RandomWalk(0.3, num_layers=2, generator=gen(3)), diffusion]}[order]
    store = T.Compose(steps)(data)[INTERACTS]
    assert int(store.e_id.max()) >= E and int(store.num_base_edges) == E
    adj = view_adjacency(graph, store)
    if order == "random_walk":
        assert len(adj) == 2
        for a, e in zip(adj, store.layer_e_id, strict=True):
            assert (e >= E).sum() == 18
            ref = normalized_adjacency_reference(view_edges(graph, store, e), 9, 15)
            assert torch.allclose(a.to_dense(), ref, atol=1e-6)
    else:
        added = store.e_id >= E
        assert torch.equal(view_edges(graph, store, store.e_id), store.edge_index)
        if order == "drop_then_diffuse":
            assert int(added.sum()) == 18 and torch.all(store.e_id[~added] < E)
        ref = normalized_adjacency_reference(store.edge_index, 9, 15)
        assert torch.allclose(adj.to_dense(), ref, atol=1e-6)
    explicit = bipartite_adjacency(store.edge_index, 9, 15)
    assert torch.allclose(explicit.to_dense(),
                          normalized_adjacency_reference(store.edge_index, 9, 15), atol=1e-6)


def test_sgl_feeds_its_embeddings_to_graph_diffusion(small_data, batch):
    sgl = SGL(small_data, SGLConfig(aug="edge_drop,graph_diffusion", emb_dim=16), backend="torch",
              generator=gen())
    seen = []
    diffusion = sgl.augment.transforms[1]
    original = diffusion.top_unobserved
    diffusion.top_unobserved = lambda e, u, i: seen.append((u, i)) or original(e, u, i)
    sgl.on_epoch_start(0)
    with torch.no_grad():
        users, items = sgl.encoder(sgl.adj)
    assert len(seen) == 2 and all(torch.equal(u, users) and torch.equal(i, items) for u, i in seen)
    assert "emb" not in sgl.graph_data["user"]        # handed in at call time, not kept
    kept = round(sgl.graph.num_edges * 0.9)
    assert all(a.nnz == 2 * (kept + 5 * 600) for a in sgl.view_adjs)
    terms = sgl.loss(batch)
    sum(terms.values()).backward()
    assert sgl.encoder.user_emb.grad.abs().sum() > 0


# -- every method -----------------------------------------------------------

@pytest.mark.parametrize("name,extra,names", [
    ("simgcl", {}, {"bpr", "reg", "ssl"}),
    ("xsimgcl", {}, {"bpr", "reg", "ssl"}),
    ("ncl", {"warm_up_epochs": 0, "num_clusters": 10}, {"bpr", "reg", "ssl", "proto"}),
])
def test_loss_has_named_terms_and_every_term_trains_the_embeddings(small_data, batch, name,
                                                                     extra, names):
    cls = METHODS.get(name)
    torch.manual_seed(0)
    method = cls(small_data, dataclasses.replace(cls.config_class(), emb_dim=16, **extra),
                 backend="torch", generator=gen())
    method.on_epoch_start(0)
    terms = method.loss(batch)
    assert set(terms) == names
    assert all(torch.isfinite(v) and v.dim() == 0 for v in terms.values())
    for key in names - {"reg"}:
        method.zero_grad()
        method.loss(batch)[key].backward()
        assert method.encoder.user_emb.grad.abs().sum() > 0, key
        assert method.encoder.item_emb.grad.abs().sum() > 0, key


@pytest.mark.parametrize("cfg", [
    SimGCLConfig(eps=-0.1), SimGCLConfig(temperature=0.0), SimGCLConfig(temperature=-0.2),
    SimGCLConfig(num_layers=0), SimGCLConfig(ssl_weight=-1.0),
    XSimGCLConfig(layer_cl=0), XSimGCLConfig(layer_cl=4), XSimGCLConfig(num_layers=2, layer_cl=3),
    XSimGCLConfig(eps=-1.0), XSimGCLConfig(temperature=0.0),
    NCLConfig(temperature=0.0), NCLConfig(hyper_layers=0), NCLConfig(num_clusters=0),
    NCLConfig(ssl_weight=-1e-6), NCLConfig(warm_up_epochs=-1), NCLConfig(kmeans_backend="scipy"),
])
def test_wrong_settings_are_config_errors(small_data, cfg):
    cls = {SimGCLConfig: SimGCL, XSimGCLConfig: XSimGCL, NCLConfig: NCL}[type(cfg)]
    with pytest.raises(ConfigError):
        cls(small_data, cfg, backend="torch")


def test_paper_defaults_are_the_published_ones():
    s = SimGCLConfig()
    assert (s.eps, s.ssl_weight, s.temperature, s.num_layers, s.emb_dim, s.lr, s.batch_size,
            s.reg, s.skip_ego) == (0.1, 0.5, 0.2, 3, 64, 1e-3, 2048, 1e-4, True)
    x = XSimGCLConfig()
    assert (x.eps, x.ssl_weight, x.temperature, x.layer_cl, x.num_layers, x.emb_dim, x.lr,
            x.batch_size, x.reg) == (0.2, 0.2, 0.15, 1, 3, 64, 1e-3, 2048, 1e-4)
    n = NCLConfig()
    assert (n.ssl_weight, n.proto_weight, n.temperature, n.alpha, n.num_clusters, n.hyper_layers,
            n.num_layers, n.emb_dim, n.lr, n.batch_size, n.reg, n.m_step, n.warm_up_epochs) == (
        1e-6, 1e-7, 0.05, 1.5, 2000, 1, 3, 64, 1e-3, 4096, 1e-4, 1, 20)


# -- learning planted structure ---------------------------------------------

def fit(name, data, tmp_path, epochs, **params):
    cls = METHODS.get(name)
    cfg = dataclasses.replace(cls.config_class(), **params)
    torch.manual_seed(0)
    g = gen(0)
    method = cls(data, cfg, backend="torch", generator=g)
    trainer = Trainer(method, data, tmp_path, epochs=epochs, patience=0, generator=g,
                      progress=False, log=lambda msg: None)
    return trainer.fit()


# On this small dense graph (6 communities, a batch of 256 pairs holds a third
# of all users) the contrastive term at the papers' weights (SimGCL 0.5,
# XSimGCL 0.2) keeps BPR near log 2 for the first epochs: InfoNCE's gradient on
# the small layer-1..L embeddings is some 100x BPR's at the start, and 15 epochs
# ended with test Recall@20 0.05 (SimGCL, random level) and 0.40 (XSimGCL)
# against MostPop's 0.28. Smaller weights let the planted structure show within
# a few epochs. SGL needs more epochs here for the same reason (edge_drop alone:
# 0.23 after 8 epochs).
@pytest.mark.parametrize("name,epochs,params", [
    ("simgcl", 8, {"ssl_weight": 0.02, "num_layers": 2}),
    ("xsimgcl", 8, {"ssl_weight": 0.05}),
    ("ncl", 8, {"warm_up_epochs": 3, "num_clusters": 12}),
    ("sgl", 12, {"aug": "edge_drop,graph_diffusion"}),
])
def test_graph_cl_methods_beat_popularity_on_planted_communities(small_data, tmp_path, name,
                                                                 epochs, params):
    pop = fit("mostpop", small_data, tmp_path / "pop", 0)["test"]
    res = fit(name, small_data, tmp_path / name, epochs, lr=5e-3, batch_size=256,
              **params)["test"]
    assert res["recall@20"] > 1.5 * pop["recall@20"], (res["recall@20"], pop["recall@20"])
    assert res["ndcg@20"] > 1.5 * pop["ndcg@20"]
    assert math.isfinite(res["ndcg@20"])


@pytest.mark.parametrize("args", [
    ["--method", "sgl", "--aug", "edge_drop,graph_diffusion"],
    ["--method", "simgcl"],
    ["--method", "xsimgcl", "--set", "layer_cl=1"],
    ["--method", "ncl", "--set", "num_clusters=10", "--set", "warm_up_epochs=0"],
])
def test_command_line_trains_the_methods_and_graph_diffusion(tmp_path, args):
    g = gen(0)
    rows = [f"u{u} i{i} 1\n" for u in range(120) for i in torch.randperm(80, generator=g)[:10].tolist()]
    path = tmp_path / "small.txt"
    path.write_text("".join(rows))
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["train", *args, "--dataset", str(path), "--epochs", "1",
                                       "--out", str(out), "--no-progress", "--batch-size", "256",
                                       "--set", "emb_dim=8", "--set", "num_layers=1"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert (out / "results.json").is_file()
