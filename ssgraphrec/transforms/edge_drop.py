"""Edge dropout (ED) of SGL."""

from __future__ import annotations

from torch_geometric.data import HeteroData

from .base import EdgeAugmentation, keep_edges, random_subset_mask, register_augmentation


@register_augmentation("edge_drop")
class EdgeDrop(EdgeAugmentation):
    r"""Drop a share ``p`` of the edges, uniformly at random (functional name: ``edge_drop``).

    Wu et al., "Self-supervised Graph Learning for Recommendation", SIGIR 2021,
    Eq. 6: :math:`s(\mathcal{G}) = (\mathcal{V}, \mathbf{M} \odot \mathcal{E})`
    with a masking vector that keeps exactly :math:`\lfloor |\mathcal{E}|(1 - \rho) \rceil`
    edges, as the authors' code does. The kept edges stay in their order.
    """

    def augment(self, data: HeteroData, store) -> None:
        n = store.edge_index.size(1)
        keep = int(round(n * (1.0 - self.p)))
        keep_edges(store, random_subset_mask(n, keep, self.generator, store.edge_index.device))
