"""Feature-masking SSL (Yao et al., CIKM 2021) and CLRec against the plain two-tower model.

For each dataset (``ml-100k``, random 80/20 split with 10% validation;
``amazon-beauty-ranking``, leave-one-out by position) trains ``twotower``,
``ssl4rec --aug field_mask`` (RFM), ``ssl4rec --aug correlated_field_mask``
(CFM) and ``clrec`` with the same seed, learning rate and epoch budget, on
one thread, stopping early when validation NDCG@20 has not improved for
``--patience`` epochs, and records the test metrics of the best validation
epoch, overall and on the head (the 10% most clicked items) and tail slices
(``--head-share 0.1``), the seconds per training epoch and the cost relative
to the base model (seconds per epoch / twotower seconds per epoch).

Usage::

    python benchmarks/feature_ssl.py --epochs ml-100k=40 --patience 5   # about 20 minutes, 1 thread
    python benchmarks/feature_ssl.py --epochs ml-100k=2 --epochs amazon-beauty-ranking=1

Results go to ``benchmarks/results/feature-ssl.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
import tempfile
import warnings
from pathlib import Path

import torch

from ssgraphrec.config import RunConfig  # noqa: E402
from ssgraphrec.train.run import train  # noqa: E402

from . import REPO, shared_data

warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta state")

EPOCHS = {"ml-100k": 40}
VARIANTS = [("twotower", None), ("ssl4rec", "field_mask"), ("ssl4rec", "correlated_field_mask"),
            ("clrec", None)]
LR = 1e-2
KS = [10, 20, 50]


def one(dataset: str, method: str, aug: str | None, epochs: int, root: str, seed: int,
        patience: int, lr: float) -> dict:
    cfg = RunConfig(method=method, dataset=dataset, aug=aug, epochs=epochs, lr=lr, threads=1,
                    seed=seed, device="cpu", data_root=root, head_share=0.1, eval_ks=list(KS),
                    patience=patience)
    with tempfile.TemporaryDirectory() as tmp:
        _, res = train(cfg, out=str(Path(tmp) / "run"), progress=False, log=lambda m: None)
    pick = ("recall@20", "ndcg@20", "recall@50", "hit@50", "coverage@50")
    slices = res.get("test_slices", {})
    return {
        "method": method, "aug": aug, "max_epochs": epochs, "best_epoch": res["best_epoch"],
        "epochs_trained": res["epochs_trained"],
        "test": {k: round(res["test"][k], 4) for k in pick},
        "head": {k: round(slices["head_items"]["metrics"][k], 4) for k in ("recall@20", "ndcg@20")},
        "tail": {k: round(slices["tail_items"]["metrics"][k], 4) for k in ("recall@20", "ndcg@20")},
        "train_s_per_epoch": round(res["timing"]["train_s_per_epoch"], 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("--epochs", action="append", default=[], metavar="DATASET=N")
    ap.add_argument("--seed", type=int, default=2020)
    ap.add_argument("--patience", type=int, default=5,
                    help="stop after this many epochs without a better validation NDCG@20")
    ap.add_argument("--lr", type=float, default=LR)
    ap.add_argument("--only", help="comma-separated methods or augs to run (default: all)")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "feature-ssl.json"))
    args = ap.parse_args()
    epochs = {} if args.epochs else dict(EPOCHS)
    for item in args.epochs:
        name, _, n = item.partition("=")
        epochs[name] = int(n)
    root = str(shared_data("feature_ssl"))
    torch.set_num_threads(1)
    rows = []
    for dataset, n in epochs.items():
        base = None
        for method, aug in VARIANTS:
            if args.only and not {method, str(aug)} & set(args.only.split(",")):
                continue
            row = {"dataset": dataset, **one(dataset, method, aug, n, root, args.seed,
                                             args.patience, args.lr)}
            if method == "twotower":
                base = row["train_s_per_epoch"]
            elif base:
                row["cost_vs_twotower"] = round(row["train_s_per_epoch"] / base, 2)
            rows.append(row)
            print(json.dumps(row), flush=True)
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_text(json.dumps({
                "benchmark": "feature-ssl", "lr": args.lr, "seed": args.seed, "threads": 1,
                "patience": args.patience, "monitor": "val ndcg@20",
                "command": " ".join(["python", "benchmarks/feature_ssl.py"] + sys.argv[1:]),
                "head_share": 0.1, "date": datetime.datetime.now(datetime.UTC).isoformat(),
                "machine": platform.platform(), "torch": torch.__version__,
                "note": "bounded epochs on a shared 2-core machine; seconds are noisy",
                "runs": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
