"""Two-tower encoders over the feature graphs (DESIGN.md, "item features").

Yao et al., "Self-supervised Learning for Large-scale Item Recommendations",
CIKM 2021, Sec. 3 (Fig. 1) and Sec. 4: a query tower and an item tower, each
an MLP over concatenated feature embeddings; a multi-valued categorical
feature is the mean of its values' embeddings. MicRec (Xie et al., 2022,
Sec. 3.2) uses the same item encoder.

Here a categorical feature value is a node of the ``('item','has','attr')``
graph, so the item's embedding of one field is a one-hop mean aggregation of
its attribute neighbours of that field: an EmbeddingBag per field, computed
with one ``index_add_`` over the edges of the batch's items. A field an item
has no edge of (a masked field, a dropped value) takes the field's learned
default embedding, as the paper replaces masked features by default
embeddings (Sec. 4.1). An augmented view is just another edge index passed to
``forward``.

Interface (used by twotower, ssl4rec, clrec and micrec):

* ``ItemTower(num_items, num_attrs, attr_field, num_fields, emb_dim, hidden,
  use_id=True, dense_dim=0, dropout=0.0)``; ``set_graph(item_attr, x)`` keeps
  the data's edge index ``[2, E]`` (item, attr) and dense features ``[N, F]``
  as buffers; ``forward(items, item_attr=None, x=None)`` -> ``[B, hidden[-1]]``
  (``item_attr`` / ``x`` default to the kept ones; pass a view's to encode it).
  ``ItemTower.from_data(data, emb_dim, hidden, ...)`` builds it from a HeteroData.
* ``UserTower(num_users, num_items, history, emb_dim, hidden, user_attr=None,
  num_user_attrs=0, user_attr_field=None, num_user_fields=0, use_id=False)``;
  ``forward(users, exclude=None)`` -> ``[B, hidden[-1]]``: the mean embedding
  of the user's training items (``exclude[b]``, the batch's target item, left
  out of user ``b``'s mean so the tower cannot copy the label), concatenated
  with the user's attribute bags (and ID embedding when ``use_id``), then an
  MLP. ``UserTower.from_data(data, emb_dim, hidden, ...)`` builds it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch_geometric.data import HeteroData

from ..data.schema import ATTR, HAS_ATTR, INTERACTS, ITEM, USER_ATTR, USER_HAS_ATTR
from ..errors import ConfigError


def mlp(in_dim: int, hidden: Sequence[int], dropout: float = 0.0) -> nn.Sequential:
    """Linear layers of sizes ``hidden`` with ReLU (and dropout) between them, none after the last."""
    if not hidden or min(hidden) < 1:
        raise ConfigError(f"tower hidden sizes must be positive integers, got {list(hidden)}")
    layers: list[nn.Module] = []
    for k, h in enumerate(hidden):
        layers.append(nn.Linear(in_dim, h))
        if k < len(hidden) - 1:
            layers.append(nn.ReLU())
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
        in_dim = h
    return nn.Sequential(*layers)


def field_bags(edge_index: Tensor, nodes: Tensor, num_rows: int, table: Tensor,
               col_field: Tensor | None, num_fields: int,
               exclude: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Mean of the column embeddings linked to each of ``nodes``, per field.

    Args:
        edge_index: ``[2, E]`` (row, col) links, e.g. (item, attr).
        nodes: ``[B]`` row ids (repeats allowed).
        num_rows: size of the row id space.
        table: ``[num_cols, d]`` column embeddings.
        col_field: ``[num_cols]`` field of each column, or None for one field.
        num_fields: number of fields.
        exclude: ``[B]`` one column per node to leave out of its mean (-1: none).

    Returns:
        ``([B, num_fields, d]`` means, ``[B, num_fields]`` counts); a zero
        count gives a zero mean.
    """
    uniq, inv = torch.unique(nodes, return_inverse=True)
    pos = torch.full((num_rows,), -1, dtype=torch.long, device=nodes.device)
    pos[uniq] = torch.arange(uniq.numel(), device=nodes.device)
    src, dst = edge_index[0], edge_index[1]
    p = pos[src]
    keep = p >= 0
    p, dst = p[keep], dst[keep]
    f = col_field[dst] if col_field is not None else torch.zeros_like(dst)
    slot = p * num_fields + f
    d = table.size(1)
    sums = table.new_zeros(uniq.numel() * num_fields, d).index_add_(0, slot, table[dst])
    counts = torch.bincount(slot, minlength=uniq.numel() * num_fields).to(table.dtype)
    sums = sums.view(-1, num_fields, d)[inv]
    counts = counts.view(-1, num_fields)[inv]
    if exclude is not None:
        # Leave one linked column out of each node's mean (only where the link exists).
        ex = exclude.clamp(min=0)
        linked = _has_link(edge_index, nodes, ex, num_rows, table.size(0)) & (exclude >= 0)
        fe = col_field[ex] if col_field is not None else torch.zeros_like(ex)
        onehot = torch.zeros_like(counts).scatter_(1, fe.view(-1, 1), linked.to(counts.dtype).view(-1, 1))
        sums = sums - onehot.unsqueeze(-1) * table[ex].unsqueeze(1)
        counts = counts - onehot
    return sums / counts.clamp(min=1).unsqueeze(-1), counts


