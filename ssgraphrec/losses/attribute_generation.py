"""Attribute generation over categorical fields (GPT-GNN, Hu et al., KDD 2020)."""

from __future__ import annotations

import torch
from torch import Tensor


def attribute_generation_loss(logits: Tensor, rows: Tensor, values: Tensor, field: Tensor
                              ) -> Tensor:
    r"""Negative log-likelihood of a node's attribute values, softmax within each field.

    Hu et al., "GPT-GNN", KDD 2020, Sec. 3.3, Eq. 5 (the attribute-generation
    likelihood); a field with several values per node (genres) contributes one
    term per value. For a (node ``r``, value ``v``) pair of field ``f(v)``:
    :math:`-\log \frac{\exp z_{r v}}{\sum_{v' : f(v') = f(v)} \exp z_{r v'}}`,
    averaged over all pairs.

    Args:
        logits: ``[R, V]`` scores of every value for each generated node.
        rows: ``[P]`` row of ``logits`` of each positive pair.
        values: ``[P]`` the value (column) of each positive pair.
        field: ``[V]`` field index of every value.
    """
    if rows.numel() == 0:
        return logits.sum() * 0.0
    num_fields = int(field.max()) + 1
    in_field = field[None, :] == torch.arange(num_fields, device=field.device)[:, None]  # [F, V]
    masked = logits[:, None, :].masked_fill(~in_field[None], -float("inf"))  # [R, F, V]
    lse = torch.logsumexp(masked, -1)  # [R, F]
    return (lse[rows, field[values]] - logits[rows, values]).mean()
