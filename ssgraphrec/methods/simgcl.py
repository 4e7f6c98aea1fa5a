"""SimGCL: simple graph contrastive learning, with noise instead of graph augmentation."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from torch_geometric.data import HeteroData

from ..errors import ConfigError
from ..losses import info_nce
from ..nn.noise_offsets import noise_offsets
from ..nn.perturb import UniformNoise, check_eps
from ..sparse import restricts_rows
from ..tuning.space import Choice, Float
from .base import BPRBatch, register_method
from .lightgcn import LightGCN, LightGCNConfig


@dataclass
class SimGCLConfig(LightGCNConfig):
    r"""Yu et al., "Are Graph Augmentations Necessary? Simple Graph Contrastive
    Learning for Recommendation", SIGIR 2022, values for **Yelp2018**:

    * Sec. 4.1 (all methods): embedding size 64, Adam with lr :math:`10^{-3}`,
      batch 2048, L2 weight :math:`10^{-4}`, Xavier initialisation; temperature
      :math:`\tau = 0.2` for SimGCL;
    * Sec. 4.3.1: CL weight :math:`\lambda = 0.5` on Yelp2018 (0.2 on
      Douban-Book, 2 on Amazon-Book); Sec. 4.3.2: noise magnitude
      :math:`\epsilon = 0.1` (best near 0.1 on all three datasets);
    * 3 layers: SimGCL's best Yelp2018 result (Table 3, Recall@20 0.0721, the
      figure repeated in Table 5) is the 3-layer one; the sensitivity study of
      Sec. 4.3 uses 2 layers (Sec. 4.2.2).

    ``skip_ego`` drops :math:`\mathbf{E}^{(0)}` from the layer mean of all three
    encoders, as the paper does (Sec. 3.1).

    ``streams`` chooses how the three encoders of a batch are computed; all three
    give the same loss and gradients from the same generator state (tested):

    * ``"shared"`` (default): one propagation with gradients, the clean one. The
      noise has no gradient (it depends on the embeddings only through their
      signs), so each layer of a noised encoder is the clean layer plus an offset
      that does not depend on the embeddings,
      :math:`\mathbf{E}'^{(k)} = \mathbf{E}^{(k)} + \mathbf{D}^{(k)}` with
      :math:`\mathbf{D}^{(k)} = \hat{\mathbf{A}}\mathbf{D}^{(k-1)} + \Delta^{(k)}`,
      :math:`\mathbf{D}^{(0)} = 0`. The offsets are propagated without autograd
      (``K - 1`` products per noised encoder: the first is the noise itself), and
      the backward pass is one chain instead of three. Per batch, 3K products plus
      3K backward ones become K + 2(K - 1) plus K.
    * ``"separate"``: three propagations with gradients, Eq. 8 as written.
    * ``"fused"``: the three streams side by side, ``[N, 3d]``, one product per
      layer. On the CPU it is slower than ``"separate"``: PyTorch's (MKL's) CSR
      product of a 192-column matrix took 1.2-1.6x the time of three 64-column
      ones on lastfm-80-20 and Gowalla, since the cost is the gather of the dense
      rows, which fusing does not reduce (docs/benchmarks.md, "SimGCL: fused
      streams").
    """

    batch_size: int = 2048
    eps: float = 0.1
    ssl_weight: float = 0.5
    temperature: float = 0.2
    skip_ego: bool = True
    streams: str = "shared"


#: Ways of computing SimGCL's three encoders (``SimGCLConfig.streams``).
STREAMS = ("shared", "separate", "fused")


def check_contrastive_config(cfg: SimGCLConfig) -> None:
    """ConfigError for settings SimGCL-style methods cannot run with."""
    check_eps(cfg.eps)
    if cfg.streams not in STREAMS:
        raise ConfigError(f"streams must be one of {', '.join(STREAMS)}, got {cfg.streams!r}")
    if not cfg.temperature > 0:
        raise ConfigError(f"temperature must be positive, got {cfg.temperature}")
    if not cfg.ssl_weight >= 0:
        raise ConfigError(f"ssl_weight must be >= 0, got {cfg.ssl_weight}")
    if cfg.num_layers < 1:
        raise ConfigError(f"num_layers must be >= 1, got {cfg.num_layers}")


@register_method("simgcl")
class SimGCL(LightGCN):
    r"""SimGCL: LightGCN plus InfoNCE between two noise-perturbed propagations.

    Per batch (Sec. 3.1): the unperturbed encoder gives the BPR loss; two
    perturbed encoders add fresh uniform noise after every layer (Eq. 7-8,
    :class:`ssgraphrec.nn.perturb.UniformNoise`) and their final
    representations are contrasted with InfoNCE (Eq. 2) over the batch's
    distinct users and, separately, its distinct items. The objective is Eq. 1,
    :math:`\mathcal{L}_{rec} + \lambda \mathcal{L}_{cl}`, plus the L2 term.
    Evaluation uses the unperturbed encoder.
    """

    config_class = SimGCLConfig
    #: Unless --paper-defaults: the SSL term ramps in over 500 steps and Adam's lr is
    #: 5e-3. The paper's Yelp2018 settings collapse on small data; warm-up alone does not
    #: cure SimGCL, warm-up with the larger lr does (docs/tuning.md, "Remedies measured").
    remedies = {"ssl_warmup": 500, "lr": 5e-3}
    space = {
        **LightGCN.space,
        "ssl_warmup": Choice((0, 250, 500, 1000)),
        "ssl_weight": Float(1e-3, 2.0, log=True),
        "temperature": Float(0.05, 1.0, log=True),
        "eps": Float(0.01, 0.5, log=True),
    }
    description = "SimGCL: LightGCN + InfoNCE between two uniformly-noised propagations"
    paper = "Yu et al., SIGIR 2022"

    def __init__(self, data: HeteroData, cfg: SimGCLConfig, **kwargs):
        super().__init__(data, cfg, **kwargs)
        check_contrastive_config(cfg)
        self.noise = UniformNoise(cfg.eps, self.generator)

    def final(self, perturbed: bool = False) -> tuple[Tensor, Tensor]:
        """(user, item) mean over the layers (1..K with ``skip_ego``), optionally noised."""
        enc = self.encoder
        if not perturbed:
            return enc.mean(self.adj, skip_ego=self.cfg.skip_ego)
        return enc.readout(enc.layers(self.adj, perturb=self.noise), skip_ego=self.cfg.skip_ego)

    def streams_at(self, rows: Tensor) -> list[Tensor]:
        """The clean and the two noised final embeddings of one batch at ``rows`` only
        (sorted distinct node ids, users first, from
        :meth:`~ssgraphrec.nn.LightGCNEncoder.batch_index`), ``[|R|, d]`` each, computed
        as ``cfg.streams`` says (:class:`SimGCLConfig`). Every path draws the noise in
        the same order (stream 1's layers, then stream 2's)."""
        if self.cfg.streams == "shared":
            return self._shared_streams(rows)
        whole = (self._fused_streams() if self.cfg.streams == "fused" else
                 [self.final(), self.final(perturbed=True), self.final(perturbed=True)])
        users = int((rows < self.num_users).sum())
        return [torch.cat([u.index_select(0, rows[:users]),
                           i.index_select(0, rows[users:] - self.num_users)]) for u, i in whole]

    def _shared_streams(self, rows: Tensor) -> list[Tensor]:
        """One clean propagation with gradients; each noised encoder is the clean one
        plus offsets propagated without autograd (``streams="shared"``), all three at
        ``rows`` only (``[|R|, d]``, so the gradients of the batch's gathers stay that
        size). Where :func:`~ssgraphrec.sparse.restricts_rows` holds, the last layer of
        each, clean and offsets, is taken at ``rows`` only, every entry there the same
        sum."""
        enc = self.encoder
        restricted = restricts_rows(self.adj, rows, enc.user_emb.size(1))
        mean, *propagated = enc.encode(self.adj, self.cfg.skip_ego, keep_layers=True,
                                       rows=rows, compact=True)
        layers = [enc.ego().detach(), *propagated]       # no gradient flows through these
        streams = [mean]
        averaged = len(layers) - 1 if self.cfg.skip_ego else len(layers)  # D(0) = 0
        last_rows = self.adj.restrict(rows, backward=False) if restricted else None
        for _ in range(2):
            with torch.no_grad():
                shift = noise_offsets(self.adj, layers, self.noise, rows if restricted else None,
                                      last_rows, compact=True)
                shift = (shift if restricted else shift.index_select(0, rows)).div_(averaged)
            streams.append(mean + shift)
        return streams

    def _fused_streams(self) -> list[tuple[Tensor, Tensor]]:
        """One propagation of the three streams side by side, ``[E | E | E]`` of shape
        ``[N, 3d]``, per layer, each noised stream's noise added after the product
        (``streams="fused"``). The uniform numbers are drawn beforehand in the order of
        the other paths."""
        enc = self.encoder
        ego = enc.user_emb
        n, d = enc.num_users + enc.num_items, ego.size(1)
        draws = [[self.noise.draw((n, d), ego.dtype, ego.device) for _ in range(enc.num_layers)]
                 for _ in range(2)]
        layers = enc.stream_layers(self.adj, [
            None,
            lambda x, k: self.noise.with_draw(x, draws[0][k]),
            lambda x, k: self.noise.with_draw(x, draws[1][k]),
        ])
        users, items = enc.readout(layers, skip_ego=self.cfg.skip_ego)
        return list(zip(users.split(d, dim=1), items.split(d, dim=1), strict=True))

    def loss(self, batch: BPRBatch) -> dict[str, Tensor]:
        rows, where = self.encoder.batch_index(*batch)
        clean, noised_1, noised_2 = self.streams_at(rows)
        terms = self.rec_terms(batch, *(clean.index_select(0, w) for w in where))
        # the batch's distinct users and positive items: where they lie in rows, and ids
        at_u, u, at_i, i = self.encoder.distinct_at(rows, where[0], where[1])
        tau = self.cfg.temperature
        ssl = (info_nce(noised_1[at_u], noised_2[at_u], tau, ids=u)
               + info_nce(noised_1[at_i], noised_2[at_i], tau, ids=i))
        terms["ssl"] = self.cfg.ssl_weight * ssl
        return terms

    def embeddings(self) -> tuple[Tensor, Tensor]:
        return self.final()
