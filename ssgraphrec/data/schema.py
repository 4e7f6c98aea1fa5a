"""The HeteroData schema shared by every scenario (see DESIGN.md, "Data model").

Node types ``user`` and ``item`` have contiguous ids from 0. Training
interactions are ``data[INTERACTS].edge_index``; held-out interactions are
``val_edge_index`` and ``test_edge_index`` on the same store and are never part
of the graph. Every interaction set is sorted by (user, item) and free of
duplicates, which lets evaluation slice a user's items without a search and
lets :class:`ssgraphrec.sparse.BipartiteGraph` skip its sort.
"""

from __future__ import annotations

import hashlib

import torch
from torch import Tensor
from torch_geometric.data import HeteroData

from ..sparse.kernels import segment_pointer

USER = "user"
ITEM = "item"
ATTR = "attr"
INTERACTS = (USER, "interacts", ITEM)
FOLLOWS = (USER, "follows", USER)
HAS_ATTR = (ITEM, "has", ATTR)
# User features as a graph (ml-100k .user: age, gender, occupation), the same
# way as item attributes: ``data['user_attr'].field`` indexes
# ``data.user_attr_fields``; see :mod:`ssgraphrec.data.attributes`.
USER_ATTR = "user_attr"
USER_HAS_ATTR = (USER, "has", USER_ATTR)

# Sessions and user sequences (DESIGN.md): a session node is a hyperedge over
# items. ``data[CONTAINS].edge_index`` is ``[2, nnz]`` (session, item), sorted by
# (session, position); ``data[CONTAINS].position`` is the 0-based place of each
# item in its session (so the k-th incidence of a session has position k unless
# a transform re-ordered it). ``data[SESSION].target`` is the next-item label of
# a session sample (-1 where none); ``data[SESSION].user`` owns a sequence;
# ``data[SESSION].train_mask / val_mask / test_mask`` say which split a sample
# belongs to.
#
# Session samples (``task="next_item"``: DHCN / GCE-GNN pickles, click logs):
# one session per sample, a prefix of a real session with ``target`` its next
# item; train / val / test samples are told apart by the masks.
# User sequences (``task="sequential"``: S3-Rec files, leave-one-out): one
# session per user holding the *training sequence* (all items but the last
# two), ``data[SESSION].val_target`` (second to last item) and ``test_target``
# (last item), -1 where none; ``target`` is -1 (training targets are the
# sequence shifted by one). The test input is the training sequence followed
# by the validation item. ``train_mask`` marks a non-empty training sequence,
# ``val_mask`` / ``test_mask`` a validation / test target. Helpers live in
# :mod:`ssgraphrec.data.sessions` (``session_data``, ``to_padded``, ...).
SESSION = "session"
CONTAINS = (SESSION, "contains", ITEM)

SPLIT_KEYS = ("edge_index", "val_edge_index", "test_edge_index")


