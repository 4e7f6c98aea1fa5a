"""Column-blocked sparse products (:mod:`ssgraphrec.sparse.blocks`): per product, and per training step.

1. ``products``: one CPU product ``A @ X`` of each dataset's propagation matrix
   (lastfm-80-20's and Gowalla's LightGCN adjacency with 64 columns, Diginetica's
   DHCN hypergraph operator with 100), for every candidate block width
   (:func:`~ssgraphrec.sparse.blocks.candidate_widths`: the divisors and the multiples
   of 16 of at least 16 columns, the last block narrower where the width does not
   divide, and the whole product), the widths alternating rep by rep; it reports
   the median milliseconds, the MiB of one block of ``X``, the width
   :func:`~ssgraphrec.sparse.blocks.block_width`'s rule picks on this machine and the
   width the matrix measures for itself (:meth:`~ssgraphrec.sparse.Adjacency.block_width`,
   the default).
2. ``steps``: training steps of each method with its propagations whole
   (``$SSGRAPHREC_SPMM_BLOCK_BYTES=0``), in blocks of the rule's width (the budget
   set to the automatic one) and in blocks of the measured width (the default),
   alternating window by window in one process, as ``benchmarks/layer_mean.py`` does
   (``--paths`` picks among them; ``width:W`` takes blocks of W columns wherever the
   measured width would block, to compare widths on the same steps). These run by node;
   ``reordered`` and ``reordered-whole`` run in the locality order
   (:mod:`~ssgraphrec.sparse.reorder`) from the first pass, with the measured width
   and whole.

Usage::

    SSGRAPHREC_DATA=../shared/data python benchmarks/spmm_blocks.py --threads 1
    SSGRAPHREC_DATA=../shared/data python benchmarks/spmm_blocks.py --only steps \\
        --steps-plan gowalla:lightgcn,sgl,simgcl,xsimgcl,ncl;diginetica:dhcn

Results go to ``benchmarks/results/spmm-blocks.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import torch

from ...sparse import Adjacency, BipartiteGraph
from ...sparse.blocks import (
    BLOCK_BYTES_ENV,
    ColumnBlocks,
    block_budget,
    block_bytes,
    block_width,
    candidate_widths,
    last_level_cache_bytes,
)
from ...sparse.reorder import reorder_mode
from . import RESULTS, cpu_model, shared_data, write_result
from .layer_mean import path_summary, time_paths

#: The propagation width of each dataset's methods: LightGCN's 64, DHCN's 100.
WIDTHS = {"lastfm-80-20": 64, "gowalla": 64, "diginetica": 100}
#: The shared-data folder each dataset is read from.
FOLDERS = {"lastfm-80-20": "lastfm", "gowalla": "gowalla", "diginetica": "diginetica"}


def propagation_matrix(dataset: str, root: Path) -> Adjacency:
    """The matrix each dataset's methods propagate with: the normalized user-item
    adjacency, or DHCN's hypergraph operator for session data."""
    from ...data import load_dataset
    from ...data.schema import INTERACTS
    from ...data.sessions import session_structure
    from ...transforms.session_hypergraph import SessionHypergraph, hypergraph_adjacency

    data = load_dataset(dataset, root=str(root), seed=2020)
    if dataset == "diginetica":
        return hypergraph_adjacency(SessionHypergraph()(session_structure(data)), backend="torch")
    return BipartiteGraph(data[INTERACTS].edge_index, int(data["user"].num_nodes),
                          int(data["item"].num_nodes)).normalized_adjacency()


def time_products(adj: Adjacency, d: int, reps: int) -> dict:
    x = torch.randn(adj.size, d, generator=torch.Generator().manual_seed(0))
    widths = candidate_widths(d)
    layouts = {b: ColumnBlocks(d, b) for b in widths}
    blocks = {b: layouts[b].split(x) for b in widths}
    times: dict[int, list[float]] = {b: [] for b in widths}
    for rep in range(reps + 1):
        for b in widths:
            t0 = time.perf_counter()
            layouts[b].product(adj._kernel, blocks[b])
            if rep:                                   # the first round warms up
                times[b].append(time.perf_counter() - t0)
    row_mib = adj.size * x.element_size() / 2**20
    return {"nodes": adj.size, "nnz": adj.nnz, "columns": d,
            "picked_width": block_width(x), "measured_width": adj.block_width(x),
            "widths": {str(b): {"block_mib": round(row_mib * b, 1),
                                "blocks": list(layouts[b].widths),
                                "ms_median": round(1e3 * statistics.median(t), 2),
                                "ms_all": [round(1e3 * v, 2) for v in t]}
                       for b, t in times.items()}}


def measured_widths(method: torch.nn.Module) -> dict[str, dict]:
    """The block widths each matrix held by ``method`` measured, by attribute name:
    ``{columns: width}`` (:meth:`~ssgraphrec.sparse.Adjacency.block_width`)."""
    return {name: {str(key[0]): width for key, width in value.measured_widths.items()}
            for name, value in vars(method).items()
            if isinstance(value, Adjacency) and value.measured_widths}


@contextmanager
def settings(budget: int | None, reorder: str) -> Iterator[None]:
    """The block budget ``budget`` (:func:`~ssgraphrec.sparse.blocks.block_bytes`) and the
    locality order's setting ``reorder`` (:func:`~ssgraphrec.sparse.reorder.reorder_mode`)."""
    with block_bytes(budget), reorder_mode(reorder):
        yield


