"""Positive items of an item, for item-item contrastive learning (MicRec).

Xie et al., "Multi-granularity Item-based Contrastive Recommendation"
(arXiv:2207.01387, 2022), Sec. 3: besides an item and its own augmentation
(feature level), an item's positives are *semantically related* items
(semantic level: items sharing a tag / attribute, or with similar titles) and
items *co-occurring* in users' behaviour sequences (session level: drawn in
proportion to how often the two items co-occur; items that never co-occur are
the negatives). Each structure here is a weighted item-to-X graph in CSR form
(:class:`~ssgraphrec.transforms.ItemCooccurrence`), so that one vectorised
weighted draw (:meth:`ItemCooccurrence.sample`) serves every level:

* :func:`interaction_cooccurrence`: the co-occurrence graph of the training
  interactions, each user's items in time order as one sequence.
* :class:`SharedAttributePositives`: draw an attribute value of the item with
  probability proportional to its inverse document frequency
  ``log(N / n_a)`` (``N`` items with attributes, ``n_a`` items with the value;
  a value every item has tells nothing and is never drawn, a value no other
  item has cannot give a positive), then another item with that value,
  uniformly.
* :func:`nearest_neighbour_graph`: the ``k`` nearest items by cosine
  similarity of dense vectors (title embeddings), each drawn uniformly.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch_geometric.data import HeteroData

from ..data.schema import CONTAINS, HAS_ATTR, INTERACTS, SESSION
from ..errors import ConfigError
from ..sparse import segment_pointer
from .base import rand
from .item_cooccurrence import ItemCooccurrence, item_cooccurrence


def interaction_cooccurrence(data: HeteroData, window: int = 1) -> ItemCooccurrence:
    """Co-occurrence counts of the training interactions read as one sequence per user.

    A user's training items are ordered by ``time`` when the interactions have
    one (else by item id, and ``window`` then only groups neighbours in that
    order); pairs of distinct items at most ``window`` places apart count once
    per occurrence, in both directions (:func:`item_cooccurrence`).
    """
    store = data[INTERACTS]
    user, item = store.edge_index[0].long(), store.edge_index[1].long()
    if "time" in store:
        order = torch.argsort(store.time.double(), stable=True)
        order = order[torch.argsort(user[order], stable=True)]
        user, item = user[order], item[order]
    seq = HeteroData()
    seq[SESSION].num_nodes = int(data["user"].num_nodes)
    seq["item"].num_nodes = int(data["item"].num_nodes)
    seq[CONTAINS].edge_index = torch.stack([user, item])
    return item_cooccurrence(seq, window)


def linked(graph: ItemCooccurrence, a: Tensor, b: Tensor) -> Tensor:
    """``[len(a), len(b)]`` boolean: whether ``(a[i], b[j])`` is an edge of ``graph``.

    Walks the neighbour lists of ``a`` (``sum of degrees`` entries) and looks each
    neighbour up among the distinct items of ``b`` through a dense item -> slot
    table, instead of testing all ``len(a) * len(b)`` pairs.
    """
    a, b = a.long(), b.long()
    uniq, inv = torch.unique(b, return_inverse=True)
    slot = torch.full((graph.num_items,), -1, dtype=torch.long, device=b.device)
    slot[uniq] = torch.arange(uniq.numel(), device=b.device)
    start, deg = graph.ptr[a], graph.ptr[a + 1] - graph.ptr[a]
    row = torch.repeat_interleave(torch.arange(a.numel(), device=a.device), deg)
    offset = torch.cumsum(deg, 0) - deg
    nbr = graph.col[start[row] + torch.arange(row.numel(), device=a.device) - offset[row]]
    col = slot[nbr]
    hit = col >= 0
    out = torch.zeros(a.numel(), uniq.numel(), dtype=torch.bool, device=a.device)
    out[row[hit], col[hit]] = True
    return out[:, inv]


class SharedAttributePositives:
    """Draws, for each item, another item that shares an attribute value with it.

    Args:
        edge_index: ``[2, E]`` (item, attribute value) pairs, e.g.
            ``data['item','has','attr'].edge_index``.
        num_items, num_attrs: sizes of the two id spaces.
    """

    def __init__(self, edge_index: Tensor, num_items: int, num_attrs: int):
        item, attr = edge_index[0].long(), edge_index[1].long()
        order = torch.argsort(item * max(num_attrs, 1) + attr)
        item, attr = item[order], attr[order]
        deg = torch.bincount(attr, minlength=num_attrs)
        n_with = max(int(torch.unique(item).numel()), 1)
        idf = torch.log(n_with / deg.clamp(min=1).double())
        weight = torch.where(deg[attr] > 1, idf[attr], torch.zeros_like(idf[attr]))
        #: item -> attribute value, weighted by the value's idf.
        self.item_attr = ItemCooccurrence(segment_pointer(item, num_items), attr, weight)
        by_attr = torch.argsort(attr * max(num_items, 1) + item)
        #: attribute value -> its items (sorted), as a CSR.
        self.attr_ptr = segment_pointer(attr[by_attr], num_attrs)
        self.attr_items = item[by_attr]
        #: sorted keys ``value * num_items + item`` of the same list.
        self.attr_keys = attr[by_attr] * num_items + self.attr_items
        self.num_items = num_items

    @classmethod
    def from_data(cls, data: HeteroData) -> SharedAttributePositives:
        if HAS_ATTR not in data.edge_types:
            raise ConfigError("semantic positives by shared attributes need item attributes "
                              f"(the {HAS_ATTR} graph); this dataset has none")
        return cls(data[HAS_ATTR].edge_index, int(data["item"].num_nodes),
                   int(data[HAS_ATTR[2]].num_nodes))

    def to(self, device: torch.device | str) -> SharedAttributePositives:
        out = object.__new__(SharedAttributePositives)
        out.item_attr = self.item_attr.to(device)
        out.attr_ptr, out.attr_items = self.attr_ptr.to(device), self.attr_items.to(device)
        out.attr_keys = self.attr_keys.to(device)
        out.num_items = self.num_items
        return out

    def sample(self, items: Tensor, generator: torch.Generator | None = None
               ) -> tuple[Tensor, Tensor]:
        """``(positive, found)`` for each of ``items``; ``found`` is False (and the
        positive the item itself) for an item without an informative shared value."""
        items = items.long().to(self.attr_ptr.device)
        if self.attr_items.numel() == 0:
            return items.clone(), torch.zeros_like(items, dtype=torch.bool)
        attr, found = self.item_attr.sample(items, generator)
        # Weight 0 everywhere (only uninformative values) also lands on some value: not found.
        lo, hi = self.item_attr.ptr[items], self.item_attr.ptr[items + 1]
        found = found & (self.item_attr._cum[hi] > self.item_attr._cum[lo])
        attr = torch.where(found, attr, torch.zeros_like(attr))
        start = self.attr_ptr[attr]
        n = self.attr_ptr[attr + 1] - start
        # Place of the item itself within the value's sorted item list, to skip it.
        own = torch.searchsorted(self.attr_keys, attr * self.num_items + items) - start
        r = (rand(items.numel(), generator, items.device) * (n - 1).clamp(min=1)).long()
        r = torch.minimum(r, (n - 2).clamp(min=0))
        pos = start + r + (r >= own).long()
        partner = self.attr_items[pos.clamp(max=self.attr_items.numel() - 1)]
        return torch.where(found, partner, items), found


def nearest_neighbour_graph(x: Tensor, k: int = 10, batch_size: int = 1024) -> ItemCooccurrence:
    """The ``k`` most cosine-similar other items of every item (rows of ``x``), weight 1.

    Exact batched top-k over all items (``[B, I]`` similarities per batch);
    an all-zero row (an item without a title) gets no neighbours, and no item
    gets it as a neighbour.
    """
    if k < 1:
        raise ConfigError(f"the number of nearest neighbours must be >= 1, got {k}")
    n = x.size(0)
    k = min(k, n - 1)
    z = torch.nn.functional.normalize(x.float(), dim=1)
    empty = x.abs().sum(1) == 0
    cols, weights = [], []
    for start in range(0, n, batch_size):
        sim = z[start:start + batch_size] @ z.t()
        rows = torch.arange(start, start + sim.size(0), device=x.device)
        sim[torch.arange(sim.size(0), device=x.device), rows] = -float("inf")
        sim[:, empty] = -float("inf")
        top = torch.topk(sim, k, dim=1)
        cols.append(top.indices)
        weights.append(torch.isfinite(top.values) & ~empty[rows, None])
    col, keep = torch.cat(cols), torch.cat(weights)
    row = torch.arange(n, device=x.device)[:, None].expand(-1, k)
    row, col = row[keep], col[keep]
    order = torch.argsort(row * n + col)
    row, col = row[order], col[order]
    return ItemCooccurrence(segment_pointer(row, n), col, torch.ones(col.numel(), dtype=torch.float64,
                                                                      device=x.device))
