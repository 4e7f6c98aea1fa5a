"""RawDataset -> HeteroData: id mapping, de-duplication, splitting, side graphs."""

from __future__ import annotations

import numpy as np
import torch
from torch_geometric.data import HeteroData

from ..errors import ConfigError, DataFormatError, SSGraphRecError, check_probability
from .attributes import (
    add_item_attributes,
    add_item_features,
    add_item_titles,
    add_user_attributes,
)
from .ids import IdMap
from .readers.base import Interactions, RawDataset
from .schema import FOLLOWS, INTERACTS, interaction_data, sort_pairs
from .split import SPLITS, latest_holdout, random_holdout


def _dedupe(user: torch.Tensor, item: torch.Tensor, time: torch.Tensor | None, num_items: int):
    """Merge repeated (user, item) rows; the merged row keeps the latest time."""
    key = user * num_items + item
    uniq, inverse = torch.unique(key, return_inverse=True)
    merged_time = None
    if time is not None:
        merged_time = torch.full((uniq.numel(),), -float("inf"), dtype=torch.float64)
        merged_time.scatter_reduce_(0, inverse, time, reduce="amax")
    return uniq // num_items, uniq % num_items, merged_time, int(key.numel() - uniq.numel())


def _holdout(user, time, num_users, ratio, how, gen):
    if how == "loo":
        return latest_holdout(user, time, num_users)
    return random_holdout(user, num_users, ratio, gen)


def build_dataset(raw: RawDataset, *, split: str = "random", test_ratio: float = 0.2,
                  val_ratio: float = 0.1, seed: int = 0) -> HeteroData:
    """Map raw ids to contiguous ids, split, and assemble the HeteroData.

    Args:
        raw: what a reader returned.
        split: ``"random"`` (per user, ``test_ratio`` of each user's rows),
            ``"loo"`` (each user's latest row by time), or ``"fixed"`` (the
            dataset's own train/test files).
        test_ratio: share of each user's rows held out for test (``random``).
        val_ratio: share of each user's *training* rows carved out for
            validation (``loo``: the latest training row); 0 turns it off.
        seed: seed of the random split.

    In a fixed split, test rows whose item (or user) never occurs in training
    are dropped, as a collaborative model cannot score them, and counted in
    ``data.test_dropped_unseen`` (``data.test_dropped_unknown_user``).
    """
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    check_probability("val_ratio", val_ratio)
    gen = torch.Generator().manual_seed(seed)
    users, items = IdMap(), IdMap()
    dropped_item = dropped_user = val_dropped = 0
    val_u = val_i = None
    if split == "fixed":
        if raw.train is None or raw.test is None:
            raise ConfigError(f"dataset {raw.name!r} has no fixed train/test files; "
                              "use --split random or loo")
        train_u, train_i, test_u, test_i, val_u, val_i = _map_fixed(raw, users, items)
        known_user = test_u >= 0
        known_item = test_i >= 0
        dropped_user = int((~known_user).sum())
        dropped_item = int((known_user & ~known_item).sum())
        keep = known_user & known_item
        test_u, test_i = test_u[keep], test_i[keep]
        if val_u is not None:  # the split's own validation file: known users and items only
            keep = (val_u >= 0) & (val_i >= 0)
            val_dropped = int((~keep).sum())
            val_u, val_i = val_u[keep], val_i[keep]
        time = None
    else:
        check_probability("test_ratio", test_ratio)
        table = raw.interactions if raw.interactions is not None else _concat(raw.train, raw.test)
        if split == "loo" and table.time is None:
            raise ConfigError(f"leave-one-out split needs timestamps; dataset {raw.name!r} "
                              "has none (use --split random)")
        train_u, train_i = _map(table, users, items, raw.integer_ids)
        time = None if table.time is None else torch.from_numpy(table.time.astype(np.float64))
    social = _map_social(raw, users) if raw.social is not None else None
    n_users, n_items = len(users), len(items)
    u, i, time, merged = _dedupe(torch.from_numpy(train_u), torch.from_numpy(train_i), time, n_items)
    test_in_train = 0
    if split == "fixed":
        test = torch.stack([torch.from_numpy(test_u), torch.from_numpy(test_i)])
        # A test pair that is also a training pair is masked at evaluation and can never
        # be hit: it would only lower recall. Removed, and counted.
        in_train = torch.isin(test[0] * n_items + test[1], u * n_items + i)
        test_in_train = int(in_train.sum())
        test = test[:, ~in_train]
    else:
        held = _holdout(u, time, n_users, test_ratio, split, gen)
        test = torch.stack([u[held], i[held]])
        u, i = u[~held], i[~held]
        time = None if time is None else time[~held]
    val = torch.zeros(2, 0, dtype=torch.long)
    if split == "fixed" and val_u is not None:
        if val_ratio > 0:  # --val-ratio 0 still turns validation off
            val = torch.stack([torch.from_numpy(val_u), torch.from_numpy(val_i)])
            in_train = torch.isin(val[0] * n_items + val[1], u * n_items + i)
            val_dropped += int(in_train.sum())
            val = val[:, ~in_train]
    elif val_ratio > 0:
        how = "loo" if split == "loo" else "random"
        held = _holdout(u, time, n_users, val_ratio, how, gen)
        val = torch.stack([u[held], i[held]])
        u, i = u[~held], i[~held]
        time = None if time is None else time[~held]
    train = torch.stack([u, i])
    if train.size(1) == 0:
        raise SSGraphRecError(f"dataset {raw.name!r} has no training interactions")
    data = interaction_data(n_users, n_items, train, val, test, name=raw.name,
                            user_ids=users.raw, item_ids=items.raw)
    if time is not None:
        # Time of each training interaction, in the (user, item) order of edge_index
        # (pairs are unique after _dedupe): the order of a user's sequence.
        data[INTERACTS].time = time[torch.argsort(u * n_items + i)]
    data.duplicates_merged = merged
    if split == "fixed":
        data.test_dropped_unseen = dropped_item
        data.test_dropped_unknown_user = dropped_user
        data.test_dropped_in_train = test_in_train
        if val_u is not None:
            data.val_from_file = True
            data.val_dropped = val_dropped
    data.split = split
    if social is not None:
        links, loops, repeats, added = social
        data[FOLLOWS].edge_index = links
        data.social_self_loops_removed = loops
        data.social_duplicates_merged = repeats
        data.social_only_users = added
    if raw.item_attributes:
        _add_item_attributes(data, raw, items)
    if raw.user_attributes:
        add_user_attributes(data, raw.user_attributes, users)
    if raw.item_features:
        add_item_features(data, raw.item_features, items)
    if raw.item_titles:
        add_item_titles(data, raw.item_titles, items)
    return data


