"""The locality order of a propagation matrix: its cost, and one product in it.

The order is :mod:`ssgraphrec.sparse.reorder`'s.

For each dataset's propagation matrix (lastfm-80-20's and Gowalla's LightGCN adjacency
with 64 columns, Diginetica's DHCN hypergraph operator with 100; the matrices of
``benchmarks/spmm_blocks.py``) it reports the seconds to compute the reverse
Cuthill-McKee order and to build the renumbered copy
(:meth:`~ssgraphrec.sparse.Adjacency.reordered`), the mean distance between the two
ends of a non-zero before and after, whether the product in the new numbering has the
bits of the product by node (forward and transpose), and the median milliseconds of
one product ``A @ X`` by node and renumbered, whole and in blocks of the width the
matrix measures for itself, the four alternating rep by rep. The gather into the new
numbering and back is not counted: a pass of
:func:`~ssgraphrec.sparse.propagate_mean` makes it once each way, in the copy that
makes its column blocks (``benchmarks/spmm_blocks.py --only steps --paths
measured,reordered`` times whole training steps).

Usage::

    SSGRAPHREC_DATA=../shared/data python benchmarks/reorder.py --threads 2

Results go to ``benchmarks/results/spmm-reorder.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import time
from pathlib import Path

import torch

from ...sparse import Adjacency
from ...sparse.blocks import ColumnBlocks, block_bytes
from . import RESULTS, cpu_model, shared_data, write_result
from .spmm_blocks import FOLDERS, WIDTHS, propagation_matrix


def mean_distance(adj: Adjacency, rank: torch.Tensor | None = None) -> float:
    """The mean ``|rank[i] - rank[j]|`` over the non-zeros ``(i, j)`` (ids by default)."""
    row = torch.repeat_interleave(torch.arange(adj.size), adj.crow.long().diff())
    col = adj.col.long()
    if rank is not None:
        row, col = rank[row], rank[col]
    return float((row - col).abs().double().mean())


def time_reorder(adj: Adjacency, d: int, reps: int) -> dict:
    """One matrix's row of the study (see the module's docstring)."""
    t0 = time.perf_counter()
    renumbered = adj.reordered()
    build_s = time.perf_counter() - t0
    renumbering = renumbered.reordering
    x = torch.randn(adj.size, d, generator=torch.Generator().manual_seed(0))
    x_new = renumbering.gather(x)
    exact = all(torch.equal(renumbering.restore(renumbered.matmul(x_new, t)), adj.matmul(x, t))
                for t in (False, True))
    with block_bytes(None):
        widths = {"by_node": adj.block_width(x, 3), "renumbered": renumbered.block_width(x, 3)}
    variants = {}
    for name, matrix, operand in (("by_node", adj, x), ("renumbered", renumbered, x_new)):
        variants[f"{name}_whole"] = (ColumnBlocks(d, d), matrix, operand)
        layout = ColumnBlocks(d, widths[name])
        variants[f"{name}_measured"] = (layout, matrix, layout.split(operand))
    times: dict[str, list[float]] = {name: [] for name in variants}
    for rep in range(reps + 1):
        for name, (layout, matrix, operand) in variants.items():
            start = time.perf_counter()
            layout.product(matrix._kernel, operand.reshape(-1))
            if rep:                                   # the first round warms up
                times[name].append(time.perf_counter() - start)
    ms = {name: round(1e3 * statistics.median(t), 2) for name, t in times.items()}
    return {"nodes": adj.size, "nnz": adj.nnz, "columns": d,
            "order_and_copy_seconds": round(build_s, 3),
            "mean_distance_by_id": round(mean_distance(adj), 1),
            "mean_distance_renumbered": round(mean_distance(adj, renumbering.rank), 1),
            "bit_for_bit": exact, "measured_widths": widths, "ms_median": ms,
            "ratio_renumbered_to_by_node_whole": round(ms["renumbered_whole"] / ms["by_node_whole"], 3),
            "ratio_renumbered_to_by_node_measured": round(
                ms["renumbered_measured"] / ms["by_node_measured"], 3),
            "ms_all": {name: [round(1e3 * v, 2) for v in t] for name, t in times.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="lastfm-80-20,gowalla,diginetica")
    parser.add_argument("--reps", type=int, default=15, help="products per variant")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=str(RESULTS / "spmm-reorder.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    datasets = args.datasets.split(",")
    unknown = [d for d in datasets if d not in FOLDERS]
    if unknown:
        parser.error(f"--datasets: unknown {', '.join(unknown)} (of {', '.join(FOLDERS)})")
    root = shared_data("reorder", *(FOLDERS[d] for d in datasets))
    out = {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
           "torch": torch.__version__, "threads": torch.get_num_threads(), "cpu": cpu_model(),
           "load_average_start": round(os.getloadavg()[0], 2), "matrices": {}}
    for dataset in datasets:
        row = time_reorder(propagation_matrix(dataset, root), WIDTHS[dataset], args.reps)
        out["matrices"][dataset] = row
        print(dataset, row["ms_median"], "bits kept:", row["bit_for_bit"],
              f"order and copy {row['order_and_copy_seconds']} s", flush=True)
    out["load_average_end"] = round(os.getloadavg()[0], 2)
    write_result(Path(args.out), out)
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
