"""Seconds per training step on one process and on N ranks (gloo, one thread each).

Runs ``ssgraphrec train`` as a user would, once on one process and once with
``--nproc N``, alternating, for each method, and reads the per-epoch training
seconds from each run's ``metrics.jsonl``. Writes
``benchmarks/results/distributed.json`` and prints a table (docs/distributed.md).

    SSGRAPHREC_DATA=../shared/data python benchmarks/distributed.py \
        --methods lightgcn,simgcl --dataset lastfm-80-20 --epochs 3 --nproc 2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path


def run(method: str, dataset: str, epochs: int, nproc: int, out: Path) -> dict:
    argv = [sys.executable, "-m", "ssgraphrec", "train", "--method", method, "--dataset", dataset,
            "--epochs", str(epochs), "--threads", "1", "--no-progress", "--out", str(out),
            "--val-ratio", "0", "--paper-defaults"]
    if nproc > 1:
        argv += ["--nproc", str(nproc)]
    subprocess.run(argv, check=True, capture_output=True, text=True)
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    results = json.loads((out / "results.json").read_text())
    seconds = [line["train_s"] for line in lines if "epoch" in line]
    batches = -(-int(results["data"]["train"]) // int(_batch(out)))
    return {"ranks": nproc, "epoch_s": seconds, "median_epoch_s": statistics.median(seconds),
            "steps_per_epoch": batches,
            "median_step_ms": 1000 * statistics.median(seconds) / batches,
            "test_recall@20": results["test"]["recall@20"]}


def _batch(run_dir: Path) -> int:
    import yaml

    return yaml.safe_load((run_dir / "config.yaml").read_text())["params"]["batch_size"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", default="lightgcn,simgcl")
    parser.add_argument("--dataset", default="lastfm-80-20")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--nproc", type=int, default=2)
    parser.add_argument("--out", default="benchmarks/results/distributed.json")
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for method in args.methods.split(","):
            for nproc in (1, args.nproc):
                row = run(method, args.dataset, args.epochs, nproc, Path(tmp) / f"{method}-{nproc}")
                rows.append({"method": method, **row})
                print(f"{method:10s} ranks {nproc}: {row['median_epoch_s']:.2f} s/epoch, "
                      f"{row['median_step_ms']:.1f} ms/step, test recall@20 "
                      f"{row['test_recall@20']:.4f}", flush=True)
    result = {"dataset": args.dataset, "epochs": args.epochs, "threads_per_rank": 1,
              "cpu_count": os.cpu_count(), "load_average": os.getloadavg(),
              "command": "python benchmarks/distributed.py " + " ".join(argv or sys.argv[1:]),
              "rows": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
