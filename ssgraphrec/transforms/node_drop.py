"""Node dropout (ND) of SGL."""

from __future__ import annotations

from torch import Tensor
from torch_geometric.data import HeteroData

from .base import EdgeAugmentation, keep_edges, random_subset_mask, register_augmentation


@register_augmentation("node_drop")
class NodeDrop(EdgeAugmentation):
    r"""Drop a share ``p`` of the nodes of each end of an edge type, with all their edges.

    Wu et al., SIGIR 2021, Eq. 5: :math:`s(\mathcal{G}) = (\mathbf{M}' \odot \mathcal{V},
    \mathcal{E})`. Exactly :math:`\lfloor p N \rceil` nodes of each node type are
    dropped (users and items separately, as the authors' code does); the nodes
    stay in the graph's id space, isolated (functional name: ``node_drop``).
    """

    def augment(self, data: HeteroData, store) -> None:
        src_type, _, dst_type = self.edge_type
        device = store.edge_index.device
        keep_src = self._kept_nodes(data[src_type].num_nodes, device)
        keep_dst = keep_src if src_type == dst_type else self._kept_nodes(
            data[dst_type].num_nodes, device)
        mask = keep_src[store.edge_index[0]] & keep_dst[store.edge_index[1]]
        keep_edges(store, mask)

    def _kept_nodes(self, n: int, device) -> Tensor:
        return random_subset_mask(n, n - int(round(n * self.p)), self.generator, device)