def _has_link(edge_index: Tensor, rows: Tensor, cols: Tensor, num_rows: int, num_cols: int) -> Tensor:
    """Whether each (rows[b], cols[b]) is an edge of ``edge_index`` (vectorised lookup)."""
    if edge_index.size(1) == 0:
        return torch.zeros_like(rows, dtype=torch.bool)
    key = torch.sort(edge_index[0] * num_cols + edge_index[1]).values
    q = rows * num_cols + cols
    at = torch.searchsorted(key, q).clamp(max=key.numel() - 1)
    return key[at] == q


class ItemTower(nn.Module):
    """Item encoder of Yao et al. (CIKM 2021, Sec. 3, Fig. 1): per-field attribute bags
    + ID embedding (+ dense features) -> MLP.

    Args:
        num_items: item id space.
        num_attrs: attribute value nodes.
        attr_field: ``[num_attrs]`` field index of each value.
        num_fields: number of fields (0 with no attributes: ID only).
        emb_dim: embedding size of every field, the ID and each attribute value.
        hidden: MLP layer sizes; the last is the output size.
        use_id: include the item ID embedding (the paper's item tower has it).
        dense_dim: width of ``data['item'].x`` fed to the MLP (0: none).
        dropout: dropout between MLP layers.
    """

    def __init__(self, num_items: int, num_attrs: int, attr_field: Tensor, num_fields: int,
                 emb_dim: int, hidden: Sequence[int], *, use_id: bool = True,
                 dense_dim: int = 0, dropout: float = 0.0):
        super().__init__()
        if num_fields == 0 and not use_id and dense_dim == 0:
            raise ConfigError("the item tower has no input: no attribute fields, no ID, no dense features")
        self.num_items, self.num_attrs, self.num_fields = num_items, num_attrs, num_fields
        self.use_id, self.dense_dim = use_id, dense_dim
        self.attr = nn.Embedding(max(num_attrs, 1), emb_dim)
        self.default = nn.Parameter(torch.zeros(max(num_fields, 1), emb_dim))
        self.id = nn.Embedding(num_items, emb_dim) if use_id else None
        nn.init.normal_(self.attr.weight, std=0.1)
        if self.id is not None:
            nn.init.normal_(self.id.weight, std=0.1)
        self.register_buffer("attr_field", attr_field.long().clone(), persistent=False)
        self.register_buffer("item_attr", torch.zeros(2, 0, dtype=torch.long), persistent=False)
        self.register_buffer("x", torch.zeros(num_items, dense_dim), persistent=False)
        in_dim = num_fields * emb_dim + (emb_dim if use_id else 0) + dense_dim
        self.mlp = mlp(in_dim, hidden, dropout)
        self.out_dim = int(hidden[-1])

    @classmethod
    def from_data(cls, data: HeteroData, emb_dim: int, hidden: Sequence[int], *,
                  use_id: bool = True, use_dense: bool = True, dropout: float = 0.0) -> ItemTower:
        """The tower of ``data``'s item-attribute graph and dense features, graph kept."""
        has_attr = HAS_ATTR in data.edge_types
        field = data[ATTR].field if has_attr else torch.zeros(0, dtype=torch.long)
        num_fields = len(data.attr_fields) if has_attr else 0
        x = data[ITEM].x if use_dense and "x" in data[ITEM] else None
        tower = cls(int(data[ITEM].num_nodes), int(data[ATTR].num_nodes) if has_attr else 0,
                    field, num_fields, emb_dim, hidden, use_id=use_id,
                    dense_dim=0 if x is None else int(x.size(1)), dropout=dropout)
        tower.set_graph(data[HAS_ATTR].edge_index if has_attr else None, x)
        return tower.to(field.device)

    def set_graph(self, item_attr: Tensor | None, x: Tensor | None = None) -> None:
        """Keep the data's (item, attr) edges and dense features for ``forward``."""
        if item_attr is not None:
            self.item_attr = item_attr.long()
        if x is not None:
            self.x = x.float()

    def forward(self, items: Tensor, item_attr: Tensor | None = None,
                x: Tensor | None = None) -> Tensor:
        """``[B, out_dim]`` embeddings of ``items`` under the given view (default: the data)."""
        parts = []
        if self.num_fields:
            edges = self.item_attr if item_attr is None else item_attr
            bags, counts = field_bags(edges, items, self.num_items, self.attr.weight,
                                      self.attr_field, self.num_fields)
            empty = (counts == 0).unsqueeze(-1)
            bags = torch.where(empty, self.default.unsqueeze(0).expand_as(bags), bags)
            parts.append(bags.flatten(1))
        if self.id is not None:
            parts.append(self.id(items))
        if self.dense_dim:
            parts.append((self.x if x is None else x)[items])
        return self.mlp(torch.cat(parts, dim=1))


