"""Run configuration: dataclasses, YAML files and ``--set key=value`` overrides.

Layers, later ones winning: the defaults below and the method's paper defaults
(its config dataclass), a YAML file (``--config``), command-line options, then
``--set`` overrides. A key that names a :class:`RunConfig` field sets it; any
other key is a hyper-parameter of the method and must exist in its config.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError
from .ranges import check_ranges
from .typed import check_fields, coerce, field_types


def option(default: Any, help: str, *, short: str | None = None,
           choices: tuple[str, ...] | None = None, path: bool = False,
           default_text: str | None = None) -> Any:
    """A :class:`RunConfig` field that is also a command-line option ``--name``: its help,
    short flag, choices and whether it is a path. The options of ``ssgraphrec train`` (and
    of the commands that share settings) are generated from these
    (:func:`ssgraphrec.cli_options.run_options`); nothing else lists them."""
    return field(default=default, metadata={"cli": {
        "help": help, "short": short, "choices": choices, "path": path,
        "default_text": default_text}})


@dataclass
class RunConfig:
    """Everything about one training run that is not a method hyper-parameter.

    The annotation of each field is its type (checked by :mod:`ssgraphrec.typed` for a
    YAML file, ``--set`` and the constructor alike); the fields made with :func:`option`
    are the command-line options of ``ssgraphrec train``.
    """

    method: str = option("sgl", "Method name (see 'ssgraphrec methods').", short="-m")
    dataset: str = option("synthetic", "Dataset name or path.", short="-d")
    aug: str | None = option(None, "Augmentation(s), comma separated (see 'ssgraphrec augs').",
                             short="-a", default_text="the method's")
    epochs: int = option(50, "Maximum number of epochs.")
    batch_size: int | None = option(None, "Training batch size.", default_text="the paper's")
    lr: float | None = option(None, "Learning rate.", default_text="the paper's")
    seed: int = option(2020, "Seed of the split, the model and the sampling.")
    device: str = option("auto", "cpu, cuda, cuda:N or auto.")
    threads: int | None = option(None, "CPU threads for PyTorch.",
                                 default_text="PyTorch's, one per core")
    sparse_backend: str = option("auto", "Sparse propagation kernel.",
                                 choices=("auto", "torch", "torch_sparse"))
    split: str | None = option(None, "Test split.", choices=("random", "loo", "fixed"),
                               default_text="the dataset's")
    test_ratio: float | None = option(None, "Per-user test share for --split random.",
                                      default_text="0.2")
    val_ratio: float = option(0.1, "Per-user share of training rows for validation; 0: no "
                                   "validation, no early stopping.")
    patience: int = option(10, "Early-stopping patience in epochs.")
    max_minutes: float | None = option(
        None, "Time budget: start no epoch after this many minutes of training and "
              "validation; the best validation epoch so far is then tested.",
        default_text="none")
    refit: bool = option(
        False, "After selecting the epoch on validation, train once more on the whole training "
               "file (validation pairs included) for that many epochs, and test that model "
               "(in RUN/refit) instead.")
    monitor: str = "ndcg@20"
    #: None: the task's usual cut-offs (see ``ssgraphrec.train.tasks.DEFAULT_CUTOFFS``).
    eval_ks: list[int] | None = None
    #: next-item tasks: exclude the items of a sample's input from its ranking.
    mask_history: bool = option(False, "Next-item tasks: do not rank the items already in a "
                                       "sample's input.")
    #: next-item tasks: train on this seeded share of the training samples (bounded runs).
    train_fraction: float = 1.0
    #: users (or samples) per full-ranking block; 0: about 2**23 scores per block
    #: (``ssgraphrec.train.tasks.auto_eval_batch_size``), measured fastest on the CPU.
    eval_batch_size: int = 0
    data_root: str | None = option(None, "Data directory.", path=True,
                                   default_text="$SSGRAPHREC_DATA")
    #: "joint" or "pretrain_finetune"; None: the method's ``default_scheme``
    #: (docs/training-schemes.md).
    scheme: str | None = option(None, "Training scheme.", choices=("joint", "pretrain_finetune"),
                                default_text="the method's")
    #: pre-training epochs of scheme pretrain_finetune; 0: the method's own
    #: ``pretrain_epochs`` setting (its paper's default) when it has one.
    pretrain_epochs: int = option(0, "Pre-training epochs (scheme pretrain_finetune).",
                                  default_text="the paper's")
    #: learning rate of the fine-tuning phase (None: the method's lr).
    finetune_lr: float | None = option(None, "Learning rate of fine-tuning.",
                                       default_text="the method's lr")
    #: a run directory of ``ssgraphrec pretrain`` whose encoder initialises this run.
    init: str | None = option(None, "Initialise the encoder from this 'ssgraphrec pretrain' run.",
                              path=True, default_text="none")
    #: also report test metrics of users / items with at most this many training interactions.
    cold_threshold: int | None = option(
        None, "Also report users and items with 1 to N training interactions (those with "
              "none are counted, not ranked).", default_text="none")
    #: also report test metrics of the head (this top share of items by training count) and tail.
    head_share: float | None = option(
        None, "Also report head items (this top share by training count) and tail items.",
        default_text="none")
    #: also send the per-epoch records elsewhere: "tensorboard" (ssgraphrec.train.loggers).
    logger: str = option("none", "Also log per-epoch curves to TensorBoard event files in "
                                 "RUN/tensorboard (pip install tensorboard).",
                         choices=("none", "tensorboard"))
    #: ranking data: PT-GNN's cold-start protocol, a seeded share of the test users keep only
    #: this many training interactions (ssgraphrec.data.cold_simulation, docs/cold-start.md).
    simulate_cold: int | None = None
    #: the share of eligible test users that ``simulate_cold`` cuts down.
    simulate_cold_share: float = 0.2
    #: ranking data: how the top-K items are found, "exact" (batched top-k over all items)
    #: or "faiss" (an exact faiss inner-product index; optional extra, ssgraphrec.eval.retrieval).
    retrieval: str = "exact"
    #: ramp the weight of the self-supervised loss terms from 0 to 1 over this many
    #: optimizer steps (0: none; docs/tuning.md).
    ssl_warmup: int = 0
    #: early stopping does not stop before this many optimizer steps (docs/tuning.md).
    min_steps: int = 0
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_fields(self)  # every field against its annotation (ssgraphrec.typed)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


RUN_FIELDS = {f.name for f in dataclasses.fields(RunConfig)}


def parse_value(text: str) -> Any:
    """Parse an override value the way YAML would (``1e-3``, ``true``, ``[10, 20]``).

    Numbers YAML 1.1 reads as strings are numbers here too: ``1e-4`` and ``-1e-4``
    (no dot), ``nan`` and ``inf`` (which the range checks then refuse by name).
    """
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def apply(cfg: RunConfig, values: dict[str, Any]) -> RunConfig:
    """Set run fields from ``values``; other keys become method parameters."""
    for key, value in values.items():
        key = key.replace("-", "_")
        if key == "params":
            if not isinstance(value, dict):
                raise ConfigError("'params' must be a mapping of method hyper-parameters")
            cfg.params.update(value)
        elif key.startswith("method.") or key not in RUN_FIELDS:
            cfg.params[key.removeprefix("method.")] = value
        elif key == "eval_ks":
            setattr(cfg, key, _cutoffs(value))
        else:
            setattr(cfg, key, coerce(key, value, field_types(RunConfig)[key]))
    return cfg


def _cutoffs(value: Any) -> list[int] | None:
    """``eval_ks`` from a list or from ``"10,20"`` (as ``--set eval_ks=10,20`` gives it)."""
    if value is None:
        return None
    try:
        if isinstance(value, (int, str)) and not isinstance(value, bool):
            value = str(value).split(",")
        if not isinstance(value, (list, tuple)):
            raise TypeError(value)
        return [_as_int(k) for k in value]
    except (TypeError, ValueError):
        raise ConfigError(f"eval_ks must be a list of integers such as [10, 20], "
                          f"got {value!r}") from None


def _as_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise TypeError(value)
    return int(value)


def parse_overrides(pairs: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """``["lr=1e-3", "num_layers=2"]`` -> ``{"lr": 0.001, "num_layers": 2}``."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects key=value, got {pair!r}")
        out[key.strip()] = parse_value(value.strip())
    return out


