"""Remedies for the early collapse of contrastive methods on small data, measured.

On lastfm an epoch is 30-40 optimizer steps (the papers' datasets: 600-1,300), and
at the papers' settings the contrastive term of SimGCL / SGL drives validation
NDCG down from the first epochs (docs/tuning.md). Each *variant* below is a set
of run or method settings (``--variant NAME:key=value,key=value``); every variant
of a method is trained on every dataset with the same seed and split, validation
on, and the script records the per-epoch validation NDCG@20 / Recall@20, the best
epoch and the test metrics of the best-validation epoch (read once, at the end).

Usage::

    SSGRAPHREC_DATA=../shared/data python benchmarks/remedies.py --methods simgcl \\
        --datasets lastfm-80-20,ml-100k --epochs 40 \\
        --variant paper: --variant warmup:ssl_warmup=300 --out /tmp/remedies.json

Results go to ``benchmarks/results/remedies.json`` (``--out``); cells already in the
file are kept and skipped, so an interrupted run continues where it stopped.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch
import yaml

from ssgraphrec.config import RunConfig, apply, parse_value
from ssgraphrec.train.run import train

from . import RESULTS


def parse_variant(text: str) -> tuple[str, dict]:
    """``"warmup:ssl_warmup=300,eps=0.2"`` -> ``("warmup", {"ssl_warmup": 300, "eps": 0.2})``."""
    name, _, body = text.partition(":")
    settings = {}
    for pair in filter(None, body.split(",")):
        key, _, value = pair.partition("=")
        settings[key.strip()] = parse_value(value.strip())
    return name.strip(), settings


def run_cell(method: str, dataset: str, settings: dict, args: argparse.Namespace,
             workdir: Path) -> dict:
    cfg = apply(RunConfig(method=method, dataset=dataset, epochs=args.epochs, seed=args.seed,
                          threads=args.threads, patience=args.patience), dict(settings))
    t0 = time.perf_counter()
    run_dir, results = train(cfg, str(workdir), progress=False, log=lambda _m: None)
    curve = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    batch = yaml.safe_load((run_dir / "config.yaml").read_text())["params"]["batch_size"]
    return {
        "method": method, "dataset": dataset, "settings": settings, "seed": args.seed,
        "best_epoch": results["best_epoch"], "epochs_trained": results["epochs_trained"],
        "val": results["val"], "test": results["test"],
        "val_ndcg20": [round(r["val"]["ndcg@20"], 5) for r in curve if "val" in r],
        "val_recall20": [round(r["val"]["recall@20"], 5) for r in curve if "val" in r],
        "steps_per_epoch": -(-results["data"]["train"] // batch),
        "wall_s": round(time.perf_counter() - t0, 1),
    }


def early_stop(curve: list[float], patience: int, min_steps: int, steps_per_epoch: int
               ) -> tuple[int, float]:
    """(epoch it stops at, best validation value until then) of early stopping with
    ``patience`` epochs that may not stop before ``min_steps`` optimizer steps."""
    best, bad = float("-inf"), 0
    for epoch, value in enumerate(curve, 1):
        if value > best:
            best, bad = value, 0
        else:
            bad += 1
        if bad >= patience and epoch * steps_per_epoch >= min_steps:
            return epoch, best
    return len(curve), best


def summary(doc: dict, patience: int, min_steps: int) -> str:
    """A Markdown table of the cells: full-budget best and early-stopped selections."""
    head = ("| data | method | variant | best epoch | val NDCG@20 (40 epochs) | stopped, patience "
            f"{patience} | stopped, patience {patience} + {min_steps} steps | test Recall@20 | "
            "test NDCG@20 |")
    lines = [head, "|" + "---|" * 9]
    for c in doc["cells"]:
        spe = c.get("steps_per_epoch", 1)
        e0, v0 = early_stop(c["val_ndcg20"], patience, 0, spe)
        e1, v1 = early_stop(c["val_ndcg20"], patience, min_steps, spe)
        lines.append(f"| {Path(c['dataset']).name} | {c['method']} | {c['variant']} | "
                     f"{c['best_epoch']} | {c['val']['ndcg@20']:.4f} | {v0:.4f} (epoch {e0}) | "
                     f"{v1:.4f} (epoch {e1}) | {c['test']['recall@20']:.4f} | "
                     f"{c['test']['ndcg@20']:.4f} |")
    return "\n".join(lines)


def pivot(doc: dict, baseline: str = "lightgcn", reference: str = "paper") -> str:
    """Test Recall@20 per (dataset, method) and variant, and its ratio to the baseline
    method's ``reference`` variant on the same dataset."""
    variants = list(dict.fromkeys(c["variant"] for c in doc["cells"]))
    datasets = list(dict.fromkeys(c["dataset"] for c in doc["cells"]))
    lines = ["| data | method | " + " | ".join(variants) + " |", "|" + "---|" * (len(variants) + 2)]
    for dataset in datasets:
        cells = {(c["method"], c["variant"]): c for c in doc["cells"] if c["dataset"] == dataset}
        base = cells.get((baseline, reference))
        for method in dict.fromkeys(m for m, _ in cells):
            row = []
            for v in variants:
                c = cells.get((method, v))
                if c is None:
                    row.append("–")
                    continue
                r = c["test"]["recall@20"]
                ratio = f" ({r / base['test']['recall@20']:.2f}×)" if base and method != baseline \
                    else ""
                row.append(f"{r:.4f}{ratio}")
            lines.append(f"| {Path(dataset).name} | {method} | " + " | ".join(row) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", default="simgcl")
    parser.add_argument("--datasets", default="lastfm-80-20")
    parser.add_argument("--variant", action="append", default=[],
                        help="NAME:key=value,... (repeatable); 'paper:' is the defaults")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--patience", type=int, default=10)
    parser.add_argument("--seed", type=int, default=2020)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=str(RESULTS / "remedies.json"))
    parser.add_argument("--summary", action="store_true",
                        help="print the Markdown table of the cells in --out and exit")
    parser.add_argument("--min-steps", type=int, default=1000,
                        help="the minimum budget the summary applies to early stopping")
    args = parser.parse_args()
    out = Path(args.out)
    doc = json.loads(out.read_text()) if out.is_file() else {"cells": []}
    if args.summary:
        print(pivot(doc) + "\n\n" + summary(doc, 10, args.min_steps))
        return
    done = {(c["method"], c["dataset"], c["variant"], c["seed"]) for c in doc["cells"]}
    variants = [parse_variant(v) for v in (args.variant or ["paper:"])]
    workdir_root = Path(os.environ.get("TMPDIR", "/tmp")) / "ssgraphrec-remedies"
    for dataset in args.datasets.split(","):
        for method in args.methods.split(","):
            for name, settings in variants:
                key = (method, dataset, name, args.seed)
                if key in done:
                    continue
                workdir = workdir_root / f"{method}-{dataset}-{name}-{args.seed}-{time.time_ns()}"
                cell = {"variant": name, **run_cell(method, dataset, settings, args, workdir)}
                doc["cells"].append(cell)
                doc.update(torch=torch.__version__, python=platform.python_version(),
                           threads=args.threads, written=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
                out.parent.mkdir(parents=True, exist_ok=True)
                tmp = out.with_suffix(".tmp")
                tmp.write_text(json.dumps(doc, indent=1))
                tmp.replace(out)
                print(f"{dataset:14s} {method:8s} {name:14s} best epoch {cell['best_epoch']:3d} "
                      f"val ndcg@20 {cell['val']['ndcg@20']:.4f} test recall@20 "
                      f"{cell['test']['recall@20']:.4f} ndcg@20 {cell['test']['ndcg@20']:.4f} "
                      f"({cell['wall_s']:.0f}s)", flush=True)


if __name__ == "__main__":
    main()
