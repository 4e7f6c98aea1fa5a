"""Vectorised sampling of BPR training triples (user, positive item, negative item)."""

from __future__ import annotations

import torch
from torch import Tensor


class NegativeSampler:
    """Uniform negatives that are not training positives of the user.

    Membership is tested with a binary search over the sorted ``user * I + item``
    keys of the training pairs; collisions are redrawn in vectorised rounds,
    never one interaction at a time.
    """

    def __init__(self, edge_index: Tensor, num_items: int, max_rounds: int = 100):
        self.num_items = int(num_items)
        self.keys = torch.unique(edge_index[0] * num_items + edge_index[1])
        self.max_rounds = max_rounds

    def is_positive(self, user: Tensor, item: Tensor) -> Tensor:
        key = user * self.num_items + item
        pos = torch.searchsorted(self.keys, key).clamp(max=self.keys.numel() - 1)
        return self.keys[pos] == key

    def sample(self, user: Tensor, generator: torch.Generator) -> Tensor:
        """One negative item for every entry of ``user``."""
        neg = torch.randint(0, self.num_items, user.shape, generator=generator,
                            device=generator.device).to(user.device)
        for _ in range(self.max_rounds):
            bad = self.is_positive(user, neg).nonzero().view(-1)
            if bad.numel() == 0:
                break
            neg[bad] = torch.randint(0, self.num_items, bad.shape, generator=generator,
                                     device=generator.device).to(user.device)
        else:
            # Users with almost every item as a positive: draw the rest exactly.
            bad = self.is_positive(user, neg).nonzero().view(-1)
            if bad.numel():
                neg[bad] = self._sample_exact(user[bad], generator)
        return neg

    def _sample_exact(self, user: Tensor, generator: torch.Generator) -> Tensor:
        """Uniform non-positive items of ``user``, by rank among the user's non-positives.

        The r-th non-positive item is ``r + k``, with ``k`` the number of the user's
        positives ``p_j`` (sorted, j-th of the user) with ``p_j - j <= r``. A user
        with every item as a positive has no negative; it gets a random item.
        """
        I = self.num_items
        start = torch.searchsorted(self.keys, user * I)
        end = torch.searchsorted(self.keys, (user + 1) * I)
        free = (I - (end - start)).clamp(min=1)
        r = (torch.rand(user.shape, generator=generator, device=generator.device)
             .to(user.device) * free).long().clamp(max=free - 1)
        owner = self.keys // I
        first = torch.searchsorted(self.keys, owner * I)
        shifted = owner * I + (self.keys % I) - (torch.arange(self.keys.numel(),
                                                              device=self.keys.device) - first)
        k = torch.searchsorted(shifted, user * I + r, right=True) - start
        return (r + k).clamp(max=I - 1)


def bpr_batches(edge_index: Tensor, sampler: NegativeSampler, batch_size: int,
                generator: torch.Generator):
    """Yield ``(users, pos_items, neg_items)`` over a shuffled pass of all training pairs."""
    n = edge_index.size(1)
    perm = torch.randperm(n, generator=generator, device=generator.device).to(edge_index.device)
    for start in range(0, n, batch_size):
        idx = perm[start:start + batch_size]
        users, pos = edge_index[0, idx], edge_index[1, idx]
        yield users, pos, sampler.sample(users, generator)


def num_batches(num_edges: int, batch_size: int) -> int:
    return (num_edges + batch_size - 1) // batch_size