#: The paths of the step timings: by node, whole products, blocks of the rule's width
#: (the automatic budget set explicitly, so nothing is measured), blocks of the measured
#: width; in the locality order (:mod:`~ssgraphrec.sparse.reorder`) from the first pass,
#: blocks of the measured width (``reordered``, the default's steady state) or whole
#: products; and ``width:W`` (:func:`fixed_width`, by node).
PATHS = {"whole": lambda: settings(0, "off"), "rule": lambda: settings(block_budget(), "off"),
         "measured": lambda: settings(None, "off"), "reordered": lambda: settings(None, "on"),
         "reordered-whole": lambda: settings(0, "on")}
#: The prefix of a path in blocks of a given width.
WIDTH_PATH = "width:"


@contextmanager
def fixed_width(width: int) -> Iterator[None]:
    """Blocks of ``width`` columns (the last one narrower where ``width`` does not divide
    the columns) wherever the measured width would block a product, in its place: the
    widths compared in one process, on the same steps."""
    measured = Adjacency.block_width

    def forced(adj: Adjacency, x: torch.Tensor, products: int = 1) -> int:
        return x.size(1) if measured(adj, x, products) == x.size(1) else min(width, x.size(1))

    Adjacency.block_width = forced
    try:
        with settings(None, "off"):
            yield
    finally:
        Adjacency.block_width = measured


def path(name: str) -> Callable[[], AbstractContextManager]:
    """The context manager factory of the path ``name`` (:data:`PATHS`, ``width:W``);
    ``ValueError`` for an unknown name."""
    if name in PATHS:
        return PATHS[name]
    if name.startswith(WIDTH_PATH) and name[len(WIDTH_PATH):].isdigit() \
            and int(name[len(WIDTH_PATH):]) > 0:
        return lambda: fixed_width(int(name[len(WIDTH_PATH):]))
    raise ValueError(f"unknown path {name!r}: one of {', '.join(PATHS)} or {WIDTH_PATH}W")


def time_steps(method: str, dataset: str, steps: int, reps: int, settings: dict,
               paths: list[str]) -> dict:
    """Milliseconds per step on each of ``paths`` (:data:`PATHS`), and each path's ratio
    to the first. The warm-up runs at the automatic budget, so a measured width is
    measured there, outside the timed windows."""
    measured: dict[str, dict] = {}
    times = time_paths(method, dataset, steps, reps, settings, {p: path(p) for p in paths},
                       after=lambda run: measured.update(measured_widths(run.method)))
    return {**path_summary(times), "measured_widths": measured}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["products", "steps"], default=None)
    parser.add_argument("--datasets", default="lastfm-80-20,gowalla,diginetica",
                        help="datasets of the product timings")
    parser.add_argument("--reps", type=int, default=9, help="products per width / windows per path")
    parser.add_argument("--steps-plan", default="gowalla:lightgcn,sgl,simgcl,xsimgcl,ncl;"
                        "diginetica:dhcn", help="DATASET:METHOD,...;... of the step timings")
    parser.add_argument("--steps", type=int, default=5, help="training steps per timed window")
    parser.add_argument("--windows", type=int, default=6, help="windows per path, alternated")
    parser.add_argument("--set", action="append", default=[],
                        help="KEY=VALUE for the graph methods' steps (default: batch 2048, 3 layers)")
    parser.add_argument("--paths", default="whole,rule,measured",
                        help=f"paths of the step timings, the first the base of the ratios "
                             f"(of {', '.join(PATHS)}, or {WIDTH_PATH}W: blocks of W columns "
                             f"where the measured width would block)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=str(RESULTS / "spmm-blocks.json"))
    args = parser.parse_args()
    paths = args.paths.split(",")
    try:
        for name in paths:
            path(name)
    except ValueError as exc:
        parser.error(f"--paths: {exc}")
    if len(paths) < 2:
        parser.error(f"--paths: two or more paths, got {args.paths!r}")
    torch.set_num_threads(args.threads)
    os.environ.pop(BLOCK_BYTES_ENV, None)
    cache = last_level_cache_bytes()
    out = {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
           "torch": torch.__version__, "threads": torch.get_num_threads(), "cpu": cpu_model(),
           "last_level_cache_mib": round(cache / 2**20, 1) if cache else None,
           "block_budget_mib": round(block_budget() / 2**20, 2),
           "load_average_start": round(os.getloadavg()[0], 2)}
    if args.only in (None, "products"):
        datasets = args.datasets.split(",")
        root = shared_data("spmm_blocks", *(FOLDERS[d] for d in datasets))
        out["products"] = {}
        for dataset in datasets:
            row = time_products(propagation_matrix(dataset, root), WIDTHS[dataset], args.reps)
            out["products"][dataset] = row
            print(dataset, {b: w["ms_median"] for b, w in row["widths"].items()},
                  "rule", row["picked_width"], "measured", row["measured_width"], flush=True)
    if args.only in (None, "steps"):
        graph_settings = {"batch_size": 2048, "num_layers": 3}
        graph_settings.update({k: json.loads(v) if v[:1].isdigit() else v
                               for k, _, v in (s.partition("=") for s in args.set)})
        out["steps"] = {"steps_per_window": args.steps, "windows": args.windows, "paths": paths,
                        "graph_settings": graph_settings, "rows": {}}
        for part in args.steps_plan.split(";"):
            dataset, _, methods = part.partition(":")
            for method in methods.split(","):
                settings = {} if dataset == "diginetica" else graph_settings
                row = time_steps(method, dataset, args.steps, args.windows, settings, paths)
                out["steps"]["rows"][f"{dataset}/{method}"] = row
                print(f"{dataset} {method}:", ", ".join(
                    f"{p} {row[f'{p}_ms_per_step']}" for p in paths), "ms/step;",
                    row[f"ratios_to_{paths[0]}"], flush=True)
    out["load_average_end"] = round(os.getloadavg()[0], 2)
    write_result(Path(args.out), out)
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
