"""CLRec: contrastive learning with a queue of negatives for debiased candidate generation."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor
from torch_geometric.data import HeteroData

from ..errors import ConfigError
from ..losses import MemoryBank, sampled_softmax
from .base import BPRBatch, register_method
from .twotower import TwoTower, TwoTowerConfig


@dataclass
class CLRecConfig(TwoTowerConfig):
    """Zhou et al., "Contrastive Learning for Debiased Candidate Generation in
    Large-Scale Recommender Systems", KDD 2021, Sec. 3-4.

    The contrastive loss with in-batch and queued negatives *without* log-Q
    correction (Sec. 3: the sampled softmax over the queue already performs
    inverse propensity weighting, so popularity needs no explicit correction);
    the queue holds the item representations of the most recent batches
    (Sec. 4.2, MoCo-style, no gradient through it). ``queue_batches`` earlier
    batches are kept (``queue_size = queue_batches * batch_size``); the paper
    does not tie the size to our data, and 4 batches is chosen here. The
    towers and the temperature are those of :class:`TwoTowerConfig`.
    """

    log_q: bool = False
    queue_batches: int = 4


@register_method("clrec")
class CLRec(TwoTower):
    r"""Two towers trained by InfoNCE against the batch's items and a queue of earlier batches'
    item representations (Zhou et al. 2021, Sec. 3-4)."""

    config_class = CLRecConfig
    description = "CLRec: two-tower + queue of previous batches' items as negatives (debiasing)"
    paper = "Zhou et al., KDD 2021"

    def __init__(self, data: HeteroData, cfg: CLRecConfig, **kwargs):
        super().__init__(data, cfg, **kwargs)
        if cfg.queue_batches < 1:
            raise ConfigError(f"queue_batches must be >= 1, got {cfg.queue_batches}")
        self.queue = MemoryBank(cfg.queue_batches * cfg.batch_size, self.item_tower.out_dim)

    def loss(self, batch: BPRBatch) -> dict[str, Tensor]:
        users, items = batch.users, batch.pos_items
        query = self.user_tower(users, exclude=items)
        item_rep = self.item_tower(items)
        queued, queued_ids = self.queue.negatives()
        loss = sampled_softmax(query, item_rep, self.cfg.temperature,
                               log_q=self.log_q[items] if self.cfg.log_q else None,
                               item_ids=items, extra_items=queued, extra_ids=queued_ids)
        self.queue.enqueue(item_rep, items)
        return {"contrastive": loss}


__all__ = ["CLRec", "CLRecConfig"]
