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

The blocked layout is a flat tensor of contiguous ``[N, b]`` blocks (:class:`ColumnBlocks`),
the last one narrower where ``b`` does not divide the width; a multi-layer propagation
(:func:`~ssgraphrec.sparse.kernels.propagate_mean`) stays in it from the first layer to
the last, so the layout changes twice per pass, not per product.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from functools import lru_cache
from pathlib import Path

import torch
from torch import Tensor

from ..environment import environment_variable
from ..errors import ConfigError
from .exactness import blocks_exact

#: Environment variable overriding the bytes of one column block
#: (:func:`block_budget`); ``0`` turns blocking off.
BLOCK_BYTES_ENV = "SSGRAPHREC_SPMM_BLOCK_BYTES"

#: Block budget where the last-level cache's size is unknown (10 MiB, about a third of
#: the benchmark machine's 32 MiB L3: there whole operands of 16.4 and 17.3 MiB took 2.2x
#: and 1.3x the time of their best blocks, ``benchmarks/results/spmm-blocks.json``).
DEFAULT_BLOCK_BYTES = 10 * 2**20

#: Narrowest block worth a call: each call re-reads the sparse matrix, and in a one-off
#: sweep on Gowalla (blocked products at widths 8 to 64, one thread) 8-column blocks
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
    the block written, the sparse matrix's stream and other processes) but at most
    :data:`DEFAULT_BLOCK_BYTES`, which is also the budget where the cache's size is
    unknown.

    The cap is for virtual machines: their sysfs reports the host's whole last-level
    cache, which every tenant shares (480 MiB on a 2-vCPU cloud machine), so a third of
    it would keep every operand whole and never measure a width. Past the budget the
    width is measured, whole included (:meth:`~ssgraphrec.sparse.Adjacency.block_width`),
    so a budget below the true cache costs a measurement (a few products, once per
    matrix), and the whole product stays one of the candidates."""
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
    return cache_budget()


def cache_budget() -> int:
    """The automatic :func:`block_budget`: a third of the last-level cache, at most
    :data:`DEFAULT_BLOCK_BYTES` (also the budget where the cache's size is unknown)."""
    cache = last_level_cache_bytes()
    return min(cache // 3, DEFAULT_BLOCK_BYTES) if cache else DEFAULT_BLOCK_BYTES


def block_bytes(value: int | None) -> AbstractContextManager[None]:
    """Run the code inside ``with`` at a block budget of ``value`` bytes (``0``: whole
    products; ``None``: the automatic budget), by setting :data:`BLOCK_BYTES_ENV`;
    restores it on exit."""
    return environment_variable(BLOCK_BYTES_ENV, None if value is None else str(int(value)))


def block_width(x: Tensor, budget: int | None = None) -> int:
    """Columns per block for a CPU product with ``x`` (``[N, d]``): ``d`` (no blocking)
    when ``x`` fits ``budget`` bytes, is not on the CPU, or blocking is off; else the
    widest divisor of ``d`` of at least :data:`MIN_BLOCK_COLUMNS` columns whose block
    fits, or the narrowest such divisor when none fits, among the divisors whose blocks
    give the whole product's bits on this machine
    (:func:`~ssgraphrec.sparse.exactness.blocks_exact`; ``d`` where none does)."""
    n, d = x.shape
    budget = block_budget() if budget is None else budget
    row_bytes = n * x.element_size()
    if x.device.type != "cpu" or budget <= 0 or row_bytes * d <= budget:
        return d
    divisors = [b for b in range(MIN_BLOCK_COLUMNS, d)
                if d % b == 0 and blocks_exact(d, split_widths(d, b), x.device)]
    if not divisors:
        return d
    fitting = [b for b in divisors if row_bytes * b <= budget]
    return max(fitting) if fitting else min(divisors)


def candidate_widths(d: int) -> list[int]:
    """The widths a product with ``d`` columns may take, ascending: each divisor of ``d``
    and each multiple of 16 of at least :data:`MIN_BLOCK_COLUMNS` columns below ``d``
    (the last block narrower where it does not divide ``d``, :func:`split_widths`), and
    ``d`` itself (whole).

    Which of them give the whole product's bits depends on the machine's kernel
    (:func:`exact_candidate_widths`).

    A multiple of 16 starts every block's rows on a 64-byte cache line (float32), so a
    gathered row touches no line it does not fill. One product of Diginetica's DHCN
    operator (100 columns, one thread, medians of 9) took 74.3 ms in blocks of 16 (six,
    and one of 4) and 80.3 ms in blocks of 32 (three, and one of 4), against 96.8 ms in
    blocks of 20 and 104.5 ms in blocks of 25, whose rows of 80 and 100 bytes straddle
    lines (``benchmarks/results/spmm-widths-aligned.json``)."""
    below = {b for b in range(MIN_BLOCK_COLUMNS, d) if d % b == 0 or b % 16 == 0}
    return sorted(below) + [d]


def exact_candidate_widths(d: int, device: torch.device | str = "cpu") -> list[int]:
    """:func:`candidate_widths` of ``d`` whose blocks give the whole product's bits on this
    machine (:func:`~ssgraphrec.sparse.exactness.blocks_exact`), the whole included."""
    return [w for w in candidate_widths(d) if blocks_exact(d, split_widths(d, w), device)]


def split_widths(d: int, width: int) -> tuple[int, ...]:
    """The block widths of ``d`` columns in blocks of ``width``: the last one narrower
    where ``width`` does not divide ``d`` (``(32, 32, 32, 4)`` for 100 in 32s)."""
    if width < 1:
        raise ValueError(f"split_widths: blocks need at least one column, got {width}")
    full, rest = divmod(d, width)
    return (width,) * full + ((rest,) if rest else ())


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


def time_blocked_pass(kernel, x: Tensor, width: int, products: int = 1) -> float:
    """Seconds of a pass of ``products`` chained products ``h <- kernel @ h`` of a square
    PyTorch CSR ``kernel``, from ``x`` in blocks of ``width`` columns (``x``'s own width:
    whole), the conversion into blocks and back counted, as a pass of
    :func:`~ssgraphrec.sparse.propagate_mean` makes it once each way.

    Counting the conversion matters where the blocks gain little per product: on a
    2-vCPU machine with 2 MiB of L2 per core, Gowalla's adjacency (64 columns) measured
    faster per product in blocks of 32, yet a LightGCN step took 1.05x as long in them as
    whole (``benchmarks/results/spmm-blocks-product-measured-vm-2threads.json``); measured
    as passes, it stays whole there, and a DHCN step on Diginetica takes 0.945x in blocks
    of 64 and 36 (``benchmarks/results/spmm-blocks-measured-vm-2threads.json``)."""
    whole = width >= x.size(1)
    layout = ColumnBlocks(x.size(1), width)       # whole: one block, x's own rows
    with torch.no_grad():
        x = x.contiguous()
        start = time.perf_counter()
        h = x.view(-1) if whole else layout.split(x)
        for _ in range(products):
            h = layout.product(kernel, h)
        if not whole:
            layout.join(h)
        return time.perf_counter() - start


class ColumnBlocks:
    """The column blocks of ``[N, d]`` operands: blocks of ``width`` columns, the last one
    narrower where ``width`` does not divide ``d`` (:func:`split_widths`), each block
    ``[N, w]`` contiguous and the blocks one after another in a flat tensor of ``N * d``
    entries. Elementwise arithmetic on two operands in the same blocks is arithmetic on
    their flat tensors; the number of rows is the flat size over ``d``.

    With equal widths the flat tensor holds what a ``[d / width, N, width]`` contiguous
    tensor holds; a narrower last block lets a width that does not divide ``d`` align
    its rows to cache lines (:func:`candidate_widths`).
    """

    def __init__(self, columns: int, width: int):
        self.columns = columns
        self.widths = split_widths(columns, min(width, columns))
        self.starts = tuple(sum(self.widths[:j]) for j in range(len(self.widths)))

    def __repr__(self) -> str:
        return f"ColumnBlocks(columns={self.columns}, widths={self.widths})"

    def rows(self, blocks: Tensor) -> int:
        """The rows of the operand held in the flat tensor ``blocks``."""
        return blocks.numel() // self.columns

    def views(self, blocks: Tensor) -> list[Tensor]:
        """Each block of the flat tensor ``blocks`` as an ``[N, w]`` view."""
        n = self.rows(blocks)
        return [blocks[n * c:n * (c + w)].view(n, w)
                for c, w in zip(self.starts, self.widths, strict=True)]

    def split(self, x: Tensor, rows: Tensor | None = None) -> Tensor:
        """``[N, d]`` → the flat tensor of its blocks (a new tensor); with ``rows`` (a
        permutation), row ``k`` of the blocks is row ``rows[k]`` of ``x``, gathered in the
        same copy (:class:`~ssgraphrec.sparse.reorder.Reordering`)."""
        if x.dim() != 2 or x.size(1) != self.columns:
            raise ValueError(f"ColumnBlocks: expected [N, {self.columns}], got {tuple(x.shape)}")
        out = x.new_empty(x.numel())
        for view, c, w in zip(self.views(out), self.starts, self.widths, strict=True):
            if rows is None:
                view.copy_(x[:, c:c + w])
            else:
                torch.index_select(x[:, c:c + w], 0, rows, out=view)
        return out

    def join(self, blocks: Tensor, rows: Tensor | None = None) -> Tensor:
        """The inverse of :meth:`split`: the flat tensor → ``[N, d]`` (a new tensor); with
        ``rows`` (a permutation), row ``j`` of the result is row ``rows[j]`` of the blocks.

        A gather, not a scatter: under PyTorch's deterministic algorithms (on for CPU
        runs, :func:`~ssgraphrec.train.seed.deterministic_cpu_kernels`) ``index_copy_``
        takes a slower path, 5.9 against 1.6 ms for Diginetica's ``[43097, 100]`` on two
        threads."""
        out = blocks.new_empty(self.rows(blocks), self.columns)
        for view, c, w in zip(self.views(blocks), self.starts, self.widths, strict=True):
            if rows is None:
                out[:, c:c + w].copy_(view)
            else:
                torch.index_select(view, 0, rows, out=out[:, c:c + w])
        return out

    def select(self, blocks: Tensor, rows: Tensor) -> Tensor:
        """The rows ``rows`` of the operand, in these blocks."""
        out = blocks.new_empty(rows.numel() * self.columns)
        for view, into in zip(self.views(blocks), self.views(out), strict=True):
            torch.index_select(view, 0, rows, out=into)
        return out

    def add_at_rows(self, blocks: Tensor, rows: Tensor, values: Tensor) -> Tensor:
        """``blocks`` with ``values`` (the operand's rows ``rows``, in these blocks) added
        at the distinct ``rows``, in place; returns ``blocks``."""
        for view, plus in zip(self.views(blocks), self.views(values), strict=True):
            view.index_add_(0, rows, plus)
        return blocks

    def product(self, kernel, blocks: Tensor, add: Tensor | None = None,
                in_place: bool = False) -> Tensor:
        """``kernel @ block (+ add's block)`` for every block, into a new flat tensor of
        ``kernel``'s rows (into ``add`` itself with ``in_place``), one ``addmm`` per block
        (PyTorch CSR ``kernel``)."""
        out = add if in_place and add is not None else blocks.new_empty(
            kernel.size(0) * self.columns)
        adds = self.views(add) if add is not None else [None] * len(self.widths)
        for x, into, plus in zip(self.views(blocks), self.views(out), adds, strict=True):
            if plus is None:
                torch.addmm(into, kernel, x, beta=0, out=into)
            else:
                torch.addmm(plus, kernel, x, out=into)
        return out
