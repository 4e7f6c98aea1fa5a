"""Full-ranking evaluation over all items, batched on the device."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from ..data.schema import user_pointer
from ..distributed import SINGLE, DistContext, all_gather_rows, any_rank, shard_bounds
from ..errors import SSGraphRecError
from .metrics import ranking_metrics
from .pruned import MIN_ITEMS_PER_K, NormSortedItems, padded_rows, pruned_topk, row_stable_mm
from .topk import BlockTopK, topk_rows

ScoreFn = Callable[[Tensor], Tensor]


class DotScores:
    """Score function ``users -> [B, I]`` of dot-product embeddings.

    Without autograd, every call writes into one block owned by this object, sized
    by the largest batch so far. A fresh ``[B, I]`` block per batch can cost as much
    again as the product itself when the allocator has returned the memory to the
    system and each new block is page-faulted in (54 against 27 ms for 1,024 users of
    lastfm in a one-off timing); when the allocator keeps it, the difference is small
    (23.8 against 22.6 ms per block in ``benchmarks/results/evaluation.json``). A
    returned block is valid until the next call; clone it to keep it. The block is
    this object's own, so :func:`evaluate_ranking` may write into it. The product pads
    its rows to a multiple of 4 (:func:`~ssgraphrec.eval.pruned.row_stable_mm`), so that
    a user's scores do not depend on the users beside it in the batch.
    """

    #: Whether :func:`evaluate_ranking` may take the norm-bounded top-k
    #: (:mod:`ssgraphrec.eval.pruned`), which equals the plain one.
    prune: bool = True
    #: A batch that sends at least this share of its rows to the plain path (rows the
    #: bound cannot prune, or tied) turns the bound off for this object's later
    #: batches: its slices then cost without saving. XSimGCL's users on LastFM need 85 %
    #: of the catalogue at the median, and the bound made its evaluation 1.25x to
    #: 1.38x as long as scoring every item (docs/benchmarks.md, "Evaluation").
    plain_share_off: float = 0.9

    def __init__(self, user_emb: Tensor, item_emb: Tensor):
        self.user_emb, self.item_emb = user_emb, item_emb
        self.block: Tensor | None = None
        self._sorted: NormSortedItems | None = None
        #: the top-k of this evaluation's blocks scored over every item (:class:`BlockTopK`)
        self.topk = BlockTopK()

    def sorted_items(self) -> NormSortedItems:
        """The items in order of decreasing norm, built on first use."""
        if self._sorted is None:
            self._sorted = NormSortedItems(self.item_emb)
        return self._sorted

    def ranked_plainly(self, plain_rows: int, rows: int) -> None:
        """Record that a pruned batch of ``rows`` rows ranked ``plain_rows`` of them by
        the plain path; at :attr:`plain_share_off` or more, the bound is off from now on
        (this object serves one evaluation of one set of embeddings)."""
        if rows and plain_rows >= self.plain_share_off * rows:
            self.prune = False

    def can_prune(self, users: Tensor, k: int) -> bool:
        """Whether the norm-bounded top-k applies to these users: no autograd, float32
        rows, a catalogue of at least ``MIN_ITEMS_PER_K (k + 1)`` items, and finite
        embeddings whose products cannot overflow (else the plain path, whose check
        names the problem). Products at reduced precision (TF32 or bfloat16, which
        ``torch.set_float32_matmul_precision`` or ``allow_tf32`` turn on) fall outside the
        bound's rounding allowance and take the plain path too."""
        items = self.item_emb
        if (not self.prune or torch.is_grad_enabled() or items.requires_grad
                or self.user_emb.requires_grad or items.dtype != torch.float32
                or self.user_emb.dtype != torch.float32
                or items.size(0) < MIN_ITEMS_PER_K * (k + 1)
                or torch.get_float32_matmul_precision() != "highest"
                or (items.is_cuda and torch.backends.cuda.matmul.allow_tf32)):
            return False
        ranked = self.sorted_items()
        norms = torch.linalg.vector_norm(self.user_emb[users].double(), dim=1)
        largest = float(norms.max()) * float(ranked.norms[0]) * ranked.slack if norms.numel() else 0.0
        return ranked.finite and bool(torch.isfinite(norms).all()) \
            and largest < torch.finfo(items.dtype).max / 2

    def __call__(self, users: Tensor) -> Tensor:
        queries, items = self.user_emb[users], self.item_emb
        if torch.is_grad_enabled() and (queries.requires_grad or items.requires_grad):
            return queries @ items.t()
        return row_stable_mm(queries, items, out=self.reserve(queries.size(0)))

    def reserve(self, rows: int) -> Tensor:
        """The score block, grown to hold ``rows`` users (padded) if it is smaller. The
        norm-bounded path scores a subset of a batch's rows by the plain path, so it
        reserves the whole batch first: a later, larger subset would otherwise allocate
        (and page-fault) a new block."""
        dtype = torch.result_type(self.user_emb, self.item_emb)
        padded, block = padded_rows(rows), self.block
        if block is None or block.size(0) < padded or block.dtype != dtype:
            block = self.block = torch.empty(padded, self.item_emb.size(0), dtype=dtype,
                                             device=self.item_emb.device)
        return block


