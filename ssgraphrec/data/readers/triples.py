"""The ``user item [weight]`` triple format of QRec and SELFRec (``lastfm/``).

One interaction per line, white-space separated, raw ids of any form, an
optional numeric weight (a rating or play count). A social file holds
``user user [weight]`` lines in the same id space as the users of the rating
file; users that appear only there are kept as users without interactions.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...errors import DataFormatError
from .base import Interactions, RawDataset, parse_float, read_lines, require_file, validation_file


def read_triples(path: Path, what: str = "user item [weight]") -> Interactions:
    """Read one triple file; every non-blank line must have 2 or 3 columns."""
    users: list[str] = []
    items: list[str] = []
    weights: list[float] = []
    for lineno, tokens in read_lines(path):
        if len(tokens) not in (2, 3):
            raise DataFormatError(path, lineno, f"{len(tokens)} columns",
                                  f"2 or 3 white-space separated columns ({what})")
        users.append(tokens[0])
        items.append(tokens[1])
        weights.append(parse_float(tokens[2], path, lineno, "weight") if len(tokens) == 3 else 1.0)
    return Interactions(users, items, np.asarray(weights, dtype=np.float32), source=str(path))


def read_social(path: Path) -> tuple[list[str], list[str]]:
    """Read a ``user user [weight]`` social file (weights are ignored)."""
    links = read_triples(path, what="user user [weight]")
    return links.user, links.item


def read_triple_dataset(folder: Path, name: str = "", ratings: str = "ratings.txt",
                        social: str | None = "trusts.txt") -> RawDataset:
    """Read a folder with a rating file and an optional social file, to be split."""
    folder = Path(folder)
    data = RawDataset(name or folder.name, interactions=read_triples(require_file(folder / ratings)))
    if social and (folder / social).is_file():
        data.social = read_social(folder / social)
        data.social_source = str(folder / social)
    return data


def read_triple_split(folder: Path, name: str = "", social: str | None = "trusts.txt"
                      ) -> RawDataset:
    """Read ``train.txt`` and ``test.txt`` triples of ``folder`` as a fixed split, with the
    validation file (``val.txt`` or ``valid.txt``) and the social file (``trusts.txt``)
    beside them when there are."""
    folder = Path(folder)
    data = RawDataset(name or folder.name,
                      train=read_triples(require_file(folder / "train.txt")),
                      test=read_triples(require_file(folder / "test.txt")))
    val = validation_file(folder)
    if val is not None:
        data.val = read_triples(val)
    if social and (folder / social).is_file():
        data.social = read_social(folder / social)
        data.social_source = str(folder / social)
    return data


def diffnet_files(folder: Path) -> dict[str, Path] | None:
    """The files of a DiffNet-style folder (``NAME.train.rating``, ``NAME.test.rating``, and
    optionally ``NAME.val.rating`` and ``NAME.links``), or None when it is not one."""
    folder = Path(folder)
    trains = sorted(folder.glob("*.train.rating"))
    if len(trains) != 1:
        return None
    stem = trains[0].name[: -len(".train.rating")]
    files = {"train": trains[0], "test": folder / f"{stem}.test.rating",
             "val": folder / f"{stem}.val.rating", "social": folder / f"{stem}.links"}
    if not files["test"].is_file():
        return None
    return {key: path for key, path in files.items() if path.is_file()}


def read_diffnet_split(folder: Path, name: str = "") -> RawDataset:
    """A DiffNet-style fixed split (Wu et al., SIGIR 2019, and the social recommenders
    after it): ``NAME.train.rating`` / ``NAME.val.rating`` / ``NAME.test.rating`` lines of
    ``user item [rating]``, and ``NAME.links`` lines of ``user user [weight]``. The
    validation file, when there, is the run's validation split."""
    files = diffnet_files(folder)
    if files is None:
        raise DataFormatError(folder, None, "no NAME.train.rating with its NAME.test.rating",
                              "a DiffNet-style folder")
    data = RawDataset(name or Path(folder).name, train=read_triples(files["train"]),
                      test=read_triples(files["test"]))
    if "val" in files:
        data.val = read_triples(files["val"])
    if "social" in files:
        data.social = read_social(files["social"])
        data.social_source = str(files["social"])
    return data
