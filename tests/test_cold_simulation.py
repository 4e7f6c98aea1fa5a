"""PT-GNN's cold-start simulation: exact cuts, masking of what was cut, the slice, clear errors."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from ssgraphrec.data.cold_simulation import HIDDEN, SIMULATED, keep_k_per_user, simulate_cold_users
from ssgraphrec.data.schema import INTERACTS, interaction_data
from ssgraphrec.errors import ConfigError
from ssgraphrec.methods import MostPop
from ssgraphrec.methods.base import MethodConfig
from ssgraphrec.train import Trainer

sys.path.insert(0, str(Path(__file__).parent))
from test_schemes import _recbole, cli  # noqa: E402

# 4 users, 6 items. Training counts: users 4, 2, 5, 1; test: users 0, 1, 2.
TRAIN = torch.tensor([[0, 0, 0, 0, 1, 1, 2, 2, 2, 2, 2, 3],
                      [0, 1, 2, 3, 0, 1, 0, 1, 2, 3, 4, 0]])
TEST = torch.tensor([[0, 1, 2],
                     [5, 5, 5]])


def _data():
    return interaction_data(4, 6, TRAIN, None, TEST)


def _pairs(t):
    return sorted(zip(t[0].tolist(), t[1].tolist(), strict=True))


def test_keep_k_per_user_keeps_exactly_k_of_each_chosen_user_and_all_of_the_others():
    chosen = torch.tensor([True, False, True, True])
    keep = keep_k_per_user(TRAIN[0], chosen, 2, torch.Generator().manual_seed(3))
    kept = torch.bincount(TRAIN[0][keep], minlength=4).tolist()
    # users 0 and 2 are cut to 2; user 1 is not chosen; user 3 has only 1 to keep
    assert kept == [2, 2, 2, 1]
    # another seed draws other edges, never other counts
    other = keep_k_per_user(TRAIN[0], chosen, 2, torch.Generator().manual_seed(4))
    assert torch.bincount(TRAIN[0][other], minlength=4).tolist() == [2, 2, 2, 1]
    draws = {tuple(keep_k_per_user(TRAIN[0], chosen, 2, torch.Generator().manual_seed(s))
                   .tolist()) for s in range(20)}
    assert len(draws) > 1  # the kept edges are drawn at random


def test_simulation_cuts_a_share_of_the_eligible_test_users_and_keeps_what_it_cut():
    data = _data()
    out = simulate_cold_users(data, 2, 1.0, torch.Generator().manual_seed(0))
    # eligible: a test interaction and more than 2 training ones: users 0 and 2 (not 1: 2
    # interactions; not 3: no test interaction)
    assert out["user"][SIMULATED].tolist() == [True, False, True, False]
    train, hidden = out[INTERACTS].edge_index, out[INTERACTS][HIDDEN]
    assert torch.bincount(train[0], minlength=4).tolist() == [2, 2, 2, 1]
    assert hidden.size(1) == 2 + 3
    # nothing lost, nothing invented, the training list stays sorted by user
    assert _pairs(torch.cat([train, hidden], 1)) == _pairs(TRAIN)
    assert torch.equal(train[0], train[0].sort().values)
    assert torch.equal(out[INTERACTS].test_edge_index, TEST)
    # the input is untouched
    assert torch.equal(data[INTERACTS].edge_index, TRAIN) and SIMULATED not in data["user"]
    half = simulate_cold_users(data, 2, 0.5, torch.Generator().manual_seed(0))
    assert int(half["user"][SIMULATED].sum()) == 1


@pytest.mark.parametrize("k,share,msg", [
    (0, 0.5, "simulate_cold must be an integer >= 1"),
    (2, 0.0, r"simulate_cold_share must lie in \(0, 1\], got 0.0"),
    (5, 0.5, "simulate_cold=5: no test user has more than 5 training interactions.*the most "
             "is 5"),
])
def test_bad_simulation_settings_are_clear_errors(k, share, msg):
    with pytest.raises(ConfigError, match=msg):
        simulate_cold_users(_data(), k, share, torch.Generator())


def test_what_the_simulation_hid_is_masked_at_ranking_and_the_slice_is_reported(tmp_path):
    # user 0 (tested, 3 items) is cut to 1; user 1 is not tested; user 2 has 1 item only
    train = torch.tensor([[0, 0, 0, 1, 1, 1, 1, 2],
                          [0, 1, 2, 0, 1, 2, 3, 3]])
    test = torch.tensor([[0, 2], [4, 4]])
    out = simulate_cold_users(interaction_data(3, 5, train, None, test), 1, 1.0,
                              torch.Generator().manual_seed(0))
    assert out["user"][SIMULATED].tolist() == [True, False, False]
    pop = MostPop(out, MethodConfig())
    trainer = Trainer(pop, out, tmp_path, epochs=0, ks=[2], monitor="ndcg@2",
                      generator=torch.Generator(), progress=False)
    res = trainer.fit()
    sim = res["test_slices"]["simulated_cold_users"]
    assert sim["size"] == {"interactions": 1, "users": 1, "items": 1}
    assert sim["rule"].startswith("the 1 test users cut down to <= 1 training interactions")
    # Training counts after the cut: item 3: 2; items 0-2: 1 or 2; item 4: 0.
    # User 0: its kept and its two hidden items are masked: 3, then 4: a hit at K=2 (unmasked,
    # the two hidden items would rank above 4). User 2 (item 3 masked): 0, 1, 2 before 4: a miss.
    assert sim["metrics"]["hit@2"] == 1.0
    assert res["test"]["hit@2"] == 0.5


def test_train_with_simulate_cold_records_it_and_evaluate_reproduces_it(tmp_path):
    ds = _recbole(tmp_path / "tiny", 30, 25, 0)
    run = tmp_path / "run"
    res = cli("train", "-m", "lightgcn", "-d", str(ds), "--epochs", "1", "--out", str(run),
              "--set", "emb_dim=8", "--set", "simulate_cold=2", "--set",
              "simulate_cold_share=0.5", "--no-progress", "--threads", "1")
    assert res.exit_code == 0, res.output
    assert "simulated_cold_users: the 15 test users cut down to <= 2" in res.output
    results = json.loads((run / "results.json").read_text())
    # 30 users with 8 interactions each, one of them held out per user for testing
    assert results["cold_simulation"]["users"] == 15 and results["cold_simulation"]["k"] == 2
    assert results["data"]["train"] + results["cold_simulation"]["hidden_interactions"] \
        + results["data"]["val"] + results["data"]["test"] == 30 * 8
    res = cli("evaluate", str(run))  # the same users are cut again: the fingerprint matches
    assert res.exit_code == 0, res.output
    assert f"{results['test']['recall@20']:.4f}" in res.output
    # recommend never offers a simulated user the items the simulation hid from the graph
    from ssgraphrec.train import load_run
    from ssgraphrec.train.recommend import recommend_for_user

    loaded = load_run(run, "cpu")
    user = int(loaded.data["user"][SIMULATED].nonzero()[0])
    hidden = loaded.data[INTERACTS][HIDDEN]
    raw_items = loaded.data["item"].raw_id
    hid = {raw_items[i] for i in hidden[1, hidden[0] == user].tolist()}
    assert len(hid) == 8 - 1 - 2 - int((loaded.data[INTERACTS].val_edge_index[0] == user).sum())
    offered = {item for item, _ in recommend_for_user(loaded, loaded.data["user"].raw_id[user], 25)}
    assert offered and not offered & hid
