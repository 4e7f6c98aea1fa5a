"""The multi-channel hypergraph convolution of MHCN, with self-gating and channel attention."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..sparse import Adjacency, propagate


class SelfGating(nn.Module):
    r"""Self-gating unit :math:`x \odot \sigma(x W + b)`.

    Yu et al., WWW 2021, Sec. 3.2 (self-gating units): each channel
    re-weights the dimensions of the shared base user embeddings before its
    own convolution; MHCN uses one unit
    per channel, one for the user-item channel and one per channel again
    before the self-supervised task.
    """

    def __init__(self, dim: int):
        super().__init__()
        self.linear = nn.Linear(dim, dim)
        nn.init.xavier_uniform_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, x: Tensor) -> Tensor:
        return x * torch.sigmoid(self.linear(x))


class ChannelAttention(nn.Module):
    r"""Per-user softmax attention over channel embeddings.

    Yu et al., WWW 2021, Sec. 3.2 (aggregating the channels):
    :math:`\alpha_c = \mathrm{softmax}_c(\mathbf{a}^\top W_{att}\, p_c)` and
    :math:`p = \sum_c \alpha_c p_c`.
    """

    def __init__(self, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(dim, dim))
        self.query = nn.Parameter(torch.empty(1, dim))
        nn.init.xavier_uniform_(self.weight)
        nn.init.xavier_uniform_(self.query)

    def forward(self, channels: Sequence[Tensor]) -> Tensor:
        scores = torch.stack([(c @ self.weight * self.query).sum(-1) for c in channels], 1)
        alpha = torch.softmax(scores, dim=1)
        out = alpha[:, :1] * channels[0]
        for k in range(1, len(channels)):
            out = out + alpha[:, k:k + 1] * channels[k]
        return out


class MHCNEncoder(nn.Module):
    r"""User and item embeddings from motif-channel hypergraph convolutions.

    Yu et al., "Self-Supervised Multi-Channel Hypergraph Convolutional Network
    for Social Recommendation", WWW 2021, Sec. 3.2, in the form of the authors'
    code (Coder-Yu/QRec ``MHCN.py``, ``initModel``). Per layer ``l``:

    * channel ``c`` (social, joint, purchase) convolves its gated user
      embeddings over its row-normalized motif hypergraph,
      :math:`P_c^{(l+1)} = \hat D_c^{-1} A_c P_c^{(l)}`;
    * the mixed user embedding is the channel attention of
      :math:`P_s, P_j, P_p` plus half the user-item channel
      :math:`P_r` (the code's ``+ simple_user_embeddings / 2``);
    * a simple graph convolution on the user-item graph with
      :math:`\tilde R = D_u^{-1/2} R D_i^{-1/2}` gives the items,
      :math:`Q^{(l+1)} = \tilde R^\top P^{(l)}_{mixed}`, and the user-item
      channel, :math:`P_r^{(l+1)} = \tilde R Q^{(l)}`.

    The final embeddings sum the layers, layer 0 as is and later layers
    L2-normalized row by row, and users are again the attention over the
    channels plus half the user-item channel.

    Args:
        num_users, num_items: sizes of the id spaces.
        emb_dim: embedding size.
        num_layers: number of convolution layers.
        num_channels: number of hypergraph channels (3).
    """

    def __init__(self, num_users: int, num_items: int, emb_dim: int = 50, num_layers: int = 2,
                 num_channels: int = 3):
        super().__init__()
        self.num_users = num_users
        self.num_items = num_items
        self.num_layers = num_layers
        self.user_emb = nn.Parameter(torch.empty(num_users, emb_dim))
        self.item_emb = nn.Parameter(torch.empty(num_items, emb_dim))
        nn.init.xavier_uniform_(self.user_emb)
        nn.init.xavier_uniform_(self.item_emb)
        self.channel_gates = nn.ModuleList(SelfGating(emb_dim) for _ in range(num_channels))
        self.simple_gate = SelfGating(emb_dim)
        self.attention = ChannelAttention(emb_dim)

    def weights(self) -> list[Tensor]:
        """The parameters other than the embedding tables (gates and attention)."""
        return [p for name, p in self.named_parameters() if name not in ("user_emb", "item_emb")]

    def forward(self, channels: Sequence[Adjacency], user_item: Adjacency) -> tuple[Tensor, Tensor]:
        """Final (user, item) embeddings.

        Args:
            channels: the row-normalized channel adjacencies (``users x users``).
            user_item: the symmetric normalized user-item adjacency on
                ``users + items`` nodes (:class:`~ssgraphrec.sparse.BipartiteGraph`),
                whose one product gives both :math:`\tilde R Q` and
                :math:`\tilde R^\top P`.
        """
        if len(channels) != len(self.channel_gates):
            raise ValueError(f"expected {len(self.channel_gates)} channels, got {len(channels)}")
        n = self.num_users
        users = [gate(self.user_emb) for gate in self.channel_gates]
        simple = self.simple_gate(self.user_emb)
        items = self.item_emb
        user_sums, simple_sum, item_sum = list(users), simple, items
        for _ in range(self.num_layers):
            mixed = self.attention(users) + simple / 2
            users = [propagate(adj, x) for adj, x in zip(channels, users, strict=True)]
            user_sums = [s + F.normalize(x, dim=1) for s, x in zip(user_sums, users, strict=True)]
            out = propagate(user_item, torch.cat([mixed, items]))
            simple, items = out[:n], out[n:]
            simple_sum = simple_sum + F.normalize(simple, dim=1)
            item_sum = item_sum + F.normalize(items, dim=1)
        return self.attention(user_sums) + simple_sum / 2, item_sum
