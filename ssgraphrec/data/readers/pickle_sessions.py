"""Session pickles of DHCN / GCE-GNN (``tmall/``, ``diginetica/``), read without running code.

The files come from the preprocessing of SR-GNN (Wu et al., AAAI 2019) as used
by DHCN (Xia et al., AAAI 2021) and GCE-GNN (Wang et al., SIGIR 2020):
``train.txt`` and ``test.txt`` are pickles of
``(list_of_session_prefixes, list_of_next_item_labels)`` with 1-based item ids
(already prefix-augmented), ``all_train_seq.txt`` a pickle of the raw training
sessions (a list of lists of ints).

A pickle is a program: loading one with :func:`pickle.load` may import and
call anything. :class:`RestrictedUnpickler` refuses every import
(``find_class``) and every persistent id, so only the opcodes that build
containers and numbers can run: a file that would call ``os.system`` (or
anything else) raises a :class:`~ssgraphrec.errors.DataFormatError` naming the
file before any of it runs. The loaded value is then checked to hold only
lists, tuples and ints.

Item ids: DHCN sizes its embedding table with the dataset's fixed ``n_node``
(Tmall 40728, Diginetica 43098, i.e. the largest raw id + 1, with 0 unused).
Here raw id ``r`` becomes item ``r - 1`` and the item count is the largest raw
id seen in ``train.txt`` or ``test.txt`` (Tmall 40727, Diginetica 43097), so
an item that occurs only in the test file keeps its own id and no sample is
dropped; such items have no training signal and are counted in
``data.test_only_items``. ``data.items_seen`` counts the distinct items that
occur at all.
"""

from __future__ import annotations

import io
import pickle
from itertools import chain
from pathlib import Path

import torch
from torch_geometric.data import HeteroData

from ...errors import DataFormatError
from ..sessions import TEST, TRAIN, carve_validation, flatten_sessions, prefix_groups, session_data
from .base import require_file

