r"""CoSeRec's informative augmentations: substitute and insert correlated items.

Liu et al., "Contrastive Self-supervised Sequential Recommendation with Robust
Augmentation", arXiv:2108.06479, 2021, Sec. 3.2: pick
:math:`\max(1, \lfloor \text{rate} \cdot |s| \rfloor)` random items of each
session (as the authors' code) and either replace each by a correlated item
(*substitute*) or insert a correlated item right before it (*insert*). The
correlated item is drawn from an :class:`~ssgraphrec.transforms.item_cooccurrence.ItemCooccurrence`
graph built from training sequences, proportionally to the co-occurrence
count (not uniformly). A chosen item without any neighbour in that graph is
left unchanged (substitute) or gets nothing inserted (insert).

Default rates: 0.1 (substitute) and 0.4 (insert), the ``--substitute_rate``
and ``--insert_rate`` defaults of the authors' code.

Incidences the transforms create get fresh edge ids in ``e_id`` (above every
original id), as :class:`~ssgraphrec.transforms.GraphDiffusion` does for the
edges it adds.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch_geometric.data import HeteroData

from ..data.schema import CONTAINS
from .base import EDGE_ATTRS, EdgeType, edge_ids, register_augmentation
from .item_cooccurrence import ItemCooccurrence, item_cooccurrence
from .sequence_augment import SequenceAugmentation, Sessions
from .session_ops import choose_per_session, fresh_edge_ids, rank_in_session, session_pointer


class CorrelatedAugmentation(SequenceAugmentation):
    """Base of substitute / insert: chooses the items and their correlated items.

    Args:
        rate: share of each session's items acted on (at least one item).
        cooccurrence: the item-item graph to draw correlated items from.
            Default: built from the input data at every call with
            :func:`item_cooccurrence` (``window``, training sessions); pass one
            built once to save that work.
        window: co-occurrence window when the graph is built here.
        sessions, edge_type, generator: as :class:`SequenceAugmentation`.
    """

    ratio_name = "rate"

    def __init__(self, rate: float, cooccurrence: ItemCooccurrence | None = None, window: int = 1,
                 sessions: str | None = None, edge_type: EdgeType = CONTAINS,
                 generator: torch.Generator | None = None):
        super().__init__(rate, sessions, edge_type, generator)
        self.cooccurrence = cooccurrence
        self.window = int(window)

    def correlated(self, data: HeteroData, store, seg: Sessions,
                   selected: Tensor | None) -> tuple[Tensor, Tensor]:
        """``(where, item)``: incidences acted on, and the correlated item for each."""
        graph = self.cooccurrence
        if graph is None:
            graph = item_cooccurrence(data, self.window, edge_type=self.edge_type)
        device = store.edge_index.device
        chosen = choose_per_session(seg.session, seg.ptr, self.counts(seg, selected, True),
                                    self.generator).nonzero().view(-1)
        neighbour, found = graph.to(device).sample(store.edge_index[1, chosen], self.generator)
        return chosen[found], neighbour[found].to(store.edge_index.dtype)


@register_augmentation("item_substitute")
class ItemSubstitute(CorrelatedAugmentation):
    """Replace chosen items by a correlated item (CoSeRec; functional name: ``item_substitute``).

    Positions, order and every other per-edge attribute stay; a substituted
    incidence gets a fresh ``e_id``.
    """

    def __init__(self, rate: float = 0.1, cooccurrence: ItemCooccurrence | None = None,
                 window: int = 1, sessions: str | None = None, edge_type: EdgeType = CONTAINS,
                 generator: torch.Generator | None = None):
        super().__init__(rate, cooccurrence, window, sessions, edge_type, generator)

    def augment(self, data: HeteroData, store, seg: Sessions, selected: Tensor | None) -> None:
        where, item = self.correlated(data, store, seg, selected)
        e_id = edge_ids(store).clone()
        e_id[where] = fresh_edge_ids(store, where.numel()).to(e_id.device)
        edge_index = store.edge_index.clone()
        edge_index[1, where] = item
        store.edge_index = edge_index
        store.e_id = e_id


@register_augmentation("item_insert")
class ItemInsert(CorrelatedAugmentation):
    """Insert a correlated item before chosen items (CoSeRec; functional name: ``item_insert``).

    Incidences stay sorted by (session, position); positions are renumbered
    from 0. An inserted incidence copies the per-edge attributes (``time``,
    ``edge_weight``, ...) of the item it precedes, except ``mask`` (False) and
    ``e_id`` (fresh).
    """

    def __init__(self, rate: float = 0.4, cooccurrence: ItemCooccurrence | None = None,
                 window: int = 1, sessions: str | None = None, edge_type: EdgeType = CONTAINS,
                 generator: torch.Generator | None = None):
        super().__init__(rate, cooccurrence, window, sessions, edge_type, generator)

    def augment(self, data: HeteroData, store, seg: Sessions, selected: Tensor | None) -> None:
        where, item = self.correlated(data, store, seg, selected)
        n, device = seg.session.numel(), seg.session.device
        before = torch.zeros(n, dtype=torch.long, device=device)
        before[where] = 1
        shift = torch.cumsum(before, 0)                       # insertions at or before each incidence
        old_to = torch.arange(n, device=device) + shift       # new place of each old incidence
        new_to = old_to[where] - 1                            # the inserted one goes right before
        total = n + where.numel()

        def spread(x: Tensor, inserted: Tensor) -> Tensor:
            out = x.new_empty((total,) + tuple(x.shape[1:]))
            out[old_to] = x
            out[new_to] = inserted
            return out

        new_ids = fresh_edge_ids(store, where.numel())
        e_id = edge_ids(store)
        for key in EDGE_ATTRS:
            if key in store and key not in ("e_id", "position", "mask"):
                store[key] = spread(store[key], store[key][where])
        if "mask" in store:
            store.mask = spread(store.mask.bool(), torch.zeros(where.numel(), dtype=torch.bool,
                                                                device=device))
        ei = store.edge_index
        session = spread(ei[0], ei[0, where])
        store.edge_index = torch.stack([session, spread(ei[1], item)])
        store.e_id = spread(e_id, new_ids.to(e_id.device))
        store.position = rank_in_session(session, session_pointer(session, seg.num_sessions))
