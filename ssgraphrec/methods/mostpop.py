"""Popularity baseline."""

from __future__ import annotations

import torch
from torch import Tensor
from torch_geometric.data import HeteroData

from ..data.schema import CONTAINS, INTERACTS, SESSION, task_of
from .base import Method, MethodConfig, register_method


def training_popularity(data: HeteroData, num_items: int) -> Tensor:
    """Training interactions per item.

    User-item data: the training pairs. Session data: the items of the
    training sessions, plus the labels of the training samples (a session
    sample's label is a click the model is trained on).
    """
    if task_of(data) == "ranking":
        items = data[INTERACTS].edge_index[1]
    else:
        session, item = data[CONTAINS].edge_index
        store = data[SESSION]
        items = item[store.train_mask[session]]
        labels = store.target[store.train_mask]
        items = torch.cat([items, labels[labels >= 0]])
    return torch.bincount(items, minlength=num_items).float()


@register_method("mostpop")
class MostPop(Method):
    """Ranks items by their number of training interactions, the same for every user.

    The check of any evaluation pipeline: a learned model must beat it. Runs on
    every task: user-item ranking, session samples and user sequences.
    """

    description = "popularity baseline: items ranked by training interactions"
    paper = "-"
    trainable = False
    tasks = ("ranking", "next_item", "sequential")

    def __init__(self, data: HeteroData, cfg: MethodConfig, **kwargs):
        super().__init__(data, cfg, **kwargs)
        self.register_buffer("popularity", training_popularity(data, self.num_items).view(-1, 1))

    def embeddings(self) -> tuple[Tensor, Tensor]:
        ones = torch.ones(self.num_users, 1, device=self.popularity.device)
        return ones, self.popularity

    def score(self, samples: Tensor, split: str) -> Tensor:
        """The same popularity scores for every session sample or sequence."""
        return self.popularity.view(1, -1).expand(samples.numel(), -1)
