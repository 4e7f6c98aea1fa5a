"""SGL: self-supervised graph learning for recommendation."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch_geometric.transforms as T
from torch import Tensor
from torch_geometric.data import HeteroData

from ..data.schema import INTERACTS
from ..errors import ConfigError, check_probability
from ..losses import info_nce
from ..sparse import view_adjacency
from ..transforms import make_augmentation
from ..transforms.base import augmentations_on, parse_augmentations, uses_embeddings
from ..transforms.graph_diffusion import with_embeddings
from ..tuning.space import Choice, Float
from .base import BPRBatch, register_method
from .lightgcn import LightGCN, LightGCNConfig


@dataclass
class SGLConfig(LightGCNConfig):
    """Wu et al., "Self-supervised Graph Learning for Recommendation", SIGIR 2021,
    Sec. 5.1.3: embedding size 64, 3 layers, Adam lr 1e-3, batch 2048, L2 weight
    :math:`\\lambda_2 = 10^{-4}`, temperature :math:`\\tau = 0.2`, drop ratio
    :math:`\\rho = 0.1`, SSL weight :math:`\\lambda_1 = 0.1`.

    ``aug`` is one augmentation name or several joined by commas (composed in
    order): ``edge_drop`` (SGL-ED), ``node_drop`` (SGL-ND), ``random_walk`` (SGL-RW).

    ``ssl_mode`` chooses how the contrastive term is scaled: ``"separate"`` is
    Eq. 10-12 as the authors' code computes it (a user InfoNCE and an item
    InfoNCE, each summed over the batch's distinct users / items, and the whole
    objective, BPR included, divided by the batch size); ``"joint"`` is one
    InfoNCE over the batch's users and items together, averaged (SELFRec's form).
    """

    batch_size: int = 2048
    aug: str = "edge_drop"
    drop_ratio: float = 0.1
    temperature: float = 0.2
    ssl_weight: float = 0.1
    ssl_mode: str = "separate"


@register_method("sgl")
class SGL(LightGCN):
    r"""SGL: LightGCN plus a contrastive loss between two augmented graph views.

    Per epoch two views :math:`s_1(\mathcal{G}), s_2(\mathcal{G})` are drawn
    (Sec. 3.1); per batch the loss is Eq. 12,
    :math:`\mathcal{L}_{bpr} + \lambda_1 (\mathcal{L}^{user}_{ssl} +
    \mathcal{L}^{item}_{ssl}) + \lambda_2 \|\Theta\|^2`, where each InfoNCE
    (Eq. 10-11) contrasts the batch's distinct users (items) in the two views
    against each other.
    """

    config_class = SGLConfig
    #: Unless --paper-defaults: the SSL term ramps in over 500 steps. At the paper's
    #: settings SGL falls to a tenth of LightGCN on ml-100k and BiGI's ml-100k split;
    #: with the warm-up it beats LightGCN on both (docs/tuning.md, "Remedies measured").
    remedies = {"ssl_warmup": 500}
    space = {
        **LightGCN.space,
        "ssl_warmup": Choice((0, 250, 500, 1000)),
        "ssl_weight": Float(1e-3, 1.0, log=True),
        "temperature": Float(0.05, 1.0, log=True),
        "drop_ratio": Float(0.05, 0.5),
        "aug": Choice(("edge_drop", "node_drop", "random_walk")),
    }
    description = "SGL: LightGCN + InfoNCE between two augmented views (edge/node drop, random walk)"
    paper = "Wu et al., SIGIR 2021"

    def __init__(self, data: HeteroData, cfg: SGLConfig, **kwargs):
        super().__init__(data, cfg, **kwargs)
        check_probability("drop_ratio", cfg.drop_ratio)
        if cfg.temperature <= 0:
            raise ConfigError(f"temperature must be positive, got {cfg.temperature}")
        if cfg.ssl_mode not in ("separate", "joint"):
            raise ConfigError(f"ssl_mode must be 'separate' or 'joint', got {cfg.ssl_mode!r}")
        names = parse_augmentations(cfg.aug, "SGL")
        offered = {"p": cfg.drop_ratio, "num_layers": cfg.num_layers, "generator": self.generator}
        views = [make_augmentation(n, offered=offered) for n in names]
        for name, view in zip(names, views, strict=True):
            if getattr(view, "edge_type", None) != INTERACTS:
                raise ConfigError(f"augmentation {name!r} does not act on the user-item graph "
                                  f"that SGL augments; augmentations that do: "
                                  f"{', '.join(augmentations_on(INTERACTS))}")
        self.augment = T.Compose(views)
        # The views only need the graph, not the held-out splits.
        self.graph_data = HeteroData()
        self.graph_data["user"].num_nodes = self.num_users
        self.graph_data["item"].num_nodes = self.num_items
        self.graph_data[INTERACTS].edge_index = self.graph.edge_index()
        self.view_adjs: tuple = ()

    def on_epoch_start(self, epoch: int) -> None:
        """Draw two fresh views for this epoch (SGL resamples per epoch, Sec. 3.1)."""
        source = self.graph_data
        if uses_embeddings(self.augment):  # graph_diffusion scores with the current model
            with torch.no_grad():
                source = with_embeddings(source, *self.encoder(self.adj))
        self.view_adjs = tuple(
            view_adjacency(self.graph, self.augment(source)[INTERACTS], self.backend)
            for _ in range(2))

    def loss(self, batch: BPRBatch) -> dict[str, Tensor]:
        if not self.view_adjs:
            self.on_epoch_start(0)
        # every encoder's output at the batch's rows only (LightGCNEncoder.mean_at)
        terms = self.batch_rec_loss(batch)
        u = torch.unique(batch.users)
        i = torch.unique(batch.pos_items)
        contrasted, (at_u, at_i) = self.encoder.batch_index(u, i)
        (u1, i1), (u2, i2) = ((m.index_select(0, at_u), m.index_select(0, at_i))
                              for m in (self.encoder.mean_at(a, contrasted)
                                        for a in self.view_adjs))
        tau = self.cfg.temperature
        if self.cfg.ssl_mode == "joint":
            ssl = info_nce(torch.cat([u1, i1]), torch.cat([u2, i2]), tau,
                           ids=torch.cat([u, i + self.num_users]))
        else:
            batch_size = batch.users.numel()
            ssl = (u.numel() * info_nce(u1, u2, tau, ids=u)
                   + i.numel() * info_nce(i1, i2, tau, ids=i)) / batch_size
        terms["ssl"] = self.cfg.ssl_weight * ssl
        return terms
