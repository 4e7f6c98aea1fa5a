"""Where one BiGI training step spends its time, on one CPU thread.

BiGI (Cao et al., WSDM 2021) encodes the whole graph twice per batch (real
graph, and corrupted graph with row-shuffled inputs), as the authors'
``train_rec.py`` / ``DGITrainer.reconstruct`` do, then reads out the batch's
sub-graphs. This script times, as the median of ``--repeats`` runs:

* the whole step (loss, backward, Adam) at the given batch sizes;
* one encoding forward + backward (real), and the corrupted one;
* the batch's one-hop sub-graphs by the CSR fast path and by the general
  dense-reachability path (what every ``hops`` used before);
* the attention readout forward + backward;
* the encoder's dropout (uniform-number mask) against ``F.dropout``.

It also counts the multiply-adds of the two encodings, the floor of a step
that this design cannot go below.

Usage::

    python benchmarks/bigi_step.py --threads 1          # ML-100K and DBLP, batches 128 and 1024

Results go to ``benchmarks/results/bigi-step.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F

from . import REPO, shared_data, write_result

SEED = 2020
warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta state")


def median_ms(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return round(1000 * statistics.median(times), 2)


def encoder_macs(num_users: int, num_items: int, nnz: int, dim: int, layers: int) -> int:
    """Forward multiply-adds of one encoding: per layer two hops of per-type transforms and
    sparse products, and the ``[2d -> d]`` union of each node type."""
    n = num_users + num_items
    per_layer = 2 * (n * dim * dim + nnz * dim) + n * 2 * dim * dim
    return layers * per_layer


def time_batch(method, opt, batch: torch.Tensor, neg: torch.Tensor, general, gen,
               repeats: int) -> dict:
    """Milliseconds of one step and of its parts on one batch."""
    from ssgraphrec.data.subgraph import enclosing_subgraphs
    from ssgraphrec.methods.base import BPRBatch

    cfg, nu = method.cfg, method.num_users
    sub = enclosing_subgraphs(method.reach, batch, nu, 1, cfg.num_neighbors, gen)
    users, items = method.encoder.user_emb.weight, method.encoder.item_emb.weight

    def step():
        loss = sum(method.loss(BPRBatch(batch[0], batch[1], neg)).values())
        opt.zero_grad()
        loss.backward()
        opt.step()

    def readout():
        method.readout(users, items, batch, sub).sum().backward()

    def fast():
        enclosing_subgraphs(method.reach, batch, nu, 1, cfg.num_neighbors, gen)

    return {"step_ms": median_ms(step, repeats),
            "subgraphs_one_hop_fast_ms": median_ms(fast, repeats),
            "subgraphs_general_path_ms": median_ms(lambda: general(batch), repeats),
            "readout_fwd_bwd_ms": median_ms(readout, repeats)}


def profile(dataset: str, root: Path, batch_sizes: list[int], repeats: int) -> dict:
    from ssgraphrec.data import load_dataset
    from ssgraphrec.data.schema import INTERACTS
    from ssgraphrec.data.subgraph import EnclosingSubgraphs, _sample, reachable
    from ssgraphrec.methods import BiGI, BiGIConfig
    from ssgraphrec.nn.dropout import dropout
    from ssgraphrec.nn.perturb import row_shuffle
    from ssgraphrec.train.trainer import adam

    data = load_dataset(dataset, root=root, seed=SEED)
    gen = torch.Generator().manual_seed(SEED)
    torch.manual_seed(SEED)
    method = BiGI(data, BiGIConfig(), generator=gen).train()
    opt = adam(list(method.parameters()), method.cfg.lr)   # the trainer's Adam
    edges = data[INTERACTS].edge_index
    nu, ni = method.num_users, method.num_items
    enc, cfg = method.encoder, method.cfg
    out: dict = {"users": nu, "items": ni, "train_edges": int(edges.size(1))}
    macs = encoder_macs(nu, ni, method.adj.nnz, cfg.emb_dim, cfg.num_layers)
    out["encoding_forward_mmacs"] = round(macs / 1e6, 1)
    out["step_floor_gmacs"] = round(2 * 3 * macs / 1e9, 2)   # 2 encodings, forward + backward

    def encode_real():
        u, i = enc(method.adj)
        (u.sum() + i.sum()).backward()

    def encode_fake():
        u, i = enc(method.fake_adj, row_shuffle(enc.user_emb.weight, gen).detach(),
                   row_shuffle(enc.item_emb.weight, gen).detach())
        (u.sum() + i.sum()).backward()

    out["encoding_real_fwd_bwd_ms"] = median_ms(encode_real, repeats)
    out["encoding_corrupted_fwd_bwd_ms"] = median_ms(encode_fake, repeats)
    x = torch.randn(nu + ni, cfg.emb_dim)
    out["dropout_F_ms"] = median_ms(lambda: F.dropout(x, cfg.dropout, True), repeats)
    out["dropout_uniform_mask_ms"] = median_ms(lambda: dropout(x, cfg.dropout, True), repeats)

    def general(batch):
        u, v = batch[0], batch[1]
        reach = reachable(method.reach, torch.stack([u, v + nu], 1), 1)
        return EnclosingSubgraphs(*_sample(reach[:, :nu], cfg.num_neighbors, gen),
                                  *_sample(reach[:, nu:], cfg.num_neighbors, gen))

    per_batch = {}
    for b in batch_sizes:
        idx = torch.randperm(edges.size(1), generator=gen)[:b]
        row = time_batch(method, opt, edges[:, idx], torch.randint(0, ni, (b,), generator=gen),
                         general, gen, repeats)
        row["batches_per_epoch"] = -(-int(edges.size(1)) // b)
        row["estimated_s_per_epoch"] = round(row["step_ms"] * row["batches_per_epoch"] / 1000, 1)
        per_batch[str(b)] = row
    out["per_batch"] = per_batch
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--datasets", nargs="+", default=["bigi-ml-100k", "bigi-dblp"])
    ap.add_argument("--batch-sizes", nargs="+", type=int, default=[128, 1024])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "bigi-step.json")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    root = shared_data("bigi_step", *args.datasets)
    results = {}
    for dataset in args.datasets:
        print(f"{dataset} ...", flush=True)
        results[dataset] = profile(dataset, root, args.batch_sizes, args.repeats)
        print(json.dumps(results[dataset], indent=1), flush=True)
    result = {
        "benchmark": "bigi-step",
        "command": "python benchmarks/bigi_step.py " + " ".join(sys.argv[1:]),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "torch": torch.__version__,
                    "threads": torch.get_num_threads(), "cpus": os.cpu_count(),
                    "load_average_1min": round(os.getloadavg()[0], 2)},
        "seed": SEED,
        "results": results,
    }
    write_result(args.out, result)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
