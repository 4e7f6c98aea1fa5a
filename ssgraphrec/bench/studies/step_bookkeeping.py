"""A training step's work besides its products: the rows' gradient, split, Adam, gathers, copies.

Five changes to what a LightGCN-style step does besides its sparse products, each
exact:

1. ``whole_mean_gradient``: with ``rows`` (the last product at a batch's rows,
   :func:`~ssgraphrec.sparse.propagate_mean`), the backward pass of the layer mean
   used to spread the mean's gradient, known at those rows only, into a whole ``[N, d]``
   matrix of zeros elsewhere, and added it to every layer's product through
   ``addmm``, which first copies it into the output. It is now added at those rows
   only, after each product (:meth:`~ssgraphrec.sparse.blocks.ColumnBlocks.add_at_rows`),
   with every entry the same sum (``tests/test_sparse.py``, to the bit).
2. ``sliced_split``: the users and items of the final embeddings were two slices,
   whose backward passes each wrote a whole ``[N, d]`` matrix of zeros, then added.
   They are one ``split`` now, whose backward pass joins the two gradients.
3. ``unfused_adam``: the trainer's Adam ran one pass per operation of its update;
   it now runs PyTorch's fused kernel (:func:`ssgraphrec.train.trainer.adam`).
4. ``whole_tables``: LightGCN, SGL, SimGCL and XSimGCL gathered a batch's rows from the
   whole user and item tables of each encoder's output, so that the gradient of every gather was a
   whole table of zeros, summed, then joined into ``[N, d]``. They now gather from the
   mean at the batch's rows only (:meth:`~ssgraphrec.nn.LightGCNEncoder.mean_at`,
   ``[|R|, d]``), whose gradient stays that size until the layer mean reads it.
5. ``addmm_copies``: each product of the layer mean's backward pass took the gradient
   added at its layer through ``addmm``, which first copies it into the new result. At
   the lowest averaged layer the sum now goes into the mean's gradient itself, which no
   layer reads after it. (The forward pass's first sum of two layers, once a copy of
   layer 0 and an add in place, is one add now; that change is not a path here.)

For each method this builds one model and times windows of ``--steps`` training
steps, the paths alternating window by window in one process: ``before`` (all
five as they were), ``now``, and each of the five alone as it was (``--paths``).
Apart (``--only adam``), it times Adam's step alone on tables of Gowalla's LightGCN
shapes (``--adam-shapes``), fused and unfused alternated, and reports how far the two
updates' parameters lie apart after the same steps.

Usage::

    SSGRAPHREC_DATA=../shared/data python benchmarks/step_bookkeeping.py \\
        --methods lightgcn,sgl,simgcl,xsimgcl,ncl --dataset gowalla --threads 1

Results go to ``benchmarks/results/step-bookkeeping.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from pathlib import Path

import torch
from torch import Tensor

from ...losses import info_nce
from ...methods.lightgcn import LightGCN
from ...methods.sgl import SGL
from ...methods.simgcl import SimGCL
from ...methods.xsimgcl import XSimGCL
from ...nn.lightgcn import LightGCNEncoder
from ...nn.noise_offsets import noise_offsets
from ...sparse import kernels, restricts_rows
from ...sparse.restrict import zeros_with_rows
from ...train.trainer import adam
from . import RESULTS, write_result
from .layer_mean import path_summary, time_paths


def whole_mean_gradient_backward(ctx, grad: Tensor, *grads: Tensor | None):
    """``_LayerMean``'s backward pass as it was: with ``rows``, the mean's gradient as a
    whole matrix, zero outside them, added to each product by ``addmm``."""
    layout = ctx.layout
    rows, num_layers = ctx.rows, len(ctx.adjs)
    if rows is not None and grad is not None:           # a compact mean's is at rows
        at_rows = grad if ctx.compact else grad.index_select(0, rows)
        grad = zeros_with_rows(at_rows, rows, ctx.num_nodes)
    mean_grad = layout.enter_divided(grad, ctx.count) if grad is not None else None
    tap_grads = dict.fromkeys(ctx.taps)
    for t, g in zip(ctx.taps, grads, strict=False):
        if g is not None:
            if rows is not None and t == num_layers:
                g = g.index_select(0, rows)
            g = layout.enter(g.contiguous())
            tap_grads[t] = g if tap_grads[t] is None else tap_grads[t] + g

    def added_at(k: int) -> Tensor | None:
        mean_term = mean_grad if ctx.first <= k <= ctx.last else None
        if mean_term is not None and rows is not None and k == num_layers:
            mean_term = layout.select(mean_term, rows)
        terms = [t for t in (mean_term, tap_grads.get(k)) if t is not None]
        return terms[0] if len(terms) == 1 else (terms[0] + terms[1] if terms else None)

    v = added_at(num_layers)
    for k in range(num_layers, 0, -1):
        v_add = added_at(k - 1)
        v = v_add if v is None else layout.product(ctx.adjs[k - 1], v, v_add, transpose=True)
    return (layout.exit(v) if v is not None else None), *(None,) * 8


@contextmanager
def whole_mean_gradient() -> Iterator[None]:
    saved = kernels._LayerMean.backward
    kernels._LayerMean.backward = staticmethod(whole_mean_gradient_backward)
    try:
        yield
    finally:
        kernels._LayerMean.backward = saved


@contextmanager
def sliced_split() -> Iterator[None]:
    saved = LightGCNEncoder.split
    LightGCNEncoder.split = lambda self, x: (x[: self.num_users], x[self.num_users:])
    try:
        yield
    finally:
        LightGCNEncoder.split = saved


@contextmanager
def unfused_adam() -> Iterator[None]:
    """Every Adam step on PyTorch's default (unfused) kernel: the state is the same."""
    step = torch.optim.Adam.step

    def unfused(self, *args, **kwargs):
        fused = [group["fused"] for group in self.param_groups]
        for group in self.param_groups:
            group["fused"] = None
        try:
            return step(self, *args, **kwargs)
        finally:
            for group, was in zip(self.param_groups, fused, strict=True):
                group["fused"] = was

    torch.optim.Adam.step = unfused
    try:
        yield
    finally:
        torch.optim.Adam.step = step


