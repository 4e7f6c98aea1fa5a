"""Segment operations over sessions, shared by the session structure builders and the
sequence augmentations.

A session store (``data[CONTAINS]``, see :mod:`ssgraphrec.data.schema`) holds
incidences ``(session, item)`` sorted by (session, position), so session ``s``
owns the contiguous slice ``ptr[s]:ptr[s+1]`` of a CSR pointer. Everything here
works on that pointer with prefix sums, sorts and scatters: no Python loop
over sessions or items.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch_geometric.data import HeteroData

from ..data.schema import CONTAINS, SESSION, sort_pairs
from ..errors import ConfigError
from ..sparse import segment_pointer
from .base import edge_ids, rand
from .graph_diffusion import edge_id_base


def session_pointer(session: Tensor, num_sessions: int) -> Tensor:
    """CSR pointer of session-sorted incidences: session ``s`` owns ``ptr[s]:ptr[s+1]``."""
    return segment_pointer(session, num_sessions)


def rank_in_session(session: Tensor, ptr: Tensor) -> Tensor:
    """0-based place of each incidence within its session (its slice of ``ptr``)."""
    return torch.arange(session.numel(), device=session.device) - ptr[session]


def num_sessions(data: HeteroData) -> int:
    return int(data[SESSION].num_nodes)


def session_mask(data: HeteroData, key: str | None) -> Tensor | None:
    """The boolean mask ``data[SESSION][key]`` (``None`` for ``key=None``: every session)."""
    if key is None:
        return None
    if key not in data[SESSION]:
        raise ConfigError(f"the data has no session mask {key!r}")
    return data[SESSION][key].bool()


def default_session_mask(data: HeteroData, key: str | None) -> Tensor | None:
    """``key``'s mask if given, else ``train_mask`` when the data has one, else every session."""
    if key is None and SESSION in data.node_types and "train_mask" in data[SESSION]:
        key = "train_mask"
    return session_mask(data, key)


def incidence_pairs(data: HeteroData, mask: Tensor | None = None,
                    edge_type: tuple[str, str, str] = CONTAINS) -> Tensor:
    """``[2, nnz]`` distinct (session, item) pairs of the sessions in ``mask``, sorted.

    An item that occurs twice in a session counts once (the incidence matrix
    ``H`` of a hypergraph is 0/1).
    """
    ei = data[edge_type].edge_index.long()
    if mask is not None:
        ei = ei[:, mask.to(ei.device)[ei[0]]]
    return sort_pairs(ei, int(data[edge_type[2]].num_nodes))


def ratio_counts(length: Tensor, ratio: float, at_least_one: bool) -> Tensor:
    """``floor(ratio * length)`` per session (in float64, as Python's ``math.floor``),
    raised to 1 if ``at_least_one``, and never above ``length``."""
    k = torch.floor(length.double() * ratio).long()
    if at_least_one:
        k = k.clamp(min=1)
    return torch.minimum(k, length)


def random_window_start(length: Tensor, size: Tensor, generator: torch.Generator | None) -> Tensor:
    """A uniform start in ``0 .. length - size`` per session (as ``random.randint`` in CL4SRec)."""
    u = rand(length.numel(), generator, length.device).double()
    span = (length - size + 1).clamp(min=1)
    return torch.floor(u * span).long().clamp(max=span - 1)


def random_ranks(session: Tensor, ptr: Tensor, generator: torch.Generator | None) -> Tensor:
    """A uniformly random permutation rank of each incidence within its session.

    Random keys, a sort, then a stable sort by session: incidence ``j`` gets
    its place among its session's incidences in key order.
    """
    n = session.numel()
    keys = rand(n, generator, session.device)
    order = torch.argsort(keys)
    order = order[torch.argsort(session[order], stable=True)]
    ranks = torch.empty(n, dtype=torch.long, device=session.device)
    ranks[order] = torch.arange(n, device=session.device) - ptr[session[order]]
    return ranks


def choose_per_session(session: Tensor, ptr: Tensor, counts: Tensor,
                       generator: torch.Generator | None) -> Tensor:
    """Boolean mask over incidences with exactly ``counts[s]`` random ones of each session ``s``."""
    return random_ranks(session, ptr, generator) < counts[session]


def fresh_edge_ids(store, n: int) -> Tensor:
    """``n`` edge ids above every id of the store's original and added edges.

    Incidences a transform creates (substituted or inserted items) get such
    ids, as :class:`~ssgraphrec.transforms.GraphDiffusion` does for the edges
    it adds, so they are never mistaken for original incidences.
    """
    base = edge_id_base(store)
    old = edge_ids(store)
    first = max(base, int(old.max()) + 1 if old.numel() else 0)
    if "num_base_edges" not in store:
        store.num_base_edges = base
    return torch.arange(first, first + n, device=store.edge_index.device)
