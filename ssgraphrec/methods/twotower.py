"""Two-tower retrieval model with batch softmax and log-Q correction (the baseline of ssl4rec)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.data import HeteroData

from ..data.attributes import with_id_field
from ..data.schema import ATTR, HAS_ATTR, INTERACTS, ITEM
from ..errors import ConfigError, check_probability
from ..losses import log_q_of_items, sampled_softmax
from ..nn.towers import ItemTower, UserTower
from ..tuning.space import OPTIMISER_SPACE, Float
from .base import BPRBatch, Method, MethodConfig, check_minimums, register_method


@dataclass
class TwoTowerConfig(MethodConfig):
    """Two-tower DNN of Yao et al., "Self-supervised Learning for Large-scale Item
    Recommendations", CIKM 2021, Sec. 3 and Sec. 5.

    From the paper's method sections: cosine similarity scaled by a
    temperature (Sec. 3), batch softmax with log-Q correction (Sec. 3, after
    Yi et al., RecSys 2019; :math:`p_j` is the probability that item ``j`` is
    in a batch, Yi et al. Sec. 4), and the item ID counted as one of the item
    features (Sec. 4.1), so ``id_as_field`` puts it in the item-attribute
    graph where augmentations can mask it.

    Not verified: the values :math:`\\tau = 0.1` and batch size 4096 could not
    be checked against the text of the paper's Sec. 5 (only its abstract was
    retrievable from the references available to this project) and may not
    be the published ones; we found no public code of the authors.

    Not tied to these data sets by the paper (its data sets are far larger) and
    chosen here: embedding size 64 per field, tower MLP ``128,64`` (layer sizes,
    comma separated; the last is the output size), Adam with lr 1e-3 (the
    trainer's optimizer; the bounded benchmark uses lr 1e-2), and a
    query tower over the user's training items (plus user attributes) without
    a user ID embedding.
    """

    batch_size: int = 4096
    lr: float = 1e-3
    emb_dim: int = 64
    hidden: str = "128,64"
    temperature: float = 0.1
    log_q: bool = True
    id_as_field: bool = True
    user_id: bool = False
    user_attributes: bool = True
    dropout: float = 0.0


def parse_hidden(text: str | int) -> tuple[int, ...]:
    """``"128,64"`` -> ``(128, 64)``; a clear error for anything else."""
    try:
        sizes = tuple(int(t) for t in str(text).split(",") if t.strip())
    except ValueError:
        sizes = ()
    if not sizes or min(sizes) < 1:
        raise ConfigError(f"hidden must be positive layer sizes separated by commas "
                          f"(e.g. '128,64'), got {text!r}")
    return sizes


def feature_graph(data: HeteroData, id_as_field: bool) -> HeteroData:
    """Only what the item tower and the feature augmentations need: items, attribute
    values and their graph (and ``data['item'].x``), with the ID as a field when asked."""
    src = with_id_field(data) if id_as_field else data
    out = HeteroData()
    out[ITEM].num_nodes = int(src[ITEM].num_nodes)
    out.name = getattr(data, "name", "")
    if "x" in src[ITEM]:
        out[ITEM].x = src[ITEM].x
    if HAS_ATTR in src.edge_types:
        out[ATTR].num_nodes = int(src[ATTR].num_nodes)
        out[ATTR].field = src[ATTR].field
        out[ATTR].raw_id = src[ATTR].raw_id
        out.attr_fields = list(src.attr_fields)
        out[HAS_ATTR].edge_index = src[HAS_ATTR].edge_index
    return out


@register_method("twotower")
class TwoTower(Method):
    r"""Two towers (Yao et al. 2021, Fig. 1) trained by the batch softmax with log-Q correction (Sec. 3):

    :math:`\mathcal{L}_{main} = -\frac{1}{B}\sum_i \log \frac{e^{s(q_i, x_i)/\tau - \log p_i}}
    {\sum_j e^{s(q_i, x_j)/\tau - \log p_j}}` over a batch of training
    (user, clicked item) pairs, :math:`p_j` the probability that item ``j``
    is in a batch (:func:`~ssgraphrec.losses.log_q_of_items`). The query
    tower sees the user's training items except the batch's target. Scores
    are cosine similarities (embeddings are L2-normalised).
    """

    config_class = TwoTowerConfig
    space = {
        **OPTIMISER_SPACE,
        "temperature": Float(0.02, 1.0, log=True),
        "dropout": Float(0.0, 0.5),
    }
    description = "Two-tower DNN (item features + ID, user history) with batch softmax and log-Q"
    paper = "Yao et al., CIKM 2021 (baseline)"

    def __init__(self, data: HeteroData, cfg: TwoTowerConfig, **kwargs):
        super().__init__(data, cfg, **kwargs)
        check_minimums(cfg, emb_dim=1)
        if not cfg.temperature > 0:
            raise ConfigError(f"temperature must be > 0, got {cfg.temperature}")
        check_probability("dropout", cfg.dropout)
        hidden = parse_hidden(cfg.hidden)
        self.features = feature_graph(data, cfg.id_as_field)
        self.item_tower = ItemTower.from_data(self.features, cfg.emb_dim, hidden,
                                              use_id=not cfg.id_as_field, dropout=cfg.dropout)
        self.user_tower = UserTower.from_data(data, cfg.emb_dim, hidden,
                                              use_attributes=cfg.user_attributes,
                                              use_id=cfg.user_id, dropout=cfg.dropout)
        train = data[INTERACTS].edge_index
        counts = torch.bincount(train[1], minlength=self.num_items)
        # p_j: the probability that item j is in a batch of batch_size training clicks.
        self.register_buffer("log_q", log_q_of_items(counts, cfg.batch_size), persistent=False)

    def main_loss(self, batch: BPRBatch) -> tuple[Tensor, Tensor]:
        """(batch softmax loss, the batch's item representations)."""
        users, items = batch.users, batch.pos_items
        query = self.user_tower(users, exclude=items)
        item_rep = self.item_tower(items)
        loss = sampled_softmax(query, item_rep, self.cfg.temperature,
                               log_q=self.log_q[items] if self.cfg.log_q else None,
                               item_ids=items)
        return loss, item_rep

    def loss(self, batch: BPRBatch) -> dict[str, Tensor]:
        return {"softmax": self.main_loss(batch)[0]}

    @torch.no_grad()
    def embeddings(self) -> tuple[Tensor, Tensor]:
        device = self.log_q.device
        chunk = 8192
        users = torch.cat([self.user_tower(torch.arange(s, min(s + chunk, self.num_users),
                                                        device=device))
                           for s in range(0, self.num_users, chunk)])
        items = torch.cat([self.item_tower(torch.arange(s, min(s + chunk, self.num_items),
                                                        device=device))
                           for s in range(0, self.num_items, chunk)])
        return F.normalize(users, dim=-1), F.normalize(items, dim=-1)


__all__ = ["TwoTower", "TwoTowerConfig", "feature_graph", "parse_hidden"]
