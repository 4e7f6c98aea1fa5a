"""PT-GNN building blocks: the meta aggregator, the L-order reconstruction GNN and
the adaptive neighbour sampler.

Hao, Zhang, Yin, Li and Chen, "Pre-Training Graph Neural Networks for
Cold-Start Users and Items Representation", WSDM 2021. Every module works on a
:class:`ssgraphrec.data.neighbour_sampler.NeighbourTree` (the K-shot
neighbourhood of a batch of root nodes) and a table of input embeddings over
all ``U + I`` nodes (users first); all of them are batched tensor code over the
whole tree, looping only over its depth ``L`` (at most a handful of levels).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data.neighbour_sampler import NeighbourTree

USER, ITEM = "user", "item"


def masked_mean(x: Tensor, mask: Tensor) -> Tensor:
    """Mean of ``x`` (``[..., K, d]``) over the slots where ``mask`` (``[..., K]``) holds; 0 if none."""
    w = mask.to(x.dtype).unsqueeze(-1)
    return (x * w).sum(-2) / w.sum(-2).clamp(min=1.0)


class MetaAggregator(nn.Module):
    r"""Self-attention meta learner :math:`g`: a node's embedding from its K first-order neighbours.

    Hao et al., WSDM 2021, Sec. 4.2 ("meta aggregator"): a Transformer
    encoder over the embeddings of the node's K sampled neighbours, averaged,
    trained (like the GNN itself) to reconstruct the ground-truth embedding of
    warm nodes whose neighbourhood was cut to K. The official code uses
    ``num_blocks = 2`` blocks of multi-head self-attention (4 heads) with a
    position-wise feed-forward layer of width 4, post-layer-norm residuals, and
    scales its input by :math:`\sqrt{d}`; those are the defaults here.

    Args:
        dim: embedding size (divisible by ``num_heads``).
        num_heads, num_blocks, ff_dim: the Transformer's shape.
    """

    def __init__(self, dim: int, num_heads: int = 4, num_blocks: int = 2, ff_dim: int = 4):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"embedding size {dim} is not divisible by {num_heads} heads")
        self.dim = dim
        self.num_heads = num_heads
        self.qkv = nn.ModuleList(nn.Linear(dim, 3 * dim) for _ in range(num_blocks))
        self.out = nn.ModuleList(nn.Linear(dim, dim) for _ in range(num_blocks))
        self.norm1 = nn.ModuleList(nn.LayerNorm(dim) for _ in range(num_blocks))
        self.ff = nn.ModuleList(nn.Sequential(nn.Linear(dim, ff_dim), nn.ReLU(),
                                              nn.Linear(ff_dim, dim)) for _ in range(num_blocks))
        self.norm2 = nn.ModuleList(nn.LayerNorm(dim) for _ in range(num_blocks))

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        """``x``: ``[..., K, d]`` neighbour embeddings, ``mask``: ``[..., K]`` -> ``[..., d]``.

        A node without any neighbour gets the zero vector.
        """
        lead, k = x.shape[:-2], x.size(-2)
        h = x.reshape(-1, k, self.dim) * math.sqrt(self.dim)
        m = mask.reshape(-1, k)
        # Additive key mask; an empty set attends to its padding (its output is zeroed below).
        valid = m.clone()
        valid[:, 0] |= ~m.any(-1)
        bias = torch.zeros(valid.shape, dtype=h.dtype, device=h.device).masked_fill(
            ~valid, float("-inf"))[:, None, :, None]  # [n, 1, k, 1] over (n, q, k, H)
        for qkv, out, n1, ff, n2 in zip(self.qkv, self.out, self.norm1, self.ff, self.norm2,
                                        strict=True):
            h = n1(h + out(self._attend(qkv(h), bias)))
            h = n2(h + ff(h))
        return masked_mean(h, m).view(*lead, self.dim)

    def _attend(self, qkv: Tensor, bias: Tensor) -> Tensor:
        """Multi-head scaled dot-product attention over a few tokens, written out (for sets
        of K = 3 tokens the fused kernel's overhead dominates on the CPU)."""
        n, k, _ = qkv.shape
        q, key, v = qkv.view(n, k, 3, self.num_heads, -1).unbind(2)  # [n, k, H, dh] each
        # Broadcast products instead of batched matmuls of [k, dh] blocks: for tiny k
        # they are several times faster on the CPU.
        scores = (q.unsqueeze(2) * key.unsqueeze(1)).sum(-1) / math.sqrt(q.size(-1))  # [n,q,k,H]
        att = torch.softmax(scores + bias, dim=2)
        return (att.unsqueeze(-1) * v.unsqueeze(1)).sum(2).reshape(n, k, self.dim)


class ReconstructionGNN(nn.Module):
    r"""The L-order pre-training GNN :math:`f` with the meta aggregator at every step.

    Hao et al., WSDM 2021, Sec. 4.1 (Eq. 1: a GraphSAGE-style convolution over
    the K-shot tree, the root's own embedding unknown) and Sec. 4.2 (the meta
    aggregator's output joins every convolution step). For a node :math:`v` at
    depth :math:`d` of the tree and layer :math:`l = 1..L` (nodes at depths
    :math:`0..L-l`):

    .. math::
        \mathbf{h}_v^{l} = \sigma\big(\mathbf{W}^{l}\,[\,g(v) \,\|\, \mathbf{h}_v^{l-1}
        \,\|\, \mathrm{MEAN}_{c \in S(v)} \mathbf{h}_c^{l-1}\,]\big),

    with :math:`\mathbf{h}^0` the input embeddings (zero for the root: it is the
    simulated cold-start node), :math:`S(v)` the kept sampled children,
    :math:`g` the meta aggregator of the children's input embeddings,
    :math:`\sigma = \tanh` between layers and no activation after the last, so
    the output can point anywhere (it is compared by cosine). The root's
    :math:`\mathbf{h}^L` is the reconstruction. Users and items as roots have
    their own weights :math:`\mathbf{W}^l` (the paper trains a user task and an
    item task); the meta aggregators are one per type of node they embed.

    Args:
        dim: embedding size.
        num_layers: ``L``, the depth of the tree.
        num_heads, num_blocks, ff_dim: of the meta aggregators.
    """

    def __init__(self, dim: int, num_layers: int, num_heads: int = 4, num_blocks: int = 2,
                 ff_dim: int = 4):
        super().__init__()
        self.dim = dim
        self.num_layers = num_layers
        self.meta = nn.ModuleDict({t: MetaAggregator(dim, num_heads, num_blocks, ff_dim)
                                   for t in (USER, ITEM)})
        self.layers = nn.ModuleDict({t: nn.ModuleList(nn.Linear(3 * dim, dim)
                                                      for _ in range(num_layers))
                                     for t in (USER, ITEM)})

    @staticmethod
    def type_at(root_type: str, depth: int) -> str:
        """Node type at ``depth`` below a root of ``root_type`` (types alternate)."""
        return root_type if depth % 2 == 0 else (ITEM if root_type == USER else USER)

    def inputs(self, tree: NeighbourTree, table: Tensor) -> list[Tensor]:
        """Input embeddings of every level (masked slots and the root zeroed)."""
        h = [table[n] * m.unsqueeze(-1).to(table.dtype) for n, m in zip(tree.nodes, tree.mask,
                                                                           strict=True)]
        h[0] = torch.zeros_like(h[0])
        return h

    def meta_embeddings(self, tree: NeighbourTree, h0: list[Tensor], root_type: str,
                        keep: list[Tensor], meta_table: Tensor | None = None) -> list[Tensor]:
        """:math:`g(v)` for the nodes of depths ``0..L-1``.

        Depths 0 and 1 are embedded from their kept children in the tree. With
        ``meta_table`` (``[U + I, d]``, :meth:`node_meta`), deeper nodes look
        their :math:`g` up there instead: they are most of the tree (``K^d``
        per root), and their own sampled children never include the root, so
        the lookup shows the model nothing the tree hides.
        """
        out = []
        for d in range(tree.depth):
            if d >= 2 and meta_table is not None:
                out.append(meta_table[tree.nodes[d]] * keep[d].unsqueeze(-1).to(meta_table.dtype))
            else:
                out.append(self.meta[self.type_at(root_type, d)](h0[d + 1], keep[d + 1]))
        return out

    @torch.no_grad()
    def node_meta(self, table: Tensor, nbrs: Tensor, mask: Tensor, num_users: int,
                  chunk: int = 8192) -> Tensor:
        """:math:`g(v)` of every node from its sampled neighbours ``nbrs`` / ``mask`` (``[U + I, K]``),
        without gradients, ``chunk`` nodes at a time."""
        out = torch.empty_like(table)
        for start in range(0, table.size(0), chunk):
            stop = min(start + chunk, table.size(0))
            n, m = nbrs[start:stop], mask[start:stop]
            x = table[n] * m.unsqueeze(-1).to(table.dtype)
            rows = torch.arange(start, stop, device=table.device)
            is_user = rows < num_users
            for t, sel in ((USER, is_user), (ITEM, ~is_user)):
                if bool(sel.any()):
                    out[rows[sel]] = self.meta[t](x[sel], m[sel])
        return out

    def forward(self, tree: NeighbourTree, table: Tensor, root_type: str,
                keep: list[Tensor] | None = None, meta_table: Tensor | None = None) -> Tensor:
        """Reconstructed root embeddings ``[B, d]``.

        Args:
            tree: the K-shot tree (depth ``num_layers``).
            table: ``[U + I, d]`` input embeddings.
            root_type: ``"user"`` or ``"item"``: the type of every root.
            keep: optional per-level masks (the sampler's choices), and-ed
                with the tree's own masks.
            meta_table: optional :math:`g` of every node (see
                :meth:`meta_embeddings`).
        """
        if tree.depth != self.num_layers:
            raise ValueError(f"tree depth {tree.depth} != num_layers {self.num_layers}")
        mask = tree.mask if keep is None else [m & k for m, k in zip(tree.mask, keep, strict=True)]
        h = self.inputs(tree, table)
        meta = self.meta_embeddings(tree, h, root_type, mask, meta_table)
        weights = self.layers[root_type]
        for layer in range(self.num_layers):
            last = layer == self.num_layers - 1
            h = [weights[layer](torch.cat([meta[d], h[d], masked_mean(h[d + 1], mask[d + 1])], -1))
                 for d in range(self.num_layers - layer)]
            if not last:
                h = [torch.tanh(x) for x in h]
        return h[0]

    def meta_only(self, tree: NeighbourTree, table: Tensor, root_type: str) -> Tensor:
        """:math:`g(\\text{root})` alone, from the root's K first-order neighbours (Sec. 4.2)."""
        h1 = table[tree.nodes[1]] * tree.mask[1].unsqueeze(-1).to(table.dtype)
        return self.meta[root_type](h1, tree.mask[1])


class AdaptiveNeighbourSampler(nn.Module):
    r"""Policy that keeps or drops each sampled 2nd- to L-th-order neighbour.

    Hao et al., WSDM 2021, Sec. 4.3: a policy network (one per order, as in the
    official code: ``state -> ReLU(W s + b)`` of width 8 ``-> sigmoid``)
    decides for every sampled high-order neighbour whether to keep it; the
    reward is how much the kept neighbourhood improves the cosine similarity
    between the reconstructed and the ground-truth embedding over keeping every
    neighbour, and the policy is trained by REINFORCE. First-order neighbours
    (the K shots) are always kept.

    **Simplification (one-step policy).** The paper's sampler is a sequential
    decision process over a node's candidates whose state also holds the
    running mean of the neighbours selected so far, trained with a delayed
    target network (``tau = 0.5``). Here every candidate is decided from the
    state features that do not depend on earlier decisions - the cosine
    similarities and element-wise products of the candidate with its parent,
    with the root's current estimate (its meta-aggregator embedding) and with
    the mean of the root's first-order neighbours, plus those vectors - so all
    candidates of a batch are drawn at once (a contextual bandit with the same
    reward), and the policy is updated directly, without a target network.

    Args:
        dim: embedding size.
        num_layers: ``L``; orders ``2..L`` get a policy each.
        hidden: width of the policy networks (official code: 8).
    """

    STATE_VECTORS = 6  # 3 element-wise products + candidate, parent, root estimate

    def __init__(self, dim: int, num_layers: int, hidden: int = 8):
        super().__init__()
        self.num_layers = num_layers
        state = 3 + self.STATE_VECTORS * dim
        self.policy = nn.ModuleList(
            nn.Sequential(nn.Linear(state, hidden), nn.ReLU(), nn.Linear(hidden, 1))
            for _ in range(max(num_layers - 1, 0)))

    def probabilities(self, tree: NeighbourTree, h0: list[Tensor], root_est: Tensor) -> list[Tensor | None]:
        """Keep-probability of every slot of depths ``2..L`` (``None`` for depths 0 and 1).

        Args:
            tree: the K-shot tree.
            h0: input embeddings per level (:meth:`ReconstructionGNN.inputs`).
            root_est: ``[B, d]`` current estimate of each root (its meta embedding).
        """
        first_mean = masked_mean(h0[1], tree.mask[1])
        out: list[Tensor | None] = [None, None]
        for d in range(2, tree.depth + 1):
            cand = h0[d]
            parent = h0[d - 1].unsqueeze(-2).expand_as(cand)
            shape = [cand.size(0)] + [1] * (d - 1) + [cand.size(-1)]
            root = root_est.view(shape).unsqueeze(-2).expand_as(cand)
            first = first_mean.view(shape).unsqueeze(-2).expand_as(cand)
            state = torch.cat([
                F.cosine_similarity(cand, parent, dim=-1).unsqueeze(-1),
                F.cosine_similarity(cand, root, dim=-1).unsqueeze(-1),
                F.cosine_similarity(cand, first, dim=-1).unsqueeze(-1),
                cand * parent, cand * root, cand * first, cand, parent, root,
            ], -1)
            p = torch.sigmoid(self.policy[d - 2](state).squeeze(-1))
            out.append(p.clamp(1e-5, 1 - 1e-5))
        return out

    @staticmethod
    def act(tree: NeighbourTree, probs: list[Tensor | None], generator: torch.Generator | None = None,
            greedy: bool = False) -> tuple[list[Tensor], Tensor]:
        """Keep masks per level and the summed log-probability of the actions per root ``[B]``.

        Slots that are empty in the tree contribute no log-probability.
        ``greedy`` keeps a neighbour when its probability is at least 1/2.
        """
        keep = [torch.ones_like(m) for m in tree.mask]
        logp = torch.zeros(tree.nodes[0].shape, device=tree.nodes[0].device)
        for d, p in enumerate(probs):
            if p is None:
                continue
            if greedy:
                a = p >= 0.5
            else:
                u = torch.rand(p.shape, generator=generator,
                               device=generator.device if generator is not None else p.device)
                a = u.to(p.device) < p
            keep[d] = a
            lp = torch.where(a, p.log(), (1 - p).log()) * tree.mask[d].to(p.dtype)
            logp = logp + lp.reshape(lp.size(0), -1).sum(-1)
        return keep, logp
