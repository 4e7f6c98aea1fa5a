"""NCL's full-softmax loss in blocks of candidates against blocks of queries, per loss and per step.

:class:`~ssgraphrec.losses.proto_nce.FullSoftmaxNCE` is the cross-entropy of each query
over all candidates (NCL's structure loss: every user, or every item), computed in
blocks so that the ``[B, K]`` logits never exist whole. It used to take blocks of a few
queries against every candidate (:class:`RowBlockedSoftmaxNCE`, kept here as the
reference path): its backward pass then read and wrote the whole ``[K, d]`` candidate
gradient once per block. It now takes blocks of candidates against every query.

1. ``loss``: the loss alone, forward and backward, of ``--queries`` random unit rows
   against each dataset's users and items (Gowalla: 29,858 and 40,981; lastfm-80-20:
   1,884 and 17,632; 64 columns), the two paths alternated rep by rep, the candidate
   blocks at several sizes (``--block-floats``); median milliseconds.
2. ``steps``: NCL training steps (batch 2,048, 3 layers; in its warm-up epochs, so
   that no window runs k-means: the structure loss runs, the prototype loss, over a few
   hundred centroids, does not), the two paths alternated window by window in one
   process (as ``benchmarks/layer_mean.py`` does); median milliseconds per step.

Usage::

    SSGRAPHREC_DATA=../shared/data python benchmarks/full_softmax.py --threads 1

Results go to ``benchmarks/results/full-softmax.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import os
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from . import RESULTS, cpu_model, write_result
from .layer_mean import time_paths

# the module, not the function of the same name that ssgraphrec.losses exports
proto_nce_module = importlib.import_module("ssgraphrec.losses.proto_nce")

#: Logits per block of :class:`RowBlockedSoftmaxNCE`, as that path had them (2**20: in
#: its own measurement, 1.0 s for 2,048 queries over Gowalla's items against 1.6 s at
#: 2**18 and 1.5 s at 2**24, one thread).
ROW_BLOCK_FLOATS = 2**20
#: Candidates of NCL's structure loss: each dataset's users and items.
CANDIDATES = {"gowalla": {"users": 29858, "items": 40981},
              "lastfm-80-20": {"users": 1884, "items": 17632}}


class RowBlockedSoftmaxNCE(torch.autograd.Function):
    """The path :class:`~ssgraphrec.losses.proto_nce.FullSoftmaxNCE` replaced: blocks of
    ``ROW_BLOCK_FLOATS // K`` queries against every candidate, the forward a
    ``logsumexp`` per block, the backward recomputing each block's logits and adding its
    product into the whole candidate gradient."""

    @staticmethod
    def forward(ctx, q: Tensor, c: Tensor, target: Tensor) -> Tensor:  # type: ignore[override]
        block = max(1, ROW_BLOCK_FLOATS // max(c.size(0), 1))
        lse = q.new_empty(q.size(0))
        for s in range(0, q.size(0), block):
            lse[s:s + block] = torch.logsumexp(q[s:s + block] @ c.t(), dim=1)
        ctx.save_for_backward(q, c, target, lse)
        ctx.block = block
        return lse - (q * c[target]).sum(1)

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        q, c, target, lse = ctx.saved_tensors
        need_q, need_c = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        grad_q = torch.zeros_like(q) if need_q else None
        grad_c = torch.zeros_like(c) if need_c else None
        for s in range(0, q.size(0), ctx.block):
            rows = slice(s, s + ctx.block)
            weight = (q[rows] @ c.t()).sub_(lse[rows, None]).exp_().mul_(grad[rows, None])
            if need_q:
                grad_q[rows] = weight @ c
            if need_c:
                grad_c.addmm_(weight.t(), q[rows])
        proto_nce_module.subtract_positive_term(grad, q, c, target, grad_q, grad_c)
        return grad_q, grad_c, None


@contextmanager
def row_blocks() -> Iterator[None]:
    """Run every full-softmax loss (NCL's, through ``proto_nce``) on the query-block path."""
    saved = proto_nce_module.FullSoftmaxNCE
    proto_nce_module.FullSoftmaxNCE = RowBlockedSoftmaxNCE
    try:
        yield
    finally:
        proto_nce_module.FullSoftmaxNCE = saved


@contextmanager
def candidate_blocks(block_floats: int | None = None) -> Iterator[None]:
    """The package's path, with ``block_floats`` logits per block over all threads
    (default: its own, ``BLOCK_FLOATS_PER_THREAD`` per thread)."""
    saved = proto_nce_module.BLOCK_FLOATS_PER_THREAD
    if block_floats is not None:
        proto_nce_module.BLOCK_FLOATS_PER_THREAD = max(1, block_floats // torch.get_num_threads())
    try:
        yield
    finally:
        proto_nce_module.BLOCK_FLOATS_PER_THREAD = saved


def time_loss(queries: int, candidates: int, reps: int, block_floats: list[int]) -> dict:
    """Milliseconds of one forward and backward of the loss on each path."""
    g = torch.Generator().manual_seed(0)
    q0 = F.normalize(torch.randn(queries, 64, generator=g), dim=-1) / 0.1
    c0 = F.normalize(torch.randn(candidates, 64, generator=g), dim=-1)
    target = torch.randint(0, candidates, (queries,), generator=g)
    weight = torch.rand(queries, generator=g)
    paths = {"row_blocks": lambda: row_blocks(),
             **{f"candidate_blocks_{b}": (lambda b=b: candidate_blocks(b)) for b in block_floats}}

    def once() -> tuple[Tensor, Tensor]:
        q, c = q0.clone().requires_grad_(), c0.clone().requires_grad_()
        (proto_nce_module.FullSoftmaxNCE.apply(q, c, target) * weight).sum().backward()
        return q.grad, c.grad

    times: dict[str, list[float]] = {name: [] for name in paths}
    grads = {}
    for rep in range(reps + 1):
        for name, path in paths.items():
            with path():
                t0 = time.perf_counter()
                grads[name] = once()
                if rep:                                 # the first round warms up
                    times[name].append(time.perf_counter() - t0)
    reference = grads["row_blocks"]
    return {"queries": queries, "candidates": candidates,
            "ms_median": {name: round(1e3 * statistics.median(t), 1) for name, t in times.items()},
            "max_relative_grad_difference": {
                name: max(float((a - b).abs().max() / b.abs().max())
                          for a, b in zip(grads[name], reference, strict=True))
                for name in paths if name != "row_blocks"}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["loss", "steps"], default=None)
    parser.add_argument("--datasets", default="lastfm-80-20,gowalla")
    parser.add_argument("--queries", type=int, default=1300,
                        help="query rows of the loss timings (a batch of 2,048 names about "
                             "1,300 distinct users and as many items)")
    parser.add_argument("--block-floats", default="131072,262144,524288,1048576",
                        help="logits per candidate block (all threads together) of the loss "
                             "timings, comma separated")
    parser.add_argument("--reps", type=int, default=7, help="loss timings per path")
    parser.add_argument("--steps", type=int, default=3, help="training steps per timed window")
    parser.add_argument("--windows", type=int, default=6, help="windows per path, alternated")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=str(RESULTS / "full-softmax.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    datasets = args.datasets.split(",")
    unknown = set(datasets) - set(CANDIDATES)
    if unknown:
        parser.error(f"--datasets: one or more of {', '.join(CANDIDATES)}, got {sorted(unknown)}")
    out = {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
           "torch": torch.__version__, "threads": torch.get_num_threads(), "cpu": cpu_model(),
           "block_floats_per_thread": proto_nce_module.BLOCK_FLOATS_PER_THREAD,
           "row_block_floats": ROW_BLOCK_FLOATS,
           "load_average_start": round(os.getloadavg()[0], 2)}
    if args.only in (None, "loss"):
        sizes = [int(b) for b in args.block_floats.split(",")]
        out["loss"] = {}
        for dataset in datasets:
            for side, candidates in CANDIDATES[dataset].items():
                row = time_loss(args.queries, candidates, args.reps, sizes)
                out["loss"][f"{dataset}/{side}"] = row
                print(f"{dataset} {side}: {row['ms_median']}", flush=True)
    if args.only in (None, "steps"):
        settings = {"batch_size": 2048, "num_layers": 3}
        out["steps"] = {"steps_per_window": args.steps, "windows": args.windows,
                        "settings": settings, "rows": {}}
        for dataset in datasets:
            times = time_paths("ncl", dataset, args.steps, args.windows, settings,
                               {"row_blocks": row_blocks, "candidate_blocks": candidate_blocks})
            ms = {name: round(1e3 * statistics.median(t), 1) for name, t in times.items()}
            out["steps"]["rows"][dataset] = {
                "ms_per_step": ms, "ratio": round(ms["candidate_blocks"] / ms["row_blocks"], 3),
                "all_ms_per_step": {name: [round(1e3 * x, 1) for x in t]
                                    for name, t in times.items()}}
            print(f"{dataset} ncl: {ms} ms/step", flush=True)
    out["load_average_end"] = round(os.getloadavg()[0], 2)
    write_result(Path(args.out), out)
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
