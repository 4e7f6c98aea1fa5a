#!/usr/bin/env python
"""Feature-masking SSL (Yao et al., CIKM 2021) against the plain two-tower model.

For each dataset (``ml-100k``, random 80/20 split with 10% validation;
``amazon-beauty-ranking``, leave-one-out by position) trains ``twotower``,
``ssl4rec --aug field_mask`` (RFM) and ``ssl4rec --aug correlated_field_mask``
(CFM) with the same seed, epochs and learning rate, on one thread, and
records the test metrics of the best validation epoch, overall and on the
head (the 10% most clicked items) and tail slices (``--head-share 0.1``),
the seconds per training epoch and the cost of the SSL term relative to the
base model (ssl4rec seconds per epoch / twotower seconds per epoch).

Usage::

    python benchmarks/feature_ssl.py                      # bounded: about 25 minutes, 1 thread
    python benchmarks/feature_ssl.py --epochs ml-100k=2 --epochs amazon-beauty-ranking=1

Results go to ``benchmarks/results/feature-ssl.json`` (``--out``).
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

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ssgraphrec.config import RunConfig  # noqa: E402
from ssgraphrec.train.run import train  # noqa: E402

warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta state")

DATA_ENV = "SSGRAPHREC_DATA"
EPOCHS = {"ml-100k": 6, "amazon-beauty-ranking": 3}
VARIANTS = [("twotower", None), ("ssl4rec", "field_mask"), ("ssl4rec", "correlated_field_mask")]
LR = 1e-2
KS = [10, 20, 50]


def one(dataset: str, method: str, aug: str | None, epochs: int, root: str, seed: int) -> dict:
    cfg = RunConfig(method=method, dataset=dataset, aug=aug, epochs=epochs, lr=LR, threads=1,
                    seed=seed, device="cpu", data_root=root, head_share=0.1, eval_ks=list(KS),
                    patience=epochs)
    with tempfile.TemporaryDirectory() as tmp:
        _, res = train(cfg, out=str(Path(tmp) / "run"), progress=False, log=lambda m: None)
    pick = ("recall@20", "ndcg@20", "recall@50", "hit@50", "coverage@50")
    slices = res.get("test_slices", {})
    return {
        "method": method, "aug": aug, "epochs": epochs, "best_epoch": res["best_epoch"],
        "test": {k: round(res["test"][k], 4) for k in pick},
        "head": {k: round(slices["head_items"]["metrics"][k], 4) for k in ("recall@20", "ndcg@20")},
        "tail": {k: round(slices["tail_items"]["metrics"][k], 4) for k in ("recall@20", "ndcg@20")},
        "train_s_per_epoch": round(res["timing"]["train_s_per_epoch"], 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("--epochs", action="append", default=[], metavar="DATASET=N")
    ap.add_argument("--seed", type=int, default=2020)
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "feature-ssl.json"))
    args = ap.parse_args()
    epochs = dict(EPOCHS)
    for item in args.epochs:
        name, _, n = item.partition("=")
        epochs[name] = int(n)
    root = os.environ.get(DATA_ENV) or str(REPO.parent / "shared" / "data")
    torch.set_num_threads(1)
    rows = []
    for dataset, n in epochs.items():
        base = None
        for method, aug in VARIANTS:
            row = {"dataset": dataset, **one(dataset, method, aug, n, root, args.seed)}
            if method == "twotower":
                base = row["train_s_per_epoch"]
            elif base:
                row["cost_vs_twotower"] = round(row["train_s_per_epoch"] / base, 2)
            rows.append(row)
            print(json.dumps(row), flush=True)
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_text(json.dumps({
                "benchmark": "feature-ssl", "lr": LR, "seed": args.seed, "threads": 1,
                "head_share": 0.1, "date": datetime.datetime.now(datetime.UTC).isoformat(),
                "machine": platform.platform(), "torch": torch.__version__,
                "note": "bounded epochs on a shared 2-core machine; seconds are noisy",
                "runs": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
