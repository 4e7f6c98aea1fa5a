"""Settings a method's paper gives per dataset, kept as data files beside the tuned ones.

``ssgraphrec/paper/<dataset>/<method>.yaml`` holds the values the authors give for
one dataset (DHCN's self-supervision weight on Tmall and Diginetica), with their
``source``. A method reads them for the settings its config leaves ``None``; the
tuned configurations (``ssgraphrec/tuned/``, docs/tuning.md) are another matter:
found by the package on the validation split, not published by the authors.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import yaml

PAPER_DIR = Path(__file__).parent / "paper"


@functools.cache
def paper_settings(method: str, dataset: str) -> dict[str, Any]:
    """The ``params`` of ``paper/<dataset>/<method>.yaml`` (dataset matched without
    case), or ``{}`` when the paper gives nothing for that dataset."""
    path = PAPER_DIR / dataset.lower() / f"{method}.yaml"
    if not dataset or not path.is_file():
        return {}
    values = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return dict(values.get("params") or {})
