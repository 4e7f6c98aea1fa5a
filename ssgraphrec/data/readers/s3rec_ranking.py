"""The ranking view of S3-Rec user sequences: user-item interactions with time = position.

Two-tower and graph methods rank all items for a user from the set of the
user's training items. This reader turns the same ``<stem>.txt`` and
``<stem>_item2attributes.json`` files that :mod:`.s3rec` reads as sequences
(Zhou et al., "S3-Rec", CIKM 2020) into interactions whose time is the
item's 0-based position in the user's line. A ``loo`` split of them (with
validation) holds out exactly the sequential protocol's targets: the last
item of each user with >= 2 items for test and the second to last of each
user with >= 3 items for validation (:func:`ssgraphrec.data.split.latest_holdout`
on positions). Raw item ids stay the file's 1-based ids (``"1" ... "N"``);
contiguous ids follow order of first appearance, as for every ranking dataset.

The attributes become the single field ``"attr"``; an attribute record of an
item id that the sequence file does not hold is an error naming the file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...errors import DataFormatError
from .base import Interactions, RawDataset
from .s3rec import ATTR_FIELD, find_attribute_file, read_item_attributes, read_sequence_file


def read_s3rec_interactions(folder: Path, name: str = "", *, stem: str) -> RawDataset:
    """Read ``<folder>/<stem>.txt`` (and its attribute file) as timed interactions."""
    folder = Path(folder)
    path = folder / f"{stem}.txt"
    raw_users, seqs = read_sequence_file(path)
    users = [u for u, s in zip(raw_users, seqs, strict=True) for _ in s]
    items = [str(i) for s in seqs for i in s]
    time = np.concatenate([np.arange(len(s), dtype=np.float64) for s in seqs]) if seqs \
        else np.zeros(0)
    raw = RawDataset(name or folder.name,
                     interactions=Interactions(users, items, None, time, source=str(path)))
    attr_path = find_attribute_file(folder, stem)
    if attr_path is not None:
        attrs = read_item_attributes(attr_path)
        known = set(items)
        unknown = next((k for k in attrs if k not in known), None)
        if unknown is not None:
            raise DataFormatError(attr_path, None,
                                  f"record {unknown!r} is not an item of {path.name}",
                                  "the item ids of the sequence file")
        raw.item_attributes = {ATTR_FIELD: attrs}
    return raw


__all__ = ["read_s3rec_interactions"]
