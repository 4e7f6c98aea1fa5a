"""GPT-GNN's generation heads: the edge matcher and the attribute decoder."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


class Matcher(nn.Module):
    r"""Scores (query, candidate) pairs for edge generation.

    Hu et al., "GPT-GNN: Generative Pre-Training of Graph Neural Networks",
    KDD 2020, Sec. 3.3 (Eq. 6): the query node's representation goes through a
    linear map (with dropout), and the score is its cosine similarity with the
    candidate's representation divided by a temperature (the authors'
    ``Matcher``, temperature 0.1, dropout 0.2).
    """

    def __init__(self, hidden: int, temperature: float = 0.1, dropout: float = 0.2):
        super().__init__()
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.linear = nn.Linear(hidden, hidden)
        self.drop = nn.Dropout(dropout)
        self.temperature = temperature

    def query(self, x: Tensor) -> Tensor:
        """Normalised, mapped queries ``[B, hidden]``."""
        return F.normalize(self.drop(self.linear(x)), dim=-1)

    def forward(self, query: Tensor, candidates: Tensor) -> Tensor:
        """``[B, C]`` scores of every query against every candidate."""
        return self.query(query) @ F.normalize(candidates, dim=-1).t() / self.temperature

    def pair(self, query: Tensor, candidate: Tensor) -> Tensor:
        """``[B]`` scores of row-aligned pairs."""
        return (self.query(query) * F.normalize(candidate, dim=-1)).sum(-1) / self.temperature


class AttributeDecoder(nn.Module):
    """Logits over every value of a node type's categorical attributes.

    GPT-GNN's attribute generation (Sec. 3.3, Eq. 5) decodes a node's
    attributes from its attribute-generation representation; for categorical
    attributes (a value is a node of the attribute graph) the decoder is a
    linear classifier over the values, normalised per field by
    :func:`ssgraphrec.losses.attribute_generation.attribute_generation_loss`.
    """

    def __init__(self, hidden: int, num_values: int):
        super().__init__()
        self.linear = nn.Linear(hidden, num_values)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(x)
