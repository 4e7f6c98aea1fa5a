"""The LightGCN encoder on the shared sparse propagation."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ..sparse import Adjacency, propagate


class LightGCNEncoder(nn.Module):
    r"""User and item embeddings smoothed over the normalized user-item graph.

    He et al., "LightGCN: Simplifying and Powering Graph Convolution Network for
    Recommendation", SIGIR 2020, Eq. 7-8:
    :math:`\mathbf{E}^{(k+1)} = \hat{\mathbf{A}} \mathbf{E}^{(k)}` and
    :math:`\mathbf{E} = \frac{1}{K+1}\sum_{k=0}^{K} \mathbf{E}^{(k)}`.

    Args:
        num_users, num_items: sizes of the id spaces.
        emb_dim: embedding size.
        num_layers: number of propagation layers ``K``.
    """

    def __init__(self, num_users: int, num_items: int, emb_dim: int = 64, num_layers: int = 3):
        super().__init__()
        self.num_users = num_users
        self.num_items = num_items
        self.num_layers = num_layers
        self.user_emb = nn.Parameter(torch.empty(num_users, emb_dim))
        self.item_emb = nn.Parameter(torch.empty(num_items, emb_dim))
        # Xavier initialisation, as the SGL and LightGCN reference code.
        nn.init.xavier_uniform_(self.user_emb)
        nn.init.xavier_uniform_(self.item_emb)

    def ego(self) -> Tensor:
        """Layer-0 embeddings of all nodes, users first."""
        return torch.cat([self.user_emb, self.item_emb], 0)

    def layers(self, adj: Adjacency | Sequence[Adjacency]) -> list[Tensor]:
        """``[E^(0), ..., E^(K)]``; a list of adjacencies gives one per layer."""
        h = self.ego()
        out = [h]
        for k in range(self.num_layers):
            a = adj[k] if isinstance(adj, Sequence) else adj
            h = propagate(a, h)
            out.append(h)
        return out

    def forward(self, adj: Adjacency | Sequence[Adjacency]) -> tuple[Tensor, Tensor]:
        """Final (user, item) embeddings: the mean over layers 0..K."""
        layers = self.layers(adj)
        total = layers[0]
        for h in layers[1:]:
            total = total + h
        return self.split(total / len(layers))

    def split(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return x[: self.num_users], x[self.num_users:]
