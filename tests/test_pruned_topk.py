"""The norm-bounded top-k (ssgraphrec/eval/pruned.py) equals torch.topk over every item,
scores each user only as far as its bound needs, and its products give every entry to
the bit whatever the rows beside it."""

import math

import pytest
import torch

from ssgraphrec.eval import pruned
from ssgraphrec.eval.pruned import NormSortedItems, pruned_topk, row_stable_mm
from ssgraphrec.eval.ranking import DotScores, evaluate_ranking, top_k

K = 10


def _embeddings(users=300, items=2000, d=16, seed=0, spread=1.0):
    """Users, and items whose norms vary like trained ones (popular items larger)."""
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(users, d, generator=g) + 0.5
    scale = torch.exp(spread * torch.randn(items, 1, generator=g))
    i = (torch.randn(items, d, generator=g) + 0.5) * scale
    return u, i


def _excluded(users, items, per_user=20, seed=1):
    g = torch.Generator().manual_seed(seed)
    rows = torch.arange(users).repeat_interleave(per_user)
    return rows, torch.randint(0, items, (rows.numel(),), generator=g)


def _reference(u, i, excluded, k):
    scores = u @ i.t()
    scores[excluded[0], excluded[1]] = -float("inf")
    top = torch.topk(scores, k, dim=1)
    return top.values, top.indices, scores


def _pruned(u, i, excluded, k, items=None):
    items = items or NormSortedItems(i)
    calls = []

    def whole(rows):
        calls.append(rows.numel())
        _, _, scores = _reference(u, i, excluded, k)
        top = torch.topk(scores[rows], k, dim=1)
        return top.values, top.indices

    values, indices = pruned_topk(u, items, excluded, k, whole)
    return values, indices, calls


