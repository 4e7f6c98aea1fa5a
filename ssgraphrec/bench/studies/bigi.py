"""BiGI vs. LightGCN and MostPop on BiGI's own splits, bounded runs on the CPU.

1. ``bigi-ml-100k`` (BiGI's ML-100K split 1): top-10 recommendation,
   precision, recall, F1 (``2PR / (P + R)`` of the mean P@10 and R@10, as the
   BiGI code computes it), NDCG and MRR at 10, full ranking with training
   items masked.
2. ``bigi-dblp``: link prediction, AUC-ROC and AUC-PR of the test edges
   against as many seeded sampled non-edges, scored by BiGI's protocol (a
   logistic regression on ``[e_u ; e_i]``, see
   :mod:`ssgraphrec.eval.link_prediction`), and by the plain inner product.

Every method runs with the paper's hyper-parameters except the epoch budget
(``--epochs`` for BiGI, ``--lightgcn-epochs``; BiGI's authors train 200).
BiGI runs at its paper batch of 128 by default (``--bigi-batch``): every batch
encodes the whole graph twice (real and corrupted), as the authors' code
does, so an epoch costs hundreds of full-graph encodings. The seconds per
batch at 128 are also probed on ``--probe-batches`` timed batches. Model
selection uses the validation split (10% of each user's training edges),
early stopping with ``--patience``; each entry keeps its per-epoch loss terms
and validation metric (``trajectory``). ``--datasets`` runs a subset; the
other datasets' entries of ``--out`` are kept.

Usage::

    python benchmarks/bigi.py --threads 1 --datasets bigi-ml-100k --epochs 5 --lightgcn-epochs 5
    python benchmarks/bigi.py --threads 1 --datasets bigi-dblp --epochs 4 --lightgcn-epochs 4
    python benchmarks/bigi.py --threads 1 --quick    # two epochs each

Results go to ``benchmarks/results/bigi.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

from . import REPO, shared_data, write_result

SEED = 2020

warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta state")

#: The BiGI paper's own figures would go here; they could not be confirmed from the
#: sources available when this benchmark was written, so none are claimed.
PUBLISHED = {
    "bigi-ml-100k": {"source": "Cao et al., WSDM 2021, Table 2 (top-K recommendation)",
                     "values": None,
                     "note": "not reproduced here: the figures could not be verified; the paper "
                             "also reports MAP@10, which this library does not compute"},
    "bigi-dblp": {"source": "Cao et al., WSDM 2021",
                  "values": None,
                  "note": "the paper reports DBLP for top-K recommendation only; its link "
                          "prediction results are on Wikipedia and Tencent, which are not here"},
}




def run_one(method: str, dataset: str, epochs: int, root: Path, threads: int | None,
            params: dict, patience: int = 10) -> tuple[dict, list[dict]]:
    """The run's results and its per-epoch records (losses, validation metrics)."""
    from ssgraphrec.config import RunConfig
    from ssgraphrec.train.run import train

    cfg = RunConfig(method=method, dataset=dataset, epochs=epochs, seed=SEED, device="cpu",
                    threads=threads, data_root=str(root), params=dict(params),
                    eval_ks=[10, 20], patience=patience)
    with tempfile.TemporaryDirectory() as out:
        _, res = train(cfg, out, progress=False, log=lambda msg: print("   ", msg, flush=True))
        log = Path(out) / "metrics.jsonl"
        records = [json.loads(line) for line in log.open()] if log.exists() else []
    return res, records


def trajectory(records: list[dict], monitor: str) -> dict:
    """Per-epoch loss terms and the monitored validation metric, rounded."""
    epochs = [r for r in records if "loss" in r and "epoch" in r]
    out = {"epoch": [r["epoch"] for r in epochs]}
    for term in (epochs[0]["loss"] if epochs else {}):
        out[f"loss_{term}"] = [round(r["loss"][term], 5) for r in epochs]
    out[f"val_{monitor}"] = [round(r["val"][monitor], 4) if "val" in r else None for r in epochs]
    return out


def probe_seconds_per_batch(dataset: str, root: Path, batch_size: int, batches: int) -> dict:
    """Seconds per BiGI training batch at ``batch_size`` (the mean of ``batches`` after one)."""
    from ssgraphrec.data import load_dataset
    from ssgraphrec.data.sampler import NegativeSampler, bpr_batches, num_batches
    from ssgraphrec.data.schema import INTERACTS
    from ssgraphrec.methods import BiGI, BiGIConfig
    from ssgraphrec.methods.base import BPRBatch
    from ssgraphrec.train.trainer import adam

    data = load_dataset(dataset, root=root, seed=SEED)
    gen = torch.Generator().manual_seed(SEED)
    method = BiGI(data, BiGIConfig(batch_size=batch_size), generator=gen).train()
    opt = adam(list(method.parameters()), method.cfg.lr)   # the trainer's Adam
    edges = data[INTERACTS].edge_index
    it = bpr_batches(edges, NegativeSampler(edges, int(data["item"].num_nodes)), batch_size, gen)
    times = []
    for k, triple in enumerate(it):
        if k > batches:
            break
        t0 = time.perf_counter()
        loss = sum(method.loss(BPRBatch(*triple)).values())
        opt.zero_grad()
        loss.backward()
        opt.step()
        if k:
            times.append(time.perf_counter() - t0)
    per_batch = sum(times) / len(times)
    n = num_batches(edges.size(1), batch_size)
    return {"batch_size": batch_size, "batches_timed": len(times), "s_per_batch": per_batch,
            "batches_per_epoch": n, "estimated_s_per_epoch": per_batch * n}


