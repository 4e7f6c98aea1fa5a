"""Dense references of sparse structures, for tests on small graphs."""

from __future__ import annotations

import torch
from torch import Tensor


def normalized_adjacency_reference(edge_index: Tensor, num_users: int, num_items: int) -> Tensor:
    """Dense ``D^-1/2 A D^-1/2`` of the bipartite graph, for tests on small graphs."""
    n = num_users + num_items
    a = torch.zeros(n, n)
    a[edge_index[0], edge_index[1] + num_users] = 1.0
    a = torch.maximum(a, a.t())
    deg = a.sum(1)
    dinv = deg.pow(-0.5)
    dinv[torch.isinf(dinv)] = 0.0
    return dinv[:, None] * a * dinv[None, :]
