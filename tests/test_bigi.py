"""BiGI, its data (u i w splits, link-prediction negatives) and AUC evaluation."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch
from click.testing import CliRunner

from ssgraphrec.cli import main
from ssgraphrec.data import INTERACTS, SyntheticConfig, build_dataset, make_synthetic
from ssgraphrec.data.link_negatives import add_link_negatives, is_link_prediction
from ssgraphrec.data.readers.bigi import read_bigi_split
from ssgraphrec.data.registry import load_dataset
from ssgraphrec.data.subgraph import enclosing_subgraphs, reach_adjacency
from ssgraphrec.errors import ConfigError, DataFormatError, SSGraphRecError
from ssgraphrec.eval.auc import auc_roc, average_precision
from ssgraphrec.eval.link_prediction import evaluate_link_prediction, fit_logistic
from ssgraphrec.methods import METHODS, BiGI, BiGIConfig
from ssgraphrec.methods.base import BPRBatch
from ssgraphrec.nn.bigi import BilinearDiscriminator, SubgraphAttention
from ssgraphrec.sparse import bipartite_row_normalized
from ssgraphrec.train import Trainer
from ssgraphrec.transforms.edge_flip import flip_edges

TINY = SyntheticConfig(num_users=120, num_items=80, num_communities=4, mean_interactions=12,
                       social=False)


@pytest.fixture(scope="module")
def tiny():
    return build_dataset(make_synthetic(TINY, seed=3), split="random", test_ratio=0.2,
                         val_ratio=0.1, seed=3)


# -- readers --------------------------------------------------------------

def test_integer_split_keeps_ids_and_drops_test_items_unseen_in_training(write, tmp_path):
    write("d/train.txt", "0\t0\t1\n0\t1\t4\n1\t0\t2\n2\t2\t1\n")
    write("d/test.txt", "1\t1\t1\n2\t3\t2\n")   # item 3 never occurs in training
    data = build_dataset(read_bigi_split(tmp_path / "d"), split="fixed", val_ratio=0)
    store = data[INTERACTS]
    assert store.edge_index.tolist() == [[0, 0, 1, 2], [0, 1, 0, 2]]
    assert store.test_edge_index.tolist() == [[1], [1]]
    assert int(data.test_dropped_unseen) == 1


def test_prefixed_split_maps_test_ids_through_the_training_map(write, tmp_path):
    write("d/rating_train.dat", "u5\ti9\t1\nu5\ti2\t4\nu0\ti9\t2\n")
    write("d/rating_test.dat", "u0\ti2\t1\nu5\ti7\t1\n")   # i7 is not a training item
    raw = read_bigi_split(tmp_path / "d")                    # no train.txt: prefixed form
    data = build_dataset(raw, split="fixed", val_ratio=0)
    users, items = data["user"].raw_id, data["item"].raw_id
    assert users == ["u5", "u0"] and items == ["i9", "i2"]
    test = data[INTERACTS].test_edge_index
    assert [(users[u], items[i]) for u, i in test.t().tolist()] == [("u0", "i2")]
    assert int(data.test_dropped_unseen) == 1


@pytest.mark.parametrize("name,text,problem", [
    ("train.txt", "0\t1\t1\n0\t2\n", "line 2: 2 columns"),
    ("train.txt", "0\tx\t1\n", "line 1: item id 'x' is not an integer"),
    ("train.txt", "0\t1\tmany\n", "line 1: weight 'many' is not a number"),
    ("rating_train.dat", "u0\ti1\t1\nu1\t7\t1\n", "line 2: item id '7'"),
])
def test_bad_lines_name_file_and_line(write, tmp_path, name, text, problem):
    write(f"d/{name}", text)
    other = "test.txt" if name == "train.txt" else "rating_test.dat"
    write(f"d/{other}", "0\t1\t1\n" if name == "train.txt" else "u0\ti1\t1\n")
    with pytest.raises(DataFormatError, match=problem) as err:
        read_bigi_split(tmp_path / "d", prefixed=name != "train.txt")
    assert name in str(err.value)


def test_link_prediction_dataset_gets_seeded_non_edges(write, tmp_path):
    lines = "".join(f"{u}\t{i}\t1\n" for u in range(6) for i in range(8) if (u + i) % 3)
    write("bigi-dblp/train.txt", lines)
    write("bigi-dblp/test.txt", "0\t0\t1\n1\t2\t1\n2\t1\t1\n")
    data = load_dataset("bigi-dblp", root=tmp_path, val_ratio=0.2, seed=5)
    assert is_link_prediction(data)
    store = data[INTERACTS]
    pos = {tuple(p) for key in ("edge_index", "val_edge_index", "test_edge_index")
           for p in store[key].t().tolist()}
    for split in ("train", "val", "test"):
        neg = store[f"{split}_neg_edge_index"]
        positives = store["edge_index" if split == "train" else f"{split}_edge_index"]
        assert neg.size(1) == positives.size(1)
        assert neg[0].tolist() == positives[0].tolist()          # one per edge, same user
        assert not pos & {tuple(p) for p in neg.t().tolist()}   # never an edge of any split
    again = load_dataset("bigi-dblp", root=tmp_path, val_ratio=0.2, seed=5)
    assert torch.equal(again[INTERACTS].test_neg_edge_index, store.test_neg_edge_index)


# -- AUC ------------------------------------------------------------------

def test_auc_values_by_hand_with_ties():
    scores = torch.tensor([0.9, 0.8, 0.8, 0.3])
    labels = torch.tensor([1, 0, 1, 0])
    # Pairs (pos, neg): 0.9>0.8, 0.9>0.3, 0.8=0.8 (1/2), 0.8>0.3 -> 3.5 / 4.
    assert auc_roc(scores, labels) == pytest.approx(0.875)
    # Thresholds 0.9 (P 1, R 1/2), 0.8 (P 2/3, R 1), 0.3 (R unchanged).
    assert average_precision(scores, labels) == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    tied = torch.full((6,), 0.4)
    labels6 = torch.tensor([1, 0, 0, 1, 0, 0])
    assert auc_roc(tied, labels6) == pytest.approx(0.5)
    assert average_precision(tied, labels6) == pytest.approx(2 / 6)
    assert auc_roc(-scores, labels) == pytest.approx(0.125)


def test_auc_without_negatives_is_a_clear_error():
    with pytest.raises(SSGraphRecError, match="no negative"):
        auc_roc(torch.tensor([0.1, 0.2]), torch.tensor([1, 1]))
    with pytest.raises(SSGraphRecError, match="no positive"):
        average_precision(torch.tensor([0.1, 0.2]), torch.tensor([0, 0]))


def test_link_prediction_on_a_split_without_negatives_names_the_problem(tiny):
    users, items = torch.randn(120, 4), torch.randn(80, 4)
    with pytest.raises(SSGraphRecError, match="test split of .* has no negative pairs"):
        evaluate_link_prediction(users, items, tiny, "test")


def test_logistic_regression_solves_the_l2_objective():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(300, 5, generator=gen)
    y = (x[:, 0] - x[:, 1] + 0.3 * torch.randn(300, generator=gen) > 0).float()
    c = 0.05
    w, b = fit_logistic(x, y, c=c)
    w, b = w.requires_grad_(), b.requires_grad_()
    sign = y.double() * 2 - 1
    loss = 0.5 * (w * w).sum() + c * torch.nn.functional.softplus(-sign * (x.double() @ w + b)).sum()
    gw, gb = torch.autograd.grad(loss, (w, b))
    assert gw.abs().max() < 1e-6 and gb.abs().max() < 1e-6
    assert w[0] > 0 > w[1]


def test_link_prediction_scores_planted_embeddings_perfectly(tiny):
    data = add_link_negatives(tiny.clone(), seed=0)
    store = data[INTERACTS]
    # Embeddings that make every edge of every split score 1 and every non-edge 0.
    users = torch.zeros(120, 80)
    for key in ("edge_index", "val_edge_index", "test_edge_index"):
        users[store[key][0], store[key][1]] = 1.0
    out = evaluate_link_prediction(users, torch.eye(80), data, "test")
    assert out["dot_auc_roc"] == pytest.approx(1.0) and out["dot_auc_pr"] == pytest.approx(1.0)
    assert out["pairs_evaluated"] == 2 * store.test_edge_index.size(1)


# -- structure --------------------------------------------------------------

def _brute_force(edges, num_users, seeds, hops):
    adj = {}
    for u, i in edges:
        adj.setdefault(u, set()).add(num_users + i)
        adj.setdefault(num_users + i, set()).add(u)
    reach = set(seeds)
    for _ in range(hops):
        reach |= {n for node in reach for n in adj.get(node, ())}
    return ({n for n in reach if n < num_users}, {n - num_users for n in reach if n >= num_users})


@pytest.mark.parametrize("hops", [1, 2, 3])
def test_enclosing_subgraphs_match_a_brute_force_search(hops):
    edges = [(0, 0), (0, 1), (1, 1), (2, 2), (3, 2), (3, 3), (4, 0)]
    edge_index = torch.tensor(edges).t()
    adj = reach_adjacency(edge_index, 5, 4)
    batch = torch.tensor([[0, 2, 3, 4], [1, 2, 3, 0]])
    sub = enclosing_subgraphs(adj, batch, 5, hops, num_neighbors=10,
                              generator=torch.Generator().manual_seed(0))
    for b, (u, i) in enumerate(batch.t().tolist()):
        users, items = _brute_force(edges, 5, {u, 5 + i}, hops)
        assert set(sub.users[b][sub.user_mask[b]].tolist()) == users
        assert set(sub.items[b][sub.item_mask[b]].tolist()) == items


def test_enclosing_subgraph_samples_at_most_k_distinct_members():
    edge_index = torch.tensor([[0] * 6 + [1, 2, 3], [0, 1, 2, 3, 4, 5, 0, 0, 0]])
    adj = reach_adjacency(edge_index, 4, 6)
    sub = enclosing_subgraphs(adj, torch.tensor([[0], [0]]), 4, 1, num_neighbors=3,
                              generator=torch.Generator().manual_seed(1))
    items = sub.items[0][sub.item_mask[0]].tolist()
    users = sub.users[0][sub.user_mask[0]].tolist()
    assert len(items) == 3 == len(set(items)) and set(items) <= set(range(6))
    assert len(users) == 3 == len(set(users)) and set(users) <= {0, 1, 2, 3}


def test_flip_edges_toggles_exactly_the_drawn_cells():
    full = torch.tensor([[u for u in range(3) for _ in range(2)], [0, 1] * 3])  # every cell
    out = flip_edges(full, 3, 2, rate=0.0, generator=torch.Generator().manual_seed(0))
    assert out.size(1) == 5          # rate 0 draws one cell; on a full graph it is removed
    empty = torch.zeros(2, 0, dtype=torch.long)
    added = flip_edges(empty, 3, 2, rate=0.0, generator=torch.Generator().manual_seed(0))
    assert added.size(1) == 1 and added.t().tolist()[0] not in out.t().tolist()


def test_row_normalized_blocks_average_neighbours():
    edges = torch.tensor([[0, 0, 1], [0, 1, 1]])
    dense = bipartite_row_normalized(edges, 2, 2).to_dense()
    expected = torch.tensor([[0, 0, 0.5, 0.5], [0, 0, 0, 1], [1, 0, 0, 0], [0.5, 0.5, 0, 0]])
    assert torch.allclose(dense, expected)


def test_subgraph_attention_ignores_padding_and_matches_softmax():
    att = SubgraphAttention(3)
    gen = torch.Generator().manual_seed(0)
    table, query = torch.randn(5, 3, generator=gen), torch.randn(1, 3, generator=gen)
    idx, mask = torch.tensor([[4, 1, 0]]), torch.tensor([[True, True, False]])
    out = att._attend(query, table, idx, mask)
    s = torch.stack([query[0] @ table[4], query[0] @ table[1]]) / math.sqrt(3)
    w = torch.softmax(s, 0)
    assert torch.allclose(out[0], w[0] * table[4] + w[1] * table[1], atol=1e-6)


def test_bilinear_discriminator_is_l_w_g_plus_b():
    disc = BilinearDiscriminator(4)
    torch.nn.init.normal_(disc.bilinear.bias)
    gen = torch.Generator().manual_seed(2)
    local, summary = torch.randn(3, 4, generator=gen), torch.randn(4, generator=gen)
    w, b = disc.bilinear.weight[0], disc.bilinear.bias
    expected = torch.stack([local[k] @ w @ summary + b[0] for k in range(3)])
    assert torch.allclose(disc(local, summary), expected, atol=1e-6)


# -- the method -----------------------------------------------------------------

def test_paper_defaults():
    cfg = BiGIConfig()
    assert (cfg.emb_dim, cfg.num_layers, cfg.lr, cfg.batch_size) == (128, 2, 1e-3, 128)
    assert (cfg.margin, cfg.mim_weight, cfg.dropout, cfg.num_neighbors) == (0.3, 0.3, 0.3, 100)


def test_bigi_scores_every_item_as_its_mlp_scores_pairs(tiny):
    method = BiGI(tiny, BiGIConfig(emb_dim=8), generator=torch.Generator().manual_seed(0)).eval()
    users, items = method.embeddings()
    full = method.ranking_scores()(torch.tensor([3, 7]))
    pairs = method.scorer(users[[3] * 80], items)
    assert full.shape == (2, 80) and torch.allclose(full[0], pairs, atol=1e-5)


def test_bigi_learns_to_tell_subgraphs_from_the_corrupted_graph(tiny, tmp_path):
    cfg = dataclasses.replace(BiGIConfig(), emb_dim=16, batch_size=64, lr=1e-2)
    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    method = BiGI(tiny, cfg, generator=gen)
    edges = tiny[INTERACTS].edge_index[:, :64]
    first = method.loss(BPRBatch(edges[0], edges[1], torch.randint(0, 80, (64,), generator=gen)))
    assert set(first) == {"rec", "mim"}
    # An untrained discriminator is near chance: lambda * ln 2.
    assert first["mim"].item() == pytest.approx(0.3 * math.log(2), rel=0.25)
    Trainer(method, tiny, tmp_path, epochs=12, patience=0, generator=gen, progress=False,
            log=lambda msg: None).fit()
    losses = [json.loads(line)["loss"] for line in (tmp_path / "metrics.jsonl").open()]
    # An epoch's mean MIM loss on this tiny graph swings by a factor of 2 to 4 between
    # epochs (0.023, 0.098, 0.059 over the last three of one run): the best of the last
    # three, not the last alone, so that the last bit of an optimiser's rounding does
    # not decide the test.
    print("mim per epoch:", [round(entry["mim"], 4) for entry in losses])
    assert min(entry["mim"] for entry in losses[-3:]) < 0.3 * losses[0]["mim"]
    assert losses[-1]["rec"] < 0.9 * losses[0]["rec"]


def test_trainer_monitors_auc_on_link_prediction_data(tiny, tmp_path):
    data = add_link_negatives(tiny.clone(), seed=0)
    cls = METHODS.get("lightgcn")
    method = cls(data, cls.config_class(), generator=torch.Generator().manual_seed(0))
    trainer = Trainer(method, data, tmp_path, epochs=2, patience=0, monitor="auc_roc",
                      generator=torch.Generator().manual_seed(0), progress=False,
                      log=lambda msg: None)
    out = trainer.fit()
    assert set(out["test"]) >= {"auc_roc", "auc_pr", "dot_auc_roc", "dot_auc_pr"}
    assert out["selection"] == "best validation auc_roc"
    assert 0.0 <= out["test"]["auc_pr"] <= 1.0


# -- command line -----------------------------------------------------------------

def _bigi_folder(write, name: str) -> None:
    lines = "".join(f"{u}\t{i}\t1\n" for u in range(10) for i in range(12) if (u * 7 + i) % 4 == 0)
    write(f"{name}/train.txt", lines)
    write(f"{name}/test.txt", "".join(f"{u}\t{(u * 7 + 1) % 12}\t1\n" for u in range(10)))


def test_cli_trains_bigi_and_reports_auc_on_link_prediction_data(write, tmp_path):
    _bigi_folder(write, "bigi-dblp")
    result = CliRunner().invoke(main, [
        "train", "-m", "bigi", "-d", "bigi-dblp", "--data-root", str(tmp_path), "--epochs", "1",
        "--no-progress", "--threads", "1", "-o", str(tmp_path / "run"),
        "--set", "emb_dim=8", "--set", "batch_size=16"])
    assert result.exit_code == 0, result.output
    assert "link prediction" in result.output and "auc_roc" in result.output
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["selection"] == "best validation auc_roc"


def test_cli_recommends_with_bigi_mlp_scores(write, tmp_path):
    _bigi_folder(write, "bigi-ml-100k")
    run = tmp_path / "run"
    args = ["train", "-m", "bigi", "-d", "bigi-ml-100k", "--data-root", str(tmp_path),
            "--epochs", "1", "--no-progress", "--threads", "1", "-o", str(run),
            "--set", "emb_dim=8", "--set", "batch_size=16", "--set", "eval_ks=[5]",
            "--set", "monitor=ndcg@5"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(main, ["recommend", str(run), "--user", "3", "-k", "4"])
    assert result.exit_code == 0, result.output
    assert len([line for line in result.output.splitlines() if line.strip()]) >= 4


def test_real_bigi_files_read_in_both_forms_alike(real_dataset):
    folder = real_dataset("bigi-dblp")
    plain = build_dataset(read_bigi_split(folder), split="fixed", val_ratio=0)
    prefixed = build_dataset(read_bigi_split(folder, prefixed=True), split="fixed", val_ratio=0)
    for data in (plain, prefixed):
        store = data[INTERACTS]
        assert (store.edge_index.size(1), store.test_edge_index.size(1)) == (17699, 11313)
        assert int(data.test_dropped_unseen) == 244 and int(data["user"].num_nodes) == 6001
    movies = build_dataset(read_bigi_split(real_dataset("bigi-ml-100k")), split="fixed", val_ratio=0)
    assert movies[INTERACTS].edge_index.size(1) == 80000
    assert movies[INTERACTS].test_edge_index.size(1) == 19968


@pytest.mark.parametrize("setting", [{"mim_weight": 1.5}, {"hops": 0}, {"dropout": 1.0}])
def test_bigi_rejects_bad_settings(tiny, setting):
    with pytest.raises(ConfigError):
        BiGI(tiny, dataclasses.replace(BiGIConfig(), **setting))
