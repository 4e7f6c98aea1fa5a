"""The run directory: config.yaml, metrics.jsonl, results.json, checkpoints."""

from __future__ import annotations

import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import torch_geometric
import yaml

from .. import __version__
from ..errors import SSGraphRecError

CONFIG = "config.yaml"
METRICS = "metrics.jsonl"
RESULTS = "results.json"
BEST = "best.pt"
LAST = "last.pt"
#: where the run's settings came from (tuned file, paper defaults, user); results.json repeats it
PROVENANCE = "provenance.json"
#: Written when a run stops on an error: the message, and the epochs it had finished.
FAILED = "failed.json"


def new_run_dir(method: str, dataset: str, out: str | None) -> Path:
    """``out`` if given, else ``runs/<method>-<dataset>-<time>/``."""
    if out:
        path = Path(out)
    else:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        safe = Path(dataset).name.replace(os.sep, "_") or "data"
        path = Path("runs") / f"{method}-{safe}-{stamp}"
        k = 1
        while path.exists():
            k += 1
            path = Path("runs") / f"{method}-{safe}-{stamp}-{k}"
    if path.exists() and not path.is_dir():
        raise SSGraphRecError(f"--out {path} is a file, not a folder; give a folder for the run")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SSGraphRecError(f"cannot create the run folder {path}: "
                              f"{exc.strerror or exc}") from None
    return path


def write_text_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(tmp, 0o644)  # mkstemp makes owner-only files; results are meant to be shared
    os.replace(tmp, path)


def write_config(run_dir: Path, config: dict[str, Any]) -> None:
    write_text_atomic(run_dir / CONFIG, yaml.safe_dump(config, sort_keys=False))


def read_config(run_dir: Path) -> dict[str, Any]:
    path = Path(run_dir) / CONFIG
    if not path.is_file():
        raise SSGraphRecError(f"{run_dir} is not a run directory: no {CONFIG}")
    try:
        values = yaml.safe_load(path.read_text()) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        mark = getattr(exc, "problem_mark", None)
        reason = (f"not valid YAML, {exc.problem} at line {mark.line + 1}"  # type: ignore[attr-defined]
                  if mark is not None else str(exc).splitlines()[0] or type(exc).__name__)
        raise SSGraphRecError(f"{path} cannot be read as a run's settings: {reason}") from None
    if not isinstance(values, dict):
        raise SSGraphRecError(f"{path} is not a mapping of settings (it holds a "
                              f"{type(values).__name__})")
    return values


def align_with_checkpoint(run_dir: Path, phase: str, epoch: int) -> dict[str, int]:
    """Make a run folder agree with its ``last.pt`` before a resume; return what was removed.

    An epoch appends its ``metrics.jsonl`` line, then replaces ``last.pt``: a
    process killed between the two leaves a line for an epoch the checkpoint does
    not hold, which the resumed run would write again. Such lines (and a
    half-written last line) are dropped, as are the temporary files of an
    interrupted atomic write (``*.tmp``). ``phase`` and ``epoch`` are the
    checkpoint's (``epoch`` 0-based: records up to ``epoch + 1`` are kept).
    """
    path = Path(run_dir) / METRICS
    kept, dropped = [], 0
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                dropped += 1
                continue
            if "pretrain_epoch" in record:
                ahead = phase == "pretrain" and record["pretrain_epoch"] > epoch + 1
            else:
                ahead = phase == "pretrain" or record.get("epoch", 0) > epoch + 1
            if ahead:
                dropped += 1
            else:
                kept.append(line)
        if dropped:
            write_text_atomic(path, "".join(f"{line}\n" for line in kept))
    stale = list(Path(run_dir).glob("*.tmp"))
    for tmp in stale:
        tmp.unlink(missing_ok=True)
    return {"metrics_lines": dropped, "temp_files": len(stale)}


def mark_failed(run_dir: Path, message: str) -> None:
    """Record in the run folder that the run stopped on an error, and which one."""
    epochs = 0
    metrics = Path(run_dir) / METRICS
    if metrics.is_file():
        epochs = sum(1 for line in metrics.read_text().splitlines() if '"epoch"' in line)
    write_text_atomic(Path(run_dir) / FAILED, json.dumps({
        "error": message, "epochs_logged": epochs,
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "resume": "fix the cause, then: ssgraphrec train --resume " + str(run_dir),
    }, indent=2) + "\n")


def append_metrics(run_dir: Path, record: dict[str, Any]) -> None:
    with open(run_dir / METRICS, "a") as f:
        f.write(json.dumps(record) + "\n")


def write_results(run_dir: Path, results: dict[str, Any]) -> None:
    write_text_atomic(run_dir / RESULTS, json.dumps(results, indent=2) + "\n")


def read_results(run_dir: Path) -> dict[str, Any]:
    path = Path(run_dir) / RESULTS
    return json.loads(path.read_text()) if path.is_file() else {}


def write_provenance(run_dir: Path, provenance: dict[str, Any]) -> None:
    write_text_atomic(run_dir / PROVENANCE, json.dumps(provenance, indent=2) + "\n")


def read_provenance(run_dir: Path) -> dict[str, Any] | None:
    """The provenance saved at the start of the run (None for runs older than the file)."""
    path = Path(run_dir) / PROVENANCE
    return json.loads(path.read_text()) if path.is_file() else None


def versions() -> dict[str, str]:
    return {
        "ssgraphrec": __version__,
        "torch": torch.__version__,
        "torch_geometric": torch_geometric.__version__,
        "python": platform.python_version(),
        "threads": str(torch.get_num_threads()),
    }
