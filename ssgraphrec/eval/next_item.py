"""Next-item evaluation: one held-out item per session sample or user sequence.

Two tasks share it (DESIGN.md, "Evaluation"):

* ``next_item`` (session-based, DHCN): every validation / test sample is a
  session prefix whose label is the next item (``data['session'].target``).
* ``sequential`` (CL4SRec, SASRec): every user has one sequence; the held-out
  item is ``val_target`` (input: the training sequence) or ``test_target``
  (input: the training sequence followed by the validation item).

The score function ranks **all items**; the target's rank is one plus the
number of items that score strictly higher (ties in the target's favour, as
``torch.topk`` usually resolves them for the published code). From the rank:

* HR@K = 1 if rank <= K. This is the "P@K" of the session-based papers (SR-GNN,
  DHCN): with one relevant item per sample, their precision is the hit rate.
* MRR@K = 1 / rank if rank <= K, else 0.
* NDCG@K = 1 / log2(rank + 1) if rank <= K, else 0 (one relevant item, IDCG 1).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from ..data.schema import CONTAINS, SESSION
from ..distributed import SINGLE, DistContext, shard_bounds
from ..errors import SSGraphRecError
from ..sparse import segment_pointer
from .ranking import batch_means, check_cutoffs, check_finite_scores, gather_rows

#: ``(samples [B], split) -> scores [B, num_items]``.
SampleScoreFn = Callable[[Tensor, str], Tensor]

NEXT_ITEM_METRICS = ("hit", "ndcg", "mrr")


def eval_samples(data, split: str) -> tuple[Tensor, Tensor]:
    """``(sample ids, target items)`` of the ``val`` or ``test`` split.

    Session samples carry their label in ``target``; user sequences in
    ``val_target`` / ``test_target``.
    """
    if split not in ("val", "test"):
        raise ValueError(f"split must be 'val' or 'test', got {split!r}")
    store = data[SESSION]
    mask = store[f"{split}_mask"]
    key = f"{split}_target" if f"{split}_target" in store else "target"
    samples = mask.nonzero().view(-1)
    return samples, store[key][samples]


def history_pairs(data, samples: Tensor, split: str) -> tuple[Tensor, Tensor]:
    """``(row, item)`` of the items in each sample's input, for ``--mask-history``.

    The input of a sample is its session; for a user sequence at test time
    the validation item is part of the input too.
    """
    incidences = data[CONTAINS].edge_index
    ptr = segment_pointer(incidences[0], int(data[SESSION].num_nodes))
    rows, items = gather_rows(incidences, ptr, samples)
    store = data[SESSION]
    if split == "test" and "val_target" in store:
        val = store.val_target[samples]
        has = val >= 0
        rows = torch.cat([rows, has.nonzero().view(-1)])
        items = torch.cat([items, val[has]])
    return rows, items


def rank_metrics(rank: Tensor, ks: Sequence[int]) -> dict[str, Tensor]:
    """Per-sample HR, NDCG and MRR at every K from 1-based ranks."""
    rank = rank.float()
    out: dict[str, Tensor] = {}
    for k in ks:
        inside = rank <= k
        zero = torch.zeros_like(rank)
        out[f"hit@{k}"] = inside.float()
        out[f"ndcg@{k}"] = torch.where(inside, 1.0 / torch.log2(rank + 1.0), zero)
        out[f"mrr@{k}"] = torch.where(inside, 1.0 / rank, zero)
    return out


@torch.no_grad()
def evaluate_next_item(score: SampleScoreFn, data, split: str, num_items: int,
                       ks: Sequence[int] = (10, 20), batch_size: int = 1024,
                       mask_history: bool = False, ctx: DistContext = SINGLE) -> dict[str, float]:
    """Mean HR@K, NDCG@K and MRR@K over the samples of ``split``, ranking all items.

    Args:
        score: ``(samples, split) -> [B, num_items]`` scores of every item.
        data: session HeteroData.
        split: ``val`` or ``test``.
        ks: cut-offs.
        batch_size: samples per batch.
        mask_history: set the scores of the items already in a sample's input
            to ``-inf`` (never the target itself); off by default, as in the
            S3-Rec / CL4SRec protocol where a user may buy an item again.
        ctx: under ``torch.distributed``, each rank scores a contiguous share of the
            batches and the per-sample metrics are gathered (the one-process result).

    Returns:
        The mean of every metric, ``samples_evaluated`` and ``history_masked``.
    """
    ks = check_cutoffs(ks, num_items)
    samples_all, targets_all = eval_samples(data, split)
    if samples_all.numel() == 0:
        raise SSGraphRecError(f"the {split} split is empty: nothing to evaluate")
    if bool((targets_all < 0).any()) or bool((targets_all >= num_items).any()):
        raise SSGraphRecError(f"the {split} split has target items outside 0..{num_items - 1}")
    n = samples_all.numel()
    first, last = shard_bounds(-(-n // batch_size), ctx)   # whole batches per rank
    parts: dict[str, list[Tensor]] = {}
    for start in range(first * batch_size, min(last * batch_size, n), batch_size):
        samples = samples_all[start:start + batch_size]
        targets = targets_all[start:start + batch_size]
        scores = check_finite_scores(score(samples, split).float(), split)
        if scores._base is not None:
            scores = scores.clone()
        if mask_history:
            rows, items = history_pairs(data, samples, split)
            keep = items != targets[rows]
            scores[rows[keep], items[keep]] = -float("inf")
        target_score = scores.gather(1, targets.view(-1, 1))
        rank = (scores > target_score).sum(1) + 1
        for name, values in rank_metrics(rank, ks).items():
            parts.setdefault(name, []).append(values)
    names = list(rank_metrics(targets_all[:0], ks))   # the same on every rank
    out = batch_means(parts, names, n, batch_size, ctx, samples_all.device)
    out["samples_evaluated"] = n
    out["history_masked"] = bool(mask_history)
    return out
