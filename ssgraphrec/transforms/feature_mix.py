"""Feature shuffling and feature mixing: corrupted and interpolated feature views.

* :class:`FeatureShuffle`: row shuffling gives each item another item's
  features (the corrupted negatives of DGI, Velickovic et al., ICLR 2019,
  Sec. 3.4, as used by the feature-level pretext tasks surveyed in Yu et al.,
  "Self-Supervised Learning for Recommender Systems: A Survey", TKDE 2023,
  Sec. 4.1 "feature shuffling"); column shuffling permutes the columns of the
  dense features ``data['item'].x`` and, within each attribute field, the
  value nodes (value ``v`` of a field becomes another value of that field).
* :class:`FeatureMix`: mixup of item features (Zhang et al., "mixup", ICLR
  2018, Eq. 1): with ``lam ~ Beta(alpha, alpha)`` per item and a random
  partner item, ``x' = lam x + (1 - lam) x[partner]``; categorical features
  keep each own value edge with probability ``lam`` and take each of the
  partner's with probability ``1 - lam``.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch_geometric.data import HeteroData

from ..data.schema import ATTR, HAS_ATTR, ITEM, sort_pairs
from ..errors import ConfigError
from .base import rand, register_augmentation
from .feature_base import FeatureAugmentation


def _perm(n: int, generator: torch.Generator | None, device: torch.device) -> Tensor:
    gen_device = generator.device if generator is not None else device
    return torch.randperm(n, generator=generator, device=gen_device).to(device)


def _set_edges(data: HeteroData, edge_index: Tensor) -> None:
    """New (item, attr) edges, sorted and de-duplicated; ``e_id`` no longer applies."""
    store = data[HAS_ATTR]
    n_attr = int(data[ATTR].num_nodes)
    store.edge_index = sort_pairs(edge_index, max(n_attr, 1))
    if "e_id" in store:
        del store.e_id


def _beta(alpha: float, n: int, generator: torch.Generator | None) -> Tensor:
    """``n`` draws of Beta(alpha, alpha) on the CPU, reproducible from ``generator``
    (torch's Beta sampler takes no generator: it runs on a CPU RNG seeded from it)."""
    if generator is None:
        return torch.distributions.Beta(alpha, alpha).sample((n,))
    seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return torch.distributions.Beta(alpha, alpha).sample((n,))


@register_augmentation("feature_shuffle")
class FeatureShuffle(FeatureAugmentation):
    """Shuffle feature rows across items and/or columns (functional name: ``feature_shuffle``).

    Args:
        rows: give item ``i`` the features of item ``perm[i]``.
        cols: permute dense columns, and value nodes within each field.
        generator: seeded ``torch.Generator``.
    """

    def __init__(self, rows: bool = True, cols: bool = True,
                 generator: torch.Generator | None = None):
        if not (rows or cols):
            raise ConfigError("feature_shuffle needs rows=True or cols=True")
        self.rows, self.cols, self.generator = rows, cols, generator

    def augment(self, data: HeteroData) -> None:
        n_items = int(data[ITEM].num_nodes)
        has_attr = HAS_ATTR in data.edge_types
        device = data[HAS_ATTR].edge_index.device if has_attr else data[ITEM].x.device
        if self.rows:
            perm = _perm(n_items, self.generator, device)
            if "x" in data[ITEM]:
                data[ITEM].x = data[ITEM].x[perm]
            if has_attr:
                # Item i takes item perm[i]'s edges: edge (j, a) becomes (inverse[j], a).
                inverse = torch.empty_like(perm)
                inverse[perm] = torch.arange(n_items, device=device)
                e = data[HAS_ATTR].edge_index
                _set_edges(data, torch.stack([inverse[e[0]], e[1]]))
        if self.cols:
            if "x" in data[ITEM]:
                x = data[ITEM].x
                data[ITEM].x = x[:, _perm(x.size(1), self.generator, device)]
            if has_attr:
                field = data[ATTR].field
                # A random permutation of the value nodes that stays inside each field.
                key = field.double() + rand(field.numel(), self.generator, device).double()
                order = torch.argsort(key)              # values grouped by field, shuffled
                by_field = torch.argsort(field, stable=True)  # values grouped by field, in order
                mapping = torch.empty_like(field)
                mapping[by_field] = order
                e = data[HAS_ATTR].edge_index
                _set_edges(data, torch.stack([e[0], mapping[e[1]]]))

    def __repr__(self) -> str:
        return f"FeatureShuffle(rows={self.rows}, cols={self.cols})"


@register_augmentation("feature_mix")
class FeatureMix(FeatureAugmentation):
    """Mixup of each item's features with a random partner's (functional name: ``feature_mix``).

    Args:
        alpha: Beta(alpha, alpha) parameter of the mixing weight, > 0.
        generator: seeded ``torch.Generator``.
    """

    def __init__(self, alpha: float = 0.2, generator: torch.Generator | None = None):
        if not alpha > 0:
            raise ConfigError(f"feature_mix alpha must be > 0, got {alpha!r}")
        self.alpha, self.generator = float(alpha), generator

    def augment(self, data: HeteroData) -> None:
        n_items = int(data[ITEM].num_nodes)
        has_attr = HAS_ATTR in data.edge_types
        device = data[HAS_ATTR].edge_index.device if has_attr else data[ITEM].x.device
        partner = _perm(n_items, self.generator, device)
        lam = _beta(self.alpha, n_items, self.generator).to(device)
        self.last_lambda = lam
        if "x" in data[ITEM]:
            x = data[ITEM].x
            data[ITEM].x = lam.view(-1, 1) * x + (1 - lam.view(-1, 1)) * x[partner]
        if has_attr:
            e = data[HAS_ATTR].edge_index
            own = rand(e.size(1), self.generator, device) < lam[e[0]]
            # Item i receives the edges of partner[i]: edge (j, a) goes to items i with partner[i] = j.
            inverse = torch.empty_like(partner)
            inverse[partner] = torch.arange(n_items, device=device)
            taken_to = inverse[e[0]]
            taken = rand(e.size(1), self.generator, device) < (1 - lam[taken_to])
            edges = torch.cat([e[:, own], torch.stack([taken_to, e[1]])[:, taken]], dim=1)
            _set_edges(data, edges)

    def __repr__(self) -> str:
        return f"FeatureMix(alpha={self.alpha})"


__all__ = ["FeatureMix", "FeatureShuffle"]