def _concat(a: Interactions | None, b: Interactions | None) -> Interactions:
    assert a is not None and b is not None
    w = None if a.weight is None or b.weight is None else np.concatenate([a.weight, b.weight])
    def join(x, y):
        return np.concatenate([x, y]) if isinstance(x, np.ndarray) else list(x) + list(y)

    return Interactions(join(a.user, b.user), join(a.item, b.item), w, None, a.source)


#: Integer ids are used as row numbers; their span may exceed the distinct ids by this
#: factor (plus :data:`ID_SPAN_SLACK`) before a reader's ids are refused as not contiguous.
ID_SPAN_FACTOR = 10
ID_SPAN_SLACK = 10_000


def check_id_span(ids: np.ndarray, kind: str, source: str) -> None:
    """:class:`DataFormatError` unless integer ``ids`` are non-negative and about contiguous.

    Integer-id formats allocate one row per id up to the largest: one id of
    10^12 (or a timestamp read as an id) would allocate terabytes. The check
    compares the span with the number of distinct ids before anything is allocated.
    """
    if ids.size == 0:
        return
    low, high = int(ids.min()), int(ids.max())
    if low < 0:
        raise DataFormatError(source, None, f"{kind} id {low} is negative",
                              f"{kind} ids from 0 (integer-id formats use ids as row numbers)")
    distinct = int(np.unique(ids).size)
    if high + 1 > ID_SPAN_FACTOR * distinct + ID_SPAN_SLACK:
        raise DataFormatError(source, None, f"{kind} id {high} with only {distinct} distinct "
                              f"{kind}s", f"{kind} ids numbered about contiguously from 0 "
                              "(integer-id formats use ids as row numbers: is a timestamp or "
                              "another column being read as an id?)")


