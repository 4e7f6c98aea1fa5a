"""Motif-induced hypergraphs of social recommendation: the three channels of MHCN.

Yu et al., "Self-Supervised Multi-Channel Hypergraph Convolutional Network for
Social Recommendation", WWW 2021, Sec. 3.2. Every triangle of a user-user
social graph and a user-item graph that matches one of ten motifs is a
hyperedge:

* M1-M7, *social* motifs: three users, every pair linked, told apart by which
  links are one-way and which go both ways;
* M8, M9, *joint* motifs: two users linked both ways (M8) or one way (M9) who
  interacted with the same item;
* M10, the *purchase* motif: two users without a link who interacted with the
  same item.

With the social matrix ``S`` (``S[u, v] = 1`` if ``u`` follows ``v``), its
bidirectional part ``B = S ⊙ Sᵀ``, the one-way part ``U = S − B`` and the
user-item matrix ``R``, the paper's Table 1 gives the motif-induced adjacency
matrices (``⊙`` the element-wise product)::

    M1   C = (U U) ⊙ Uᵀ                                        A = C + Cᵀ
    M2   C = (B U) ⊙ Uᵀ + (U B) ⊙ Uᵀ + (U U) ⊙ B                A = C + Cᵀ
    M3   C = (B B) ⊙ U + (B U) ⊙ B + (U B) ⊙ B                  A = C + Cᵀ
    M4   A = (B B) ⊙ B
    M5   C = (U U) ⊙ U + (U Uᵀ) ⊙ U + (Uᵀ U) ⊙ U               A = C + Cᵀ
    M6   A = (U B) ⊙ U + (B Uᵀ) ⊙ Uᵀ + (Uᵀ U) ⊙ B
    M7   A = (Uᵀ B) ⊙ Uᵀ + (B U) ⊙ U + (U Uᵀ) ⊙ B
    M8   A = (R Rᵀ) ⊙ B
    M9   C = (R Rᵀ) ⊙ U                                        A = C + Cᵀ
    M10  A = R Rᵀ − A_M8 − A_M9

so that ``A_Mk[i, j]`` is the number of instances of motif ``k`` that contain
both users ``i`` and ``j`` (tested against a direct enumeration of triangles).
The channels sum them, ``A_s = Σ_{k≤7} A_Mk``, ``A_j = A_M8 + A_M9``,
``A_p = A_M10``, and the hypergraph convolution propagates with the
row-normalized ``D⁻¹A`` of each. The conventions below are those of the
authors' code (Coder-Yu/QRec, ``model/ranking/MHCN.py``,
``buildMotifInducedAdjacencyMatrix``, which RecBole-GNN's ``mhcn.py`` copies):
all three channels are row-normalized, and the purchase channel keeps only
pairs of users with at least two common items (``H_p.multiply(H_p > 1)``;
SELFRec's later copy uses three), set by ``purchase_min_common``. Unlike that
code, ``S`` here is binary without self-loops, and ``A_M10`` has no diagonal
(``R Rᵀ`` has each user's item count there, which is not a motif instance; the
QRec code leaves it in ``H_p``).

Everything is computed with sparse products (``torch.sparse.mm`` on coalesced
COO tensors) and sparse element-wise products; no ``users x users`` dense
matrix is ever built. ``R Rᵀ`` is the one product that can be large (pairs of
users with a common item), so it is computed in blocks of user rows, each
reduced to the entries a channel keeps before the next block, which bounds
the memory by ``block_paths`` (user-item-user paths per block) plus the result.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch_geometric.data import HeteroData
from torch_geometric.transforms import BaseTransform

from ..data.schema import FOLLOWS, INTERACTS, USER, num_items, num_users
from ..errors import ConfigError
from ..sparse import Adjacency, adjacency_from_edges, segment_pointer
from ..sparse.coo import (
    add,
    binary,
    coo,
    hadamard,
    matmul,
    row_normalize,
    symmetrize,
    transpose,
)

CHANNELS = ("social", "joint", "purchase")
#: Edge type under which :class:`SocialMotifs` stores each channel.
CHANNEL_EDGE_TYPES = {name: (USER, f"{name}_motif", USER) for name in CHANNELS}
#: The motifs each channel sums.
CHANNEL_MOTIFS = {
    "social": tuple(f"M{k}" for k in range(1, 8)),
    "joint": ("M8", "M9"),
    "purchase": ("M10",),
}
#: Default bound on the user-item-user paths of one block of ``R Rᵀ`` rows.
BLOCK_PATHS = 1 << 22


# -- the motifs -------------------------------------------------------------------


def social_parts(social_edge_index: Tensor, n_users: int) -> tuple[Tensor, Tensor, Tensor]:
    """``(S, B, U)``: the binary social matrix without self-loops, its bidirectional
    part ``B = S ⊙ Sᵀ`` and its one-way part ``U = S − B``."""
    ei = social_edge_index.long()
    s = binary(ei[:, ei[0] != ei[1]], n_users)
    b = hadamard(s, transpose(s))
    u = add(s, -b)
    return s, b, u


def social_motif_adjacencies(b: Tensor, u: Tensor) -> dict[str, Tensor]:
    """``A_M1 … A_M7`` (Table 1) from the bidirectional and one-way social matrices."""
    ut = transpose(u)
    uu, ub, bu, bb = matmul(u, u), matmul(u, b), matmul(b, u), matmul(b, b)
    uut, utu, utb, but = matmul(u, ut), matmul(ut, u), matmul(ut, b), matmul(b, ut)
    return {
        "M1": symmetrize(hadamard(uu, ut)),
        "M2": symmetrize(add(hadamard(bu, ut), hadamard(ub, ut), hadamard(uu, b))),
        "M3": symmetrize(add(hadamard(bb, u), hadamard(bu, b), hadamard(ub, b))),
        "M4": hadamard(bb, b),
        "M5": symmetrize(add(hadamard(uu, u), hadamard(uut, u), hadamard(utu, u))),
        "M6": add(hadamard(ub, u), hadamard(but, ut), hadamard(utu, b)),
        "M7": add(hadamard(utb, ut), hadamard(bu, u), hadamard(uut, b)),
    }


def _row_blocks(r: Tensor, n_items: int, budget: int) -> list[tuple[int, int]]:
    """Contiguous user-row ranges whose ``R Rᵀ`` rows have about ``budget`` paths each."""
    user, item = r.indices()
    item_deg = torch.bincount(item, minlength=n_items)
    paths = torch.zeros(r.size(0), dtype=torch.long, device=r.device)
    paths.index_add_(0, user, item_deg[item])
    block = (torch.cumsum(paths, 0) - 1).clamp(min=0) // max(int(budget), 1)
    _, counts = torch.unique_consecutive(block, return_counts=True)
    ends = torch.cumsum(counts, 0).tolist()
    return list(zip([0] + ends[:-1], ends, strict=True))


def _pattern_lookup(mask: Tensor, row: Tensor, col: Tensor) -> tuple[Tensor, Tensor]:
    """Where each ``(row, col)`` lies among the non-zeros of the coalesced ``mask``.

    Returns ``(found, pos)``: whether the pair is a non-zero of ``mask`` and, if
    so, its position in ``mask.values()`` (``pos`` is clamped to a valid index
    otherwise). The non-zeros of a coalesced matrix are sorted by
    ``row * n + col``, so a binary search finds them; ``x ⊙ mask`` keeps the
    entries of ``x`` found here.
    """
    n = mask.size(1)
    keys = mask.indices()[0] * n + mask.indices()[1]
    if keys.numel() == 0:
        return torch.zeros_like(row, dtype=torch.bool), torch.zeros_like(row)
    query = row * n + col
    pos = torch.searchsorted(keys, query).clamp_(max=keys.numel() - 1)
    return keys[pos] == query, pos


def co_interaction_motif_adjacencies(r: Tensor, b: Tensor, u: Tensor, *,
                                     purchase_min_common: int = 1,
                                     block_paths: int = BLOCK_PATHS) -> dict[str, Tensor]:
    """``A_M8``, ``A_M9`` and ``A_M10`` (Table 1) from the binary user-item matrix ``r``.

    ``A_M10`` keeps the pairs with at least ``purchase_min_common`` common
    items (1: every M10 instance) and has no diagonal. ``R Rᵀ`` is formed in
    blocks of user rows (see the module docstring); each block is split at
    once by the sparse pattern of the social links, ``B`` and ``U + Uᵀ``:
    ``R Rᵀ`` is symmetric, so ``(R Rᵀ ⊙ U)ᵀ = R Rᵀ ⊙ Uᵀ`` and
    ``A_M9 = C + Cᵀ = R Rᵀ ⊙ (U + Uᵀ)``, and ``A_M10 = R Rᵀ ⊙ (1 − B − U − Uᵀ)``.
    """
    n_users, n_items = r.shape
    social_any = add(b, u, transpose(u))                   # B + U + Uᵀ, disjoint supports
    bidirectional = torch.zeros(social_any._nnz(), dtype=torch.bool, device=r.device)
    if b._nnz():
        bidirectional[_pattern_lookup(social_any, *b.indices())[1]] = True
    rt = transpose(r)
    ptr = segment_pointer(r.indices()[0], n_users)
    parts: dict[str, list[tuple[Tensor, Tensor]]] = {"M8": [], "M9": [], "M10": []}
    for lo, hi in _row_blocks(r, n_items, block_paths):
        a, z = int(ptr[lo]), int(ptr[hi])
        rows = coo(r.indices()[:, a:z], r.values()[a:z], n_users, n_items, coalesced=True)
        common = matmul(rows, rt)                       # rows lo..hi of R Rᵀ, coalesced
        i, j = common.indices()
        value = common.values()
        linked, pos = _pattern_lookup(social_any, i, j)
        both = linked & bidirectional[pos] if bidirectional.numel() else linked
        for name, keep in (("M8", both), ("M9", linked & ~both),
                           ("M10", ~linked & (value >= purchase_min_common) & (i != j))):
            index = keep.nonzero().view(-1)
            parts[name].append((common.indices().index_select(1, index), value[index]))
    return {name: _concat_rows(blocks, n_users, r.dtype, r.device)
            for name, blocks in parts.items()}


def _concat_rows(blocks: list[tuple[Tensor, Tensor]], n: int, dtype, device) -> Tensor:
    """Stack row blocks ``(index, value)`` (each sorted, in row order) into one coalesced matrix."""
    if not blocks:
        return coo(torch.zeros(2, 0, dtype=torch.long, device=device),
                    torch.zeros(0, dtype=dtype, device=device), n, coalesced=True)
    index = torch.cat([x for x, _ in blocks], 1)
    value = torch.cat([v for _, v in blocks])
    blocks.clear()
    return coo(index, value, n, coalesced=True)


def motif_adjacencies(social_edge_index: Tensor, interaction_edge_index: Tensor,
                      n_users: int, n_items: int, *, purchase_min_common: int = 1,
                      block_paths: int = BLOCK_PATHS) -> dict[str, Tensor]:
    """All ten motif-induced adjacency matrices ``{"M1": A_M1, …, "M10": A_M10}``.

    Each is a coalesced sparse COO ``[n_users, n_users]`` float tensor whose
    entry ``[i, j]`` counts the motif instances containing users ``i`` and ``j``.

    Args:
        social_edge_index: ``[2, E_s]`` directed links ``follower -> followee``
            (self-loops and duplicates are ignored).
        interaction_edge_index: ``[2, E]`` (user, item) training interactions.
        n_users, n_items: sizes of the id spaces.
        purchase_min_common: least number of common items of an ``A_M10`` entry.
        block_paths: user-item-user paths per block of ``R Rᵀ`` rows.
    """
    _, b, u = social_parts(social_edge_index, n_users)
    r = binary(interaction_edge_index, n_users, n_items)
    out = social_motif_adjacencies(b, u)
    out.update(co_interaction_motif_adjacencies(r, b, u, purchase_min_common=purchase_min_common,
                                                block_paths=block_paths))
    return out


def motif_channels(social_edge_index: Tensor, interaction_edge_index: Tensor, n_users: int,
                   n_items: int, *, purchase_min_common: int = 2,
                   block_paths: int = BLOCK_PATHS) -> dict[str, Tensor]:
    """The channels' (not normalized) adjacency ``{"social": A_s, "joint": A_j, "purchase": A_p}``."""
    motifs = motif_adjacencies(social_edge_index, interaction_edge_index, n_users, n_items,
                               purchase_min_common=purchase_min_common, block_paths=block_paths)
    return {name: add(*(motifs[m] for m in names)) for name, names in CHANNEL_MOTIFS.items()}


