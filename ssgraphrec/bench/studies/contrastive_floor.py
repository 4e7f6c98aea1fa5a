"""The least a contrastive step can cost here: LightGCN's step plus its contrastive loss at the batch's sizes.

SGL, SimGCL and XSimGCL train LightGCN's BPR objective on LightGCN's propagation and
add an InfoNCE (SGL Eq. 10-11, SimGCL Eq. 2) over the distinct users and, apart, the
distinct positive items of each batch, every row of one view against every row of
the other; NCL adds its structure loss (Eq. 8-9), each of the batch's distinct users
(items) against every user (item) of the graph, and its prototype loss. Computed
exactly, such a loss of ``n`` rows against ``m`` candidates is three dense products,
forward :math:`\\mathbf{Z}_1 \\mathbf{Z}_2^\\top` and backward
:math:`\\mathbf{G}\\mathbf{Z}_2`, :math:`\\mathbf{G}^\\top \\mathbf{Z}_1`, each
:math:`2 n m d` floating-point operations, plus a softmax over the ``[n, m]`` logits.
So no exact implementation of these methods takes less than LightGCN's step plus that
loss, and the ratio of the two is a floor under the epoch ratios of
``ssgraphrec bench speed``.

For each method this

1. trains ``--steps`` steps and records the sizes of every contrastive loss call
   (``info_nce``; NCL's ``proto_nce``);
2. times those calls (forward and backward) at each step's sizes, on random rows of
   the method's width;
3. times windows of training steps of LightGCN and of each method, one model each
   in this process, the models alternating window by window;
4. times a square dense product (``2048 x 2048``) for this core's dense rate, and
   the losses' three products per call at that rate.

Usage::

    SSGRAPHREC_DATA=../shared/data python benchmarks/contrastive_floor.py \\
        --methods xsimgcl,simgcl,sgl,ncl --dataset gowalla --threads 1

Results go to ``benchmarks/results/contrastive-floor.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from ...config import RunConfig, apply
from ...losses import info_nce, proto_nce
from ...train.run import build
from ...train.trainer import Trainer
from . import RESULTS, cpu_model, write_result

#: The side of the square product that measures the dense rate.
SQUARE = 2048


def trainer_of(method: str, dataset: str, settings: dict, windows: int) -> Trainer:
    cfg = RunConfig(method=method, dataset=dataset, val_ratio=0.0, seed=2020)
    apply(cfg, settings)
    run = build(cfg)
    return Trainer(run.method, run.data, Path(tempfile.mkdtemp()), epochs=windows + 2,
                   generator=run.generator, progress=False, log=lambda msg: None)


#: The contrastive losses a method module may call, recorded by :func:`recorded_calls`.
LOSSES = ("info_nce", "proto_nce")

#: ``(loss, rows, candidates, width, temperature)`` of one recorded call.
Call = tuple[str, int, int, int, float]


def recorded_calls(trainer: Trainer, steps: int) -> list[list[Call]]:
    """The contrastive loss calls (:data:`Call`) of each of ``steps`` steps (one epoch's
    first steps), read through the method module's own ``info_nce`` / ``proto_nce``."""
    module = sys.modules[type(trainer.method).__module__]
    calls: list[Call] = []
    originals = {name: getattr(module, name) for name in LOSSES if hasattr(module, name)}

    def recording(name):
        def call(query, candidates, *args, **kwargs):
            if name == "proto_nce":           # (query, prototypes, target, temperature)
                temperature = args[1] if len(args) > 1 else kwargs.get("temperature", 0.1)
            else:                               # (anchor, positive, temperature)
                temperature = args[0] if args else kwargs.get("temperature", 0.2)
            calls.append((name, query.size(0), candidates.size(0), query.size(1),
                          float(temperature)))
            return originals[name](query, candidates, *args, **kwargs)
        return call

    per_step = []
    for name in originals:
        setattr(module, name, recording(name))
    try:
        for _ in range(steps):
            calls.clear()
            trainer.train_epoch(0, max_steps=1)
            per_step.append(list(calls))
    finally:
        for name, original in originals.items():
            setattr(module, name, original)
    return per_step


