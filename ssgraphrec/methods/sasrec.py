"""SASRec: self-attentive sequential recommendation, trained with cross-entropy over all items."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from torch_geometric.data import HeteroData

from ..data.schema import CONTAINS, SESSION, task_of
from ..data.sessions import padded_prefixes, padded_sessions, prefix_targets, session_pointer
from ..errors import ConfigError, check_probability
from ..losses.cross_entropy import mean_cross_entropy
from ..nn import SASRecEncoder
from ..tuning.space import Choice, Float, Int
from .base import MethodConfig, SessionMethod, check_minimums, register_method


@dataclass
class SASRecConfig(MethodConfig):
    r"""Kang & McAuley, "Self-Attentive Sequential Recommendation", ICDM 2018, with the
    backbone settings CL4SRec uses for it (Xie et al., "Contrastive Learning for
    Sequential Recommendation", ICDE 2022 / arXiv:2010.14395, Sec. 5.1.4): embedding
    size 64, 2 self-attention blocks, 2 heads, maximum sequence length 50, batch 256,
    Adam lr :math:`10^{-3}`.

    The values the paper leaves open are RecBole's SASRec defaults
    (``recbole/properties/model/SASRec.yaml``, the configuration of the RecBole /
    DuoRec CL4SRec): feed-forward width 256, GELU, dropout 0.5 (RecBole's
    ``hidden_dropout_prob`` and ``attn_dropout_prob`` are both 0.5; PyTorch's
    Transformer layer has one rate for both), LayerNorm
    :math:`\epsilon = 10^{-12}`, weights from :math:`\mathcal{N}(0, 0.02^2)`,
    post-norm blocks.

    Training: the next item at every position of each user's training sequence
    (input ``seq[:-1]``, target ``seq[1:]``, last ``max_len`` items), softmax
    cross-entropy over all items, as CL4SRec trains its main task (Eq. 2) and
    RecBole's ``loss_type: CE``. SASRec's own loss (binary cross-entropy with
    one sampled negative per position) is not implemented.

    ``train_on``: ``"sequences"`` (default, as above: one sample per user,
    a target at every position; the CL4SRec paper's Eq. 2 and the S3-Rec /
    CoSeRec code) or ``"prefixes"``: one sample per prefix of each training
    sequence (its last ``max_len`` items, the next item as the only target),
    as RecBole's sequential data loader feeds SASRec and CL4SRec (the RecBole /
    DuoRec CL4SRec). The same targets (up to the ``max_len`` cut), but as many
    samples as targets (131,413 prefixes for 22,363 users on Amazon Beauty), so
    about six times the optimizer steps per epoch, each with fewer targets.

    On session samples (``next_item`` data such as ``tmall``, the SASRec baseline
    of the session-based papers) the input is the sample's session (its last
    ``max_len`` clicks) and the loss is the cross-entropy of its label at the
    last position only: the prefix augmentation already makes every earlier
    position a sample of its own.
    """

    batch_size: int = 256
    emb_dim: int = 64
    num_layers: int = 2
    num_heads: int = 2
    max_len: int = 50
    dropout: float = 0.5
    inner_size: int = 256
    norm_first: bool = False
    train_on: str = "sequences"


@register_method("sasrec")
class SASRec(SessionMethod):
    r"""SASRec: a causal Transformer over each user's sequence; the output at the last
    position scores every item by a dot product with its embedding.

    Input of a user (``--dataset amazon-beauty``): validation, the training
    sequence; test, the training sequence followed by the validation item
    (:mod:`ssgraphrec.data.readers.s3rec`), each left-padded to ``max_len``.
    """

    config_class = SASRecConfig
    space = {
        "lr": Float(1e-4, 1e-2, log=True),
        "batch_size": Choice((128, 256, 512)),
        "dropout": Float(0.1, 0.6),
        "num_layers": Int(1, 3),
    }
    description = "SASRec: causal self-attention over user sequences, CE over all items"
    paper = "Kang & McAuley, ICDM 2018"
    tasks = ("sequential", "next_item")

    def __init__(self, data: HeteroData, cfg: SASRecConfig, **kwargs):
        super().__init__(data, cfg, **kwargs)
        check_probability("dropout", cfg.dropout)
        check_minimums(cfg, emb_dim=1, num_layers=1, num_heads=1, max_len=1, inner_size=1)
        if cfg.emb_dim % cfg.num_heads:
            raise ConfigError(f"emb_dim {cfg.emb_dim} is not divisible by num_heads {cfg.num_heads}")
        self.encoder = SASRecEncoder(self.num_items, cfg.emb_dim, cfg.num_layers, cfg.num_heads,
                                     cfg.max_len, cfg.dropout, cfg.inner_size, cfg.norm_first)
        self.ptr = session_pointer(data)
        store = data[SESSION]
        self.val_target = store.val_target if "val_target" in store else None
        self.task = task_of(data)
        if cfg.train_on not in ("sequences", "prefixes"):
            raise ConfigError(f"train_on must be 'sequences' or 'prefixes', got {cfg.train_on!r}")
        if cfg.train_on == "prefixes":
            if self.task != "sequential":
                raise ConfigError("train_on='prefixes' applies to user sequences (sequential data); "
                                  f"this data is {self.task} (session samples are prefixes already)")
            self.train_samples = prefix_targets(data, store.train_mask, self.ptr)

    # -- inputs -------------------------------------------------------------
    def train_sequences(self, batch: Tensor) -> tuple[Tensor, Tensor]:
        """``(input, target)`` id matrices ``[B, max_len]`` of a batch of sessions:
        ``input = seq[:-1]``, ``target = seq[1:]`` (0 where the input is padding).

        With ``train_on="prefixes"`` the batch holds prefix samples (incidence
        ids of :func:`~ssgraphrec.data.sessions.prefix_targets`): the input is
        the prefix, the target its next item at the last position only."""
        if self.cfg.train_on == "prefixes":
            inputs = padded_prefixes(self.data, batch, self.cfg.max_len, self.ptr)
            targets = torch.zeros_like(inputs)
            targets[:, -1] = self.data[CONTAINS].edge_index[1, batch] + 1
            return inputs, targets
        if self.task == "next_item":  # the session, then its label at the last position only
            label = self.data[SESSION].target[batch]
            ids = padded_sessions(self.data, batch, self.cfg.max_len + 1, append=label, ptr=self.ptr)
            targets = torch.zeros_like(ids[:, 1:])
            targets[:, -1] = ids[:, -1]
            return ids[:, :-1], targets
        ids = padded_sessions(self.data, batch, self.cfg.max_len + 1, ptr=self.ptr)
        inputs, targets = ids[:, :-1], ids[:, 1:]
        return inputs, targets * (inputs > 0)

    def eval_sequences(self, samples: Tensor, split: str) -> Tensor:
        """``[B, max_len]`` inputs of ``split``: the training sequence, plus the
        validation item at test time."""
        append = None
        if split == "test" and self.val_target is not None:
            append = self.val_target[samples]
        return padded_sessions(self.data, samples, self.cfg.max_len, append=append, ptr=self.ptr)

    # -- objective ------------------------------------------------------------
    def rec_loss(self, inputs: Tensor, targets: Tensor) -> Tensor:
        """Mean cross-entropy over all items at every non-padding position."""
        hidden = self.encoder(inputs)
        where = targets > 0
        if not bool(where.any()):
            return hidden.sum() * 0.0
        logits = self.encoder.scores(hidden[where])
        return mean_cross_entropy(logits, targets[where] - 1)

    def loss(self, batch: Tensor) -> dict[str, Tensor]:  # type: ignore[override]
        inputs, targets = self.train_sequences(batch)
        return {"ce": self.rec_loss(inputs, targets)}

    @torch.no_grad()
    def score(self, samples: Tensor, split: str) -> Tensor:
        return self.encoder.scores(self.encoder.represent(self.eval_sequences(samples, split)))
