"""CLRec: contrastive learning with a queue of negatives for debiased candidate generation."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor
from torch_geometric.data import HeteroData

from ..errors import ConfigError
from ..losses import MemoryBank, sampled_softmax
from ..losses.queue_softmax import queue_softmax
from ..tuning.space import Int
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
    (Sec. 4.2, MoCo-style, no gradient through it, first in first out).
    ``queue_batches`` earlier batches are kept
    (``queue_size = queue_batches * batch_size``). The towers and the
    temperature are those of :class:`TwoTowerConfig`.

    Not verified: the paper's queue size and temperature could not be
    checked against its experiment section (only the abstract was
    retrievable from the references available to this project); its
    Taobao-scale queue would in any case exceed ml-100k's 1,682 items, so 4
    batches and :math:`\\tau = 0.1` are our choices, not published values.
    """

    log_q: bool = False
    queue_batches: int = 4


@register_method("clrec")
class CLRec(TwoTower):
    r"""Two towers trained by InfoNCE against the batch's items and a queue of earlier batches'
    item representations (Zhou et al. 2021, Sec. 3-4).

    The negatives are the pool of clicked items of the batch and the queue
    with their multiplicity (:func:`~ssgraphrec.losses.queue_softmax.queue_softmax`):
    a popular item is many negatives, as in the paper's queue, which is what
    debiases the loss without a log-Q correction."""

    config_class = CLRecConfig
    space = {
        **TwoTower.space,
        "queue_batches": Int(1, 16, log=True),
    }
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
        if self.cfg.log_q:  # the in-batch softmax with log-Q, the queue as extra columns
            loss = sampled_softmax(query, item_rep, self.cfg.temperature,
                                   log_q=self.log_q[items], item_ids=items,
                                   extra_items=queued, extra_ids=queued_ids)
        else:  # CLRec: negatives in proportion to their clicks in the batch and the queue
            loss = queue_softmax(query, item_rep, items, queued, queued_ids,
                                 self.cfg.temperature)
        self.queue.enqueue(item_rep, items)
        return {"contrastive": loss}


__all__ = ["CLRec", "CLRecConfig"]
