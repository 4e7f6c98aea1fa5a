"""RecBole atomic files (``ml-100k/``): ``NAME.inter``, ``NAME.item``, ``NAME.user``.

Tab-separated files whose first line names each column with its type,
``name:type``, the type one of ``token``, ``token_seq`` (space-separated
tokens), ``float`` and ``float_seq``. ``.inter`` must have ``user_id:token``
and ``item_id:token``; ``rating`` and ``timestamp`` are used when present.
In ``.item``/``.user``, ``token`` and ``token_seq`` fields become categorical
attributes (``title`` fields are kept as titles instead) and ``float`` fields
dense features.

A ``NAME.net`` file beside the ``.inter`` (RecBole-GNN's social network file,
``source_id:token`` and ``target_id:token``, further columns ignored) gives
the social links ``source -> target`` in the user id space of the ``.inter``
file; users that appear only there become users without interactions. The
links are read as directed, as the file states them (RecBole-GNN's
``undirected_net`` option, which adds every reverse link, is not applied).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...errors import DataFormatError, SSGraphRecError
from .base import Interactions, RawDataset, parse_float, require_file

TYPES = ("token", "token_seq", "float", "float_seq")
TITLE_FIELDS = ("title", "movie_title", "item_title")


def read_atomic(path: Path) -> tuple[list[tuple[str, str]], list[tuple[int, list[str]]]]:
    """Return the typed header ``[(name, type)]`` and ``(line, columns)`` rows."""
    require_file(path)
    with open(path, encoding="utf-8-sig") as f:
        header_line = f.readline().rstrip("\r\n")
        header = []
        for col in header_line.split("\t"):
            name, sep, typ = col.partition(":")
            if not sep or typ not in TYPES:
                raise DataFormatError(path, 1, f"header column {col!r} has no valid type",
                                      f"'name:type' with type one of {', '.join(TYPES)}")
            header.append((name, typ))
        rows = []
        for lineno, line in enumerate(f, 2):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            cols = line.split("\t")
            if len(cols) != len(header):
                raise DataFormatError(path, lineno, f"{len(cols)} tab-separated columns",
                                      f"{len(header)} columns as the header names")
            rows.append((lineno, cols))
    return header, rows


def _column(header: list[tuple[str, str]], name: str, path: Path, required: bool) -> int | None:
    for k, (n, _) in enumerate(header):
        if n == name:
            return k
    if required:
        raise DataFormatError(path, 1, f"no column {name!r} in the header",
                              f"a '{name}:token' column")
    return None


def read_inter(path: Path) -> Interactions:
    header, rows = read_atomic(path)
    cu = _column(header, "user_id", path, True)
    ci = _column(header, "item_id", path, True)
    cr = _column(header, "rating", path, False)
    ct = _column(header, "timestamp", path, False)
    users = [r[cu] for _, r in rows]
    items = [r[ci] for _, r in rows]
    weight = None if cr is None else np.asarray(
        [parse_float(r[cr], path, n, "rating") for n, r in rows], dtype=np.float32)
    time = None if ct is None else np.asarray(
        [parse_float(r[ct], path, n, "timestamp") for n, r in rows], dtype=np.float64)
    return Interactions(users, items, weight, time, source=str(path))


def read_side(path: Path, id_field: str):
    """Read a ``.item`` or ``.user`` file into (attributes, features, titles)."""
    header, rows = read_atomic(path)
    cid = _column(header, id_field, path, True)
    attrs: dict[str, dict[str, list[str]]] = {}
    feats: dict[str, dict[str, float]] = {}
    titles: dict[str, str] = {}
    for k, (name, typ) in enumerate(header):
        if k == cid:
            continue
        if name in TITLE_FIELDS:
            titles = {r[cid]: r[k] for _, r in rows}
        elif typ == "token":
            attrs[name] = {r[cid]: [r[k]] for _, r in rows if r[k] != ""}
        elif typ == "token_seq":
            attrs[name] = {r[cid]: r[k].split() for _, r in rows}
        elif typ == "float":
            feats[name] = {r[cid]: parse_float(r[k], path, n, name) for n, r in rows if r[k] != ""}
    return attrs, feats, titles


def read_recbole(folder: Path, name: str = "") -> RawDataset:
    """Read ``<folder>/<name>.inter`` and, when present, ``.item`` and ``.user``."""
    folder = Path(folder)
    inters = sorted(folder.glob("*.inter"))
    if not inters:
        raise SSGraphRecError(f"no RecBole .inter file in {folder}")
    if len(inters) > 1:
        raise SSGraphRecError(f"several .inter files in {folder}: {[p.name for p in inters]}")
    stem = inters[0].with_suffix("")
    data = RawDataset(name or stem.name, interactions=read_inter(inters[0]))
    if stem.with_suffix(".item").is_file():
        data.item_attributes, data.item_features, data.item_titles = read_side(
            stem.with_suffix(".item"), "item_id")
    if stem.with_suffix(".user").is_file():
        data.user_attributes, _, _ = read_side(stem.with_suffix(".user"), "user_id")
    if stem.with_suffix(".net").is_file():
        data.social = read_net(stem.with_suffix(".net"))
        data.social_source = str(stem.with_suffix(".net"))
    return data


def read_net(path: Path) -> tuple[list[str], list[str]]:
    """Read a RecBole-GNN ``.net`` file into (source, target) raw user ids."""
    header, rows = read_atomic(path)
    cs = _column(header, "source_id", path, True)
    ct = _column(header, "target_id", path, True)
    for n, r in rows:
        for k, what in ((cs, "source_id"), (ct, "target_id")):
            if not r[k].strip():
                raise DataFormatError(path, n, f"empty {what}", f"a {what} user token")
    return [r[cs] for _, r in rows], [r[ct] for _, r in rows]


__all__ = ["read_atomic", "read_inter", "read_net", "read_recbole", "require_file"]
