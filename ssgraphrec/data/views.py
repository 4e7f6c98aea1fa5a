"""The training view of a dataset: what a method may see (docs/architecture.md, "Data").

A method is constructed from :func:`training_view` of the data, never from the
data itself. The view shares the training tensors (no copy) and holds none of
the held-out interactions:

* on every edge store, keys that start with ``val_``, ``test_`` or ``hidden_``
  (the validation and test pairs, link-prediction non-edges of those splits,
  what a cold-start simulation hid) are absent;
* on session data, the ``target`` of every sample outside the training split is
  ``-1`` and ``test_target`` is absent. ``val_target`` stays: in the leave-one-out
  protocol of user sequences the validation item is part of the test input
  (S3-Rec, CL4SRec), and no method trains on it.

Social links, item and user attributes and features are side information of
the whole id space and stay. The trainer's :class:`~ssgraphrec.train.tasks.Task`
keeps the whole dataset to evaluate with.
"""

from __future__ import annotations

import copy

import torch
from torch_geometric.data import HeteroData

from .schema import SESSION

#: Key prefixes of held-out data on an edge store.
HELD_OUT_PREFIXES = ("val_", "test_", "hidden_")


def training_view(data: HeteroData) -> HeteroData:
    """A shallow copy of ``data`` without its held-out splits (see the module docstring)."""
    view = copy.copy(data)
    for store in view.edge_stores:
        for key in [k for k in store.keys() if k.startswith(HELD_OUT_PREFIXES)]:
            del store[key]
    if SESSION in view.node_types:
        store = view[SESSION]
        if "target" in store and "train_mask" in store:
            store.target = torch.where(store.train_mask, store.target,
                                       torch.full_like(store.target, -1))
        if "test_target" in store:
            del store["test_target"]
    return view
