"""A FIFO queue of earlier batches' representations, used as extra negatives."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class MemoryBank(nn.Module):
    """Queue of the last ``size`` rows enqueued (MoCo, He et al., CVPR 2020, Sec. 3.2;
    CLRec, Zhou et al., KDD 2021, Sec. 4.2: previous batches' item representations as
    negatives, which debiases the in-batch softmax).

    Rows are stored detached (no gradient flows into the queue). ``negatives()``
    returns the filled part, oldest first, with the ids stored alongside.

    Args:
        size: capacity in rows (> 0).
        dim: row width.
    """

    def __init__(self, size: int, dim: int):
        super().__init__()
        if size < 1:
            raise ValueError(f"memory bank size must be >= 1, got {size}")
        self.size = int(size)
        self.register_buffer("bank", torch.zeros(size, dim))
        self.register_buffer("ids", torch.full((size,), -1, dtype=torch.long))
        self.register_buffer("ptr", torch.zeros((), dtype=torch.long))
        self.register_buffer("filled", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def enqueue(self, rows: Tensor, ids: Tensor | None = None) -> None:
        """Add ``rows`` ([n, dim]); the oldest rows are overwritten when full."""
        rows = rows.detach()[-self.size:]
        n = rows.size(0)
        ids = torch.full((n,), -1, dtype=torch.long, device=rows.device) if ids is None \
            else ids[-self.size:]
        slots = (self.ptr + torch.arange(n, device=rows.device)) % self.size
        self.bank[slots] = rows.to(self.bank.dtype)
        self.ids[slots] = ids
        self.ptr.copy_((self.ptr + n) % self.size)
        self.filled.copy_(torch.clamp(self.filled + n, max=self.size))

    def negatives(self) -> tuple[Tensor, Tensor]:
        """``([m, dim]`` rows, ``[m]`` ids) currently held, oldest first."""
        m = int(self.filled)
        order = (self.ptr - m + torch.arange(m, device=self.bank.device)) % self.size
        return self.bank[order], self.ids[order]


__all__ = ["MemoryBank"]
