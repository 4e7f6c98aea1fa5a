"""BiGI's building blocks: bipartite encoder, sub-graph attention, prototype, discriminator.

Cao et al., "Bipartite Graph Embedding via Mutual Information Maximization"
(BiGI), WSDM 2021. Section numbers below are the paper's; where the paper
leaves a detail open, the authors' code (caojiangxia/BiGI, ``model/``) says
what is computed, and is named.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data.subgraph import EnclosingSubgraphs
from ..sparse import Adjacency, propagate
from .dropout import dropout


class BiGILayer(nn.Module):
    r"""One layer of BiGI's encoder (Sec. 3.2, Eq. 1-2).

    A user gathers its 2-hop homogeneous neighbours through the items
    between them, :math:`\bar h_u = \sigma(\mathbf{A}_{UV}\,\sigma(\mathbf{A}_{VU}
    h_U W_1 + b_1) W_3 + b_3)` with LeakyReLU :math:`\sigma`, and is updated
    as :math:`h_u' = \mathrm{ReLU}(W_u[\bar h_u ; h_u] + c_u)`; items alike
    with their own weights (the authors' ``DGCNLayer``: ``gc1``..``gc4``,
    ``user_union``, ``item_union``). Dropout acts on the layer's input
    (:func:`~ssgraphrec.nn.dropout.dropout`, the distribution of ``F.dropout``).
    """

    def __init__(self, dim: int, dropout: float = 0.3, negative_slope: float = 0.1):
        super().__init__()
        self.dropout = dropout
        self.negative_slope = negative_slope
        self.user_to_item = nn.Linear(dim, dim)     # gc1: users -> items, first hop
        self.item_to_user = nn.Linear(dim, dim)     # gc2: items -> users, first hop
        self.back_to_user = nn.Linear(dim, dim)     # gc3: second hop back to users
        self.back_to_item = nn.Linear(dim, dim)     # gc4: second hop back to items
        self.user_union = nn.Linear(2 * dim, dim)
        self.item_union = nn.Linear(2 * dim, dim)

    def _hop(self, adj: Adjacency, x_user: Tensor, x_item: Tensor, lin_user: nn.Linear,
             lin_item: nn.Linear) -> tuple[Tensor, Tensor]:
        """``(A_UV (x_item W) + b, A_VU (x_user W') + b')``: what users and items receive."""
        num_users = x_user.size(0)
        z = torch.cat([x_user @ lin_user.weight.t(), x_item @ lin_item.weight.t()])
        out = propagate(adj, z)
        return (F.leaky_relu(out[:num_users] + lin_item.bias, self.negative_slope),
                F.leaky_relu(out[num_users:] + lin_user.bias, self.negative_slope))

    def forward(self, adj: Adjacency, users: Tensor, items: Tensor) -> tuple[Tensor, Tensor]:
        users = dropout(users, self.dropout, self.training)
        items = dropout(items, self.dropout, self.training)
        # First hop: users receive from items (gc2), items from users (gc1).
        from_items, from_users = self._hop(adj, users, items, self.user_to_item, self.item_to_user)
        # Second hop: items' messages from users go back to users (gc3), and vice versa (gc4).
        user_2hop, item_2hop = self._hop(adj, from_items, from_users, self.back_to_item,
                                         self.back_to_user)
        users = F.relu(self.user_union(torch.cat([user_2hop, users], 1)))
        items = F.relu(self.item_union(torch.cat([item_2hop, items], 1)))
        return users, items


class BiGIEncoder(nn.Module):
    """Free user and item embeddings through ``num_layers`` :class:`BiGILayer` s.

    The embeddings are ``nn.Embedding`` tables drawn from N(0, 1), as in the
    authors' code (no side information).
    """

    def __init__(self, num_users: int, num_items: int, dim: int = 128, num_layers: int = 2,
                 dropout: float = 0.3, negative_slope: float = 0.1):
        super().__init__()
        self.num_users = num_users
        self.user_emb = nn.Embedding(num_users, dim)
        self.item_emb = nn.Embedding(num_items, dim)
        self.layers = nn.ModuleList(BiGILayer(dim, dropout, negative_slope)
                                    for _ in range(num_layers))

    def forward(self, adj: Adjacency, users: Tensor | None = None, items: Tensor | None = None
                ) -> tuple[Tensor, Tensor]:
        """Encode ``users`` / ``items`` input features (default: the embedding tables)."""
        users = self.user_emb.weight if users is None else users
        items = self.item_emb.weight if items is None else items
        for layer in self.layers:
            users, items = layer(adj, users, items)
        return users, items


class SubgraphAttention(nn.Module):
    r"""Sub-graph-level attention readout of an edge's enclosing sub-graph (Sec. 3.3, Eq. 4-6).

    The user ``u`` attends over the items of the sub-graph and the item ``v``
    over its users, scaled dot-product attention with a residual
    connection, :math:`\tilde h_u = \sum_j \mathrm{softmax}_j(\langle W_U h_u,
    W_V h_j\rangle/\sqrt d)\, W_V h_j + h_u`; the edge's local representation
    is :math:`\sigma(W_s[\tilde h_u ; \tilde h_v] + b_s)` (the authors'
    ``AttDGI``: ``Attention``, ``lin_sub``). Padded entries get no weight.
    """

    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim
        self.lin_user = nn.Linear(dim, dim)
        self.lin_item = nn.Linear(dim, dim)
        self.lin_sub = nn.Linear(2 * dim, dim)
        for lin in (self.lin_user, self.lin_item, self.lin_sub):
            nn.init.xavier_uniform_(lin.weight)
            nn.init.zeros_(lin.bias)

    def _attend(self, query: Tensor, table: Tensor, idx: Tensor, mask: Tensor) -> Tensor:
        """Attention of ``query [B, d]`` over the rows ``idx [B, K]`` (where ``mask``) of ``table``.

        Scores come from one ``[B, N]`` product gathered at ``idx`` and the
        weighted sum is a scatter into ``[B, N]`` times ``table``: two dense
        products instead of ``[B, K, d]`` copies of the keys (on the CPU the
        gathered form, ``O(B K d)`` memory traffic, measured three to five
        times slower for ``K = 100`` and ``N`` in the thousands).
        """
        scores = (query @ table.t()).gather(1, idx) / math.sqrt(self.dim)   # [B, K]
        scores = scores.masked_fill(~mask, float("-inf"))
        weights = torch.softmax(scores, 1).nan_to_num(0.0)   # a row without entries: zeros
        dense = torch.zeros(idx.size(0), table.size(0), dtype=weights.dtype, device=weights.device)
        return dense.scatter_add(1, idx, weights) @ table

    def forward(self, users: Tensor, items: Tensor, edges: Tensor, sub: EnclosingSubgraphs) -> Tensor:
        """``[B, d]`` local representations of ``edges`` from node representations."""
        u, v = edges[0], edges[1]
        h_u, h_v = users[u], items[v]
        t_user, t_item = self.lin_user(users), self.lin_item(items)
        side_u = self._attend(t_user[u], t_item, sub.items, sub.item_mask) + h_u
        side_v = self._attend(t_item[v], t_user, sub.users, sub.user_mask) + h_v
        return torch.sigmoid(self.lin_sub(torch.cat([side_u, side_v], 1)))


class GlobalPrototype(nn.Module):
    r"""The global representation from the user and item prototypes (Sec. 3.2, Eq. 3).

    Each prototype is the mean of its node type's representations; the
    global representation is :math:`\sigma(W_g[\bar p_U ; \bar p_V] + b_g)`
    (the authors' ``AvgReadout`` and ``lin``).
    """

    def __init__(self, dim: int):
        super().__init__()
        self.lin = nn.Linear(2 * dim, dim)
        nn.init.xavier_uniform_(self.lin.weight)
        nn.init.zeros_(self.lin.bias)

    def forward(self, users: Tensor, items: Tensor) -> Tensor:
        return torch.sigmoid(self.lin(torch.cat([users.mean(0), items.mean(0)])))


class BilinearDiscriminator(nn.Module):
    r"""Logit of the bilinear score :math:`l^\top W g + b` of local vs. global (Sec. 3.4, Eq. 7).

    As in DGI (Velickovic et al., ICLR 2019) and the authors' ``Discriminator``
    (Xavier-initialised ``nn.Bilinear``, zero bias); the sigmoid is left to
    the loss.
    """

    def __init__(self, dim: int):
        super().__init__()
        self.bilinear = nn.Bilinear(dim, dim, 1)
        nn.init.xavier_uniform_(self.bilinear.weight)
        nn.init.zeros_(self.bilinear.bias)

    def forward(self, local: Tensor, summary: Tensor) -> Tensor:
        """``[B]`` logits of ``local [B, d]`` against one ``summary [d]``."""
        # One summary for the batch: l^T W g = l . (W g), a matrix-vector product.
        return local @ (self.bilinear.weight[0] @ summary) + self.bilinear.bias


class EdgeScorer(nn.Module):
    r"""BiGI's edge reconstruction score, an MLP on :math:`[h_u ; h_v]` (Sec. 3.5).

    ``Linear(2d, hidden) -> ReLU -> Linear(hidden, 1)`` (the authors'
    ``score_function1/2``, ``hidden = 10``); returns logits.
    """

    def __init__(self, dim: int, hidden: int = 10):
        super().__init__()
        self.hidden = nn.Linear(2 * dim, hidden)
        self.out = nn.Linear(hidden, 1)

    def forward(self, users: Tensor, items: Tensor) -> Tensor:
        """Logits of row-aligned pairs (``[B, d]`` each)."""
        return self.out(F.relu(self.hidden(torch.cat([users, items], 1)))).view(-1)

    def all_pairs(self, users: Tensor, items: Tensor) -> Tensor:
        """``[B, I]`` logits of every user against every item, without a ``[B, I, 2d]`` copy."""
        dim = users.size(1)
        w = self.hidden.weight
        pre = (users @ w[:, :dim].t()).unsqueeze(1) + (items @ w[:, dim:].t()).unsqueeze(0)
        return F.relu(pre + self.hidden.bias) @ self.out.weight.view(-1) + self.out.bias
