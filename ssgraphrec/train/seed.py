"""Seeding."""

from __future__ import annotations

import random

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and PyTorch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def deterministic_cpu_kernels() -> None:
    """PyTorch's deterministic kernels, for runs on the CPU.

    With more than one thread, PyTorch's CPU ``index_put_(..., accumulate=True)``, the
    backward pass of every gather ``x[idx]``, adds its rows with atomic additions from
    several threads, so a row that the index names twice sums in the order the threads
    happen to run: on a 2-vCPU machine two runs of one XSimGCL training with one seed
    drew apart by up to 9e-3 in their embeddings after three epochs, while one thread
    gave the same bits. PyTorch's deterministic mode adds serially, and was faster there
    too (0.41 against 1.17 ms for 6,000 rows of 64 into 17,317, two threads). Its filling
    of new tensors with NaN, a debugging aid that would cost a pass over every output,
    is turned off; ops without a deterministic kernel warn instead of failing. CUDA runs
    are left as they are (their deterministic mode needs cuBLAS settings of its own).
    The mode is the process's: it stays on for what the process does after the run
    (a CUDA run later in the same process would warn on its nondeterministic ops).
    """
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.utils.deterministic.fill_uninitialized_memory = False