def dot_scores(user_emb: Tensor, item_emb: Tensor) -> ScoreFn:
    """Score function ``users -> [B, I]`` of dot-product embeddings (:class:`DotScores`)."""
    return DotScores(user_emb, item_emb)


def gather_rows(edge_index: Tensor, ptr: Tensor, users: Tensor) -> tuple[Tensor, Tensor]:
    """(batch row, item) of every pair of the given users, from user-sorted pairs.

    Vectorised range gather: no loop over users.
    """
    start, end = ptr[users], ptr[users + 1]
    lengths = end - start
    total = int(lengths.sum())
    rows = torch.repeat_interleave(torch.arange(users.numel(), device=users.device), lengths)
    offsets = torch.cumsum(lengths, 0) - lengths
    idx = start[rows] + torch.arange(total, device=users.device) - offsets[rows]
    return rows, edge_index[1, idx]


def check_finite_scores(scores: Tensor, split_name: str = "test") -> Tensor:
    """``scores`` if every entry is finite, else :class:`SSGraphRecError`.

    A NaN compares false with everything, so NaN scores would rank arbitrarily
    (all-NaN scores gave perfect next-item metrics); infinite ones tie. One
    float64 sum checks a block in a single pass: it is finite exactly when every
    float32 score is (no float32 sum of a block can overflow float64). A finite sum in
    the block's own dtype already proves it, at a fifth to a twentieth of the cost
    (benchmarks/results/evaluation.json), so the float64 sum is only taken when that
    one overflows.
    """
    if bool(torch.isfinite(scores.sum())) or bool(torch.isfinite(scores.sum(dtype=torch.float64))):
        return scores
    rows = int((~torch.isfinite(scores)).any(1).sum())
    raise SSGraphRecError(f"{split_name} evaluation: the model's scores are not finite (NaN or "
                          f"infinite) for {rows} of {scores.size(0)} rows of a block; training "
                          "diverged: lower the learning rate")


def check_cutoffs(ks: Sequence[int], num_items: int) -> list[int]:
    ks = sorted({int(k) for k in ks})
    if not ks or ks[0] < 1:
        raise SSGraphRecError(f"cut-offs K must be positive integers, got {list(ks)}")
    if ks[-1] > num_items:
        raise SSGraphRecError(f"cut-off K={ks[-1]} is larger than the number of items "
                              f"({num_items})")
    return ks


TopFn = Callable[[Tensor, list[tuple[Tensor, Tensor]], int], Tensor]


def top_k(score: ScoreFn, users: Tensor, exclude: list[tuple[Tensor, Tensor]], k: int,
          split_name: str = "test") -> tuple[Tensor, Tensor]:
    """``(values, indices)``, ``[B, k]``: the best items of ``users`` by ``score``, the
    ``exclude`` pairs left out (``(pairs, user_pointer)`` tuples; ``-inf`` where a user has
    fewer than ``k`` items left), equal to ``torch.topk`` over every item's score.

    Dot-product scores (:class:`DotScores`) skip the items a norm bound rules out
    (:func:`~ssgraphrec.eval.pruned.pruned_topk`) where :meth:`DotScores.can_prune`
    allows; every other score is computed for every item (:func:`check_finite_scores`,
    :func:`~ssgraphrec.eval.topk.topk_rows`).
    """

    def every_item(rows_of: Tensor) -> tuple[Tensor, Tensor]:
        scores = check_finite_scores(score(rows_of).float(), split_name)
        if scores._base is not None and not isinstance(score, DotScores):
            scores = scores.clone()  # never write into a view of the caller's tensors
        for e, ptr in exclude:
            rows, cols = gather_rows(e, ptr, rows_of)
            scores[rows, cols] = -float("inf")
        return score.topk(scores, k) if isinstance(score, DotScores) else topk_rows(scores, k)

    if isinstance(score, DotScores) and score.can_prune(users, k):
        pairs = [gather_rows(e, ptr, users) for e, ptr in exclude]
        excluded = (torch.cat([r for r, _ in pairs]) if pairs else users[:0],
                    torch.cat([c for _, c in pairs]) if pairs else users[:0])
        plain_rows = [0]
        score.reserve(users.numel())

        def plainly(rows: Tensor) -> tuple[Tensor, Tensor]:
            plain_rows[0] += rows.numel()
            return every_item(users[rows])

        top = pruned_topk(score.user_emb[users], score.sorted_items(), excluded, k, plainly)
        score.ranked_plainly(plain_rows[0], users.numel())
        return top
    return every_item(users)


