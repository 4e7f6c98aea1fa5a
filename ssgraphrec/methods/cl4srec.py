"""CL4SRec: SASRec plus a contrastive loss between two augmented views of each sequence."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from torch_geometric.data import HeteroData

from ..data.schema import CONTAINS, SESSION
from ..data.sessions import from_padded, padded_sessions
from ..errors import ConfigError
from ..losses import info_nce
from ..transforms import SessionChoice, make_augmentation, parse_augmentations
from ..transforms.item_cooccurrence import ItemCooccurrence
from ..tuning.space import Choice, Float
from .base import register_method
from .sasrec import SASRec, SASRecConfig

#: Augmentations that need an item-item co-occurrence graph (CoSeRec's informative ones).
CORRELATED = ("item_substitute", "item_insert")
#: The session attribute that says which augmentation each sequence of a view gets.
CHOICE = "aug_choice"


@dataclass
class CL4SRecConfig(SASRecConfig):
    r"""Xie et al., "Contrastive Learning for Sequential Recommendation", ICDE 2022
    (arXiv:2010.14395), Sec. 5.1.4: the SASRec backbone of :class:`SASRecConfig`
    (embedding 64, 2 blocks, 2 heads, length 50, batch 256, Adam lr :math:`10^{-3}`),
    SSL weight :math:`\lambda = 0.1`, temperature :math:`\tau = 1` (also the
    ``--w_clloss 0.1 --temp 1`` defaults of the PyTorch re-implementation
    JamZheng/CL4SRec-pytorch ``main.py``).

    * ``aug``: augmentation names joined by commas. The two views of a sequence
      use two *different* augmentations drawn uniformly from ``aug`` (Sec. 3.1,
      "two stochastic augmentations :math:`a_i, a_j` sampled from
      :math:`\mathcal{A}`"; RecBole / DuoRec ``cl4srec_aug`` draws
      ``random.sample(range(3), k=2)``). Default: the paper's three,
      ``item_crop,item_mask,item_reorder``; CoSeRec's ``item_substitute`` and
      ``item_insert`` work too (co-occurrence graph of the training sequences).
    * ``crop_eta``, ``mask_gamma``, ``reorder_beta``: :math:`\eta, \gamma, \beta`
      (Eq. 3-5). The paper tunes each over 0.1 ... 0.9 per dataset (Sec. 5.5)
      without a table of the chosen values; the defaults 0.6 / 0.3 / 0.6 are the
      CL4SRec defaults of RecBole / DuoRec (``item_crop(eta=0.6)``,
      ``item_mask(gamma=0.3)``, ``item_reorder(beta=0.6)`` in
      ``recbole/data/dataloader/sequential_dataloader.py`` of RuihongQiu/DuoRec),
      as in :mod:`ssgraphrec.transforms.sequence_augment`. (The CoSeRec
      code, which re-runs CL4SRec, defaults to 0.2 / 0.7 / 0.2.)
    * ``substitute_rate``, ``insert_rate``: CoSeRec's defaults 0.1 / 0.4.
    * ``similarity``: ``"dot"`` (inner product: the paper's
      :math:`\mathrm{sim}(u, v) = u^\top v` of Eq. 6, which has no temperature,
      i.e. :math:`\tau = 1`; DuoRec's CL4SRec runs ``--sim dot --tau 1
      --lmd 0.1 --train_batch_size 256``, ``duorec.sh``) or ``"cos"``.
    * ``train_on`` (from :class:`SASRecConfig`): ``"sequences"``, one sample per
      user with the next item as target at every position and one pair of views
      per user, as the paper states its losses (Eq. 2 per time step, Eq. 6 per
      user sequence) and as the CoSeRec code trains it (``items[:-3]`` per user;
      it contrasts the flattened output of all positions, not the last one); or
      ``"prefixes"``, RecBole's feeding that DuoRec's CL4SRec uses: every prefix
      of a training sequence is a sample with its next item as the only target
      and its own two views (about 6 times as many samples on Amazon Beauty).

    Measured on Amazon Beauty (docs/sessions.md,
    ``benchmarks/cl4srec_loss_balance.py``): with the dot product at
    :math:`\tau = 1`, the gradient of :math:`\lambda` NT-Xent is 14 times the
    CE gradient at initialisation, 2.9 times after 50 steps and 1.3 times after
    100 with ``train_on="sequences"`` (the CE is a mean over ~5.7 targets per
    sequence, the contrast a mean over one pair); 6.1, 2.0 and 1.0 times with
    ``"prefixes"``. The raw NT-Xent starts at 13.6 and stays above
    :math:`\ln(2N - 1)`, its value for identical representations. At 5, 10 and
    20 epochs CL4SRec with these defaults trails SASRec on HR@20.
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

    For each training sample of the batch (the CE input: ``seq[:-1]`` of a user,
    or a prefix with ``train_on="prefixes"``; its last ``max_len`` items) two
    views are drawn by two different augmentations of ``aug``, chosen uniformly
    per sample; both go through the same encoder, the
    output at the last position represents a view, and NT-Xent (Eq. 6) contrasts
    the two views of a sequence against the other :math:`2N - 2` views of the
    batch. Masked items become the ``[mask]`` token of the encoder. Loss terms:
    ``ce`` and ``ssl`` (already multiplied by :math:`\lambda`).
    """

    config_class = CL4SRecConfig
    space = {
        **SASRec.space,
        "ssl_weight": Float(1e-3, 1.0, log=True),
        "temperature": Float(0.05, 2.0, log=True),
        "crop_eta": Float(0.2, 0.9),
        "mask_gamma": Float(0.1, 0.7),
        "reorder_beta": Float(0.1, 0.9),
        "similarity": Choice(("dot", "cos")),
    }
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
        names = parse_augmentations(cfg.aug, "CL4SRec")
        cooc = (ItemCooccurrence.from_data(data, mask="train_mask")
                if any(n in CORRELATED for n in names) else None)
        self.aug_names = names
        self.augments = [
            make_augmentation(n, offered={
                "eta": cfg.crop_eta, "gamma": cfg.mask_gamma, "beta": cfg.reorder_beta,
                "rate": cfg.insert_rate if n == "item_insert" else cfg.substitute_rate,
                "cooccurrence": cooc, "generator": self.generator})
            for n in names]
        self.choose = SessionChoice(self.augments, choice=CHOICE, generator=self.generator)

    def augment(self, inputs: Tensor, choice: Tensor | None = None) -> Tensor:
        """One augmented view ``[B, max_len]`` of the left-padded sequences ``inputs``.

        Row ``r`` gets augmentation ``choice[r]`` (default: one drawn uniformly
        per row), by :class:`~ssgraphrec.transforms.SessionChoice`: every augmentation
        acts on the rows that chose it, all rows at once.
        """
        if choice is None:
            choice = self.pair_choices(inputs.size(0), inputs.device)[0]
        data = from_padded(inputs, self.num_items)
        data[SESSION][CHOICE] = choice
        data = self.choose(data)
        store = data[CONTAINS]
        if "mask" in store:
            store.edge_index = store.edge_index.clone()
            store.edge_index[1, store.mask] = self.num_items  # +1 below: the [mask] token
        rows = torch.arange(inputs.size(0), device=inputs.device)
        return padded_sessions(data, rows, self.cfg.max_len)

    def pair_choices(self, n: int, device: torch.device) -> tuple[Tensor, Tensor]:
        """The augmentations of the two views of ``n`` sequences: two *different* ones per
        sequence, drawn uniformly (Sec. 3.1, "two stochastic augmentations
        :math:`a_i, a_j`"; RecBole / DuoRec ``random.sample(range(3), k=2)``);
        the same one twice when ``aug`` names only one."""
        gen = self.generator
        gen_device = gen.device if gen is not None else device
        a = len(self.augments)
        first = torch.randint(a, (n,), generator=gen, device=gen_device)
        if a == 1:
            return first.to(device), first.to(device)
        shift = torch.randint(1, a, (n,), generator=gen, device=gen_device)
        return first.to(device), ((first + shift) % a).to(device)

    def views(self, inputs: Tensor) -> tuple[Tensor, Tensor]:
        """Two augmented views of ``inputs``, by two different augmentations per row."""
        first, second = self.pair_choices(inputs.size(0), inputs.device)
        return self.augment(inputs, first), self.augment(inputs, second)

    def loss(self, batch: Tensor) -> dict[str, Tensor]:  # type: ignore[override]
        inputs, targets = self.train_sequences(batch)
        terms = {"ce": self.rec_loss(inputs, targets)}
        keep = (inputs > 0).any(1)  # sequences of one item have no CE input and no views
        if self.cfg.ssl_weight == 0 or int(keep.sum()) < 2:
            terms["ssl"] = terms["ce"].new_zeros(())
            return terms
        v1, v2 = self.views(inputs[keep])
        z1, z2 = self.encoder.represent(v1), self.encoder.represent(v2)
        ssl = info_nce(z1, z2, self.cfg.temperature, similarity=self.cfg.similarity,
                       negatives="both_views")
        terms["ssl"] = self.cfg.ssl_weight * ssl
        return terms
