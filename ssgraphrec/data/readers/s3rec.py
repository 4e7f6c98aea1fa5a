"""User sequences of S3-Rec (``amazon-beauty/``, ``amazon-sports/``) with a leave-one-out split.

Format (Zhou et al., "S3-Rec", CIKM 2020; the same files serve CL4SRec, Xie
et al. ICDE 2022): ``Beauty.txt`` has one line per user, ``user item item ...``
with 1-based integer ids in time order; ``Beauty_item2attributes.json`` maps
an item id (string) to its attribute ids, ``{"item": [attr, ...]}``.

Representation (also stated in :mod:`ssgraphrec.data.schema`): one session
per user, ``data['session'].user`` its owner, holding the *training sequence*:
the user's items except the last two. The held-out items are
``data['session'].val_target`` (the second to last item) and
``data['session'].test_target`` (the last item), -1 where none. The
validation input is the training sequence; the test input is the training
sequence followed by the validation item (S3-Rec's ``items[:-1]``). The
training targets are implicit: each position predicts the next item of the
sequence (SASRec-style shifted targets), so ``data['session'].target`` is -1.
``train_mask`` marks sessions with a non-empty training sequence, ``val_mask``
/ ``test_mask`` those with a validation / test target.

Short users are kept, never dropped: a user with 2 items keeps the first for
training and the second as test target (no validation target); a user with 1
item keeps it for training only. Their number is ``data.short_sequences``.

Item ids: raw id ``r`` becomes item ``r - 1`` and the item count is the
largest id in the sequence file, so ``data['item'].raw_id`` is ``"1" ... "N"``.
User ids are contiguous in order of appearance (``data['user'].raw_id``).
Attributes become the item-attribute graph ``('item', 'has', 'attr')`` with a
single field ``"attr"`` (attribute value raw id ``"attr=<id>"``), built as
for RecBole ``.item`` files; an attribute record of an item outside the
sequence file's id range is an error naming the file and the record.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch_geometric.data import HeteroData

from ...errors import DataFormatError, SSGraphRecError
from ..ids import IdMap
from ..schema import SESSION, USER
from ..sessions import session_data
from .base import RawDataset, parse_int, read_lines, require_file

ATTR_FIELD = "attr"


def read_sequence_file(path: Path) -> tuple[list[str], list[list[int]]]:
    """Read ``user item item ...`` lines: raw user ids and 1-based item sequences."""
    users: list[str] = []
    seqs: list[list[int]] = []
    seen: dict[str, int] = {}
    for lineno, tokens in read_lines(path):
        user = tokens[0]
        parse_int(user, path, lineno, "user id")
        if user in seen:
            raise DataFormatError(path, lineno, f"user {user} already has a line (line {seen[user]})",
                                  "one line per user")
        seen[user] = lineno
        if len(tokens) < 2:
            raise DataFormatError(path, lineno, "a user without items", "'user item item ...'")
        seq = [parse_int(t, path, lineno, "item id") for t in tokens[1:]]
        if min(seq) < 1:
            raise DataFormatError(path, lineno, "item id 0", "1-based item ids (>= 1)")
        users.append(user)
        seqs.append(seq)
    return users, seqs


def read_item_attributes(path: Path) -> dict[str, list[str]]:
    """Read ``*_item2attributes.json``: raw item id -> attribute ids (as strings)."""
    require_file(path)
    try:
        with open(path, encoding="utf-8-sig") as f:
            obj = json.load(f)
    except json.JSONDecodeError as exc:
        raise DataFormatError(path, exc.lineno, f"invalid JSON ({exc.msg})",
                              '{"item": [attr, ...], ...}') from None
    if not isinstance(obj, dict):
        raise DataFormatError(path, None, f"top-level value is a {type(obj).__name__}",
                              '{"item": [attr, ...], ...}')
    out: dict[str, list[str]] = {}
    for item, attrs in obj.items():
        if not isinstance(attrs, list) or not all(type(a) is int for a in attrs):
            raise DataFormatError(path, None, f"item {item!r} maps to {attrs!r}",
                                  "a list of integer attribute ids")
        out[str(item)] = [str(a) for a in attrs]
    return out


def find_attribute_file(folder: Path, stem: str) -> Path | None:
    path = folder / f"{stem}_item2attributes.json"
    return path if path.is_file() else None


def read_s3rec(folder: Path, name: str = "", *, stem: str | None = None) -> HeteroData:
    """Read ``<stem>.txt`` (and ``<stem>_item2attributes.json``) of ``folder``.

    ``stem`` defaults to the only ``*.txt`` file of the folder.
    """
    folder = Path(folder)
    if stem is None:
        txts = sorted(folder.glob("*.txt"))
        if len(txts) != 1:
            raise SSGraphRecError(f"expected one sequence file (*.txt) in {folder}, found "
                                  f"{[p.name for p in txts]}; pass stem=")
        stem = txts[0].stem
    path = folder / f"{stem}.txt"
    raw_users, seqs = read_sequence_file(path)
    if not seqs:
        raise SSGraphRecError(f"{path} holds no user sequences")
    lengths = torch.tensor([len(s) for s in seqs], dtype=torch.long)
    flat = torch.tensor([i for s in seqs for i in s], dtype=torch.long) - 1
    num_items = int(flat.max()) + 1
    ptr = torch.zeros(lengths.numel() + 1, dtype=torch.long)
    ptr[1:] = torch.cumsum(lengths, 0)
    # Leave-one-out: last item -> test, second to last -> validation (when >= 3 items).
    n_test = (lengths >= 2).long()
    n_val = (lengths >= 3).long()
    train_len = lengths - n_test - n_val
    test_target = torch.where(n_test.bool(), flat[ptr[1:] - 1], torch.full_like(lengths, -1))
    val_target = torch.where(n_val.bool(), flat[(ptr[1:] - 2).clamp(min=0)], torch.full_like(lengths, -1))
    keep = torch.arange(flat.numel()) - torch.repeat_interleave(ptr[:-1], lengths) \
        < torch.repeat_interleave(train_len, lengths)
    train_ptr = torch.zeros_like(ptr)
    train_ptr[1:] = torch.cumsum(train_len, 0)
    num_users = len(raw_users)
    data = session_data((train_ptr, flat[keep]), num_items, users=torch.arange(num_users),
                        name=name or folder.name, item_ids=[str(r) for r in range(1, num_items + 1)])
    store = data[SESSION]
    store.val_target = val_target
    store.test_target = test_target
    store.train_mask = train_len > 0
    store.val_mask = val_target >= 0
    store.test_mask = test_target >= 0
    data[USER].num_nodes = num_users
    data[USER].raw_id = raw_users
    data.short_sequences = int((lengths < 3).sum())
    data.interactions = int(lengths.sum())
    data.split = "loo"
    data.task = "sequential"
    attr_path = find_attribute_file(folder, stem)
    if attr_path is not None:
        from ..build import _add_item_attributes  # here: build imports this package

        attrs = read_item_attributes(attr_path)
        items = IdMap(data["item"].raw_id)
        unknown = next((k for k in attrs if k not in items.index), None)
        if unknown is not None:
            raise DataFormatError(attr_path, None,
                                  f"record {unknown!r} is not an item of {path.name} (items 1..{num_items})",
                                  "the item ids of the sequence file")
        _add_item_attributes(data, RawDataset(data.name, item_attributes={ATTR_FIELD: attrs}), items)
    return data


__all__ = ["read_item_attributes", "read_s3rec", "read_sequence_file"]
