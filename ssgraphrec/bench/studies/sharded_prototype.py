"""Memory per rank and communication per step of LightGCN on row-sharded tables with sampled propagation.

Spawns ``--ranks`` processes (gloo, one thread each) on a synthetic graph scaled
up (power-law item popularity), trains ``--steps`` steps of
:class:`ssgraphrec.scale.ShardedSampledLightGCN` with Adam, and reports per rank:
the rows it holds and their bytes with Adam's two moments, the graph's CSR bytes it
holds (all of it, or with ``--shard-graph`` its own rows), its peak RSS, the bytes
its lookups sent per step (the backward pass sends as many gradient bytes as rows
arrived) and its sampler sent (sharded graph), the sampled neighbourhood's nodes
per step and the seconds per step; beside the memory one process would need for
the whole tables.

Usage::

    python benchmarks/sharded_prototype.py --users 200000 --items 100000 --per-user 20 \\
        --ranks 2 --fanouts 10,5 [--shard-graph]

Results go to ``benchmarks/results/sharded-prototype.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import datetime
import os
import resource
import socket
import statistics
import sys
import time
from pathlib import Path

import torch

from . import RESULTS, cpu_model, write_result


def synthetic_csr(users: int, items: int, per_user: int, seed: int):
    """The symmetric CSR of a random user-item graph, items drawn by a Zipf law."""
    g = torch.Generator().manual_seed(seed)
    weights = 1.0 / torch.arange(1, items + 1, dtype=torch.float64)
    item = torch.multinomial(weights, users * per_user, replacement=True, generator=g)
    user = torch.arange(users).repeat_interleave(per_user)
    pairs = torch.unique(user * items + item)          # distinct interactions
    user, item = pairs // items, pairs % items
    rows = torch.cat([user, item + users])
    cols = torch.cat([item + users, user])
    order = torch.argsort(rows * (users + items) + cols)
    rows, cols = rows[order], cols[order]
    crow = torch.zeros(users + items + 1, dtype=torch.long)
    crow[1:] = torch.cumsum(torch.bincount(rows, minlength=users + items), 0)
    return crow, cols, user, item


def _rank(rank: int, world: int, port: int, args, results) -> None:
    import torch.distributed as dist

    from ...distributed import DistContext, shard
    from ...scale import ShardedSampledLightGCN

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    ctx = DistContext(rank, world, "gloo")
    crow, col, user, item = synthetic_csr(args.users, args.items, args.per_user, args.seed)
    fanouts = [int(f) for f in args.fanouts.split(",")]
    model = ShardedSampledLightGCN(crow, col, args.users, args.items, emb_dim=args.dim,
                                   num_layers=len(fanouts), fanouts=fanouts, ctx=ctx,
                                   generator=torch.Generator().manual_seed(args.seed),
                                   shard_graph=args.shard_graph)
    whole_csr_mib = (crow.numel() + col.numel()) * 8 / 2**20
    del crow, col  # a sharded graph keeps copies of this rank's rows only
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(args.seed + 1 + rank)
    steps, nodes, sent, sampled = [], [], [], []
    for _ in range(args.steps + 1):
        pick = torch.randint(0, user.numel(), (args.batch,), generator=g)
        neg = torch.randint(0, args.items, (args.batch,), generator=g)
        batch = (user[pick], item[pick], neg)
        before, before_graph = model.table.sent_bytes, model.graph.sent_bytes
        t0 = time.perf_counter()
        loss = model.loss(*(shard(t, ctx) for t in batch), args.batch, g)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        steps.append(time.perf_counter() - t0)
        nodes.append(model.last_subgraph_nodes)
        sent.append(model.table.sent_bytes - before)
        sampled.append(model.graph.sent_bytes - before_graph)
    shard_rows = model.table.weight.size(0)
    results[rank] = {
        "rank": rank, "rows": shard_rows,
        "table_and_adam_mib": round(3 * shard_rows * args.dim * 4 / 2**20, 1),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "graph_csr_mib": round(model.graph.nbytes / 2**20, 1),
        "whole_graph_csr_mib": round(whole_csr_mib, 1),
        "sampling_sent_mib_per_step": round(statistics.median(sampled[1:]) / 2**20, 2),
        "step_s": round(statistics.median(steps[1:]), 4),
        "subgraph_nodes_per_step": int(statistics.median(nodes[1:])),
        "lookup_sent_mib_per_step": round(statistics.median(sent[1:]) / 2**20, 2),
        "gradient_sent_mib_per_step_about": round(statistics.median(sent[1:]) / 2**20, 2),
    }
    dist.destroy_process_group()


def main() -> None:
    import torch.multiprocessing as mp

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=200_000)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--per-user", type=int, default=20)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--fanouts", default="10,5", help="neighbours per node at each hop")
    parser.add_argument("--batch", type=int, default=2048, help="global batch")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--ranks", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--shard-graph", action="store_true",
                        help="each rank keeps only its own adjacency rows (RowShardedGraph)")
    parser.add_argument("--out", default=str(RESULTS / "sharded-prototype.json"))
    args = parser.parse_args()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    results = mp.Manager().dict()
    mp.spawn(_rank, args=(args.ranks, port, args, results), nprocs=args.ranks)
    crow, col, *_ = synthetic_csr(args.users, args.items, args.per_user, args.seed)
    nodes = args.users + args.items
    out = {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": " ".join(["python", "benchmarks/sharded_prototype.py", *sys.argv[1:]]),
        "cpu": cpu_model(), "settings": vars(args),
        "graph": {"nodes": nodes, "interactions": col.numel() // 2},
        "one_process_table_and_adam_mib": round(3 * nodes * args.dim * 4 / 2**20, 1),
        "ranks": [results[r] for r in range(args.ranks)],
    }
    write_result(Path(args.out), out)
    print(out)


if __name__ == "__main__":
    main()