def whole_table_rec_loss(self: LightGCN, batch) -> dict[str, Tensor]:
    """``LightGCN.batch_rec_loss`` as it was: gathers from the whole user and item tables."""
    return self.rec_loss(batch, *self.encoder(self.adj, rows=self.encoder.batch_rows(*batch)))


def whole_table_sgl_loss(self: SGL, batch) -> dict[str, Tensor]:
    """``SGL.loss`` as it was (its ``ssl_mode="separate"``): the views' rows gathered from
    their whole tables too."""
    if self.cfg.ssl_mode != "separate":
        raise ValueError("whole_tables: SGL's ssl_mode='separate' only")
    if not self.view_adjs:
        self.on_epoch_start(0)
    terms = whole_table_rec_loss(self, batch)
    u, i = torch.unique(batch.users), torch.unique(batch.pos_items)
    contrasted = self.encoder.batch_rows(u, i)
    (u1, i1), (u2, i2) = (self.encoder(a, rows=contrasted) for a in self.view_adjs)
    tau = self.cfg.temperature
    terms["ssl"] = self.cfg.ssl_weight * (
        u.numel() * info_nce(u1[u], u2[u], tau, ids=u)
        + i.numel() * info_nce(i1[i], i2[i], tau, ids=i)) / batch.users.numel()
    return terms


