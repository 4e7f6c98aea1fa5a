"""BiGI's faster training step computes what the straightforward one did.

The one-hop sub-graph sampler reads the CSR rows (the general path grows a
dense reachability indicator); the encoder's dropout draws its mask from
uniform numbers. Both must leave the numbers (or their distribution) alone.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

import ssgraphrec.methods.bigi as bigi_module
from ssgraphrec.data import INTERACTS, SyntheticConfig, build_dataset, make_synthetic
from ssgraphrec.data.subgraph import (
    EnclosingSubgraphs,
    _sample,
    enclosing_subgraphs,
    reach_adjacency,
    reachable,
)
from ssgraphrec.methods import BiGI, BiGIConfig
from ssgraphrec.methods.base import BPRBatch
from ssgraphrec.nn.dropout import dropout

TINY = SyntheticConfig(num_users=60, num_items=40, num_communities=3, mean_interactions=10,
                       social=False)


@pytest.fixture(scope="module")
def tiny():
    return build_dataset(make_synthetic(TINY, seed=5), split="random", test_ratio=0.2,
                         val_ratio=0.1, seed=5)


def _general_path(adj, edges, num_users, hops=1, num_neighbors=100, generator=None):
    """The dense-reachability sampler, as every ``hops`` used before the one-hop fast path."""
    u, v = edges[0].long(), edges[1].long()
    reach = reachable(adj, torch.stack([u, v + num_users], 1), hops)
    users, user_mask = _sample(reach[:, :num_users], num_neighbors, generator)
    items, item_mask = _sample(reach[:, num_users:], num_neighbors, generator)
    return EnclosingSubgraphs(users, user_mask, items, item_mask)


def _members(ids, mask):
    return [set(row[m].tolist()) for row, m in zip(ids, mask, strict=True)]


def test_one_hop_path_finds_the_same_subgraphs_for_edges_and_non_edges(tiny):
    edges = tiny[INTERACTS].edge_index
    nu, ni = int(tiny["user"].num_nodes), int(tiny["item"].num_nodes)
    adj = reach_adjacency(edges, nu, ni)
    gen = torch.Generator().manual_seed(0)
    # Training edges, and pairs that are (mostly) not edges: the seed joins its side.
    batch = torch.cat([edges[:, ::7], torch.stack([torch.arange(nu), torch.arange(nu) % ni])], 1)
    fast = enclosing_subgraphs(adj, batch, nu, 1, num_neighbors=1000, generator=gen)
    slow = _general_path(adj, batch, nu, 1, num_neighbors=1000, generator=gen)
    assert _members(fast.users, fast.user_mask) == _members(slow.users, slow.user_mask)
    assert _members(fast.items, fast.item_mask) == _members(slow.items, slow.item_mask)
    u, v = batch
    assert all(int(u[b]) in s for b, s in enumerate(_members(fast.users, fast.user_mask)))
    assert all(int(v[b]) in s for b, s in enumerate(_members(fast.items, fast.item_mask)))


def test_one_hop_sample_is_uniform_without_replacement():
    # User 0 has items 0..3; 2000 copies of edge (0, 0) each keep 2 of its 4 items.
    edges = torch.tensor([[0, 0, 0, 0, 1], [0, 1, 2, 3, 0]])
    adj = reach_adjacency(edges, 2, 4)
    batch = torch.zeros(2, 2000, dtype=torch.long)
    sub = enclosing_subgraphs(adj, batch, 2, 1, num_neighbors=2,
                              generator=torch.Generator().manual_seed(3))
    assert sub.item_mask.all() and (sub.items[:, 0] != sub.items[:, 1]).all()
    share = torch.bincount(sub.items.flatten(), minlength=4).float() / 2000
    assert torch.allclose(share, torch.full((4,), 0.5), atol=0.05)   # each item in half the rows


def test_bigi_loss_is_unchanged_by_the_one_hop_fast_path(tiny, monkeypatch):
    cfg = dataclasses.replace(BiGIConfig(), emb_dim=16, num_neighbors=1000)

    def loss_of() -> dict[str, float]:
        torch.manual_seed(0)
        method = BiGI(tiny, cfg, generator=torch.Generator().manual_seed(1)).eval()
        e = tiny[INTERACTS].edge_index[:, :50]
        neg = torch.arange(50) % int(tiny["item"].num_nodes)
        return {k: v.item() for k, v in method.loss(BPRBatch(e[0], e[1], neg)).items()}

    fast = loss_of()
    monkeypatch.setattr(bigi_module, "enclosing_subgraphs", _general_path)
    slow = loss_of()
    assert fast.keys() == slow.keys() == {"rec", "mim"}
    for term in fast:
        assert fast[term] == pytest.approx(slow[term], rel=1e-5, abs=1e-7)


def test_dropout_keeps_each_entry_with_probability_one_minus_p_and_rescales_it():
    x = torch.rand(400, 250) + 0.5          # no zeros, so a zero means "dropped"
    x.requires_grad_(True)
    y = dropout(x, 0.25, True, torch.Generator().manual_seed(0))
    kept = y != 0
    assert kept.float().mean().item() == pytest.approx(0.75, abs=0.01)
    assert torch.allclose(y[kept], x[kept] / 0.75)
    y.sum().backward()
    assert torch.allclose(x.grad, kept.float() / 0.75)
    again = dropout(x.detach(), 0.25, True, torch.Generator().manual_seed(0))
    assert torch.equal(again, y.detach())   # a seeded generator gives the same mask


def test_dropout_off_in_evaluation_and_rejects_bad_rates():
    x = torch.randn(5, 3)
    assert dropout(x, 0.3, training=False) is x
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        dropout(x, 1.0)