class SocialMotifs(BaseTransform):
    r"""Builds MHCN's social, joint and purchase channels from the social and user-item graphs.

    Yu et al., WWW 2021, Sec. 3.2 (motif-induced hypergraphs, Table 1, and
    the row-normalized :math:`\hat{D}_c^{-1} A_c` the convolution uses). Reads
    ``data[FOLLOWS].edge_index`` and the *training* interactions
    ``data[INTERACTS].edge_index`` and adds, for each channel ``c`` of
    :data:`CHANNELS`, the edge type ``('user', f'{c}_motif', 'user')`` with

    * ``edge_index``: the non-zero pairs, sorted by (row, column);
    * ``edge_weight``: the row-normalized weights :math:`(D_c^{-1} A_c)_{ij}`;
    * ``motif_count``: :math:`(A_c)_{ij}`, the number of motif instances that
      contain both users.

    A structure builder, not an augmentation: it is deterministic and is not
    registered for ``--aug``. :func:`channel_adjacencies` turns its output into
    :class:`~ssgraphrec.sparse.Adjacency` objects for propagation.

    Args:
        purchase_min_common: least number of common items for a purchase-channel
            pair (2, as the authors' QRec code).
        block_paths: memory bound of the blocked ``R Rᵀ`` product, in
            user-item-user paths per block.
    """

    def __init__(self, purchase_min_common: int = 2, block_paths: int = BLOCK_PATHS):
        if int(purchase_min_common) < 1:
            raise ConfigError(f"purchase_min_common must be >= 1, got {purchase_min_common}")
        self.purchase_min_common = int(purchase_min_common)
        self.block_paths = int(block_paths)

    def forward(self, data: HeteroData) -> HeteroData:
        if FOLLOWS not in data.edge_types:
            raise ConfigError(f"SocialMotifs needs social links {FOLLOWS}; the data has none")
        channels = motif_channels(
            data[FOLLOWS].edge_index, data[INTERACTS].edge_index, num_users(data),
            num_items(data), purchase_min_common=self.purchase_min_common,
            block_paths=self.block_paths)
        for name, a in channels.items():
            store = data[CHANNEL_EDGE_TYPES[name]]
            store.edge_index = a.indices()
            store.motif_count = a.values()
            store.edge_weight = row_normalize(a).values()
        return data

    def __repr__(self) -> str:
        return f"{type(self).__name__}(purchase_min_common={self.purchase_min_common})"


def channel_adjacencies(data: HeteroData, backend: str = "torch") -> dict[str, Adjacency]:
    """The row-normalized channels of :class:`SocialMotifs` output, ready for
    :func:`~ssgraphrec.sparse.propagate` (not symmetric: ``symmetric=False``)."""
    out = {}
    for name, edge_type in CHANNEL_EDGE_TYPES.items():
        if edge_type not in data.edge_types:
            raise KeyError(f"no {edge_type} in the data; apply SocialMotifs first")
        store = data[edge_type]
        out[name] = adjacency_from_edges(store.edge_index, store.edge_weight, num_users(data),
                                         symmetric=False, backend=backend)
    return out
