#!/usr/bin/env python
"""PT-GNN vs its base model (LightGCN) on lastfm: overall and on the cold-start slices.

Both runs use the same split (lastfm, random 90/10 with 10 % of training held
out for validation, seed 2020), the same cold-start slices
(``--cold-threshold``, default 3: items with at most 3 training interactions)
and the same number of BPR epochs:

- ``lightgcn``: ``base + finetune`` epochs of LightGCN (joint scheme);
- ``ptgnn``: ``base`` pre-training epochs of the same LightGCN, ``recon``
  epochs of the reconstruction task (meta aggregator, L-order GNN, adaptive
  sampler), then ``finetune`` epochs of BPR with cold nodes reconstructed.

Model selection uses validation NDCG@20 with patience 10 in both runs. The
script reports test metrics overall and on the slices, and the seconds per
epoch of each phase (base-model epochs, reconstruction epochs, fine-tuning
epochs, read from the run's ``metrics.jsonl``). The PT-GNN run uses
``cold_mode=replace`` (the paper's: a cold node's embedding is the
reconstruction); its selected model is also evaluated with
``cold_mode=add`` (``ptgnn_add``: LightGCN embedding plus reconstruction),
which changes only how cold rows are built at evaluation, not training.

Usage::

    python benchmarks/ptgnn.py                       # about 15 minutes on two busy cores
    python benchmarks/ptgnn.py --base 20 --recon 10 --finetune 10 --threads 1

Results go to ``benchmarks/results/ptgnn-lastfm.json`` (``--out``); the run
directories go to a temporary folder (``--runs`` to keep them).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import tempfile
import warnings
from pathlib import Path

import torch
import torch_geometric

REPO = Path(__file__).resolve().parents[1]
DATA_ENV = "SSGRAPHREC_DATA"
SEED = 2020
KEYS = ("recall@20", "ndcg@20", "recall@10", "ndcg@10", "hit@20")

warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta state")


def data_root() -> Path:
    env = os.environ.get(DATA_ENV)
    root = Path(env).expanduser() if env else REPO.parent / "shared" / "data"
    if not (root / "lastfm").is_dir():
        sys.exit(f"ptgnn.py: {root} has no lastfm/; set {DATA_ENV} to the folder that holds it")
    return root


def phase_seconds(run_dir: Path) -> dict[str, dict[str, float]]:
    """Seconds per epoch of the base, reconstruction and fine-tuning epochs of a run."""
    groups: dict[str, list[float]] = {"base": [], "reconstruction": [], "finetune": []}
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        rec = json.loads(line)
        if rec.get("phase") == "pretrain":
            name = "reconstruction" if "recon" in rec["loss"] else "base"
        else:
            name = "finetune"
        groups[name].append(rec["train_s"])
    if not groups["base"] and not groups["reconstruction"]:  # a joint run: one phase
        groups = {"train": groups["finetune"]}
    return {k: {"epochs": len(v), "s_per_epoch": round(sum(v) / len(v), 3)}
            for k, v in groups.items() if v}


def run(method: str, args, root: Path, runs: Path) -> dict:
    from ssgraphrec.config import RunConfig, apply
    from ssgraphrec.train.run import train

    values = {"method": method, "dataset": "lastfm", "seed": SEED, "threads": args.threads,
              "device": "cpu", "cold_threshold": args.cold_threshold, "patience": 10,
              "data_root": str(root)}
    if method == "lightgcn":
        values["epochs"] = args.base + args.finetune
    else:
        values.update(epochs=args.finetune, pretrain_epochs=args.base + args.recon,
                      params={"base_epochs": args.base})
    cfg = apply(RunConfig(), values)
    run_dir, results = train(cfg, out=str(runs / method), progress=False,
                             log=lambda msg: print(f"[{method}] {msg}", file=sys.stderr))
    return {
        "config": values,
        "test": {k: round(results["test"][k], 4) for k in KEYS},
        "slices": {name: {"size": s["size"], **{k: round(s["metrics"][k], 4) for k in KEYS}}
                   for name, s in results.get("test_slices", {}).items()},
        "best_epoch": results["best_epoch"],
        "epochs_trained": results["epochs_trained"],
        "phases": phase_seconds(run_dir),
        "total_s": round(results["timing"]["total_s"], 1),
    }


def evaluate_cold_mode(run_dir: Path, mode: str, cold_threshold: int) -> dict:
    """Test metrics, overall and on the slices, of a saved PT-GNN run under another cold_mode."""
    from ssgraphrec.data import INTERACTS
    from ssgraphrec.eval import dot_scores, evaluate_ranking
    from ssgraphrec.eval.slices import build_slices
    from ssgraphrec.train.run import load_run

    run = load_run(run_dir, device="cpu")
    method, data = run.method, run.data
    method.cfg.cold_mode = mode
    method.eval()
    store = data[INTERACTS]
    users_n, items_n = data["user"].num_nodes, data["item"].num_nodes
    with torch.no_grad():
        users, items = method.embeddings()

    def metrics(target):
        res = evaluate_ranking(dot_scores(users, items), target,
                               [store.edge_index, store.val_edge_index], users_n, items_n,
                               [10, 20], 1024, split_name="test")
        return {k: round(res[k], 4) for k in KEYS}

    slices = build_slices(store.edge_index, store.test_edge_index, users_n, items_n,
                          cold_threshold=cold_threshold)
    return {"config": {"cold_mode": mode, "from": "the selected ptgnn model"},
            "test": metrics(store.test_edge_index),
            "slices": {s.name: {"size": s.size, **metrics(s.target)} for s in slices}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base", type=int, default=20, help="base-model (LightGCN) epochs")
    parser.add_argument("--recon", type=int, default=10, help="reconstruction epochs")
    parser.add_argument("--finetune", type=int, default=10, help="fine-tuning epochs")
    parser.add_argument("--cold-threshold", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results"
                        / "ptgnn-lastfm.json")
    parser.add_argument("--runs", type=Path, default=None, help="keep the run directories here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    root = data_root()
    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        runs = args.runs or Path(tmp)
        out = {name: run(name, args, root, runs) for name in ("lightgcn", "ptgnn")}
        out["ptgnn_add"] = evaluate_cold_mode(runs / "ptgnn", "add", args.cold_threshold)
    report = {
        "benchmark": "PT-GNN vs LightGCN on lastfm, overall and on cold-start slices",
        "command": "python benchmarks/ptgnn.py " + " ".join(sys.argv[1:]),
        "cold_threshold": args.cold_threshold,
        "results": out,
        "environment": {
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "torch": torch.__version__, "torch_geometric": torch_geometric.__version__,
            "threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
            "platform": platform.platform(), "load_avg_start": load0,
            "load_avg_end": os.getloadavg()[0],
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"{'':10s} {'slice':12s} " + " ".join(f"{k:>10s}" for k in KEYS))
    for name, res in out.items():
        rows = {"overall": res["test"], **res["slices"]}
        for slice_name, m in rows.items():
            print(f"{name:10s} {slice_name:12s} " + " ".join(f"{m[k]:10.4f}" for k in KEYS))
        if "phases" in res:
            print(f"{name:10s} phases: " + ", ".join(
                f"{k} {v['epochs']} x {v['s_per_epoch']} s" for k, v in res["phases"].items()))
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
