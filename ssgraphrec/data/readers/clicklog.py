"""Raw click logs (Yoochoose, Diginetica, or any ``session, item, time`` CSV) with SR-GNN preprocessing.

The preprocessing is that of SR-GNN (Wu et al., AAAI 2019, ``preprocess.py``),
which DHCN (Xia et al., AAAI 2021) and GCE-GNN reuse:

1. clicks are grouped by session and sorted by time within the session
   (Diginetica: by ``timeframe``; ties keep file order);
2. sessions of length 1 are dropped;
3. items clicked fewer than ``min_item_count`` (5) times in the remaining
   sessions are removed, then sessions left with fewer than 2 clicks dropped;
4. a session's date is its latest click time; with ``maxdate`` the latest
   session date, sessions dated ``< maxdate - test_days`` are training
   sessions and those dated ``> maxdate - test_days`` test sessions (7 days by
   default; SR-GNN uses 1 for Yoochoose). As in SR-GNN, sessions dated exactly
   ``maxdate - test_days`` are in neither; they are counted in
   ``data.sessions_dropped_on_split_date``;
5. sessions are ordered by date (ties: order of first appearance); items get
   contiguous ids in order of first appearance in the training sessions;
   test clicks on items absent from training are removed and test sessions
   left with fewer than 2 clicks dropped;
6. prefix augmentation: a session ``[v1..vn]`` gives the samples
   ``([v1..v(n-1)], vn), ..., ([v1], v2)``
   (:func:`ssgraphrec.data.sessions.prefix_samples`).

SR-GNN dates a session by the row that happens to be read last and parses
dates in local time; here the latest click and UTC are used. Every removal is
counted in an attribute of the returned data (``clicks_read``,
``sessions_dropped_single``, ``clicks_dropped_rare_items``,
``sessions_dropped_short``, ``sessions_dropped_on_split_date``,
``test_clicks_dropped_unseen``, ``test_sessions_dropped_short``).

Times: a column of numbers is read as seconds (Unix time); otherwise as ISO
dates or date-times (``2016-05-09``, ``2014-04-07T10:51:09.277Z``).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from torch_geometric.data import HeteroData

from ...errors import ConfigError, DataFormatError, SSGraphRecError
from ..sessions import TEST, TRAIN, carve_validation, prefix_groups, prefix_samples, session_data
from .base import require_file

DAY = 86400.0


@dataclass(frozen=True)
class ClickLayout:
    """Which columns hold the session, the item, the session date and the in-session order."""

    session: str
    item: str
    time: str
    order: str | None = None          # default: ``time``
    delimiter: str = ","
    names: tuple[str, ...] | None = None  # column names of a file without header


LAYOUTS = {
    # session_id,item_id,timestamp with a header
    "generic": ClickLayout("session_id", "item_id", "timestamp"),
    # CIKM Cup 2016 train-item-views.csv: sessionId;userId;itemId;timeframe;eventdate
    "diginetica": ClickLayout("sessionId", "itemId", "eventdate", order="timeframe", delimiter=";"),
    # RecSys Challenge 2015 yoochoose-clicks.dat, no header
    "yoochoose": ClickLayout("session_id", "item_id", "timestamp", delimiter=",",
                             names=("session_id", "timestamp", "item_id", "category")),
}


def _detect_layout(path: Path, first: str) -> ClickLayout:
    delimiter = ";" if ";" in first else ("\t" if "\t" in first else ",")
    header = [c.strip() for c in first.split(delimiter)]
    for layout in LAYOUTS.values():
        if layout.delimiter == delimiter and layout.names is None and \
                {layout.session, layout.item, layout.time} <= set(header):
            return layout
    if delimiter == "," and len(header) == 4 and header[0].isdigit():
        return LAYOUTS["yoochoose"]
    raise DataFormatError(path, 1, f"cannot tell the layout from {first.strip()!r}",
                          "a header naming session_id, item_id, timestamp (',') or "
                          "sessionId, itemId, timeframe, eventdate (';'); or pass layout= / columns=")


def _parse_times(values: list[str], path: Path, column: str, lines: np.ndarray) -> np.ndarray:
    try:
        return np.asarray(values, dtype=np.float64)
    except ValueError:
        pass
    cache: dict[str, float] = {}
    out = np.empty(len(values), dtype=np.float64)
    for k, v in enumerate(values):
        t = cache.get(v)
        if t is None:
            try:  # a column may mix Unix seconds and ISO dates: each value by itself
                t = cache[v] = float(v)
            except ValueError:
                pass
        if t is None:
            try:
                d = datetime.fromisoformat(v.strip().replace("Z", "+00:00"))
            except ValueError:
                raise DataFormatError(path, int(lines[k]), f"{column} {v!r} is neither a number "
                                      "nor an ISO date", "Unix seconds or YYYY-MM-DD[THH:MM:SS]") from None
            if d.tzinfo is None:
                d = d.replace(tzinfo=timezone.utc)
            t = cache[v] = d.timestamp()
        out[k] = t
    return out


def read_clicks(path: Path, layout: str | ClickLayout | None = None,
                columns: dict[str, str] | None = None):
    """Read the columns of a click log: (session tokens, item tokens, date, order, line numbers).

    ``columns`` overrides the layout's column names by role (``session``,
    ``item``, ``time``, ``order``), e.g. ``{"time": "eventdate"}``.
    """
    require_file(path)
    with open(path, encoding="utf-8-sig", newline="") as f:
        first = f.readline()
        if columns:
            unknown = set(columns) - {"session", "item", "time", "order"}
            if unknown:
                raise ConfigError(f"unknown column roles {sorted(unknown)}; "
                                  "expected session, item, time, order")
        if isinstance(layout, str):
            if layout not in LAYOUTS:
                raise ConfigError(f"unknown click-log layout {layout!r}; known: {', '.join(LAYOUTS)}")
            lay = LAYOUTS[layout]
        elif layout is not None:
            lay = layout
        elif columns:
            # Named columns, no layout: the generic layout with the file's own delimiter.
            delimiter = ";" if ";" in first else ("\t" if "\t" in first else ",")
            lay = ClickLayout(**{**LAYOUTS["generic"].__dict__, "delimiter": delimiter})
        else:
            lay = _detect_layout(path, first)
        if columns:
            lay = ClickLayout(**{**lay.__dict__, **columns})
        f.seek(0)
        rows = csv.reader(f, delimiter=lay.delimiter)
        header = [c.strip() for c in next(rows, [])]
        start = 2
        if lay.names is not None and not {lay.session, lay.item} <= set(header):
            header, start = list(lay.names), 1
            f.seek(0)
            rows = csv.reader(f, delimiter=lay.delimiter)
        roles = {"session": lay.session, "item": lay.item, "time": lay.time,
                 "order": lay.order or lay.time}
        idx = {}
        for role, col in roles.items():
            if col not in header:
                raise DataFormatError(path, 1, f"no column {col!r} ({role}) in {header}",
                                      f"a column named {col!r}")
            idx[role] = header.index(col)
        width = max(idx.values()) + 1
        cols: dict[str, list[str]] = {role: [] for role in roles}
        lines: list[int] = []
        for lineno, row in enumerate(rows, start):
            if not row or not "".join(row).strip():
                continue
            if len(row) < width:
                raise DataFormatError(path, lineno, f"{len(row)} columns", f"at least {width} columns "
                                      f"separated by {lay.delimiter!r}")
            for role, k in idx.items():
                cols[role].append(row[k].strip())
            lines.append(lineno)
    line_arr = np.asarray(lines, dtype=np.int64)
    time = _parse_times(cols["time"], path, roles["time"], line_arr)
    order = time if roles["order"] == roles["time"] else _parse_times(cols["order"], path, roles["order"],
                                                                      line_arr)
    return cols["session"], cols["item"], time, order, line_arr


def _codes_by_first_appearance(tokens) -> tuple[np.ndarray, np.ndarray]:
    """Codes 0, 1, ... in order of first appearance, and the distinct tokens in that order."""
    uniq, first, inverse = np.unique(np.asarray(tokens), return_index=True, return_inverse=True)
    rank = np.empty(len(uniq), dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(len(uniq))
    return rank[inverse.reshape(-1)], uniq[np.argsort(first, kind="stable")]


def _lengths(sess: np.ndarray, n: int) -> np.ndarray:
    return np.bincount(sess, minlength=n)


def read_clicklog(path: str | Path, *, layout: str | ClickLayout | None = None,
                  columns: dict[str, str] | None = None, test_days: float = 7.0,
                  min_item_count: int = 5, val_ratio: float = 0.1, seed: int = 0,
                  name: str = "") -> HeteroData:
    """Read a click log and apply the SR-GNN preprocessing (module docstring).

    Returns the session HeteroData of prefix samples: training samples
    (``train_mask``; a seeded ``val_ratio`` share moved to ``val_mask``),
    then test samples (``test_mask``). ``data['item'].raw_id`` holds the raw
    item tokens.
    """
    path = Path(path)
    if test_days <= 0:
        raise ConfigError(f"test_days must be > 0, got {test_days}")
    sess_tok, item_tok, time, order, _ = read_clicks(path, layout, columns)
    if not sess_tok:
        raise SSGraphRecError(f"{path} holds no clicks")
    sess, _ = _codes_by_first_appearance(sess_tok)
    item, item_raw = _codes_by_first_appearance(item_tok)
    n_sess = int(sess.max()) + 1
    stats = {"clicks_read": len(sess)}
    # 1. group by session, sort by time inside the session (stable: file order on ties)
    perm = np.lexsort((np.arange(len(sess)), order, sess))
    sess, item, time = sess[perm], item[perm], time[perm]
    date = np.full(n_sess, -np.inf)
    np.maximum.at(date, sess, time)
    # 2. sessions of length 1
    single = _lengths(sess, n_sess) == 1
    stats["sessions_dropped_single"] = int(single.sum())
    keep = ~single[sess]
    sess, item = sess[keep], item[keep]
    # 3. rare items, then short sessions
    counts = np.bincount(item, minlength=len(item_raw))
    keep = counts[item] >= min_item_count
    stats["clicks_dropped_rare_items"] = int((~keep).sum())
    sess, item = sess[keep], item[keep]
    length = _lengths(sess, n_sess)
    alive = length >= 2
    stats["sessions_dropped_short"] = int(((length < 2) & ~single).sum())
    keep = alive[sess]
    sess, item = sess[keep], item[keep]
    # 4. split by date
    maxdate = date[alive].max() if alive.any() else 0.0
    split_date = maxdate - test_days * DAY
    is_train = alive & (date < split_date)
    is_test = alive & (date > split_date)
    stats["sessions_dropped_on_split_date"] = int((alive & (date == split_date)).sum())
    # 5. order sessions by date; items numbered by first appearance in training
    rank = np.empty(n_sess, dtype=np.int64)
    rank[np.argsort(date, kind="stable")] = np.arange(n_sess)
    click_order = np.lexsort((np.arange(len(sess)), rank[sess]))
    sess, item = sess[click_order], item[click_order]
    tr = is_train[sess]
    tr_item_codes, first = np.unique(item[tr], return_index=True)
    new_id = np.full(len(item_raw), -1, dtype=np.int64)
    new_id[tr_item_codes[np.argsort(first, kind="stable")]] = np.arange(len(tr_item_codes))
    te = is_test[sess]
    seen = new_id[item] >= 0
    stats["test_clicks_dropped_unseen"] = int((te & ~seen).sum())
    te &= seen
    te_len = _lengths(sess[te], n_sess)
    stats["test_sessions_dropped_short"] = int((is_test & (te_len < 2)).sum())
    te &= te_len[sess] >= 2
    parts = []
    for mask in (tr, te):
        s, i = sess[mask], new_id[item[mask]]
        # sessions are contiguous runs (clicks sorted by session rank)
        starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]]) if len(s) else np.zeros(0, np.int64)
        ptr = torch.from_numpy(np.r_[starts, len(s)].astype(np.int64))
        parts.append((prefix_samples(ptr, torch.from_numpy(i)), len(starts)))
    ((tr_ptr, tr_items, tr_target), n_tr_sess), ((te_ptr, te_items, te_target), n_te_sess) = parts
    stats["train_sessions"], stats["test_sessions"] = n_tr_sess, n_te_sess
    num_items = len(tr_item_codes)
    if num_items == 0:
        raise SSGraphRecError(f"{path}: no training sessions are left after the SR-GNN filters")
    n_train, n_test = tr_ptr.numel() - 1, te_ptr.numel() - 1
    groups = torch.cat([prefix_groups(tr_ptr, tr_items, tr_target), torch.full((n_test,), -1)])
    split = carve_validation(torch.cat([torch.full((n_train,), TRAIN), torch.full((n_test,), TEST)]),
                             val_ratio, seed, groups=groups)  # whole sessions to validation
    raw_ids = [str(x) for x in item_raw[tr_item_codes[np.argsort(first, kind="stable")]]]
    data = session_data((torch.cat([tr_ptr, te_ptr[1:] + tr_ptr[-1]]), torch.cat([tr_items, te_items])),
                        num_items, targets=torch.cat([tr_target, te_target]), split=split,
                        name=name or path.stem, item_ids=raw_ids)
    for key, value in stats.items():
        data[key] = value
    data.split = "fixed"
    data.task = "next_item"
    return data


__all__ = ["LAYOUTS", "ClickLayout", "read_clicklog", "read_clicks"]
