r"""SASRec's causal self-attention sequence encoder.

Kang & McAuley, "Self-Attentive Sequential Recommendation", ICDM 2018, Sec. III:
item embedding plus a learned position embedding, a stack of self-attention
blocks (multi-head attention and a point-wise feed-forward network, each with
a residual connection, layer normalisation and dropout) under a causal mask, so
the output at position :math:`t` depends on items :math:`1..t` only. The layout
follows the PyTorch SASRec of S3-Rec / CL4SRec / RecBole (post-norm blocks,
GELU feed-forward of width 256, LayerNorm :math:`\epsilon = 10^{-12}`, weights
drawn from :math:`\mathcal{N}(0, 0.02^2)`).

Inputs are the left-padded, +1-shifted id matrices of
:func:`ssgraphrec.data.sessions.padded_sessions`: 0 is padding, ``1..N`` the
items, ``N + 1`` the ``[mask]`` token of CL4SRec's item mask. Positions count
from the right (the last column always has position ``max_len - 1``), so a
sequence gives the same outputs whatever the width of its padded row.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class SASRecEncoder(nn.Module):
    """Causal Transformer over left-padded item sequences.

    Args:
        num_items: size of the item id space ``N``; the embedding table has
            ``N + 2`` rows (0: padding, ``N + 1``: ``[mask]``).
        dim: embedding and hidden size.
        num_layers: number of self-attention blocks.
        num_heads: attention heads per block.
        max_len: largest number of columns (position embeddings).
        dropout: dropout of the embedding, the attention weights and the
            residual branches.
        inner_size: width of the feed-forward network.
        norm_first: pre-norm blocks (SASRec's TensorFlow code) instead of the
            post-norm blocks of S3-Rec / CL4SRec / RecBole.
    """

    def __init__(self, num_items: int, dim: int = 64, num_layers: int = 2, num_heads: int = 2,
                 max_len: int = 50, dropout: float = 0.5, inner_size: int = 256,
                 norm_first: bool = False, layer_norm_eps: float = 1e-12):
        super().__init__()
        self.num_items = num_items
        self.max_len = max_len
        self.num_heads = num_heads
        self.mask_token = num_items + 1
        self.item_emb = nn.Embedding(num_items + 2, dim, padding_idx=0)
        self.pos_emb = nn.Embedding(max_len, dim)
        self.norm = nn.LayerNorm(dim, eps=layer_norm_eps)
        self.dropout = nn.Dropout(dropout)
        layer = nn.TransformerEncoderLayer(dim, num_heads, dim_feedforward=inner_size,
                                           dropout=dropout, activation="gelu",
                                           layer_norm_eps=layer_norm_eps, batch_first=True,
                                           norm_first=norm_first)
        self.blocks = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self, std: float = 0.02) -> None:
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                module.weight.normal_(0.0, std)
                if isinstance(module, nn.Linear) and module.bias is not None:
                    module.bias.zero_()
            elif isinstance(module, nn.MultiheadAttention):
                module.in_proj_weight.normal_(0.0, std)
                module.in_proj_bias.zero_()
        self.item_emb.weight[0].zero_()

    @property
    def item_weight(self) -> Tensor:
        """``[N, dim]`` embeddings of the real items (no padding, no ``[mask]``)."""
        return self.item_emb.weight[1:self.num_items + 1]

    def attention_mask(self, ids: Tensor) -> Tensor:
        """``[B * heads, L, L]`` boolean mask, True where attention is forbidden.

        Query ``i`` sees keys ``j <= i`` that are not padding; every position
        sees itself, so the all-padding rows on the left stay finite (their
        outputs are never read) instead of becoming NaN.
        """
        length = ids.size(1)
        causal = torch.ones(length, length, dtype=torch.bool, device=ids.device).triu(1)
        pad = (ids == 0)[:, None, :] & ~torch.eye(length, dtype=torch.bool, device=ids.device)
        mask = causal[None] | pad
        return mask.repeat_interleave(self.num_heads, dim=0)

    #: Row widths of the length buckets of :meth:`forward` (the last one is ``max_len``).
    buckets = (8, 16, 32)

    def forward(self, ids: Tensor) -> Tensor:
        """``[B, L, dim]`` outputs at every position of ``ids [B, L]`` (``L <= max_len``).

        Rows are run in buckets of their length (up to 8, 16, 32, ``L`` items),
        each bucket without the padding columns that all its rows share: no real
        position attends to padding, so the outputs at real positions are the
        same, and a batch of mostly short sequences costs far less. Outputs at
        the skipped padding positions are zeros.
        """
        batch, width = ids.shape
        if width > self.max_len:
            raise ValueError(f"sequence width {width} exceeds max_len {self.max_len}")
        col = torch.arange(width, device=ids.device)
        first = torch.where(ids != 0, col, width).min(1).values if batch else col[:0]
        length = (width - first).clamp(min=1)
        out = None
        low = 0
        for high in [b for b in self.buckets if b < width] + [width]:
            rows = ((length > low) & (length <= high)).nonzero().view(-1)
            low = high
            if rows.numel() == 0:
                continue
            part = self._encode(ids[rows, width - high:])
            if out is None:
                out = part.new_zeros(batch, width, part.size(2))
            out[rows, width - high:] = part
        if out is None:  # an empty batch
            out = self.item_emb.weight.new_zeros(0, width, self.item_emb.embedding_dim)
        return out

    def _encode(self, ids: Tensor) -> Tensor:
        width = ids.size(1)
        pos = torch.arange(self.max_len - width, self.max_len, device=ids.device)
        x = self.item_emb(ids) + self.pos_emb(pos)[None]
        x = self.dropout(self.norm(x))
        return self.blocks(x, mask=self.attention_mask(ids))

    def represent(self, ids: Tensor) -> Tensor:
        """``[B, dim]``: the output at the last position (the sequence's representation)."""
        return self.forward(ids)[:, -1]

    def scores(self, hidden: Tensor) -> Tensor:
        """``[..., N]`` dot products of hidden states with every item embedding."""
        return hidden @ self.item_weight.t()
