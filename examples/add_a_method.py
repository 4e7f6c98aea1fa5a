"""Add a method in one file, register it, and train it like any other.

    python examples/add_a_method.py

The method declares what it is (its tasks, how it scores, its config dataclass with
typed settings); registration checks that against what it implements, and the
trainer, the tuner and the contract tests take it from there (docs/architecture.md).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ssgraphrec.config import RunConfig
from ssgraphrec.losses import bpr_loss, info_nce, l2_regularization
from ssgraphrec.methods.base import BPRBatch, Method, MethodConfig, register_method
from ssgraphrec.train import train
from ssgraphrec.tuning.space import OPTIMISER_SPACE, Float


@dataclass
class MFCLConfig(MethodConfig):
    """BPR (Rendle et al., UAI 2009); the InfoNCE weight and temperature are this
    example's."""

    emb_dim: int = 64
    reg: float = 1e-4
    ssl_weight: float = 0.1
    temperature: float = 0.2
    lr: float = 5e-3


@register_method("mfcl")
class MFCL(Method):
    """Matrix factorisation: BPR plus ``ssl_weight`` times an in-batch InfoNCE of each
    batch user against its positive item."""

    config_class = MFCLConfig
    tasks = ("ranking",)
    scoring = "embeddings"
    space = {**OPTIMISER_SPACE, "ssl_weight": Float(1e-3, 1.0, log=True)}
    description = "MF-CL: matrix factorisation, BPR and in-batch InfoNCE (an example)"

    def __init__(self, data, cfg: MFCLConfig, **kwargs):
        super().__init__(data, cfg, **kwargs)
        self.user_emb = nn.Parameter(torch.randn(self.num_users, cfg.emb_dim) * 0.1)
        self.item_emb = nn.Parameter(torch.randn(self.num_items, cfg.emb_dim) * 0.1)

    def loss(self, batch: BPRBatch) -> dict[str, Tensor]:
        u, i, j = batch
        users, pos, neg = self.user_emb[u], self.item_emb[i], self.item_emb[j]
        return {
            "bpr": bpr_loss(users, pos, neg),
            "reg": self.cfg.reg * l2_regularization(users, pos, neg),
            "ssl": self.cfg.ssl_weight * info_nce(users, pos, self.cfg.temperature),
        }

    def embeddings(self) -> tuple[Tensor, Tensor]:
        return self.user_emb, self.item_emb


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as out:
        cfg = RunConfig(method="mfcl", epochs=15, lr=0.01,
                        params={"emb_dim": 32, "ssl_weight": 0.05})
        _, results = train(cfg, out, progress=False)
    print(f"mfcl on the synthetic data: test recall@20 {results['test']['recall@20']:.4f} "
          f"(MostPop {results['baseline']['test']['recall@20']:.4f})")
