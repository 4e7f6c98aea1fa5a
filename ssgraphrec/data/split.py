"""Seeded, vectorised train / validation / test splits of interactions.

Each function returns a boolean mask over the rows it is given, ``True`` for
the rows held out; no Python loop over users.
"""

from __future__ import annotations

import torch
from torch import Tensor

SPLITS = ("random", "loo", "fixed")


def _group_ranks(user: Tensor, order_key: Tensor, num_users: int) -> tuple[Tensor, Tensor]:
    """Sort rows by (user, order_key) and return (permutation, rank within user)."""
    perm = torch.argsort(order_key, stable=True)
    perm = perm[torch.argsort(user[perm], stable=True)]
    counts = torch.bincount(user, minlength=num_users)
    start = torch.cumsum(counts, 0) - counts
    rank = torch.arange(user.numel(), device=user.device) - start[user[perm]]
    return perm, rank


def random_holdout(user: Tensor, num_users: int, ratio: float,
                   generator: torch.Generator) -> Tensor:
    """Hold out ``max(1, floor(ratio * n))`` random rows of every user with ``n >= 2`` rows.

    A user with a single row keeps it (it is needed for training); ``ratio=0``
    holds out nothing.
    """
    held = torch.zeros(user.numel(), dtype=torch.bool, device=user.device)
    if ratio <= 0 or user.numel() == 0:
        return held
    counts = torch.bincount(user, minlength=num_users)
    n_held = torch.floor(counts.double() * ratio + 1e-9).long().clamp(min=1)
    n_held[counts < 2] = 0
    key = torch.rand(user.numel(), generator=generator, device=generator.device).to(user.device)
    perm, rank = _group_ranks(user, key, num_users)
    held[perm] = rank < n_held[user[perm]]
    return held


def latest_holdout(user: Tensor, time: Tensor, num_users: int) -> Tensor:
    """Hold out each user's latest row (leave-one-out by time) for users with >= 2 rows.

    Ties in time are broken by row order: the later row counts as later.
    """
    held = torch.zeros(user.numel(), dtype=torch.bool, device=user.device)
    if user.numel() == 0:
        return held
    counts = torch.bincount(user, minlength=num_users)
    perm, rank = _group_ranks(user, time, num_users)
    u = user[perm]
    held[perm] = (rank == counts[u] - 1) & (counts[u] >= 2)
    return held
