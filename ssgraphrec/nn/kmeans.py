"""K-means clustering of embeddings, in plain torch on the embeddings' device.

NCL's E-step (Lin et al., WWW 2022, Sec. 3.3) clusters the user and the item
embeddings into prototypes once per epoch; the authors call ``faiss.Kmeans``.
:func:`kmeans` runs Lloyd's algorithm in torch (no extra dependency, on the
GPU when the embeddings are there) and uses faiss only when asked to, or with
``backend="auto"`` when it is importable.
"""

from __future__ import annotations

import importlib.util
from typing import NamedTuple

import torch
from torch import Tensor

from ..errors import ConfigError

KMEANS_BACKENDS = ("auto", "torch", "faiss")

# Entries of the [chunk, k] distance matrix computed at once.
_CHUNK_ENTRIES = 1 << 22


class KMeansResult(NamedTuple):
    """Centroids ``[k, d]`` and each point's cluster ``[n]`` (its nearest centroid)."""

    centroids: Tensor
    assignment: Tensor


def has_faiss() -> bool:
    """Whether the optional ``faiss`` package is importable."""
    return importlib.util.find_spec("faiss") is not None


def resolve_kmeans_backend(name: str) -> str:
    """Map ``"auto"`` to ``"faiss"`` when importable, else ``"torch"``; validate ``name``."""
    if name not in KMEANS_BACKENDS:
        raise ConfigError(f"unknown k-means backend {name!r}; expected one of "
                          f"{', '.join(KMEANS_BACKENDS)}")
    if name == "auto":
        return "faiss" if has_faiss() else "torch"
    if name == "faiss" and not has_faiss():
        raise ConfigError("k-means backend 'faiss' asked for, but faiss is not installed; "
                          "use 'torch' (the default fallback)")
    return name


def nearest_centroid(x: Tensor, centroids: Tensor) -> tuple[Tensor, Tensor]:
    """Index of each row's nearest centroid (squared Euclidean) and that squared distance.

    Computed in row chunks, so memory stays ``O(chunk * k)``.
    """
    c_sq = centroids.pow(2).sum(1)
    chunk = max(1, _CHUNK_ENTRIES // max(1, centroids.size(0)))
    idx, dist = [], []
    for start in range(0, x.size(0), chunk):
        xb = x[start:start + chunk]
        d = c_sq[None, :] - 2.0 * (xb @ centroids.t())
        best, arg = d.min(1)
        idx.append(arg)
        dist.append((best + xb.pow(2).sum(1)).clamp_min(0.0))
    return torch.cat(idx), torch.cat(dist)


def kmeans_plus_plus(x: Tensor, k: int, generator: torch.Generator | None = None) -> Tensor:
    """``k`` initial centroids by k-means++ seeding (Arthur and Vassilvitskii, SODA 2007).

    The first centroid is a uniformly random row; each next one is a row drawn
    with probability proportional to its squared distance to the nearest
    centroid so far (uniformly when every row coincides with a centroid).
    ``k - 1`` sequential steps of ``O(n d)`` each.
    """
    n = x.size(0)
    gen_device = generator.device if generator is not None else x.device
    x_sq = x.pow(2).sum(1)

    def sq_dist(row: int) -> Tensor:   # ||x - x_row||^2 as a matrix-vector product
        return (x_sq - 2.0 * (x @ x[row]) + x_sq[row]).clamp_min(0.0)

    first = int(torch.randint(0, n, (1,), generator=generator, device=gen_device))
    centroids = x.new_empty(k, x.size(1))
    centroids[0] = x[first]
    d2 = sq_dist(first)
    for j in range(1, k):
        weights = d2 if bool(d2.sum() > 0) else torch.ones_like(d2)
        pick = int(torch.multinomial(weights.to(gen_device), 1, generator=generator))
        centroids[j] = x[pick]
        d2 = torch.minimum(d2, sq_dist(pick))
    return centroids


def kmeans(x: Tensor, k: int, num_iters: int = 25, generator: torch.Generator | None = None,
           backend: str = "torch", init: str = "k-means++") -> KMeansResult:
    """Cluster the rows of ``x`` into ``k`` clusters (Lloyd's algorithm).

    Initialisation is k-means++ (:func:`kmeans_plus_plus`, the default) or
    ``"random"``: ``k`` distinct random rows, as ``faiss.Kmeans`` does, which
    can leave two centroids in one well-separated cluster and none in another.
    Each iteration assigns every row to its nearest centroid and moves each
    centroid to the mean of its rows; a cluster left empty is re-seeded with
    the row farthest from its own centroid. Iteration stops after
    ``num_iters`` rounds or when no assignment changes. The returned
    assignment is against the returned centroids. ``k`` larger than the number
    of rows is reduced to it.

    Args:
        x: ``[n, d]`` points (detached; no gradient flows through k-means).
        k: number of clusters.
        num_iters: maximum number of Lloyd iterations (faiss's default is 25).
        generator: seeded generator for the initialisation.
        backend: ``"torch"``, ``"faiss"`` or ``"auto"`` (faiss when importable;
            faiss uses its own random initialisation and ignores ``init``).
        init: ``"k-means++"`` or ``"random"``.
    """
    if x.dim() != 2 or x.size(0) == 0:
        raise ValueError(f"kmeans: x must be a non-empty [n, d] matrix, got {tuple(x.shape)}")
    if k < 1 or num_iters < 1:
        raise ConfigError(f"kmeans needs k >= 1 and num_iters >= 1, got k={k}, "
                          f"num_iters={num_iters}")
    if init not in ("k-means++", "random"):
        raise ConfigError(f"kmeans init must be 'k-means++' or 'random', got {init!r}")
    x = x.detach()
    k = min(int(k), x.size(0))
    if resolve_kmeans_backend(backend) == "faiss":
        return _faiss_kmeans(x, k, num_iters, generator)
    xf = x.float()
    if init == "k-means++":
        centroids = kmeans_plus_plus(xf, k, generator)
    else:
        gen_device = generator.device if generator is not None else x.device
        pick = torch.randperm(x.size(0), generator=generator, device=gen_device)[:k].to(x.device)
        centroids = xf[pick].clone()
    assignment = None
    for _ in range(num_iters):
        new_assignment, dist = nearest_centroid(xf, centroids)
        if assignment is not None and torch.equal(new_assignment, assignment):
            return KMeansResult(centroids.to(x.dtype), assignment)  # converged
        assignment = new_assignment
        counts = torch.bincount(assignment, minlength=k)
        sums = torch.zeros_like(centroids).index_add_(0, assignment, xf)
        nonempty = counts > 0
        centroids[nonempty] = sums[nonempty] / counts[nonempty, None].to(xf.dtype)
        empty = (~nonempty).nonzero().view(-1)
        if empty.numel():
            far = torch.topk(dist, empty.numel()).indices
            centroids[empty] = xf[far]
    assignment, _ = nearest_centroid(xf, centroids)
    return KMeansResult(centroids.to(x.dtype), assignment)


def _faiss_kmeans(x: Tensor, k: int, num_iters: int,
                  generator: torch.Generator | None) -> KMeansResult:
    import faiss  # optional dependency

    gen_device = generator.device if generator is not None else "cpu"
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator, device=gen_device))
    data = x.float().cpu().contiguous().numpy()
    km = faiss.Kmeans(data.shape[1], k, niter=num_iters, seed=seed, verbose=False)
    km.train(data)
    _, index = km.index.search(data, 1)
    centroids = torch.from_numpy(km.centroids).to(device=x.device, dtype=x.dtype)
    return KMeansResult(centroids, torch.from_numpy(index).view(-1).long().to(x.device))