@pytest.mark.parametrize("spread", [1.0, 0.0])
def test_equals_torch_topk_over_every_item(spread):
    u, i = _embeddings(spread=spread)
    excluded = _excluded(u.size(0), i.size(0))
    ref_v, ref_i, _ = _reference(u, i, excluded, K)
    values, indices, _ = _pruned(u, i, excluded, K)
    assert torch.equal(indices, ref_i) and torch.equal(values, ref_v)
    if spread:                        # users done after the first slice, and users needing more
        items = NormSortedItems(i)
        first = max(i.size(0) // pruned.FIRST_SHARE, pruned.FIRST_PER_K * (K + 1))
        need = items.needed(u.double().norm(dim=1), ref_v[:, -1])
        assert (need <= first).any() and (need > first).any() and (need < i.size(0)).all()


def test_users_are_scored_slice_by_slice_only_as_far_as_their_bound_needs(monkeypatch):
    u, i = _embeddings(users=300, items=4000)
    excluded = _excluded(u.size(0), i.size(0))
    blocks, ranked = [], []
    real_mm, real_topk = pruned.row_stable_mm, pruned.topk_rows

    def spy_mm(queries, items, out=None):
        blocks.append((queries.size(0), items.size(0)))
        return real_mm(queries, items, out)

    def spy_topk(scores, k):
        ranked.append(scores.size(0))
        return real_topk(scores, k)

    monkeypatch.setattr(pruned, "row_stable_mm", spy_mm)
    monkeypatch.setattr(pruned, "topk_rows", spy_topk)
    ref_v, ref_i, _ = _reference(u, i, excluded, K)
    values, indices, _ = _pruned(u, i, excluded, K)
    assert torch.equal(indices, ref_i) and torch.equal(values, ref_v)
    rows, widths = zip(*blocks, strict=True)
    first = max(4000 // pruned.FIRST_SHARE, pruned.FIRST_PER_K * (K + 1))
    ends = torch.tensor(widths).cumsum(0).tolist()
    assert rows[0] == 300 and ends[0] == first
    assert all(a < b <= max(math.ceil(a * pruned.GROWTH), a + pruned.MIN_COLUMNS) or b == 4000
               for a, b in zip(ends, ends[1:], strict=False))
    assert list(rows) == sorted(rows, reverse=True) and len(rows) > 2   # users drop out
    assert sum(r * w for r, w in blocks) < 0.5 * 300 * 4000
    # every user whose final k-th score does not rule out the second slice was scored on it
    need = NormSortedItems(i).needed(u.double().norm(dim=1), ref_v[:, -1])
    assert 0 < int((need > ends[0]).sum()) <= rows[1]
    # later slices rank only the rows with a score above their (k + 1)-th kept one
    assert ranked[0] == 300 and sum(ranked[1:]) < sum(rows[1:])


def test_products_do_not_depend_on_the_rows_beside_them():
    """MKL rounds a block of 1 to 3 rows differently from a larger one; padded, a
    user's scores are the same to the bit in a block of any size."""
    u, i = _embeddings(users=64, items=700, d=64)
    whole = u @ i.t()
    for rows in range(1, 14):
        assert torch.equal(row_stable_mm(u[:rows], i), whole[:rows])
        assert torch.equal(row_stable_mm(u[:rows], i[100:300]), whole[:rows, 100:300])
    with torch.no_grad():
        assert torch.equal(DotScores(u, i)(torch.tensor([5])), whole[5:6])
        assert torch.equal(DotScores(u, i)(torch.tensor([5, 9, 2, 40, 7])), whole[[5, 9, 2, 40, 7]])


def test_nothing_excluded():
    u, i = _embeddings(users=40)
    nothing = (torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long))
    ref_v, ref_i, _ = _reference(u, i, nothing, K)
    values, indices, _ = _pruned(u, i, nothing, K)
    assert torch.equal(indices, ref_i) and torch.equal(values, ref_v)


def test_ties_and_rows_with_too_few_items_come_out_in_torch_topk_order():
    u, i = _embeddings(users=50, items=1500)
    i[700:760] = i[3]                                 # 61 equal items: tied scores
    i[800:] = i[800:] * 0                             # 700 zero items: tied zero scores
    rows = torch.tensor([0] * 1490 + [1] * 1500)      # user 0 keeps 10 items, user 1 none
    cols = torch.cat([torch.arange(10, 1500), torch.arange(1500)])
    excluded = (rows, cols)
    ref_v, ref_i, _ = _reference(u, i, excluded, K)
    values, indices, calls = _pruned(u, i, excluded, K)
    assert torch.equal(indices, ref_i) and torch.equal(values, ref_v)
    assert calls                                      # tied rows were ranked again whole


def test_a_user_the_bound_cannot_prune_takes_the_plain_path():
    u, i = _embeddings(users=8, items=1500)
    i = i.abs()
    u[3] = -u[3].abs() - 0.1                          # every score negative: nothing pruned
    nothing = (torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long))
    ref_v, ref_i, scores = _reference(u, i, nothing, K)
    plain = []

    def whole(rows):
        plain.append(rows)
        top = torch.topk(scores[rows], K, dim=1)
        return top.values, top.indices

    values, indices = pruned_topk(u, NormSortedItems(i), nothing, K, whole)
    assert torch.equal(indices, ref_i) and torch.equal(values, ref_v)
    assert torch.cat(plain).tolist() == [3]


def test_items_along_the_user_make_the_bound_tight_and_it_still_holds():
    g = torch.Generator().manual_seed(3)
    d = 32
    u = torch.randn(4, d, generator=g)
    direction = u[0] / u[0].norm()
    norms = torch.linspace(2.0, 1.0, 1500)
    i = torch.randn(1500, d, generator=g) * 0.5
    i[:40] = norms[:40, None] * direction             # scores exactly at the bound
    excluded = (torch.tensor([0] * 5), torch.tensor([0, 1, 2, 3, 4]))
    ref_v, ref_i, _ = _reference(u, i, excluded, K)
    values, indices, _ = _pruned(u, i, excluded, K)
    assert torch.equal(indices, ref_i) and torch.equal(values, ref_v)


def test_a_bound_without_its_rounding_slack_or_too_low_gives_a_wrong_top_k():
    """Positive control: the comparison catches a bound that prunes too much (norms of
    one scale, so that the best items are not all among those of largest norm)."""
    u, i = _embeddings(spread=0.0)
    excluded = _excluded(u.size(0), i.size(0))
    ref_v, ref_i, _ = _reference(u, i, excluded, K)
    items = NormSortedItems(i)
    items.slack = 1e-3                                # prunes past the first slice
    _, indices, _ = _pruned(u, i, excluded, K, items)
    assert not torch.equal(indices, ref_i)


