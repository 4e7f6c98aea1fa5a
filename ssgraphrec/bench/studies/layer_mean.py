"""LightGCN's layer mean in one autograd node against the layer-by-layer path, per training step.

:func:`ssgraphrec.sparse.propagate_mean` computes the mean over a LightGCN
encoder's layers without saving any layer, and backpropagates by Horner's rule,
one ``addmm`` per layer. The path it replaced propagated layer by layer with one
autograd node per product and let autograd sum the layers. For each method this
builds one model and times windows of ``--steps`` training steps
(``Trainer.train_epoch``), alternating the two paths window by window in the
same process, so that a busy machine slows both alike; it reports the median
milliseconds per step of each. The layer-by-layer path replaces
:func:`~ssgraphrec.sparse.propagate_mean` inside
:meth:`~ssgraphrec.nn.LightGCNEncoder.encode`, through which every method
propagates: LightGCN and SGL (the mean), SimGCL (its clean encoder), XSimGCL (the
noised mean and layer l*) and NCL (the mean and the neighbour layer).

Usage::

    SSGRAPHREC_DATA=../shared/data python benchmarks/layer_mean.py \\
        --methods lightgcn,sgl,simgcl,xsimgcl,ncl --dataset lastfm-80-20 --threads 1

Results go to ``benchmarks/results/layer-mean.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import torch

from ...config import RunConfig, apply
from ...nn import lightgcn as lightgcn_module
from ...sparse import propagate
from ...train.run import Run, build
from ...train.trainer import Trainer
from . import RESULTS, write_result


def layer_by_layer_propagate_mean(adj, x, num_layers, skip_ego=False, keep_layers=False, *,
                                   taps=(), perturb=None, mean_layers=None, rows=None,
                                   compact=False):
    """``propagate_mean`` computed layer by layer, as the methods did before it (every
    row: ``rows`` is ignored, but for ``compact``'s gather of the mean)."""
    layers = [x]
    for _ in range(num_layers):
        h = propagate(adj, layers[-1])
        layers.append(perturb(h) if perturb is not None else h)
    last = num_layers if mean_layers is None else mean_layers
    used = layers[(1 if skip_ego else 0): last + 1]
    total = used[0]
    for h in used[1:]:
        total = total + h
    total = total / len(used)
    if compact:
        total = total.index_select(0, rows)
    if keep_layers:
        return (total, *(h.detach() for h in layers[1:]))
    return (total, *(layers[t] for t in taps)) if taps else total


@contextmanager
def layer_by_layer():
    """Run every LightGCN encoder (and so every method's propagation) layer by layer."""
    saved = lightgcn_module.propagate_mean
    lightgcn_module.propagate_mean = layer_by_layer_propagate_mean
    try:
        yield
    finally:
        lightgcn_module.propagate_mean = saved


def time_paths(method: str, dataset: str, steps: int, reps: int, settings: dict,
               paths: dict[str, Callable[[], AbstractContextManager]],
               after: Callable[[Run], None] | None = None) -> dict[str, list[float]]:
    """Seconds per training step of ``method``, in ``reps`` windows of ``steps`` steps
    per path, the paths alternating window by window in one process: ``paths`` maps a
    name to a context manager factory under which its windows run. ``after`` is called
    with the run once the windows are done (to read what they left on the method)."""
    cfg = RunConfig(method=method, dataset=dataset, val_ratio=0.0, seed=2020)
    apply(cfg, settings)
    run = build(cfg)
    trainer = Trainer(run.method, run.data, Path(tempfile.mkdtemp()), epochs=reps + 2,
                      generator=run.generator, progress=False, log=lambda msg: None)
    trainer.train_epoch(0, max_steps=steps)      # warm-up
    times: dict[str, list[float]] = {name: [] for name in paths}
    for rep in range(reps):
        for name, path in paths.items():
            with path():
                t0 = time.perf_counter()
                trainer.train_epoch(rep + 1, max_steps=steps)
                times[name].append((time.perf_counter() - t0) / steps)
    if after is not None:
        after(run)
    return times


def path_summary(times: dict[str, list[float]]) -> dict:
    """Of :func:`time_paths`'s seconds: each path's median milliseconds per step, its
    ratio to the first path's, and every window's milliseconds."""
    ms = {name: round(1e3 * statistics.median(t), 2) for name, t in times.items()}
    first, *others = ms
    return {**{f"{name}_ms_per_step": v for name, v in ms.items()},
            "ratios_to_" + first: {p: round(ms[p] / ms[first], 3) for p in others},
            "all_ms_per_step": {name: [round(1e3 * x, 2) for x in t] for name, t in times.items()}}


def time_method(method: str, dataset: str, steps: int, reps: int, settings: dict) -> dict:
    times = time_paths(method, dataset, steps, reps, settings,
                       {"layer_by_layer": layer_by_layer, "propagate_mean": _nothing})
    ms = {name: round(1e3 * statistics.median(t), 2) for name, t in times.items()}
    return {**{f"{name}_ms_per_step": v for name, v in ms.items()},
            "ratio": round(ms["propagate_mean"] / ms["layer_by_layer"], 3),
            "all_ms_per_step": {name: [round(1e3 * x, 2) for x in t] for name, t in times.items()}}


@contextmanager
def _nothing():
    yield


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", default="lightgcn,sgl,simgcl,xsimgcl,ncl")
    parser.add_argument("--dataset", default="lastfm-80-20")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=10, help="training steps per timed window")
    parser.add_argument("--reps", type=int, default=12, help="windows per path, alternated")
    parser.add_argument("--set", action="append", default=["batch_size=2048", "num_layers=3"],
                        help="KEY=VALUE for every method (default: batch 2048, 3 layers)")
    parser.add_argument("--out", default=str(RESULTS / "layer-mean.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    settings = {k: json.loads(v) if v[:1].isdigit() else v
                for k, _, v in (s.partition("=") for s in args.set)}
    out = {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
           "torch": torch.__version__, "threads": torch.get_num_threads(),
           "dataset": args.dataset, "settings": settings, "steps": args.steps, "reps": args.reps,
           "methods": {}}
    for method in args.methods.split(","):
        out["methods"][method] = time_method(method, args.dataset, args.steps, args.reps, settings)
        row = out["methods"][method]
        print(f"{method}: {row['layer_by_layer_ms_per_step']} -> {row['propagate_mean_ms_per_step']} "
              f"ms/step ({row['ratio']}x)", flush=True)
    write_result(Path(args.out), out)
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
