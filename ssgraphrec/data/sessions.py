"""Sessions and user sequences as ordered hyperedges over items (DESIGN.md, "Data model").

A session node is a hyperedge over items: ``data[CONTAINS].edge_index`` holds
one (session, item) incidence per click, sorted by (session, position), and
``data[CONTAINS].position`` is the 0-based place of the click in its session.
This module builds that HeteroData from Python lists or CSR tensors, gives the
CSR pointer back, turns sessions into the left-padded id matrices of SASRec
(Kang & McAuley, ICDM 2018) and S3-Rec (Zhou et al., CIKM 2020), and performs
the prefix augmentation of SR-GNN (Wu et al., AAAI 2019). Everything after the
flattening of Python lists is vectorised tensor code.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import chain

import numpy as np
import torch
from torch import Tensor
from torch_geometric.data import HeteroData

from ..errors import ConfigError, SSGraphRecError, check_probability
from ..sparse import segment_pointer
from .schema import CONTAINS, ITEM, SESSION

TRAIN, VAL, TEST = 0, 1, 2
SessionsLike = Sequence[Sequence[int]] | tuple[Tensor, Tensor]


def flatten_sessions(sessions: SessionsLike) -> tuple[Tensor, Tensor]:
    """Return the CSR form ``(ptr, items)`` of ``sessions``.

    ``sessions`` is either a list of int sequences or already a
    ``(ptr, items)`` pair of long tensors (session ``s`` owns
    ``items[ptr[s]:ptr[s+1]]``).
    """
    if isinstance(sessions, tuple) and len(sessions) == 2 and isinstance(sessions[0], Tensor):
        ptr, items = sessions[0].long(), sessions[1].long()
        if ptr.dim() != 1 or ptr.numel() == 0 or int(ptr[0]) != 0 or int(ptr[-1]) != items.numel():
            raise SSGraphRecError("session pointer must start at 0 and end at the number of items")
        if bool((ptr[1:] < ptr[:-1]).any()):
            raise SSGraphRecError("session pointer must be non-decreasing")
        return ptr, items
    lengths = np.fromiter((len(s) for s in sessions), dtype=np.int64, count=len(sessions))
    total = int(lengths.sum())
    flat = np.fromiter(chain.from_iterable(sessions), dtype=np.int64, count=total)
    ptr = torch.zeros(len(lengths) + 1, dtype=torch.long)
    ptr[1:] = torch.from_numpy(np.cumsum(lengths))
    return ptr, torch.from_numpy(flat)


def session_data(
    sessions: SessionsLike,
    num_items: int,
    *,
    targets: Tensor | Sequence[int] | None = None,
    users: Tensor | Sequence[int] | None = None,
    split: Tensor | None = None,
    name: str = "",
    item_ids: list[str] | None = None,
) -> HeteroData:
    """Build the session HeteroData of DESIGN.md.

    Args:
        sessions: one int sequence of contiguous item ids per session (in
            click order), or a ``(ptr, items)`` CSR pair.
        num_items: size of the item id space; every item id must lie in
            ``[0, num_items)``.
        targets: next-item label of each session sample, -1 where none
            (default: all -1).
        users: owner of each sequence (contiguous user ids), when sessions are
            user sequences.
        split: ``0 / 1 / 2`` per session = train / validation / test; gives
            ``train_mask``, ``val_mask`` and ``test_mask`` (default: all train).
        name: dataset name, kept in ``data.name``.
        item_ids: raw item ids, position = contiguous id.

    Empty sessions are allowed (a sequence with nothing left for training).
    """
    ptr, items = flatten_sessions(sessions)
    num_sessions = ptr.numel() - 1
    if items.numel() and (int(items.min()) < 0 or int(items.max()) >= num_items):
        bad = items[(items < 0) | (items >= num_items)][0]
        raise SSGraphRecError(f"session item id {int(bad)} outside [0, {num_items})")
    lengths = ptr[1:] - ptr[:-1]
    session = torch.repeat_interleave(torch.arange(num_sessions), lengths)
    position = torch.arange(items.numel()) - ptr[session]

    data = HeteroData()
    data.name = name
    data[ITEM].num_nodes = int(num_items)
    data[ITEM].raw_id = item_ids if item_ids is not None else [str(i) for i in range(num_items)]
    data[SESSION].num_nodes = num_sessions
    data[CONTAINS].edge_index = torch.stack([session, items])
    data[CONTAINS].position = position
    data[SESSION].target = _per_session(targets, num_sessions, "targets", fill=-1)
    if users is not None:
        data[SESSION].user = _per_session(users, num_sessions, "users", fill=-1)
    split_t = _per_session(split, num_sessions, "split", fill=TRAIN)
    if split_t.numel() and (int(split_t.min()) < TRAIN or int(split_t.max()) > TEST):
        raise SSGraphRecError("split must hold 0 (train), 1 (validation) or 2 (test) per session")
    data[SESSION].train_mask = split_t == TRAIN
    data[SESSION].val_mask = split_t == VAL
    data[SESSION].test_mask = split_t == TEST
    return data


def _per_session(values, num_sessions: int, what: str, fill: int) -> Tensor:
    if values is None:
        return torch.full((num_sessions,), fill, dtype=torch.long)
    out = torch.as_tensor(values, dtype=torch.long).view(-1)
    if out.numel() != num_sessions:
        raise SSGraphRecError(f"{what} has {out.numel()} entries for {num_sessions} sessions")
    return out


def session_pointer(data: HeteroData) -> Tensor:
    """CSR pointer of sessions over incidences: session ``s`` owns ``ptr[s]:ptr[s+1]``."""
    return segment_pointer(data[CONTAINS].edge_index[0], int(data[SESSION].num_nodes))


def to_padded(data: HeteroData, max_len: int, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Sessions as a left-padded id matrix, the input format of SASRec and S3-Rec.

    Row ``r`` holds the last ``min(len, max_len)`` items of the ``r``-th
    selected session, **right-aligned** (padding on the left), with item ids
    **shifted by +1** so that 0 means padding, as SASRec / S3-Rec / CL4SRec do
    (``[0]*pad + seq[-max_len:]``). Sessions longer than ``max_len`` keep their
    last ``max_len`` items.

    Args:
        data: session HeteroData.
        max_len: number of columns.
        mask: bool mask over sessions (e.g. ``data['session'].test_mask``);
            default: every session, in order.

    Returns:
        ``(ids [S, max_len], lengths [S])`` where ``lengths`` is the number
        of non-padding entries (the clipped length).
    """
    if max_len < 1:
        raise ConfigError(f"max_len must be >= 1, got {max_len}")
    session, item = data[CONTAINS].edge_index
    ptr = session_pointer(data)
    length = ptr[1:] - ptr[:-1]
    num_sessions = length.numel()
    if mask is None:
        row_of = torch.arange(num_sessions, device=session.device)
        rows = num_sessions
    else:
        mask = mask.bool().view(-1)
        if mask.numel() != num_sessions:
            raise SSGraphRecError(f"mask has {mask.numel()} entries for {num_sessions} sessions")
        row_of = torch.cumsum(mask.long(), 0) - 1
        rows = int(mask.sum())
    # Rank of each incidence from the end of its session: 0 for the last click.
    from_end = ptr[session + 1] - 1 - torch.arange(session.numel(), device=session.device)
    keep = from_end < max_len
    if mask is not None:
        keep &= mask[session]
    out = torch.zeros(rows, max_len, dtype=torch.long, device=session.device)
    out[row_of[session[keep]], max_len - 1 - from_end[keep]] = item[keep] + 1
    lengths = length.clamp(max=max_len)
    if mask is not None:
        lengths = lengths[mask]
    return out, lengths