@torch.no_grad()
def evaluate_ranking(score: ScoreFn, target: Tensor, exclude: Sequence[Tensor], num_users: int,
                     num_items: int, ks: Sequence[int] = (10, 20), batch_size: int = 1024,
                     split_name: str = "test", ctx: DistContext = SINGLE) -> dict[str, float]:
    """Full ranking of all items for every user with held-out items.

    Dot-product scores (:class:`DotScores`) skip the items a norm bound rules out
    (:func:`top_k`); the top-k equals ``torch.topk`` over every item's score either way.

    Args:
        score: ``users [B] -> scores [B, num_items]``.
        target: ``[2, E]`` held-out (user, item) pairs, sorted by user.
        exclude: pair sets, sorted by user, masked to ``-inf`` before ranking
            (training items; validation items when testing).
        ks: cut-offs.
        batch_size: users per batch.
        split_name: named in errors.
        ctx: under ``torch.distributed``, each rank ranks a contiguous share of the
            batches and the per-user metrics are gathered: the result is the one-process
            result, to the bit (:mod:`ssgraphrec.distributed`).

    Returns:
        The mean of every metric over evaluated users, item ``coverage@K``,
        ``users_evaluated`` and ``users_skipped`` (users without held-out items).
    """

    def top_items(users: Tensor, ex: list[tuple[Tensor, Tensor]], k: int) -> Tensor:
        return top_k(score, users, ex, k, split_name)[1]

    return evaluate_top_items(top_items, target, exclude, num_users, num_items, ks, batch_size,
                              split_name, ctx)


@torch.no_grad()
def evaluate_top_items(top_items: TopFn, target: Tensor, exclude: Sequence[Tensor],
                       num_users: int, num_items: int, ks: Sequence[int] = (10, 20),
                       batch_size: int = 1024, split_name: str = "test",
                       ctx: DistContext = SINGLE) -> dict[str, float]:
    """The metrics of :func:`evaluate_ranking` from any top-K search.

    ``top_items(users, exclude, k)`` returns the ``[B, k]`` best items of each
    user with the excluded items left out; ``exclude`` is given as
    ``(pairs, user_pointer)`` tuples.
    """
    ks = check_cutoffs(ks, num_items)
    if target.size(1) == 0:
        raise SSGraphRecError(f"the {split_name} split is empty: nothing to evaluate")
    device = target.device
    t_ptr = user_pointer(target, num_users)
    ex = [(e, user_pointer(e, num_users)) for e in exclude]
    counts = t_ptr.diff()
    target_keys = torch.sort(target[0] * num_items + target[1]).values
    users_all = (counts > 0).nonzero().view(-1)
    n = users_all.numel()
    # Whole batches per rank: a user is scored in the same batch as on one process.
    first, last = shard_bounds(-(-n // batch_size), ctx)
    mine = users_all[first * batch_size:last * batch_size]
    parts: dict[str, list[Tensor]] = {}
    covered = {k: torch.zeros(num_items, dtype=torch.bool, device=device) for k in ks}
    for start in range(0, mine.numel(), batch_size):
        users = mine[start:start + batch_size]
        top = top_items(users, ex, ks[-1])
        # A ranked item is a hit when (user, item) is a held-out pair: binary search in
        # the sorted keys instead of a dense [B, num_items] relevance matrix.
        query = users[:, None] * num_items + top
        pos = torch.searchsorted(target_keys, query).clamp(max=target_keys.numel() - 1)
        for name, values in ranking_metrics(target_keys[pos] == query, counts[users], ks).items():
            parts.setdefault(name, []).append(values)
        for k in ks:
            covered[k][top[:, :k].reshape(-1)] = True
    names = ranking_metrics(torch.zeros(0, ks[-1], dtype=torch.bool, device=device),
                            counts[:0], ks)   # the same names on every rank, with or without rows
    out = batch_means(parts, list(names), n, batch_size, ctx, device)
    for k in ks:
        out[f"coverage@{k}"] = float(any_rank(covered[k], ctx).float().mean())
    out["users_evaluated"] = n
    out["users_skipped"] = num_users - n
    return out


def batch_means(parts: dict[str, list[Tensor]], names: list[str], n: int, batch_size: int,
                ctx: DistContext, device: torch.device) -> dict[str, float]:
    """The mean of each per-row metric ``names`` over ``n`` rows: the rows of every rank
    gathered in order, then summed batch by batch as one process sums them (so that the
    float result does not depend on the number of ranks). A rank without rows takes part
    in every gather all the same."""
    out: dict[str, float] = {}
    for name in names:
        chunks = parts.get(name, [])
        local = torch.cat(chunks) if chunks else torch.zeros(0, device=device)
        rows = all_gather_rows(local, ctx)
        total = sum(rows[start:start + batch_size].sum() for start in range(0, n, batch_size))
        out[name] = float(total) / n
    return out
