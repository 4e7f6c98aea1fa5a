r"""InfoNCE: the one contrastive loss of the package, as a module and as a function.

van den Oord et al., "Representation Learning with Contrastive Predictive
Coding", 2018; for row :math:`i` of two views,

.. math::
    \ell_i = -\log \frac{\exp(s(a_i, p_i)/\tau)}{\sum_{j \in \mathcal{C}_i} \exp(s(a_i, c_j)/\tau)}

with the candidates :math:`\mathcal{C}_i` chosen by ``negatives``:

* ``"other_view"``: every row of the positive view (SGL, Wu et al., SIGIR 2021,
  Eq. 10; SimGCL / XSimGCL; SSL4Rec, Yao et al., CIKM 2021, Eq. 3; MicRec's item
  CL, Xie et al. 2022, Sec. 3);
* ``"both_views"``: the :math:`2N - 1` other rows of both views, each row of both
  views an anchor: SimCLR's NT-Xent (Chen et al., ICML 2020, Eq. 1) as CL4SRec
  uses it (Xie et al., ICDE 2022, Eq. 6).

Options, lightly-style (``lightly.loss.NTXentLoss``):

* ``similarity``: ``"cos"`` (normalised rows) or ``"dot"`` (the inner product, the
  score of a two-tower model and of the CL4SRec code);
* ``not_negative``: a ``[B, B]`` mask of pairs that must not be negatives (the same
  item, a known neighbour); ``weight``: per-row weights (0: a row without a positive);
* ``memory_bank_size``: the positives of earlier batches as extra negatives (MoCo,
  He et al., CVPR 2020), held in a :class:`~ssgraphrec.losses.memory_bank.MemoryBank`;
* ``gather``: when ``torch.distributed`` is initialised with more than one rank, the
  positive views of every rank are all-gathered (with their gradients) and serve as
  negatives of every anchor, as if the global batch were on one process.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .cross_entropy import mean_cross_entropy
from .memory_bank import MemoryBank

SIMILARITIES = ("cos", "dot")
NEGATIVES = ("other_view", "both_views")


def _check(temperature: float, similarity: str, negatives: str) -> None:
    if not temperature > 0:
        raise ValueError(f"InfoNCE temperature must be > 0, got {temperature}")
    if similarity not in SIMILARITIES:
        raise ValueError(f"similarity must be 'dot' or 'cos', got {similarity!r}")
    if negatives not in NEGATIVES:
        raise ValueError(f"negatives must be one of {NEGATIVES}, got {negatives!r}")


def _gather_rows(x: Tensor) -> tuple[Tensor, int]:
    """The rows of every rank's ``x`` in rank order, gradients flowing back to each rank's
    own rows, and the offset of this rank's rows; ``(x, 0)`` on one process."""
    from ..distributed import all_gather_rows, current, row_counts

    ctx = current()
    if not ctx.distributed:
        return x, 0
    offset = sum(row_counts(x, ctx)[:ctx.rank])
    return all_gather_rows(x, ctx, grad=True), offset


def _cross_view_logits(anchor: Tensor, candidates: Tensor, temperature: float,
                       similarity: str) -> Tensor:
    if similarity == "cos":  # scale the [n, d] rows rather than the [n, m] logits
        return (F.normalize(anchor, dim=-1) / temperature) @ F.normalize(candidates, dim=-1).t()
    return anchor @ candidates.t() / temperature


def info_nce(anchor: Tensor, positive: Tensor, temperature: float = 0.2, *,
             similarity: str = "cos", negatives: str = "other_view",
             not_negative: Tensor | None = None, weight: Tensor | None = None,
             gather: bool = True, extra_negatives: Tensor | None = None,
             ids: Tensor | None = None) -> Tensor:
    """Mean InfoNCE of ``anchor[i]`` against ``positive[i]`` (see the module docstring).

    Args:
        anchor, positive: ``[B, d]`` representations of the two views.
        temperature: :math:`\\tau` (> 0).
        similarity: ``"cos"`` or ``"dot"``.
        negatives: ``"other_view"`` or ``"both_views"`` (NT-Xent).
        not_negative: ``[B, B]`` boolean, True where ``positive[j]`` must not be a
            negative of ``anchor[i]``; the diagonal stays the positive.
        weight: ``[B]`` per-row weights; the mean is over their sum.
        gather: use the positives of every rank as negatives when ``torch.distributed``
            runs several ranks (the default; nothing changes on one process).
        extra_negatives: ``[M, d]`` further negatives of every anchor (a memory bank).
        ids: ``[B]`` the node each row stands for (SGL, SimGCL: the batch's unique users
            or items). Gathered across ranks, a node in the batches of several ranks
            counts once, as anchor and as candidate, so that the loss is the one-process
            loss of the global batch's unique nodes (:func:`_deduplicated`).
    """
    _check(temperature, similarity, negatives)
    if negatives == "both_views":
        if not_negative is not None or weight is not None or extra_negatives is not None:
            raise ValueError("negatives='both_views' takes no not_negative, weight or "
                             "extra_negatives")
        return _nt_xent(anchor, positive, temperature, similarity, gather)
    # A not_negative mask is per rank (MicRec): its negatives stay this rank's.
    use_gather = gather and not_negative is None
    candidates, offset = _gather_rows(positive) if use_gather else (positive, 0)
    if ids is not None and candidates.size(0) != positive.size(0) and extra_negatives is None:
        logits = _cross_view_logits(anchor, candidates, temperature, similarity)
        return _deduplicated(logits, ids, offset)
    if extra_negatives is not None:
        candidates = torch.cat([candidates, extra_negatives.detach()])
    logits = _cross_view_logits(anchor, candidates, temperature, similarity)
    n = anchor.size(0)
    target = torch.arange(n, device=anchor.device) + offset
    if not_negative is not None:
        block = not_negative & ~torch.eye(n, dtype=torch.bool, device=anchor.device)
        logits = torch.cat([logits[:, :n].masked_fill(block, -float("inf")), logits[:, n:]], 1)
    if weight is None:
        return mean_cross_entropy(logits, target)
    per_row = F.cross_entropy(logits, target, reduction="none")
    weight = weight.to(per_row.dtype)
    return (per_row * weight).sum() / weight.sum().clamp(min=1.0)


