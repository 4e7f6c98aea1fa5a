"""Where a run's per-epoch records go besides ``metrics.jsonl``: ``--logger tensorboard``.

Every epoch record (loss terms, validation metrics, seconds) is written by rank 0 to
``metrics.jsonl``; a logger also sends it elsewhere. ``tensorboard`` writes event
files to ``RUN/tensorboard`` (``pip install tensorboard``; then ``tensorboard --logdir
runs``): ``loss/<term>``, ``val/<metric>`` and ``time/train_s`` per epoch, and the
pre-training epochs as ``pretrain/<term>``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import ConfigError

LOGGERS = ("none", "tensorboard")


class TensorBoardLogger:
    """Epoch records as TensorBoard scalars."""

    def __init__(self, run_dir: Path):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ConfigError("--logger tensorboard needs the tensorboard package: pip install "
                              "tensorboard (or 'ssgraphrec[tensorboard]')") from None
        self.writer = SummaryWriter(log_dir=str(Path(run_dir) / "tensorboard"))

    def log(self, record: dict[str, Any]) -> None:
        if "epoch" in record:
            step, prefix = int(record["epoch"]), "loss"
        else:
            step, prefix = int(record["pretrain_epoch"]), "pretrain"
        for term, value in record.get("loss", {}).items():
            self.writer.add_scalar(f"{prefix}/{term}", value, step)
        for name, value in (record.get("val") or {}).items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                self.writer.add_scalar(f"val/{name}", value, step)
        if "train_s" in record:
            self.writer.add_scalar("time/train_s", record["train_s"], step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def make_logger(name: str, run_dir: Path) -> TensorBoardLogger | None:
    """The logger ``name`` (``none``: None); an unknown name is a :class:`ConfigError`."""
    if name not in LOGGERS:
        raise ConfigError(f"unknown logger {name!r}; expected one of {', '.join(LOGGERS)}")
    return TensorBoardLogger(run_dir) if name == "tensorboard" else None
