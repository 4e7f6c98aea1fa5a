"""Runs initialised from another run's pre-trained encoder (``--init RUN_DIR``).

Loads the encoder saved by ``ssgraphrec pretrain`` (or a pretrain_finetune run),
checking that the two runs share one id space and one training split, and lets a
fine-tuning run inherit the data settings of its pre-training run
(docs/training-schemes.md). The schemes themselves are in
:mod:`ssgraphrec.train.schemes`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..config import RunConfig
from ..data.schema import summary
from ..errors import ConfigError
from ..methods.base import Method
from . import run_dir as rd
from .checkpoint import load_checkpoint
from .schemes import ENCODER


def _describe(name: str, data: dict[str, Any]) -> str:
    return (f"dataset {data.get('name') or name!r} ({data.get('users')} users, "
            f"{data.get('items')} items, fingerprint {data.get('fingerprint')})")


#: The run settings that fix the data and its split: a run started with ``--init``
#: takes them from the pre-training run unless it sets them itself.
DATA_SETTINGS = ("dataset", "split", "test_ratio", "val_ratio", "seed", "data_root",
                 "simulate_cold", "simulate_cold_share")


def inherit_data_settings(cfg: RunConfig, explicit: set[str]) -> list[str]:
    """Copy the data settings of the ``cfg.init`` run into ``cfg``, except those in
    ``explicit`` (set by the user); return the names copied.

    ``ssgraphrec train --method lightgcn --init runs/pre`` thus fine-tunes on the
    dataset, split and seed it was pre-trained on; a setting given on the
    command line wins, and :func:`init_encoder` then checks that both runs still
    share one training split.
    """
    init_dir = Path(cfg.init or "")
    if not (init_dir / rd.CONFIG).is_file():
        raise ConfigError(f"--init {init_dir}: no {rd.CONFIG} there; give a run directory "
                          "written by 'ssgraphrec pretrain' (or a pretrain_finetune run)")
    theirs = rd.read_config(init_dir)
    copied = []
    for key in DATA_SETTINGS:
        if key not in explicit and key in theirs and getattr(cfg, key) != theirs[key]:
            setattr(cfg, key, theirs[key])
            copied.append(key)
    return copied


def init_encoder(method: Method, data, init_dir: str | Path, dataset: str) -> dict[str, Any]:
    """Load the encoder of the pre-training run ``init_dir`` into ``method``.

    The pre-training run must have seen the same id spaces and the same
    training split (its data fingerprint); parameter shapes are checked by
    :meth:`Method.load_encoder_state_dict`. Returns the pre-training phase
    record (with ``from``: the run directory) for ``results.json``.
    """
    init_dir = Path(init_dir)
    path = init_dir / ENCODER
    if not path.is_file():
        raise ConfigError(f"--init {init_dir}: no {ENCODER} there; give a run directory "
                          "written by 'ssgraphrec pretrain' (or a pretrain_finetune run)")
    saved = load_checkpoint(path)
    theirs = saved.get("data") or rd.read_results(init_dir).get("data", {})
    pre_cfg = rd.read_config(init_dir) if (init_dir / rd.CONFIG).is_file() else {}
    ours = summary(data)
    if (theirs.get("users"), theirs.get("items")) != (ours["users"], ours["items"]):
        raise ConfigError(
            f"--init {init_dir}: the id spaces differ: it was pre-trained on "
            f"{_describe(pre_cfg.get('dataset', '?'), theirs)}, this run uses "
            f"{_describe(dataset, ours)}")
    if theirs.get("fingerprint") != ours["fingerprint"]:
        raise ConfigError(
            f"--init {init_dir}: the training split differs: it was pre-trained on "
            f"{_describe(pre_cfg.get('dataset', '?'), theirs)}, this run uses "
            f"{_describe(dataset, ours)}; use the same dataset, split and seed (pre-training "
            "on another split would see this run's test interactions)")
    theirs_dim = (pre_cfg.get("params") or {}).get("emb_dim")
    ours_dim = getattr(method.cfg, "emb_dim", None)
    if theirs_dim is not None and ours_dim is not None and theirs_dim != ours_dim:
        raise ConfigError(
            f"--init {init_dir}: the embedding sizes differ: it was pre-trained by "
            f"{pre_cfg.get('method', '?')!r} with emb_dim {theirs_dim}, this run's "
            f"{method.name!r} has emb_dim {ours_dim}; add --set emb_dim={theirs_dim}")
    method.load_encoder_state_dict(saved["encoder"], source=str(path))
    phase = dict(saved.get("phase") or {})
    phase["from"] = str(init_dir)
    return phase


def init_phase(init_dir: str | Path) -> dict[str, Any]:
    """The pre-training record of ``--init init_dir`` for a resumed run (whose checkpoint
    already holds the initialised encoder): its ``encoder.pt`` phase, with ``from``."""
    path = Path(init_dir) / ENCODER
    phase = dict(load_checkpoint(path).get("phase") or {}) if path.is_file() else {}
    phase["from"] = str(init_dir)
    return phase
