"""DHCN benchmark on real session data: building the two structures, and training (CPU).

1. ``hypergraph``: time and peak memory of
   :class:`ssgraphrec.transforms.SessionHypergraph` (DHCN Eq. 2,
   ``D^-1 H W B^-1 H^T`` over the training samples, as S²-DHCN builds it).
2. ``line_graph``: the line graph of the dataset's raw training sessions
   (``all_train_seq.txt``: sessions adjacent when they share an item, Jaccard
   weights, ``A + I``, ``D^-1 (A + I)``), built whole; and the per-batch line
   graph of 100 training samples that S²-DHCN builds at every step.
3. ``train``: S²-DHCN with the paper's settings (``ssgraphrec train --method
   dhcn``): seconds per batch over ``--batches`` batches after two warm-up
   batches, the epoch time they imply, and the peak memory of training.

Each stage runs in a fresh process, so that its peak resident memory is its
own: the figure is the peak RSS during the stage minus the RSS just before it
(``VmHWM`` reset through ``/proc/self/clear_refs``, as ``benchmarks/mhcn.py``).

Usage::

    python benchmarks/dhcn.py --threads 1                    # diginetica
    python benchmarks/dhcn.py --dataset tmall --batches 20

Results go to ``benchmarks/results/dhcn-<dataset>.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import multiprocessing as mp
import os
import platform
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch
import torch_geometric

from . import REPO, cpu_model, shared_data, write_result
from .mhcn import _reset_peak, _status_kb  # shared peak-memory helpers

SEED = 2020




class Peak:
    """Wall time, CPU time and peak RSS increase of the code inside ``with``."""

    def __enter__(self):
        gc.collect()
        self.exact = _reset_peak()
        self.rss_before = _status_kb("VmRSS") or 0
        self.t0, self.c0 = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.seconds = round(time.perf_counter() - self.t0, 3)
        self.cpu_seconds = round(time.process_time() - self.c0, 3)
        peak = _status_kb("VmHWM") or 0
        self.peak_mib = round((peak - self.rss_before) / 1024, 1) if self.exact else None

    def record(self) -> dict:
        return {"seconds": self.seconds, "cpu_seconds": self.cpu_seconds,
                "peak_rss_increase_mib": self.peak_mib}


def stage_hypergraph(dataset: str, root: str) -> dict:
    from ssgraphrec.data import load_dataset
    from ssgraphrec.data.schema import SESSION
    from ssgraphrec.data.sessions import session_structure
    from ssgraphrec.transforms import SessionHypergraph

    data = load_dataset(dataset, root=root, seed=SEED)
    view = session_structure(data)
    with Peak() as p:
        out = SessionHypergraph()(view)
    edge_type = next(et for et in out.edge_types if et[1] == "hypergraph")
    return {"training_samples": int(data[SESSION].train_mask.sum()),
            "incidences": int(data["session", "contains", "item"].edge_index.size(1)),
            "operator_nnz": int(out[edge_type].edge_index.size(1)), **p.record()}


def stage_line_graph(dataset: str, root: str) -> dict:
    from ssgraphrec.data import load_dataset
    from ssgraphrec.data.readers.pickle_sessions import read_sequences
    from ssgraphrec.data.schema import CONTAINS, SESSION
    from ssgraphrec.data.sessions import flatten_sessions, session_data, session_pointer
    from ssgraphrec.transforms.session_line_graph import line_graph

    seqs = read_sequences(Path(root) / dataset / "all_train_seq.txt")
    ptr, items = flatten_sessions(seqs)
    raw = session_data((ptr, items - 1), int(items.max()))
    n = int(raw[SESSION].num_nodes)
    with Peak() as p:
        whole = line_graph(raw[CONTAINS].edge_index, n, int(raw["item"].num_nodes))
    data = load_dataset(dataset, root=root, seed=SEED)
    samples = data[SESSION].train_mask.nonzero().view(-1)
    gen = torch.Generator().manual_seed(SEED)
    sample_ptr = session_pointer(data)
    times = []
    for _ in range(50):
        batch = samples[torch.randperm(samples.numel(), generator=gen)[:100]]
        t0 = time.perf_counter()
        line_graph(data[CONTAINS].edge_index, int(data[SESSION].num_nodes),
                   int(data["item"].num_nodes), batch, ptr=sample_ptr)
        times.append(time.perf_counter() - t0)
    return {"raw_training_sessions": n, "clicks": int(items.numel()),
            "line_graph_nnz_with_self_loops": int(whole.edge_index.size(1)), **p.record(),
            "per_batch_100_samples_ms_median": round(1000 * statistics.median(times), 2)}


def stage_train(dataset: str, root: str, batches: int) -> dict:
    from ssgraphrec.config import RunConfig
    from ssgraphrec.train.run import build
    from ssgraphrec.train.trainer import adam

    cfg = RunConfig(method="dhcn", dataset=dataset, data_root=root, device="cpu", seed=SEED,
                    sparse_backend="torch")
    t0 = time.perf_counter()
    run = build(cfg)
    build_s = time.perf_counter() - t0
    method = run.method
    optimizer = adam(list(method.parameters()), method.cfg.lr)   # the trainer's Adam
    batch_iter = method.train_batches(run.generator)
    method.train()
    times, losses = [], {}
    with Peak() as p:
        for step in range(batches + 2):
            batch = next(batch_iter)
            t1 = time.perf_counter()
            terms = method.loss(batch)
            loss = sum(terms.values())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if step >= 2:  # two warm-up batches
                times.append(time.perf_counter() - t1)
            losses = {k: round(float(v), 4) for k, v in terms.items()}
    per_batch = statistics.median(times)
    n_batches = method.num_train_batches()
    return {"config": {k: getattr(method.cfg, k) for k in ("emb_dim", "num_layers", "batch_size",
                                                          "lr", "reg", "ssl_weight",
                                                          "position_embedding")},
            "method_build_seconds": round(build_s, 3), "timed_batches": batches,
            "seconds_per_batch_median": round(per_batch, 4),
            "batches_per_epoch": n_batches, "epoch_seconds_estimate": round(per_batch * n_batches, 1),
            "last_losses": losses, "training_peak_rss_increase_mib": p.peak_mib}


def _child(stage: str, args: dict, threads: int | None, queue) -> None:
    warnings.filterwarnings("ignore", category=UserWarning)
    if threads:
        torch.set_num_threads(threads)
    fn = {"hypergraph": stage_hypergraph, "line_graph": stage_line_graph, "train": stage_train}[stage]
    queue.put(fn(**args))


def in_child(stage: str, args: dict, threads: int | None) -> dict:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(stage, args, threads, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="diginetica", choices=["diginetica", "tmall"])
    parser.add_argument("--out", help="JSON output (default benchmarks/results/dhcn-<dataset>.json)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--batches", type=int, default=30, help="timed training batches")
    args = parser.parse_args()
    root = str(shared_data("dhcn", args.dataset))
    load_start = os.getloadavg()[0]
    results = {}
    for stage, extra in (("hypergraph", {}), ("line_graph", {}), ("train", {"batches": args.batches})):
        print(f"{stage} on {args.dataset} ...", file=sys.stderr)
        results[stage] = in_child(stage, {"dataset": args.dataset, "root": root, **extra}, args.threads)
        print(f"  {results[stage]}", file=sys.stderr)
    result = {
        "benchmark": "dhcn", "dataset": args.dataset,
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "command": " ".join(["python", "benchmarks/dhcn.py", *sys.argv[1:]]),
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     "torch_geometric": torch_geometric.__version__},
        "cpu": cpu_model(), "cores": os.cpu_count(), "torch_threads": args.threads or "default",
        "load_average_start": round(load_start, 2), "load_average_end": round(os.getloadavg()[0], 2),
        **results,
    }
    out = Path(args.out or REPO / "benchmarks" / "results" / f"dhcn-{args.dataset}.json")
    write_result(out, result)
    print(json.dumps(result, indent=2))
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
