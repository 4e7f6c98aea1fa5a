"""Training steps with freed memory kept in the heap against ``malloc`` as the system sets it.

:func:`ssgraphrec.heap.retain_freed_memory` raises glibc's ``mmap`` and trim
thresholds, so that the tensors a step frees are reused by the next step instead of
being returned to the kernel and faulted in again. The setting is per process and
cannot be undone within one, so each measurement is a fresh process: for each
method, ``--pairs`` pairs of processes, one with ``SSGRAPHREC_HEAP=system`` and one
with the default (``retain``), their order alternating pair by pair (``--policies``
adds variants: ``retain@M`` keeps blocks up to ``M`` MiB in the heap, larger ones
mapped anew as the system does). Each process
builds the method on ``--dataset`` (all training rows, ``val_ratio=0``), runs a
warm-up window, then ``--windows`` windows of ``--steps`` training steps
(:meth:`Trainer.train_epoch`), and reports the median milliseconds per step, the
minor page faults per step over the timed windows (``ru_minflt``) and its peak
resident memory (``ru_maxrss``).

Usage::

    SSGRAPHREC_DATA=../shared/data python benchmarks/heap.py \\
        --methods lightgcn,sgl,simgcl,xsimgcl,ncl --dataset gowalla --threads 1

Results go to ``benchmarks/results/heap.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import resource
import statistics
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

from ...heap import HEAP_ENV
from . import RESULTS, cpu_model, shared_data, write_result


def child(method: str, dataset: str, steps: int, windows: int, threads: int,
          settings: dict, mmap_mib: int | None) -> dict:
    """One process's measurement (the heap policy comes from its environment); the
    windows are :func:`~ssgraphrec.bench.studies.layer_mean.time_paths`'s, with the
    minor page faults of each counted."""
    import torch

    from ... import heap
    from .layer_mean import time_paths

    if mmap_mib is not None:
        heap.MMAP_THRESHOLD_BYTES = mmap_mib << 20
    retained = heap.retain_freed_memory()
    torch.set_num_threads(threads)
    faults: list[int] = []

    @contextmanager
    def counting_faults():
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        yield
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)

    per_step = time_paths(method, dataset, steps, windows, settings,
                          {"steps": counting_faults})["steps"]
    return {"retained": retained, "ms_per_step": round(1000 * statistics.median(per_step), 1),
            "windows_ms": [round(1000 * s, 1) for s in per_step],
            "minor_faults_per_step": round(sum(faults) / (steps * windows)),
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}


def measure(policy: str, method: str, args: argparse.Namespace) -> dict:
    """:func:`child` in a fresh process under heap policy ``policy``."""
    name, _, mib = policy.partition("@")
    env = {**os.environ, HEAP_ENV: name}
    command = [sys.executable, "-m", "ssgraphrec.bench.studies.heap", "--child", method,
               "--dataset", args.dataset, "--steps", str(args.steps),
               "--windows", str(args.windows), "--threads", str(args.threads),
               "--settings", args.settings] + (["--mmap-mib", mib] if mib else [])
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"heap: {method} under {HEAP_ENV}={policy} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", default="lightgcn,sgl,simgcl,xsimgcl,ncl")
    parser.add_argument("--dataset", default="gowalla")
    parser.add_argument("--pairs", type=int, default=3, help="process pairs per method")
    parser.add_argument("--steps", type=int, default=6, help="training steps per window")
    parser.add_argument("--windows", type=int, default=3, help="timed windows per process")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--settings", default='{"batch_size": 2048, "num_layers": 3}',
                        help="JSON of method settings (default: batch 2048, 3 layers)")
    parser.add_argument("--policies", default="system,retain",
                        help="heap policies, the first the reference (retain@M: M MiB threshold)")
    parser.add_argument("--out", default=str(RESULTS / "heap.json"))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--mmap-mib", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.dataset, args.steps, args.windows, args.threads,
                               json.loads(args.settings), args.mmap_mib)))
        return
    policies = args.policies.split(",")
    shared_data("heap", {"gowalla": "gowalla", "lastfm-80-20": "lastfm"}.get(args.dataset,
                                                                            args.dataset))
    out = {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
           "cpu": cpu_model(), "threads": args.threads, "dataset": args.dataset,
           "settings": json.loads(args.settings), "steps_per_window": args.steps,
           "windows": args.windows, "policies": policies, "load_average_start": round(os.getloadavg()[0], 2),
           "rows": {}}
    for method in args.methods.split(","):
        runs: dict[str, list[dict]] = {p: [] for p in policies}
        for rep in range(args.pairs):          # each policy's place in the order rotates
            for policy in policies[rep % len(policies):] + policies[:rep % len(policies)]:
                runs[policy].append(measure(policy, method, args))
        reference = policies[0]
        row = {p: {"ms_per_step": statistics.median(r["ms_per_step"] for r in runs[p]),
                   "minor_faults_per_step": statistics.median(r["minor_faults_per_step"]
                                                             for r in runs[p]),
                   "peak_rss_mib": statistics.median(r["peak_rss_mib"] for r in runs[p]),
                   "processes": runs[p]} for p in policies}
        for p in policies[1:]:
            ratios = [r["ms_per_step"] / s["ms_per_step"]
                      for s, r in zip(runs[reference], runs[p], strict=True)]
            row[p]["over_" + reference] = round(statistics.median(ratios), 3)
            row[p]["rep_ratios"] = [round(x, 3) for x in ratios]
        out["rows"][method] = row
        print(f"{method}: " + "; ".join(
            f"{p} {row[p]['ms_per_step']} ms/step, {row[p]['minor_faults_per_step']} faults/step,"
            f" {row[p]['peak_rss_mib']} MiB" + (f", {row[p]['over_' + reference]}x"
                                                 if p != reference else "")
            for p in policies), flush=True)
    out["load_average_end"] = round(os.getloadavg()[0], 2)
    write_result(Path(args.out), out)
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