def _train_test(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Train and test pairs of 400 users and 3,000 items, sorted by user, disjoint."""
    g = torch.Generator().manual_seed(seed)
    pairs = torch.stack([torch.randint(0, 400, (6000,), generator=g),
                         torch.randint(0, 3000, (6000,), generator=g)])
    pairs = torch.unique(pairs, dim=1)                 # sorted by user, no duplicates
    return pairs[:, ::2], pairs[:, 1::2]


def _count_pruned_calls(monkeypatch) -> list[int]:
    """A list that grows by one per call of the norm-bounded top-k."""
    used: list[int] = []
    real = pruned.pruned_topk
    monkeypatch.setattr("ssgraphrec.eval.ranking.pruned_topk",
                        lambda *a, **kw: used.append(1) or real(*a, **kw))
    return used


def _metrics_pruned_and_not(u, i, train, test, batch_size: int) -> tuple[dict, DotScores]:
    """``evaluate_ranking``'s metrics with the bound allowed (``True``) and not; and the
    score function of the first, as the evaluation left it."""
    results, allowed = {}, DotScores(u, i)
    for prune in (True, False):
        scores = allowed if prune else DotScores(u, i)
        scores.prune = prune
        results[prune] = evaluate_ranking(scores, test, [train], 400, 3000, ks=(5, 20),
                                          batch_size=batch_size)
    return results, allowed


def test_evaluate_ranking_gives_the_same_metrics_pruned_or_not(monkeypatch):
    u, i = _embeddings(users=400, items=3000, d=32)
    train, test = _train_test(5)
    used = _count_pruned_calls(monkeypatch)
    results, _ = _metrics_pruned_and_not(u, i, train, test, 128)
    assert used                                        # the pruned path ran
    assert results[True] == results[False]
    assert results[True]["recall@20"] > 0
    saved = torch.get_float32_matmul_precision()
    with torch.no_grad():
        torch.set_float32_matmul_precision("medium")  # reduced precision: not bounded
        try:
            assert not DotScores(u, i).can_prune(torch.arange(4), 20)
        finally:
            torch.set_float32_matmul_precision(saved)
        assert DotScores(u, i).can_prune(torch.arange(4), 20)


@pytest.mark.parametrize("unprunable", [True, False])
def test_a_batch_ranked_plainly_turns_the_bound_off_for_the_later_batches(unprunable,
                                                                          monkeypatch):
    u, i = _embeddings(users=400, items=3000, d=32)
    i = i.abs()
    if unprunable:                  # every score negative: no row can be pruned
        u = -u.abs() - 0.1
    train, test = _train_test(6)
    used = _count_pruned_calls(monkeypatch)
    results, allowed = _metrics_pruned_and_not(u, i, train, test, 100)
    assert allowed.prune is not unprunable            # off after a batch ranked plainly
    # 4 batches: the bound is tried once where it cannot prune, on every batch where it can
    assert len(used) == (1 if unprunable else 4)
    assert results[True] == results[False]            # exact either way
    assert DotScores(u, i).prune                      # a new evaluation tries it again


def test_the_score_block_is_reserved_for_the_whole_batch_before_the_plain_rows():
    u, i = _embeddings(users=64, items=3000, d=32)
    i = i.abs()
    u[:40] = -u[:40].abs() - 0.1                       # rows the bound cannot prune
    scores = DotScores(u, i)
    with torch.no_grad():                                  # (the bound needs no autograd)
        first = top_k(scores, torch.arange(10, 50), [], K)     # 30 of 40 rows plainly
        block = scores.block.data_ptr()
        assert scores.block.size(0) >= 40 and scores.prune     # the batch's 40, not 30
        second = top_k(scores, torch.arange(0, 40), [], K)     # 40 of 40: more rows
    assert scores.block.data_ptr() == block                # ... in the same block
    assert not scores.prune                                # and the bound is off now
    for (values, indices), users in ((first, torch.arange(10, 50)), (second, torch.arange(40))):
        ref = torch.topk(u[users] @ i.t(), K, dim=1)
        assert torch.equal(indices, ref.indices) and torch.equal(values, ref.values)


def test_non_finite_embeddings_take_the_plain_path_and_its_error():
    from ssgraphrec.errors import SSGraphRecError

    u, i = _embeddings(users=20, items=2000)
    u[3, 0] = float("nan")
    test = torch.tensor([[3], [7]])
    with pytest.raises(SSGraphRecError, match="not finite"):
        evaluate_ranking(DotScores(u, i), test, [], 20, 2000, ks=(10,))
