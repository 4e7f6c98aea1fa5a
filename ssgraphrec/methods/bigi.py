"""BiGI: bipartite graph embedding by local-global mutual information maximisation."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from torch_geometric.data import HeteroData

from ..data.schema import INTERACTS
from ..data.subgraph import enclosing_subgraphs, reach_adjacency
from ..errors import ConfigError
from ..eval.ranking import ScoreFn
from ..losses.hinge import hinge_loss
from ..losses.local_global_mim import local_global_mim_loss
from ..nn.bigi import (
    BiGIEncoder,
    BilinearDiscriminator,
    EdgeScorer,
    GlobalPrototype,
    SubgraphAttention,
)
from ..nn.perturb import row_shuffle
from ..sparse import bipartite_row_normalized
from ..transforms.edge_flip import flip_edges
from ..tuning.space import Choice, Float
from .base import BPRBatch, Method, MethodConfig, register_method


@dataclass
class BiGIConfig(MethodConfig):
    """Cao et al., WSDM 2021, Sec. 4.1.3 and the authors' ``train_rec.py`` with the
    README's commands for ML-100K and DBLP: embedding (feature and hidden) size
    128, 2 encoder layers (``--GNN 2``), dropout 0.3, LeakyReLU slope 0.1, Adam
    with lr 1e-3 and no weight decay, batch 128, one negative per edge, hinge
    margin 0.3, infomax weight lambda 0.3 (the loss is ``(1 - lambda) rec +
    lambda mim``), structure corruption rate 1e-4 (ML-100K; the DBLP command
    uses 1e-5), sub-graphs of h = 1 hop with at most 100 sampled neighbours per
    side (``--min_neighbor 100``), and an MLP edge scorer with 10 hidden units.
    The authors train 200 epochs; set ``--epochs``.
    """

    emb_dim: int = 128
    num_layers: int = 2
    dropout: float = 0.3
    negative_slope: float = 0.1
    lr: float = 1e-3
    batch_size: int = 128
    margin: float = 0.3
    mim_weight: float = 0.3
    struct_rate: float = 1e-4
    hops: int = 1
    num_neighbors: int = 100
    score_hidden: int = 10


@register_method("bigi")
class BiGI(Method):
    """BiGI (Cao et al., "Bipartite Graph Embedding via Mutual Information
    Maximization", WSDM 2021).

    * encoder (Sec. 3.2): :class:`~ssgraphrec.nn.bigi.BiGIEncoder` over the
      row-normalised user-item graph;
    * global representation (Sec. 3.2): the user and item prototypes fused
      by :class:`~ssgraphrec.nn.bigi.GlobalPrototype`;
    * local representations (Sec. 3.3): each training edge of the batch is
      read out from its h-hop enclosing sub-graph
      (:func:`~ssgraphrec.data.subgraph.enclosing_subgraphs`) by
      :class:`~ssgraphrec.nn.bigi.SubgraphAttention`;
    * negatives (Sec. 3.4): the same sub-graphs read out from the corrupted
      graph, whose structure has random cells flipped
      (:func:`~ssgraphrec.transforms.edge_flip.flip_edges`, drawn once, as the
      authors' ``GraphMaker``) and whose input embeddings are row-shuffled
      (:func:`~ssgraphrec.nn.perturb.row_shuffle`, per batch, no gradient, as
      their ``feature_corruption``);
    * loss (Sec. 3.5, Eq. 10): ``(1 - lambda)`` times the hinge loss of the
      MLP edge scores of observed vs. sampled edges plus ``lambda`` times the
      bilinear local-global infomax loss. Items are ranked by the MLP score.
    """

    scoring = "pair_scores"  # items are ranked by the MLP edge scorer

    config_class = BiGIConfig
    space = {
        "lr": Float(1e-4, 1e-2, log=True),
        "batch_size": Choice((64, 128, 256)),
        "mim_weight": Float(0.01, 1.0, log=True),
        "dropout": Float(0.0, 0.5),
        "margin": Float(0.1, 0.5),
    }
    description = "BiGI: local sub-graph vs. global prototype infomax with edge reconstruction"
    paper = "Cao et al., WSDM 2021"

    def __init__(self, data: HeteroData, cfg: BiGIConfig, **kwargs):
        super().__init__(data, cfg, **kwargs)
        if not 0.0 <= cfg.mim_weight <= 1.0:
            raise ConfigError(f"mim_weight (lambda) must lie in [0, 1], got {cfg.mim_weight}")
        if cfg.hops < 1 or cfg.num_neighbors < 1 or cfg.emb_dim < 1 or cfg.num_layers < 1:
            raise ConfigError("hops, num_neighbors, emb_dim and num_layers must be >= 1")
        if not 0.0 <= cfg.dropout < 1.0 or not cfg.struct_rate >= 0:
            raise ConfigError("dropout must lie in [0, 1) and struct_rate be >= 0")
        edges = data[INTERACTS].edge_index
        nu, ni = self.num_users, self.num_items
        self.adj = bipartite_row_normalized(edges, nu, ni, self.backend)
        fake = flip_edges(edges, nu, ni, cfg.struct_rate, self.generator)
        self.fake_adj = bipartite_row_normalized(fake, nu, ni, self.backend)
        self.reach = reach_adjacency(edges, nu, ni)
        self.encoder = BiGIEncoder(nu, ni, cfg.emb_dim, cfg.num_layers, cfg.dropout,
                                   cfg.negative_slope)
        self.readout = SubgraphAttention(cfg.emb_dim)
        self.prototype = GlobalPrototype(cfg.emb_dim)
        self.discriminator = BilinearDiscriminator(cfg.emb_dim)
        self.scorer = EdgeScorer(cfg.emb_dim, cfg.score_hidden)

    def mim_loss(self, users: Tensor, items: Tensor, edges: Tensor) -> Tensor:
        """Infomax between the edges' sub-graphs and the global representation."""
        enc = self.encoder
        fake_u, fake_i = enc(self.fake_adj, row_shuffle(enc.user_emb.weight, self.generator).detach(),
                             row_shuffle(enc.item_emb.weight, self.generator).detach())
        sub = enclosing_subgraphs(self.reach, edges, self.num_users, self.cfg.hops,
                                  self.cfg.num_neighbors, self.generator)
        summary = self.prototype(users, items)
        real = self.discriminator(self.readout(users, items, edges, sub), summary)
        corrupt = self.discriminator(self.readout(fake_u, fake_i, edges, sub), summary)
        return local_global_mim_loss(real, corrupt)

    def loss(self, batch: BPRBatch) -> dict[str, Tensor]:
        u, i, j = batch
        users, items = self.encoder(self.adj)
        pos = torch.sigmoid(self.scorer(users[u], items[i]))
        neg = torch.sigmoid(self.scorer(users[u], items[j]))
        lam = self.cfg.mim_weight
        out = {"rec": (1.0 - lam) * hinge_loss(pos, neg, self.cfg.margin)}
        if lam > 0:
            out["mim"] = lam * self.mim_loss(users, items, torch.stack([u, i]))
        return out

    def embeddings(self) -> tuple[Tensor, Tensor]:
        return self.encoder(self.adj)

    def ranking_scores(self) -> ScoreFn:
        """Full-ranking scores by the MLP edge scorer (the authors' ``score_predict``)."""
        users, items = self.embeddings()
        return lambda batch: self.scorer.all_pairs(users[batch], items)