def whole_table_simgcl_loss(self: SimGCL, batch) -> dict[str, Tensor]:
    """``SimGCL.loss`` as it was (its ``streams="shared"``): the clean and the noised
    encoders' whole tables, the noised ones the clean ones plus whole offsets."""
    if self.cfg.streams != "shared":
        raise ValueError("whole_tables: SimGCL's streams='shared' only")
    enc = self.encoder
    rows = enc.batch_rows(*batch)
    if not restricts_rows(self.adj, rows, enc.user_emb.size(1)):
        rows = None
    mean, *propagated = enc.encode(self.adj, self.cfg.skip_ego, keep_layers=True, rows=rows)
    layers = [enc.ego().detach(), *propagated]
    streams = [enc.split(mean)]
    averaged = len(layers) - 1 if self.cfg.skip_ego else len(layers)
    last_rows = self.adj.restrict(rows, backward=False) if rows is not None else None
    for _ in range(2):
        with torch.no_grad():
            shift = noise_offsets(self.adj, layers, self.noise, rows, last_rows).div_(averaged)
        shift_u, shift_i = enc.split(shift)
        streams.append((streams[0][0] + shift_u, streams[0][1] + shift_i))
    (users, items), (u1, i1), (u2, i2) = streams
    terms = self.rec_loss(batch, users, items)
    u, i = torch.unique(batch.users), torch.unique(batch.pos_items)
    tau = self.cfg.temperature
    terms["ssl"] = self.cfg.ssl_weight * (info_nce(u1[u], u2[u], tau, ids=u)
                                          + info_nce(i1[i], i2[i], tau, ids=i))
    return terms


def whole_table_xsimgcl_loss(self: XSimGCL, batch) -> dict[str, Tensor]:
    """``XSimGCL.loss`` as it was: the mean's and layer l*'s whole tables."""
    enc = self.encoder
    mean, contrasted = enc.encode(self.adj, self.cfg.skip_ego, taps=(self.cfg.layer_cl,),
                                  perturb=self.noise, rows=enc.batch_rows(*batch))
    users, items = enc.split(mean)
    terms = self.rec_loss(batch, users, items)
    cl_users, cl_items = enc.split(contrasted)
    u, i = torch.unique(batch.users), torch.unique(batch.pos_items)
    tau = self.cfg.temperature
    terms["ssl"] = self.cfg.ssl_weight * (info_nce(users[u], cl_users[u], tau, ids=u)
                                          + info_nce(items[i], cl_items[i], tau, ids=i))
    return terms


#: The methods' functions that ``whole_tables`` puts back as they were.
WHOLE_TABLES = ((LightGCN, "batch_rec_loss", whole_table_rec_loss),
                (SGL, "loss", whole_table_sgl_loss), (SimGCL, "loss", whole_table_simgcl_loss),
                (XSimGCL, "loss", whole_table_xsimgcl_loss))


@contextmanager
def whole_tables() -> Iterator[None]:
    saved = [getattr(cls, name) for cls, name, _ in WHOLE_TABLES]
    for cls, name, old in WHOLE_TABLES:
        setattr(cls, name, old)
    try:
        yield
    finally:
        for (cls, name, _), now in zip(WHOLE_TABLES, saved, strict=True):
            setattr(cls, name, now)


@contextmanager
def addmm_copies() -> Iterator[None]:
    """Every backward product of the layer mean into a new result, never in place."""
    saved = kernels._Layout.product

    def copying(self, adj, h, add=None, transpose=False, in_place=False):
        return saved(self, adj, h, add, transpose)

    kernels._Layout.product = copying
    try:
        yield
    finally:
        kernels._Layout.product = saved


CHANGES: dict[str, Callable[[], AbstractContextManager]] = {
    "whole_mean_gradient": whole_mean_gradient, "sliced_split": sliced_split,
    "unfused_adam": unfused_adam, "whole_tables": whole_tables, "addmm_copies": addmm_copies}


@contextmanager
def before() -> Iterator[None]:
    """All three changes undone."""
    with ExitStack() as stack:
        for change in CHANGES.values():
            stack.enter_context(change())
        yield


@contextmanager
def now() -> Iterator[None]:
    yield


PATHS: dict[str, Callable[[], AbstractContextManager]] = {"before": before, "now": now,
                                                          **CHANGES}


def time_method(method: str, dataset: str, steps: int, reps: int, settings: dict,
                paths: list[str]) -> dict:
    return path_summary(time_paths(method, dataset, steps, reps, settings,
                                   {p: PATHS[p] for p in paths}))


