"""Top-K ranking metrics from a hit matrix, per user (vectorised).

Conventions (as in the LightGCN / SGL / SELFRec evaluation code):

* Recall@K = hits in the top K / number of relevant items;
* Precision@K = hits in the top K / K;
* NDCG@K = DCG / IDCG with gain 1 and discount ``1 / log2(rank + 1)``
  (rank from 1), IDCG over ``min(|relevant|, K)`` hits;
* Hit@K = 1 if any hit in the top K;
* MRR@K = 1 / rank of the first hit in the top K (0 if none).
"""

from __future__ import annotations

import torch
from torch import Tensor

METRICS = ("recall", "ndcg", "precision", "hit", "mrr")


def ranking_metrics(hits: Tensor, num_relevant: Tensor, ks: list[int] | tuple[int, ...]
                    ) -> dict[str, Tensor]:
    """Per-user metrics at every K.

    Args:
        hits: ``[B, K_max]`` boolean (or 0/1), whether the item ranked at each
            position is relevant; ``K_max >= max(ks)``.
        num_relevant: ``[B]`` number of relevant items per user (>= 1).
        ks: cut-offs.

    Returns:
        ``{"recall@K": [B], ...}`` for every metric in :data:`METRICS` and K.
    """
    hits = hits.float()
    k_max = hits.size(1)
    if max(ks) > k_max:
        raise ValueError(f"hit matrix has {k_max} columns, cut-off {max(ks)} asked for")
    positions = torch.arange(1, k_max + 1, device=hits.device, dtype=torch.float)
    discount = 1.0 / torch.log2(positions + 1.0)
    ideal = torch.cumsum(discount, 0)  # ideal[n-1] = IDCG with n relevant items
    n_rel = num_relevant.to(hits.device).float()
    first_hit = torch.where(hits.bool(), positions, torch.full_like(hits, float("inf"))).min(1).values
    out: dict[str, Tensor] = {}
    for k in ks:
        h = hits[:, :k]
        n_hits = h.sum(1)
        dcg = (h * discount[:k]).sum(1)
        idcg = ideal[(torch.clamp(n_rel, max=k) - 1).long()]
        out[f"recall@{k}"] = n_hits / n_rel
        out[f"ndcg@{k}"] = dcg / idcg
        out[f"precision@{k}"] = n_hits / k
        out[f"hit@{k}"] = (n_hits > 0).float()
        out[f"mrr@{k}"] = torch.where(first_hit <= k, 1.0 / first_hit, torch.zeros_like(first_hit))
    return out
