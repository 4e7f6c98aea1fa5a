r"""CL4SRec's sequence augmentations: item crop, item mask, item reorder.

Xie et al., "Contrastive Learning for Sequential Recommendation", ICDE 2022
(arXiv:2010.14395, 2020), Sec. 3.2 (Eq. 3-5). A sequence is an ordered
hyperedge: the incidences ``data['session', 'contains', 'item']`` of a session,
sorted by (session, position). Each augmentation acts on every session (or on
the sessions of a boolean session attribute, ``sessions=``), with segment
operations over the session pointer: no loop over sessions.

Default ratios: :math:`\eta = 0.6`, :math:`\gamma = 0.3`, :math:`\beta = 0.6`,
the defaults of the CL4SRec implementation in RecBole / DuoRec
(``item_crop(eta=0.6)``, ``item_mask(gamma=0.3)``, ``item_reorder(beta=0.6)``);
the paper itself tunes each ratio over 0.1 ... 0.9 per dataset (Sec. 4.5).
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch_geometric.data import HeteroData
from torch_geometric.transforms import BaseTransform

from ..data.schema import CONTAINS, SESSION
from ..errors import check_probability
from .base import EdgeType, keep_edges, register_augmentation
from .session_ops import (
    choose_per_session,
    random_ranks,
    random_window_start,
    rank_in_session,
    ratio_counts,
    session_mask,
    session_pointer,
)


class Sessions:
    """The segment view of a session store: ``session`` ids of the incidences, the
    CSR pointer ``ptr``, the session ``length`` and the ``rank`` of each incidence."""

    def __init__(self, store, num_sessions: int):
        self.session = store.edge_index[0].long()
        if self.session.numel() > 1 and bool((self.session[1:] < self.session[:-1]).any()):
            raise ValueError("sequence augmentation: the incidences are not sorted by session "
                             "(the schema sorts them by (session, position))")
        self.num_sessions = num_sessions
        self.ptr = session_pointer(self.session, num_sessions)
        self.length = self.ptr.diff()
        self.rank = rank_in_session(self.session, self.ptr)


class SequenceAugmentation(BaseTransform):
    """Base of the augmentations acting on each session's ordered items.

    Args:
        ratio: the augmentation's ratio, in [0, 1) (else ``ConfigError``).
        sessions: name of a boolean session attribute (e.g. ``"train_mask"``)
            selecting the sessions to augment; the others are left as they are.
            Default: every session.
        edge_type: the session-item edge type acted on.
        generator: a seeded ``torch.Generator`` (default: PyTorch's global RNG).
    """

    name = "sequence_augmentation"
    ratio_name = "ratio"

    def __init__(self, ratio: float, sessions: str | None = None, edge_type: EdgeType = CONTAINS,
                 generator: torch.Generator | None = None):
        self.ratio = check_probability(f"{type(self).__name__} {self.ratio_name}", ratio)
        self.sessions = sessions
        self.edge_type = tuple(edge_type)
        self.generator = generator

    def forward(self, data: HeteroData) -> HeteroData:
        if self.edge_type not in data.edge_types:
            raise KeyError(f"{type(self).__name__}: the data has no edge type {self.edge_type}")
        store = data[self.edge_type]
        seg = Sessions(store, int(data[self.edge_type[0]].num_nodes))
        self.augment(data, store, seg, session_mask(data, self.sessions))
        return data

    def augment(self, data: HeteroData, store, seg: Sessions, selected: Tensor | None) -> None:
        raise NotImplementedError

    def counts(self, seg: Sessions, selected: Tensor | None, at_least_one: bool) -> Tensor:
        """``floor(ratio * length)`` per selected session (0 for the others)."""
        k = ratio_counts(seg.length, self.ratio, at_least_one)
        return k if selected is None else torch.where(selected.to(k.device), k, torch.zeros_like(k))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.ratio_name}={self.ratio}, sessions={self.sessions!r})"


@register_augmentation("item_crop")
class ItemCrop(SequenceAugmentation):
    r"""Keep a random contiguous sub-sequence of each session (functional name: ``item_crop``).

    CL4SRec Eq. 3: :math:`s^{crop} = [v_c, \dots, v_{c+L_c-1}]` with
    :math:`L_c = \lfloor \eta |s| \rfloor` (at least 1 here, so no session
    empties) and the start :math:`c` uniform over the ``|s| - L_c + 1`` places.
    The kept incidences keep their order; positions are renumbered from 0.
    """

    ratio_name = "eta"

    def __init__(self, eta: float = 0.6, sessions: str | None = None,
                 edge_type: EdgeType = CONTAINS, generator: torch.Generator | None = None):
        super().__init__(eta, sessions, edge_type, generator)

    def augment(self, data: HeteroData, store, seg: Sessions, selected: Tensor | None) -> None:
        size = self.counts(seg, None, at_least_one=True)
        start = random_window_start(seg.length, size, self.generator)
        if selected is not None:
            selected = selected.to(size.device)
            size = torch.where(selected, size, seg.length)
            start = torch.where(selected, start, torch.zeros_like(start))
        offset = seg.rank - start[seg.session]
        keep = (offset >= 0) & (offset < size[seg.session])
        keep_edges(store, keep)
        store.position = offset[keep]


@register_augmentation("item_mask")
class ItemMask(SequenceAugmentation):
    r"""Mask a random share of each session's items (functional name: ``item_mask``).

    CL4SRec Eq. 4: :math:`\lfloor \gamma |s| \rfloor` items of each session,
    chosen uniformly without replacement, are replaced by the special
    ``[mask]`` item. Here the incidences stay (item, position and order are
    unchanged) and the boolean edge attribute ``mask`` marks them: an encoder
    substitutes its ``[mask]`` embedding where ``mask`` is True, so the item id
    space needs no extra id and the view still says which item was hidden
    (e.g. for a reconstruction loss). Applied to a store that already has
    ``mask``, the new marks are added to the old ones (logical or).
    """

    ratio_name = "gamma"

    def __init__(self, gamma: float = 0.3, sessions: str | None = None,
                 edge_type: EdgeType = CONTAINS, generator: torch.Generator | None = None):
        super().__init__(gamma, sessions, edge_type, generator)

    def augment(self, data: HeteroData, store, seg: Sessions, selected: Tensor | None) -> None:
        chosen = choose_per_session(seg.session, seg.ptr, self.counts(seg, selected, False),
                                    self.generator)
        store.mask = chosen | store.mask.bool() if "mask" in store else chosen


@register_augmentation("item_reorder")
class ItemReorder(SequenceAugmentation):
    r"""Shuffle a random contiguous sub-sequence of each session (functional name: ``item_reorder``).

    CL4SRec Eq. 5: the window :math:`[v_r, \dots, v_{r+L_r-1}]`,
    :math:`L_r = \lfloor \beta |s| \rfloor`, start :math:`r` uniform, is
    replaced by a uniformly random permutation of itself. The incidences are
    re-sorted by (session, new position) and positions renumbered from 0;
    every per-edge attribute moves with its incidence.
    """

    ratio_name = "beta"

    def __init__(self, beta: float = 0.6, sessions: str | None = None,
                 edge_type: EdgeType = CONTAINS, generator: torch.Generator | None = None):
        super().__init__(beta, sessions, edge_type, generator)

    def augment(self, data: HeteroData, store, seg: Sessions, selected: Tensor | None) -> None:
        size = self.counts(seg, selected, at_least_one=False)
        start = random_window_start(seg.length, size, self.generator)
        offset = seg.rank - start[seg.session]
        inside = (offset >= 0) & (offset < size[seg.session])
        new_rank = seg.rank.clone()
        sess_in = seg.session[inside]
        shuffled = random_ranks(sess_in, session_pointer(sess_in, seg.num_sessions), self.generator)
        new_rank[inside] = start[sess_in] + shuffled
        order = torch.empty_like(new_rank)
        order[seg.ptr[seg.session] + new_rank] = torch.arange(new_rank.numel(), device=new_rank.device)
        keep_edges(store, order)  # an index instead of a mask: a within-session permutation
        store.position = seg.rank.clone()


class SessionChoice(BaseTransform):
    """Apply one of ``transforms`` to each session: torchvision's ``RandomChoice``, drawn
    per session instead of per call, all sessions at once.

    Session ``s`` gets ``transforms[c]`` where ``c = data['session'][choice][s]`` when the
    data carries that attribute (CL4SRec draws two different augmentations per sequence,
    one for each view), else one drawn uniformly from ``generator``. Each transform acts
    on the sessions that chose it through its ``sessions=`` mask, which this transform
    sets (``f"{choice}_{k}"``); the transforms run in their order.

    Args:
        transforms: :class:`SequenceAugmentation`-like transforms with a ``sessions`` mask.
        choice: the name of the per-session choice attribute.
        generator: a seeded ``torch.Generator`` for choices drawn here.
    """

    def __init__(self, transforms: list[BaseTransform], choice: str = "aug_choice",
                 generator: torch.Generator | None = None):
        if not transforms:
            raise ValueError("SessionChoice needs at least one transform")
        self.transforms = list(transforms)
        self.choice = choice
        self.generator = generator
        for k, transform in enumerate(self.transforms):
            transform.sessions = f"{choice}_{k}"

    def draw(self, num_sessions: int, device: torch.device) -> Tensor:
        """A uniform choice of transform for each of ``num_sessions`` sessions."""
        gen_device = self.generator.device if self.generator is not None else device
        picks = torch.randint(len(self.transforms), (num_sessions,), generator=self.generator,
                              device=gen_device)
        return picks.to(device)

    def forward(self, data: HeteroData) -> HeteroData:
        store = data[SESSION]
        n = int(store.num_nodes)
        pick = store[self.choice] if self.choice in store else self.draw(
            n, data[CONTAINS].edge_index.device)
        for k in range(len(self.transforms)):
            store[f"{self.choice}_{k}"] = pick == k
        for transform in self.transforms:
            data = transform(data)
        return data

    def __repr__(self) -> str:
        return f"SessionChoice({self.transforms}, choice={self.choice!r})"
