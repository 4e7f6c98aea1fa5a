"""A small name -> object registry, one instance per kind of thing.

Methods, augmentations and datasets each have their own registry, so that a
short name on the command line, in a YAML file or in Python reaches the same
class, without any global configuration state.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from difflib import get_close_matches
from typing import Generic, TypeVar

from .errors import SSGraphRecError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps short names to objects of one kind (``kind`` appears in errors)."""

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator that registers its argument under ``name``."""

        def deco(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._items[name] = obj
            return obj

        return deco

    def get(self, name: str) -> T:
        """Return the object named ``name`` or raise a clear error."""
        try:
            return self._items[name]
        except KeyError:
            close = get_close_matches(name, self._items, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            known = ", ".join(sorted(self._items))
            raise SSGraphRecError(
                f"unknown {self.kind} {name!r}{hint}; known: {known}"
            ) from None

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._items))

    def items(self) -> list[tuple[str, T]]:
        return sorted(self._items.items())
