r"""Exact top-k of dot-product scores, skipping the items a norm bound rules out.

For a user :math:`u` and an item :math:`i`, :math:`u \cdot i \le \|u\|\,\|i\|`
(Cauchy-Schwarz). With the items in order of decreasing norm, a user's ``k``-th
best score ``t`` among the first items scored bounds the rest: an item ``j`` with
:math:`\|u\|\,\|i_j\| < t` cannot enter the top ``k``, and neither can any item
after it. :func:`pruned_topk` scores every user against a first slice of the
catalogue (the items of largest norm) and keeps each user's ``k + 1`` best. A user
whose bound still reaches the ``k``-th best score so far is scored against the next
slice, which reaches ``GROWTH`` times as far down the catalogue (no further than the
farthest of these users needs), its best merged into the kept ones, and so on until
the bound rules out the rest. Each slice raises the ``k``-th score and so shortens the
prefix a user needs: reading the prefix off the first slice alone, as this module
first did, scored 31 % of Gowalla's catalogue for a trained LightGCN's users where
the slices score 9 %. A row that cannot change its kept scores in a slice (no score
above its ``k + 1``-th) is not ranked there. A row the bound cannot prune (a ``k``-th
score of 0 or less) and a row that must go on with a tie among its kept scores take
the plain path at once.

The result equals ``torch.topk`` over every item's score, ties included:

* The bound covers rounding: a float32 dot product of length ``d`` differs from the
  exact one by at most :math:`\gamma_d \sum_l |u_l||i_l| \le \gamma_d \|u\|\|i\|` with
  :math:`\gamma_d = d\,2^{-24} / (1 - d\,2^{-24})`, whatever the order of the sums
  (Higham, *Accuracy and Stability of Numerical Algorithms*, 2nd ed., Sec. 3.1), so an
  item is skipped only when :math:`\|u\|\,\|i\|\,(1 + 2\gamma_d) < t`, norms in float64.
  A skipped item's score is then strictly below the ``k``-th: it can neither enter
  the top ``k`` nor tie with it.
* The scores are the same dot products, computed by the same matrix product over a
  slice of the (reordered) items instead of all of them. PyTorch's CPU product (MKL)
  gives each entry to the bit whatever the slice, provided the block has a multiple of
  4 rows and at least 16 columns (``ROW_MULTIPLE``): :func:`row_stable_mm` pads a
  shorter block, and :class:`~ssgraphrec.eval.ranking.DotScores` takes its products the
  same way, so that a user's scores do not depend on the rows beside it. The tests
  compare values with ``torch.equal``, and ``benchmarks/evaluation.py`` checks identical
  metrics on real data; a library whose product rounded an entry differently by the
  shape of the block could move two items whose scores differ by an ulp.
* The top ``k + 1`` of the items scored are kept; an item below the ``k + 1``-th kept
  score cannot enter them later, since that score only rises. Without a tie among
  them the top ``k`` and their order are fixed by the values, as ``torch.topk``'s. A
  row with a tie is ranked again over all items in their own order by
  ``torch.topk``, so that equal scores come out in its order.

Trained embeddings prune well when popular items have the largest norms and users'
best scores are high, as LightGCN's do: after one epoch a test user needs 0.24 % of
lastfm-80-20's catalogue at the median and 0.34 % of Gowalla's, and after 24 epochs
3.8 % of Gowalla's; a full-ranking evaluation of Gowalla then takes 0.84 and 1.31 s
against 6.4 s without the bound (one thread; ``python benchmarks/evaluation.py``,
``benchmarks/results/evaluation.json`` and ``evaluation-trained.json``). Embeddings
trained with a uniformity term spread the items over many directions and the bound
prunes less: XSimGCL's trained users need 70 % of Gowalla's catalogue at the median,
and its evaluation takes 4.8 s against 5.9 s. Random embeddings do not prune at all.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from .topk import topk_rows

#: The first slice of items every user is scored against: a 32nd of the catalogue,
#: at least 16 (k + 1) items.
FIRST_SHARE = 32
FIRST_PER_K = 16
#: Each further slice reaches this many times as far down the catalogue as the one
#: before (a finer growth scores less past each user's need, in more products).
GROWTH = 3.0
#: Below this many items per (k + 1) the plain path is used.
MIN_ITEMS_PER_K = 64
#: Products are taken over a multiple of this many rows, and slices of at least
#: ``MIN_COLUMNS`` items. MKL's CPU product rounds an entry of a block of 1 to 3 rows
#: differently from the same entry in a larger block, and so it does for a few rows
#: past a multiple of 4 on several threads (5 to 11 rows on 2 and 8 threads, up to 27
#: on 16), and for 8 or 9 columns; blocks of a multiple of 4 rows and at least 16
#: columns gave every entry to the bit whatever the other rows and columns, on 1 to 16
#: threads (``tests/test_pruned_topk.py`` checks it on the machine that runs it).
ROW_MULTIPLE = 4
MIN_COLUMNS = 16


class NormSortedItems:
    """The items in order of decreasing norm: ``order`` (item ids), ``norms`` (float64),
    ``emb`` (their rows, contiguous), ``position`` (each item's place in ``order``)."""

    def __init__(self, item_emb: Tensor):
        norms = torch.linalg.vector_norm(item_emb.double(), dim=1)
        self.norms, self.order = torch.sort(norms, descending=True, stable=True)
        self.ascending = self.norms.flip(0)
        self.emb = item_emb[self.order].contiguous()
        self.position = torch.empty_like(self.order)
        self.position[self.order] = torch.arange(self.order.numel(), device=self.order.device)
        self.slack = 1.0 + 2.0 * _gamma(item_emb.size(1), item_emb.dtype)
        self.finite = bool(torch.isfinite(item_emb).all())

    @property
    def num_items(self) -> int:
        return int(self.order.numel())

    def needed(self, query_norms: Tensor, kth: Tensor) -> Tensor:
        """How many items of largest norm each user must score: those whose bound
        :math:`\\|u\\|\\,\\|i\\|\\,(1 + 2\\gamma_d)` reaches its ``k``-th score so far."""
        kth = kth.double()
        bound_per_norm = query_norms * self.slack
        positive = (kth > 0) & (bound_per_norm > 0)
        threshold = torch.where(positive, kth / bound_per_norm.clamp_min(1e-300),
                                torch.zeros_like(kth)) * (1 - 1e-12)
        below = torch.searchsorted(self.ascending, threshold, side="left")
        count = self.num_items - below
        return torch.where(positive, count, torch.full_like(count, self.num_items))


def row_stable_mm(queries: Tensor, items: Tensor, out: Tensor | None = None) -> Tensor:
    """``queries @ items.t()``, each entry the same whatever the block's other rows: a
    block of rows not a multiple of ``ROW_MULTIPLE`` is padded with copies of its first
    row, and the padding's rows are dropped from the result. ``out``, if given, must hold
    the padded rows (:func:`padded_rows`)."""
    rows = queries.size(0)
    padded = padded_rows(rows)
    if padded != rows:
        queries = torch.cat([queries, queries[:1].expand(padded - rows, -1)])
    if out is None:
        return (queries @ items.t())[:rows]
    return torch.mm(queries, items.t(), out=out[:padded])[:rows]


def padded_rows(rows: int) -> int:
    """``rows`` rounded up to a multiple of ``ROW_MULTIPLE``."""
    return -(-rows // ROW_MULTIPLE) * ROW_MULTIPLE


def _gamma(d: int, dtype: torch.dtype) -> float:
    unit = torch.finfo(dtype).eps / 2
    return d * unit / (1 - d * unit)


def pruned_topk(queries: Tensor, items: NormSortedItems, excluded: tuple[Tensor, Tensor],
                k: int, whole: Callable[[Tensor], tuple[Tensor, Tensor]]) -> tuple[Tensor, Tensor]:
    """``(values, indices)`` of the ``k`` best items of each query row, equal to
    ``torch.topk`` over all items' scores with the excluded ones at ``-inf``.

    Every row is scored against a first slice of the norm-sorted catalogue; the rows
    whose bound still reaches their ``k``-th best score so far are scored against the
    next slice, ``GROWTH`` times as far (no further than the farthest of them needs),
    and so on, each slice's top ``k + 1`` merged into the kept ones (see the module
    docstring).

    Args:
        queries: ``[B, d]`` user rows.
        items: the catalogue in norm order.
        excluded: ``(rows, item ids)`` of the pairs to leave out (rows index ``queries``).
        k: how many items.
        whole: ``rows -> (values, indices)`` over every item in item order (the plain
            path), for the rows with a tie among their ``k + 1`` best scores and those
            the bound cannot prune (see the loop).
    """
    num_items, rows_b = items.num_items, queries.size(0)
    device, keep = queries.device, k + 1
    best_values = queries.new_full((rows_b, keep), -float("inf"))
    best_positions = torch.zeros(rows_b, keep, dtype=torch.long, device=device)
    ex_pos, by_position = torch.sort(items.position[excluded[1]], stable=True)
    ex_rows = excluded[0][by_position]
    query_norms = torch.linalg.vector_norm(queries.double(), dim=1)
    local = torch.full((rows_b,), -1, dtype=torch.long, device=device)

    def merge_slice(rows: Tensor, start: int, end: int) -> Tensor:
        """Score ``rows`` against the items at ``start:end`` (excluded pairs at ``-inf``),
        merge each row's best into its kept ``k + 1``; the rows' ``k``-th kept scores."""
        block = row_stable_mm(queries[rows], items.emb[start:end])
        window = torch.searchsorted(ex_pos, torch.tensor([start, end], device=device))
        ex_r, positions = (t[int(window[0]):int(window[1])] for t in (ex_rows, ex_pos))
        local[rows] = torch.arange(rows.numel(), device=device)
        hit = local[ex_r] >= 0
        block[local[ex_r[hit]], positions[hit] - start] = -float("inf")
        local[rows] = -1
        # Only a row with a score above its (k + 1)-th kept one can change what it keeps;
        # the others are left out when they are many (else copying the rest costs more).
        better = (block.amax(1) > best_values[rows, k]).nonzero().view(-1)
        changed = rows
        if better.numel() <= rows.numel() // 2:
            changed, block = rows[better], block[better]
        if changed.numel():
            slice_values, slice_columns = topk_rows(block, min(keep, end - start))
            merged_values = torch.cat([best_values[changed], slice_values], 1)
            merged_positions = torch.cat([best_positions[changed], slice_columns + start], 1)
            values, order = torch.topk(merged_values, keep, dim=1)
            best_values[changed] = values
            best_positions[changed] = merged_positions.gather(1, order)
        return best_values[rows, k - 1]

    active = torch.arange(rows_b, device=device)
    plain = [active[:0]]
    start, end = 0, min(num_items, max(num_items // FIRST_SHARE, FIRST_PER_K * keep))
    while True:
        kth = merge_slice(active, start, end)
        if end == num_items:
            break
        need = items.needed(query_norms[active], kth)
        go_on = need > end
        # The plain path ranks at once a row whose bound rules out no item (its k-th score
        # 0 or less, or below every bound) and a row that must go on with a tie among its
        # kept scores, which it would likely be ranked again for (items of equal scores).
        kept = best_values[active]
        to_plain = go_on & ((need >= num_items) | (kept[:, 1:] == kept[:, :-1]).any(1))
        plain.append(active[to_plain])
        go_on &= ~to_plain
        active, need = active[go_on], need[go_on]
        if not active.numel():
            break
        # GROWTH times as far, and no further than the farthest prefix still needed
        start, end = end, max(min(math.ceil(end * GROWTH), int(need.max())), end + MIN_COLUMNS)
        if end > num_items - MIN_COLUMNS:
            end = num_items
    # Without a tie among the k + 1 best, the top k and their order are fixed by the values.
    tied = (best_values[:, 1:] == best_values[:, :-1]).any(1)
    tied[torch.cat(plain)] = False
    again = torch.cat([tied.nonzero().view(-1), *plain])
    values, indices = best_values[:, :k].contiguous(), items.order[best_positions[:, :k]]
    if again.numel():
        values[again], indices[again] = whole(again)
    return values, indices
