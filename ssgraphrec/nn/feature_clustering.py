"""Feature clustering: k-means prototypes of item (or user) embeddings as SSL targets.

Lin et al., "Improving Graph Collaborative Filtering with Neighborhood-enriched
Contrastive Learning" (NCL), WWW 2022, Sec. 3.3: once per epoch the
embeddings are clustered by k-means (the E-step) and each node is pulled to
its prototype, away from the other prototypes (the M-step,
:func:`ssgraphrec.losses.proto_nce`). The feature-clustering pretext task of
the SSL-for-recommendation tutorial and survey (Yu et al., TKDE 2023,
Sec. 4.1) is the same with feature-based embeddings (e.g. an item tower's
output). This module keeps the prototypes between re-clusterings; the
clustering itself is :func:`ssgraphrec.nn.kmeans`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import ConfigError
from ..losses import proto_nce
from .kmeans import kmeans


class FeatureClustering:
    """K-means prototypes of embeddings, refitted when the method asks (e.g. every epoch).

    Args:
        num_clusters: k (> 0); reduced to the number of rows when larger.
        num_iters: Lloyd iterations per fit.
        normalize: cluster the L2-normalised embeddings (cosine geometry, as the
            InfoNCE against the prototypes uses).
        backend: ``torch``, ``faiss`` or ``auto`` (see :func:`ssgraphrec.nn.kmeans`).
        generator: seeded generator of the initialisation.
    """

    def __init__(self, num_clusters: int, num_iters: int = 25, *, normalize: bool = True,
                 backend: str = "torch", generator: torch.Generator | None = None):
        if num_clusters < 1:
            raise ConfigError(f"num_clusters must be >= 1, got {num_clusters}")
        self.num_clusters, self.num_iters = int(num_clusters), int(num_iters)
        self.normalize, self.backend, self.generator = normalize, backend, generator
        self.centroids: Tensor | None = None
        self.assignment: Tensor | None = None

    @torch.no_grad()
    def fit(self, embeddings: Tensor) -> FeatureClustering:
        """Cluster ``[n, d]`` embeddings (detached) and keep centroids and assignment."""
        x = embeddings.detach()
        if self.normalize:
            x = F.normalize(x, dim=-1)
        res = kmeans(x, self.num_clusters, self.num_iters, generator=self.generator,
                     backend=self.backend)
        self.centroids, self.assignment = res.centroids, res.assignment
        return self

    def loss(self, rows: Tensor, query: Tensor, temperature: float = 0.1) -> Tensor:
        """Prototype InfoNCE of ``query`` (the current embeddings of nodes ``rows``)."""
        if self.centroids is None or self.assignment is None:
            raise RuntimeError("FeatureClustering.loss before fit(): cluster the embeddings first")
        return proto_nce(query, self.centroids, self.assignment[rows], temperature)


__all__ = ["FeatureClustering"]
