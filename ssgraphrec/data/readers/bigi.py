"""BiGI's ``u i w`` splits (``bigi-ml-100k/``, ``bigi-dblp/``).

Cao et al., "Bipartite Graph Embedding via Mutual Information Maximization",
WSDM 2021, ship their data as tab separated ``user item weight`` lines
(caojiangxia/BiGI, ``BiGI_src/dataset``): ``train.txt`` / ``test.txt`` with
0-based integer ids, and for DBLP also ``rating_train.dat`` /
``rating_test.dat`` with prefixed raw ids (``u0 i733 1``). Every line has
exactly three columns; the weight (a rating, a co-authorship count) must be a
number. Prefixed ids must be ``u<digits>`` and ``i<digits>``; they are mapped
to contiguous ids by their first appearance in the training file, and test
ids go through the same map (a test user or item that never occurs in
training is dropped by :func:`ssgraphrec.data.build.build_dataset` and
counted). Integer ids are used as they are, spanning both files.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ...errors import DataFormatError
from .base import Interactions, RawDataset, parse_float, parse_int, read_lines, require_file

_PREFIXED = {"user": re.compile(r"u\d+"), "item": re.compile(r"i\d+")}


def read_bigi_file(path: Path, prefixed: bool = False) -> Interactions:
    """Read one ``u i w`` file; ``prefixed`` for the ``u0 i0 w`` form."""
    users: list[str] = []
    items: list[str] = []
    weights: list[float] = []
    form = "u<digits> i<digits> weight" if prefixed else "user item weight"
    for lineno, tokens in read_lines(path):
        if len(tokens) != 3:
            raise DataFormatError(path, lineno, f"{len(tokens)} columns",
                                  f"3 tab separated columns ({form})")
        u, i, w = tokens
        if prefixed:
            for what, token in (("user", u), ("item", i)):
                if not _PREFIXED[what].fullmatch(token):
                    raise DataFormatError(path, lineno, f"{what} id {token!r}",
                                          f"a prefixed {what} id such as "
                                          f"{'u0' if what == 'user' else 'i0'} ({form})")
        else:
            u = str(parse_int(u, path, lineno, "user id"))
            i = str(parse_int(i, path, lineno, "item id"))
        users.append(u)
        items.append(i)
        weights.append(parse_float(w, path, lineno, "weight"))
    return Interactions(users, items, np.asarray(weights, dtype=np.float32), source=str(path))


def read_bigi_split(folder: Path, name: str = "", prefixed: bool | None = None) -> RawDataset:
    """Read a BiGI folder as a fixed split.

    Args:
        folder: holds ``train.txt`` and ``test.txt`` (integer ids), or
            ``rating_train.dat`` and ``rating_test.dat`` (prefixed ids).
        name: dataset name (default: the folder name).
        prefixed: read the ``rating_*.dat`` files; default: only when the
            folder has no ``train.txt``.
    """
    folder = Path(folder)
    if prefixed is None:
        prefixed = not (folder / "train.txt").is_file() and (folder / "rating_train.dat").is_file()
    stem = ("rating_{}.dat" if prefixed else "{}.txt")
    train = read_bigi_file(require_file(folder / stem.format("train")), prefixed)
    test = read_bigi_file(require_file(folder / stem.format("test")), prefixed)
    if not prefixed:
        train = Interactions(np.asarray(train.user, np.int64), np.asarray(train.item, np.int64),
                             train.weight, source=train.source)
        test = Interactions(np.asarray(test.user, np.int64), np.asarray(test.item, np.int64),
                            test.weight, source=test.source)
    return RawDataset(name or folder.name, train=train, test=test, integer_ids=not prefixed)
