"""Past one machine's memory: row-sharded tables and sampled propagation (ssgraphrec.scale)."""

from __future__ import annotations

import os

import pytest
import torch
import torch.multiprocessing as mp
from test_distributed import _free_port  # the tests' one free-port helper

from ssgraphrec.data import SyntheticConfig, build_dataset, make_synthetic
from ssgraphrec.distributed import SINGLE, DistContext, shard, shard_bounds
from ssgraphrec.methods import LightGCN, LightGCNConfig
from ssgraphrec.scale import (
    ReplicatedGraph,
    RowShardedEmbedding,
    RowShardedGraph,
    ShardedSampledLightGCN,
    propagate_subgraph,
    sample_subgraph,
)

TINY = SyntheticConfig(num_users=50, num_items=40, num_communities=3, mean_interactions=8,
                       social=False)


def tiny_lightgcn(layers: int = 2) -> LightGCN:
    data = build_dataset(make_synthetic(TINY, seed=0), test_ratio=0.2, val_ratio=0.0, seed=0)
    torch.manual_seed(0)
    return LightGCN(data, LightGCNConfig(emb_dim=8, num_layers=layers), backend="torch")


@pytest.mark.parametrize("rows, world", [(10, 3), (9, 3), (2, 4), (100, 7)])
def test_every_id_is_owned_by_the_rank_whose_bounds_hold_it(rows, world):
    for rank in range(world):
        table = RowShardedEmbedding(rows, 4, DistContext(rank, world, "gloo"))
        lo, hi = shard_bounds(rows, DistContext(rank, world))
        assert (table.lo, table.hi) == (lo, hi) and table.weight.shape == (hi - lo, 4)
        owner = table.owner(torch.arange(rows))
        assert owner[lo:hi].eq(rank).all() and owner[:lo].lt(rank).all() \
            and owner[hi:].gt(rank).all()


def test_a_sharded_table_holds_the_rows_of_the_unsharded_one():
    whole = RowShardedEmbedding(11, 4, generator=torch.Generator().manual_seed(3)).weight
    parts = [RowShardedEmbedding(11, 4, DistContext(r, 3, "gloo"),
                                 generator=torch.Generator().manual_seed(3)).weight
             for r in range(3)]
    assert torch.equal(torch.cat(parts), whole)
    with pytest.raises(IndexError, match=r"ids must lie in \[0, 11\)"):
        RowShardedEmbedding(11, 4)(torch.tensor([3, 11]))


@pytest.mark.parametrize("layers", [1, 2, 3])
def test_sampled_propagation_with_every_neighbour_equals_full_propagation(layers):
    method = tiny_lightgcn(layers)
    users, items = method.encoder(method.adj)
    full = torch.cat([users, items])
    seeds = torch.tensor([0, 7, 49, 50, 63, 89])      # users and items (items from 50)
    graph = sample_subgraph(ReplicatedGraph(method.adj.crow, method.adj.col), seeds,
                            [-1] * layers)
    assert torch.equal(graph.nodes[:6], seeds) and graph.num_seeds == 6
    ego = method.encoder.ego()[graph.nodes]
    assert torch.allclose(propagate_subgraph(ego, graph, layers), full[seeds], atol=1e-6)
    # a subgraph smaller than the graph: only the 1-hop neighbourhood for one layer
    if layers == 1:
        degree = method.adj.crow[seeds + 1] - method.adj.crow[seeds]
        assert graph.source.numel() == int(degree.sum()) and graph.nodes.numel() < 90


def test_a_fanout_keeps_that_many_distinct_neighbours_scaled_to_the_degree():
    method = tiny_lightgcn(1)
    crow, col = method.adj.crow, method.adj.col
    seeds = torch.arange(50)                                # every user
    degree = crow[1:51] - crow[:50]
    assert int(degree.min()) < 3 < int(degree.max())        # some below the fanout, some above
    graph = sample_subgraph(ReplicatedGraph(crow, col), seeds, [3],
                            torch.Generator().manual_seed(0))
    kept = torch.bincount(graph.target, minlength=50)[:50]
    assert torch.equal(kept, degree.clamp(max=3))
    for user in range(50):
        neighbours = graph.nodes[graph.source[graph.target == user]]
        assert neighbours.unique().numel() == min(int(degree[user]), 3)
        assert torch.isin(neighbours, col[crow[user]:crow[user + 1]]).all()
    # a kept edge weighs max(degree / 3, 1) times LightGCN's 1 / sqrt(d_i d_j)
    d = (crow[1:] - crow[:-1]).float()
    src, tgt = graph.nodes[graph.source], graph.nodes[graph.target]
    scale = (d[tgt] / 3).clamp(min=1)
    assert torch.allclose(graph.weight, scale / torch.sqrt(d[tgt] * d[src]))
    again = sample_subgraph(ReplicatedGraph(crow, col), seeds, [3],
                            torch.Generator().manual_seed(0))
    assert torch.equal(again.source, graph.source)
    other = sample_subgraph(ReplicatedGraph(crow, col), seeds, [3],
                            torch.Generator().manual_seed(1))
    assert not torch.equal(other.nodes[other.source], graph.nodes[graph.source])


