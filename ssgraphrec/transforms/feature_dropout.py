"""Element-level feature dropout and categorical dropout of multi-valued fields.

* :class:`FeatureDropout` drops each feature element independently: each
  (item, attr) edge and each entry of ``data['item'].x`` with probability
  ``p``. MicRec's feature-level item CL (Xie et al., "Multi-granularity
  Item-based Contrastive Recommendation", 2022, Sec. 3) builds two
  views of an item this way, with mask ratio 0.5.
* :class:`CategoricalDropout` drops the values of multi-valued categorical
  fields (Yao et al., "Self-supervised Learning for Large-scale Item
  Recommendations", CIKM 2021, Sec. 4.1, "Dropout"): each value edge of an
  item in a field where it has more than one value is dropped with
  probability ``p``, keeping at least one value per (item, field), so
  the view still says something about that field.
"""

from __future__ import annotations

import torch
from torch_geometric.data import HeteroData

from ..data.schema import HAS_ATTR, ITEM
from ..errors import check_probability
from .base import keep_edges, rand, register_augmentation
from .feature_base import FeatureAugmentation, edge_fields, num_fields, require_attributes


@register_augmentation("feature_dropout")
class FeatureDropout(FeatureAugmentation):
    """Drop each attribute edge and zero each dense feature entry with probability ``p``
    (functional name: ``feature_dropout``).

    Args:
        p: drop probability in [0, 1) (MicRec: 0.5).
        generator: seeded ``torch.Generator``.
    """

    def __init__(self, p: float = 0.5, generator: torch.Generator | None = None):
        self.p = check_probability("feature dropout p", p)
        self.generator = generator

    def augment(self, data: HeteroData) -> None:
        if HAS_ATTR in data.edge_types:
            store = data[HAS_ATTR]
            n = store.edge_index.size(1)
            keep_edges(store, rand(n, self.generator, store.edge_index.device) >= self.p)
        if "x" in data[ITEM]:
            x = data[ITEM].x
            keep = rand(x.numel(), self.generator, x.device).view_as(x) >= self.p
            data[ITEM].x = x * keep

    def __repr__(self) -> str:
        return f"FeatureDropout(p={self.p})"


@register_augmentation("categorical_dropout")
class CategoricalDropout(FeatureAugmentation):
    """Drop values of multi-valued categorical fields with probability ``p``
    (functional name: ``categorical_dropout``); Yao et al. 2021, Sec. 4.1.

    Single-valued (item, field) pairs are never touched; of a multi-valued
    pair at least one value survives: the value with the largest uniform draw
    is never dropped.

    Args:
        p: drop probability in [0, 1).
        generator: seeded ``torch.Generator``.
    """

    def __init__(self, p: float = 0.5, generator: torch.Generator | None = None):
        self.p = check_probability("categorical dropout p", p)
        self.generator = generator

    def augment(self, data: HeteroData) -> None:
        require_attributes(data, type(self).__name__)
        store = data[HAS_ATTR]
        item = store.edge_index[0]
        n = item.numel()
        n_fields = max(num_fields(data), 1)
        slot = item * n_fields + edge_fields(data)
        size = int(data[ITEM].num_nodes) * n_fields
        count = torch.bincount(slot, minlength=size)
        u = rand(n, self.generator, item.device)
        drop = (u < self.p) & (count[slot] > 1)
        # The value with the largest draw of each (item, field) is always kept.
        best = torch.full((size,), -1.0, device=item.device).scatter_reduce(0, slot, u, reduce="amax")
        drop &= u < best[slot]
        keep_edges(store, ~drop)

    def __repr__(self) -> str:
        return f"CategoricalDropout(p={self.p})"


__all__ = ["CategoricalDropout", "FeatureDropout"]
