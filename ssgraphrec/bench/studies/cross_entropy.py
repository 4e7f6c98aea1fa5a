"""The mean cross-entropy with its one-pass gradient against ``F.cross_entropy``, per loss and per step.

:func:`~ssgraphrec.losses.cross_entropy.mean_cross_entropy` writes the gradient of the
mean cross-entropy, :math:`(g/n)(\\exp \\mathbf{O} - \\text{one-hot})`, in one pass over
the ``[n, m]`` logits, where ``F.cross_entropy``'s backward pass zero-fills an
``[n, m]`` matrix for ``nll_loss``'s gradient and reads it twice in the log-softmax's.
The InfoNCE (:func:`~ssgraphrec.losses.info_nce`), the full softmax of S²-DHCN and
SASRec, the sampled and queue softmax and GPT-GNN's edge generation take it
(:data:`USERS`).

1. ``loss``: the cross-entropy alone, forward and backward (``MeanCrossEntropy``
   itself, whatever the size: where the package's path starts to pay,
   ``ONE_PASS_MIN_LOGITS``), on ``[n, m]`` logits of
   unit rows over a temperature of 0.2 (``--sizes``: the InfoNCE of a lastfm-80-20
   batch of 2,048, about 1,300 distinct users or items, of a Gowalla batch, about
   1,880; a full softmax over Diginetica's 43,097 items for a batch of 100), the two
   paths alternated rep by rep; median milliseconds, and the largest difference of the
   gradients relative to the largest entry of ``F.cross_entropy``'s.
2. ``steps``: training steps of each ``--runs`` ``DATASET/METHOD`` (the graph
   methods at batch 2,048 and 3 layers, the others at their defaults), every mean
   cross-entropy of the package through ``F.cross_entropy`` (``cross_entropy``) or
   its one-pass path (``one_pass``), alternated window by window in one process;
   median milliseconds per step.

Usage::

    SSGRAPHREC_DATA=../shared/data python benchmarks/cross_entropy.py --threads 1

Results go to ``benchmarks/results/cross-entropy.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import os
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

import torch
import torch.nn.functional as F

from ...losses.cross_entropy import MeanCrossEntropy
from . import RESULTS, cpu_model, shared_data, write_result
from .layer_mean import path_summary, time_paths

#: The modules of the package that call
#: :func:`~ssgraphrec.losses.cross_entropy.mean_cross_entropy` (checked by a test).
USERS = ("ssgraphrec.losses.contrastive", "ssgraphrec.losses.edge_generation",
         "ssgraphrec.losses.queue_softmax", "ssgraphrec.losses.sampled_softmax",
         "ssgraphrec.methods.dhcn", "ssgraphrec.methods.sasrec")
#: The data folder of each dataset the steps may run on.
FOLDERS = {"lastfm-80-20": "lastfm", "gowalla": "gowalla", "diginetica": "diginetica",
           "amazon-beauty": "amazon-beauty"}
#: Settings of the graph methods' steps (the others keep their defaults).
GRAPH_SETTINGS = {"batch_size": 2048, "num_layers": 3}
GRAPH_METHODS = ("lightgcn", "sgl", "simgcl", "xsimgcl", "ncl")


@contextmanager
def through_cross_entropy() -> Iterator[None]:
    """Run every mean cross-entropy of the package through ``F.cross_entropy``, as before."""
    modules = [importlib.import_module(name) for name in USERS]
    saved = [m.mean_cross_entropy for m in modules]
    for m in modules:
        m.mean_cross_entropy = F.cross_entropy
    try:
        yield
    finally:
        for m, own in zip(modules, saved, strict=True):
            m.mean_cross_entropy = own


def parse_sizes(text: str, parser: argparse.ArgumentParser) -> list[tuple[int, int]]:
    """``"NxM,..."`` as ``[(n, m), ...]``; ``parser``'s error otherwise."""
    try:
        return [(int(n), int(m)) for n, _, m in (s.partition("x") for s in text.split(","))]
    except ValueError:
        parser.error(f"--sizes: ROWSxCOLUMNS,..., got {text!r}")


