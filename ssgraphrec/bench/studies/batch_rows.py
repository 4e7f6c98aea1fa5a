"""The last product at the batch's rows (``propagate_mean(rows=)``): training steps with and without it.

A training step of LightGCN, SGL, SimGCL or XSimGCL reads its final embeddings at
the batch's users and items only, so :func:`~ssgraphrec.sparse.propagate_mean` takes
the last product at those rows and the backward pass's first product from them (and
SimGCL the last product of its noised views' offsets),
when they hold at most :data:`~ssgraphrec.sparse.kernels.ROWS_SHARE_LIMIT` of the
adjacency's non-zeros and it has at least ``ROWS_MIN_NNZ``. This study times
training steps with the restriction (``rows``, the default) and without it
(``whole``), alternating window by window in one process as
``benchmarks/layer_mean.py`` does, with the process heap kept as the command line
keeps it (:mod:`ssgraphrec.heap`); and it reports, per
dataset, the share of the adjacency's non-zeros in a batch's rows (over 20 random
batches of interactions with one uniform negative item each).

Usage::

    SSGRAPHREC_DATA=../shared/data python benchmarks/batch_rows.py --threads 1
    # the rows path whatever the share and the size:
    SSGRAPHREC_DATA=../shared/data python benchmarks/batch_rows.py --datasets lastfm-80-20 \
        --share-limit 1 --min-nnz 0 --out benchmarks/results/batch-rows-lastfm-forced.json

Results go to ``benchmarks/results/batch-rows.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from . import RESULTS, cpu_model, shared_data, write_result
from .layer_mean import time_paths

#: The shared-data folder each dataset is read from.
FOLDERS = {"lastfm-80-20": "lastfm", "gowalla": "gowalla"}


@contextmanager
def row_limits(share: float, min_nnz: int) -> Iterator[None]:
    """``ROWS_SHARE_LIMIT`` and ``ROWS_MIN_NNZ`` set inside the block."""
    from ...sparse import kernels

    saved = kernels.ROWS_SHARE_LIMIT, kernels.ROWS_MIN_NNZ
    kernels.ROWS_SHARE_LIMIT, kernels.ROWS_MIN_NNZ = share, min_nnz
    try:
        yield
    finally:
        kernels.ROWS_SHARE_LIMIT, kernels.ROWS_MIN_NNZ = saved


def batch_share(dataset: str, root: Path, batch_size: int, batches: int = 20) -> dict:
    """Rows and share of the adjacency's non-zeros of random batches' users, positive
    and negative items."""
    from ...data import load_dataset
    from ...data.schema import INTERACTS
    from ...sparse import BipartiteGraph

    data = load_dataset(dataset, root=str(root), seed=2020)
    edges = data[INTERACTS].edge_index
    nu, ni = int(data["user"].num_nodes), int(data["item"].num_nodes)
    adj = BipartiteGraph(edges, nu, ni).normalized_adjacency()
    g = torch.Generator().manual_seed(0)
    rows, shares = [], []
    for _ in range(batches):
        pick = torch.randint(edges.size(1), (batch_size,), generator=g)
        neg = torch.randint(ni, (batch_size,), generator=g)
        at = torch.unique(torch.cat([edges[0, pick], edges[1, pick] + nu, neg + nu]))
        rows.append(at.numel())
        shares.append(adj.rows_share(at))
    return {"nodes": nu + ni, "nnz": adj.nnz, "batch_size": batch_size,
            "rows_mean": round(statistics.mean(rows), 1),
            "nnz_share_mean": round(statistics.mean(shares), 4)}


def main() -> None:
    from ...heap import retain_freed_memory
    from ...sparse.kernels import ROWS_MIN_NNZ, ROWS_SHARE_LIMIT

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="lastfm-80-20,gowalla")
    parser.add_argument("--methods", default="lightgcn,sgl,xsimgcl")
    parser.add_argument("--steps", type=int, default=10, help="training steps per timed window")
    parser.add_argument("--windows", type=int, default=6, help="windows per path, alternated")
    parser.add_argument("--set", action="append", default=[],
                        help="KEY=VALUE for every method (default: batch 2048, 3 layers)")
    parser.add_argument("--share-limit", type=float, default=ROWS_SHARE_LIMIT,
                        help="ROWS_SHARE_LIMIT of the rows path (1 with --min-nnz 0: always)")
    parser.add_argument("--min-nnz", type=int, default=ROWS_MIN_NNZ,
                        help="ROWS_MIN_NNZ of the rows path")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=str(RESULTS / "batch-rows.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    retained = retain_freed_memory()
    settings = {"batch_size": 2048, "num_layers": 3}
    settings.update({k: json.loads(v) if v[:1].isdigit() else v
                     for k, _, v in (s.partition("=") for s in args.set)})
    datasets = args.datasets.split(",")
    root = shared_data("batch_rows", *(FOLDERS[d] for d in datasets))
    os.environ.setdefault("SSGRAPHREC_DATA", str(root))
    out = {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
           "torch": torch.__version__, "threads": torch.get_num_threads(), "cpu": cpu_model(),
           "heap_retained": retained, "rows_share_limit": args.share_limit,
           "rows_min_nnz": args.min_nnz,
           "settings": settings, "steps_per_window": args.steps, "windows": args.windows,
           "load_average_start": round(os.getloadavg()[0], 2), "datasets": {}}
    paths = {"whole": lambda: row_limits(0.0, ROWS_MIN_NNZ),
             "rows": lambda: row_limits(args.share_limit, args.min_nnz)}
    for dataset in datasets:
        row = {"batch": batch_share(dataset, root, settings["batch_size"]), "methods": {}}
        print(dataset, row["batch"], flush=True)
        for method in args.methods.split(","):
            times = time_paths(method, dataset, args.steps, args.windows, settings, paths)
            ms = {name: round(1e3 * statistics.median(t), 2) for name, t in times.items()}
            row["methods"][method] = {
                **{f"{name}_ms_per_step": v for name, v in ms.items()},
                "ratio": round(ms["rows"] / ms["whole"], 3),
                "all_ms_per_step": {n: [round(1e3 * x, 2) for x in t] for n, t in times.items()}}
            print(dataset, method, ms, row["methods"][method]["ratio"], flush=True)
        out["datasets"][dataset] = row
    out["load_average_end"] = round(os.getloadavg()[0], 2)
    write_result(Path(args.out), out)


if __name__ == "__main__":
    main()
