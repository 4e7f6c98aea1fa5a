"""Settings typed by their annotations: one check for run and method settings.

:class:`~ssgraphrec.config.RunConfig` and every method's config dataclass
declare each setting's type in its annotation (``float``, ``int | None``,
``list[int] | None``, ``str``, ...). :func:`coerce` reads a value given in a YAML
file or by ``--set`` against that annotation, and :func:`check_fields` applies it
to every field of a dataclass in its ``__post_init__``; a value of the wrong type
is one :class:`~ssgraphrec.errors.ConfigError` naming the key, the value and the
type expected. A setting that defaults to ``None`` is checked like any other.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from typing import Any, Union

from .errors import ConfigError

_NAMES = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}


@functools.cache
def field_types(cls: type) -> dict[str, Any]:
    """The resolved annotation of every field of the dataclass ``cls``."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def describe(hint: Any) -> str:
    """``float | None`` -> ``"a number or null"``: the type in words, for messages."""
    args = typing.get_args(hint)
    if _is_union(hint):
        return " or ".join("null" if a is type(None) else describe(a) for a in args)
    origin = typing.get_origin(hint)
    if origin in (list, tuple):
        return f"a list of {describe(args[0]).removeprefix('a ').removeprefix('an ')}s"
    if origin is dict or hint is dict:
        return "a mapping"
    return _NAMES.get(hint, getattr(hint, "__name__", str(hint)))


def _is_union(hint: Any) -> bool:
    return typing.get_origin(hint) in (Union, types.UnionType)


def _scalar(value: Any, hint: type) -> Any:
    """``value`` as ``hint`` (int, float, bool, str), or ``TypeError``."""
    if isinstance(value, bool):
        if hint is bool:
            return value
        raise TypeError
    if hint is int:
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():  # --set emb_dim=1e3
            return int(value)
    elif hint is float:
        if isinstance(value, (int, float)):
            return float(value)
    elif hint is str:
        if isinstance(value, (str, int, float)):
            return str(value)
    raise TypeError


def coerce(key: str, value: Any, hint: Any) -> Any:
    """``value`` checked (and widened: an integer for a float) against the annotation
    ``hint`` of the setting ``key``; a :class:`ConfigError` when it does not fit."""
    try:
        return _coerce(value, hint)
    except (TypeError, ValueError):
        raise ConfigError(f"setting {key}={value!r}: expected {describe(hint)}, got "
                          f"{type(value).__name__}") from None


def _coerce(value: Any, hint: Any) -> Any:
    if hint is Any:
        return value
    if _is_union(hint):
        args = typing.get_args(hint)
        if value is None:
            if type(None) in args:
                return None
            raise TypeError
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg)
            except (TypeError, ValueError):
                continue
        raise TypeError
    origin = typing.get_origin(hint)
    if origin in (list, tuple):
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            raise TypeError
        items = [_coerce(v, typing.get_args(hint)[0]) for v in value]
        return items if origin is list else tuple(items)
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            raise TypeError
        return value
    if value is None:
        raise TypeError
    return _scalar(value, hint)


def check_fields(obj: Any) -> None:
    """Check (and widen) every field of the dataclass instance ``obj`` against its
    annotation; call it from ``__post_init__``."""
    for name, hint in field_types(type(obj)).items():
        value = getattr(obj, name)
        checked = coerce(name, value, hint)
        if checked is not value:
            object.__setattr__(obj, name, checked)
