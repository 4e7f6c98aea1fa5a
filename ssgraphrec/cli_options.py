"""Command-line options generated from :class:`~ssgraphrec.config.RunConfig`.

A run setting is declared once, as an annotated field of ``RunConfig`` made with
:func:`~ssgraphrec.config.option` (type, default, help). :func:`run_options` turns
those fields into click options, so ``ssgraphrec train --help``, the YAML keys and
``--set`` always name the same settings with the same types.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable
from typing import Any

import click

from .config import RunConfig
from .typed import field_types

_CLICK_TYPES = {int: click.INT, float: click.FLOAT, str: click.STRING}


def cli_fields() -> list[dataclasses.Field]:
    """The fields of :class:`RunConfig` that are command-line options."""
    return [f for f in dataclasses.fields(RunConfig) if "cli" in f.metadata]


def _scalar(hint: Any) -> Any:
    """``int | None`` -> ``int``."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return next(a for a in typing.get_args(hint) if a is not type(None))
    return hint


def _click_option(f: dataclasses.Field, hint: Any) -> Callable:
    meta = f.metadata["cli"]
    decls = [f"--{f.name.replace('_', '-')}"] + ([meta["short"]] if meta["short"] else [])
    default = meta["default_text"] or (f.default if f.default is not None else "none")
    kind = _scalar(hint)
    if kind is bool:  # a flag; None when absent, so that a config file's value stands
        return click.option(*decls, f.name, is_flag=True, default=None, help=meta["help"])
    if meta["choices"]:
        typ: Any = click.Choice(list(meta["choices"]))
    elif meta["path"]:
        typ = click.Path()
    else:
        typ = _CLICK_TYPES[kind]
    return click.option(*decls, f.name, type=typ, default=None,
                        help=f"{meta['help']} [default: {default}]")


def run_options(*names: str) -> Callable:
    """Decorator: the click options of the :class:`RunConfig` fields ``names`` (default:
    every option field), each passed to the command under the field's name, ``None``
    when not given."""
    hints = field_types(RunConfig)
    chosen = [f for f in cli_fields() if not names or f.name in names]
    unknown = set(names) - {f.name for f in chosen}
    if unknown:
        raise ValueError(f"not RunConfig options: {sorted(unknown)}")

    def deco(fn: Callable) -> Callable:
        for f in reversed(chosen):
            fn = _click_option(f, hints[f.name])(fn)
        return fn

    return deco


def given_options(values: dict[str, Any]) -> dict[str, Any]:
    """The run settings among a command's arguments that the user gave (not ``None``)."""
    names = {f.name for f in cli_fields()}
    return {k: v for k, v in values.items() if k in names and v is not None}
