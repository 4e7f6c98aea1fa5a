r"""DHCN's two channels: hypergraph convolution over items, line-graph convolution over sessions.

Xia et al., "Self-Supervised Hypergraph Convolutional Networks for
Session-based Recommendation", AAAI 2021 (S²-DHCN), with the choices of the
authors' code (xiaxin1998/DHCN, ``model.py``, latest version):

* **Hypergraph channel** (Sec. 3.2, Eq. 2-3): item embeddings
  :math:`\mathbf{X}^{(0)}`, :math:`L` layers
  :math:`\mathbf{X}^{(l+1)} =
  \mathbf{D}^{-1}\mathbf{H}\mathbf{W}\mathbf{B}^{-1}\mathbf{H}^\top\mathbf{X}^{(l)}`
  (the operator of :mod:`ssgraphrec.transforms.session_hypergraph`, built once
  from the training sessions), and the item representation
  :math:`\mathbf{X}_h = \frac{1}{L+1}\sum_{l=0}^{L}\mathbf{X}^{(l)}`: layer 0
  included, averaged (``HyperConv``: ``np.sum(final, 0) / (self.layers + 1)``;
  an earlier revision of the code summed without dividing): LightGCN's readout, so
  :func:`~ssgraphrec.sparse.propagate_mean` computes it, with its column blocks on
  the CPU and without saving a layer.
* **Session readout** of that channel (Sec. 3.2, Eq. 4-5; ``generate_sess_emb``):
  with the session's items reversed (the last click first) and a learnable
  reversed position embedding :math:`\mathbf{p}_{m-t+1}`,
  :math:`\mathbf{x}^*_t = \tanh(\mathbf{W}_1[\mathbf{p}_{m-t+1} \| \mathbf{x}_t] + \mathbf{b})`,
  :math:`\mathbf{s}^* = \frac{1}{m}\sum_t \mathbf{x}_t`,
  :math:`\alpha_t = \mathbf{f}^\top\sigma(\mathbf{W}_2\mathbf{x}^*_t + \mathbf{W}_3\mathbf{s}^* + \mathbf{c})`
  and :math:`\theta_h = \sum_t \alpha_t \mathbf{x}_t`. The weights
  :math:`\alpha_t` are **not** normalised (no softmax, neither in the paper
  nor in the code), and the sum runs over the items' hypergraph embeddings
  :math:`\mathbf{x}_t`, not over :math:`\mathbf{x}^*_t`. Without position
  embeddings (``generate_sess_emb_npos``, which the code uses for Tmall)
  :math:`\mathbf{x}^*_t = \tanh(\mathbf{x}_t)`.
* **Line-graph channel** (Sec. 3.3, Eq. 6-7; ``LineConv``): a session starts as
  the mean of its items' *ego* embeddings :math:`\mathbf{X}^{(0)}` (over its
  clicks, repeats included), then :math:`L` layers
  :math:`\Theta^{(l+1)} = \hat{\mathbf{D}}^{-1}\hat{\mathbf{A}}\Theta^{(l)}` on the
  line graph of the mini-batch (:func:`~ssgraphrec.transforms.session_line_graph.line_graph`),
  averaged over the :math:`L+1` layers like the hypergraph channel.

Sessions enter as padded id matrices (:func:`~ssgraphrec.data.sessions.padded_sessions`,
+1-shifted, 0 = padding): everything is batched, no loop over sessions.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..sparse import Adjacency, propagate_mean


def gather_padded(table: Tensor, ids: Tensor) -> Tensor:
    """``[B, L, d]`` rows of ``table`` for +1-shifted ``ids`` (0 = padding gives a zero row)."""
    rows = table[(ids - 1).clamp(min=0)]
    return rows * (ids > 0).unsqueeze(-1).to(rows.dtype)


def reverse_padded(ids: Tensor) -> Tensor:
    """Left-padded, right-aligned ids (:func:`~ssgraphrec.data.sessions.padded_sessions`) →
    DHCN's ``reversed_sess_item``: the last click in column 0, padding at the end."""
    return ids.flip(1)


