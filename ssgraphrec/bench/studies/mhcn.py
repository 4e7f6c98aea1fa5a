"""MHCN benchmark: building the motif channels, and training epochs (CPU).

1. ``build``: time and peak memory of :class:`ssgraphrec.transforms.SocialMotifs`
   (all ten motifs, the three channels, row normalization) on ``lastfm`` and on
   a synthetic social dataset ten times its size (``ssgraphrec.data.synthetic``:
   18,920 users, 176,320 items, about 245k social links). Each build runs in a
   fresh subprocess, so that its peak resident memory is its own: the figure is
   the peak RSS during the build minus the RSS just before it (Linux
   ``VmHWM``, reset through ``/proc/self/clear_refs``; ``ru_maxrss`` where that
   is not possible).
2. ``epochs``: seconds per MHCN training epoch on ``lastfm`` (8:1:1 split,
   ``val_ratio=0.1112``; the paper's defaults: 50 dims, 2 layers, batch 2000,
   beta 0.01), after one warm-up epoch; also the time to build the method
   (which includes the motif channels) and one full-ranking validation.

Usage::

    python benchmarks/mhcn.py                # about five minutes on two busy cores
    python benchmarks/mhcn.py --threads 1    # torch.set_num_threads(1) (busy machines)
    python benchmarks/mhcn.py --quick        # lastfm only, one timed epoch

Results go to ``benchmarks/results/mhcn.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import multiprocessing as mp
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch
import torch_geometric

from . import REPO, cpu_model, shared_data, write_result

SEED = 2020
VAL_RATIO_8_1_1 = 0.1112
SYNTHETIC = {"num_users": 18920, "num_items": 176320, "social_degree_in": 12.0}

warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta state")
warnings.filterwarnings("ignore", message="Sparse invariant checks are implicitly disabled")




def _status_kb(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak() -> bool:
    """Reset the kernel's peak RSS (VmHWM) of this process; False if not possible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _load(which: str, root: str):
    from ssgraphrec.data import SyntheticConfig, build_dataset, load_dataset, make_synthetic

    if which == "lastfm":
        return load_dataset("lastfm", root=root, val_ratio=VAL_RATIO_8_1_1, seed=SEED)
    return build_dataset(make_synthetic(SyntheticConfig(**SYNTHETIC), seed=0), test_ratio=0.1,
                         val_ratio=VAL_RATIO_8_1_1, seed=SEED)


