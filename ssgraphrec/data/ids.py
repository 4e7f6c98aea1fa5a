"""Raw id <-> contiguous id maps."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np


class IdMap:
    """Assigns contiguous ids 0, 1, ... to raw ids in order of first appearance."""

    def __init__(self, raw_ids: Iterable[str] = ()):
        self.index: dict[str, int] = {}
        self.raw: list[str] = []
        self.add(raw_ids)

    def add(self, raw_ids: Iterable[str]) -> np.ndarray:
        """Map ``raw_ids`` (adding unseen ones) and return their contiguous ids."""
        index, raw = self.index, self.raw
        out = []
        for r in raw_ids:
            i = index.get(r)
            if i is None:
                i = index[r] = len(raw)
                raw.append(r)
            out.append(i)
        return np.asarray(out, dtype=np.int64)

    def lookup(self, raw_ids: Iterable[str]) -> np.ndarray:
        """Contiguous ids of ``raw_ids``; -1 for ids this map does not know."""
        get = self.index.get
        return np.asarray([get(r, -1) for r in raw_ids], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.raw)
