"""Column blocks of a dense operand, so that a CPU sparse product gathers from the cache.

A CSR product ``Y = A X`` reads, for every non-zero ``(i, j)``, the row ``X[j]``, in
the order the columns of ``A`` give: random rows of ``X``. While ``X`` and ``Y``
fit in the last-level cache those reads hit it; beyond, each is a trip to memory.
Splitting ``X`` column-wise into blocks ``X[:, c:c+b]``, each stored contiguously,
and multiplying block by block keeps the gathered block in the cache, and every
entry of ``Y`` is the same sum in the same order, so the product is bit-for-bit
unchanged. On the 2-core benchmark machine (32 MiB of L3), one product of
Diginetica's DHCN operator (43,097 items, 1.83 M non-zeros) with 100 columns took
100 ms whole and 45 to 56 ms in blocks of 25 or 50 columns; Gowalla's adjacency
(70,839 nodes) with 64 columns took 32.4 ms whole and 25.4 ms in blocks of 32
(``python benchmarks/spmm_blocks.py``, ``benchmarks/results/spmm-blocks.json``).

Which width serves a matrix best depends on it and on what else uses the cache: in
one study (``benchmarks/results/spmm-widths.json``, medians of 9) the DHCN operator
took 82.4 ms in blocks of 25 and 109.4 ms in blocks of 50, the widest that fits the
budget, while Gowalla's adjacency took 28.2 ms in blocks of 32, the widest, and 36.2 ms
in blocks of 16. So the width of a product past the budget is measured once per matrix
(:func:`fastest_width`, through :meth:`~ssgraphrec.sparse.Adjacency.block_width`):
every width gives the same product to the bit, so measuring changes the speed only.

The blocked layout is a ``[num_blocks, N, b]`` tensor (:func:`to_blocks`); a
multi-layer propagation (:func:`~ssgraphrec.sparse.kernels.propagate_mean`) stays in
it from the first layer to the last, so the layout changes twice per pass, not per
product.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

import torch
from torch import Tensor

from ..errors import ConfigError

#: Environment variable overriding the bytes of one column block
#: (:func:`block_budget`); ``0`` turns blocking off.
BLOCK_BYTES_ENV = "SSGRAPHREC_SPMM_BLOCK_BYTES"

#: Block budget where the last-level cache's size is unknown (10 MiB, about a third of
#: the benchmark machine's 32 MiB L3: there whole operands of 16.4 and 17.3 MiB took 2.2x
#: and 1.3x the time of their best blocks, ``benchmarks/results/spmm-blocks.json``).
DEFAULT_BLOCK_BYTES = 10 * 2**20

#: Narrowest block worth a call: each call re-reads the sparse matrix, and in a one-off
#: sweep on Gowalla (``blocked_product`` at widths 8 to 64, one thread) 8-column blocks
#: took 28.5 ms per product against 23.1 ms for 16-column ones.
MIN_BLOCK_COLUMNS = 16


#: Timings per candidate width when a width is measured (:func:`fastest_width`).
TUNING_ROUNDS = 5


@lru_cache(maxsize=1)
def last_level_cache_bytes() -> int | None:
    """The size of CPU 0's highest cache level from Linux's sysfs, else ``None``."""
    root = Path("/sys/devices/system/cpu/cpu0/cache")
    best: tuple[int, int] | None = None
    try:
        for index in root.glob("index*"):
            level = int((index / "level").read_text())
            text = (index / "size").read_text().strip().upper()
            scale = {"K": 2**10, "M": 2**20, "G": 2**30}.get(text[-1:], 1)
            size = int(text.rstrip("KMG")) * scale
            if best is None or level > best[0]:
                best = (level, size)
    except (OSError, ValueError):
        return None
    return best[1] if best else None


def budget_is_set() -> bool:
    """Whether ``$SSGRAPHREC_SPMM_BLOCK_BYTES`` fixes the budget (then widths follow
    :func:`block_width`'s rule, without measuring)."""
    return bool(os.environ.get(BLOCK_BYTES_ENV, "").strip())


def block_budget() -> int:
    """Bytes of one column block: ``$SSGRAPHREC_SPMM_BLOCK_BYTES`` if set (``0``: no
    blocking), else a third of the last-level cache (the gathered block shares it with
    the block written, the sparse matrix's stream and other processes), else
    :data:`DEFAULT_BLOCK_BYTES`."""
    text = os.environ.get(BLOCK_BYTES_ENV, "").strip()
    if text:
        try:
            value = int(text)
        except ValueError:
            raise ConfigError(f"${BLOCK_BYTES_ENV} must be a whole number of bytes (0: no "
                              f"column blocks), got {text!r}") from None
        if value < 0:
            raise ConfigError(f"${BLOCK_BYTES_ENV} must be >= 0 (0: no column blocks), "
                              f"got {value}")
        return value
    cache = last_level_cache_bytes()
    return cache // 3 if cache else DEFAULT_BLOCK_BYTES


@contextmanager
def block_bytes(value: int | None) -> Iterator[None]:
    """Run the code inside ``with`` at a block budget of ``value`` bytes (``0``: whole
    products; ``None``: the automatic budget), by setting :data:`BLOCK_BYTES_ENV`;
    restores it on exit."""
    saved = os.environ.get(BLOCK_BYTES_ENV)
    if value is None:
        os.environ.pop(BLOCK_BYTES_ENV, None)
    else:
        os.environ[BLOCK_BYTES_ENV] = str(int(value))
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(BLOCK_BYTES_ENV, None)
        else:
            os.environ[BLOCK_BYTES_ENV] = saved


def block_width(x: Tensor, budget: int | None = None) -> int:
    """Columns per block for a CPU product with ``x`` (``[N, d]``): ``d`` (no blocking)
    when ``x`` fits ``budget`` bytes, is not on the CPU, or blocking is off; else the
    widest divisor of ``d`` of at least :data:`MIN_BLOCK_COLUMNS` columns whose block
    fits, or the narrowest such divisor when none fits."""
    n, d = x.shape
    budget = block_budget() if budget is None else budget
    row_bytes = n * x.element_size()
    if x.device.type != "cpu" or budget <= 0 or row_bytes * d <= budget:
        return d
    divisors = [b for b in range(MIN_BLOCK_COLUMNS, d) if d % b == 0]
    if not divisors:
        return d
    fitting = [b for b in divisors if row_bytes * b <= budget]
    return max(fitting) if fitting else min(divisors)


def candidate_widths(d: int) -> list[int]:
    """The widths a product with ``d`` columns may take: each divisor of ``d`` of at
    least :data:`MIN_BLOCK_COLUMNS` columns, and ``d`` itself (whole)."""
    return [b for b in range(MIN_BLOCK_COLUMNS, d) if d % b == 0] + [d]


def fastest_width(time_product: Callable[[int], float], widths: Sequence[int],
                  rounds: int = TUNING_ROUNDS) -> int:
    """The width of ``widths`` whose median of ``rounds`` timings ``time_product(width)``
    (seconds) is least. The widths take turns within each round, so that a busy spell of
    the machine falls on all of them alike; ties go to the first width.

    The median, not the best time: a block near the edge of the cache runs fast while
    nothing else uses the cache and slow otherwise (Diginetica's blocks of 50 columns
    took 77 to 209 ms, those of 25 64 to 121 ms, over nine products each in
    ``benchmarks/results/spmm-widths.json``), and training runs at the typical speed."""
    if not widths:
        raise ValueError("fastest_width: no widths to measure")
    times: dict[int, list[float]] = {w: [] for w in widths}
    for _ in range(rounds):
        for w in widths:
            times[w].append(time_product(w))
    return min(widths, key=lambda w: statistics.median(times[w]))


def time_blocked_product(kernel, x: Tensor, width: int) -> float:
    """Seconds of one product of a PyTorch CSR ``kernel`` with ``x`` in blocks of
    ``width`` columns (``x``'s own width: whole), the conversion to blocks not counted."""
    with torch.no_grad():
        x_blocks = to_blocks(x, width)
        start = time.perf_counter()
        blocked_product(kernel, x_blocks)
        return time.perf_counter() - start


def to_blocks(x: Tensor, width: int) -> Tensor:
    """``[N, d]`` → ``[d / width, N, width]``, each block contiguous (a view when
    ``width == d``)."""
    n, d = x.shape
    if width >= d:
        return x.unsqueeze(0)
    if d % width:
        raise ValueError(f"to_blocks: {width} columns per block do not divide {d}")
    return x.reshape(n, d // width, width).transpose(0, 1).contiguous()


def from_blocks(blocks: Tensor) -> Tensor:
    """The inverse of :func:`to_blocks`: ``[nb, N, b]`` → ``[N, nb * b]`` (a view when
    ``nb == 1``)."""
    nb, n, b = blocks.shape
    if nb == 1:
        return blocks[0]
    return blocks.transpose(0, 1).reshape(n, nb * b)


def blocked_product(kernel, x_blocks: Tensor, add: Tensor | None = None) -> Tensor:
    """``kernel @ block (+ add's block)`` for every block of ``x_blocks`` (``[nb, N, b]``),
    into a new ``[nb, N', b]`` tensor, one ``addmm`` per block (PyTorch CSR ``kernel``)."""
    nb, _, b = x_blocks.shape
    out = x_blocks.new_empty(nb, kernel.size(0), b)
    for j in range(nb):
        if add is None:
            torch.addmm(out[j], kernel, x_blocks[j], beta=0, out=out[j])
        else:
            torch.addmm(add[j], kernel, x_blocks[j], out=out[j])
    return out