class UserTower(nn.Module):
    """Query tower (Yao et al. 2021, Sec. 3, Fig. 1; MicRec's user encoder): mean of the
    user's training items' embeddings (+ user attribute bags, + ID) -> MLP.

    Args:
        num_users, num_items: id spaces.
        history: ``[2, E]`` (user, item) training interactions.
        emb_dim: embedding size; hidden: MLP sizes (last = output size).
        user_attr: ``[2, E']`` (user, user_attr) edges, or None.
        num_user_attrs, user_attr_field, num_user_fields: the user attribute graph.
        use_id: include a user ID embedding.
    """

    def __init__(self, num_users: int, num_items: int, history: Tensor, emb_dim: int,
                 hidden: Sequence[int], *, user_attr: Tensor | None = None,
                 num_user_attrs: int = 0, user_attr_field: Tensor | None = None,
                 num_user_fields: int = 0, use_id: bool = False, dropout: float = 0.0):
        super().__init__()
        self.num_users, self.num_items = num_users, num_items
        self.history_items = nn.Embedding(num_items, emb_dim)
        nn.init.normal_(self.history_items.weight, std=0.1)
        self.register_buffer("history", history.long(), persistent=False)
        self.num_user_fields = num_user_fields if user_attr is not None else 0
        if self.num_user_fields:
            self.attr = nn.Embedding(num_user_attrs, emb_dim)
            nn.init.normal_(self.attr.weight, std=0.1)
            self.register_buffer("user_attr", user_attr.long(), persistent=False)
            self.register_buffer("attr_field", user_attr_field.long(), persistent=False)
        self.id = nn.Embedding(num_users, emb_dim) if use_id else None
        if self.id is not None:
            nn.init.normal_(self.id.weight, std=0.1)
        in_dim = emb_dim * (1 + self.num_user_fields + (1 if use_id else 0))
        self.mlp = mlp(in_dim, hidden, dropout)
        self.out_dim = int(hidden[-1])

    @classmethod
    def from_data(cls, data: HeteroData, emb_dim: int, hidden: Sequence[int], *,
                  use_attributes: bool = True, use_id: bool = False,
                  dropout: float = 0.0) -> UserTower:
        """The tower of ``data``'s training interactions and user attribute graph."""
        kw = {}
        if use_attributes and USER_HAS_ATTR in data.edge_types and len(data.user_attr_fields):
            kw = dict(user_attr=data[USER_HAS_ATTR].edge_index,
                      num_user_attrs=int(data[USER_ATTR].num_nodes),
                      user_attr_field=data[USER_ATTR].field,
                      num_user_fields=len(data.user_attr_fields))
        history = data[INTERACTS].edge_index
        return cls(int(data["user"].num_nodes), int(data[ITEM].num_nodes), history, emb_dim,
                   hidden, use_id=use_id, dropout=dropout, **kw).to(history.device)

    def forward(self, users: Tensor, exclude: Tensor | None = None) -> Tensor:
        """``[B, out_dim]`` embeddings; ``exclude[b]`` (an item, -1: none) leaves the batch's
        target out of user ``b``'s history mean."""
        hist, _ = field_bags(self.history, users, self.num_users, self.history_items.weight,
                             None, 1, exclude=exclude)
        parts = [hist[:, 0]]
        if self.num_user_fields:
            bags, _ = field_bags(self.user_attr, users, self.num_users, self.attr.weight,
                                 self.attr_field, self.num_user_fields)
            parts.append(bags.flatten(1))
        if self.id is not None:
            parts.append(self.id(users))
        return self.mlp(torch.cat(parts, dim=1))


__all__ = ["ItemTower", "UserTower", "field_bags", "mlp"]
