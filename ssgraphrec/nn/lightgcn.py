"""The LightGCN encoder on the shared sparse propagation."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from ..sparse import Adjacency, propagate, propagate_mean


class LightGCNEncoder(nn.Module):
    r"""User and item embeddings smoothed over the normalized user-item graph.

    He et al., "LightGCN: Simplifying and Powering Graph Convolution Network for
    Recommendation", SIGIR 2020, Eq. 7-8:
    :math:`\mathbf{E}^{(k+1)} = \hat{\mathbf{A}} \mathbf{E}^{(k)}` and
    :math:`\mathbf{E} = \frac{1}{K+1}\sum_{k=0}^{K} \mathbf{E}^{(k)}`.

    Args:
        num_users, num_items: sizes of the id spaces.
        emb_dim: embedding size.
        num_layers: number of propagation layers ``K``.
        init_std: 0 (default) for Xavier-uniform embeddings, as the official
            LightGCN and SGL TensorFlow code and SELFRec initialise them; a
            positive value draws them from :math:`N(0, \mathrm{init\_std}^2)`
            instead (LightGCN-PyTorch uses 0.1). With Xavier, the rows of a
            large id space start tiny (norm about 0.08 for 17k items at 64
            dimensions), which slows the start of methods whose contrastive
            loss normalises embeddings (see docs/benchmarks.md).
    """

    def __init__(self, num_users: int, num_items: int, emb_dim: int = 64, num_layers: int = 3,
                 init_std: float = 0.0):
        super().__init__()
        if not init_std >= 0:
            raise ValueError(f"init_std must be >= 0, got {init_std}")
        self.num_users = num_users
        self.num_items = num_items
        self.num_layers = num_layers
        self.user_emb = nn.Parameter(torch.empty(num_users, emb_dim))
        self.item_emb = nn.Parameter(torch.empty(num_items, emb_dim))
        for table in (self.user_emb, self.item_emb):
            if init_std > 0:
                nn.init.normal_(table, std=init_std)
            else:
                nn.init.xavier_uniform_(table)

    def ego(self) -> Tensor:
        """Layer-0 embeddings of all nodes, users first."""
        return torch.cat([self.user_emb, self.item_emb], 0)

    def layers(self, adj: Adjacency | Sequence[Adjacency],
               perturb: Callable[[Tensor], Tensor] | None = None,
               num_layers: int | None = None) -> list[Tensor]:
        r"""``[E^(0), ..., E^(K)]``; a list of adjacencies gives one per layer.

        Args:
            adj: the normalized adjacency, or one per layer.
            perturb: applied to each propagated layer before it feeds the next,
                :math:`\mathbf{E}^{(k)} \leftarrow \mathrm{perturb}(\hat{\mathbf{A}}
                \mathbf{E}^{(k-1)})` for ``k >= 1`` (the ego layer is left as it is);
                e.g. :class:`ssgraphrec.nn.perturb.UniformNoise` for SimGCL's
                perturbed encoder (Yu et al., SIGIR 2022, Eq. 8).
            num_layers: how many layers to propagate (default ``K``); NCL needs
                more when its contrasted layer lies deeper than ``K``.
        """
        h = self.ego()
        out = [h]
        for k in range(self.num_layers if num_layers is None else num_layers):
            a = adj[k] if isinstance(adj, Sequence) else adj
            h = propagate(a, h)
            if perturb is not None:
                h = perturb(h)
            out.append(h)
        return out

    def stream_layers(self, adj: Adjacency,
                      perturbs: Sequence[Callable[[Tensor, int], Tensor] | None]) -> list[Tensor]:
        r"""Layers of several encoders that share :math:`\mathbf{E}^{(0)}` and ``adj``,
        propagated side by side: one product per layer over ``[N, S d]``.

        Stream ``s`` is ``perturbs[s](h, k)`` after layer ``k`` (0-based), or left as it
        is for ``None``; each returned layer holds the ``S`` streams column-wise, in
        blocks of ``d``. Equal to ``S`` calls of :meth:`layers` with the same
        perturbations (SimGCL's fused encoders, Yu et al., SIGIR 2022, Eq. 8), from
        one pass over the adjacency per layer.
        """
        ego = self.ego()
        d = ego.size(1)
        h = ego.repeat(1, len(perturbs))
        out = [h]
        for k in range(self.num_layers):
            parts = propagate(adj, h).split(d, dim=1)
            h = torch.cat([x if f is None else f(x, k) for f, x in zip(perturbs, parts,
                                                                        strict=True)], dim=1)
            out.append(h)
        return out

    def forward(self, adj: Adjacency | Sequence[Adjacency], rows: Tensor | None = None
                ) -> tuple[Tensor, Tensor]:
        """Final (user, item) embeddings: the mean over layers 0..K (needed at ``rows``
        only when given, see :meth:`encode`)."""
        return self.mean(adj, rows=rows)

    def mean(self, adj: Adjacency | Sequence[Adjacency], skip_ego: bool = False,
             rows: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``readout(layers(adj), skip_ego)`` (no perturbation) in one pass that saves no
        layer for the backward pass (:func:`~ssgraphrec.sparse.propagate_mean`): the same
        embeddings, and the same gradients up to the order of the sums."""
        return self.split(self.encode(adj, skip_ego, rows=rows))

    def encode(self, adj: Adjacency | Sequence[Adjacency], skip_ego: bool = False, *,
               num_layers: int | None = None, mean_layers: int | None = None,
               taps: tuple[int, ...] = (), perturb: Callable[[Tensor], Tensor] | None = None,
               keep_layers: bool = False, rows: Tensor | None = None, compact: bool = False):
        r"""The layer mean of all nodes, ``[N, d]``, users first, from this encoder's
        :math:`\mathbf{E}^{(0)}` by :func:`~ssgraphrec.sparse.propagate_mean`, and the
        layers it returns besides (``taps``, with gradient; ``keep_layers``, detached).

        ``num_layers`` products are taken (default ``K``), and layers up to
        ``mean_layers`` averaged (default all): NCL contrasts a layer deeper than its
        mean. ``perturb`` adds an offset without gradient after each product (SimGCL's
        and XSimGCL's noise, Yu et al., SIGIR 2022, Eq. 8). ``rows`` (node ids, users
        first, from :meth:`batch_rows`) are the rows the caller reads: the mean may be
        zero elsewhere, and the last product is then taken at those rows only where that
        saves work (:func:`~ssgraphrec.sparse.propagate_mean`); ``compact`` returns the
        mean at ``rows`` only, ``[|R|, d]`` (:meth:`mean_at`).
        """
        k = self.num_layers if num_layers is None else num_layers
        adjs = tuple(adj)[:k] if isinstance(adj, Sequence) else adj
        return propagate_mean(adjs, self.ego(), k, skip_ego, keep_layers, taps=taps,
                              perturb=perturb, mean_layers=mean_layers, rows=rows,
                              compact=compact)

    def mean_at(self, adj: Adjacency | Sequence[Adjacency], rows: Tensor) -> Tensor:
        """The final embeddings (:meth:`forward`'s) at ``rows`` only, ``[|R|, d]`` in the
        order of ``rows`` (node ids, users first, from :meth:`batch_index`). Gathered
        from there, a batch's rows pass their gradient on at ``[|R|, d]`` too, where the
        user and item tables of :meth:`forward` each fill a whole table of zeros per
        gather (:func:`~ssgraphrec.sparse.propagate_mean`'s ``compact``)."""
        return self.encode(adj, rows=rows, compact=True)

    def batch_rows(self, users: Tensor, *items: Tensor) -> Tensor:
        """The distinct node ids (users first, items after them) of ``users`` and
        ``items``, sorted: the rows of the final embeddings a batch reads."""
        return torch.unique(torch.cat([users, *(i + self.num_users for i in items)]))

    def batch_index(self, users: Tensor, *items: Tensor) -> tuple[Tensor, tuple[Tensor, ...]]:
        """:meth:`batch_rows`, and where each of ``users``, ``*items`` lies in them: the
        rows of :meth:`mean_at` that each id reads, one tensor per argument."""
        ids = torch.cat([users, *(i + self.num_users for i in items)])
        rows, where = torch.unique(ids, return_inverse=True)
        return rows, tuple(where.split([users.numel(), *(i.numel() for i in items)]))

    def distinct_at(self, rows: Tensor, users_at: Tensor, items_at: Tensor
                    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """The distinct users and items of a batch from :meth:`batch_index`'s ``rows``
        and two of its positions: ``(users_at, users, items_at, items)``, where each lies
        in ``rows`` and its id, sorted (``torch.unique`` of the batch's users and items:
        ``rows`` is sorted, so its positions keep the order of the ids)."""
        users_at, items_at = torch.unique(users_at), torch.unique(items_at)
        return users_at, rows[users_at], items_at, rows[items_at] - self.num_users

    def readout(self, layers: Sequence[Tensor], skip_ego: bool = False) -> tuple[Tensor, Tensor]:
        r"""(user, item) mean of ``layers``; ``skip_ego`` averages layers 1..K only.

        SimGCL and XSimGCL drop :math:`\mathbf{E}^{(0)}` from the mean (Yu et
        al., SIGIR 2022, Sec. 3.1: "we skip the input embedding E(0) in all the
        three encoders").
        """
        layers = layers[1:] if skip_ego else layers
        if not layers:
            raise ValueError("readout: no layers to average (skip_ego needs at least one layer)")
        total = layers[0]
        for h in layers[1:]:
            total = total + h
        return self.split(total / len(layers))

    def split(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(user rows, item rows) of ``x``, as views. One ``split`` rather than two slices:
        its backward pass joins the two gradients, where each slice's would write a whole
        ``[N, d]`` matrix of zeros and the two would then be added."""
        users, items = x.split([self.num_users, x.size(0) - self.num_users])
        return users, items