BATCH = 64


def one_sgd_step(ctx: DistContext, shard_graph: bool = False
                 ) -> tuple[torch.Tensor, float, int, int]:
    """This rank's shard after one SGD step on its share of a fixed global batch, the
    rank's loss, the bytes its lookups sent and the bytes its sampler sent."""
    method = tiny_lightgcn(2)
    model = ShardedSampledLightGCN(method.adj.crow, method.adj.col, 50, 40, emb_dim=8,
                                   num_layers=2, ctx=ctx, shard_graph=shard_graph,
                                   generator=torch.Generator().manual_seed(5))
    g = torch.Generator().manual_seed(9)
    batch = (torch.randint(0, 50, (BATCH,), generator=g), torch.randint(0, 40, (BATCH,), generator=g),
             torch.randint(0, 40, (BATCH,), generator=g))
    users, pos, neg = (shard(t, ctx) for t in batch)
    loss = model.loss(users, pos, neg, BATCH)
    loss.backward()
    with torch.no_grad():
        model.table.weight -= 0.5 * model.table.weight.grad
    return (model.table.weight.detach().clone(), float(loss.detach()), model.table.sent_bytes,
            model.graph.sent_bytes)


def _rank(rank: int, world: int, port: int, results, job: str = "step") -> None:
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        ctx = DistContext(rank, world, "gloo")
        results[rank] = (one_sgd_step(ctx, shard_graph=job == "sharded graph")
                         if job != "sampling" else sharded_sampling(ctx))
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("shard_graph", [False, True], ids=["replicated graph", "sharded graph"])
def test_two_ranks_step_as_one_process_does_on_the_global_batch(shard_graph):
    """Each rank looks up the rows of its half of the batch from both shards; the
    gradients travel back to the owners, which sum them: after one step the two shards
    side by side equal the one-process table, and the ranks' losses add up to its loss.
    With the graph sharded too, each rank asks the other for its nodes' neighbours."""
    single, loss, sent, _ = one_sgd_step(SINGLE)
    assert sent == 0
    start = RowShardedEmbedding(90, 8, generator=torch.Generator().manual_seed(5)).weight
    assert not torch.allclose(single, start, atol=1e-4)     # the step moved the rows
    results = mp.Manager().dict()
    job = "sharded graph" if shard_graph else "step"
    mp.spawn(_rank, args=(2, _free_port(), results, job), nprocs=2)
    (w0, l0, s0, g0), (w1, l1, s1, g1) = results[0], results[1]
    assert torch.allclose(torch.cat([w0, w1]), single, atol=1e-6)
    assert l0 + l1 == pytest.approx(loss, rel=1e-5)
    assert s0 > 0 and s1 > 0                                # rows crossed between the ranks
    assert (g0 > 0 and g1 > 0) if shard_graph else g0 == g1 == 0


def test_a_rank_holds_its_own_adjacency_rows():
    method = tiny_lightgcn(1)
    crow, col = method.adj.crow, method.adj.col
    whole = ReplicatedGraph(crow, col)
    parts = [RowShardedGraph.from_csr(crow, col, DistContext(r, 3, "gloo")) for r in range(3)]
    assert [(p.lo, p.hi) for p in parts] == [shard_bounds(90, DistContext(r, 3)) for r in range(3)]
    assert sum(p.nbytes for p in parts) == whole.nbytes + 2 * crow.element_size()
    for p in parts:
        rows = torch.arange(p.lo, p.hi)
        assert torch.equal(p.owner(rows), torch.full_like(rows, p.ctx.rank))
        for node in (p.lo, p.hi - 1):
            local = node - p.lo
            assert torch.equal(p.col[p.crow[local]:p.crow[local + 1]], col[crow[node]:crow[node + 1]])
    with pytest.raises(ValueError, match=r"owns rows \[30, 60\) of 90: crow needs 31 entries"):
        RowShardedGraph(crow, col, 90, DistContext(1, 3, "gloo"))
    # on one process the sharded store is the whole graph and samples as the replicated one
    seeds = torch.tensor([0, 7, 49, 50, 63, 89])
    one = sample_subgraph(RowShardedGraph.from_csr(crow, col), seeds, [3, 2],
                          torch.Generator().manual_seed(4))
    ref = sample_subgraph(whole, seeds, [3, 2], torch.Generator().manual_seed(4))
    assert torch.equal(one.nodes, ref.nodes) and torch.equal(one.source, ref.source)
    assert torch.equal(one.weight, ref.weight)