def _deduplicated(logits: Tensor, ids: Tensor, offset: int) -> Tensor:
    """The InfoNCE of this rank's share of a global batch whose rows were gathered from
    every rank, each node counted once: a node's first row (in rank order) is its only
    candidate column and its only anchor; the sum over this rank's anchors is scaled so
    that the mean over ranks (``DistributedDataParallel``) is the mean over the global
    batch's unique nodes."""
    import torch.distributed as dist

    from ..distributed import all_gather_rows, current

    ctx = current()
    all_ids = all_gather_rows(ids, ctx)
    unique, inverse = torch.unique(all_ids, return_inverse=True)
    positions = torch.arange(all_ids.numel(), device=all_ids.device)
    first = torch.full((unique.numel(),), all_ids.numel(), device=all_ids.device,
                       dtype=torch.long).scatter_reduce(0, inverse, positions, "amin")
    column_kept = first[inverse] == positions
    logits = logits.masked_fill(~column_kept[None, :], -float("inf"))
    n = ids.numel()
    mine = slice(offset, offset + n)
    per_row = F.cross_entropy(logits, first[inverse[mine]], reduction="none")
    anchor_kept = column_kept[mine].to(per_row.dtype)
    return (per_row * anchor_kept).sum() * dist.get_world_size() / unique.numel()


def _nt_xent(view1: Tensor, view2: Tensor, temperature: float, similarity: str,
             gather: bool) -> Tensor:
    """NT-Xent: the ``2n`` local rows of both views are anchors; the other rows of both
    views (of every rank, with ``gather``: ``2N - 2`` for a global batch of ``N``) their
    negatives."""
    n = view1.size(0)
    local = torch.cat([view1, view2])
    all1, offset = _gather_rows(view1) if gather else (view1, 0)
    all2, _ = _gather_rows(view2) if gather else (view2, 0)
    big_n = all1.size(0)
    z = torch.cat([all1, all2])
    if similarity == "cos":
        local, z = F.normalize(local, dim=-1), F.normalize(z, dim=-1)
    logits = (local @ z.t()) / temperature
    idx = torch.arange(n, device=z.device) + offset
    own = torch.cat([idx, idx + big_n])          # each anchor's own column
    logits[torch.arange(2 * n, device=z.device), own] = float("-inf")
    return mean_cross_entropy(logits, torch.cat([idx + big_n, idx]))


class InfoNCE(nn.Module):
    """The InfoNCE loss as a module: its options fixed at construction, and an optional
    memory bank of earlier positives (see the module docstring).

    >>> loss = InfoNCE(temperature=0.2)                      # SGL, SimGCL  # doctest: +SKIP
    >>> loss = InfoNCE(1.0, similarity="dot", negatives="both_views")  # CL4SRec  # doctest: +SKIP
    """

    def __init__(self, temperature: float = 0.2, *, similarity: str = "cos",
                 negatives: str = "other_view", memory_bank_size: int = 0, gather: bool = True):
        super().__init__()
        _check(temperature, similarity, negatives)
        if memory_bank_size and negatives == "both_views":
            raise ValueError("a memory bank applies to negatives='other_view'")
        self.temperature = temperature
        self.similarity = similarity
        self.negatives = negatives
        self.gather = gather
        self.bank: MemoryBank | None = None
        self.memory_bank_size = memory_bank_size

    def forward(self, anchor: Tensor, positive: Tensor, *, not_negative: Tensor | None = None,
                weight: Tensor | None = None) -> Tensor:
        extra = None
        if self.memory_bank_size:
            if self.bank is None:
                self.bank = MemoryBank(self.memory_bank_size, positive.size(1)).to(positive.device)
            extra = self.bank.negatives()[0]
        loss = info_nce(anchor, positive, self.temperature, similarity=self.similarity,
                        negatives=self.negatives, not_negative=not_negative, weight=weight,
                        gather=self.gather, extra_negatives=extra)
        if self.bank is not None:
            self.bank.enqueue(positive)
        return loss

    def extra_repr(self) -> str:
        return (f"temperature={self.temperature}, similarity={self.similarity!r}, "
                f"negatives={self.negatives!r}, memory_bank_size={self.memory_bank_size}, "
                f"gather={self.gather}")
