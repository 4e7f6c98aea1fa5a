"""MHCN / S²-MHCN: self-supervised multi-channel hypergraph convolution for social recommendation."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.data import HeteroData

from ..data.schema import FOLLOWS, INTERACTS
from ..errors import ConfigError
from ..losses import bpr_loss, hierarchical_mim_loss, l2_regularization
from ..nn import MHCNEncoder, SelfGating
from ..nn.perturb import row_column_shuffle, row_shuffle
from ..sparse import propagate
from ..transforms.social_motifs import CHANNELS, SocialMotifs, channel_adjacencies
from ..tuning.space import OPTIMISER_SPACE, Float, Int
from .base import BPRBatch, GraphMethod, MethodConfig, check_minimums, register_method


@dataclass
class MHCNConfig(MethodConfig):
    r"""Yu et al., "Self-Supervised Multi-Channel Hypergraph Convolutional Network
    for Social Recommendation", WWW 2021, with the settings of the authors' LastFM
    configuration (Coder-Yu/QRec ``config/MHCN.conf``: ``num.factors=50``,
    ``batch_size=2000``, ``learnRate=-init 0.001``, ``reg.lambda=-u 0.001``,
    ``MHCN=-n_layer 2 -ss_rate 0.01``; ``model/ranking/MHCN.py`` suggests 120
    epochs on LastFM): embedding size 50, 2 layers, Adam lr :math:`10^{-3}`, batch
    2000, L2 weight :math:`10^{-3}`, self-supervision weight
    :math:`\beta = 0.01`.

    * ``ssl_weight``: :math:`\beta`; 0 gives plain MHCN (no self-supervision).
    * ``purchase_min_common``: least number of common items of a purchase-channel
      pair (2, QRec's ``H_p > 1``; see :mod:`ssgraphrec.transforms.social_motifs`).
    * ``ssl_normalize``: L2-normalize the gated user embeddings before the
      self-supervised task (off in QRec; SELFRec's later copy turns it on, and
      QRec's comment says Douban needs it).

    Scaling: the authors' loss sums BPR over the batch and the self-supervised
    loss over all users; here every term is divided by the batch size (BPR
    becomes a mean), which keeps their ratio. The L2 term covers the gating and
    attention weights, as in QRec, and the batch's base user and item
    embeddings, as LightGCN here (QRec's MHCN regularises the whole embedding
    tables at every batch; SELFRec's the batch's final embeddings).
    """

    emb_dim: int = 50
    num_layers: int = 2
    reg: float = 1e-3
    ssl_weight: float = 0.01
    lr: float = 1e-3
    batch_size: int = 2000
    purchase_min_common: int = 2
    ssl_normalize: bool = False


def social_graph_data(data: HeteroData) -> HeteroData:
    """The part of ``data`` MHCN's channels are built from: id spaces, social links
    and *training* interactions (never the held-out splits)."""
    out = HeteroData()
    out["user"].num_nodes = data["user"].num_nodes
    out["item"].num_nodes = data["item"].num_nodes
    out[FOLLOWS].edge_index = data[FOLLOWS].edge_index
    out[INTERACTS].edge_index = data[INTERACTS].edge_index
    return out


@register_method("mhcn")
class MHCN(GraphMethod):
    r"""S²-MHCN: motif-channel hypergraph convolution plus hierarchical mutual information.

    * Views: the social, joint and purchase motif hypergraphs (Sec. 3.2,
      :class:`~ssgraphrec.transforms.SocialMotifs`), built once from the
      social links and the training interactions, and the user-item graph.
    * Encoder: :class:`~ssgraphrec.nn.MHCNEncoder` (self-gating per channel,
      hypergraph convolution, channel attention, simple graph convolution for
      items).
    * Losses: BPR on the final embeddings; L2 on the batch's base embeddings and
      on the gating and attention weights (the QRec code's ``reg_loss``); and,
      weighted by :math:`\beta`, the self-supervised task of Sec. 3.3: per
      channel, the final user embeddings pass a self-supervised gating unit,
      their sub-hypergraph embeddings are one propagation over the channel, and
      :func:`~ssgraphrec.losses.hierarchical_mim_loss` ranks user ↔ sub-hypergraph
      ↔ hypergraph agreement against row-shuffled users and row-and-column
      shuffled sub-hypergraphs (:mod:`ssgraphrec.nn.perturb`), over all users.
    """

    config_class = MHCNConfig
    space = {
        **OPTIMISER_SPACE,
        "reg": Float(1e-5, 1e-2, log=True),
        "num_layers": Int(1, 3),
        "ssl_weight": Float(1e-4, 0.5, log=True),
    }
    description = "S2-MHCN: social motif hypergraph channels + hierarchical mutual information"
    paper = "Yu et al., WWW 2021"

    def __init__(self, data: HeteroData, cfg: MHCNConfig, **kwargs):
        name = getattr(data, "name", "") or "the dataset"
        if FOLLOWS not in data.edge_types:
            raise ConfigError(f"MHCN needs social links {FOLLOWS}, and {name!r} has none; use a "
                              "dataset with a social file (lastfm, synthetic, RecBole .net)")
        if data[FOLLOWS].edge_index.size(1) == 0:
            raise ConfigError(f"MHCN needs social links {FOLLOWS}, and the social graph of "
                              f"{name!r} is empty")
        check_minimums(cfg, num_layers=0, emb_dim=1, ssl_weight=0)
        super().__init__(data, cfg, **kwargs)
        motifs = SocialMotifs(purchase_min_common=cfg.purchase_min_common)(social_graph_data(data))
        adjs = channel_adjacencies(motifs, backend=self.backend)
        self.channels = [adjs[c] for c in CHANNELS]
        self.encoder = MHCNEncoder(self.num_users, self.num_items, cfg.emb_dim, cfg.num_layers,
                                   len(CHANNELS))
        self.ssl_gates = nn.ModuleList(SelfGating(cfg.emb_dim) for _ in CHANNELS)

    def forward_embeddings(self) -> tuple[Tensor, Tensor]:
        return self.encoder(self.channels, self.adj)

    def embeddings(self) -> tuple[Tensor, Tensor]:
        return self.forward_embeddings()

    def ssl_loss(self, users: Tensor) -> Tensor:
        """Sum over channels and users of the hierarchical MI ranking loss (Sec. 3.3)."""
        total = users.new_zeros(())
        gen = self.generator
        for gate, adj in zip(self.ssl_gates, self.channels, strict=True):
            p = gate(users)
            if self.cfg.ssl_normalize:
                p = F.normalize(p, dim=1)
            z = propagate(adj, p)  # user-centred sub-hypergraph embeddings
            total = total + hierarchical_mim_loss(p, z, row_shuffle(p, gen),
                                                  row_column_shuffle(z, gen),
                                                  row_column_shuffle(z, gen))
        return total

    def loss(self, batch: BPRBatch) -> dict[str, Tensor]:
        users, items = self.forward_embeddings()
        u, i, j = batch
        size = u.numel()
        enc = self.encoder
        weights = [*enc.weights(), *self.ssl_gates.parameters()]
        reg = (l2_regularization(enc.user_emb[u], enc.item_emb[i], enc.item_emb[j])
               + sum(w.pow(2).sum() for w in weights) / (2 * size))
        terms = {"bpr": bpr_loss(users[u], items[i], items[j]), "reg": self.cfg.reg * reg}
        if self.cfg.ssl_weight > 0:
            terms["ssl"] = self.cfg.ssl_weight * self.ssl_loss(users) / size
        else:
            terms["ssl"] = torch.zeros((), device=users.device)
        return terms
