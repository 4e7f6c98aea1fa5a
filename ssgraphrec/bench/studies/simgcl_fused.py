"""SimGCL's three streams: one product per layer over ``[N, 3d]`` (fused) or three over ``[N, d]``.

For each dataset, in one process and alternating the variants repetition by
repetition, this times

* the kernel: three products ``A @ X`` with ``X`` of 64 columns against one
  product with 192 columns (the three streams side by side), and the
  concatenation the fused layer adds;
* a SimGCL training epoch (``Trainer.train_epoch``) with ``fused=false`` and
  ``fused=true``, after one warm-up epoch each.

Usage::

    SSGRAPHREC_DATA=../shared/data python benchmarks/simgcl_fused.py \\
        --datasets lastfm-80-20,gowalla --threads 1

Results go to ``benchmarks/results/simgcl-fused.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

from ssgraphrec.config import RunConfig, apply
from ssgraphrec.train.run import build
from ssgraphrec.train.trainer import Trainer

from . import RESULTS


def median_ms(fn, reps: int) -> float:
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return round(statistics.median(times) * 1e3, 1)


def kernel(dataset: str, reps: int) -> dict:
    run = build(RunConfig(method="lightgcn", dataset=dataset, val_ratio=0.0))
    adj, d = run.method.adj, 64
    x = torch.randn(adj.size, d)
    x3 = torch.randn(adj.size, 3 * d)
    rows: dict[str, list[float]] = {"three_64_ms": [], "one_192_ms": [], "concat_ms": []}
    for _ in range(reps):  # round-robin
        rows["three_64_ms"].append(median_ms(lambda: [adj.matmul(x) for _ in range(3)], 1))
        rows["one_192_ms"].append(median_ms(lambda: adj.matmul(x3), 1))
        rows["concat_ms"].append(median_ms(lambda: torch.cat([x, x, x], 1), 1))
    return {"nodes": adj.size, "nnz": adj.nnz,
            **{k: statistics.median(v) for k, v in rows.items()}}


def epochs(dataset: str, reps: int) -> dict:
    trainers = {}
    for fused in (False, True):
        cfg = RunConfig(method="simgcl", dataset=dataset, val_ratio=0.0, seed=2020)
        apply(cfg, {"fused": fused})
        run = build(cfg)
        trainer = Trainer(run.method, run.data, Path(tempfile.mkdtemp()), epochs=reps + 1,
                          generator=run.generator, progress=False, log=lambda msg: None)
        trainer.train_epoch(0)  # warm-up
        trainers[fused] = trainer
    times: dict[bool, list[float]] = {False: [], True: []}
    for rep in range(reps):
        for fused, trainer in trainers.items():
            t0 = time.perf_counter()
            trainer.train_epoch(rep + 1)
            times[fused].append(time.perf_counter() - t0)
    plain, fused = statistics.median(times[False]), statistics.median(times[True])
    return {"unfused_epoch_s": round(plain, 3), "fused_epoch_s": round(fused, 3),
            "fused_over_unfused": round(fused / plain, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="lastfm-80-20,gowalla")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--kernel-reps", type=int, default=7)
    parser.add_argument("--epoch-reps", type=int, default=2)
    parser.add_argument("--skip-epochs", default="gowalla",
                        help="datasets timed at the kernel only (Gowalla epochs take minutes)")
    parser.add_argument("--out", default=str(RESULTS / "simgcl-fused.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    skip = set(filter(None, args.skip_epochs.split(",")))
    out = {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
           "torch": torch.__version__, "threads": torch.get_num_threads(), "datasets": {}}
    for dataset in args.datasets.split(","):
        entry = {"kernel": kernel(dataset, args.kernel_reps)}
        if dataset not in skip:
            entry["epoch"] = epochs(dataset, args.epoch_reps)
        out["datasets"][dataset] = entry
        print(dataset, json.dumps(entry), flush=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
