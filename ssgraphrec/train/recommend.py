"""Top-K recommendations for one user of a saved run, in raw ids."""

from __future__ import annotations

import torch

from ..data.schema import INTERACTS, ITEM, USER, task_of
from ..errors import SSGraphRecError
from .run import Run


@torch.no_grad()
def recommend_for_user(run: Run, raw_user: str, k: int = 20) -> list[tuple[str, float]]:
    """The ``k`` best items for ``raw_user`` that are not in its training or validation data."""
    task = task_of(run.data)
    if task != "ranking":
        raise SSGraphRecError(f"recommend works on user-item runs; this run holds {task} data, "
                              "whose test samples are ranked by 'ssgraphrec evaluate'")
    raw_users = run.data[USER].raw_id
    try:
        user = raw_users.index(str(raw_user))
    except ValueError:
        raise SSGraphRecError(f"user {raw_user!r} is not in the dataset of this run") from None
    n_items = run.data[ITEM].num_nodes
    if not 1 <= k <= n_items:
        raise SSGraphRecError(f"-k must be between 1 and the number of items ({n_items})")
    run.method.eval()
    device = run.data[INTERACTS].edge_index.device
    scores = run.method.ranking_scores()(torch.tensor([user], device=device))[0].clone()
    store = run.data[INTERACTS]
    # hidden_edge_index: what a cold-start simulation took from the graph (data/cold_simulation.py)
    hidden = [store.hidden_edge_index] if "hidden_edge_index" in store else []
    for edges in (store.edge_index, store.val_edge_index, *hidden):
        scores[edges[1, edges[0] == user]] = -float("inf")
    top = torch.topk(scores, k)
    raw_items = run.data[ITEM].raw_id
    return [(raw_items[i], float(s)) for i, s in zip(top.indices.tolist(), top.values.tolist(), strict=True)
            if s != -float("inf")]
