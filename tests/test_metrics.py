"""Ranking metrics against values computed by hand."""

import math

import pytest
import torch

from ssgraphrec.errors import SSGraphRecError
from ssgraphrec.eval import evaluate_ranking, ranking_metrics
from ssgraphrec.eval.ranking import dot_scores


def test_metrics_of_a_toy_ranking_match_hand_computed_values():
    # user 0: hits at ranks 1 and 3 of 5, 3 relevant items in total
    # user 1: one hit at rank 2, 1 relevant item
    hits = torch.tensor([[1, 0, 1, 0, 0], [0, 1, 0, 0, 0]], dtype=torch.bool)
    n_rel = torch.tensor([3, 1])
    m = ranking_metrics(hits, n_rel, [1, 3, 5])
    assert m["recall@3"].tolist() == pytest.approx([2 / 3, 1.0])
    assert m["recall@1"].tolist() == pytest.approx([1 / 3, 0.0])
    assert m["precision@5"].tolist() == pytest.approx([2 / 5, 1 / 5])
    assert m["hit@1"].tolist() == [1.0, 0.0]
    assert m["mrr@5"].tolist() == pytest.approx([1.0, 0.5])
    assert m["mrr@1"].tolist() == pytest.approx([1.0, 0.0])
    # NDCG@3, user 0: DCG = 1/log2(2) + 1/log2(4) = 1.5; IDCG over min(3,3)=3 hits
    idcg3 = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    assert m["ndcg@3"][0].item() == pytest.approx(1.5 / idcg3)
    # user 1: DCG = 1/log2(3); IDCG over min(1, 3) = 1 hit = 1
    assert m["ndcg@3"][1].item() == pytest.approx(1 / math.log2(3))
    # NDCG@1, user 0: a hit at rank 1 with 3 relevant -> IDCG over min(3,1)=1 -> 1.0
    assert m["ndcg@1"][0].item() == pytest.approx(1.0)


def test_full_ranking_masks_training_items_and_skips_users_without_targets():
    # 3 users, 4 items; scores are fixed by embeddings: item 3 > 2 > 1 > 0 for all users.
    user_emb = torch.ones(3, 1)
    item_emb = torch.tensor([[0.0], [1.0], [2.0], [3.0]])
    train = torch.tensor([[0, 1], [3, 3]])  # user 0 has item 3, user 1 has item 3
    test = torch.tensor([[0, 1], [2, 0]])  # user 0 -> item 2, user 1 -> item 0; user 2 none
    out = evaluate_ranking(dot_scores(user_emb, item_emb), test, [train], 3, 4, ks=[1, 2])
    # user 0: item 3 masked -> ranking 2, 1, 0: hit at rank 1.
    # user 1: item 3 masked -> ranking 2, 1, 0: item 0 at rank 3: no hit in top 2.
    assert out["recall@1"] == pytest.approx(0.5)
    assert out["hit@2"] == pytest.approx(0.5)
    assert out["ndcg@2"] == pytest.approx(0.5)
    assert out["users_evaluated"] == 2 and out["users_skipped"] == 1
    # top-2 lists are {2, 1} for both users: 2 of 4 items covered.
    assert out["coverage@2"] == pytest.approx(0.5)


def test_unmasked_training_item_would_change_the_result():
    user_emb = torch.ones(1, 1)
    item_emb = torch.tensor([[0.0], [1.0], [2.0]])
    test = torch.tensor([[0], [1]])
    with_mask = evaluate_ranking(dot_scores(user_emb, item_emb), test,
                                 [torch.tensor([[0], [2]])], 1, 3, ks=[1])
    without = evaluate_ranking(dot_scores(user_emb, item_emb), test, [], 1, 3, ks=[1])
    assert with_mask["recall@1"] == 1.0 and without["recall@1"] == 0.0


def test_k_larger_than_item_count_and_empty_split_are_clear_errors():
    emb = torch.ones(2, 1)
    test = torch.tensor([[0], [1]])
    with pytest.raises(SSGraphRecError, match="larger than the number of items"):
        evaluate_ranking(dot_scores(emb, emb), test, [], 2, 2, ks=[3])
    with pytest.raises(SSGraphRecError, match="test split is empty"):
        evaluate_ranking(dot_scores(emb, emb), torch.zeros(2, 0, dtype=torch.long), [], 2, 2,
                         ks=[1])


def test_evaluation_blocks_change_nothing_and_the_automatic_block_is_bounded():
    from ssgraphrec.train.trainer import EVAL_BLOCK_SCORES, auto_eval_batch_size

    g = torch.Generator().manual_seed(0)
    users, items = torch.randn(50, 4, generator=g), torch.randn(30, 4, generator=g)
    pairs = torch.stack([torch.arange(50).repeat_interleave(3), torch.randint(0, 30, (150,),
                                                                               generator=g)])
    order = torch.argsort(pairs[0] * 30 + pairs[1])
    test, train = pairs[:, order[::2]], pairs[:, order[1::2]]
    test = test[:, torch.argsort(test[0], stable=True)]
    train = train[:, torch.argsort(train[0], stable=True)]
    whole = evaluate_ranking(dot_scores(users, items), test, [train], 50, 30, ks=[5, 10],
                             batch_size=50)
    for block in (1, 7, 64):
        assert evaluate_ranking(dot_scores(users, items), test, [train], 50, 30, ks=[5, 10],
                                batch_size=block) == pytest.approx(whole)
    assert auto_eval_batch_size(17_632) == EVAL_BLOCK_SCORES // 17_632  # lastfm: 475 users
    assert auto_eval_batch_size(10) == 1024 and auto_eval_batch_size(10**7) == 64


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_scores_are_refused_not_ranked(bad):
    user_emb = torch.ones(3, 1)
    item_emb = torch.tensor([[0.0], [1.0], [2.0], [3.0]])
    test = torch.tensor([[0, 1, 2], [2, 0, 1]])
    fine = evaluate_ranking(dot_scores(user_emb, item_emb), test, [], 3, 4, ks=[1])
    assert fine["users_evaluated"] == 3
    item_emb[1, 0] = bad
    with pytest.raises(SSGraphRecError, match=r"scores are not finite .* for 3 of 3 rows"):
        evaluate_ranking(dot_scores(user_emb, item_emb), test, [], 3, 4, ks=[1])
