"""The one InfoNCE of the package: hand-computed values, its options, and gathering
negatives across ranks (two gloo processes on localhost)."""

from __future__ import annotations

import math
import os
import socket

import pytest
import torch
import torch.multiprocessing as mp

from ssgraphrec.losses import InfoNCE, info_nce


def test_other_view_cosine_matches_a_hand_computed_value():
    a = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    p = torch.tensor([[3.0, 0.0], [1.0, 1.0]])
    # cosines: row 0 = [1, 1/sqrt2], row 1 = [0, 1/sqrt2]; tau = 0.5 doubles them
    c = 1 / math.sqrt(2)
    row0 = -math.log(math.exp(2) / (math.exp(2) + math.exp(2 * c)))
    row1 = -math.log(math.exp(2 * c) / (math.exp(0) + math.exp(2 * c)))
    assert info_nce(a, p, 0.5).item() == pytest.approx((row0 + row1) / 2, rel=1e-6)


def test_the_module_equals_the_function_and_checks_its_options():
    g = torch.Generator().manual_seed(0)
    a, p = torch.randn(5, 4, generator=g), torch.randn(5, 4, generator=g)
    assert torch.equal(InfoNCE(0.3)(a, p), info_nce(a, p, 0.3))
    both = InfoNCE(1.0, similarity="dot", negatives="both_views")(a, p)
    assert torch.equal(both, info_nce(a, p, 1.0, similarity="dot", negatives="both_views"))
    for bad in ({"temperature": 0.0}, {"similarity": "l2"}, {"negatives": "all"}):
        with pytest.raises(ValueError):
            InfoNCE(**{"temperature": 0.2, **bad})


def test_memory_bank_adds_earlier_positives_as_negatives():
    g = torch.Generator().manual_seed(1)
    loss = InfoNCE(0.2, memory_bank_size=8)
    a1, p1 = torch.randn(4, 3, generator=g), torch.randn(4, 3, generator=g)
    a2, p2 = torch.randn(4, 3, generator=g), torch.randn(4, 3, generator=g)
    assert torch.equal(loss(a1, p1), info_nce(a1, p1, 0.2))          # empty bank
    expected = info_nce(a2, p2, 0.2, extra_negatives=p1)
    assert torch.allclose(loss(a2, p2), expected)
    assert expected > info_nce(a2, p2, 0.2)                          # more negatives, more loss
    assert torch.equal(loss.bank.negatives()[0], torch.cat([p1, p2]))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank(rank: int, world: int, port: int, anchor, positive, negatives, out) -> None:
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        rows = slice(0, 4) if rank == 0 else slice(4, 6)    # shares of unequal size
        a = anchor[rows].clone().requires_grad_()
        loss = info_nce(a, positive[rows], 0.5, negatives=negatives, gather=True)
        out[rank] = loss.detach()
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("negatives", ["other_view", "both_views"])
def test_gathered_negatives_give_the_single_process_loss_of_the_global_batch(negatives):
    g = torch.Generator().manual_seed(2)
    anchor, positive = torch.randn(6, 4, generator=g), torch.randn(6, 4, generator=g)
    out = mp.Manager().dict()
    mp.spawn(_rank, args=(2, _free_port(), anchor, positive, negatives, out), nprocs=2)
    # Each rank averages its own anchors over the negatives of both ranks: weighted by the
    # ranks' rows, that is the one-process loss of all six rows.
    whole = info_nce(anchor, positive, 0.5, negatives=negatives)
    assert torch.allclose((4 * out[0] + 2 * out[1]) / 6, whole, atol=1e-6)
    assert not torch.allclose(out[0], out[1])    # each rank scored its own anchors
