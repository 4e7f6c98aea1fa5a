"""The Heterogeneous Graph Transformer encoder of GPT-GNN, on PyG's ``HGTConv``."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch_geometric.nn import HGTConv

EdgeType = tuple[str, str, str]


class HGTEncoder(nn.Module):
    r"""Learned node inputs of every type, then ``num_layers`` HGT layers.

    Hu, Dong, Wang and Sun, "Heterogeneous Graph Transformer", WWW 2020,
    Sec. 3 (type-specific attention, messages and aggregation, Eq. 1-5), the
    encoder GPT-GNN pre-trains (Hu et al., KDD 2020, Sec. 4.1). As in GPT-GNN's
    ``GNN`` module, each node type's input goes through its own linear map and
    ``tanh`` before the first layer; nodes without features get a learned
    input vector (an id embedding).

    Every node type has one learned *dummy* input vector: ``forward`` can
    append ``num_dummies[type]`` extra nodes of a type whose input is that
    vector. GPT-GNN's attribute-generation nodes are such dummies (Sec. 3.4):
    they see the graph around a node, never the node's own input.

    Args:
        num_nodes: nodes per type.
        edge_types: the relations (each with its reverse, so that every
            type receives messages).
        hidden: width of the inputs and of every layer (``n_hid``).
        heads: attention heads (``n_heads``); must divide ``hidden``.
        num_layers: HGT layers.
        dropout: dropout on the inputs and between layers.
    """

    def __init__(self, num_nodes: dict[str, int], edge_types: list[EdgeType], hidden: int,
                 heads: int, num_layers: int, dropout: float = 0.2):
        super().__init__()
        if hidden % heads:
            raise ValueError(f"hidden size {hidden} is not a multiple of the {heads} heads")
        self.node_types = sorted(num_nodes)
        self.emb = nn.ParameterDict()
        self.dummy = nn.ParameterDict()
        self.adapt = nn.ModuleDict()
        for t in self.node_types:
            self.emb[t] = nn.Parameter(nn.init.xavier_uniform_(torch.empty(num_nodes[t], hidden)))
            self.dummy[t] = nn.Parameter(torch.randn(hidden) * 0.1)
            self.adapt[t] = nn.Linear(hidden, hidden)
        metadata = (self.node_types, list(edge_types))
        self.convs = nn.ModuleList(HGTConv(hidden, hidden, metadata, heads)
                                   for _ in range(num_layers))
        self.dropout = nn.Dropout(dropout)

    def inputs(self, num_dummies: dict[str, int] | None = None) -> dict[str, Tensor]:
        """Layer-0 features per type; dummies (if any) follow the real nodes."""
        num_dummies = num_dummies or {}
        out = {}
        for t in self.node_types:  # a handful of node types, not nodes
            h = self.emb[t]
            k = num_dummies.get(t, 0)
            if k:
                h = torch.cat([h, self.dummy[t].expand(k, -1)], 0)
            out[t] = self.dropout(torch.tanh(self.adapt[t](h)))
        return out

    def forward(self, edge_index_dict: dict[EdgeType, Tensor],
                num_dummies: dict[str, int] | None = None) -> dict[str, Tensor]:
        """Final representations per type (dummies last), ``[n_type (+ dummies), hidden]``."""
        x = self.inputs(num_dummies)
        for k, conv in enumerate(self.convs):
            out = conv(x, edge_index_dict)
            x = {t: (out[t] if out.get(t) is not None else x[t]) for t in x}
            if k < len(self.convs) - 1:
                x = {t: self.dropout(h) for t, h in x.items()}
        return x
