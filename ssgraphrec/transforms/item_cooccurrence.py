"""An item-item co-occurrence graph of training sequences, for correlated augmentations.

CoSeRec (Liu et al., "Contrastive Self-supervised Sequential Recommendation
with Robust Augmentation", arXiv:2108.06479, 2021, Sec. 3.2) substitutes and
inserts *correlated* items, taken from an item-item similarity computed on the
training data (their code offers ItemCF, ItemCF-IUF, Item2Vec and LightGCN
similarities). Here the similarity is the simplest documented one: the number
of times two distinct items occur within ``window`` places of each other in a
training session (window 1: adjacent items), counted in both directions.
Correlated items are *sampled* with probability proportional to that count
(CoSeRec's code takes the single most similar item); :meth:`ItemCooccurrence.sample`
does it for many items at once with the CSR pointer, a global cumulative sum
and ``searchsorted``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from torch_geometric.data import HeteroData

from ..data.schema import CONTAINS
from ..errors import ConfigError
from .base import EdgeType, rand
from .session_ops import default_session_mask, session_pointer


@dataclass
class ItemCooccurrence:
    """A weighted item-item graph in CSR form (rows sorted, no self-loops).

    Attributes:
        ptr: ``[num_items + 1]`` row pointer.
        col: ``[E]`` neighbour ids, sorted within each row.
        weight: ``[E]`` co-occurrence counts (float64).
    """

    ptr: Tensor
    col: Tensor
    weight: Tensor

    def __post_init__(self) -> None:
        # cum[k] = total weight of the first k entries (exclusive prefix sum, [E + 1]).
        self._cum = torch.cat([self.weight.new_zeros(1, dtype=torch.float64),
                               torch.cumsum(self.weight.double(), 0)])

    @classmethod
    def from_data(cls, data: HeteroData, window: int = 1, mask: str | None = None,
                  edge_type: EdgeType = CONTAINS) -> ItemCooccurrence:
        """The graph of :func:`item_cooccurrence`."""
        return item_cooccurrence(data, window, mask, edge_type)

    @property
    def num_items(self) -> int:
        return int(self.ptr.numel()) - 1

    def degree(self) -> Tensor:
        """Number of neighbours of each item."""
        return self.ptr.diff()

    def edge_index(self) -> Tensor:
        """``[2, E]`` (item, neighbour) pairs sorted by (row, column)."""
        row = torch.repeat_interleave(torch.arange(self.num_items, device=self.ptr.device), self.degree())
        return torch.stack([row, self.col])

    def to(self, device: torch.device | str) -> ItemCooccurrence:
        return ItemCooccurrence(self.ptr.to(device), self.col.to(device), self.weight.to(device))

    def sample(self, items: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """One neighbour of each of ``items``, drawn with probability proportional to weight.

        Returns ``(neighbour, found)``: ``found`` is False for items without a
        neighbour, whose ``neighbour`` is the item itself.
        """
        items = items.long().to(self.ptr.device)
        lo, hi = self.ptr[items], self.ptr[items + 1]
        found = hi > lo
        if self.col.numel() == 0:
            return items.clone(), found
        u = rand(items.numel(), generator, self.ptr.device).double()
        before, total = self._cum[lo], self._cum[hi]
        target = before + u * (total - before)
        pos = torch.searchsorted(self._cum[1:], target, right=True)  # first entry whose prefix > target
        pos = torch.minimum(torch.maximum(pos, lo), (hi - 1).clamp(min=0))
        neighbour = torch.where(found, self.col[pos], items)
        return neighbour, found


def item_cooccurrence(data: HeteroData, window: int = 1, mask: str | None = None,
                      edge_type: EdgeType = CONTAINS) -> ItemCooccurrence:
    """Count, over the sessions of ``mask`` (default: ``train_mask`` when present, else
    all), the pairs of distinct items at most ``window`` places apart.

    The graph is symmetric: each such pair adds 1 to both ``(a, b)`` and
    ``(b, a)``. Loops over the ``window`` offsets only (a small constant).
    """
    if int(window) < 1:
        raise ConfigError(f"item_cooccurrence: window must be >= 1, got {window}")
    store = data[edge_type]
    n_items = int(data[edge_type[2]].num_nodes)
    session, item = store.edge_index[0].long(), store.edge_index[1].long()
    selected = default_session_mask(data, mask)
    if selected is not None:
        keep = selected.to(session.device)[session]
        session, item = session[keep], item[keep]
    keys = []
    for d in range(1, int(window) + 1):
        same = session[d:] == session[:-d]
        a, b = item[:-d][same], item[d:][same]
        distinct = a != b
        a, b = a[distinct], b[distinct]
        keys += [a * n_items + b, b * n_items + a]
    key = torch.cat(keys) if keys else torch.zeros(0, dtype=torch.long, device=item.device)
    key, count = torch.unique(key, return_counts=True)
    row, col = key // n_items, key % n_items
    return ItemCooccurrence(session_pointer(row, n_items), col, count.double())
