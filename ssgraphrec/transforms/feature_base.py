"""Shared machinery of the feature augmentations (DESIGN.md, "item features").

An item's categorical features are its neighbours in ``('item','has','attr')``;
``data['attr'].field`` says which field each value belongs to. Masking a
feature is dropping its edges, so every feature augmentation is an edge
subset of that graph (kept in order, with ``e_id``, as
:func:`ssgraphrec.transforms.base.keep_edges` does) and, for dense features,
a new ``data['item'].x`` tensor. Inputs are never mutated.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch_geometric.data import HeteroData
from torch_geometric.transforms import BaseTransform

from ..data.schema import ATTR, HAS_ATTR, ITEM
from ..errors import ConfigError


def require_attributes(data: HeteroData, who: str) -> None:
    """A clear error unless ``data`` has the item-attribute graph."""
    if HAS_ATTR not in data.edge_types or "field" not in data[ATTR]:
        raise ConfigError(f"{who} needs item attributes (the ('item','has','attr') graph with "
                          f"data['attr'].field); dataset {getattr(data, 'name', '')!r} has none")


def edge_fields(data: HeteroData) -> Tensor:
    """Field index of every (item, attr) edge."""
    return data[ATTR].field[data[HAS_ATTR].edge_index[1]]


def num_fields(data: HeteroData) -> int:
    return len(data.attr_fields)


def field_indices(data: HeteroData, names: list[str] | tuple[str, ...], who: str) -> Tensor:
    """Indices of the named fields; a :class:`ConfigError` names an unknown one."""
    fields = list(data.attr_fields)
    unknown = [n for n in names if n not in fields]
    if unknown:
        raise ConfigError(f"{who}: no attribute field {unknown[0]!r} in dataset "
                          f"{getattr(data, 'name', '')!r}; its fields are {', '.join(fields)}")
    return torch.tensor([fields.index(n) for n in names], dtype=torch.long,
                        device=data[ATTR].field.device)


def random_field_masks(num_rows: int, num_fields: int, k: int, generator: torch.Generator | None,
                       device: torch.device) -> Tensor:
    """``[num_rows, num_fields]`` boolean masks, each row with exactly ``k`` fields set at random."""
    gen_device = generator.device if generator is not None else device
    score = torch.rand(num_rows, num_fields, generator=generator, device=gen_device).to(device)
    rank = score.argsort(dim=1).argsort(dim=1)
    return rank < k


def drop_masked_fields(data: HeteroData, item_field_mask: Tensor) -> None:
    """Drop the (item, attr) edges whose (item, field) is set in ``[num_items, F]`` masks."""
    from .base import keep_edges  # base imports the registry; keep import order simple

    store = data[HAS_ATTR]
    masked = item_field_mask[store.edge_index[0], edge_fields(data)]
    keep_edges(store, ~masked)


def set_x(data: HeteroData, x: Tensor) -> None:
    data[ITEM].x = x


class FeatureAugmentation(BaseTransform):
    """Base of augmentations of the item-attribute graph (and ``data['item'].x``)."""

    name = "feature_augmentation"

    def forward(self, data: HeteroData) -> HeteroData:
        has_x = "x" in data[ITEM]
        if HAS_ATTR not in data.edge_types and not has_x:
            raise ConfigError(f"{type(self).__name__} needs item features (the ('item','has','attr') "
                              f"graph or data['item'].x); dataset {getattr(data, 'name', '')!r} has none")
        self.augment(data)
        return data

    def augment(self, data: HeteroData) -> None:
        raise NotImplementedError


__all__ = ["FeatureAugmentation", "drop_masked_fields", "edge_fields", "field_indices",
           "num_fields", "random_field_masks", "require_attributes"]
