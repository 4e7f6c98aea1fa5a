"""A CSV of user-item interactions with a header: the format of a user's own data.

``user_id,item_id[,rating][,timestamp]`` with a header row naming the columns, comma,
semicolon or tab separated; raw ids of any form. Columns are recognised by name
(case and ``_`` ignored): the user (``user``, ``user_id``, ``userId``, ``uid``), the
item (``item``, ``item_id``, ``itemId``, ``iid``, ``movie_id``, ...), an optional weight
(``rating``, ``weight``, ``score``, ``count``, ``playcount``) and an optional time
(``timestamp``, ``time``, ``ts``, ``date``, in Unix seconds or ISO dates). Other columns
are ignored. A CSV whose header names a session column is a click log instead
(:mod:`ssgraphrec.data.readers.clicklog`).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from ...errors import DataFormatError
from .base import Interactions, RawDataset, parse_float, require_file

USER_COLUMNS = ("user", "userid", "uid", "customer", "customerid", "visitorid")
ITEM_COLUMNS = ("item", "itemid", "iid", "product", "productid", "movieid", "artist",
                "artistid", "song", "songid", "article", "articleid")
WEIGHT_COLUMNS = ("rating", "weight", "score", "count", "playcount", "value")
TIME_COLUMNS = ("timestamp", "time", "ts", "date", "datetime", "eventtime")
SESSION_COLUMNS = ("session", "sessionid")


def _key(name: str) -> str:
    return name.strip().lower().replace("_", "").replace(" ", "")


def header_of(path: Path) -> tuple[list[str], str]:
    """The header row of ``path`` and its delimiter (``,``, ``;`` or tab)."""
    with open(require_file(path), encoding="utf-8-sig", newline="") as handle:
        first = handle.readline()
    delimiter = ";" if ";" in first else ("\t" if "\t" in first else ",")
    return [c.strip() for c in first.rstrip("\r\n").split(delimiter)], delimiter


def is_interaction_csv(path: Path) -> bool:
    """Whether the header of ``path`` names a user and an item column and no session."""
    names = {_key(c) for c in header_of(path)[0]}
    return bool(names & set(USER_COLUMNS)) and bool(names & set(ITEM_COLUMNS)) and \
        not names & set(SESSION_COLUMNS)


def _column(header: list[str], choices: tuple[str, ...]) -> int | None:
    keys = [_key(c) for c in header]
    return next((keys.index(c) for c in choices if c in keys), None)


def read_interaction_csv(path: Path, name: str = "") -> RawDataset:
    """Read the interactions of ``path`` (see the module docstring), to be split."""
    path = Path(path)
    header, delimiter = header_of(path)
    user, item = _column(header, USER_COLUMNS), _column(header, ITEM_COLUMNS)
    if user is None or item is None:
        raise DataFormatError(path, 1, f"the header {header} names no user or no item column",
                              "a header such as user_id,item_id[,rating][,timestamp]")
    weight, when = _column(header, WEIGHT_COLUMNS), _column(header, TIME_COLUMNS)
    users, items, weights, times = [], [], [], []
    with open(path, encoding="utf-8-sig", newline="") as handle:
        rows = csv.reader(handle, delimiter=delimiter)
        next(rows)
        for lineno, row in enumerate(rows, 2):
            if not row or not any(cell.strip() for cell in row):
                continue
            if len(row) != len(header):
                raise DataFormatError(path, lineno, f"{len(row)} columns",
                                      f"{len(header)} columns, as the header has")
            users.append(row[user].strip())
            items.append(row[item].strip())
            if weight is not None:
                weights.append(parse_float(row[weight], path, lineno, header[weight]))
            if when is not None:
                times.append(row[when].strip())
    if not users:
        raise DataFormatError(path, 2, "no interaction after the header", "one row per interaction")
    return RawDataset(name or path.stem, interactions=Interactions(
        users, items, np.asarray(weights, dtype=np.float32) if weights else None,
        _times(times, path) if times else None, source=str(path)))


def _times(values: list[str], path: Path) -> np.ndarray:
    from .clicklog import _parse_times

    return _parse_times(values, path, "time", np.arange(2, len(values) + 2))
