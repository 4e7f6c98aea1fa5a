"""GPT-GNN: generative pre-training of a heterogeneous GNN, fine-tuned for recommendation."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

from ..data.schema import ATTR, HAS_ATTR, INTERACTS, ITEM, USER, USER_ATTR, USER_HAS_ATTR
from ..errors import ConfigError
from ..losses import bpr_loss
from ..losses.attribute_generation import attribute_generation_loss
from ..losses.edge_generation import edge_generation_loss
from ..nn.generation import AttributeDecoder, Matcher
from ..nn.hgt import HGTEncoder
from ..tuning.space import Float
from .base import BPRBatch, Method, MethodConfig, check_minimums, register_method

REV_INTERACTS = (ITEM, "rev_interacts", USER)


@dataclass
class GPTGNNConfig(MethodConfig):
    """Hu, Dong, Wang, Chang and Sun, "GPT-GNN: Generative Pre-Training of Graph
    Neural Networks", KDD 2020, Sec. 4.1, and the authors' ``pretrain_OAG.py``
    (github.com/acbull/GPT-GNN): HGT encoder with ``n_hid`` 400 (``emb_dim``),
    8 heads, 3 layers, dropout 0.2; 256 output nodes per pre-training batch
    (``pretrain_batch_size``); 20 pre-training epochs; each edge of a target
    node masked with probability 0.5 (``mask_ratio``, their ``threshold``);
    attribute loss weight 1.0 (``attr_ratio``); 255 negatives per masked edge
    (``neg_samp_num``); matcher temperature 0.1; learning rate 1e-3
    (``max_lr``).

    Ours, not the paper's (it has no recommendation task): ``batch_size`` is
    the BPR batch of fine-tuning; ``freeze_layers`` freezes the inputs and
    the first HGT layers when fine-tuning starts (0: fine-tune everything, as
    the paper does); ``transfer_std`` is the standard deviation the user and
    item representations are scaled to when they initialise another method's
    embedding tables (``--init``; 0.1 as LightGCN-PyTorch's normal init).
    """

    emb_dim: int = 400
    num_heads: int = 8
    num_layers: int = 3
    dropout: float = 0.2
    lr: float = 1e-3
    batch_size: int = 2048
    pretrain_batch_size: int = 256
    pretrain_epochs: int = 20
    mask_ratio: float = 0.5
    attr_ratio: float = 1.0
    neg_samp_num: int = 255
    temperature: float = 0.1
    freeze_layers: int = 0
    transfer_std: float = 0.1


@register_method("gptgnn")
class GPTGNN(Method):
    """GPT-GNN on the user-item-attribute graph (Hu et al., KDD 2020).

    Graph: users, items, item attribute values (``data['attr']``: ml-100k
    genres and release year) and user attribute values (``data['user_attr']``:
    age, gender, occupation), with every relation and its reverse.

    Pre-training (Sec. 3.2-3.4): each epoch draws a random permutation of the
    user and item nodes (the node order) and cuts it into batches of target
    nodes. In a batch, every training interaction of a target is masked with
    probability ``mask_ratio``; a masked edge between two targets belongs to
    the later one in the order. Each target is split in two (the dummy-node
    trick, Sec. 3.4): its *edge-generation* copy keeps its id input and its
    attributes and receives its observed edges; its *attribute-generation*
    copy is a dummy node whose input is the type's shared dummy vector and
    which receives its observed interactions but none of its attribute edges.
    Targets send no messages in that step, so neither a target's attributes
    nor its id input reach any attribute-generation copy, even over several
    hops (stricter than the authors' code, where edge-generation copies send
    messages). Losses: edge generation (Eq. 6) of every masked edge from the
    owner's edge-generation copy against ``neg_samp_num`` shared negatives
    (true neighbours left out), plus ``attr_ratio`` times attribute
    generation (Eq. 5) of every attribute value of each target from its
    attribute-generation copy, with a softmax per field.

    Fine-tuning: BPR on the dot product of the HGT's user and item outputs
    on the whole training graph. ``encoder_state_dict`` also exports those
    outputs, scaled to ``transfer_std``, as ``encoder.user_emb`` /
    ``encoder.item_emb``: the names of LightGCN's tables, so that
    ``train --method lightgcn --init RUN_DIR`` starts LightGCN from them.
    """

    config_class = GPTGNNConfig
    space = {
        "lr": Float(1e-4, 1e-2, log=True),
        "dropout": Float(0.0, 0.5),
        "mask_ratio": Float(0.2, 0.8),
        "temperature": Float(0.05, 0.5, log=True),
    }
    description = "GPT-GNN: HGT pre-trained by attribute and edge generation, then BPR"
    paper = "Hu et al., KDD 2020"
    default_scheme = "pretrain_finetune"

    def __init__(self, data, cfg: GPTGNNConfig, **kwargs):
        super().__init__(data, cfg, **kwargs)
        check_minimums(cfg, emb_dim=1, num_heads=1, num_layers=1, pretrain_batch_size=1,
                       neg_samp_num=1, attr_ratio=0.0, freeze_layers=0, transfer_std=0.0)
        if not 0.0 <= cfg.mask_ratio <= 1.0:
            raise ConfigError(f"mask_ratio must lie in [0, 1], got {cfg.mask_ratio}")
        if not 0.0 <= cfg.dropout < 1.0:
            raise ConfigError(f"dropout must lie in [0, 1), got {cfg.dropout}")
        if cfg.emb_dim % cfg.num_heads:
            raise ConfigError(f"emb_dim {cfg.emb_dim} must be a multiple of num_heads "
                              f"{cfg.num_heads}")
        if cfg.freeze_layers >= cfg.num_layers:
            # Fine-tuning trains the HGT only: freezing every layer leaves nothing to train.
            raise ConfigError(f"freeze_layers {cfg.freeze_layers} must be below num_layers "
                              f"{cfg.num_layers}: freezing every layer leaves nothing to "
                              "fine-tune")
        self.train_edges = data[INTERACTS].edge_index
        self.train_keys = torch.sort(self.train_edges[0] * self.num_items
                                     + self.train_edges[1]).values
        num_nodes = {USER: self.num_users, ITEM: self.num_items}
        edge_types = [INTERACTS, REV_INTERACTS]
        # (node type, value type, relation, reverse relation, field of each value)
        self.attr_graphs: list[tuple[str, str, tuple, tuple, Tensor, Tensor]] = []
        for owner, node, rel in ((ITEM, ATTR, HAS_ATTR), (USER, USER_ATTR, USER_HAS_ATTR)):
            if rel in data.edge_types and int(data[node].num_nodes or 0) > 0 \
                    and data[rel].edge_index.size(1) > 0:
                rev = (node, "rev_has", owner)
                num_nodes[node] = int(data[node].num_nodes)
                edge_types += [rel, rev]
                self.attr_graphs.append((owner, node, rel, rev, data[rel].edge_index,
                                         data[node].field))
        self.encoder = HGTEncoder(num_nodes, edge_types, cfg.emb_dim, cfg.num_heads,
                                  cfg.num_layers, cfg.dropout)
        # Edge generation: one matcher per direction (the authors: one per relation).
        self.match_item = Matcher(cfg.emb_dim, cfg.temperature, cfg.dropout)  # user -> item
        self.match_user = Matcher(cfg.emb_dim, cfg.temperature, cfg.dropout)  # item -> user
        self.attr_decoders = torch.nn.ModuleDict({
            owner: AttributeDecoder(cfg.emb_dim, int(field.numel()))
            for owner, _, _, _, _, field in self.attr_graphs})
        self.full_graph = {INTERACTS: self.train_edges, REV_INTERACTS: self.train_edges.flip(0)}
        for _, _, rel, rev, edges, _ in self.attr_graphs:
            self.full_graph[rel] = edges
            self.full_graph[rev] = edges.flip(0)

    # -- pre-training -----------------------------------------------------
    def pretrain_batches(self, generator: torch.Generator) -> tuple[Iterator[Tensor], int]:
        """A random node order over users (ids ``0..U-1``) and items (``U..U+I-1``),
        cut into batches of targets; the position in a batch is the order."""
        n = self.num_users + self.num_items
        size = self.cfg.pretrain_batch_size
        device = self.train_edges.device
        order = torch.randperm(n, generator=generator, device=generator.device).to(device)
        return (order[s:s + size] for s in range(0, n, size)), -(-n // size)

    def _uniform(self, n: int) -> Tensor:
        gen = self.generator
        device = gen.device if gen is not None else self.train_edges.device
        return torch.rand(n, generator=gen, device=device).to(self.train_edges.device)

    def _randint(self, high: int, n: int) -> Tensor:
        gen = self.generator
        device = gen.device if gen is not None else self.train_edges.device
        return torch.randint(high, (n,), generator=gen, device=device).to(self.train_edges.device)

    def pretrain_views(self, targets: Tensor) -> dict:
        """The graph of one pre-training step (no randomness beyond the edge masks).

        Returns the edge dict with dummies, the dummy counts, the slot of each
        target's dummy (``dummy_user`` / ``dummy_item``, -1 for non-targets),
        and the masked edges with the side that generates them.
        """
        U, I = self.num_users, self.num_items
        device = targets.device
        pos = torch.arange(targets.numel(), device=device)
        is_user = targets < U
        rank_u = torch.full((U,), -1, dtype=torch.long, device=device)
        rank_i = torch.full((I,), -1, dtype=torch.long, device=device)
        rank_u[targets[is_user]] = pos[is_user]
        rank_i[targets[~is_user] - U] = pos[~is_user]
        slot_u = torch.full((U,), -1, dtype=torch.long, device=device)
        slot_i = torch.full((I,), -1, dtype=torch.long, device=device)
        n_tu, n_ti = int(is_user.sum()), int((~is_user).sum())
        slot_u[targets[is_user]] = torch.arange(n_tu, device=device)
        slot_i[targets[~is_user] - U] = torch.arange(n_ti, device=device)

        u, i = self.train_edges
        ru, ri = rank_u[u], rank_i[i]
        touched = (ru >= 0) | (ri >= 0)
        masked = touched & (self._uniform(u.numel()) < self.cfg.mask_ratio)
        kept = ~masked
        # Targets only receive: messages leave non-target nodes only.
        send_u, send_i = kept & (ru < 0), kept & (ri < 0)
        graph = {INTERACTS: self.train_edges[:, send_u],
                 REV_INTERACTS: self.train_edges[:, send_i].flip(0)}
        # Attribute-generation copies (dummies, after the real nodes) receive the
        # observed interactions of their node from non-targets; no attribute edges.
        to_du = send_i & (ru >= 0)
        to_di = send_u & (ri >= 0)
        graph[REV_INTERACTS] = torch.cat(
            [graph[REV_INTERACTS], torch.stack([i[to_du], U + slot_u[u[to_du]]])], 1)
        graph[INTERACTS] = torch.cat(
            [graph[INTERACTS], torch.stack([u[to_di], I + slot_i[i[to_di]]])], 1)
        for owner, _, rel, rev, edges, _ in self.attr_graphs:
            rank = rank_u if owner == USER else rank_i
            graph[rel] = edges[:, rank[edges[0]] < 0]     # targets do not send
            graph[rev] = edges.flip(0)                    # real copies see their attributes
        user_owns = ru > ri  # the later target in the order generates the edge
        return {"graph": graph, "dummies": {USER: n_tu, ITEM: n_ti},
                "slot": {USER: slot_u, ITEM: slot_i},
                "masked_by_user": self.train_edges[:, masked & user_owns],
                "masked_by_item": self.train_edges[:, masked & ~user_owns]}

    def pretrain_loss(self, batch: Tensor) -> dict[str, Tensor]:
        view = self.pretrain_views(batch)
        h = self.encoder(view["graph"], view["dummies"])
        U, I = self.num_users, self.num_items
        users, items = h[USER][:U], h[ITEM][:I]
        dummies = {USER: h[USER][U:], ITEM: h[ITEM][I:]}
        n = self.cfg.neg_samp_num
        edge_terms = []
        by_user, by_item = view["masked_by_user"], view["masked_by_item"]
        if by_user.size(1):
            negs = self._randint(I, n)
            q, p = users[by_user[0]], items[by_user[1]]
            fake = self._linked(by_user[0][:, None] * I + negs[None, :])
            edge_terms.append(edge_generation_loss(self.match_item.pair(q, p),
                                                   self.match_item(q, items[negs]), fake))
        if by_item.size(1):
            negs = self._randint(U, n)
            q, p = items[by_item[1]], users[by_item[0]]
            fake = self._linked(negs[None, :] * I + by_item[1][:, None])
            edge_terms.append(edge_generation_loss(self.match_user.pair(q, p),
                                                   self.match_user(q, users[negs]), fake))
        out = {"edge_gen": sum(edge_terms) / max(len(edge_terms), 1)
               if edge_terms else users.sum() * 0.0}
        attr_terms = []
        for owner, _, _, _, edges, field in self.attr_graphs:
            slot = view["slot"][owner][edges[0]]
            pick = slot >= 0
            if not bool(pick.any()):
                continue
            logits = self.attr_decoders[owner](dummies[owner])
            attr_terms.append(attribute_generation_loss(logits, slot[pick], edges[1][pick], field))
        if attr_terms:
            out["attr_gen"] = self.cfg.attr_ratio * sum(attr_terms) / len(attr_terms)
        return out

    def _linked(self, keys: Tensor) -> Tensor:
        """Whether each ``user * num_items + item`` key is a training interaction."""
        pos = torch.searchsorted(self.train_keys, keys).clamp(max=self.train_keys.numel() - 1)
        return self.train_keys[pos] == keys

    # -- fine-tuning and evaluation ---------------------------------------
    def on_finetune_start(self) -> None:
        """Freeze the inputs and the first ``freeze_layers`` HGT layers (if any)."""
        k = self.cfg.freeze_layers
        if k == 0:
            return
        frozen = [self.encoder.emb, self.encoder.dummy, self.encoder.adapt,
                  *self.encoder.convs[:k]]
        for module in frozen:
            for p in module.parameters():
                p.requires_grad_(False)

    def forward_full(self) -> tuple[Tensor, Tensor]:
        h = self.encoder(self.full_graph)
        return h[USER], h[ITEM]

    def loss(self, batch: BPRBatch) -> dict[str, Tensor]:
        users, items = self.forward_full()
        u, i, j = batch
        return {"bpr": bpr_loss(users[u], items[i], items[j])}

    def embeddings(self) -> tuple[Tensor, Tensor]:
        return self.forward_full()

    def encoder_state_dict(self) -> dict[str, Tensor]:
        """The HGT's ``encoder.*`` entries, plus ``encoder.user_emb`` /
        ``encoder.item_emb``: the user and item outputs on the training graph
        scaled to standard deviation ``transfer_std`` (LightGCN's table names)."""
        state = super().encoder_state_dict()
        was_training = self.training
        self.eval()
        with torch.no_grad():
            users, items = self.forward_full()
        self.train(was_training)
        for key, x in (("encoder.user_emb", users), ("encoder.item_emb", items)):
            std = x.std().clamp_min(1e-12)
            state[key] = (x - x.mean()) * (self.cfg.transfer_std / std)
        return state