def adam_steps(shapes: list[tuple[int, ...]], steps: int) -> dict:
    """Adam's step on tables of ``shapes`` from the same start and gradients: the median
    milliseconds of ``steps`` steps (the first left out), fused (the trainer's
    :func:`~ssgraphrec.train.trainer.adam`) and unfused (PyTorch's default), alternated
    step by step, and the largest difference between their parameters at the end."""
    gen = torch.Generator().manual_seed(0)
    start = [torch.randn(*shape, generator=gen) for shape in shapes]
    grads = [torch.randn(*shape, generator=gen) for shape in shapes]
    runs = {}
    for name in ("fused", "unfused"):
        params = [torch.nn.Parameter(t.clone()) for t in start]
        runs[name] = (params, adam(params, 1e-3) if name == "fused"
                      else torch.optim.Adam(params, lr=1e-3))
    times: dict[str, list[float]] = {name: [] for name in runs}
    for step in range(steps):
        for name, (params, optimizer) in runs.items():
            for param, grad in zip(params, grads, strict=True):
                param.grad = torch.roll(grad, step, 0)        # a new gradient each step
            begin = time.perf_counter()
            optimizer.step()
            times[name].append(time.perf_counter() - begin)
    apart = max(float((a - b).abs().max())
                for a, b in zip(runs["fused"][0], runs["unfused"][0], strict=True))
    return {"shapes": [list(shape) for shape in shapes], "steps": steps,
            **{f"{name}_ms_per_step": round(1e3 * statistics.median(t[1:]), 3)
               for name, t in times.items()},
            "max_abs_difference": apart}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", default="lightgcn,sgl,simgcl,xsimgcl,ncl")
    parser.add_argument("--dataset", default="gowalla")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=6, help="training steps per timed window")
    parser.add_argument("--reps", type=int, default=6, help="windows per path, alternated")
    parser.add_argument("--paths", default="before,now",
                        help=f"paths, the first the base of the ratios, of {', '.join(PATHS)}")
    parser.add_argument("--set", action="append", default=["batch_size=2048", "num_layers=3"],
                        help="KEY=VALUE for every method (default: batch 2048, 3 layers)")
    parser.add_argument("--only", choices=["steps", "adam"], default=None)
    parser.add_argument("--adam-shapes", default="29858x64,40981x64",
                        help="the tables of Adam's step alone (default: Gowalla's LightGCN)")
    parser.add_argument("--adam-steps", type=int, default=20)
    parser.add_argument("--out", default=str(RESULTS / "step-bookkeeping.json"))
    args = parser.parse_args()
    paths = args.paths.split(",")
    unknown = [p for p in paths if p not in PATHS]
    if unknown or len(paths) < 2:
        parser.error(f"--paths: two or more of {', '.join(PATHS)}, got {args.paths!r}")
    torch.set_num_threads(args.threads)
    settings = {k: json.loads(v) if v[:1].isdigit() else v
                for k, _, v in (s.partition("=") for s in args.set)}
    out = {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
           "torch": torch.__version__, "threads": torch.get_num_threads(),
           "dataset": args.dataset, "settings": settings, "steps": args.steps, "reps": args.reps,
           "paths": paths, "methods": {}}
    if args.only in (None, "adam"):
        try:
            shapes = [tuple(int(n) for n in shape.split("x"))
                      for shape in args.adam_shapes.split(",")]
        except ValueError:
            parser.error(f"--adam-shapes: ROWSxCOLUMNS,..., got {args.adam_shapes!r}")
        out["adam"] = adam_steps(shapes, args.adam_steps)
        print("adam:", out["adam"], flush=True)
    for method in args.methods.split(",") if args.only in (None, "steps") else []:
        row = time_method(method, args.dataset, args.steps, args.reps, settings, paths)
        out["methods"][method] = row
        print(f"{method}:", ", ".join(f"{p} {row[f'{p}_ms_per_step']}" for p in paths),
              "ms/step;", row[f"ratios_to_{paths[0]}"], flush=True)
    write_result(Path(args.out), out)
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
