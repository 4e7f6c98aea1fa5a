"""Training: the trainer, runs, checkpoints, early stopping, seeding, devices."""

from .run import Run, build, load_run, train
from .trainer import Trainer

__all__ = ["Run", "Trainer", "build", "load_run", "train"]