def time_loss(n: int, m: int, reps: int) -> dict:
    """Milliseconds of one forward and backward of the cross-entropy on each path."""
    g = torch.Generator().manual_seed(0)
    rows = F.normalize(torch.randn(n, 64, generator=g), dim=1)
    columns = F.normalize(torch.randn(m, 64, generator=g), dim=1)
    logits0 = rows @ columns.t() / 0.2
    target = torch.randint(0, m, (n,), generator=g)
    paths = {"cross_entropy": F.cross_entropy, "one_pass": MeanCrossEntropy.apply}
    times: dict[str, list[float]] = {name: [] for name in paths}
    grads = {}
    for rep in range(reps + 1):
        for name, loss in paths.items():
            logits = logits0.clone().requires_grad_()
            t0 = time.perf_counter()
            loss(logits, target).backward()
            if rep:                                     # the first round warms up
                times[name].append(time.perf_counter() - t0)
            grads[name] = logits.grad
    reference = grads["cross_entropy"]
    return {"rows": n, "columns": m,
            "ms_median": {name: round(1e3 * statistics.median(t), 2) for name, t in times.items()},
            "max_relative_grad_difference": float((grads["one_pass"] - reference).abs().max()
                                                  / reference.abs().max())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["loss", "steps"], default=None)
    parser.add_argument("--sizes", default="1300x1300,1880x1880,100x43097",
                        help="ROWSxCOLUMNS of the loss timings, comma separated")
    parser.add_argument("--reps", type=int, default=21, help="loss timings per path")
    parser.add_argument("--runs", default="lastfm-80-20/sgl,lastfm-80-20/simgcl,"
                        "lastfm-80-20/xsimgcl", help="DATASET/METHOD pairs of the step timings")
    parser.add_argument("--steps", type=int, default=10, help="training steps per timed window")
    parser.add_argument("--windows", type=int, default=6, help="windows per path, alternated")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=str(RESULTS / "cross-entropy.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    sizes = parse_sizes(args.sizes, parser)
    runs = [tuple(run.split("/", 1)) for run in args.runs.split(",")]
    if any(len(run) != 2 or run[0] not in FOLDERS for run in runs):
        parser.error(f"--runs: DATASET/METHOD,... with DATASET one of {', '.join(FOLDERS)}, "
                     f"got {args.runs!r}")
    out = {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
           "torch": torch.__version__, "threads": torch.get_num_threads(), "cpu": cpu_model(),
           "load_average_start": round(os.getloadavg()[0], 2)}
    if args.only in (None, "loss"):
        out["loss"] = [time_loss(n, m, args.reps) for n, m in sizes]
        for row in out["loss"]:
            print(f"{row['rows']}x{row['columns']}: {row['ms_median']} ms", flush=True)
    if args.only in (None, "steps"):
        root = shared_data("cross_entropy", *sorted({FOLDERS[d] for d, _ in runs}))
        os.environ.setdefault("SSGRAPHREC_DATA", str(root))
        out["steps"] = {"steps_per_window": args.steps, "windows": args.windows,
                        "graph_settings": GRAPH_SETTINGS, "rows": {}}
        for dataset, method in runs:
            settings = GRAPH_SETTINGS if method in GRAPH_METHODS else {}
            times = time_paths(method, dataset, args.steps, args.windows, settings,
                               {"cross_entropy": through_cross_entropy, "one_pass": nullcontext})
            out["steps"]["rows"][f"{dataset}/{method}"] = row = path_summary(times)
            print(f"{dataset} {method}: {row['cross_entropy_ms_per_step']} -> "
                  f"{row['one_pass_ms_per_step']} ms per step", flush=True)
    out["load_average_end"] = round(os.getloadavg()[0], 2)
    write_result(Path(args.out), out)
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
