"""Seeded negative edges for the link-prediction protocol (AUC-ROC, AUC-PR).

Link prediction scores held-out edges against node pairs that are not edges.
BiGI (Cao et al., WSDM 2021, Sec. 4.3) follows BiNE (Gao et al., SIGIR 2018):
the classifier is trained on the training edges, each paired with one random
non-edge of its user (the authors' ``train_lp.py`` draws one negative item
per training edge, ``--negative 1``), and tested on the held-out edges and as
many non-edges. Test files that carry no negatives (BiGI's DBLP and
ML-100K files hold only observed edges) get them here: for every held-out
edge ``(u, i)`` one item ``j`` drawn uniformly among the items ``u`` has in
no split (train, validation or test), from a generator seeded by the split
seed, so every method of a seed is scored on the same pairs.

The negatives are stored beside the positives of each split on the
interaction store: ``train_neg_edge_index``, ``val_neg_edge_index``,
``test_neg_edge_index`` (``[2, E]`` each, one per positive, in the order of
the positives), and ``data.eval_protocol = "link_prediction"`` marks the
data. They are never part of the graph.
"""

from __future__ import annotations

import torch
from torch_geometric.data import HeteroData

from .sampler import NegativeSampler
from .schema import INTERACTS, num_items

LINK_PREDICTION = "link_prediction"
NEG_KEYS = {"train": "train_neg_edge_index", "val": "val_neg_edge_index",
            "test": "test_neg_edge_index"}
#: Added to the split seed, so that the negatives do not repeat the split's draws.
NEGATIVE_SEED_OFFSET = 104729


def add_link_negatives(data: HeteroData, seed: int = 0) -> HeteroData:
    """Sample one non-edge per edge of every split and mark ``data`` for link prediction.

    Args:
        data: user-item data with ``edge_index``, ``val_edge_index`` and
            ``test_edge_index`` on the interaction store (changed in place
            and returned).
        seed: the split seed.
    """
    store = data[INTERACTS]
    known = torch.cat([store.edge_index, store.val_edge_index, store.test_edge_index], 1)
    sampler = NegativeSampler(known, num_items(data))
    gen = torch.Generator().manual_seed(seed + NEGATIVE_SEED_OFFSET)
    for split, key in (("train", "edge_index"), ("val", "val_edge_index"),
                       ("test", "test_edge_index")):
        users = store[key][0]
        store[NEG_KEYS[split]] = torch.stack([users, sampler.sample(users, gen)])
    data.eval_protocol = LINK_PREDICTION
    return data


def is_link_prediction(data: HeteroData) -> bool:
    """Whether ``data`` is evaluated by link prediction (AUC) instead of ranking."""
    return "eval_protocol" in data and data.eval_protocol == LINK_PREDICTION
