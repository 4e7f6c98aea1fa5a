r"""The offsets of a noised LightGCN encoder from its clean layers (SimGCL's shared streams).

SimGCL (Yu et al., SIGIR 2022, Eq. 7-8) adds fresh uniform noise after every layer of
its two noised encoders. The noise depends on the embeddings only through their signs,
so it has no gradient, and each layer of a noised encoder is the clean layer plus an
offset that does not depend on the embeddings:
:math:`\mathbf{E}'^{(k)} = \mathbf{E}^{(k)} + \mathbf{D}^{(k)}` with
:math:`\mathbf{D}^{(k)} = \hat{\mathbf{A}}\mathbf{D}^{(k-1)} + \Delta^{(k)}`,
:math:`\mathbf{D}^{(0)} = 0`. :func:`noise_offsets` propagates those offsets without
autograd (``K - 1`` products: the first offset is the noise itself).
"""

from __future__ import annotations

from torch import Tensor

from ..sparse import Adjacency, propagate
from ..sparse.kernels import RowRestriction
from ..sparse.restrict import zeros_with_rows
from .perturb import UniformNoise, noise_of_draw


def noise_offsets(adj: Adjacency, clean: list[Tensor], noise: UniformNoise,
                  rows: Tensor | None = None, last_rows: RowRestriction | None = None,
                  compact: bool = False) -> Tensor:
    r""":math:`\sum_{k=1}^{K} \mathbf{D}^{(k)}` of one noised encoder for the clean
    layers ``clean`` (:math:`\mathbf{E}^{(0)} \ldots \mathbf{E}^{(K)}`, without
    gradient): :math:`\Delta^{(k)}` is drawn by ``noise`` for :math:`\mathbf{E}^{(k)} +
    \hat{\mathbf{A}}\mathbf{D}^{(k-1)}`, the noised encoder's layer before its noise
    (Eq. 8).

    With ``rows`` (sorted distinct node ids), :math:`\mathbf{D}^{(K)}` and the sum are
    taken at those rows only (the sum is zero elsewhere, and ``clean[K]`` is read at
    them only): the last product is :math:`\hat{\mathbf{A}}_{R,:}\mathbf{D}^{(K-1)}`
    (``last_rows``, ``adj.restrict(rows, backward=False)``; made here if not given),
    and the noise of the whole layer is drawn and that of ``rows`` used (a row's noise
    depends on that row only), so the generator moves on as without ``rows`` and every
    entry at ``rows`` is the same sum. ``compact`` returns the sum at ``rows`` only,
    ``[|R|, d]`` in their order.
    """
    offset = total = None
    num_nodes = clean[0].size(0)
    last = len(clean) - 1
    for k in range(1, last + 1):
        at_rows = rows is not None and k == last
        layer = clean[k].index_select(0, rows) if at_rows else clean[k]
        if offset is None:
            spread = None
        elif at_rows:
            if last_rows is None:
                last_rows = adj.restrict(rows, backward=False)
            spread = last_rows.matmul(offset)
        else:
            spread = propagate(adj, offset)
        before_noise = layer if spread is None else layer + spread
        draw = noise.draw((num_nodes, *layer.shape[1:]), layer.dtype, layer.device)
        if at_rows:
            draw = draw.index_select(0, rows)
        offset = noise_of_draw(before_noise, draw, noise.eps)
        if spread is not None:
            offset += spread
        if at_rows:                        # the sum so far at rows, then D(K)
            total = offset.clone() if total is None else total.index_select(0, rows).add_(offset)
        else:
            total = offset.clone() if total is None else total.add_(offset)
    if total is None:
        raise ValueError("noise_offsets: no layers to offset (clean holds E(0) only)")
    if rows is not None and not compact:
        total = zeros_with_rows(total, rows, num_nodes)
    return total
