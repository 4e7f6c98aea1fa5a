"""The cold-start simulation of PT-GNN's evaluation: test users that keep only K interactions.

Hao, Zhang, Yin, Li and Chen, "Pre-Training Graph Neural Networks for
Cold-Start Users and Items Representation", WSDM 2021, Sec. 5.1: cold-start
users are simulated from users with enough interactions by keeping only
``K`` of their neighbours (``K = 3`` by default, their K-shot setting), and
the model is evaluated on those users.

:func:`simulate_cold_users` does this on a split dataset: a seeded ``share``
of the users that have test interactions and more than ``K`` training
interactions keep ``K`` training interactions drawn at random; their other
training interactions leave the graph. They are kept as
``data[INTERACTS].hidden_edge_index``: never part of the graph, and masked at
ranking like training items (they are neither rewarded nor penalised: the
test pairs stay exactly those of the unsimulated split, so the simulated
users' metrics compare directly with the same users' metrics without
simulation). ``data['user'].simulated_cold`` marks the simulated users; the
trainer reports their test interactions as the ``simulated_cold_users``
slice (docs/cold-start.md). Validation pairs are left alone.

Vectorised: one random order of all training edges, one stable sort by user,
a rank within each user; no loop over users.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor
from torch_geometric.data import HeteroData

from ..errors import ConfigError
from .schema import INTERACTS, num_users

#: The simulated users, a ``[num_users]`` bool mask on ``data['user']``.
SIMULATED = "simulated_cold"
#: The training interactions the simulated users lost, on ``data[INTERACTS]``.
HIDDEN = "hidden_edge_index"


def keep_k_per_user(src: Tensor, chosen: Tensor, k: int, generator: torch.Generator) -> Tensor:
    """``[E]`` bool: every edge of an unchosen user, and ``k`` random edges of each chosen one.

    Args:
        src: ``[E]`` user of each training edge.
        chosen: ``[num_users]`` bool, the users to cut down to ``k`` edges.
        k: edges a chosen user keeps (all of them if it has at most ``k``).
        generator: the seeded generator of the draw.
    """
    n = src.numel()
    perm = torch.randperm(n, generator=generator, device=generator.device).to(src.device)
    grouped = perm[torch.sort(src[perm], stable=True).indices]  # by user, random within a user
    counts = torch.bincount(src, minlength=chosen.numel())
    start = torch.cumsum(counts, 0) - counts
    rank = torch.arange(n, device=src.device) - start[src[grouped]]
    keep = torch.empty(n, dtype=torch.bool, device=src.device)
    keep[grouped] = (rank < k) | ~chosen[src[grouped]]
    return keep


def simulate_cold_users(data: HeteroData, k: int, share: float, generator: torch.Generator
                        ) -> HeteroData:
    """A copy of ``data`` where a seeded ``share`` of the eligible test users keep ``k``
    training interactions (module docstring); ``data`` itself is not changed.

    Eligible: at least one test interaction and more than ``k`` training interactions.

    Raises:
        ConfigError: ``k`` < 1, ``share`` outside (0, 1], or no eligible user.
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ConfigError(f"simulate_cold must be an integer >= 1 (the K interactions a "
                          f"simulated cold-start user keeps), got {k!r}")
    if not 0.0 < share <= 1.0:
        raise ConfigError(f"simulate_cold_share must lie in (0, 1], got {share}")
    store = data[INTERACTS]
    train, test = store.edge_index, store.test_edge_index
    n_users = num_users(data)
    counts = torch.bincount(train[0], minlength=n_users)
    tested = torch.zeros(n_users, dtype=torch.bool, device=train.device)
    tested[test[0]] = True
    eligible = (tested & (counts > k)).nonzero().view(-1)
    if eligible.numel() == 0:
        raise ConfigError(f"simulate_cold={k}: no test user has more than {k} training "
                          f"interactions to simulate cold start from; the most is "
                          f"{int(counts[tested].max()) if bool(tested.any()) else 0}")
    n_pick = max(1, round(share * eligible.numel()))
    pick = torch.randperm(eligible.numel(), generator=generator,
                          device=generator.device)[:n_pick].to(train.device)
    chosen = torch.zeros(n_users, dtype=torch.bool, device=train.device)
    chosen[eligible[pick]] = True
    keep = keep_k_per_user(train[0], chosen, k, generator)
    out = copy.copy(data)
    out[INTERACTS].edge_index = train[:, keep]  # a mask keeps the sorted order
    for key in ("edge_weight", "time"):
        if key in store and isinstance(store[key], Tensor) and store[key].size(0) == keep.numel():
            out[INTERACTS][key] = store[key][keep]
    out[INTERACTS][HIDDEN] = train[:, ~keep]
    out["user"][SIMULATED] = chosen
    return out


def simulation_summary(data: HeteroData) -> dict[str, int] | None:
    """``{"users": ..., "hidden_interactions": ...}`` of a simulated dataset, else None."""
    if SIMULATED not in data["user"]:
        return None
    return {"users": int(data["user"][SIMULATED].sum()),
            "hidden_interactions": int(data[INTERACTS][HIDDEN].size(1))}


__all__ = ["HIDDEN", "SIMULATED", "keep_k_per_user", "simulate_cold_users",
           "simulation_summary"]