EXPECTED = "a pickle of lists, tuples and ints only (DHCN / GCE-GNN session format)"


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that builds lists, tuples, ints (and other literals) and imports nothing."""

    def __init__(self, file, path: str | Path):
        super().__init__(file)
        self.path = path

    def find_class(self, module: str, name: str):
        raise DataFormatError(self.path, None, f"the pickle asks to import {module}.{name} "
                              "(refused, nothing was run)", EXPECTED)

    def persistent_load(self, pid):
        raise DataFormatError(self.path, None, "the pickle holds a persistent id (refused)", EXPECTED)


def load_restricted(path: Path):
    """Load the pickle at ``path`` with :class:`RestrictedUnpickler`."""
    require_file(path)
    raw = Path(path).read_bytes()
    try:
        return RestrictedUnpickler(io.BytesIO(raw), path).load()
    except DataFormatError:
        raise
    except Exception as exc:  # truncated or corrupt: UnpicklingError, EOFError, ValueError, ...
        raise DataFormatError(path, None, f"not a readable pickle ({type(exc).__name__}: {exc})",
                              EXPECTED) from None


def _check_sequences(seqs, path: Path, what: str) -> None:
    """Every element of ``seqs`` must be a list/tuple of (non-bool) ints."""
    if not isinstance(seqs, (list, tuple)):
        raise DataFormatError(path, None, f"{what} is a {type(seqs).__name__}", EXPECTED)
    if not set(map(type, seqs)) <= {list, tuple}:
        k = next(k for k, s in enumerate(seqs) if type(s) not in (list, tuple))
        raise DataFormatError(path, None, f"{what}[{k}] is a {type(seqs[k]).__name__}, "
                              "not a list of item ids", EXPECTED)
    _check_ints(list(chain.from_iterable(seqs)), path, what)


def _check_ints(values, path: Path, what: str) -> None:
    if not set(map(type, values)) <= {int}:
        bad = next(v for v in values if type(v) is not int)
        raise DataFormatError(path, None, f"{what} holds {bad!r} of type {type(bad).__name__}",
                              "integer item ids only; " + EXPECTED)


def read_session_file(path: Path) -> tuple[list, list]:
    """Read one ``train.txt`` / ``test.txt``: (prefixes, labels), 1-based ids, checked."""
    obj = load_restricted(path)
    if not isinstance(obj, (tuple, list)) or len(obj) != 2:
        raise DataFormatError(path, None, f"top-level value is a {type(obj).__name__}",
                              "a pair (list_of_session_prefixes, list_of_next_item_labels)")
    seqs, labels = obj
    _check_sequences(seqs, path, "the session list")
    if not isinstance(labels, (list, tuple)):
        raise DataFormatError(path, None, f"the label list is a {type(labels).__name__}", EXPECTED)
    _check_ints(labels, path, "the label list")
    if len(seqs) != len(labels):
        raise DataFormatError(path, None, f"{len(seqs)} sessions but {len(labels)} labels",
                              "one next-item label per session prefix")
    empty = next((k for k, seq in enumerate(seqs) if len(seq) == 0), None)
    if empty is not None:
        raise DataFormatError(path, None, f"session {empty} is empty",
                              "every session prefix holds at least one item")
    return seqs, labels


def read_sequences(path: Path) -> list:
    """Read ``all_train_seq.txt``: a list of sessions (lists of 1-based ids), checked."""
    seqs = load_restricted(path)
    _check_sequences(seqs, path, "the session list")
    return seqs


def read_pickle_sessions(folder: Path, name: str = "", *, val_ratio: float = 0.1,
                         seed: int = 0) -> HeteroData:
    """Read ``train.txt`` and ``test.txt`` of ``folder`` into the session HeteroData.

    Training samples come first (``train_mask``), then test samples
    (``test_mask``); a seeded random ``val_ratio`` share of the training
    samples becomes the validation split (``val_mask``; 0 for none), taken as
    whole sessions (:func:`~ssgraphrec.data.sessions.prefix_groups`): a
    validation sample's longer prefixes, which hold its label, never stay in
    training. Item ``r - 1`` is raw id ``r`` (see the module docstring).
    """
    folder = Path(folder)
    parts = []
    for fname in ("train.txt", "test.txt"):
        path = folder / fname
        seqs, labels = read_session_file(path)
        ptr, items = flatten_sessions(seqs)
        target = torch.tensor(labels, dtype=torch.long)
        bad_item = (items < 1).nonzero().view(-1)
        if bad_item.numel():
            at = int(bad_item[0])
            record = int(torch.searchsorted(ptr, torch.tensor(at), right=True)) - 1
            raise DataFormatError(path, None, f"session {record} holds item id {int(items[at])}",
                                  "1-based item ids (>= 1)")
        bad_label = (target < 1).nonzero().view(-1)
        if bad_label.numel():
            record = int(bad_label[0])
            raise DataFormatError(path, None, f"the label of session {record} is {int(target[record])}",
                                  "1-based item ids (>= 1)")
        parts.append((ptr, items - 1, target - 1))
    (tr_ptr, tr_items, tr_target), (te_ptr, te_items, te_target) = parts
    num_items = max(_max(tr_items), _max(tr_target), _max(te_items), _max(te_target)) + 1
    ptr = torch.cat([tr_ptr, te_ptr[1:] + tr_ptr[-1]])
    items = torch.cat([tr_items, te_items])
    n_train, n_test = tr_ptr.numel() - 1, te_ptr.numel() - 1
    split = torch.cat([torch.full((n_train,), TRAIN), torch.full((n_test,), TEST)])
    # validation takes whole sessions: every prefix sample of a held-out session
    groups = torch.cat([prefix_groups(tr_ptr, tr_items, tr_target), torch.full((n_test,), -1)])
    split = carve_validation(split, val_ratio, seed, groups=groups)
    data = session_data((ptr, items), num_items, targets=torch.cat([tr_target, te_target]),
                        split=split, name=name or folder.name,
                        item_ids=[str(r) for r in range(1, num_items + 1)])
    seen_train = torch.zeros(num_items, dtype=torch.bool)
    seen_train[tr_items] = True
    seen_train[tr_target] = True
    seen = seen_train.clone()
    seen[te_items] = True
    seen[te_target] = True
    data.items_seen = int(seen.sum())
    data.test_only_items = int((seen & ~seen_train).sum())
    data.split = "fixed"
    data.task = "next_item"
    return data


def _max(t: torch.Tensor) -> int:
    return int(t.max()) if t.numel() else -1


__all__ = ["RestrictedUnpickler", "load_restricted", "read_pickle_sessions", "read_session_file",
           "read_sequences"]
