"""SimGCL's three encoders computed three ways (``streams``): shared backward, separate, fused.

For each dataset, in one process and alternating the variants repetition by
repetition, this times

* the kernels: three products ``A @ X`` with ``X`` of 64 columns against one
  product with 192 columns (the three streams side by side, ``streams=fused``),
  the concatenation the fused layer adds, and one layer's noise draw with
  ``torch.rand`` against :func:`ssgraphrec.nn.perturb.uniform_draw`;
* a SimGCL training epoch (``Trainer.train_epoch``) with ``streams`` ``separate``,
  ``shared`` and ``fused``, after one warm-up epoch each (on Gowalla a window of
  its first ``--steps`` batches).

Usage::

    SSGRAPHREC_DATA=../shared/data python benchmarks/simgcl_streams.py \\
        --datasets lastfm-80-20,gowalla --threads 1

Results go to ``benchmarks/results/simgcl-streams.json`` (``--out``).
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

from ...nn.perturb import uniform_draw
from . import RESULTS, write_result


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
    g = torch.Generator().manual_seed(0)
    rows: dict[str, list[float]] = {"three_64_ms": [], "one_192_ms": [], "concat_ms": [],
                                    "torch_rand_ms": [], "uniform_draw_ms": []}
    for _ in range(reps):  # round-robin
        rows["three_64_ms"].append(median_ms(lambda: [adj.matmul(x) for _ in range(3)], 1))
        rows["one_192_ms"].append(median_ms(lambda: adj.matmul(x3), 1))
        rows["concat_ms"].append(median_ms(lambda: torch.cat([x, x, x], 1), 1))
        rows["torch_rand_ms"].append(median_ms(lambda: torch.rand(x.shape, generator=g), 1))
        rows["uniform_draw_ms"].append(median_ms(lambda: uniform_draw(tuple(x.shape),
                                                                      generator=g), 1))
    return {"nodes": adj.size, "nnz": adj.nnz,
            **{k: statistics.median(v) for k, v in rows.items()}}


STREAMS = ("separate", "shared", "fused")


def epochs(dataset: str, reps: int, steps: int | None) -> dict:
    trainers = {}
    for streams in STREAMS:
        cfg = RunConfig(method="simgcl", dataset=dataset, val_ratio=0.0, seed=2020)
        apply(cfg, {"streams": streams})
        run = build(cfg)
        trainer = Trainer(run.method, run.data, Path(tempfile.mkdtemp()), epochs=reps + 1,
                          generator=run.generator, progress=False, log=lambda msg: None)
        trainer.train_epoch(0, max_steps=steps)  # warm-up
        trainers[streams] = trainer
    times: dict[str, list[float]] = {streams: [] for streams in STREAMS}
    for rep in range(reps):
        for streams, trainer in trainers.items():
            t0 = time.perf_counter()
            trainer.train_epoch(rep + 1, max_steps=steps)
            times[streams].append(time.perf_counter() - t0)
    median = {streams: statistics.median(t) for streams, t in times.items()}
    unit = "window_s" if steps else "epoch_s"
    return {**{f"{streams}_{unit}": round(t, 3) for streams, t in median.items()},
            **({"steps": steps} if steps else {}),
            **{f"{streams}_over_separate": round(t / median["separate"], 3)
               for streams, t in median.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="lastfm-80-20,gowalla")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--kernel-reps", type=int, default=7)
    parser.add_argument("--epoch-reps", type=int, default=2)
    parser.add_argument("--steps", default="gowalla=20",
                        help="DATASET=N: time windows of N batches there (Gowalla epochs take "
                             "minutes)")
    parser.add_argument("--out", default=str(RESULTS / "simgcl-streams.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    steps = {k: int(v) for k, _, v in (item.partition("=") for item in args.steps.split(",") if item)}
    out = {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
           "torch": torch.__version__, "threads": torch.get_num_threads(), "datasets": {}}
    for dataset in args.datasets.split(","):
        entry = {"kernel": kernel(dataset, args.kernel_reps)}
        entry["epoch"] = epochs(dataset, args.epoch_reps, steps.get(dataset))
        out["datasets"][dataset] = entry
        print(dataset, json.dumps(entry), flush=True)
    write_result(Path(args.out), out)
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
