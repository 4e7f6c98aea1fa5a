"""Tuned configurations shipped with the package, and the layering of a run's settings.

A tuned file is ``ssgraphrec/tuned/<dataset>/<method>.yaml``: the settings a
validation search found (``params`` and the tunable run settings of
:data:`~ssgraphrec.tuning.space.TUNABLE_RUN_FIELDS`), the protocol it was found
under, and a ``tuning`` mapping with the command, the number of trials, the date
and the validation score. ``ssgraphrec tune`` writes the same format as
``best.yaml``.

Layers of a run, later ones winning (:func:`resolve_run_config`): the method's
paper defaults; unless ``paper_defaults``, the remedies for small data
(:func:`remedy_layer`) and the tuned file of (method, dataset) when there is one;
then the user's layers (``--config`` YAML, command-line options, ``--set``). Only
the tuned settings come from a tuned file; its protocol (epochs, split, seed) is
not imposed on the run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ..config import RUN_FIELDS, RunConfig, apply
from ..errors import ConfigError
from .space import TUNABLE_RUN_FIELDS

#: Where the shipped tuned files live.
TUNED_DIR = Path(__file__).resolve().parent.parent / "tuned"
#: The key of a tuned file (and of ``best.yaml``) that describes the search; not a setting.
META_KEY = "tuning"
#: Where a run's settings came from (``results.json``: ``config_source``).
SOURCES = ("tuned", "paper", "user")
#: Run settings every trainable method gets unless ``--paper-defaults``: early stopping
#: waits for 1,000 optimizer steps, because contrastive methods dip before they rise
#: when an epoch is a few dozen steps (measured in docs/tuning.md, "Remedies measured").
GENERAL_REMEDIES: dict[str, Any] = {"min_steps": 1000}


def remedy_layer(method: str) -> dict[str, Any]:
    """The remedies a run of ``method`` gets unless ``--paper-defaults``:
    :data:`GENERAL_REMEDIES` and the method's own ``remedies`` (for example SGL's SSL
    warm-up), each measured on several datasets (docs/tuning.md)."""
    from ..methods import METHODS

    cls = METHODS.get(method)
    if not cls.trainable:
        return {}
    return {**GENERAL_REMEDIES, **cls.remedies}


def tuned_file(method: str, dataset: str, root: Path | None = None) -> Path | None:
    """The shipped tuned file of ``method`` on the registered ``dataset``, if any."""
    if not dataset or "/" in dataset or dataset.startswith("."):
        return None  # a path: nobody tuned it
    path = (root or TUNED_DIR) / dataset / f"{method}.yaml"
    return path if path.is_file() else None


def read_tuned(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the settings to layer, the ``tuning`` description) of a tuned file."""
    try:
        values = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read the tuned file {path}: {exc}") from None
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: a tuned file is a mapping of settings")
    layer: dict[str, Any] = {k: values[k] for k in TUNABLE_RUN_FIELDS if k in values}
    params = values.get("params") or {}
    if not isinstance(params, dict):
        raise ConfigError(f"{path}: 'params' must be a mapping of method settings")
    params = dict(params)
    if "aug" in params:  # a run setting, so that a user's --aug wins over the file's
        layer["aug"] = params.pop("aug")
    if params:
        layer["params"] = params
    return layer, dict(values.get(META_KEY) or {})


def strip_meta(values: dict[str, Any]) -> dict[str, Any]:
    """A YAML config without its ``tuning`` description (so ``best.yaml`` is a ``--config``)."""
    return {k: v for k, v in values.items() if k != META_KEY}


def user_settings(layers: list[dict[str, Any]]) -> list[str]:
    """The method hyper-parameters (and tunable run settings) the user's layers set."""
    keys: set[str] = set()
    for layer in layers:
        for key, value in layer.items():
            key = key.replace("-", "_")
            if key == "params" and isinstance(value, dict):
                keys.update(value)
            elif key in TUNABLE_RUN_FIELDS or key.startswith("method.") \
                    or key not in RUN_FIELDS:
                keys.add(key.removeprefix("method."))
    return sorted(keys)


def resolve_run_config(layers: list[dict[str, Any]], *, paper_defaults: bool = False,
                       root: Path | None = None) -> tuple[RunConfig, dict[str, Any]]:
    """The run config of the user's ``layers`` over the tuned file (or the paper's
    defaults), and its provenance for ``results.json``::

        {"config_source": "tuned" | "paper" | "user", "tuned_file": path or None,
         "tuning": the file's description, "user_settings": [...]}

    ``config_source`` is ``tuned`` when a tuned file was layered (the user's own
    settings, listed in ``user_settings``, still win over it), ``user`` when there
    is none and the user set a hyper-parameter, ``paper`` otherwise.
    """
    probe = RunConfig()
    for layer in layers:
        apply(probe, dict(layer))
    path = None if paper_defaults else tuned_file(probe.method, probe.dataset, root)
    cfg = RunConfig()
    remedies = {} if paper_defaults else remedy_layer(probe.method)
    apply(cfg, dict(remedies))
    tuning: dict[str, Any] = {}
    tuned_layer: dict[str, Any] = {}
    if path is not None:
        tuned_layer, tuning = read_tuned(path)
        apply(cfg, tuned_layer)
    for layer in layers:
        apply(cfg, dict(layer))
    own = user_settings(layers)
    source = "tuned" if path is not None else ("user" if own else "paper")
    overridden = set(own) | set(tuned_layer) | set(tuned_layer.get("params", {}))
    return cfg, {"config_source": source, "tuned_file": str(path) if path else None,
                 "tuning": tuning, "user_settings": own,
                 "remedies": {k: v for k, v in remedies.items() if k not in overridden}}


def describe_source(provenance: dict[str, Any]) -> str:
    """One line for the terminal: where the run's hyper-parameters come from."""
    source = provenance.get("config_source")
    own = provenance.get("user_settings") or []
    yours = f"; yours: {', '.join(own)}" if own else ""
    if source == "tuned":
        meta = provenance.get("tuning") or {}
        score = meta.get("value")
        found = (f" ({meta.get('trials', '?')} trials, validation {meta.get('monitor', 'score')} "
                 f"{score:.4f})" if isinstance(score, (int, float)) else "")
        return (f"tuned settings from {provenance.get('tuned_file')}{found}{yours} "
                "(--paper-defaults for the paper's)")
    fixes = provenance.get("remedies") or {}
    remedied = (" and the small-data remedies " + ", ".join(f"{k}={v}" for k, v in fixes.items())
                + " (--paper-defaults for none)") if fixes else ""
    if source == "user":
        return f"the paper's defaults{remedied} with your settings{yours}"
    return f"the paper's defaults{remedied}"
