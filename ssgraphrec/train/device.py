"""Device selection: ``cpu``, ``cuda`` (or ``cuda:N``), ``auto``."""

from __future__ import annotations

import torch

from ..errors import ConfigError


def resolve_device(name: str) -> torch.device:
    """Turn ``--device`` into a ``torch.device``, with a clear error if it is absent."""
    name = (name or "auto").strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"--device {name} asked for, but PyTorch sees no CUDA device "
                              f"(torch {torch.__version__}, built with CUDA "
                              f"{torch.version.cuda or 'none'}); use --device cpu or auto")
        dev = torch.device(name)
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ConfigError(f"--device {name}: only {torch.cuda.device_count()} CUDA "
                              "device(s) present")
        return dev
    raise ConfigError(f"unknown device {name!r}; expected cpu, cuda, cuda:N or auto")
