"""PT-GNN: pre-training a GNN to reconstruct the embeddings of cold-start users and items.

Hao, Zhang, Yin, Li and Chen, "Pre-Training Graph Neural Networks for
Cold-Start Users and Items Representation", WSDM 2021.

1. **Base model** (Sec. 3.2): embeddings learned from all training
   interactions are the ground truth of warm nodes. The paper uses NCF; here
   the base model is LightGCN (He et al., SIGIR 2020), trained with BPR in the
   first ``base_epochs`` pre-training epochs.
2. **Cold-start simulation** (Sec. 4.1): a warm node (at least
   ``target_min_degree`` training interactions) is shown only ``K`` sampled
   neighbours, each of them ``K`` of theirs, down to ``L`` hops
   (:class:`~ssgraphrec.data.neighbour_sampler.NeighbourTable`).
3. **Meta aggregator and L-order GNN** (Sec. 4.1-4.2,
   :class:`~ssgraphrec.nn.ptgnn.ReconstructionGNN`): the GNN reconstructs the
   node's embedding from that tree, maximising the cosine similarity to the
   ground truth (Eq. 2, :func:`~ssgraphrec.losses.cosine_reconstruction_loss`);
   the meta aggregator is trained on the same task from the first-order shots.
4. **Adaptive neighbour sampler** (Sec. 4.3,
   :class:`~ssgraphrec.nn.ptgnn.AdaptiveNeighbourSampler`, a one-step
   simplification of the paper's MDP): REINFORCE with the gain in cosine
   similarity over keeping every neighbour as the reward.
5. **Fine-tuning and inference** (Sec. 4.4): BPR on the recommendation task
   continues training the base model; at evaluation every cold node (1 to
   ``cold_degree`` training interactions) is represented by the pre-trained
   GNN's reconstruction from its neighbourhood, computed from the current
   base embeddings (``cold_mode``). The pre-trained GNN itself is not updated
   by BPR (the paper fine-tunes it too; see docs/cold-start.md for why not).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ..data.neighbour_sampler import NeighbourTable
from ..errors import ConfigError
from ..losses import cosine_reconstruction
from ..nn.ptgnn import ITEM, USER, AdaptiveNeighbourSampler, ReconstructionGNN
from ..tuning.space import Int
from .base import BPRBatch, check_minimums, register_method
from .lightgcn import LightGCN, LightGCNConfig

#: Seed of the neighbour draws of evaluation, so that embeddings() is repeatable.
EVAL_SEED = 0
COLD_MODES = ("replace", "add")


@dataclass
class PTGNNConfig(LightGCNConfig):
    """PT-GNN's settings (Hao et al., WSDM 2021, Sec. 5.1, and the official
    code's ``lastfm/setting.py``, jerryhao66/Pretrain-Recsys).

    - ``k_shot = 3``: ``kshot_num = kshot_second_num = kshot_third_num = 3``.
    - ``num_gnn_layers = 3``: the paper's GNNs reconstruct from up to
      3rd-order neighbours (its 1st/2nd/3rd-order tasks).
    - ``num_heads = 4``, ``num_blocks = 2``, ``ff_dim = 4``: the meta
      aggregator's Transformer (``num_heads``, ``num_blocks``, ``d_ff``).
    - ``sampler_hidden = 8``: ``agent_weight_size`` of the policy networks.
    - ``recon_epochs = 20``: ``epochs = 20`` of the reconstruction tasks.
    - base model: LightGCN with its paper's settings (inherited: 64
      dimensions, 3 layers, lr 1e-3, batch 1024, L2 1e-4), where the paper
      used NCF. ``base_epochs = 40`` is this project's choice: LightGCN's
      best validation epoch on lastfm in benchmarks/results/quality.
    - ``pretrain_epochs``: None means ``base_epochs + recon_epochs`` (= 60),
      what the pretrain->finetune scheme runs when the run does not set
      ``--pretrain-epochs``; the first ``base_epochs`` train the base model,
      the rest the reconstruction.
    - ``target_min_degree = 10``: the warm nodes that simulate cold start
      (the paper: "users/items with abundant interactions"; its threshold is
      not published), ``cold_degree = 3`` (= K): nodes with 1 to 3 training
      interactions are represented by the pre-trained GNN after
      pre-training, ``recon_batch_size = 256`` target nodes per batch
      (project choices).
    - ``cold_mode``: how a cold node's reconstruction enters its embedding at
      evaluation. ``"replace"`` (default, the paper's use of the pre-trained
      GNN for cold nodes): the reconstruction, at the mean norm of the warm
      nodes of its type (the GNN is trained by cosine, so its output has no
      meaningful length). ``"add"`` (a project variant): the node's LightGCN
      embedding plus the reconstruction at that embedding's own norm.
    - The reconstruction is trained by the run's optimizer (Adam, the method's
      lr) where the official code uses Adagrad with lr 0.003.
    """

    k_shot: int = 3
    num_gnn_layers: int = 3
    num_heads: int = 4
    num_blocks: int = 2
    ff_dim: int = 4
    sampler_hidden: int = 8
    adaptive_sampler: bool = True
    base_epochs: int = 40
    recon_epochs: int = 20
    pretrain_epochs: int | None = None
    target_min_degree: int = 10
    cold_degree: int = 3
    recon_batch_size: int = 256
    cold_mode: str = "replace"


@register_method("ptgnn")
class PTGNN(LightGCN):
    """PT-GNN on a LightGCN base model; scheme pretrain->finetune by default.

    Pre-training epochs ``0 .. base_epochs-1`` train LightGCN with BPR (the
    usual BPR batches); at epoch ``base_epochs`` its final embeddings are
    frozen as the ground truth and the remaining epochs train the
    reconstruction (loss terms ``recon``, ``meta`` and, with the adaptive
    sampler, ``policy``) on batches of warm target nodes. Fine-tuning trains
    the base model with BPR; evaluation represents cold nodes by their
    reconstruction. With scheme ``joint`` (no pre-training) PT-GNN is plain
    LightGCN.
    """

    config_class = PTGNNConfig
    space = {
        **LightGCN.space,
        "k_shot": Int(2, 8),
        "recon_epochs": Int(5, 40, step=5),
    }
    description = ("PT-GNN: K-shot reconstruction of LightGCN embeddings (meta aggregator, "
                   "adaptive sampler) for cold-start nodes")
    paper = "Hao et al., WSDM 2021"
    default_scheme = "pretrain_finetune"

    def __init__(self, data, cfg: PTGNNConfig, **kwargs):
        if cfg.pretrain_epochs is None:  # a copy: the caller's config stays as it was given
            cfg = dataclasses.replace(cfg, pretrain_epochs=cfg.base_epochs + cfg.recon_epochs)
        super().__init__(data, cfg, **kwargs)
        check_minimums(cfg, k_shot=1, num_gnn_layers=1, num_heads=1, num_blocks=1, ff_dim=1,
                       sampler_hidden=1, base_epochs=0, recon_epochs=0, pretrain_epochs=0,
                       target_min_degree=1, cold_degree=0, recon_batch_size=1)
        if cfg.cold_mode not in COLD_MODES:
            raise ConfigError(f"cold_mode must be one of {', '.join(COLD_MODES)}, "
                              f"got {cfg.cold_mode!r}")
        if cfg.emb_dim % cfg.num_heads:
            raise ConfigError(f"emb_dim ({cfg.emb_dim}) must be divisible by num_heads "
                              f"({cfg.num_heads})")
        self.table = NeighbourTable(self.graph, generator=self.generator)
        self.reconstructor = ReconstructionGNN(cfg.emb_dim, cfg.num_gnn_layers, cfg.num_heads,
                                               cfg.num_blocks, cfg.ff_dim)
        self.sampler = AdaptiveNeighbourSampler(cfg.emb_dim, cfg.num_gnn_layers,
                                                cfg.sampler_hidden)
        degree = self.table.degree
        self.register_buffer("warm_nodes", (degree >= cfg.target_min_degree).nonzero().view(-1),
                             persistent=False)
        self.register_buffer("cold_nodes", ((degree >= 1) & (degree <= cfg.cold_degree))
                             .nonzero().view(-1), persistent=False)
        n = self.num_users + self.num_items
        #: the frozen base-model embeddings (ground truth) of the reconstruction epochs
        self.register_buffer("targets", torch.zeros(n, cfg.emb_dim))
        #: 1 once the reconstruction has been trained: cold nodes use it from then on
        self.register_buffer("stage", torch.zeros((), dtype=torch.long))
        self._pretrain_epoch = -1
        #: g(v) of every node, refreshed each reconstruction epoch
        self._meta_table: Tensor | None = None

    # -- the pretrain phase -------------------------------------------------
    def on_pretrain_epoch_start(self, epoch: int) -> None:
        """Freeze the ground truth when the reconstruction epochs begin; reshuffle neighbours."""
        self._pretrain_epoch = epoch
        if epoch < self.cfg.base_epochs:
            return
        if int(self.stage) == 0:
            with torch.no_grad():
                users, items = self.encoder(self.adj)
                self.targets.copy_(torch.cat([users, items]))
            self.stage.fill_(1)
        self.table.shuffle(self.generator)
        self._meta_table = self.node_meta(self.targets, self.generator)

    def node_meta(self, table: Tensor, generator: torch.Generator | None,
                  canonical: bool = False) -> Tensor:
        """The meta aggregator's embedding of every node from ``K`` freshly sampled neighbours
        (``canonical``: see :meth:`NeighbourTable.sample`)."""
        nodes = torch.arange(table.size(0), device=table.device)
        nbrs, mask = self.table.sample(nodes, self.cfg.k_shot, generator, canonical)
        return self.reconstructor.node_meta(table.detach(), nbrs, mask, self.num_users)

    def _current_meta(self, table: Tensor) -> Tensor:
        if self._meta_table is None:
            self._meta_table = self.node_meta(table, self.generator)
        return self._meta_table

    def _type_norms(self, table: Tensor) -> Tensor:
        """Mean embedding norm of the warm users and of the warm items (1 where none is warm)."""
        norms = table.norm(dim=-1)
        out = []
        for is_user in (True, False):
            sel = self.warm_nodes[(self.warm_nodes < self.num_users) == is_user]
            out.append(norms[sel].mean() if sel.numel() else norms.new_ones(()))
        return torch.stack(out)

    def pretrain_batches(self, generator: torch.Generator) -> tuple[Iterator[Tensor], int] | None:
        """``None`` (BPR triples) in the base epochs, then warm target nodes in random order."""
        if self._pretrain_epoch < self.cfg.base_epochs:
            return None
        nodes = self.warm_nodes
        if nodes.numel() == 0:
            raise ConfigError(f"ptgnn: no node has target_min_degree={self.cfg.target_min_degree} "
                              "training interactions to simulate cold start from; lower it")
        order = torch.randperm(nodes.numel(), generator=generator,
                               device=generator.device).to(nodes.device)
        size = self.cfg.recon_batch_size
        count = -(-nodes.numel() // size)
        return (nodes[order[s:s + size]] for s in range(0, nodes.numel(), size)), count

    def pretrain_loss(self, batch) -> dict[str, Tensor]:
        """BPR of the base model on BPR batches; reconstruction terms on node batches."""
        if isinstance(batch, BPRBatch):
            return LightGCN.loss(self, batch)
        return self.reconstruction_loss(batch)

    def reconstruction_loss(self, nodes: Tensor) -> dict[str, Tensor]:
        """``recon`` and ``meta`` (negative mean cosine similarity, Eq. 2) and ``policy``.

        Users and items in ``nodes`` are reconstructed by their own towers; the
        terms average over all nodes of the batch.
        """
        cfg = self.cfg
        cos, meta_cos, policy = [], [], []
        meta_table = self._current_meta(self.targets)
        for root_type, roots in self._by_type(nodes):
            tree = self.table.tree(roots, cfg.k_shot, cfg.num_gnn_layers, self.generator)
            target = self.targets[roots]
            meta = self.reconstructor.meta_only(tree, self.targets, root_type)
            meta_cos.append(cosine_reconstruction(meta, target))
            if cfg.adaptive_sampler and cfg.num_gnn_layers > 1:
                h0 = [h.detach() for h in self.reconstructor.inputs(tree, self.targets)]
                probs = self.sampler.probabilities(tree, h0, meta.detach())
                keep, logp = self.sampler.act(tree, probs, self.generator)
                rec = self.reconstructor(tree, self.targets, root_type, keep, meta_table)
                c = cosine_reconstruction(rec, target)
                with torch.no_grad():
                    full = cosine_reconstruction(
                        self.reconstructor(tree, self.targets, root_type, None, meta_table), target)
                policy.append(-(c.detach() - full) * logp)
            else:
                rec = self.reconstructor(tree, self.targets, root_type, None, meta_table)
                c = cosine_reconstruction(rec, target)
            cos.append(c)
        terms = {"recon": -torch.cat(cos).mean(), "meta": -torch.cat(meta_cos).mean()}
        if policy:
            terms["policy"] = torch.cat(policy).mean()
        return terms

    def _by_type(self, nodes: Tensor) -> list[tuple[str, Tensor]]:
        is_user = nodes < self.num_users
        out = [(USER, nodes[is_user]), (ITEM, nodes[~is_user])]
        return [(t, n) for t, n in out if n.numel()]

    def on_finetune_start(self) -> None:
        if int(self.stage) == 0:
            raise ConfigError(
                f"ptgnn: the reconstruction was never trained: pre-training ran "
                f"{self._pretrain_epoch + 1} epochs, all of them base-model epochs "
                f"(base_epochs={self.cfg.base_epochs}); set pretrain_epochs above base_epochs "
                f"(default {self.cfg.base_epochs + self.cfg.recon_epochs})")

    def encoder_state_dict(self) -> dict[str, Tensor]:
        """The base model, the reconstruction GNN, the sampler and the stage."""
        keep = ("encoder.", "reconstructor.", "sampler.", "stage")
        return {k: v.detach() for k, v in self.state_dict().items() if k.startswith(keep)}

    # -- fine-tuning and inference -----------------------------------------
    @torch.no_grad()
    def cold_directions(self, table: Tensor, generator: torch.Generator | None = None,
                        canonical: bool = False, chunk: int = 4096) -> Tensor:
        """Unit reconstructions ``[n_cold, d]`` of every cold node from its K-shot tree over ``table``.

        Computed without gradients, ``chunk`` nodes at a time; the sampler
        keeps the neighbours its policy favours (probability at least 1/2).
        ``canonical``: see :meth:`NeighbourTable.sample`.
        """
        cfg = self.cfg
        meta_table = self.node_meta(table, generator, canonical)
        out = table.new_zeros(self.cold_nodes.numel(), table.size(1))
        for start in range(0, self.cold_nodes.numel(), chunk):
            nodes = self.cold_nodes[start:start + chunk]
            rows = torch.arange(start, start + nodes.numel(), device=nodes.device)
            is_user = nodes < self.num_users
            for root_type, sel in ((USER, is_user), (ITEM, ~is_user)):
                roots = nodes[sel]
                if roots.numel() == 0:
                    continue
                tree = self.table.tree(roots, cfg.k_shot, cfg.num_gnn_layers, generator,
                                       canonical)
                keep = None
                if cfg.adaptive_sampler and cfg.num_gnn_layers > 1:
                    h0 = self.reconstructor.inputs(tree, table)
                    meta = self.reconstructor.meta_only(tree, table, root_type)
                    keep, _ = self.sampler.act(tree, self.sampler.probabilities(tree, h0, meta),
                                               greedy=True)
                rec = self.reconstructor(tree, table, root_type, keep, meta_table)
                out[rows[sel]] = F.normalize(rec, dim=-1)
        return out

    def _with_cold(self, users: Tensor, items: Tensor, directions: Tensor) -> tuple[Tensor, Tensor]:
        """``(users, items)`` with the cold rows built from the unit ``directions`` (``cold_mode``)."""
        if self.cold_nodes.numel() == 0:
            return users, items
        table = torch.cat([users, items])
        own = table[self.cold_nodes]
        if self.cfg.cold_mode == "add":
            rows = own + directions * own.norm(dim=-1, keepdim=True)
        else:
            norms = self._type_norms(table)
            rows = directions * torch.where(self.cold_nodes < self.num_users, norms[0],
                                            norms[1]).unsqueeze(-1)
        table = table.index_copy(0, self.cold_nodes, rows)
        return table[: self.num_users], table[self.num_users:]

    def embeddings(self) -> tuple[Tensor, Tensor]:
        """LightGCN embeddings, cold nodes' built from their reconstruction once pre-trained.

        Neighbour draws use a fixed seed and the sorted neighbour order, so repeated
        calls agree, also after a checkpoint is reloaded.
        """
        users, items = self.encoder(self.adj)
        if int(self.stage) == 0:
            return users, items
        gen = torch.Generator(device=self.cold_nodes.device).manual_seed(EVAL_SEED)
        cold = self.cold_directions(torch.cat([users, items]), gen, canonical=True)
        return self._with_cold(users, items, cold)
