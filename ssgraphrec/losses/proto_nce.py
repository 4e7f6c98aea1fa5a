"""InfoNCE against a fixed candidate set: prototypes, or all nodes of a layer."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def proto_nce(query: Tensor, prototypes: Tensor, target: Tensor, temperature: float = 0.1,
              reduction: str = "mean") -> Tensor:
    r"""InfoNCE of each query row against all ``prototypes``, its positive at ``target``.

    :math:`-\log \frac{\exp(s(\mathbf{q}, \mathbf{c}_{t(q)})/\tau)}
    {\sum_{j} \exp(s(\mathbf{q}, \mathbf{c}_j)/\tau)}` with cosine similarity
    ``s``, the sum running over every candidate (not over the batch, unlike
    :func:`ssgraphrec.losses.info_nce`).

    This is NCL's prototype-contrastive loss (Lin et al., "Improving Graph
    Collaborative Filtering with Neighborhood-enriched Contrastive Learning",
    WWW 2022, Sec. 3.3, :math:`\mathcal{L}_P^U`): the candidates are the k-means
    centroids and ``target`` each node's cluster. With the layer-0 embeddings
    of all users as candidates and ``target`` the users' own ids it is NCL's
    structure-contrastive loss (Sec. 3.2, :math:`\mathcal{L}_S^U`), whose
    negatives are all other users.

    Args:
        query: ``[B, d]`` embeddings.
        prototypes: ``[K, d]`` candidates.
        target: ``[B]`` index of each query's positive candidate.
        temperature: :math:`\tau > 0`.
        reduction: ``"mean"`` or ``"sum"`` over the queries (NCL's code sums).
    """
    q = F.normalize(query, dim=-1)
    c = F.normalize(prototypes, dim=-1)
    return F.cross_entropy(q @ c.t() / temperature, target, reduction=reduction)
