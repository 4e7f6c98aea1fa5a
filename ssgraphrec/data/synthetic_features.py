"""Synthetic interactions whose item attributes carry the planted structure.

Like :mod:`ssgraphrec.data.synthetic` (users and items in latent communities,
users drawing mostly from their own community by a power-law popularity),
plus item attributes in three fields: ``genre`` (the item's community, one
value), ``tags`` (two values from a pool of its community's tags, a
multi-valued field) and ``noise`` (a value drawn at random, unrelated to
anything). A model that reads the attributes can place a rarely clicked
item next to its community; feature tests and the feature-SSL examples use it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .readers.base import Interactions, RawDataset


@dataclass
class FeatureSyntheticConfig:
    num_users: int = 400
    num_items: int = 300
    num_communities: int = 5
    interactions_per_user: int = 20
    in_community: float = 0.9
    popularity_exponent: float = 1.0
    tags_per_community: int = 4
    noise_values: int = 10


def make_feature_synthetic(cfg: FeatureSyntheticConfig | None = None, seed: int = 0) -> RawDataset:
    """Generate the dataset (string ids ``u<k>`` / ``i<k>``, time = draw order)."""
    cfg = cfg or FeatureSyntheticConfig()
    gen = torch.Generator().manual_seed(seed)
    U, I, C, n = cfg.num_users, cfg.num_items, cfg.num_communities, cfg.interactions_per_user
    user_comm = torch.randint(0, C, (U,), generator=gen)
    item_comm = torch.arange(I) % C
    popularity = (torch.randperm(I, generator=gen).double() + 1.0).pow(-cfg.popularity_exponent)
    # [C, I] draw weights: popularity inside the community, or over all items.
    inside = popularity * (item_comm.view(1, -1) == torch.arange(C).view(-1, 1))
    own = inside[user_comm]
    weights = (cfg.in_community * own / own.sum(1, keepdim=True)
               + (1 - cfg.in_community) * popularity / popularity.sum())
    items = torch.multinomial(weights, n, replacement=False, generator=gen)
    users = torch.arange(U).repeat_interleave(n)
    time = torch.arange(n).repeat(U).double().numpy()
    raw = RawDataset("synthetic-features", interactions=Interactions(
        [f"u{u}" for u in users.tolist()], [f"i{i}" for i in items.reshape(-1).tolist()],
        None, time, source="synthetic with item attributes"))
    tags = torch.randint(0, cfg.tags_per_community, (I, 2), generator=gen) + \
        item_comm.view(-1, 1) * cfg.tags_per_community
    noise = torch.randint(0, cfg.noise_values, (I,), generator=gen)
    raw.item_attributes = {
        "genre": {f"i{i}": [str(c)] for i, c in enumerate(item_comm.tolist())},
        "tags": {f"i{i}": sorted({str(a), str(b)}) for i, (a, b) in enumerate(tags.tolist())},
        "noise": {f"i{i}": [str(v)] for i, v in enumerate(noise.tolist())},
    }
    return raw


__all__ = ["FeatureSyntheticConfig", "make_feature_synthetic"]
