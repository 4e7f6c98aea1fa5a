"""Cold-start and head/tail evaluation slices: exact membership, exact metrics, clear errors."""

import pytest
import torch

from ssgraphrec.data.schema import interaction_data
from ssgraphrec.errors import ConfigError
from ssgraphrec.eval import dot_scores, evaluate_ranking
from ssgraphrec.eval.slices import build_slices, evaluate_slices, head_item_mask
from ssgraphrec.methods import MostPop
from ssgraphrec.methods.base import MethodConfig
from ssgraphrec.train import Trainer

# 4 users, 5 items. Training counts: users 3, 1, 2, 1; items 3, 2, 1, 1, 0.
TRAIN = torch.tensor([[0, 0, 0, 1, 2, 2, 3],
                      [0, 1, 2, 0, 0, 1, 3]])
TEST = torch.tensor([[0, 1, 1, 2, 3],
                     [3, 2, 4, 3, 1]])


def pairs(t):
    return sorted(zip(t[0].tolist(), t[1].tolist(), strict=True))


def test_cold_slices_hold_exactly_the_rare_users_and_items():
    cold_users, cold_items = build_slices(TRAIN, TEST, 4, 5, cold_threshold=1)
    # users 1 and 3 have one training interaction each
    assert pairs(cold_users.target) == [(1, 2), (1, 4), (3, 1)]
    # items 2 and 3 (one interaction); item 4 has none: left out and counted; item 1 has two
    assert pairs(cold_items.target) == [(0, 3), (1, 2), (2, 3)]
    assert cold_items.size == {"interactions": 3, "users": 3, "items": 2}
    assert cold_items.excluded == 1 and cold_users.excluded == 0
    assert cold_items.rule == ("items with 1 to 1 training interactions; 1 test interactions "
                               "of items with none left out (no trained embedding: unrankable)")
    assert cold_users.size == {"interactions": 3, "users": 2, "items": 3}


def test_head_tail_split_by_training_count_with_ties_to_the_smaller_id():
    counts = torch.tensor([3, 2, 1, 1, 0])
    assert head_item_mask(counts, 0.4).tolist() == [True, True, False, False, False]
    # ceil(0.5 * 5) = 3: items 2 and 3 tie at one interaction, the smaller id wins
    assert head_item_mask(counts, 0.5).tolist() == [True, True, True, False, False]
    head, tail = build_slices(TRAIN, TEST, 4, 5, head_share=0.4)
    assert (head.name, tail.name) == ("head_items", "tail_items")
    assert pairs(head.target) == [(3, 1)]
    assert pairs(tail.target) == [(0, 3), (1, 2), (1, 4), (2, 3)]


def test_empty_cold_slice_names_the_slice_and_the_smallest_threshold():
    with pytest.raises(ConfigError, match=r"--cold-threshold must be >= 1 \(users and items "
                                          r"with no training interaction are left out\), got 0"):
        build_slices(TRAIN, TEST, 4, 5, cold_threshold=0)
    # item 4 is the only one of user 1's test items without training: cold_items holds the rest
    only_unseen = torch.tensor([[1], [4]])
    with pytest.raises(ConfigError, match="cold_items slice is empty: no test interaction has "
                                          "an item with a training interaction"):
        build_slices(TRAIN, only_unseen, 4, 5, cold_threshold=1)
    train = torch.tensor([[0, 0, 1, 1], [0, 1, 0, 1]])
    test = torch.tensor([[0, 1], [2, 2]])
    # the users have 2 interactions each; item 2 none, so only cold_users is empty at 1
    with pytest.raises(ConfigError, match="cold_users.*the fewest is 2"):
        build_slices(train, test, 2, 3, cold_threshold=1)


@pytest.mark.parametrize("kwargs,msg", [
    ({"cold_threshold": -1}, "--cold-threshold must be an integer >= 0"),
    ({"head_share": 1.0}, "--head-share must lie strictly between 0 and 1"),
    ({"head_share": 0.0}, "--head-share must lie strictly between 0 and 1"),
])
def test_bad_slice_settings_are_clear_errors(kwargs, msg):
    with pytest.raises(ConfigError, match=msg):
        build_slices(TRAIN, TEST, 4, 5, **kwargs)


