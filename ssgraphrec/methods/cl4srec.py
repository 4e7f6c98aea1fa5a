"""CL4SRec: SASRec plus a contrastive loss between two augmented views of each sequence."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from torch_geometric.data import HeteroData

from ..data.schema import CONTAINS, SESSION
from ..data.sessions import from_padded, padded_sessions
from ..errors import ConfigError
from ..losses import nt_xent
from ..transforms import make_augmentation
from ..transforms.item_cooccurrence import ItemCooccurrence
from .base import register_method
from .sasrec import SASRec, SASRecConfig

#: Augmentations that need an item-item co-occurrence graph (CoSeRec's informative ones).
CORRELATED = ("item_substitute", "item_insert")


@dataclass
class CL4SRecConfig(SASRecConfig):
    r"""Xie et al., "Contrastive Learning for Sequential Recommendation", ICDE 2022
    (arXiv:2010.14395), Sec. 5.1.4: the SASRec backbone of :class:`SASRecConfig`
    (embedding 64, 2 blocks, 2 heads, length 50, batch 256, Adam lr :math:`10^{-3}`),
    SSL weight :math:`\lambda = 0.1`, temperature :math:`\tau = 1` (also the
    ``--w_clloss 0.1 --temp 1`` defaults of the PyTorch re-implementation
    JamZheng/CL4SRec-pytorch ``main.py``).

    * ``aug``: augmentation names joined by commas; each view of each sequence
      draws one of them uniformly (Sec. 3.3). Default: the paper's three,
      ``item_crop,item_mask,item_reorder``; CoSeRec's ``item_substitute`` and
      ``item_insert`` work too (co-occurrence graph of the training sequences).
    * ``crop_eta``, ``mask_gamma``, ``reorder_beta``: :math:`\eta, \gamma, \beta`
      (Eq. 3-5). The paper tunes each over 0.1 ... 0.9 per dataset (Sec. 5.5)
      without a table of the chosen values; the defaults 0.6 / 0.3 / 0.6 are the
      CL4SRec defaults of RecBole / DuoRec, as in
      :mod:`ssgraphrec.transforms.sequence_augment`.
    * ``substitute_rate``, ``insert_rate``: CoSeRec's defaults 0.1 / 0.4.
    * ``similarity``: ``"dot"`` (inner product, as the CL4SRec / CoSeRec code) or
      ``"cos"``.
    """

    aug: str = "item_crop,item_mask,item_reorder"
    ssl_weight: float = 0.1
    temperature: float = 1.0
    crop_eta: float = 0.6
    mask_gamma: float = 0.3
    reorder_beta: float = 0.6
    substitute_rate: float = 0.1
    insert_rate: float = 0.4
    similarity: str = "dot"


@register_method("cl4srec")
class CL4SRec(SASRec):
    r"""CL4SRec: SASRec's next-item cross-entropy plus :math:`\lambda` times NT-Xent.

    For each training sequence of the batch (the CE input ``seq[:-1]``, its last
    ``max_len`` items) two views are drawn, each by an augmentation chosen
    uniformly per sequence from ``aug``; both go through the same encoder, the
    output at the last position represents a view, and NT-Xent (Eq. 6) contrasts
    the two views of a sequence against the other :math:`2N - 2` views of the
    batch. Masked items become the ``[mask]`` token of the encoder. Loss terms:
    ``ce`` and ``ssl`` (already multiplied by :math:`\lambda`).
    """

    config_class = CL4SRecConfig
    description = "CL4SRec: SASRec + NT-Xent between two augmented sequence views (crop/mask/reorder)"
    paper = "Xie et al., ICDE 2022"
    tasks = ("sequential",)

    def __init__(self, data: HeteroData, cfg: CL4SRecConfig, **kwargs):
        super().__init__(data, cfg, **kwargs)
        if cfg.temperature <= 0:
            raise ConfigError(f"temperature must be positive, got {cfg.temperature}")
        if cfg.ssl_weight < 0:
            raise ConfigError(f"ssl_weight must be >= 0, got {cfg.ssl_weight}")
        if cfg.similarity not in ("dot", "cos"):
            raise ConfigError(f"similarity must be 'dot' or 'cos', got {cfg.similarity!r}")
        names = [n.strip() for n in str(cfg.aug).split(",") if n.strip()]
        if not names:
            raise ConfigError("CL4SRec needs at least one augmentation (--aug)")
        cooc = (ItemCooccurrence.from_data(data, mask="train_mask")
                if any(n in CORRELATED for n in names) else None)
        self.aug_names = names
        self.augments = [
            make_augmentation(n, eta=cfg.crop_eta, gamma=cfg.mask_gamma, beta=cfg.reorder_beta,
                              rate=cfg.insert_rate if n == "item_insert" else cfg.substitute_rate,
                              cooccurrence=cooc, sessions=f"aug_{k}", generator=self.generator)
            for k, n in enumerate(names)]

    def augment(self, inputs: Tensor) -> Tensor:
        """One augmented view ``[B, max_len]`` of the left-padded sequences ``inputs``.

        Each row draws one augmentation; every augmentation acts on the rows
        that drew it (its ``sessions=`` mask), all rows at once.
        """
        data = from_padded(inputs, self.num_items)
        gen = self.generator
        gen_device = gen.device if gen is not None else inputs.device
        choice = torch.randint(len(self.augments), (inputs.size(0),), generator=gen,
                               device=gen_device).to(inputs.device)
        for k in range(len(self.augments)):
            data[SESSION][f"aug_{k}"] = choice == k
        for transform in self.augments:
            data = transform(data)
        store = data[CONTAINS]
        if "mask" in store:
            store.edge_index = store.edge_index.clone()
            store.edge_index[1, store.mask] = self.num_items  # +1 below: the [mask] token
        rows = torch.arange(inputs.size(0), device=inputs.device)
        return padded_sessions(data, rows, self.cfg.max_len)

    def views(self, inputs: Tensor) -> tuple[Tensor, Tensor]:
        """Two independently augmented views of ``inputs``."""
        return self.augment(inputs), self.augment(inputs)

    def loss(self, batch: Tensor) -> dict[str, Tensor]:  # type: ignore[override]
        inputs, targets = self.train_sequences(batch)
        terms = {"ce": self.rec_loss(inputs, targets)}
        keep = (inputs > 0).any(1)  # sequences of one item have no CE input and no views
        if self.cfg.ssl_weight == 0 or int(keep.sum()) < 2:
            terms["ssl"] = terms["ce"].new_zeros(())
            return terms
        v1, v2 = self.views(inputs[keep])
        z1, z2 = self.encoder.represent(v1), self.encoder.represent(v2)
        ssl = nt_xent(z1, z2, self.cfg.temperature, self.cfg.similarity)
        terms["ssl"] = self.cfg.ssl_weight * ssl
        return terms