def _build_child(which: str, root: str, threads: int | None, queue) -> None:
    """Runs in a fresh process: load the data, then time one SocialMotifs build."""
    warnings.filterwarnings("ignore", category=UserWarning)
    if threads:
        torch.set_num_threads(threads)
    from ssgraphrec.data.schema import FOLLOWS, INTERACTS, summary
    from ssgraphrec.transforms import SocialMotifs
    from ssgraphrec.transforms.social_motifs import CHANNEL_EDGE_TYPES

    data = _load(which, root)
    gc.collect()
    exact = _reset_peak()
    rss_before = _status_kb("VmRSS")
    maxrss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0, c0 = time.perf_counter(), time.process_time()
    out = SocialMotifs()(data)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    peak = _status_kb("VmHWM") if exact else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    item_deg = torch.bincount(data[INTERACTS].edge_index[1], minlength=data["item"].num_nodes)
    channels = {}
    for name, et in CHANNEL_EDGE_TYPES.items():
        count = out[et].motif_count
        # each social motif instance (3 users) adds 1 to 6 ordered pairs; each joint or
        # purchase instance (2 users + 1 item) to 2
        per_instance = 6 if name == "social" else 2
        channels[name] = {"nnz": int(count.numel()),
                          "motif_instances": int(count.sum().item()) // per_instance}
    info = summary(data)
    queue.put({
        "dataset": which,
        "users": info["users"], "items": info["items"], "train_interactions": info["train"],
        "social_links": int(data[FOLLOWS].edge_index.size(1)),
        "user_item_user_paths": int((item_deg * item_deg).sum()),
        "seconds": round(wall, 3), "cpu_seconds": round(cpu, 3),
        "peak_rss_increase_mib": round((peak - (rss_before if exact else maxrss_before)) / 1024, 1),
        "peak_measure": "VmHWM after reset" if exact else "ru_maxrss increase (lower bound)",
        "channels": channels,
    })


def bench_build(which: str, root: Path, threads: int | None) -> dict:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_build_child, args=(which, str(root), threads, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def bench_epochs(root: Path, timed: int) -> dict:
    from ssgraphrec.config import RunConfig
    from ssgraphrec.train.run import build
    from ssgraphrec.train.trainer import Trainer

    cfg = RunConfig(method="mhcn", dataset="lastfm", data_root=str(root), device="cpu",
                    val_ratio=VAL_RATIO_8_1_1, seed=SEED, sparse_backend="torch")
    t0 = time.perf_counter()
    run = build(cfg)
    build_s = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(run.method, run.data, Path(tmp), epochs=timed + 1,
                          generator=run.generator, progress=False, log=lambda msg: None)
        walls, cpus = [], []
        for epoch in range(timed + 1):
            t0, c0 = time.perf_counter(), time.process_time()
            losses = trainer.train_epoch(epoch)
            if epoch:  # the first epoch is a warm-up
                walls.append(time.perf_counter() - t0)
                cpus.append(time.process_time() - c0)
        t0 = time.perf_counter()
        val = trainer.evaluate("val")
        eval_s = time.perf_counter() - t0
    mcfg = run.method.cfg
    return {
        "dataset": "lastfm", "split": "random, test 0.1, val_ratio 0.1112 (8:1:1)",
        "config": {k: getattr(mcfg, k) for k in ("emb_dim", "num_layers", "batch_size", "lr",
                                                 "reg", "ssl_weight", "purchase_min_common")},
        "batches_per_epoch": -(-run.data["user", "interacts", "item"].edge_index.size(1)
                               // mcfg.batch_size),
        "method_build_seconds": round(build_s, 3),
        "epoch_seconds_median": round(statistics.median(walls), 3),
        "epoch_seconds": [round(w, 3) for w in walls],
        "epoch_cpu_seconds": [round(c, 3) for c in cpus],
        "validation_eval_seconds": round(eval_s, 3),
        "last_losses": {k: round(v, 5) for k, v in losses.items()},
        "val_recall@20_after_timed_epochs": round(val["recall@20"], 4),
    }




def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "mhcn.json"))
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs after one warm-up")
    parser.add_argument("--quick", action="store_true", help="lastfm only, one timed epoch")
    args = parser.parse_args()
    root = shared_data("mhcn", "lastfm")
    if args.threads:
        torch.set_num_threads(args.threads)
    load_start = os.getloadavg()[0]
    cores = os.cpu_count() or 1
    if load_start > cores:
        print(f"warning: load average {load_start:.1f} exceeds the {cores} cores; consider "
              "--threads 1 (see benchmarks/README.md)", file=sys.stderr)
    builds = []
    for which in ("lastfm",) if args.quick else ("lastfm", "synthetic"):
        print(f"building the motif channels of {which} ...", file=sys.stderr)
        builds.append(bench_build(which, root, args.threads))
        b = builds[-1]
        print(f"  {b['seconds']:.1f} s, peak +{b['peak_rss_increase_mib']:.0f} MiB, channel nnz "
              + ", ".join(f"{k} {v['nnz']:,}" for k, v in b["channels"].items()), file=sys.stderr)
    print("timing MHCN epochs on lastfm ...", file=sys.stderr)
    epochs = bench_epochs(root, 1 if args.quick else args.epochs)
    print(f"  {epochs['epoch_seconds_median']:.2f} s/epoch", file=sys.stderr)
    result = {
        "benchmark": "mhcn",
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "command": " ".join(["python", "benchmarks/mhcn.py", *sys.argv[1:]]),
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     "torch_geometric": torch_geometric.__version__},
        "cpu": cpu_model(), "cores": cores, "torch_threads": torch.get_num_threads(),
        "load_average_start": round(load_start, 2),
        "load_average_end": round(os.getloadavg()[0], 2),
        "synthetic_config": SYNTHETIC,
        "build": builds,
        "epochs": epochs,
    }
    out = Path(args.out)
    write_result(out, result)
    print(json.dumps(result, indent=2))
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