def load_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        values = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f", line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}{where}: not valid YAML ({problem})") from None
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: expected a mapping of keys to values at the top level")
    return values


def method_config(config_class: type, run: RunConfig, method_name: str):
    """The method's config: paper defaults, then run-level lr/batch/aug, then params."""
    names = {f.name: f for f in dataclasses.fields(config_class)}
    values: dict[str, Any] = {}
    if run.lr is not None:
        values["lr"] = run.lr
    if run.batch_size is not None:
        values["batch_size"] = run.batch_size
    if run.aug is not None:
        if "aug" not in names:
            raise ConfigError(f"method {method_name!r} takes no augmentation (--aug); "
                              "methods that do: see 'ssgraphrec methods'")
        values["aug"] = run.aug
    for key, value in run.params.items():
        if key not in names:
            known = ", ".join(sorted(names))
            raise ConfigError(f"unknown setting {key!r} for method {method_name!r}; "
                              f"run settings: {', '.join(sorted(RUN_FIELDS - {'params'}))}; "
                              f"method settings: {known}")
        values[key] = value
    try:
        config = config_class(**values)  # its __post_init__ checks every type (ssgraphrec.typed)
    except ConfigError as exc:
        raise ConfigError(f"method {method_name!r}: {exc}") from None
    check_ranges(config, f"method {method_name!r}")
    return config
