"""Next-item evaluation against hand-computed ranks; task checks of the trainer and runner."""

from __future__ import annotations

import math

import pytest
import torch

from ssgraphrec.config import RunConfig
from ssgraphrec.data.sessions import session_data
from ssgraphrec.errors import ConfigError, SSGraphRecError
from ssgraphrec.eval.next_item import evaluate_next_item, history_pairs, rank_metrics
from ssgraphrec.methods import METHODS
from ssgraphrec.methods.base import MethodConfig
from ssgraphrec.train import Trainer
from ssgraphrec.train.run import DEFAULT_CUTOFFS


def toy_sessions():
    # sessions 0, 1 train; 2, 3 test; 5 items
    return session_data([[0, 1], [1, 2], [2, 3], [4]], 5, targets=[2, 3, 4, 0],
                        split=torch.tensor([0, 0, 2, 2]))


def fixed_scores(table):
    table = torch.tensor(table, dtype=torch.float)
    return lambda samples, split: table[samples]


def test_ranks_give_hand_computed_hit_ndcg_mrr():
    data = toy_sessions()
    # test sample 2 (target 4): items 0, 1, 3 score higher -> rank 4
    # test sample 3 (target 0): nothing scores higher       -> rank 1
    score = fixed_scores([[0] * 5, [0] * 5, [5, 4, 0, 3, 2], [9, 1, 1, 1, 1]])
    out = evaluate_next_item(score, data, "test", 5, ks=[1, 3, 5])
    assert out["samples_evaluated"] == 2 and out["history_masked"] is False
    assert out["hit@1"] == pytest.approx(0.5) and out["hit@3"] == pytest.approx(0.5)
    assert out["hit@5"] == pytest.approx(1.0)
    assert out["mrr@3"] == pytest.approx(0.5) and out["mrr@5"] == pytest.approx((1 + 1 / 4) / 2)
    assert out["ndcg@5"] == pytest.approx((1 + 1 / math.log2(5)) / 2)


def test_mask_history_removes_input_items_but_never_the_target():
    data = toy_sessions()
    # sample 2's input is {2, 3}; with them masked, only items 0 and 1 beat target 4 -> rank 3
    score = fixed_scores([[0] * 5, [0] * 5, [5, 4, 9, 3, 2], [9, 1, 1, 1, 1]])
    plain = evaluate_next_item(score, data, "test", 5, ks=[3])
    masked = evaluate_next_item(score, data, "test", 5, ks=[3], mask_history=True)
    assert plain["hit@3"] == pytest.approx(0.5)        # rank 5 for sample 2
    assert masked["hit@3"] == pytest.approx(1.0) and masked["history_masked"] is True
    rows, items = history_pairs(data, torch.tensor([2, 3]), "test")
    assert sorted(zip(rows.tolist(), items.tolist(), strict=True)) == [(0, 2), (0, 3), (1, 4)]


def test_sequence_history_at_test_time_includes_the_validation_item():
    data = session_data([[0, 1]], 4, users=torch.tensor([0]))
    data["session"].val_target = torch.tensor([2])
    data["session"].test_target = torch.tensor([3])
    rows, items = history_pairs(data, torch.tensor([0]), "test")
    assert sorted(items.tolist()) == [0, 1, 2]
    rows, items = history_pairs(data, torch.tensor([0]), "val")
    assert sorted(items.tolist()) == [0, 1]


def test_rank_metrics_at_the_cut_off_boundary():
    out = rank_metrics(torch.tensor([1, 10, 11]), [10])
    assert out["hit@10"].tolist() == [1.0, 1.0, 0.0]
    assert out["mrr@10"].tolist() == pytest.approx([1.0, 0.1, 0.0])


def test_mostpop_ranks_session_data_and_graph_methods_refuse_it(tmp_path):
    data = toy_sessions()
    mostpop = METHODS.get("mostpop")(data, MethodConfig())
    # training items 0,1,1,2 plus labels 2,3 -> popularity [1, 2, 2, 1, 0]
    assert mostpop.popularity.view(-1).tolist() == [1, 2, 2, 1, 0]
    trainer = Trainer(mostpop, data, tmp_path, epochs=0, ks=[1, 5], monitor="hit@5",
                      generator=torch.Generator(), progress=False)
    out = trainer.evaluate("test")
    # target 4 has popularity 0 -> rank 5; target 0 ties with item 3 and trails 1, 2 -> rank 3
    assert out["hit@5"] == pytest.approx(1.0) and out["mrr@5"] == pytest.approx((1 / 5 + 1 / 3) / 2)
    with pytest.raises(ConfigError, match="monitor"):
        Trainer(mostpop, data, tmp_path, epochs=0, ks=[1, 5], generator=torch.Generator(),
                monitor="recall@5", progress=False)


def test_a_user_item_method_on_session_data_is_a_clear_error(monkeypatch):
    from ssgraphrec.train import run as run_module

    wide = session_data([[0, 1], [1, 2], [2, 3], [4]], 25, targets=[2, 3, 4, 0],
                        split=torch.tensor([0, 0, 2, 2]))
    monkeypatch.setattr(run_module, "load_dataset", lambda *a, **k: wide)
    with pytest.raises(SSGraphRecError, match="holds next_item data; methods for it: .*mostpop"):
        run_module.build(RunConfig(method="lightgcn", dataset="toy"))
    run = run_module.build(RunConfig(method="mostpop", dataset="toy", eval_ks=None))
    assert run.cfg.eval_ks == list(DEFAULT_CUTOFFS["next_item"])


def test_empty_test_split_is_reported():
    data = session_data([[0, 1], [1, 2]], 3, targets=[2, 0], split=torch.tensor([0, 0]))
    with pytest.raises(SSGraphRecError, match="test split is empty"):
        evaluate_next_item(fixed_scores([[0, 0, 0]] * 2), data, "test", 3, ks=[1])


def test_train_fraction_keeps_a_seeded_subset_of_the_training_samples():
    from ssgraphrec.methods.base import SessionMethod

    data = session_data([[0, 1]] * 40, 3, targets=[2] * 40, split=torch.tensor([0] * 36 + [2] * 4))
    method = SessionMethod(data, MethodConfig(batch_size=4))
    method.restrict_training(0.25, torch.Generator().manual_seed(1))
    kept = method.train_samples.tolist()
    assert len(kept) == 9 and kept == sorted(kept) and set(kept) <= set(range(36))
    again = SessionMethod(data, MethodConfig(batch_size=4))
    again.restrict_training(0.25, torch.Generator().manual_seed(1))
    assert again.train_samples.tolist() == kept and method.num_train_batches() == 3
    with pytest.raises(ConfigError, match="train_fraction"):
        again.restrict_training(0.0, torch.Generator())


def test_recommend_on_a_session_run_is_a_clear_error():
    from types import SimpleNamespace

    from ssgraphrec.train.recommend import recommend_for_user

    with pytest.raises(SSGraphRecError, match="recommend works on user-item runs; this run holds next_item"):
        recommend_for_user(SimpleNamespace(data=toy_sessions()), "0")


def test_all_nan_scores_are_refused_not_counted_as_hits():
    data = toy_sessions()
    nan = float("nan")
    with pytest.raises(SSGraphRecError, match="test evaluation: the model's scores are not finite"):
        evaluate_next_item(fixed_scores([[nan] * 5] * 4), data, "test", 5, ks=[1])
