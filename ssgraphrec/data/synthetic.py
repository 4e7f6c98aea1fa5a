"""The built-in default dataset: seeded synthetic interactions with planted structure.

Users and items belong to latent communities; a user draws most of its items
from its own community and the rest from the whole catalogue, both in
proportion to a power-law item popularity (Zipf exponent ``popularity_exponent``).
Social links follow the same communities through networkx's stochastic block
model. A model that learns the communities beats popularity ranking by a wide
margin, which the tests check. Generated in about a second, no download.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from .readers.base import Interactions, RawDataset

if TYPE_CHECKING:  # networkx is imported where the social links are drawn (0.1 to 0.25 s)
    import networkx as nx


@dataclass
class SyntheticConfig:
    """Size and structure of the synthetic dataset.

    The default size is that of the first command (``ssgraphrec train --method
    sgl --aug edge_drop``): 2,000 users, 1,000 items and about 60,000
    interactions, so that 50 epochs of SGL take about half a minute on one CPU
    thread and end well above popularity ranking (docs/benchmarks.md, "The
    first command").
    """

    num_users: int = 2000
    num_items: int = 1000
    num_communities: int = 10
    mean_interactions: float = 30.0
    in_community: float = 0.8
    popularity_exponent: float = 0.8
    social: bool = True
    social_degree_in: float = 8.0
    social_degree_out: float = 1.0


def make_synthetic(cfg: SyntheticConfig | None = None, seed: int = 0) -> RawDataset:
    """Generate the synthetic dataset (integer ids, already contiguous)."""
    cfg = cfg or SyntheticConfig()
    gen = torch.Generator().manual_seed(seed)
    U, I, C = cfg.num_users, cfg.num_items, cfg.num_communities
    user_comm = torch.randint(0, C, (U,), generator=gen)
    item_comm = torch.randint(0, C, (I,), generator=gen)
    rank = torch.randperm(I, generator=gen).double() + 1.0
    popularity = rank.pow(-cfg.popularity_exponent)
    # Interactions per user: log-normal around the mean, at least 3.
    n = torch.exp(torch.randn(U, generator=gen, dtype=torch.float64) * 0.6)
    n = (n / n.mean() * cfg.mean_interactions).round().long().clamp(min=3, max=I // 2)
    user = torch.repeat_interleave(torch.arange(U), n)
    inside = torch.rand(user.numel(), generator=gen) < cfg.in_community
    item = torch.multinomial(popularity, user.numel(), replacement=True, generator=gen)
    for c in range(C):  # one draw per community, vectorised over its users' rows
        rows = (inside & (user_comm[user] == c)).nonzero().view(-1)
        weights = popularity * (item_comm == c)
        if rows.numel() and weights.sum() > 0:
            item[rows] = torch.multinomial(weights, rows.numel(), replacement=True, generator=gen)
    time = torch.rand(user.numel(), generator=gen, dtype=torch.float64).numpy()
    raw = RawDataset(
        "synthetic",
        interactions=Interactions(user.numpy(), item.numpy(), None, time, source="synthetic"),
        integer_ids=True,
    )
    if cfg.social:
        import networkx as nx

        sizes = torch.bincount(user_comm, minlength=C).tolist()
        p_in = [[cfg.social_degree_out / U] * C for _ in range(C)]
        for c in range(C):
            p_in[c][c] = min(1.0, cfg.social_degree_in / max(sizes[c], 1))
        g = nx.stochastic_block_model(sizes, p_in, seed=seed, sparse=True)
        # The block model numbers nodes block by block; map back to user ids.
        order = torch.argsort(user_comm, stable=True).numpy()
        edges = np.asarray(list(g.edges()), dtype=np.int64).reshape(-1, 2)
        src, dst = order[edges[:, 0]], order[edges[:, 1]]
        raw.social = (np.concatenate([src, dst]), np.concatenate([dst, src]))
        raw.social_source = "synthetic stochastic block model"
    return raw


def social_from_networkx(graph: nx.Graph) -> tuple[list[str], list[str]]:
    """Turn a user's own networkx graph into social links (node names as raw user ids).

    Undirected graphs give links in both directions.
    """
    src, dst = [], []
    for a, b in graph.edges():
        src.append(str(a))
        dst.append(str(b))
        if not graph.is_directed():
            src.append(str(b))
            dst.append(str(a))
    return src, dst
