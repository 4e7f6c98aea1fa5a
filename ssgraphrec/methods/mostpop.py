"""Popularity baseline."""

from __future__ import annotations

import torch
from torch import Tensor
from torch_geometric.data import HeteroData

from ..data.schema import INTERACTS
from .base import Method, MethodConfig, register_method


@register_method("mostpop")
class MostPop(Method):
    """Ranks items by their number of training interactions, the same for every user.

    The check of any evaluation pipeline: a learned model must beat it.
    """

    description = "popularity baseline: items ranked by training interactions"
    paper = "-"
    trainable = False

    def __init__(self, data: HeteroData, cfg: MethodConfig, **kwargs):
        super().__init__(data, cfg, **kwargs)
        items = data[INTERACTS].edge_index[1]
        self.register_buffer(
            "popularity", torch.bincount(items, minlength=self.num_items).float().view(-1, 1))

    def embeddings(self) -> tuple[Tensor, Tensor]:
        ones = torch.ones(self.num_users, 1, device=self.popularity.device)
        return ones, self.popularity
