"""User-facing errors.

Every error a user can cause (bad input file, unknown name, bad option) is an
:class:`SSGraphRecError`; the CLI prints its message and exits non-zero
without a traceback.
"""

from __future__ import annotations

from pathlib import Path


class SSGraphRecError(Exception):
    """An error caused by the user's input, with a message meant for them."""


class DataFormatError(SSGraphRecError):
    """A data file does not have the expected format.

    The message names the file, the (1-based) line and what was expected.
    """

    def __init__(self, path: str | Path, line: int | None, problem: str, expected: str):
        where = f"{path}" if line is None else f"{path}, line {line}"
        super().__init__(f"{where}: {problem}; expected {expected}")
        self.path = str(path)
        self.line = line


class ConfigError(SSGraphRecError):
    """A configuration value is unknown or out of range."""


def check_probability(name: str, value: float) -> float:
    """Return ``value`` if it lies in [0, 1), else raise a :class:`ConfigError`."""
    if not isinstance(value, (int, float)) or not 0.0 <= float(value) < 1.0:
        raise ConfigError(f"{name} must be a probability in [0, 1), got {value!r}")
    return float(value)
