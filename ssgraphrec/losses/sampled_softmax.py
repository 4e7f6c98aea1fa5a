"""Batch softmax with log-Q correction (in-batch negatives of a two-tower model)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .cross_entropy import mean_cross_entropy


def sampled_softmax(query: Tensor, items: Tensor, temperature: float = 0.1, *,
                    log_q: Tensor | None = None, item_ids: Tensor | None = None,
                    extra_items: Tensor | None = None, extra_log_q: Tensor | None = None,
                    extra_ids: Tensor | None = None, normalize: bool = True,
                    gather: bool = True) -> Tensor:
    r"""Mean batch-softmax loss of matching (query, item) rows, other items of the batch as negatives.

    Yi et al., "Sampling-Bias-Corrected Neural Modeling for Large Corpus Item
    Recommendations", RecSys 2019, Sec. 3; Yao et al., CIKM 2021, Sec. 3 (the
    main task): with :math:`s(q_i, x_j)` the (cosine) similarity,

    .. math:: \ell_i = -\log \frac{e^{s(q_i, x_i)/\tau - \log p_i}}
              {\sum_j e^{s(q_i, x_j)/\tau - \log p_j}}

    where :math:`p_j` is the probability that item ``j`` is in a batch
    (:func:`log_q_of_items`): popular items, which appear as in-batch
    negatives more often, are corrected for that. ``log_q=None`` gives the
    plain in-batch softmax.

    Args:
        query, items: ``[B, d]`` query and positive-item representations.
        temperature: :math:`\tau`.
        log_q: ``[B]`` log sampling probability of each batch item.
        item_ids: ``[B]`` item ids; another row holding the same item as row
            ``i``'s positive is not a negative of row ``i`` (each distinct item is
            one column, the positive of all its rows).
        extra_items: ``[K, d]`` further negatives (a queue of earlier batches).
        extra_log_q, extra_ids: their log-Q (default 0) and ids; a queued item that
            is also in the batch is left out (the batch holds its fresh representation).
        normalize: L2-normalise both sides (cosine similarity, as the paper).
        gather: when ``torch.distributed`` runs several ranks, the items of every rank's
            batch (with their gradients, ids and log-Q) are the candidates of every
            query, as if the global batch were on one process (the default; nothing
            changes on one process). A queue (``extra_items``) stays the rank's own.
    """
    from ..distributed import all_gather_rows, current

    if normalize:
        query, items = F.normalize(query, dim=-1), F.normalize(items, dim=-1)
    ctx = current()
    offset = 0
    if gather and ctx.distributed:
        from .contrastive import _gather_rows

        items, offset = _gather_rows(items)
        item_ids = None if item_ids is None else all_gather_rows(item_ids, ctx)
        log_q = None if log_q is None else all_gather_rows(log_q, ctx)
    target = torch.arange(query.size(0), device=query.device) + offset
    lq = log_q
    if item_ids is not None:
        # One column per distinct item: a repeated item is the positive of each of its rows and
        # a negative of none (the same as masking it out), and the logits shrink to [B, U].
        uniq, column = torch.unique(item_ids, return_inverse=True)
        first = torch.full((uniq.numel(),), item_ids.numel(), device=item_ids.device,
                           dtype=torch.long).scatter_reduce(
            0, column, torch.arange(item_ids.numel(), device=item_ids.device), reduce="amin")
        items = items[first]
        target = column[offset:offset + query.size(0)]
        lq = None if log_q is None else log_q[first]
    candidates = items
    if extra_items is not None:
        if normalize:
            extra_items = F.normalize(extra_items, dim=-1)
        extra_lq = extra_log_q if extra_log_q is not None else torch.zeros(
            extra_items.size(0), device=extra_items.device)
        if item_ids is not None and extra_ids is not None:
            fresh = ~torch.isin(extra_ids, item_ids)  # a batch item is already a column
            extra_items, extra_lq = extra_items[fresh], extra_lq[fresh]
        candidates = torch.cat([items, extra_items])
        if lq is not None:
            lq = torch.cat([lq, extra_lq])
    logits = (query / temperature) @ candidates.t()
    if lq is not None:
        logits = logits - lq.view(1, -1)
    return mean_cross_entropy(logits, target)


def log_q_of_items(counts: Tensor, batch_size: int | None = None) -> Tensor:
    r"""``log p_j`` of every item from its training click counts (an item never clicked
    gets the smallest count, 1, so that its log-Q is finite).

    Yi et al., RecSys 2019, Sec. 4: :math:`p_j` is the probability that item
    ``j`` appears in a training batch (their streaming estimate is one over
    the mean number of steps between two batches holding ``j``, which is 1
    for an item in every batch). With batches of ``batch_size`` clicks drawn
    from the training clicks, of which item ``j`` holds the share
    :math:`q_j`, that is :math:`p_j = 1 - (1 - q_j)^B`: about :math:`B q_j`
    for a rare item, and at most 1 for an item in (nearly) every batch.
    :func:`sampled_softmax` gives each distinct batch item one column, so this
    is the probability that matches its columns. ``batch_size=None`` gives the
    click share :math:`q_j` itself (the same correction up to a constant only
    while :math:`B q_j \ll 1` for every item).
    """
    c = counts.double().clamp(min=1)
    log_share = c.log() - c.sum().log()
    if batch_size is None:
        return log_share.float()
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    # log(1 - (1 - q)^B), computed without cancellation for small q.
    return torch.log(-torch.expm1(batch_size * torch.log1p(-log_share.exp()))).float()


__all__ = ["log_q_of_items", "sampled_softmax"]
