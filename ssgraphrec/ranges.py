"""The ranges of settings that many methods (or every run) share, checked before anything runs.

A setting is named the same in every method that has it (``lr``, ``emb_dim``,
``temperature``, ...), so one table gives each name its range. Every float
setting must also be finite: ``--lr inf`` or ``--set reg=nan`` never reaches an
optimizer. A method's own constraints (``layer_cl`` within ``num_layers``,
``drop_ratio`` below 1) stay in the method, with its own message.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from .errors import ConfigError


@dataclass(frozen=True)
class Range:
    """An interval of allowed values; ``None`` leaves that end open to infinity."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def contains(self, value: float) -> bool:
        if self.low is not None and not (value > self.low if self.low_open else value >= self.low):
            return False
        if self.high is not None and not (value < self.high if self.high_open
                                          else value <= self.high):
            return False
        return True

    def __str__(self) -> str:
        if self.high is None:
            return f"{'>' if self.low_open else '>='} {self.low:g}"
        return (f"in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}"
                f"{')' if self.high_open else ']'}")


POSITIVE = Range(0, low_open=True)
NON_NEGATIVE = Range(0)
AT_LEAST_ONE = Range(1)
FRACTION = Range(0, 1)

#: Range of each shared setting name (run settings and method settings).
SETTING_RANGES: dict[str, Range] = {
    # optimisation
    "lr": POSITIVE, "finetune_lr": POSITIVE, "reg": NON_NEGATIVE,
    "batch_size": AT_LEAST_ONE, "pretrain_batch_size": AT_LEAST_ONE,
    "recon_batch_size": AT_LEAST_ONE, "ssl_batch_size": AT_LEAST_ONE,
    # sizes
    "emb_dim": AT_LEAST_ONE, "num_heads": AT_LEAST_ONE, "num_blocks": AT_LEAST_ONE,
    "inner_size": AT_LEAST_ONE, "max_len": AT_LEAST_ONE, "max_positions": AT_LEAST_ONE,
    "ff_dim": AT_LEAST_ONE, "num_clusters": AT_LEAST_ONE, "kmeans_iters": AT_LEAST_ONE,
    "num_layers": NON_NEGATIVE, "num_gnn_layers": NON_NEGATIVE, "freeze_layers": NON_NEGATIVE,
    # contrastive and auxiliary terms
    "temperature": POSITIVE, "ssl_temperature": POSITIVE, "cl_temperature": POSITIVE,
    "ssl_weight": NON_NEGATIVE, "proto_weight": NON_NEGATIVE, "mim_weight": NON_NEGATIVE,
    "feature_weight": NON_NEGATIVE, "semantic_weight": NON_NEGATIVE,
    "session_weight": NON_NEGATIVE, "alpha": NON_NEGATIVE, "eps": NON_NEGATIVE,
    "margin": NON_NEGATIVE, "init_std": NON_NEGATIVE, "transfer_std": NON_NEGATIVE,
    # shares of something
    "dropout": FRACTION, "dropout_rate": FRACTION, "mask_ratio": FRACTION,
    "feature_mask_ratio": FRACTION, "attr_ratio": FRACTION, "crop_eta": FRACTION,
    "mask_gamma": FRACTION, "reorder_beta": FRACTION, "substitute_rate": FRACTION,
    "insert_rate": FRACTION,
    # run settings
    "epochs": NON_NEGATIVE, "pretrain_epochs": NON_NEGATIVE, "patience": NON_NEGATIVE,
    "eval_batch_size": NON_NEGATIVE, "threads": AT_LEAST_ONE, "ssl_warmup": NON_NEGATIVE,
    "min_steps": NON_NEGATIVE, "max_minutes": POSITIVE, "val_ratio": Range(0, 1, high_open=True),
    "test_ratio": Range(0, 1, low_open=True, high_open=True),
    "train_fraction": Range(0, 1, low_open=True),
}


def check_value(name: str, value: Any, owner: str = "") -> None:
    """:class:`ConfigError` if ``value`` is a non-finite float or outside ``name``'s range."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    where = f" ({owner})" if owner else ""
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite number, got {value}{where}")
    allowed = SETTING_RANGES.get(name)
    if allowed is not None and not allowed.contains(value):
        raise ConfigError(f"{name} must be {allowed}, got {value!r}{where}")


def check_ranges(config: Any, owner: str = "") -> None:
    """Check every field of the dataclass ``config`` (see :func:`check_value`)."""
    for field in dataclasses.fields(config):
        check_value(field.name, getattr(config, field.name), owner)