def prefix_samples(ptr: Tensor, items: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Prefix augmentation of SR-GNN (Wu et al. AAAI 2019), as in its ``process_seqs``.

    A session ``[v1, ..., vn]`` gives the ``n - 1`` samples
    ``([v1..v(n-1)], vn), ([v1..v(n-2)], v(n-1)), ..., ([v1], v2)``, longest
    prefix first, sessions in order. Sessions of length < 2 give none.

    Returns:
        ``(sample_ptr, sample_items, targets)``: the prefixes in CSR form and
        the next-item label of each.
    """
    length = ptr[1:] - ptr[:-1]
    per = (length - 1).clamp(min=0)
    owner = torch.repeat_interleave(torch.arange(length.numel()), per)
    first = torch.cumsum(per, 0) - per
    k = torch.arange(owner.numel()) - first[owner]          # 0 for the longest prefix
    prefix_len = length[owner] - 1 - k
    targets = items[ptr[owner] + prefix_len]
    sample_ptr = torch.zeros(owner.numel() + 1, dtype=torch.long)
    sample_ptr[1:] = torch.cumsum(prefix_len, 0)
    sample = torch.repeat_interleave(torch.arange(owner.numel()), prefix_len)
    pos = torch.arange(sample.numel()) - sample_ptr[sample]
    return sample_ptr, items[ptr[owner[sample]] + pos], targets


def prefix_groups(ptr: Tensor, items: Tensor, targets: Tensor) -> Tensor:
    """Which samples of a prefix-augmented list come from the same session.

    Prefix augmentation (:func:`prefix_samples`, and the DHCN / GCE-GNN pickles)
    writes a session ``[v1..vn]`` as consecutive samples, longest prefix first:
    ``([v1..v(n-1)], vn), ([v1..v(n-2)], v(n-1)), ...``. Sample ``k`` continues
    the session of sample ``k - 1`` when it is one item shorter, its items are
    the first items of ``k - 1``'s and its label is ``k - 1``'s last item.
    Returns a group id per sample (0, 1, ... in order). Vectorised.
    """
    lengths = ptr.diff()
    n = lengths.numel()
    cont = torch.zeros(n, dtype=torch.bool, device=items.device)
    if n > 1:
        cand = (lengths[1:] == lengths[:-1] - 1) & (lengths[1:] > 0)
        # label of k equals the last item of k - 1 (index ptr[k-1] + len_k)
        last_prev = items[(ptr[:-2] + lengths[1:]).clamp(max=max(items.numel() - 1, 0))]
        cand &= targets[1:] == last_prev
        # items of k equal the first len_k items of k - 1
        sample_of = torch.repeat_interleave(torch.arange(n, device=items.device), lengths)
        offset = torch.arange(items.numel(), device=items.device) - ptr[sample_of]
        prev_idx = (ptr[(sample_of - 1).clamp(min=0)] + offset).clamp(max=max(items.numel() - 1, 0))
        mismatch = (items != items[prev_idx]) | (sample_of == 0)
        bad = torch.bincount(sample_of[mismatch], minlength=n)
        cont[1:] = cand & (bad[1:] == 0)
    return torch.cumsum((~cont).long(), 0) - 1


def carve_validation(split: Tensor, val_ratio: float, seed: int, groups: Tensor | None = None) -> Tensor:
    """Move a seeded random ``val_ratio`` share of the train samples (0) to validation (1).

    The count is ``floor(val_ratio * #train)``; 0 turns validation off. With
    ``groups`` (e.g. :func:`prefix_groups`), whole groups move together, so
    that no prefix of a validation session stays in training (where its
    longer prefixes would reveal the validation label); groups are taken in a
    seeded random order while they fit in the count. Returns a new split tensor.
    """
    check_probability("val_ratio", val_ratio)
    split = split.clone()
    train = torch.nonzero(split == TRAIN).view(-1)
    n_val = int(val_ratio * train.numel())
    if not n_val:
        return split
    gen = torch.Generator().manual_seed(seed)
    if groups is None:
        split[train[torch.randperm(train.numel(), generator=gen)[:n_val]]] = VAL
        return split
    ids, group_of = torch.unique(groups[train], return_inverse=True)
    sizes = torch.bincount(group_of, minlength=ids.numel())
    order = torch.randperm(ids.numel(), generator=gen)
    chosen = torch.zeros(ids.numel(), dtype=torch.bool)
    chosen[order[torch.cumsum(sizes[order], 0) <= n_val]] = True
    split[train[chosen[group_of]]] = VAL
    return split


def session_summary(data: HeteroData) -> dict[str, int]:
    """Counts of a session dataset for ``ssgraphrec data info``."""
    store = data[SESSION]
    out = {
        "items": int(data[ITEM].num_nodes),
        "sessions": int(store.num_nodes),
        "incidences": int(data[CONTAINS].edge_index.size(1)),
        "train": int(store.train_mask.sum()),
        "val": int(store.val_mask.sum()),
        "test": int(store.test_mask.sum()),
    }
    if "user" in store:
        out["users"] = int(store.user.max()) + 1 if store.user.numel() else 0
    return out


__all__ = ["TEST", "TRAIN", "VAL", "carve_validation", "flatten_sessions", "from_padded",
           "prefix_groups",
           "padded_sessions", "prefix_samples", "session_data", "session_pointer", "session_structure",
           "session_summary", "to_padded"]


def session_structure(data: HeteroData) -> HeteroData:
    """The part of ``data`` that session structures are built from: the items, the
    sessions and their incidences, and ``train_mask`` (held-out samples never enter)."""
    out = HeteroData()
    out[ITEM].num_nodes = data[ITEM].num_nodes
    out[SESSION].num_nodes = data[SESSION].num_nodes
    out[SESSION].train_mask = data[SESSION].train_mask
    out[CONTAINS].edge_index = data[CONTAINS].edge_index
    return out


def padded_sessions(data: HeteroData, sessions: Tensor, max_len: int, append: Tensor | None = None,
                    ptr: Tensor | None = None) -> Tensor:
    """Left-padded, +1-shifted item ids of the given sessions, in the given order.

    The batched counterpart of :func:`to_padded` for a shuffled batch of
    session ids: row ``r`` holds the last ``max_len`` items of session
    ``sessions[r]`` (followed by ``append[r]`` where ``append[r] >= 0``, e.g.
    the validation item that completes a user's test input), right-aligned,
    0 for padding.

    Args:
        data: session HeteroData.
        sessions: ``[B]`` session ids.
        max_len: number of columns.
        append: optional ``[B]`` item to add at the end of each row (-1: none).
        ptr: :func:`session_pointer` of ``data``, when the caller has it.
    """
    if max_len < 1:
        raise ConfigError(f"max_len must be >= 1, got {max_len}")
    item = data[CONTAINS].edge_index[1]
    ptr = session_pointer(data) if ptr is None else ptr
    start, end = ptr[sessions], ptr[sessions + 1]
    extra = torch.zeros_like(start) if append is None else (append >= 0).long()
    out = torch.zeros(sessions.numel(), max_len, dtype=torch.long, device=item.device)
    # column j (from the right, 0 = last) reads incidence end - 1 - (j - extra)
    back = torch.arange(max_len, device=item.device)
    idx = end[:, None] - 1 - (back[None, :] - extra[:, None])
    valid = (idx >= start[:, None]) & (back[None, :] >= extra[:, None])
    cols = max_len - 1 - back
    vals = torch.where(valid, item[idx.clamp(min=0, max=max(item.numel() - 1, 0))] + 1,
                       torch.zeros_like(idx))
    out[:, cols] = vals
    if append is not None:
        has = append >= 0
        out[has, max_len - 1] = append[has] + 1
    return out


def from_padded(ids: Tensor, num_items: int) -> HeteroData:
    """The inverse of :func:`padded_sessions`: a session HeteroData with one session per row.

    Row ``r`` of the +1-shifted id matrix ``ids`` (0 = padding, anywhere in
    the row) becomes session ``r`` with its non-zero entries in column order,
    so that the sequence augmentations of :mod:`ssgraphrec.transforms` can act
    on a training batch; ``padded_sessions(from_padded(ids, n), arange(B), L)``
    gives ``ids`` back for left-padded rows. Holds only the session store (no
    targets, no split masks).
    """
    session, col = (ids > 0).nonzero(as_tuple=True)  # row-major: sorted by (row, column)
    ptr = segment_pointer(session, ids.size(0))
    data = HeteroData()
    data[ITEM].num_nodes = int(num_items)
    data[SESSION].num_nodes = int(ids.size(0))
    data[CONTAINS].edge_index = torch.stack([session, ids[session, col] - 1])
    data[CONTAINS].position = torch.arange(session.numel(), device=ids.device) - ptr[session]
    return data


def prefix_targets(data: HeteroData, sessions: Tensor | None = None, ptr: Tensor | None = None) -> Tensor:
    """Incidence ids of the prefix samples of user sequences: every incidence but the first.

    Incidence ``k`` of session ``s`` stands for the sample (items of ``s``
    before ``k``, next item ``k``): the per-prefix training data of RecBole's
    sequential data loader (one sample per prefix of length >= 1, the next
    item as target), which :func:`padded_prefixes` turns into input rows.

    Args:
        data: session HeteroData.
        sessions: optional boolean ``[num_sessions]`` mask of the sessions
            that give samples (e.g. ``train_mask``); default: all.
        ptr: :func:`session_pointer` of ``data``, when the caller has it.
    """
    ptr = session_pointer(data) if ptr is None else ptr
    session = data[CONTAINS].edge_index[0]
    k = torch.arange(session.numel(), device=session.device)
    keep = k > ptr[session]
    if sessions is not None:
        keep &= sessions.to(session.device)[session]
    return k[keep]


def padded_prefixes(data: HeteroData, ends: Tensor, max_len: int, ptr: Tensor | None = None) -> Tensor:
    """Left-padded, +1-shifted ids of the prefixes ending before incidences ``ends``.

    Row ``r`` holds the last ``max_len`` items of the session of incidence
    ``ends[r]`` that come before it (incidences ``ptr[s] .. ends[r] - 1``),
    right-aligned, 0 for padding: the input of the prefix sample
    ``ends[r]`` of :func:`prefix_targets`, as :func:`padded_sessions` lays out
    a whole session.
    """
    if max_len < 1:
        raise ConfigError(f"max_len must be >= 1, got {max_len}")
    session, item = data[CONTAINS].edge_index
    ptr = session_pointer(data) if ptr is None else ptr
    start = ptr[session[ends]]
    back = torch.arange(max_len, device=item.device)
    idx = ends[:, None] - 1 - back[None, :]
    valid = idx >= start[:, None]
    vals = torch.where(valid, item[idx.clamp(min=0)] + 1, torch.zeros_like(idx))
    return vals.flip(1)
