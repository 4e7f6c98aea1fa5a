"""Time and peak memory of the session structure builders on a Diginetica-sized instance.

A random instance: ``--sessions`` sessions (default 700k) of length
``1 + Poisson(4)`` (mean 5) over ``--items`` items (default 43k) with Zipf-like
popularity ``p(rank r) ~ 1 / (r + 1) ** --zipf``. Each stage runs in a fresh
subprocess so that its peak resident memory (``ru_maxrss``) is its own; the
figure reported is the peak minus the resident memory after the instance was
built. Prints one line per stage.

    python benchmarks/session_structures.py [--sessions N] [--items I] [--zipf A] [--threads T]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import torch

STAGES = ("hypergraph", "line_graph_batch100", "line_graph_batch512", "line_graph_paths",
          "cooccurrence", "augment_crop_mask_reorder", "augment_substitute_insert")


def instance(n_sessions: int, n_items: int, zipf: float, seed: int = 0):
    from torch_geometric.data import HeteroData

    from ssgraphrec.data.schema import CONTAINS, ITEM, SESSION

    g = torch.Generator().manual_seed(seed)
    length = 1 + torch.poisson(torch.full((n_sessions,), 4.0), generator=g).long()
    p = 1.0 / torch.arange(1, n_items + 1, dtype=torch.float64) ** zipf
    items = torch.multinomial(p / p.sum(), int(length.sum()), replacement=True, generator=g)
    session = torch.repeat_interleave(torch.arange(n_sessions), length)
    ptr = torch.zeros(n_sessions + 1, dtype=torch.long)
    ptr[1:] = torch.cumsum(length, 0)
    data = HeteroData()
    data[SESSION].num_nodes = n_sessions
    data[ITEM].num_nodes = n_items
    data[CONTAINS].edge_index = torch.stack([session, items])
    data[CONTAINS].position = torch.arange(session.numel()) - ptr[session]
    return data


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_stage(stage: str, args) -> dict:
    from ssgraphrec.data.schema import CONTAINS
    from ssgraphrec.transforms import (
        ItemCrop,
        ItemInsert,
        ItemMask,
        ItemReorder,
        ItemSubstitute,
        SessionHypergraph,
        item_cooccurrence,
        line_graph,
    )

    torch.set_num_threads(args.threads)
    data = instance(args.sessions, args.items, args.zipf)
    ei = data[CONTAINS].edge_index
    base = rss_mib()
    gen = torch.Generator().manual_seed(1)
    t0 = time.perf_counter()
    extra: dict = {}
    if stage == "hypergraph":
        out = SessionHypergraph()(data)
        extra["nnz"] = int(out["item", "hypergraph", "item"].edge_index.size(1))
    elif stage.startswith("line_graph_batch"):
        b = int(stage.removeprefix("line_graph_batch"))
        from ssgraphrec.transforms.session_ops import session_pointer
        perm = torch.randperm(args.sessions, generator=gen)
        ptr = session_pointer(ei[0], args.sessions)
        t0 = time.perf_counter()
        n_batches = 50
        nnz = 0
        for k in range(n_batches):
            nnz += line_graph(ei, args.sessions, args.items, perm[k * b:(k + 1) * b],
                              ptr=ptr).edge_index.size(1)
        extra["batches"] = n_batches
        extra["ms_per_batch"] = round(1000 * (time.perf_counter() - t0) / n_batches, 2)
        extra["mean_nnz"] = nnz / n_batches
    elif stage == "line_graph_paths":
        # The full line graph's size: sum over items of (sessions holding it)^2.
        from ssgraphrec.data.schema import sort_pairs
        pairs = sort_pairs(ei, args.items)
        deg = torch.bincount(pairs[1], minlength=args.items).double()
        extra["paths_sum_d2"] = float((deg * deg).sum())
        extra["top_item_sessions"] = int(deg.max())
    elif stage == "cooccurrence":
        g = item_cooccurrence(data)
        extra["nnz"] = int(g.col.numel())
    elif stage == "augment_crop_mask_reorder":
        for t in (ItemCrop(generator=gen), ItemMask(generator=gen), ItemReorder(generator=gen)):
            t(data)
    elif stage == "augment_substitute_insert":
        g = item_cooccurrence(data)
        t0 = time.perf_counter()
        for t in (ItemSubstitute(cooccurrence=g, generator=gen), ItemInsert(cooccurrence=g, generator=gen)):
            t(data)
    seconds = time.perf_counter() - t0
    return {"stage": stage, "seconds": round(seconds, 3), "peak_extra_mib": round(rss_mib() - base, 1),
            "incidences": int(ei.size(1)), **extra}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=700_000)
    parser.add_argument("--items", type=int, default=43_000)
    parser.add_argument("--zipf", type=float, default=1.0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--stage", choices=STAGES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stage:
        print(json.dumps(run_stage(args.stage, args)))
        return
    for stage in STAGES:
        cmd = [sys.executable, "-m", "ssgraphrec.bench.studies.session_structures",
               "--stage", stage, "--sessions", str(args.sessions),
               "--items", str(args.items), "--zipf", str(args.zipf), "--threads", str(args.threads)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=False)
        print(out.stdout.strip() or f'{{"stage": "{stage}", "error": {json.dumps(out.stderr[-500:])}}}',
              flush=True)


if __name__ == "__main__":
    main()
