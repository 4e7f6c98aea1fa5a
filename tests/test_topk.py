"""The exact top-k of evaluation (ssgraphrec.eval.topk) and the reused score block."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ssgraphrec.errors import SSGraphRecError
from ssgraphrec.eval.ranking import check_finite_scores, dot_scores, evaluate_ranking
from ssgraphrec.eval.topk import MIN_GROUP_SIZE, MIN_GROUPS_PER_KEPT, group_size, topk_rows


def takes_candidate_path(num_items: int, k: int) -> bool:
    c = group_size(num_items, k)
    return c >= MIN_GROUP_SIZE and num_items // c >= MIN_GROUPS_PER_KEPT * (k + 1)


def assert_equals_torch_topk(scores: torch.Tensor, k: int) -> None:
    values, indices = topk_rows(scores, k)
    reference = torch.topk(scores, k, dim=1)
    assert torch.equal(values, reference.values)
    assert torch.equal(indices, reference.indices)


@pytest.mark.parametrize(("num_items", "k"), [(17_632, 20), (40_981, 20), (40_981, 100),
                                               (17_632, 50), (3_000, 10), (50, 10)])
def test_equals_torch_topk_with_masked_items(num_items, k):
    g = torch.Generator().manual_seed(num_items + k)
    scores = torch.randn(64, num_items, generator=g)
    scores[torch.rand(scores.shape, generator=g) < 0.3] = -float("inf")
    scores[5] = -float("inf")             # a user with fewer than k items left
    scores[5, :3] = torch.tensor([1.0, 3.0, 2.0])
    assert_equals_torch_topk(scores, k)


def test_the_fast_path_is_taken_on_the_benchmark_catalogues():
    # The cases above would pass trivially if every one fell back to torch.topk.
    assert takes_candidate_path(17_632, 20) and takes_candidate_path(40_981, 20)
    assert takes_candidate_path(3_000, 10)
    assert not takes_candidate_path(50, 10)


def test_all_best_items_in_one_group():
    # The k best items in the same interleaved group {g, g + n, ...}: every other kept
    # group holds only smaller values, and the result must still be exact.
    num_items, k = 17_632, 20
    c = group_size(num_items, k)
    n = num_items // c
    scores = torch.rand(4, num_items)
    scores[:, 7 + n * torch.arange(c)] = 10 + torch.arange(c, dtype=torch.float)
    scores[:, 9 + n * torch.arange(c)] = 5 + torch.arange(c, dtype=torch.float)
    scores[:, n * c:] = 7.5                # the columns outside the groups, tied
    assert_equals_torch_topk(scores, k)


def test_ties_come_out_in_torch_topk_order():
    # Popularity scores: few distinct values, so ties straddle the k-th place.
    g = torch.Generator().manual_seed(0)
    popular = torch.randint(0, 40, (1, 17_632), generator=g).float().expand(16, -1).clone()
    popular[torch.rand(popular.shape, generator=g) < 0.1] = -float("inf")
    assert_equals_torch_topk(popular, 20)


def test_non_contiguous_block():
    scores = torch.randn(17_632, 32).t()
    assert not scores.is_contiguous()
    assert_equals_torch_topk(scores, 20)


@settings(max_examples=40, deadline=None)
@given(rows=st.integers(1, 6), num_items=st.integers(1, 4_000), k=st.integers(1, 60),
       levels=st.sampled_from([0, 3, 1000]), seed=st.integers(0, 2**16))
def test_property_equals_torch_topk(rows, num_items, k, levels, seed):
    k = min(k, num_items)
    g = torch.Generator().manual_seed(seed)
    scores = (torch.randint(0, levels, (rows, num_items), generator=g).float() if levels
              else torch.randn(rows, num_items, generator=g))
    assert_equals_torch_topk(scores, k)


def test_dot_scores_reuses_one_block_and_equals_the_product():
    g = torch.Generator().manual_seed(1)
    users, items = torch.randn(50, 8, generator=g), torch.randn(300, 8, generator=g)
    score = dot_scores(users, items)
    with torch.no_grad():
        first = score(torch.arange(20))
        assert torch.equal(first, users[:20] @ items.t())
        second = score(torch.arange(20, 30))      # a smaller batch: a view of the same block
        assert second.data_ptr() == first.data_ptr()
        assert torch.equal(second, users[20:30] @ items.t())
        larger = score(torch.arange(50))
        assert torch.equal(larger, users @ items.t())


def test_dot_scores_keeps_the_graph_under_autograd():
    users = torch.randn(5, 4, requires_grad=True)
    items = torch.randn(7, 4)
    out = dot_scores(users, items)(torch.arange(5))
    out.sum().backward()
    assert torch.allclose(users.grad, items.sum(0).expand(5, -1))


def test_evaluation_does_not_write_into_the_callers_scores():
    # A score function that returns views of its own table: masking must not change it.
    table = torch.randn(30, 40)
    kept = table.clone()
    train = torch.stack([torch.arange(30), torch.arange(30) % 40])
    test = torch.stack([torch.arange(30), (torch.arange(30) + 1) % 40])
    evaluate_ranking(lambda users: table[users.min():users.max() + 1], test, [train], 30, 40,
                     ks=[5], batch_size=8)
    assert torch.equal(table, kept)


def test_finite_check_survives_a_float32_overflow_of_finite_scores():
    # The float32 sum of these finite scores overflows; the float64 sum decides.
    big = torch.full((4, 10), 3e38)
    assert check_finite_scores(big) is big
    big[2, 3] = float("nan")
    with pytest.raises(SSGraphRecError, match="not finite"):
        check_finite_scores(big)


def _tied_block(rows: int, num_items: int, seed: int) -> torch.Tensor:
    """Scores on a few levels: nearly every row ties among its best items."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 6, (rows, num_items), generator=g).float()


