"""Search spaces: typed ranges of a method's hyper-parameters, declared beside its config.

A method class declares ``space = {"ssl_weight": Float(1e-3, 1.0, log=True), ...}``.
A key is either a field of the method's config dataclass or one of the run
settings that tuning may change (:data:`TUNABLE_RUN_FIELDS`); anything else is
refused when the space is read (:func:`search_space`), with the names that exist.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError

#: Run settings (:class:`ssgraphrec.config.RunConfig`) that a space may search and a
#: tuned file may set: everything else in a run is protocol (split, seed, epochs).
TUNABLE_RUN_FIELDS = ("lr", "batch_size", "ssl_warmup")


@dataclass(frozen=True)
class Float:
    """A real number in ``[low, high]``, sampled uniformly or on a log scale."""

    low: float
    high: float
    log: bool = False

    def __post_init__(self):
        if not (math.isfinite(self.low) and math.isfinite(self.high) and self.low < self.high):
            raise ConfigError(f"Float range needs finite low < high, got [{self.low}, {self.high}]")
        if self.log and self.low <= 0:
            raise ConfigError(f"a log-scale Float range needs low > 0, got {self.low}")

    def suggest(self, trial, name: str) -> float:
        return trial.suggest_float(name, self.low, self.high, log=self.log)

    def contains(self, value: Any) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool) \
            and self.low <= value <= self.high

    def describe(self) -> str:
        return f"float in [{self.low:g}, {self.high:g}]" + (" (log scale)" if self.log else "")


@dataclass(frozen=True)
class Int:
    """A whole number in ``[low, high]`` (with ``step``), uniform or on a log scale."""

    low: int
    high: int
    log: bool = False
    step: int = 1

    def __post_init__(self):
        if self.low > self.high:
            raise ConfigError(f"Int range needs low <= high, got [{self.low}, {self.high}]")
        if self.log and (self.low < 1 or self.step != 1):
            raise ConfigError("a log-scale Int range needs low >= 1 and step 1")

    def suggest(self, trial, name: str) -> int:
        return trial.suggest_int(name, self.low, self.high, log=self.log, step=self.step)

    def contains(self, value: Any) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) \
            and self.low <= value <= self.high and (value - self.low) % self.step == 0

    def describe(self) -> str:
        step = f" step {self.step}" if self.step != 1 else ""
        return f"int in [{self.low}, {self.high}]{step}" + (" (log scale)" if self.log else "")


@dataclass(frozen=True)
class Choice:
    """One of a fixed list of values (numbers, strings or booleans)."""

    values: tuple

    def __post_init__(self):
        if not self.values:
            raise ConfigError("Choice needs at least one value")

    def suggest(self, trial, name: str) -> Any:
        return trial.suggest_categorical(name, list(self.values))

    def contains(self, value: Any) -> bool:
        return value in self.values

    def describe(self) -> str:
        return "one of " + ", ".join(str(v) for v in self.values)


Param = Float | Int | Choice

#: The optimiser settings every trainable method shares (Adam's lr, the batch size). A
#: smaller batch means more steps per epoch: batches below 1,024 would buy validation gains
#: with epochs several times as long (every step propagates the whole graph), so a search
#: at an equal epoch budget does not offer them.
OPTIMISER_SPACE: dict[str, Param] = {
    "lr": Float(1e-4, 1e-2, log=True),
    "batch_size": Choice((1024, 2048, 4096)),
}


def search_space(method_cls: type) -> dict[str, Param]:
    """The declared space of ``method_cls``, every key checked against its config.

    Raises :class:`ConfigError` when the method declares no space, or a key is
    neither a field of its config nor a tunable run setting.
    """
    space = getattr(method_cls, "space", None)
    if not space:
        raise ConfigError(f"method {method_cls.name!r} declares no search space (nothing to tune)")
    check_space(method_cls, space)
    return dict(space)


def check_space(method_cls: type, space: dict[str, Any]) -> None:
    """:class:`ConfigError` for a key that is not a setting of ``method_cls``, or a value
    that is not a :class:`Float`, :class:`Int` or :class:`Choice`."""
    fields = {f.name for f in dataclasses.fields(method_cls.config_class)}
    for key, param in space.items():
        if key not in fields and key not in TUNABLE_RUN_FIELDS:
            raise ConfigError(f"the search space of {method_cls.name!r} names {key!r}, which is not "
                              f"one of its settings ({', '.join(sorted(fields))}) nor a tunable "
                              f"run setting ({', '.join(TUNABLE_RUN_FIELDS)})")
        if not isinstance(param, (Float, Int, Choice)):
            raise ConfigError(f"the search space of {method_cls.name!r}: {key!r} must be a Float, "
                              f"Int or Choice, got {param!r}")


def restrict(space: dict[str, Param], fixed: dict[str, Any]) -> dict[str, Param]:
    """The space without the keys the user fixed (``--set`` on ``tune``)."""
    return {k: v for k, v in space.items() if k not in fixed}


def describe_space(method_cls: type) -> list[str]:
    """One line per parameter: name, range and the paper default."""
    from ..config import RunConfig

    space = search_space(method_cls)
    defaults = {f.name: f.default for f in dataclasses.fields(method_cls.config_class)}
    lines = []
    for key, param in space.items():
        default = defaults.get(key, getattr(RunConfig, key, None))
        fix = method_cls.remedies.get(key)
        shown = f"default {default}" + (f" (paper; {fix} unless --paper-defaults)"
                                         if fix is not None else "")
        lines.append(f"{key:<16} {param.describe():<44} {shown}")
    return lines


def parse_param(name: str, spec: Any) -> Param:
    """A parameter from its YAML form: ``[a, b, c]`` (a choice) or a mapping
    ``{low: L, high: H, log: bool, step: N}`` (an Int when ``low`` and ``high`` are whole
    numbers, else a Float)."""
    if isinstance(spec, list):
        return Choice(tuple(spec))
    if isinstance(spec, dict) and {"low", "high"} <= set(spec):
        extra = set(spec) - {"low", "high", "log", "step"}
        if extra:
            raise ConfigError(f"search space entry {name!r}: unknown key(s) {', '.join(sorted(extra))}"
                              "; expected low, high, log, step")
        low, high, log = spec["low"], spec["high"], bool(spec.get("log", False))
        if all(isinstance(v, int) and not isinstance(v, bool) for v in (low, high)):
            return Int(low, high, log=log, step=int(spec.get("step", 1)))
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high)):
            raise ConfigError(f"search space entry {name!r}: low and high must be numbers")
        return Float(float(low), float(high), log=log)
    raise ConfigError(f"search space entry {name!r}: expected a list of choices or "
                      f"{{low: L, high: H, log: true|false}}, got {spec!r}")


def read_space_file(path: str) -> dict[str, Param]:
    """A user's search space from a YAML file (see :func:`parse_param`)."""
    from ..config import load_yaml

    return {name: parse_param(name, spec) for name, spec in load_yaml(path).items()}
