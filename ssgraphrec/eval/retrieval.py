"""Top-N retrieval from two-tower embeddings: exact batched top-k, or a faiss index.

The matching (candidate generation) stage of a two-tower recommender returns the
N items of largest inner product ``<user, item>`` among all items; Xie et al.
("Multi-granularity Item-based Contrastive Recommendation", arXiv:2207.01387,
2022, Sec. 4) evaluate it by HIT@N for N = 50, 100, 200, 500, and Yao et al.
(CIKM 2021, Sec. 5) retrieve from the item tower the same way.

Two back-ends give the same top-N, up to the order of items whose scores are
equal or differ only in the last bits of float32 (the sums run in another order):

* ``exact``: ``[B, I]`` scores of a batch of users by one matrix product, the
  user's excluded items (training items; validation items when testing) set
  to ``-inf``, then the exact top-k of :func:`ssgraphrec.eval.topk.topk_rows`; on the
  data's device.
* ``faiss``: an exact inner-product index (``faiss.IndexFlatIP``) searched for
  ``N + m`` candidates, ``m`` the largest number of excluded items of a user of
  the batch, excluded candidates dropped, the first ``N`` kept. ``faiss`` is an
  optional dependency (``pip install 'ssgraphrec[faiss]'``); it searches on
  the CPU and its results return to the embeddings' device.

:func:`evaluate_retrieval` computes the metrics of
:func:`ssgraphrec.eval.ranking.evaluate_ranking` (same keys, same values) from
either back-end's top-N lists.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence

import torch
from torch import Tensor

from ..errors import ConfigError
from .ranking import check_finite_scores, evaluate_top_items, gather_rows
from .topk import topk_rows

BACKENDS = ("exact", "faiss")


def faiss_available() -> bool:
    """Whether the optional ``faiss`` package can be imported."""
    return importlib.util.find_spec("faiss") is not None


def check_backend(backend: str) -> str:
    """``backend`` if it is known and usable, else a :class:`ConfigError` that says why."""
    if backend not in BACKENDS:
        raise ConfigError(f"retrieval back-end must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if backend == "faiss" and not faiss_available():
        raise ConfigError("retrieval back-end 'faiss' asked for, but faiss is not installed "
                          "(pip install 'ssgraphrec[faiss]', or use retrieval=exact)")
    return backend


class ExactIndex:
    """Inner-product search over all items by a matrix product and ``torch.topk``."""

    def __init__(self, items: Tensor):
        self.items = items

    def search(self, queries: Tensor, k: int) -> tuple[Tensor, Tensor]:
        """``(scores, ids)``, each ``[B, k]``, in descending score order."""
        return torch.topk(queries @ self.items.t(), k, dim=1)


class FaissIndex:
    """An exact inner-product ``faiss.IndexFlatIP`` over the item embeddings (float32, CPU)."""

    def __init__(self, items: Tensor):
        import faiss  # optional dependency, checked by check_backend

        self.device = items.device
        self.index = faiss.IndexFlatIP(items.size(1))
        self.index.add(items.detach().float().cpu().contiguous().numpy())

    def search(self, queries: Tensor, k: int) -> tuple[Tensor, Tensor]:
        scores, ids = self.index.search(queries.detach().float().cpu().contiguous().numpy(), k)
        return (torch.from_numpy(scores).to(self.device),
                torch.from_numpy(ids).long().to(self.device))


def make_index(items: Tensor, backend: str = "exact") -> ExactIndex | FaissIndex:
    """The index of ``items`` (``[I, d]``) for ``backend`` (``exact`` or ``faiss``)."""
    return FaissIndex(items) if check_backend(backend) == "faiss" else ExactIndex(items)


def _excluded_keys(users: Tensor, exclude: Sequence[tuple[Tensor, Tensor]], num_items: int
                   ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(row, item) of every excluded pair of the batch, their sorted keys ``row * I + item``,
    and the number of excluded items per row."""
    rows_l, cols_l = [], []
    for edges, ptr in exclude:
        rows, cols = gather_rows(edges, ptr, users)
        rows_l.append(rows)
        cols_l.append(cols)
    device = users.device
    rows = torch.cat(rows_l) if rows_l else torch.zeros(0, dtype=torch.long, device=device)
    cols = torch.cat(cols_l) if cols_l else torch.zeros(0, dtype=torch.long, device=device)
    keys = torch.sort(rows * num_items + cols).values
    counts = torch.bincount(rows, minlength=users.numel())
    return rows, cols, keys, counts


def retrieve(index: ExactIndex | FaissIndex, queries: Tensor, k: int, users: Tensor,
             exclude: Sequence[tuple[Tensor, Tensor]], num_items: int) -> Tensor:
    """Top-``k`` item ids ``[B, k]`` for each query, excluded items left out.

    Args:
        index: :func:`make_index` of the item embeddings.
        queries: ``[B, d]`` user embeddings of ``users``.
        k: number of items retrieved.
        users: ``[B]`` user ids (to find their excluded items).
        exclude: ``(pairs, pointer)`` of user-sorted ``[2, E]`` (user, item) pairs to
            leave out, with their :func:`~ssgraphrec.data.schema.user_pointer`.
        num_items: size of the item space.
    """
    rows, cols, keys, counts = _excluded_keys(users, exclude, num_items)
    if isinstance(index, ExactIndex):
        scores = check_finite_scores(queries @ index.items.t())
        scores[rows, cols] = -float("inf")
        return topk_rows(scores, k)[1]
    extra = int(counts.max()) if counts.numel() else 0
    scores, ids = index.search(queries, min(k + extra, num_items))
    if keys.numel():
        query = torch.arange(users.numel(), device=ids.device)[:, None] * num_items + ids
        pos = torch.searchsorted(keys, query).clamp(max=keys.numel() - 1)
        scores = scores.masked_fill(keys[pos] == query, -float("inf"))
    # Candidates arrive in descending order, so a stable sort keeps faiss's order among ties.
    order = torch.sort(scores, dim=1, descending=True, stable=True).indices[:, :k]
    return ids.gather(1, order)


@torch.no_grad()
def evaluate_retrieval(user_emb: Tensor, item_emb: Tensor, target: Tensor,
                       exclude: Sequence[Tensor], num_users: int, num_items: int,
                       ks: Sequence[int] = (50, 100, 200, 500), backend: str = "exact",
                       batch_size: int = 1024, split_name: str = "test") -> dict[str, float]:
    """Ranking metrics of the top-``max(ks)`` items retrieved for every user with held-out items.

    Same arguments and result as :func:`ssgraphrec.eval.ranking.evaluate_ranking`
    (every metric at every K, ``coverage@K``, ``users_evaluated``,
    ``users_skipped``), with embeddings instead of a score function and a
    retrieval ``backend`` (``exact`` or ``faiss``).
    """
    index = make_index(item_emb, backend)

    def top_items(users: Tensor, ex: list[tuple[Tensor, Tensor]], k: int) -> Tensor:
        return retrieve(index, user_emb[users].float(), k, users, ex, num_items)

    return evaluate_top_items(top_items, target, exclude, num_users, num_items, ks, batch_size,
                              split_name)