SEEDS_OF_RANK = (torch.tensor([0, 7, 49, 50]), torch.tensor([63, 89, 3]))


def sharded_sampling(ctx: DistContext) -> dict[str, torch.Tensor]:
    """This rank's 2-hop subgraphs on the sharded graph: every neighbour, and a fanout of 3."""
    method = tiny_lightgcn(2)
    graph = RowShardedGraph.from_csr(method.adj.crow, method.adj.col, ctx)
    seeds = SEEDS_OF_RANK[ctx.rank]
    full = sample_subgraph(graph, seeds, [-1, -1])
    fan = sample_subgraph(graph, seeds, [3, 3], torch.Generator().manual_seed(ctx.rank))
    # a hop where one rank has nothing to ask still runs: both ranks take part
    empty = sample_subgraph(graph, seeds[:0] if ctx.rank == 0 else seeds, [2])
    return {"nodes": full.nodes, "edges": torch.stack([full.nodes[full.source],
                                                       full.nodes[full.target]]),
            "weight": full.weight, "fan_edges": torch.stack([fan.nodes[fan.source],
                                                             fan.nodes[fan.target]]),
            "fan_weight": fan.weight, "empty_nodes": empty.nodes,
            "sent": torch.tensor(graph.sent_bytes)}


def _edge_set(edges: torch.Tensor, weight: torch.Tensor) -> dict[tuple[int, int], float]:
    return {(int(s), int(t)): float(w) for (s, t), w in zip(edges.t(), weight, strict=True)}


def test_sampling_a_sharded_graph_on_two_ranks_finds_what_the_whole_graph_holds():
    """Each rank samples its own seeds; the owners draw the neighbours. With every
    neighbour kept the subgraph (nodes, edges, weights) is the one-process subgraph; with
    a fanout each target keeps min(3, degree) of its true neighbours, weighted by the
    degrees its owner knows."""
    method = tiny_lightgcn(2)
    crow, col = method.adj.crow, method.adj.col
    whole = ReplicatedGraph(crow, col)
    results = mp.Manager().dict()
    mp.spawn(_rank, args=(2, _free_port(), results, "sampling"), nprocs=2)
    d = (crow[1:] - crow[:-1]).float()
    for rank in (0, 1):
        got = results[rank]
        ref = sample_subgraph(whole, SEEDS_OF_RANK[rank], [-1, -1])
        assert torch.equal(got["nodes"], ref.nodes)
        want = _edge_set(torch.stack([ref.nodes[ref.source], ref.nodes[ref.target]]), ref.weight)
        have = _edge_set(got["edges"], got["weight"])
        assert have.keys() == want.keys() and len(have) == got["edges"].size(1)
        assert all(have[e] == pytest.approx(w, rel=1e-6) for e, w in want.items())
        src, tgt = got["fan_edges"]
        assert all(int(s) in col[crow[t]:crow[t + 1]].tolist() for s, t in zip(src, tgt, strict=True))
        kept = torch.bincount(tgt, minlength=90)
        assert torch.equal(kept[tgt], (crow[tgt + 1] - crow[tgt]).clamp(max=3))
        scale = (d[tgt] / 3).clamp(min=1)
        assert torch.allclose(got["fan_weight"], scale / torch.sqrt(d[tgt] * d[src]))
        assert int(got["sent"]) > 0
    assert results[0]["empty_nodes"].numel() == 0
    other = results[1]["empty_nodes"]                      # rank 1 sampled beside it
    assert torch.equal(other[:3], SEEDS_OF_RANK[1]) and other.numel() > 3
    neighbours = torch.cat([col[crow[t]:crow[t + 1]] for t in SEEDS_OF_RANK[1]])
    assert torch.isin(other[3:], neighbours).all()
