r"""Exact top-k of dot-product scores, skipping the items a norm bound rules out.

For a user :math:`u` and an item :math:`i`, :math:`u \cdot i \le \|u\|\,\|i\|`
(Cauchy-Schwarz). With the items in order of decreasing norm, a user's ``k``-th
best score ``t`` among the first items scored bounds the rest: an item ``j`` with
:math:`\|u\|\,\|i_j\| < t` cannot enter the top ``k``, and neither can any item
after it. :func:`pruned_topk` scores every user against a first slice of the
catalogue (the items of largest norm), reads off how far each user must go, and
scores the users that need more against the prefix they need, in groups of users
with similar prefixes.

The result equals ``torch.topk`` over every item's score, ties included:

* The bound covers rounding: a float32 dot product of length ``d`` differs from the
  exact one by at most :math:`\gamma_d \sum_l |u_l||i_l| \le \gamma_d \|u\|\|i\|` with
  :math:`\gamma_d = d\,2^{-24} / (1 - d\,2^{-24})`, whatever the order of the sums
  (Higham, *Accuracy and Stability of Numerical Algorithms*, 2nd ed., Sec. 3.1), so an
  item is skipped only when :math:`\|u\|\,\|i\|\,(1 + 2\gamma_d) < t`, norms in float64.
  A skipped item's score is then strictly below the ``k``-th: it can neither enter
  the top ``k`` nor tie with it.
* The scores are the same dot products, computed by the same matrix product over a
  slice of the (reordered) items instead of all of them. PyTorch's CPU product gives
  each entry to the bit whatever the slice (the tests compare values with
  ``torch.equal``, and ``benchmarks/evaluation.py`` checks identical metrics on real
  data); a library whose product rounded an entry differently by the shape of the
  block could move two items whose scores differ by an ulp.
* The top ``k + 1`` of the items scored are ranked; without a tie among them the
  top ``k`` and their order are fixed by the values, as ``torch.topk``'s. A row with
  a tie is ranked again over all items in their own order by ``torch.topk``, so that
  equal scores come out in its order.

Trained embeddings prune well because popular items have the largest norms and
users' best scores are high: after one LightGCN epoch a test user needs 0.24 % of
lastfm-80-20's catalogue at the median (0.44 % at the 90th percentile) and 0.34 % of
Gowalla's (1.8 %), and a full-ranking evaluation takes 0.037 s and 1.05 s instead of
0.13 s and 5.4 s (``python benchmarks/evaluation.py``,
``benchmarks/results/evaluation.json``). Random embeddings do not prune; a group whose
prefix passes half of the catalogue is scored over all items in one product, so
the worst case costs the first slice more than the plain path.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from .topk import topk_rows

#: The first slice of items every user is scored against: a 32nd of the catalogue,
#: at least 16 (k + 1) items.
FIRST_SHARE = 32
FIRST_PER_K = 16
#: Users scored together in the second pass, in order of the prefix they need.
GROUP = 64
#: A group whose prefix passes this share of the catalogue is scored over all items.
WHOLE_SHARE = 0.5
#: Below this many items per (k + 1) the plain path is used.
MIN_ITEMS_PER_K = 64


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


def _gamma(d: int, dtype: torch.dtype) -> float:
    unit = torch.finfo(dtype).eps / 2
    return d * unit / (1 - d * unit)


def pruned_topk(queries: Tensor, items: NormSortedItems, excluded: tuple[Tensor, Tensor],
                k: int, whole: Callable[[Tensor], tuple[Tensor, Tensor]]) -> tuple[Tensor, Tensor]:
    """``(values, indices)`` of the ``k`` best items of each query row, equal to
    ``torch.topk`` over all items' scores with the excluded ones at ``-inf``.

    Args:
        queries: ``[B, d]`` user rows.
        items: the catalogue in norm order.
        excluded: ``(rows, item ids)`` of the pairs to leave out (rows index ``queries``).
        k: how many items.
        whole: ``rows -> (values, indices)`` over every item in item order (the plain
            path), for rows with ties and for groups that would score most items anyway.
    """
    num_items, rows_b = items.num_items, queries.size(0)
    device = queries.device
    values = queries.new_empty(rows_b, k)
    indices = torch.empty(rows_b, k, dtype=torch.long, device=device)
    ex_rows, ex_pos = excluded[0], items.position[excluded[1]]
    every = torch.arange(rows_b, device=device)

    def rank(rows: Tensor, width: int) -> tuple[Tensor, Tensor]:
        """Top ``k + 1`` of ``rows`` over the first ``width`` items, excluded pairs
        masked; rows without a tie among them are written, the tied ones returned."""
        block = queries[rows] @ items.emb[:width].t()
        local = torch.full((rows_b,), -1, dtype=torch.long, device=device)
        local[rows] = torch.arange(rows.numel(), device=device)
        hit = (local[ex_rows] >= 0) & (ex_pos < width)
        block[local[ex_rows[hit]], ex_pos[hit]] = -float("inf")
        top_v, top_i = topk_rows(block, k + 1)
        tied = (top_v[:, 1:] == top_v[:, :-1]).any(1)
        ok = rows[~tied]
        values[ok], indices[ok] = top_v[~tied, :k], items.order[top_i[~tied, :k]]
        return rows[tied], top_v[:, k - 1]

    first = min(num_items, max(num_items // FIRST_SHARE, FIRST_PER_K * (k + 1)))
    to_whole, kth = rank(every, first)
    need = items.needed(torch.linalg.vector_norm(queries.double(), dim=1), kth)
    to_whole = [to_whole[need[to_whole] <= first]]          # tied: ranked again below
    rest = (need > first).nonzero().view(-1)
    rest = rest[torch.argsort(need[rest], stable=True)]       # similar prefixes together
    for start in range(0, rest.numel(), GROUP):
        group = rest[start:start + GROUP]
        width = int(need[group].max())
        if width > WHOLE_SHARE * num_items:
            to_whole.append(rest[start:])
            break
        to_whole.append(rank(group, width)[0])
    again = torch.cat(to_whole)
    if again.numel():
        values[again], indices[again] = whole(again)
    return values, indices