def sort_pairs(edge_index: Tensor, num_cols: int) -> Tensor:
    """Sort ``[2, E]`` pairs by (row, col) and drop duplicates."""
    if edge_index.numel() == 0:
        return edge_index.view(2, 0).long()
    key = torch.unique(edge_index[0].long() * num_cols + edge_index[1].long())
    return torch.stack([key // num_cols, key % num_cols])


def user_pointer(edge_index: Tensor, num_users: int) -> Tensor:
    """CSR row pointer of (user, item)-sorted pairs: user ``u`` owns ``ptr[u]:ptr[u+1]``."""
    return segment_pointer(edge_index[0], num_users)


def interaction_data(
    num_users: int,
    num_items: int,
    train: Tensor,
    val: Tensor | None = None,
    test: Tensor | None = None,
    *,
    name: str = "",
    user_ids: list[str] | None = None,
    item_ids: list[str] | None = None,
) -> HeteroData:
    """Build the HeteroData of a user-item dataset from contiguous-id pairs.

    Args:
        num_users, num_items: sizes of the id spaces.
        train, val, test: ``[2, E]`` (user, item) pairs; sorted and
            deduplicated here.
        name: dataset name, kept in ``data.name``.
        user_ids, item_ids: raw ids, position = contiguous id (for writing
            recommendations back in raw ids).
    """
    data = HeteroData()
    data[USER].num_nodes = int(num_users)
    data[ITEM].num_nodes = int(num_items)
    store = data[INTERACTS]
    empty = torch.zeros(2, 0, dtype=torch.long)
    store.edge_index = sort_pairs(train, num_items)
    store.val_edge_index = sort_pairs(val if val is not None else empty, num_items)
    store.test_edge_index = sort_pairs(test if test is not None else empty, num_items)
    data.name = name
    data[USER].raw_id = user_ids if user_ids is not None else [str(i) for i in range(num_users)]
    data[ITEM].raw_id = item_ids if item_ids is not None else [str(i) for i in range(num_items)]
    return data


def num_users(data: HeteroData) -> int:
    """Users in the id space (0 for session data without users)."""
    if USER not in data.node_types or data[USER].num_nodes is None:
        return 0
    return int(data[USER].num_nodes)


TASKS = ("ranking", "next_item", "sequential")


def task_of(data: HeteroData) -> str:
    """What the data are for: ``ranking`` (user-item interactions), ``next_item``
    (session samples with a next-item label) or ``sequential`` (user sequences)."""
    if INTERACTS in data.edge_types:
        return "ranking"
    task = data.task if "task" in data else None
    if task is None and CONTAINS in data.edge_types:
        # Readers set data.task; hand-built session data say it by their held-out keys.
        task = "sequential" if "test_target" in data[SESSION] else "next_item"
    if task not in TASKS:
        raise ValueError(f"data without user-item interactions or sessions has no task, got {task!r}")
    return task


def num_items(data: HeteroData) -> int:
    return int(data[ITEM].num_nodes)


def fingerprint(data: HeteroData) -> str:
    """A short hash of the id spaces and every interaction split (or the session samples)."""
    h = hashlib.sha1()
    if INTERACTS not in data.edge_types and CONTAINS in data.edge_types:
        h.update(f"{int(data[SESSION].num_nodes)},{num_items(data)}".encode())
        h.update(data[CONTAINS].edge_index.cpu().numpy().tobytes())
        for key in ("target", "val_target", "test_target", "train_mask", "val_mask", "test_mask"):
            if key in data[SESSION]:
                h.update(data[SESSION][key].cpu().numpy().tobytes())
        return h.hexdigest()[:16]
    h.update(f"{num_users(data)},{num_items(data)}".encode())
    store = data[INTERACTS]
    for key in SPLIT_KEYS:
        h.update(store[key].cpu().numpy().tobytes())
    if FOLLOWS in data.edge_types:
        h.update(data[FOLLOWS].edge_index.cpu().numpy().tobytes())
    return h.hexdigest()[:16]


def summary(data: HeteroData) -> dict[str, int | str]:
    """Counts for ``ssgraphrec data info`` and ``results.json``."""
    if INTERACTS not in data.edge_types and CONTAINS in data.edge_types:
        from .sessions import session_summary  # sessions imports this module

        return {"name": data.name, **session_summary(data), "fingerprint": fingerprint(data)}
    store = data[INTERACTS]
    out: dict[str, int | str] = {
        "name": data.name,
        "users": num_users(data),
        "items": num_items(data),
        "train": int(store.edge_index.size(1)),
        "val": int(store.val_edge_index.size(1)),
        "test": int(store.test_edge_index.size(1)),
    }
    if FOLLOWS in data.edge_types:
        out["social_links"] = int(data[FOLLOWS].edge_index.size(1))
        # What reading the social file cleaned up, reported when it did anything.
        for key in ("social_self_loops_removed", "social_duplicates_merged", "social_only_users"):
            if key in data and int(data[key]):
                out[key] = int(data[key])
    if HAS_ATTR in data.edge_types:
        out["attributes"] = int(data[ATTR].num_nodes)
        out["item_attribute_links"] = int(data[HAS_ATTR].edge_index.size(1))
    if USER_HAS_ATTR in data.edge_types:
        out["user_attributes"] = int(data[USER_ATTR].num_nodes)
        out["user_attribute_links"] = int(data[USER_HAS_ATTR].edge_index.size(1))
    for key in ("test_dropped_unseen", "test_dropped_unknown_user"):
        if key in data:
            out[key] = int(data[key])
    if "val_from_file" in data and data["val_from_file"]:
        out["val_source"] = "file"
    # Reported when reading removed or merged anything (0 on clean data).
    for key in ("duplicates_merged", "test_dropped_in_train", "val_dropped"):
        if key in data and int(data[key]):
            out[key] = int(data[key])
    out["fingerprint"] = fingerprint(data)
    return out
