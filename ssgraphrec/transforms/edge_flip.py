"""Structure corruption by flipping random cells of the user-item adjacency (BiGI)."""

from __future__ import annotations

import torch
from torch import Tensor

from ..data.schema import sort_pairs


def flip_edges(edge_index: Tensor, num_users: int, num_items: int, rate: float,
               generator: torch.Generator | None = None) -> Tensor:
    r"""The user-item edges with ``int(U * I * rate) + 1`` random cells toggled.

    Cao et al., "Bipartite Graph Embedding via Mutual Information
    Maximization" (BiGI), WSDM 2021, Sec. 3.4: the corrupted graph whose
    sub-graphs are the negative examples of the local-global objective is
    built by perturbing the structure. The authors' ``struct_corruption``
    (``utils/GraphMaker.py``, ``--struct_rate``) draws that many uniform
    (user, item) cells one after the other and toggles each: an edge is
    removed, a non-edge added. A cell drawn twice is toggled twice, so here
    the cells drawn an odd number of times are toggled, all at once.

    Args:
        edge_index: ``[2, E]`` (user, item) edges.
        num_users, num_items: sizes of the id spaces.
        rate: share of the ``U x I`` cells to draw (BiGI: 1e-4 on ML-100K,
            1e-5 on DBLP).
        generator: seeded generator.

    Returns:
        ``[2, E']`` edges sorted by (user, item).
    """
    if not rate >= 0:
        raise ValueError(f"rate must be >= 0, got {rate}")
    device = edge_index.device
    n_draw = int(num_users * num_items * rate) + 1
    gen_device = generator.device if generator is not None else device
    cells = torch.randint(0, num_users * num_items, (n_draw,), generator=generator,
                          device=gen_device).to(device)
    drawn, counts = torch.unique(cells, return_counts=True)
    toggled = drawn[counts % 2 == 1]
    existing = torch.unique(edge_index[0].long() * num_items + edge_index[1].long())
    keys, counts = torch.unique(torch.cat([existing, toggled]), return_counts=True)
    keys = keys[counts == 1]   # the symmetric difference: edges not toggled, toggled non-edges
    return sort_pairs(torch.stack([keys // num_items, keys % num_items]), num_items)