def test_empty_tail_is_a_clear_error():
    test = torch.tensor([[0], [0]])  # only the most popular item is tested
    with pytest.raises(ConfigError, match="tail_items slice is empty at --head-share 0.2"):
        build_slices(TRAIN, test, 4, 5, head_share=0.2)


def test_slice_metrics_rank_all_items_with_training_items_masked():
    # Item scores 4 > 3 > 2 > 1 > 0 for every user (popularity order reversed on purpose).
    item_emb = torch.tensor([[0.0], [1.0], [2.0], [3.0], [4.0]])
    user_emb = torch.ones(4, 1)
    cold_items, = [s for s in build_slices(TRAIN, TEST, 4, 5, cold_threshold=2)
                   if s.name == "cold_items"]
    out = evaluate_slices([cold_items], lambda t: evaluate_ranking(
        dot_scores(user_emb, item_emb), t, [TRAIN], 4, 5, ks=[1]))
    m = out["cold_items"]["metrics"]
    # the slice at 2: (0, 3), (1, 2), (2, 3), (3, 1); item 4 (untrained) is left out
    # user 0 (train 0,1,2): ranking 4, 3 -> test item 3 at rank 2: miss at K=1
    # user 1 (train 0): ranking 4, 3, 2, 1 -> item 2 at rank 3: miss (4 is ranked, not a hit)
    # user 2 (train 0,1): ranking 4, 3 -> item 3 at rank 2: miss
    # user 3 (train 3): ranking 4, 2, 1 -> item 1 at rank 3: miss
    assert m["users_evaluated"] == 4
    assert m["recall@1"] == 0.0 and m["hit@1"] == 0.0
    assert out["cold_items"]["size"]["interactions"] == 4
    assert out["cold_items"]["excluded"] == 1


def test_trainer_writes_slices_beside_the_overall_metrics(tmp_path):
    data = interaction_data(4, 5, TRAIN, None, TEST)
    pop = MostPop(data, MethodConfig())
    trainer = Trainer(pop, data, tmp_path, epochs=0, ks=[1, 2], monitor="ndcg@2",
                      generator=torch.Generator(), progress=False, cold_threshold=1,
                      head_share=0.4)
    res = trainer.fit()
    assert set(res["test_slices"]) == {"cold_users", "cold_items", "head_items", "tail_items"}
    # The head slice holds only user 3's test item 1; popularity ranks item 0 (3 training
    # interactions) first and item 1 (2) second for user 3, who trained on item 3 only.
    head = res["test_slices"]["head_items"]["metrics"]
    assert head["recall@1"] == 0.0 and head["recall@2"] == 1.0
    with pytest.raises(ConfigError, match="--cold-threshold must be >= 1"):
        Trainer(pop, data, tmp_path, epochs=0, ks=[1], monitor="ndcg@1",
                generator=torch.Generator(), progress=False, cold_threshold=0)


def test_ml100k_cold_slices_at_the_documented_thresholds(data_root, real_dataset):
    from ssgraphrec.data import load_dataset
    from ssgraphrec.data.schema import INTERACTS

    real_dataset("ml-100k")
    data = load_dataset("ml-100k", seed=2020, root=str(data_root))
    store = data[INTERACTS]
    args = (store.edge_index, store.test_edge_index, 943, 1682)
    with pytest.raises(ConfigError, match="cold_users.*the fewest is 15"):
        build_slices(*args, cold_threshold=10)
    sizes = {s.name: s.size for s in build_slices(*args, cold_threshold=20)}
    assert sizes["cold_users"]["users"] == 172 and sizes["cold_users"]["interactions"] == 739
    # items with 1 to 20 training interactions; 44 test interactions of 39 items without any
    # are left out (counted with numpy from the split)
    assert sizes["cold_items"]["items"] == 559 and sizes["cold_items"]["interactions"] == 1626
    excluded = {s.name: s.excluded for s in build_slices(*args, cold_threshold=20)}
    assert excluded == {"cold_users": 0, "cold_items": 44}