def _map(table: Interactions, users: IdMap, items: IdMap, integer_ids: bool):
    if integer_ids:
        u = np.asarray(table.user, dtype=np.int64)
        i = np.asarray(table.item, dtype=np.int64)
        check_id_span(u, "user", table.source or "the data")
        check_id_span(i, "item", table.source or "the data")
        users.add(str(x) for x in range(int(u.max(initial=-1)) + 1))
        items.add(str(x) for x in range(int(i.max(initial=-1)) + 1))
        return u, i
    return users.add(table.user), items.add(table.item)


def _map_fixed(raw: RawDataset, users: IdMap, items: IdMap):
    """Train pairs, and test (and validation) pairs with -1 for ids unknown to training."""
    assert raw.train is not None and raw.test is not None
    held = [raw.test] + ([raw.val] if raw.val is not None else [])
    if raw.integer_ids:
        # LightGCN's convention: the id spaces span all files.
        for part in (raw.train, *held):  # each file named by itself
            check_id_span(np.asarray(part.user, np.int64), "user", part.source or "the data")
            check_id_span(np.asarray(part.item, np.int64), "item", part.source or "the data")
        both = raw.train
        for part in held:
            both = _concat(both, part)
        _map(both, users, items, True)
        tu, ti = np.asarray(raw.train.user, np.int64), np.asarray(raw.train.item, np.int64)
        seen_i = np.zeros(len(items), dtype=bool)
        seen_i[ti] = True
        seen_u = np.zeros(len(users), dtype=bool)
        seen_u[tu] = True
        mapped = []
        for part in held:
            su, si = np.asarray(part.user, np.int64), np.asarray(part.item, np.int64)
            mapped += [np.where(seen_u[su], su, -1), np.where(seen_i[si], si, -1)]
    else:
        tu, ti = users.add(raw.train.user), items.add(raw.train.item)
        mapped = []
        for part in held:
            mapped += [users.lookup(part.user), items.lookup(part.item)]
    if raw.val is None:
        mapped += [None, None]
    return (tu, ti, *mapped)


def _map_social(raw: RawDataset, users: IdMap) -> tuple[torch.Tensor, int, int, int]:
    """Social links in the user id space; users only seen here become new users.

    Returns the links sorted by (source, target), the number of self-loops
    removed, the number of repeated links merged (a link ``a b`` and its
    reverse ``b a`` are two links, not a repeat) and the number of users added
    because they appear only in the social file (reported by
    :func:`ssgraphrec.data.schema.summary`). An empty social file gives no
    links. A social file none of whose ids is a user of the rating file is in
    another id space: that is an error, not thousands of silently added users.
    """
    assert raw.social is not None
    src, dst = raw.social
    rating_users = len(users)
    if len(src) and rating_users:
        ids = np.unique(np.concatenate([np.asarray(src), np.asarray(dst)]))
        if raw.integer_ids:   # integer ids are used as they are: 0..rating_users-1 rated
            shared = bool((ids.astype(np.int64) < rating_users).any())
        else:
            shared = any(str(x) in users.index for x in ids)
        if not shared:
            where = raw.social_source or "the social file"
            raise SSGraphRecError(
                f"{where}: none of its {len(ids)} user ids is a user of the rating file "
                f"({rating_users} users); the two files must share one user id space")
    if raw.integer_ids:
        s, d = np.asarray(src, np.int64), np.asarray(dst, np.int64)
        top = int(max(s.max(initial=-1), d.max(initial=-1)))
        users.add(str(x) for x in range(len(users), top + 1))
    else:
        s, d = users.add(src), users.add(dst)
    edges = torch.stack([torch.from_numpy(np.asarray(s, np.int64)),
                         torch.from_numpy(np.asarray(d, np.int64))]).view(2, -1)
    loops = edges[0] == edges[1]
    edges = edges[:, ~loops]
    out = sort_pairs(edges, max(len(users), 1))
    return out, int(loops.sum()), int(edges.size(1) - out.size(1)), len(users) - rating_users


def _add_item_attributes(data: HeteroData, raw: RawDataset, items: IdMap) -> None:
    """Categorical item features as the ('item', 'has', 'attr') graph (DESIGN.md)."""
    add_item_attributes(data, raw.item_attributes, items)
