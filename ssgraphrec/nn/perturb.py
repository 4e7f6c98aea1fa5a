"""Embedding-level perturbations: noise for contrastive views, shuffles as corruptions.

These act on tensors, not on graphs (DESIGN.md, "Transforms"): graph
augmentations live in :mod:`ssgraphrec.transforms`.

* :func:`uniform_noise` / :class:`UniformNoise`: the directed uniform noise of
  SimGCL and XSimGCL (Yu et al., SIGIR 2022, Eq. 7; TKDE 2023).
* :func:`row_shuffle` / :func:`row_column_shuffle`: the corruption functions
  that MHCN (Yu et al., WWW 2021, Sec. 3.3) and DHCN (Xia et al., AAAI 2021)
  use to build negative examples for their mutual-information objectives.

All randomness comes from an optional seeded ``torch.Generator``; a generator
on another device than the tensor is allowed (the numbers are drawn on the
generator's device and moved).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..errors import ConfigError

#: Levels of :func:`uniform_draw`: each number takes 16 of a 64-bit random word's bits.
UNIFORM_LEVELS = 2**16


def uniform_draw(shape: tuple[int, ...], dtype: torch.dtype = torch.float32,
                 device: torch.device | str = "cpu",
                 generator: torch.Generator | None = None) -> Tensor:
    r"""Numbers uniform on (0, 1), at the centres of :data:`UNIFORM_LEVELS` equal bins.

    One 64-bit random word gives four 16-bit numbers :math:`(k + \tfrac12) / 2^{16}`,
    so a draw costs a quarter of ``torch.rand``'s calls to the generator: on the CPU's
    Mersenne Twister, 1.0 ms instead of 3.2 ms for SimGCL's ``[17317, 64]`` noise of
    lastfm-80-20 (benchmarks/simgcl_streams.py). The numbers are never 0, so the noise
    keeps every non-zero sign; 16 bits are far below the resolution that matters for
    a noise direction that is normalised afterwards.
    """
    device = torch.device(device)
    gen_device = generator.device if generator is not None else device
    n = math.prod(shape)
    words = torch.randint(-2**63, 2**63 - 1, ((n + 3) // 4,), generator=generator,
                          device=gen_device, dtype=torch.int64)
    levels = words.view(torch.int16)[:n].view(shape).to(device=device, dtype=torch.float32)
    # int16 -32768..32767 + 32768.5 = k + 1/2 for k in 0..65535
    return levels.add_(UNIFORM_LEVELS / 2 + 0.5).mul_(1.0 / UNIFORM_LEVELS).to(dtype)


def _randperm(n: int, generator: torch.Generator | None, device: torch.device) -> Tensor:
    gen_device = generator.device if generator is not None else device
    return torch.randperm(n, generator=generator, device=gen_device).to(device)


def check_eps(eps: float) -> float:
    """``eps`` if it is a non-negative number, else a :class:`ConfigError`."""
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not float(eps) >= 0.0:
        raise ConfigError(f"noise magnitude eps must be >= 0, got {eps!r}")
    return float(eps)


def uniform_noise(x: Tensor, eps: float, generator: torch.Generator | None = None) -> Tensor:
    r"""SimGCL's noise :math:`\Delta` for each row of ``x`` (not added to ``x``).

    Yu et al., "Are Graph Augmentations Necessary? Simple Graph Contrastive
    Learning for Recommendation", SIGIR 2022, Sec. 3.1, Eq. 7:
    :math:`\Delta = \bar\Delta \odot \mathrm{sign}(\mathbf{e})` with
    :math:`\bar\Delta \sim U(0, 1)^d` and :math:`\|\Delta\|_2 = \epsilon`, so the
    noise lies in the same hyperoctant as the embedding and has norm ``eps``.

    The authors' code normalises :math:`\bar\Delta` before multiplying by the
    sign; here the product is normalised, so that :math:`\|\Delta\|_2 = \epsilon`
    holds exactly as the paper states also for rows with some zero entries (the
    two agree whenever no entry is exactly zero). An all-zero row (an isolated
    node) gets zero noise.
    """
    eps = check_eps(eps)
    return noise_of_draw(x, uniform_draw(tuple(x.shape), x.dtype, x.device, generator), eps)


def noise_of_draw(x: Tensor, draw: Tensor, eps: float) -> Tensor:
    r"""The noise of :func:`uniform_noise` for the uniform draw :math:`\bar\Delta` = ``draw``.

    Separating the draw from its use lets a fused propagation (several streams
    in one product, :meth:`ssgraphrec.methods.simgcl.SimGCL.streams_at`) draw
    its numbers in the order of the unfused one and so add the same noise.
    """
    # sign(x) has zero gradient, so the noise is a constant of the graph: computed without
    # autograd (same values and gradients as F.normalize(draw * sign(x)) * eps, fewer passes).
    with torch.no_grad():
        noise = draw * torch.sign(x)
        return noise.mul_(eps / torch.linalg.vector_norm(noise, dim=-1, keepdim=True)
                          .clamp_min_(1e-12))


class UniformNoise:
    """Callable ``x -> x + uniform_noise(x, eps)``, for ``LightGCNEncoder.layers(perturb=...)``.

    Args:
        eps: the noise norm :math:`\\epsilon` (>= 0).
        generator: a seeded generator (default: PyTorch's global RNG).
    """

    def __init__(self, eps: float, generator: torch.Generator | None = None):
        self.eps = check_eps(eps)
        self.generator = generator

    def __call__(self, x: Tensor) -> Tensor:
        return x + uniform_noise(x, self.eps, self.generator)

    def draw(self, shape: tuple[int, ...], dtype: torch.dtype = torch.float32,
             device: torch.device | str = "cpu") -> Tensor:
        """The uniform numbers one call on a tensor of ``shape`` would draw."""
        return uniform_draw(tuple(shape), dtype, device, self.generator)

    def with_draw(self, x: Tensor, draw: Tensor) -> Tensor:
        """``x`` plus the noise of ``draw`` (``self(x)`` with its numbers drawn beforehand)."""
        return x + noise_of_draw(x, draw, self.eps)

    def at_rows(self, x: Tensor, rows: Tensor, num_rows: int) -> Tensor:
        """``self(whole)[rows]`` for ``x = whole[rows]`` of a ``[num_rows, d]`` tensor: the
        numbers of the whole tensor are drawn and those of ``rows`` used (the noise of a
        row depends on that row only), so the generator moves on as ``self(whole)``
        moves it (:func:`~ssgraphrec.sparse.propagate_mean` with ``rows``)."""
        draw = self.draw((num_rows, *x.shape[1:]), x.dtype, x.device)
        return self.with_draw(x, draw[rows])

    def __repr__(self) -> str:
        return f"UniformNoise(eps={self.eps})"


def row_shuffle(x: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """``x`` with its rows in a random order: each node gets another node's embedding.

    The corruption of MHCN (Yu et al., WWW 2021, Sec. 3.3, following DGI,
    Velickovic et al. ICLR 2019) for negative examples.
    """
    return x[_randperm(x.size(0), generator, x.device)]


def row_column_shuffle(x: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """``x`` with its columns, then its rows, in random orders.

    MHCN's corruption of the sub-hypergraph representations (Yu et al., WWW
    2021, Sec. 3.3; the authors' ``row_column_shuffle``): a column permutation
    scrambles the features of every row, a row permutation then moves rows.
    """
    x = x[:, _randperm(x.size(1), generator, x.device)]
    return x[_randperm(x.size(0), generator, x.device)]
