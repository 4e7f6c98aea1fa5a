"""Training beyond one process: torch.distributed set-up, sharding and gathering.

A run is distributed when it is launched by ``torchrun`` (or ``ssgraphrec train
--nproc N``, which launches it): the launcher sets ``RANK``, ``WORLD_SIZE``,
``MASTER_ADDR`` and ``MASTER_PORT``, and :func:`init_distributed` joins the process
group, with gloo on the CPU and NCCL on CUDA (docs/distributed.md). What each rank
does:

* it holds the whole graph and the whole model, and propagates in full;
* it draws the same global batches as the others (one seed), and trains on its
  contiguous share of each (:func:`shard`); ``DistributedDataParallel`` averages the
  gradients, so a step equals a one-process step on the global batch;
* it evaluates its contiguous share of the users (or samples), and the per-user
  metrics of every rank are gathered in order (:func:`all_gather_rows`), so the metrics
  are those of one process, to the bit;
* rank 0 alone writes the run directory, the checkpoints and the log.

On one process (no launcher) every function here is the identity.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor

from .errors import ConfigError

#: Seconds a rank waits for the others (rendezvous and every collective) before the job
#: ends with an error instead of hanging: ``SSGRAPHREC_DIST_TIMEOUT`` overrides it.
DEFAULT_TIMEOUT_S = 300


@dataclass(frozen=True)
class DistContext:
    """Where this process stands: its rank, the number of ranks, the backend."""

    rank: int = 0
    world_size: int = 1
    backend: str = ""

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


SINGLE = DistContext()


def launched() -> bool:
    """Whether a launcher (torchrun) started this process as one rank of several."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def timeout_s() -> int:
    return int(os.environ.get("SSGRAPHREC_DIST_TIMEOUT", DEFAULT_TIMEOUT_S))


def init_distributed(device: torch.device) -> DistContext:
    """Join the process group the launcher set up (gloo on the CPU, NCCL on CUDA), or
    return :data:`SINGLE` when not launched. A master that cannot be reached within the
    timeout is one :class:`ConfigError` naming the address."""
    if dist.is_available() and dist.is_initialized():
        return current()
    if not launched():
        return SINGLE
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    address = f"{os.environ.get('MASTER_ADDR', '?')}:{os.environ.get('MASTER_PORT', '?')}"
    try:
        dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s()))
    except (RuntimeError, ValueError) as exc:
        raise ConfigError(f"rank {os.environ.get('RANK')} could not join the process group at "
                          f"{address} ({backend}) within {timeout_s()} s: "
                          f"{str(exc).splitlines()[0]}") from None
    return current()


def current() -> DistContext:
    """The context of the process group this process belongs to (:data:`SINGLE` if none)."""
    if not (dist.is_available() and dist.is_initialized()):
        return SINGLE
    return DistContext(dist.get_rank(), dist.get_world_size(), dist.get_backend())


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def shard_bounds(n: int, ctx: DistContext) -> tuple[int, int]:
    """``[lo, hi)``: this rank's contiguous share of ``n`` rows (the first ``n % world``
    ranks get one more)."""
    base, extra = divmod(n, ctx.world_size)
    lo = ctx.rank * base + min(ctx.rank, extra)
    return lo, lo + base + (ctx.rank < extra)


def shard_owner(ids: Tensor, n: int, world_size: int) -> Tensor:
    """The rank whose :func:`shard_bounds` share of ``n`` rows holds each of ``ids``."""
    base, extra = divmod(n, world_size)
    big = base + 1   # the first ``extra`` ranks hold one row more
    cut = extra * big
    return torch.where(ids < cut, ids // big, extra + (ids - cut) // max(base, 1))


def shard(x, ctx: DistContext):
    """This rank's contiguous share of the rows of a tensor or a tuple of tensors
    (a BPR batch): the identity on one process."""
    if not ctx.distributed:
        return x
    if isinstance(x, Tensor):
        lo, hi = shard_bounds(x.size(0), ctx)
        return x[lo:hi]
    lo, hi = shard_bounds(x[0].size(0), ctx)
    return type(x)(*(t[lo:hi] for t in x))


def row_counts(x: Tensor, ctx: DistContext) -> list[int]:
    """The number of rows of every rank's ``x``, in rank order."""
    size = torch.tensor([x.size(0)], device=x.device)
    sizes = [torch.zeros_like(size) for _ in range(ctx.world_size)]
    dist.all_gather(sizes, size)
    return [int(s) for s in sizes]


def all_gather_rows(x: Tensor, ctx: DistContext, *, grad: bool = False) -> Tensor:
    """The rows of every rank's ``x``, concatenated in rank order (their numbers may
    differ: each is padded to the longest for the gather); ``x`` itself on one process.
    ``grad``: gradients flow back to each rank's own rows (contrastive negatives);
    otherwise no gradient (evaluation)."""
    if not ctx.distributed:
        return x
    counts = row_counts(x, ctx)
    padded = torch.cat([x, x.new_zeros((max(counts) - x.size(0), *x.shape[1:]))])
    if grad:
        from torch.distributed.nn.functional import all_gather

        parts = all_gather(padded.contiguous())
    else:
        parts = [torch.zeros_like(padded) for _ in range(ctx.world_size)]
        dist.all_gather(parts, padded)
    return torch.cat([p[:c] for p, c in zip(parts, counts, strict=True)])


def any_rank(flag: Tensor, ctx: DistContext) -> Tensor:
    """Element-wise OR of a boolean tensor over the ranks."""
    if not ctx.distributed:
        return flag
    out = flag.to(torch.int32)
    dist.all_reduce(out, op=dist.ReduceOp.MAX)
    return out.bool()


def broadcast_object(obj, ctx: DistContext):
    """Rank 0's ``obj`` on every rank (a run directory chosen by rank 0)."""
    if not ctx.distributed:
        return obj
    box = [obj if ctx.is_main else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier(ctx: DistContext) -> None:
    if ctx.distributed:
        dist.barrier()


def gather_object(obj, ctx: DistContext) -> list:
    """Every rank's ``obj`` in rank order (``[obj]`` on one process)."""
    if not ctx.distributed:
        return [obj]
    out: list = [None] * ctx.world_size
    dist.all_gather_object(out, obj)
    return out
