"""``ssgraphrec train --nproc N``: launch the same command on N ranks with torchrun.

The command line is rebuilt from the parsed options without ``--nproc`` and run as
``python -m torch.distributed.run --nproc-per-node N --master-addr 127.0.0.1
--master-port P -m ssgraphrec train ...`` (one machine). Several machines launch
``torchrun -m ssgraphrec train ...`` themselves (docs/distributed.md).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from typing import Any

import torch

from .errors import ConfigError


def max_ranks(device: str | None) -> int:
    """The most ranks one machine may run: one per GPU on CUDA, one per core on the CPU."""
    if (device or "auto").startswith("cuda") or (device in (None, "auto")
                                                 and torch.cuda.is_available()):
        return max(torch.cuda.device_count(), 0)
    return os.cpu_count() or 1


def check_nproc(nproc: int, device: str | None) -> None:
    """:class:`ConfigError` unless 1 <= ``nproc`` <= :func:`max_ranks`."""
    allowed = max_ranks(device)
    on_gpus = (device or "").startswith("cuda")
    if on_gpus and allowed == 0:
        raise ConfigError("--nproc with --device cuda: this machine has no CUDA GPU; train on "
                          "the CPU (--device cpu) or on a machine with GPUs")
    if nproc < 1 or nproc > allowed:
        unit = "GPU" if on_gpus else "CPU core"
        raise ConfigError(f"--nproc {nproc}: this machine allows 1 to {allowed} ranks (one per "
                          f"{unit}); several machines: torchrun on each (docs/distributed.md)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def command_args(values: dict[str, Any]) -> list[str]:
    """Command-line arguments that give the parsed ``values`` again (``None``/False: left
    out; a tuple: the option repeated)."""
    names = {"config_file": "--config", "overrides": "--set"}
    out: list[str] = []
    for key, value in values.items():
        if value is None or value is False or value == ():
            continue
        flag = names.get(key, "--" + key.replace("_", "-"))
        if value is True:
            out.append(flag)
        elif isinstance(value, (tuple, list)):
            for item in value:
                out += [flag, str(item)]
        else:
            out += [flag, str(value)]
    return out


def launch(nproc: int, command: str, values: dict[str, Any]) -> int:
    """Run ``ssgraphrec <command>`` with ``values`` on ``nproc`` local ranks; the exit code
    of the job (torchrun ends every rank when one fails)."""
    argv = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(nproc),
            "--master-addr", "127.0.0.1", "--master-port", str(free_port()),
            "-m", "ssgraphrec", command, *command_args(values)]
    return subprocess.call(argv)
