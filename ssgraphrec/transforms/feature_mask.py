"""Feature masking of Yao et al. (CIKM 2021): random (RFM) and correlated (CFM) field masks.

Yao et al., "Self-supervised Learning for Large-scale Item Recommendations",
CIKM 2021, Sec. 4.1: an item's features are split into two complementary
sets; each augmented view keeps one set and replaces the other by default
embeddings. RFM draws the split at random; CFM grows the masked set from a
random seed feature by the mutual information between features,
computed once from the data, so that highly correlated features fall on the
same side and the SSL task cannot take the shortcut of predicting one from
the other.

Here a field is masked by dropping its (item, attr) edges; the tower then
uses the field's default embedding. Masks are drawn per item (each item its
own split). :meth:`FieldMask.pair` and :meth:`CorrelatedFieldMask.pair`
return the two complementary views the SSL loss contrasts; calling the
transform returns the first view alone (``T.Compose`` use).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import Tensor
from torch_geometric.data import HeteroData

from ..data.schema import ATTR, HAS_ATTR, ITEM
from ..errors import check_probability
from .base import register_augmentation
from .feature_base import (
    FeatureAugmentation,
    drop_masked_fields,
    field_indices,
    num_fields,
    random_field_masks,
    require_attributes,
)


def _masked_count(ratio: float, n_fields: int) -> int:
    """Fields masked in the first view: ``round(ratio * F)``, at least 1 and at most F - 1
    when F >= 2 (both views keep something)."""
    if n_fields < 2:
        return n_fields
    return min(max(int(round(ratio * n_fields)), 1), n_fields - 1)


class _ComplementaryFieldMask(FeatureAugmentation):
    """A field mask drawn per item by :meth:`masks`; :meth:`pair` gives the two
    complementary views (each field kept by exactly one of them)."""

    def masks(self, data: HeteroData) -> Tensor:
        """``[num_items, F]`` boolean: the fields the first view masks."""
        raise NotImplementedError

    def augment(self, data: HeteroData) -> None:
        drop_masked_fields(data, self.masks(data))

    def pair(self, data: HeteroData) -> tuple[HeteroData, HeteroData]:
        """Two views with complementary masks."""
        mask = self.masks(data)
        a, b = copy.copy(data), copy.copy(data)
        drop_masked_fields(a, mask)
        drop_masked_fields(b, ~mask)
        return a, b


@register_augmentation("field_mask")
class FieldMask(_ComplementaryFieldMask):
    """Mask attribute fields (functional name: ``field_mask``): RFM of Yao et al. 2021, Sec. 4.1.

    Args:
        fields: names of the fields to mask in every item (a fixed mask), or
            None for random feature masking: each item masks ``round(p * F)``
            of its ``F`` fields, drawn at random (``p = 0.5``: the paper's two
            halves).
        p: share of fields masked in the first view, in [0, 1).
        generator: seeded ``torch.Generator``.
    """

    def __init__(self, fields: Sequence[str] | None = None, p: float = 0.5,
                 generator: torch.Generator | None = None):
        self.fields = None if fields is None else tuple(fields)
        self.p = check_probability("field mask ratio p", p)
        self.generator = generator

    def masks(self, data: HeteroData) -> Tensor:
        """``[num_items, F]`` boolean: the fields the first view masks."""
        require_attributes(data, type(self).__name__)
        n_items, n_fields = int(data[ITEM].num_nodes), num_fields(data)
        device = data[HAS_ATTR].edge_index.device
        if self.fields is not None:
            idx = field_indices(data, self.fields, "field_mask")
            mask = torch.zeros(n_fields, dtype=torch.bool, device=device)
            mask[idx] = True
            return mask.expand(n_items, n_fields)
        return random_field_masks(n_items, n_fields, _masked_count(self.p, n_fields),
                                  self.generator, device)

    def __repr__(self) -> str:
        return f"FieldMask(fields={self.fields}, p={self.p})"


def field_mutual_information(data: HeteroData) -> Tensor:
    r"""``[F, F]`` mutual information between attribute fields over items (Yao et al. 2021, Sec. 4.1, CFM).

    :math:`MI(V_i, V_j) = \sum_{v_i, v_j} P(v_i, v_j) \log \frac{P(v_i, v_j)}{P(v_i) P(v_j)}`,
    with the joint distribution of field ``i``'s and field ``j``'s values
    counted over the items that have both (a multi-valued field contributes
    every pair of its values). Computed in one pass over all pairs of an
    item's attribute edges (no loop over items or fields).
    """
    require_attributes(data, "correlated_field_mask")
    n_fields = num_fields(data)
    edge = data[HAS_ATTR].edge_index
    item, attr = edge[0], edge[1]
    order = torch.argsort(item, stable=True)
    item, attr = item[order], attr[order]
    n_items = int(data[ITEM].num_nodes)
    deg = torch.bincount(item, minlength=n_items)
    start = torch.cumsum(deg, 0) - deg
    # Every ordered pair (e, e') of edges of the same item.
    reps = deg[item]
    left = torch.repeat_interleave(torch.arange(item.numel(), device=item.device), reps)
    offset = torch.arange(left.numel(), device=item.device) - torch.repeat_interleave(
        torch.cumsum(reps, 0) - reps, reps)
    right = start[item[left]] + offset
    a, b = attr[left], attr[right]
    field = data[ATTR].field
    fa, fb = field[a], field[b]
    n_attr = int(data[ATTR].num_nodes)
    key = (fa * n_fields + fb) * n_attr * n_attr + a * n_attr + b
    uniq, count = torch.unique(key, return_counts=True)
    pair = uniq // (n_attr * n_attr)
    a, b = (uniq % (n_attr * n_attr)) // n_attr, uniq % n_attr
    count = count.double()
    total = torch.zeros(n_fields * n_fields, dtype=torch.float64, device=count.device)
    total.index_add_(0, pair, count)
    p_joint = count / total[pair]
    # Marginals of each value within its field pair.
    marg_a = torch.zeros(n_fields * n_fields * n_attr, dtype=torch.float64, device=count.device)
    marg_a.index_add_(0, pair * n_attr + a, p_joint)
    marg_b = torch.zeros_like(marg_a).index_add_(0, pair * n_attr + b, p_joint)
    terms = p_joint * torch.log(p_joint / (marg_a[pair * n_attr + a] * marg_b[pair * n_attr + b]))
    mi = torch.zeros(n_fields * n_fields, dtype=torch.float64, device=count.device)
    mi.index_add_(0, pair, terms)
    return mi.view(n_fields, n_fields).float()


@register_augmentation("correlated_field_mask")
class CorrelatedFieldMask(_ComplementaryFieldMask):
    """Correlated feature masking (functional name: ``correlated_field_mask``): CFM of Yao et al. 2021.

    Sec. 4.1: pick a seed field at random, then mask it together with the
    fields of highest mutual information with it, ``round(p * F)`` fields in
    all (the paper's half). The mutual information is computed from the data
    on first use (:func:`field_mutual_information`) and kept.

    Args:
        p: share of fields masked in the first view, in [0, 1).
        mutual_information: a precomputed ``[F, F]`` matrix (default: from the data).
        generator: seeded ``torch.Generator``.
    """

    def __init__(self, p: float = 0.5, mutual_information: Tensor | None = None,
                 generator: torch.Generator | None = None):
        self.p = check_probability("field mask ratio p", p)
        self.mutual_information = mutual_information
        self.generator = generator

    def groups(self, data: HeteroData) -> Tensor:
        """``[F, F]`` boolean: row ``s`` is the masked set grown from seed field ``s``."""
        if self.mutual_information is None:
            self.mutual_information = field_mutual_information(data)
        mi = self.mutual_information.clone()
        n_fields = mi.size(0)
        mi.fill_diagonal_(float("inf"))  # the seed itself comes first
        k = _masked_count(self.p, n_fields)
        top = mi.topk(k, dim=1).indices
        groups = torch.zeros(n_fields, n_fields, dtype=torch.bool, device=mi.device)
        return groups.scatter_(1, top, True)

    def masks(self, data: HeteroData) -> Tensor:
        require_attributes(data, type(self).__name__)
        groups = self.groups(data)
        n_items, n_fields = int(data[ITEM].num_nodes), groups.size(0)
        device = data[HAS_ATTR].edge_index.device
        gen_device = self.generator.device if self.generator is not None else device
        seed = torch.randint(0, n_fields, (n_items,), generator=self.generator,
                             device=gen_device).to(device)
        return groups.to(device)[seed]

    def __repr__(self) -> str:
        return f"CorrelatedFieldMask(p={self.p})"


__all__ = ["CorrelatedFieldMask", "FieldMask", "field_mutual_information"]
