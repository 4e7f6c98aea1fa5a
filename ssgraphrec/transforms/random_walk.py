"""Random walk (RW) views of SGL: a fresh edge-dropped graph per layer."""

from __future__ import annotations

import torch
from torch_geometric.data import HeteroData

from ..data.schema import INTERACTS
from .base import EdgeAugmentation, EdgeType, edge_ids, random_subset_mask, register_augmentation


@register_augmentation("random_walk")
class RandomWalk(EdgeAugmentation):
    r"""Layer-wise edge dropout (functional name: ``random_walk``).

    Wu et al., SIGIR 2021, Eq. 7: :math:`s(\mathcal{G}) = (\mathcal{V},
    \mathbf{M}^{(l)} \odot \mathcal{E})`, a different masking vector for every
    layer ``l``, which SGL likens to a random walk. The edge store keeps its
    edges and gains ``layer_e_id``: one tensor of kept edge ids per layer, each
    keeping exactly :math:`\lfloor |\mathcal{E}|(1 - p) \rceil` edges in order.
    """

    def __init__(self, p: float = 0.1, num_layers: int = 3, edge_type: EdgeType = INTERACTS,
                 generator: torch.Generator | None = None):
        super().__init__(p, edge_type, generator)
        if num_layers < 1:
            raise ValueError(f"RandomWalk needs num_layers >= 1, got {num_layers}")
        self.num_layers = num_layers

    def augment(self, data: HeteroData, store) -> None:
        n = store.edge_index.size(1)
        keep = int(round(n * (1.0 - self.p)))
        e_id = edge_ids(store)
        store.layer_e_id = [
            e_id[random_subset_mask(n, keep, self.generator, store.edge_index.device)]
            for _ in range(self.num_layers)
        ]

    def __repr__(self) -> str:
        return f"RandomWalk(p={self.p}, num_layers={self.num_layers}, edge_type={self.edge_type})"