def summarise(res: dict) -> dict:
    test = res["test"]
    out = {"best_epoch": res["best_epoch"], "epochs_trained": res["epochs_trained"],
           "train_s_per_epoch": round(res["timing"]["train_s_per_epoch"], 2)}
    if "auc_roc" in test:
        out.update({k: round(test[k], 4) for k in ("auc_roc", "auc_pr", "dot_auc_roc",
                                                    "dot_auc_pr")})
        out["val_auc_roc"] = round(res["val"].get("auc_roc", float("nan")), 4) if res["val"] else None
        return out
    p, r = test["precision@10"], test["recall@10"]
    out.update({"precision@10": round(p, 4), "recall@10": round(r, 4),
                "f1@10": round(2 * p * r / (p + r) if p + r else 0.0, 4),
                "ndcg@10": round(test["ndcg@10"], 4), "mrr@10": round(test["mrr@10"], 4),
                "users_evaluated": test["users_evaluated"]})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--epochs", type=int, default=5, help="epochs of BiGI")
    ap.add_argument("--lightgcn-epochs", type=int, default=30)
    ap.add_argument("--bigi-batch", type=int, default=128)
    ap.add_argument("--probe-batches", type=int, default=10)
    ap.add_argument("--datasets", nargs="+", default=["bigi-ml-100k", "bigi-dblp"],
                    help="run these only; the other datasets' entries of --out are kept")
    ap.add_argument("--patience", type=int, default=10, help="early-stopping patience (epochs)")
    ap.add_argument("--quick", action="store_true", help="two epochs each, 3 probe batches")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "bigi.json")
    args = ap.parse_args()
    if args.quick:
        args.epochs, args.lightgcn_epochs, args.probe_batches = 2, 2, 3
    if args.threads:
        torch.set_num_threads(args.threads)
    root = shared_data("bigi", "bigi-ml-100k", "bigi-dblp")
    runs = {}
    for dataset in args.datasets:
        runs[dataset] = {}
        plan = [("mostpop", 0, {}), ("lightgcn", args.lightgcn_epochs, {}),
                ("bigi", args.epochs, {"batch_size": args.bigi_batch})]
        monitor = "auc_roc" if dataset == "bigi-dblp" else "ndcg@20"
        for method, epochs, params in plan:
            print(f"{dataset}: {method}, {epochs} epochs {params}", flush=True)
            t0 = time.perf_counter()
            res, records = run_one(method, dataset, epochs, root, args.threads, params,
                                   args.patience)
            entry = summarise(res)
            if epochs:
                entry["trajectory"] = trajectory(records, monitor)
            entry["wall_s"] = round(time.perf_counter() - t0, 1)
            entry["settings"] = {"epochs": epochs, "patience": args.patience, **params}
            runs[dataset][method] = entry
            print("   ", json.dumps(entry), flush=True)
        print(f"{dataset}: probing BiGI at its paper batch size 128", flush=True)
        runs[dataset]["bigi"]["paper_batch_probe"] = probe_seconds_per_batch(
            dataset, root, 128, args.probe_batches)
        runs[dataset]["bigi"]["published"] = PUBLISHED[dataset]
    result = {
        "benchmark": "bigi",
        "command": "python benchmarks/bigi.py " + " ".join(sys.argv[1:]),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "torch": torch.__version__,
                    "threads": torch.get_num_threads(), "cpus": os.cpu_count()},
        "seed": SEED,
        "protocol": {
            "bigi-ml-100k": "BiGI split 1, 10% of each user's training edges for validation "
                            "(monitor ndcg@20), full ranking over all items, training items "
                            "masked",
            "bigi-dblp": "BiGI's DBLP split, 10% validation; link prediction: every test "
                         "edge and one seeded uniform non-edge of its user; logistic "
                         "regression (C=0.001) on [e_u; e_i] fitted on the training edges "
                         "and one non-edge each (auc_*), or the inner product (dot_auc_*); "
                         "monitor val auc_roc",
        },
        "runs": runs,
    }
    command = result["command"]
    result["commands"] = {dataset: command for dataset in runs}
    if args.out.exists():   # keep the entries (and commands) of datasets not run this time
        old = json.loads(args.out.read_text())
        kept = {k: v for k, v in old.get("runs", {}).items() if k not in runs}
        result["runs"] = {**kept, **runs}
        old_commands = old.get("commands", {k: old.get("command") for k in kept})
        result["commands"] = {**{k: old_commands.get(k) for k in kept}, **result["commands"]}
    write_result(args.out, result)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
