"""Exact row-wise top-k of a score block, faster than one ``torch.topk`` over every item.

Full-ranking evaluation spends half its time in ``torch.topk`` over ``[B, I]``
scores (docs/benchmarks.md). :func:`topk_rows` first narrows each row to a few
candidates and then ranks only those, with a result equal to
``torch.topk(scores, k, dim=1)``:

* The columns are split into ``c`` interleaved slices ``{g, g + n, g + 2n, ...}``
  (``n = I // c`` groups of ``c`` columns; the last ``I - n c`` columns are always
  candidates). Their element-wise maximum is one vectorised pass over the block.
* The ``k + 1`` largest items of a row lie in the ``k + 1`` groups of largest
  maximum: an item in any other group is beaten by those ``k + 1`` maxima.
  Only those groups' ``(k + 1) c`` columns are gathered and ranked.
* Without ties the top ``k`` and their order are fixed by the values alone, so
  they equal ``torch.topk``'s. A row whose ``k + 1`` best values contain a tie is
  ranked again by ``torch.topk`` over all its items, so that equal scores come out
  in ``torch.topk``'s order too (popularity scores tie often).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

#: The candidate path is used when the groups outnumber the ``k + 1`` kept ones
#: by this factor; below it a plain ``torch.topk`` is as fast.
MIN_GROUPS_PER_KEPT = 4
#: Smaller groups leave too many maxima to rank (measured slower at ``k`` = 100 on lastfm).
MIN_GROUP_SIZE = 4


def group_size(num_items: int, k: int) -> int:
    """Columns per group: about ``sqrt(I / (k + 1)) / 4``, which balances the ranking
    of the group maxima against the ranking of the candidates (measured on the
    lastfm and Gowalla catalogues, 17,632 and 40,981 items, ``k`` = 20), and at least
    ``MIN_GROUP_SIZE``. Narrow blocks, such as the slices of
    :func:`~ssgraphrec.eval.pruned.pruned_topk`, gain most from the groups:
    ``torch.topk`` of 21 over 400 to 2,000 columns takes about 10 us a row on the CPU,
    and groups of 4 to 8 columns cut that by a third to a half (203 rows, one thread)."""
    return max(MIN_GROUP_SIZE, round(math.sqrt(num_items / (k + 1)) / 4))


def topk_rows(scores: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """``(values, indices)``, each ``[B, k]``, equal to ``torch.topk(scores, k, dim=1)``.

    ``scores`` is a ``[B, I]`` block without NaN (``-inf`` is allowed, e.g. for
    masked items).
    """
    values, indices, _ = _topk_rows(scores, k)
    return values, indices


class BlockTopK:
    """:func:`topk_rows` over the score blocks of one evaluation, until a block ranks
    :attr:`tied_share_off` or more of its rows again for ties; then ``torch.topk`` for
    the blocks after it, since the candidates cost without saving. Both equal
    ``torch.topk``, so the switch changes the time only.

    A model that scores many items alike ties in most rows: on LastFM, 20 epochs of
    XSimGCL gave blocks of 475 users on which :func:`topk_rows` took 12.8 ms against
    8.2 ms for ``torch.topk`` (two threads, ``benchmarks/results/evaluation-lastfm-2threads-xeon.json``).
    """

    #: The share of a block's rows ranked again for ties that turns the candidates off.
    tied_share_off: float = 0.5

    def __init__(self) -> None:
        self.candidates = True

    def __call__(self, scores: Tensor, k: int) -> tuple[Tensor, Tensor]:
        if not self.candidates:
            top = torch.topk(scores, k, dim=1)
            return top.values, top.indices
        values, indices, tied = _topk_rows(scores, k)
        if scores.size(0) and tied >= self.tied_share_off * scores.size(0):
            self.candidates = False
        return values, indices


def _topk_rows(scores: Tensor, k: int) -> tuple[Tensor, Tensor, int]:
    """:func:`topk_rows` and the number of rows ranked again for ties."""
    rows, num_items = scores.shape
    c = group_size(num_items, k)
    n = num_items // c
    if n < MIN_GROUPS_PER_KEPT * (k + 1) or rows == 0:
        top = torch.topk(scores, k, dim=1)
        return top.values, top.indices, 0
    block = scores if scores.is_contiguous() else scores.contiguous()
    group_max = block[:, :n * c].view(rows, c, n).amax(1)                  # [B, n]
    groups = torch.topk(group_max, k + 1, dim=1, sorted=False).indices     # [B, k + 1]
    offsets = torch.arange(0, c * n, n, device=scores.device)
    columns = (groups[:, :, None] + offsets).view(rows, (k + 1) * c)
    if n * c < num_items:
        tail = torch.arange(n * c, num_items, device=scores.device)
        columns = torch.cat([columns, tail.expand(rows, -1)], 1)
    values, order = torch.topk(block.gather(1, columns), k + 1, dim=1)
    indices = columns.gather(1, order)
    tied = (values[:, 1:] == values[:, :-1]).any(1).nonzero().view(-1)
    values, indices = values[:, :k], indices[:, :k]
    if tied.numel():
        again = torch.topk(block[tied], k, dim=1)
        values[tied], indices[tied] = again.values, again.indices
    return values, indices, tied.numel()
