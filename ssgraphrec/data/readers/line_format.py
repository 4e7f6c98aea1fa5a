"""The LightGCN / SGL line format (``gowalla/``, ``yelp2018/``, ``amazon-book/``).

Each line is ``user item item ...`` with 0-based integer ids, space separated;
a line with a user and no items is allowed (that user has no interactions in
the file). Used by the official code of LightGCN (He et al. SIGIR 2020) and
SGL (Wu et al. SIGIR 2021), with ``train.txt`` and ``test.txt`` as a fixed split.
"""

from __future__ import annotations

from pathlib import Path

from ...errors import DataFormatError
from .base import (
    Interactions,
    RawDataset,
    parse_int,
    read_lines,
    require_file,
    validation_file,
)


def read_line_file(path: Path) -> Interactions:
    """Read one file of the line format."""
    users: list[str] = []
    items: list[str] = []
    seen_users: dict[int, int] = {}
    first_long = 0  # the first line with more than 3 columns, which triples never have
    for lineno, tokens in read_lines(path):
        if not first_long and len(tokens) > 3:
            first_long = lineno
        user = parse_int(tokens[0], path, lineno, "user id")
        if user in seen_users:
            long_line = first_long or next(
                (k for k, t in read_lines(path) if len(t) > 3), 0)
            hint = ("; if the file holds 'user item [weight]' triples, a line with more than 3 "
                    "columns made it look like the line format"
                    + (f" (line {long_line})" if long_line else ""))
            raise DataFormatError(path, lineno, f"user {user} already has a line "
                                  f"(line {seen_users[user]}){hint}",
                                  "one line per user in the LightGCN line format "
                                  "('user item item ...')")
        seen_users[user] = lineno
        for token in tokens[1:]:
            parse_int(token, path, lineno, "item id")
        users.extend([tokens[0]] * (len(tokens) - 1))
        items.extend(str(int(t)) for t in tokens[1:])
    return Interactions([str(int(u)) for u in users], items, source=str(path))


def read_line_format(folder: Path, name: str = "") -> RawDataset:
    """Read ``train.txt`` and ``test.txt`` of ``folder`` as a fixed split."""
    folder = Path(folder)
    train = read_line_file(require_file(folder / "train.txt"))
    test = read_line_file(require_file(folder / "test.txt"))
    val = validation_file(folder)
    return RawDataset(name or folder.name, train=train, test=test, integer_ids=True,
                      val=read_line_file(val) if val is not None else None)
