"""What every reader returns, and the line-reading helpers they share.

A reader turns files in one published format into a :class:`RawDataset` of
raw (string) ids; :mod:`ssgraphrec.data.build` maps ids, splits and makes the
HeteroData. Adding a format is adding one reader module.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ...errors import DataFormatError, SSGraphRecError


@dataclass
class Interactions:
    """User-item interactions with raw ids, one entry per row of the source.

    Ids are strings, or integer arrays when the dataset's ids are already
    contiguous integers (``RawDataset.integer_ids``).
    """

    user: list[str] | np.ndarray
    item: list[str] | np.ndarray
    weight: np.ndarray | None = None
    time: np.ndarray | None = None
    source: str = ""

    def __len__(self) -> int:
        return len(self.user)


@dataclass
class RawDataset:
    """A dataset as read from disk, before id mapping and splitting.

    Either ``interactions`` (to be split) or ``train`` and ``test`` (a fixed
    split shipped with the data) is set; a fixed split may bring its own
    validation file (``val``), used instead of one carved from ``train``.
    """

    name: str
    interactions: Interactions | None = None
    train: Interactions | None = None
    test: Interactions | None = None
    val: Interactions | None = None
    social: tuple[list[str] | np.ndarray, list[str] | np.ndarray] | None = None
    social_source: str = ""
    item_attributes: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    item_features: dict[str, dict[str, float]] = field(default_factory=dict)
    item_titles: dict[str, str] = field(default_factory=dict)
    user_attributes: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    integer_ids: bool = False


#: Names of the validation file a fixed split may bring beside train.txt and test.txt.
VALIDATION_FILES = ("val.txt", "valid.txt")


def validation_file(folder: Path) -> Path | None:
    """The validation file of a fixed split in ``folder``, if it has one."""
    for name in VALIDATION_FILES:
        if (Path(folder) / name).is_file():
            return Path(folder) / name
    return None


def require_file(path: Path) -> Path:
    """Return ``path`` if it is a readable file, else raise a clear error."""
    if not path.is_file():
        raise SSGraphRecError(f"data file not found: {path}")
    return path


def read_lines(path: Path) -> Iterator[tuple[int, list[str]]]:
    """Yield ``(line_number, tokens)`` for every non-blank line of ``path``.

    Tokens are split on any white space (tabs or spaces), as the published
    files of this field use both.
    """
    require_file(path)
    with open(path, encoding="utf-8-sig") as f:
        for lineno, line in enumerate(f, 1):
            tokens = line.split()
            if tokens:
                yield lineno, tokens


def parse_int(token: str, path: Path, lineno: int, what: str) -> int:
    try:
        value = int(token)
    except ValueError:
        raise DataFormatError(path, lineno, f"{what} {token!r} is not an integer",
                              f"a non-negative integer {what}") from None
    if value < 0:
        raise DataFormatError(path, lineno, f"{what} {value} is negative",
                              f"a non-negative integer {what}")
    return value


def parse_float(token: str, path: Path, lineno: int, what: str) -> float:
    try:
        value = float(token)
    except ValueError:
        raise DataFormatError(path, lineno, f"{what} {token!r} is not a number",
                              f"a numeric {what}") from None
    if not math.isfinite(value):  # a NaN weight would poison every loss it enters
        raise DataFormatError(path, lineno, f"{what} {token!r} is not finite",
                              f"a finite numeric {what}")
    return value
