"""S²-DHCN: self-supervised hypergraph convolution for session-based recommendation."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import Tensor
from torch_geometric.data import HeteroData

from ..data.schema import CONTAINS, SESSION
from ..data.sessions import padded_sessions, session_pointer, session_structure
from ..losses import cross_channel_mim_loss, parameter_l2
from ..losses.cross_entropy import mean_cross_entropy
from ..nn.dhcn import DHCNEncoder, reverse_padded
from ..nn.perturb import row_column_shuffle
from ..paper_settings import paper_settings
from ..transforms.session_hypergraph import SessionHypergraph, hypergraph_adjacency
from ..transforms.session_line_graph import line_graph, line_graph_adjacency
from ..tuning.space import Choice, Float, Int
from .base import MethodConfig, SessionMethod, check_minimums, register_method

#: ``main.py``'s ``--beta`` default, for a dataset the authors give no β for. The
#: per-dataset values (Tmall 0.02, Diginetica 0.01; position embeddings off on Tmall) are
#: data files, ``ssgraphrec/paper/<dataset>/dhcn.yaml`` (:mod:`ssgraphrec.paper_settings`).
DEFAULT_SSL_WEIGHT = 0.01


@dataclass
class DHCNConfig(MethodConfig):
    r"""Xia et al., "Self-Supervised Hypergraph Convolutional Networks for
    Session-based Recommendation", AAAI 2021, Sec. 4.1 and the authors' code
    (xiaxin1998/DHCN ``main.py``: ``--embSize 100 --batchSize 100 --lr 0.001
    --l2 1e-5 --layer 3 --beta 0.01``): embedding size 100, batch 100, Adam lr
    :math:`10^{-3}`, 3 layers, L2 :math:`10^{-5}`.

    * ``ssl_weight``: :math:`\beta`, the weight of the self-supervised loss
      (summed over the batch, as the code does); 0 gives plain DHCN. ``None``
      (default) takes the authors' per-dataset value (README: Tmall 0.02,
      Diginetica 0.01; ``main.py``'s default 0.01 elsewhere).
    * ``position_embedding``: reversed position embeddings in the readout
      (Eq. 4). ``None`` (default) follows the authors' latest ``model.py``,
      which turns them off for Tmall only (``generate_sess_emb_npos``); the
      paper has them everywhere (``--set position_embedding=true``).
    * ``reg``: L2 weight on every parameter, as the term
      :math:`\frac{\lambda}{2}\|\Theta\|^2` whose gradient is Adam's (coupled)
      ``weight_decay=λ``. The paper states :math:`\lambda = 10^{-5}`; the
      authors' code stores ``--l2`` but never applies it (its Adam has no
      weight decay), so ``--set reg=0`` is the code.
    * ``max_positions``: rows of the position table (the code's 200); the
      longest session of the data raises it if needed.

    The authors train for 30 epochs, evaluate on the test set after each and
    report the best (``main.py``); there is no learning-rate schedule.
    """

    emb_dim: int = 100
    num_layers: int = 3
    reg: float = 1e-5
    ssl_weight: float | None = None
    position_embedding: bool | None = None
    max_positions: int = 200
    lr: float = 1e-3
    batch_size: int = 100


def resolve_dataset_defaults(cfg: DHCNConfig, dataset: str) -> DHCNConfig:
    """``cfg`` with ``ssl_weight`` and ``position_embedding`` set where they are ``None``
    (see :class:`DHCNConfig`): the authors' values for ``dataset``
    (``ssgraphrec/paper/<dataset>/dhcn.yaml``), else ``main.py``'s defaults."""
    paper = paper_settings("dhcn", dataset or "")
    changes = {}
    if cfg.ssl_weight is None:
        changes["ssl_weight"] = float(paper.get("ssl_weight", DEFAULT_SSL_WEIGHT))
    if cfg.position_embedding is None:
        changes["position_embedding"] = bool(paper.get("position_embedding", True))
    return dataclasses.replace(cfg, **changes) if changes else cfg


@register_method("dhcn")
class DHCN(SessionMethod):
    r"""S²-DHCN: hypergraph channel for prediction, line-graph channel for self-supervision.

    * Views: the session hypergraph over items
      (:class:`~ssgraphrec.transforms.SessionHypergraph`, Eq. 2, built once
      from the training samples, as the code builds it from ``train.txt``) and
      the line graph of each mini-batch of sessions
      (:func:`~ssgraphrec.transforms.session_line_graph.line_graph`, Sec. 3.3).
    * Encoder: :class:`~ssgraphrec.nn.DHCNEncoder`: item representations
      :math:`\mathbf{X}_h`, session representations :math:`\theta_h` by soft
      attention, and :math:`\theta_l` from the line graph.
    * Losses: softmax cross-entropy of the next item over all items with
      scores :math:`\theta_h \mathbf{X}_h^\top` (Eq. 8; ``nn.CrossEntropyLoss``,
      a batch mean), the L2 term ``reg``, and :math:`\beta` times
      :func:`~ssgraphrec.losses.cross_channel_mim_loss` of
      :math:`\theta_h, \theta_l` against a row-and-column shuffled
      :math:`\theta_h` (Eq. 9-10).
    * Prediction: :math:`\theta_h \mathbf{X}_h^\top` over every item.
    """

    config_class = DHCNConfig
    space = {
        "lr": Float(1e-4, 1e-2, log=True),
        "batch_size": Choice((100, 256, 512)),
        "reg": Float(1e-6, 1e-3, log=True),
        "num_layers": Int(1, 4),
        "ssl_weight": Float(1e-3, 0.1, log=True),
    }
    description = "S2-DHCN: session hypergraph + line graph channels, cross-channel infomax"
    paper = "Xia et al., AAAI 2021"
    tasks = ("next_item",)

    def __init__(self, data: HeteroData, cfg: DHCNConfig, **kwargs):
        cfg = resolve_dataset_defaults(cfg, getattr(data, "name", ""))
        check_minimums(cfg, num_layers=0, emb_dim=1, ssl_weight=0, reg=0)
        super().__init__(data, cfg, **kwargs)
        self.ptr = session_pointer(data)
        self.lengths = self.ptr.diff()
        longest = int(self.lengths.max()) if self.lengths.numel() else 1
        self.hypergraph = hypergraph_adjacency(SessionHypergraph()(session_structure(data)),
                                               backend=self.backend)
        self.encoder = DHCNEncoder(self.num_items, cfg.emb_dim, cfg.num_layers,
                                   max(cfg.max_positions, longest), bool(cfg.position_embedding))

    def inputs(self, samples: Tensor) -> Tensor:
        """``[B, L]`` left-padded, +1-shifted item ids of the samples' sessions."""
        width = max(int(self.lengths[samples].max()), 1) if samples.numel() else 1
        return padded_sessions(self.data, samples, width, ptr=self.ptr)

    def item_embeddings(self) -> Tensor:
        return self.encoder.item_embeddings(self.hypergraph)

    def line_graph_sessions(self, samples: Tensor, ids: Tensor) -> Tensor:
        r""":math:`\theta_l` of ``samples`` (their padded ids ``ids``)."""
        graph = line_graph(self.data[CONTAINS].edge_index, int(self.data[SESSION].num_nodes),
                           self.num_items, samples, ptr=self.ptr)
        return self.encoder.line_graph_sessions(ids, line_graph_adjacency(graph, self.backend))

    def loss(self, batch: Tensor) -> dict[str, Tensor]:  # type: ignore[override]
        items = self.item_embeddings()
        ids = self.inputs(batch)
        theta_h = self.encoder.hypergraph_sessions(items, reverse_padded(ids))
        target = self.data[SESSION].target[batch]
        terms = {"ce": mean_cross_entropy(theta_h @ items.t(), target)}
        if self.cfg.reg > 0:
            terms["reg"] = self.cfg.reg * parameter_l2(self.parameters())
        if self.cfg.ssl_weight > 0:
            theta_l = self.line_graph_sessions(batch, ids)
            corrupt = row_column_shuffle(theta_h, self.generator)
            terms["ssl"] = self.cfg.ssl_weight * cross_channel_mim_loss(theta_h, theta_l, corrupt)
        else:
            terms["ssl"] = torch.zeros((), device=theta_h.device)
        return terms

    def train(self, mode: bool = True):
        self._eval_items = None  # parameters may change: forget the cached item representations
        return super().train(mode)

    def score(self, samples: Tensor, split: str) -> Tensor:
        # Evaluation scores many batches with the same parameters: propagate once.
        items = getattr(self, "_eval_items", None)
        if items is None or self.training:
            items = self.item_embeddings()
            if not self.training:
                self._eval_items = items
        theta_h = self.encoder.hypergraph_sessions(items, reverse_padded(self.inputs(samples)))
        return theta_h @ items.t()

