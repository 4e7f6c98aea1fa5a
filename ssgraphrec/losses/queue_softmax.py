"""Softmax over the multiset of a batch's items and a queue of earlier batches' items (CLRec)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .cross_entropy import mean_cross_entropy


def queue_softmax(query: Tensor, items: Tensor, item_ids: Tensor, queued: Tensor,
                  queued_ids: Tensor, temperature: float = 0.1, *,
                  normalize: bool = True) -> Tensor:
    r"""Mean contrastive loss of (query, clicked item) rows against the batch's and the queue's items.

    Zhou et al., "Contrastive Learning for Debiased Candidate Generation in
    Large-Scale Recommender Systems", KDD 2021, Sec. 3-4: the negatives are
    the clicked items of the current and the queued earlier batches, *with
    their multiplicity*: an item clicked ``k`` times in the pool is ``k``
    negatives, so the negatives follow the click distribution, and that is
    what makes the loss (without log-Q correction) the inverse-propensity
    weighted objective of their Sec. 3. With :math:`k_j` the number of times
    item ``j`` occurs among the batch's and the queue's ids,

    .. math:: \ell_i = -\log \frac{k_{y_i} e^{s(q_i, x_{y_i})/\tau}}
              {\sum_{j} k_j e^{s(q_i, x_j)/\tau}}

    over the distinct items ``j`` of the pool: one column per item, its
    logit raised by :math:`\log k_j` (the same sum as one column per copy,
    without the ``[B, B + K]`` logits). Copies of the positive item count as
    the positive, not as negatives. An item of the batch is represented by
    its fresh encoding (the queue's copies are stale); an item only in the
    queue by its most recent queued encoding. The queue is not
    differentiated (its rows are constants).

    Args:
        query, items: ``[B, d]`` query and clicked-item representations.
        item_ids: ``[B]`` ids of the clicked items.
        queued, queued_ids: ``[K, d]`` queued item representations, oldest first
            (:meth:`ssgraphrec.losses.MemoryBank.negatives`), and their ids.
        temperature: :math:`\tau`.
        normalize: L2-normalise both sides (cosine similarity).
    """
    if normalize:
        query, items = F.normalize(query, dim=-1), F.normalize(items, dim=-1)
        queued = F.normalize(queued, dim=-1)
    device = item_ids.device
    uniq, target = torch.unique(item_ids, return_inverse=True)
    first = torch.full((uniq.numel(),), item_ids.numel(), device=device, dtype=torch.long)
    first = first.scatter_reduce(0, target, torch.arange(item_ids.numel(), device=device),
                                 reduce="amin")
    count = torch.bincount(target, minlength=uniq.numel()).to(query.dtype)
    queued_ids = queued_ids.to(device)
    in_batch = torch.isin(queued_ids, uniq)
    # Queued copies of a batch item add to its count; its column keeps the fresh encoding.
    at = torch.searchsorted(uniq, queued_ids[in_batch])
    count = count.index_add(0, at, torch.ones_like(at, dtype=count.dtype))
    # Items only in the queue: one column each, the most recent copy, counted.
    rest_ids = queued_ids[~in_batch]
    rest_rows = queued[~in_batch]
    q_uniq, q_inv = torch.unique(rest_ids, return_inverse=True)
    last = torch.full((q_uniq.numel(),), -1, device=device, dtype=torch.long)
    last = last.scatter_reduce(0, q_inv, torch.arange(rest_ids.numel(), device=device),
                               reduce="amax")
    q_count = torch.bincount(q_inv, minlength=q_uniq.numel()).to(query.dtype)
    candidates = torch.cat([items[first], rest_rows[last]])
    log_k = torch.cat([count, q_count]).log()
    logits = (query / temperature) @ candidates.t() + log_k.view(1, -1)
    return mean_cross_entropy(logits, target)


__all__ = ["queue_softmax"]