def test_block_top_k_turns_the_candidates_off_after_a_tied_block_and_stays_exact(monkeypatch):
    import ssgraphrec.eval.topk as topk_module

    candidate_calls = []
    real = topk_module._topk_rows
    monkeypatch.setattr(topk_module, "_topk_rows",
                        lambda s, k: candidate_calls.append(s.size(0)) or real(s, k))
    g = torch.Generator().manual_seed(3)
    plain = [torch.randn(40, 3_000, generator=g) for _ in range(2)]
    tied = _tied_block(40, 3_000, seed=4)
    top = topk_module.BlockTopK()
    for block in [*plain, tied, plain[0], tied]:
        values, indices = top(block, 10)
        reference = torch.topk(block, 10, dim=1)
        assert torch.equal(values, reference.values) and torch.equal(indices, reference.indices)
    assert candidate_calls == [40, 40, 40]        # the tied block turned them off
    assert not top.candidates
    fresh = topk_module.BlockTopK()
    for block in plain:                           # blocks without ties keep them
        fresh(block, 10)
    assert fresh.candidates and len(candidate_calls) == 5


def test_an_evaluation_with_tied_scores_switches_to_torch_topk_with_the_same_metrics():
    """Dot-product scores on a few levels (users and items of integer entries) tie in
    most rows: the evaluation's top-k switches after the first block, and its metrics
    equal those of a score function that always ranks with the candidates."""
    g = torch.Generator().manual_seed(5)
    users = torch.randint(0, 2, (300, 4), generator=g).float()
    items = torch.randint(0, 2, (3_000, 4), generator=g).float()
    target = torch.stack([torch.arange(300), torch.randint(0, 3_000, (300,), generator=g)])
    exclude = [torch.stack([torch.arange(300), torch.randint(0, 3_000, (300,), generator=g)])]
    score = dot_scores(users, items)
    score.prune = False                           # every item scored, as XSimGCL's often are
    metrics = evaluate_ranking(score, target, exclude, 300, 3_000, batch_size=100)
    assert not score.topk.candidates
    reference = evaluate_ranking(lambda u: users[u] @ items.t(), target, exclude, 300, 3_000,
                                 batch_size=100)
    assert metrics == reference