def loss_seconds(calls: list[Call], reps: int) -> float:
    """Median seconds of one step's contrastive loss calls, forward and backward, on
    random rows (the candidates with a gradient, as NCL's layer-0 embeddings)."""
    gen = torch.Generator().manual_seed(0)
    inputs = []
    for name, n, m, d, tau in calls:
        query = torch.randn(n, d, generator=gen).requires_grad_()
        candidates = torch.randn(m, d, generator=gen).requires_grad_()
        target = torch.randint(0, m, (n,), generator=gen)
        inputs.append((name, query, candidates, target, tau))
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        for name, query, candidates, target, tau in inputs:
            if name == "info_nce":
                info_nce(query, candidates, tau).backward()
            else:
                proto_nce(query, candidates, target, tau, reduction="sum").backward()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def dense_gflops(reps: int) -> float:
    """This core's rate on a square dense product, in GFLOP/s (median of ``reps``)."""
    a, b = torch.randn(SQUARE, SQUARE), torch.randn(SQUARE, SQUARE)
    a @ b
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - start)
    return 2 * SQUARE ** 3 / statistics.median(times) / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", default="xsimgcl,simgcl,sgl,ncl")
    parser.add_argument("--dataset", default="gowalla")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=5, help="training steps per timed window")
    parser.add_argument("--windows", type=int, default=5, help="windows per model, alternated")
    parser.add_argument("--set", action="append", default=["batch_size=2048", "num_layers=3"],
                        help="KEY=VALUE for every method (default: batch 2048, 3 layers)")
    parser.add_argument("--out", default=str(RESULTS / "contrastive-floor.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    settings = {k: json.loads(v) if v[:1].isdigit() else v
                for k, _, v in (s.partition("=") for s in args.set)}
    methods = args.methods.split(",")
    trainers = {m: trainer_of(m, args.dataset, settings, args.windows)
                for m in ["lightgcn", *methods]}
    calls = {m: recorded_calls(trainers[m], args.steps) for m in methods}
    for trainer in trainers.values():                                   # warm-up
        trainer.train_epoch(0, max_steps=args.steps)
    steps: dict[str, list[float]] = {m: [] for m in trainers}
    for window in range(args.windows):
        for name, trainer in trainers.items():
            start = time.perf_counter()
            trainer.train_epoch(window + 1, max_steps=args.steps)
            steps[name].append((time.perf_counter() - start) / args.steps)
    gflops = dense_gflops(reps=5)
    lightgcn_ms = 1e3 * statistics.median(steps["lightgcn"])
    out = {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
           "torch": torch.__version__, "threads": torch.get_num_threads(), "cpu": cpu_model(),
           "dataset": args.dataset, "settings": settings, "steps": args.steps,
           "windows": args.windows, "dense_gflops": round(gflops, 1),
           "lightgcn_ms_per_step": round(lightgcn_ms, 2),
           "lightgcn_all_ms": [round(1e3 * t, 2) for t in steps["lightgcn"]], "methods": {}}
    for m in methods:
        loss_ms = 1e3 * statistics.median(loss_seconds(c, reps=5) for c in calls[m])
        flops = statistics.median(sum(3 * 2 * n * k * d for _, n, k, d, _ in c)
                                  for c in calls[m])
        step_ms = 1e3 * statistics.median(steps[m])
        row = {"ms_per_step": round(step_ms, 2), "x_lightgcn": round(step_ms / lightgcn_ms, 3),
               "loss_calls": [[list(call[:3]) for call in c] for c in calls[m]],
               "loss_ms": round(loss_ms, 2),
               "loss_products_ms_at_dense_rate": round(1e3 * flops / (gflops * 1e9), 2),
               "floor_x_lightgcn": round((lightgcn_ms + loss_ms) / lightgcn_ms, 3),
               "all_ms": [round(1e3 * t, 2) for t in steps[m]]}
        out["methods"][m] = row
        print(f"{m}: {row['ms_per_step']} ms/step ({row['x_lightgcn']}x LightGCN's "
              f"{out['lightgcn_ms_per_step']}); contrastive loss {row['loss_ms']} ms "
              f"({row['loss_products_ms_at_dense_rate']} ms of products at "
              f"{out['dense_gflops']} GFLOP/s): floor {row['floor_x_lightgcn']}x", flush=True)
    write_result(Path(args.out), out)
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