class SoftAttentionReadout(nn.Module):
    r"""DHCN's session readout (Eq. 4-5; the authors' ``generate_sess_emb``).

    Args:
        dim: embedding size :math:`d`.
        max_positions: rows of the reversed position embedding table (the
            code has 200; sessions longer than this are an error).
        position: use position embeddings (the paper; ``False`` is the code's
            ``generate_sess_emb_npos``, :math:`\mathbf{x}^*_t = \tanh(\mathbf{x}_t)`).

    Parameters as in the code: ``w_1`` (:math:`\mathbf{W}_1, \mathbf{b}`, a
    ``Linear(2d, d)`` on :math:`[\mathbf{p} \| \mathbf{x}]`), ``glu1``
    (:math:`\mathbf{W}_2, \mathbf{c}`), ``glu2`` (:math:`\mathbf{W}_3`, no bias),
    ``w_2`` (:math:`\mathbf{f}`, ``[d, 1]``).
    """

    def __init__(self, dim: int, max_positions: int = 200, position: bool = True):
        super().__init__()
        self.position = position
        self.max_positions = int(max_positions)
        self.pos_embedding = nn.Embedding(self.max_positions, dim) if position else None
        self.w_1 = nn.Linear(2 * dim, dim) if position else None
        self.glu1 = nn.Linear(dim, dim)
        self.glu2 = nn.Linear(dim, dim, bias=False)
        self.w_2 = nn.Parameter(torch.empty(dim, 1))

    def weights(self, seq: Tensor, mask: Tensor) -> Tensor:
        r"""``[B, L]`` attention weights :math:`\alpha_t` (0 on padding).

        Args:
            seq: ``[B, L, d]`` item embeddings, last click first, zero rows on padding.
            mask: ``[B, L]`` bool, True on clicks.
        """
        m = mask.to(seq.dtype).unsqueeze(-1)
        length = m.sum(1).clamp(min=1)
        mean = (seq * m).sum(1) / length                                    # s*
        if self.position:
            if seq.size(1) > self.max_positions:
                raise ValueError(f"a session of {seq.size(1)} clicks exceeds the "
                                 f"{self.max_positions} position embeddings")
            pos = self.pos_embedding.weight[:seq.size(1)].unsqueeze(0).expand_as(seq)
            star = torch.tanh(self.w_1(torch.cat([pos, seq], -1)))          # x*_t
        else:
            star = torch.tanh(seq)
        gate = torch.sigmoid(self.glu1(star) + self.glu2(mean).unsqueeze(1))
        return (gate @ self.w_2).squeeze(-1) * m.squeeze(-1)

    def forward(self, seq: Tensor, mask: Tensor) -> Tensor:
        r""":math:`\theta_h = \sum_t \alpha_t \mathbf{x}_t`, ``[B, d]``."""
        return (self.weights(seq, mask).unsqueeze(-1) * seq).sum(1)


class DHCNEncoder(nn.Module):
    """Item embeddings, the hypergraph channel with its readout, and the line-graph channel.

    Args:
        num_items: size of the item table.
        dim: embedding size.
        num_layers: :math:`L`, for both channels.
        max_positions: rows of the position table.
        position: see :class:`SoftAttentionReadout`.

    Every parameter starts uniform in :math:`\\pm 1/\\sqrt{d}`, as the code's
    ``init_parameters``.
    """

    def __init__(self, num_items: int, dim: int, num_layers: int, max_positions: int = 200,
                 position: bool = True):
        super().__init__()
        self.num_layers = int(num_layers)
        self.item_emb = nn.Parameter(torch.empty(num_items, dim))
        self.readout = SoftAttentionReadout(dim, max_positions, position)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.item_emb.size(1))
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def item_embeddings(self, hypergraph: Adjacency) -> Tensor:
        r""":math:`\mathbf{X}_h`, ``[num_items, d]``."""
        return propagate_mean(hypergraph, self.item_emb, self.num_layers)

    def hypergraph_sessions(self, items_h: Tensor, reversed_ids: Tensor) -> Tensor:
        r""":math:`\theta_h` of sessions given as reversed padded ids ``[B, L]``."""
        return self.readout(gather_padded(items_h, reversed_ids), reversed_ids > 0)

    def line_graph_sessions(self, ids: Tensor, line_graph: Adjacency) -> Tensor:
        r""":math:`\theta_l` of the batch's sessions (padded ids ``[B, L]``, in the
        order of the line graph's nodes)."""
        mask = (ids > 0).to(self.item_emb.dtype)
        theta = gather_padded(self.item_emb, ids).sum(1) / mask.sum(1, keepdim=True).clamp(min=1)
        return propagate_mean(line_graph, theta, self.num_layers)
