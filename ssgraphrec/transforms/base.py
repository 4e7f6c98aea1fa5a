"""Shared machinery of the augmentation transforms.

Every augmentation is a ``torch_geometric.transforms.BaseTransform`` registered
under a short name (``--aug edge_drop``), acting on one named edge type. It
returns a new HeteroData and never mutates its input (PyG's ``BaseTransform``
hands ``forward`` a shallow copy; we only ever assign new tensors). Edge
subsets keep the original edge order and record the ids of the kept edges in
``e_id``, so composed drops stay sorted and
:meth:`ssgraphrec.sparse.BipartiteGraph.normalized_adjacency` builds the view
without a re-sort.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
from torch import Tensor
from torch_geometric.data import HeteroData
from torch_geometric.transforms import BaseTransform

from ..data.schema import INTERACTS
from ..errors import ConfigError, check_probability
from ..registry import Registry

AUGMENTATIONS: Registry[type[BaseTransform]] = Registry("augmentation")

EdgeType = tuple[str, str, str]

# Per-edge attributes that follow the edges when a subset is kept (``mask``: the
# masked incidences of a sequence, see :class:`ssgraphrec.transforms.ItemMask`).
EDGE_ATTRS = ("edge_weight", "edge_attr", "time", "position", "mask", "e_id")


def register_augmentation(name: str):
    """Class decorator: register ``cls`` under ``name`` and record it as ``cls.name``."""

    def deco(cls):
        cls.name = name
        return AUGMENTATIONS.register(name)(cls)

    return deco


def accepted_arguments(name: str) -> list[str]:
    """The keyword arguments the augmentation ``name`` takes."""
    params = inspect.signature(AUGMENTATIONS.get(name).__init__).parameters
    return [k for k in params if k != "self" and params[k].kind is not inspect.Parameter.VAR_KEYWORD]


def make_augmentation(name: str, *, offered: dict[str, Any] | None = None,
                      **params: Any) -> BaseTransform:
    """Build the augmentation ``name`` with ``params``.

    An argument the augmentation does not take is a :class:`ConfigError` listing the
    ones it does. ``offered`` holds what a method knows and passes to whichever of its
    augmentations take it (SGL offers ``p``, ``num_layers`` and ``generator``); each
    takes what it needs, the rest is not an error.
    """
    accepted = accepted_arguments(name)
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise ConfigError(f"augmentation {name!r} takes no argument "
                          f"{', '.join(map(repr, unknown))}; it takes: {', '.join(accepted)}")
    chosen = {k: v for k, v in (offered or {}).items() if k in accepted}
    return AUGMENTATIONS.get(name)(**{**chosen, **params})


def parse_augmentations(text: str | None, method: str) -> list[str]:
    """The names of an ``--aug`` list (``"edge_drop,node_drop"``), each a registered
    augmentation; none is a :class:`ConfigError` naming ``method``."""
    names = [n.strip() for n in str(text or "").split(",") if n.strip()]
    if not names:
        raise ConfigError(f"{method} needs at least one augmentation (--aug); registered: "
                          f"{', '.join(AUGMENTATIONS)}")
    for name in names:
        AUGMENTATIONS.get(name)  # an unknown name: the registry's error, with suggestions
    return names


def augmentations_on(edge_type: EdgeType) -> list[str]:
    """Names of the registered augmentations that act on the edges of ``edge_type``."""
    return [name for name in AUGMENTATIONS
            if getattr(make_augmentation(name), "edge_type", None) == tuple(edge_type)]


def rand(n: int, generator: torch.Generator | None, device: torch.device) -> Tensor:
    """``n`` uniform numbers drawn from ``generator`` and moved to ``device``."""
    gen_device = generator.device if generator is not None else device
    return torch.rand(n, generator=generator, device=gen_device).to(device)


def random_subset_mask(n: int, keep: int, generator: torch.Generator | None,
                       device: torch.device) -> Tensor:
    """Boolean mask with exactly ``keep`` of ``n`` entries set, uniformly at random."""
    gen_device = generator.device if generator is not None else device
    chosen = torch.randperm(n, generator=generator, device=gen_device)[:keep].to(device)
    mask = torch.zeros(n, dtype=torch.bool, device=device)
    mask[chosen] = True
    return mask


def edge_ids(store) -> Tensor:
    """Ids of the store's edges in the original graph (``arange`` if never subset)."""
    if "e_id" in store:
        return store.e_id
    return torch.arange(store.edge_index.size(1), device=store.edge_index.device)


def keep_edges(store, mask: Tensor) -> None:
    """Replace the store's edges (and per-edge attributes) by the ``mask`` subset.

    The first subset records the original edge count as ``num_base_edges``, so
    that a later transform that adds edges can give them ids above every
    original id.
    """
    if "e_id" not in store and "num_base_edges" not in store:
        store.num_base_edges = store.edge_index.size(1)
    e_id = edge_ids(store)
    for key in EDGE_ATTRS:
        if key in store and key != "e_id":
            store[key] = store[key][mask]
    store.edge_index = store.edge_index[:, mask]
    store.e_id = e_id[mask]


def uses_embeddings(transform: BaseTransform) -> bool:
    """Whether ``transform`` (one, or a ``T.Compose``) reads the model's current embeddings
    from the data (``graph_diffusion``; see
    :func:`ssgraphrec.transforms.graph_diffusion.with_embeddings`)."""
    parts = getattr(transform, "transforms", [transform])
    return any(getattr(t, "uses_embeddings", False) for t in parts)


class EdgeAugmentation(BaseTransform):
    """Base of augmentations that act on the edges of one edge type.

    Args:
        p: the augmentation's ratio, in [0, 1).
        edge_type: the edge type acted on (default user-interacts-item).
        generator: a seeded ``torch.Generator`` (default: PyTorch's global RNG).
    """

    name = "edge_augmentation"

    def __init__(self, p: float = 0.1, edge_type: EdgeType = INTERACTS,
                 generator: torch.Generator | None = None):
        self.p = check_probability(f"{type(self).__name__} ratio p", p)
        self.edge_type = tuple(edge_type)
        self.generator = generator

    def forward(self, data: HeteroData) -> HeteroData:
        if self.edge_type not in data.edge_types:
            raise KeyError(f"{type(self).__name__}: the data has no edge type {self.edge_type}")
        self.augment(data, data[self.edge_type])
        return data

    def augment(self, data: HeteroData, store) -> None:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(p={self.p}, edge_type={self.edge_type})"
