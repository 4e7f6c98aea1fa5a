"""BPR sampling: negatives are never training positives; batches cover every pair once."""

from __future__ import annotations

import pytest
import torch

from ssgraphrec.data.sampler import NegativeSampler, bpr_batches, num_batches

NUM_ITEMS = 20
# A dense graph: user 0 has every item but 7, user 1 every item but 0 and 19,
# user 2 the even items, user 3 items 0..4.
POSITIVES = {
    0: [i for i in range(NUM_ITEMS) if i != 7],
    1: [i for i in range(NUM_ITEMS) if i not in (0, 19)],
    2: list(range(0, NUM_ITEMS, 2)),
    3: list(range(5)),
}


@pytest.fixture(autouse=True, scope="module")
def _threads(one_torch_thread):
    pass


def dense_graph() -> torch.Tensor:
    return torch.tensor([(u, i) for u, items in POSITIVES.items() for i in items]).t()


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_is_positive_matches_the_training_pairs():
    sampler = NegativeSampler(dense_graph(), NUM_ITEMS)
    users = torch.arange(4).repeat_interleave(NUM_ITEMS)
    items = torch.arange(NUM_ITEMS).repeat(4)
    expected = torch.tensor([i in POSITIVES[u] for u, i in zip(users.tolist(), items.tolist(), strict=True)])
    assert torch.equal(sampler.is_positive(users, items), expected)


def test_negatives_are_never_positives_on_a_dense_graph():
    sampler = NegativeSampler(dense_graph(), NUM_ITEMS)
    users = torch.arange(4).repeat(5000)
    neg = sampler.sample(users, gen(0))
    assert neg.shape == users.shape and neg.dtype == torch.long
    assert not sampler.is_positive(users, neg).any()
    for u, items in POSITIVES.items():
        drawn = set(neg[users == u].tolist())
        # Every non-positive item is reachable, and nothing else is drawn.
        assert drawn == set(range(NUM_ITEMS)) - set(items), u


def test_negatives_of_the_densest_users_are_uniform_over_their_non_positives():
    sampler = NegativeSampler(dense_graph(), NUM_ITEMS)
    users = torch.full((4000,), 1)
    neg = sampler.sample(users, gen(1))
    counts = torch.bincount(neg, minlength=NUM_ITEMS)
    assert counts[0] + counts[19] == 4000
    assert 1700 < counts[0] < 2300  # about half each
    users = torch.full((9000,), 3)
    counts = torch.bincount(sampler.sample(users, gen(2)), minlength=NUM_ITEMS)[5:]
    assert counts.min() > 400 and counts.max() < 800  # 9000 / 15 = 600 each


def test_sampling_is_seeded():
    sampler = NegativeSampler(dense_graph(), NUM_ITEMS)
    users = torch.arange(4).repeat(300)
    a = sampler.sample(users, gen(7))
    b = sampler.sample(users, gen(7))
    c = sampler.sample(users, gen(8))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_unsorted_input_edges_are_handled():
    edges = dense_graph()
    perm = torch.randperm(edges.size(1), generator=gen(3))
    sampler = NegativeSampler(edges[:, perm], NUM_ITEMS)
    users = torch.arange(4).repeat(1000)
    assert not sampler.is_positive(users, sampler.sample(users, gen(4))).any()


@pytest.mark.parametrize("batch_size", [1, 7, 16, 1000])
def test_bpr_batches_cover_every_training_pair_exactly_once(batch_size):
    edges = dense_graph()
    sampler = NegativeSampler(edges, NUM_ITEMS)
    seen = []
    sizes = []
    for users, pos, neg in bpr_batches(edges, sampler, batch_size, gen(5)):
        assert users.shape == pos.shape == neg.shape
        assert not sampler.is_positive(users, neg).any()
        assert sampler.is_positive(users, pos).all()
        seen.extend(zip(users.tolist(), pos.tolist(), strict=True))
        sizes.append(users.numel())
    assert sorted(seen) == sorted(map(tuple, edges.t().tolist()))
    assert len(sizes) == num_batches(edges.size(1), batch_size)
    assert all(s == batch_size for s in sizes[:-1]) and 1 <= sizes[-1] <= batch_size


def test_bpr_batches_shuffle_per_epoch_and_are_seeded():
    edges = dense_graph()
    sampler = NegativeSampler(edges, NUM_ITEMS)

    def epoch(g):
        return torch.cat([torch.stack(b) for b in bpr_batches(edges, sampler, 8, g)], 1)

    g = gen(9)
    first, second = epoch(g), epoch(g)
    assert not torch.equal(first[:2], second[:2])  # a new order each epoch
    assert not torch.equal(first[:2], edges)  # shuffled, not the input order
    assert torch.equal(epoch(gen(9)), first)


def test_num_batches():
    assert num_batches(0, 4) == 0
    assert num_batches(8, 4) == 2
    assert num_batches(9, 4) == 3
