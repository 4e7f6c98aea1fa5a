"""Does BiGI's infomax term help ranking? An ablation on planted communities.

BiGI (Cao et al., WSDM 2021, Sec. 3.5, Eq. 10) trains ``(1 - lambda)`` times
an edge-reconstruction hinge loss plus ``lambda`` times a local-global
infomax loss. On the built-in synthetic data (users and items in planted
communities, :mod:`ssgraphrec.data.synthetic`), this script trains, for the
same number of epochs and with the same seed:

* BiGI with the paper's ``lambda = 0.3``;
* BiGI with ``lambda = 0`` (its encoder and MLP scorer, reconstruction only);
* LightGCN, and MostPop as the floor,

and records test Recall@20 / NDCG@20 with each run's per-epoch loss terms
(the infomax term's fall shows when the discriminator has won). Small
dimensions and a larger learning rate keep it to a minute on one thread.

Usage::

    python benchmarks/bigi_planted.py --threads 1

Results go to ``benchmarks/results/bigi-planted.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import sys
import tempfile
import warnings
from pathlib import Path

import torch

from . import REPO, write_result

warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta state")


def fit(name: str, data, epochs: int, seed: int, params: dict) -> dict:
    from ssgraphrec.methods import METHODS
    from ssgraphrec.train import Trainer

    cls = METHODS.get(name)
    cfg = dataclasses.replace(cls.config_class(), **params)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    method = cls(data, cfg, backend="torch", generator=gen)
    with tempfile.TemporaryDirectory() as out:
        res = Trainer(method, data, out, epochs=epochs, patience=0, generator=gen,
                      progress=False, log=lambda msg: None).fit()
        log = Path(out) / "metrics.jsonl"
        records = [json.loads(line) for line in log.open()] if log.exists() else []
    losses = [{k: round(v, 5) for k, v in r["loss"].items()} for r in records if "loss" in r]
    return {"recall@20": round(res["test"]["recall@20"], 4),
            "ndcg@20": round(res["test"]["ndcg@20"], 4), "epochs": epochs,
            "params": params, "loss_per_epoch": losses}


def main() -> None:
    from ssgraphrec.data import SyntheticConfig, build_dataset, make_synthetic

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path,
                    default=REPO / "benchmarks" / "results" / "bigi-planted.json")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    synth = SyntheticConfig(num_users=600, num_items=400, num_communities=6,
                            mean_interactions=25, social=False)
    data = build_dataset(make_synthetic(synth, seed=1), split="random", test_ratio=0.2,
                         val_ratio=0.1, seed=1)
    small = {"emb_dim": 32, "batch_size": 256, "lr": 5e-3}
    plan = {"mostpop": ("mostpop", 0, {}),
            "bigi (lambda 0.3)": ("bigi", args.epochs, small),
            "bigi (lambda 0)": ("bigi", args.epochs, {**small, "mim_weight": 0.0}),
            "lightgcn": ("lightgcn", args.epochs, {"lr": 5e-3, "batch_size": 256})}
    runs = {}
    for label, (name, epochs, params) in plan.items():
        runs[label] = fit(name, data, epochs, args.seed, params)
        print(label, json.dumps({k: runs[label][k] for k in ("recall@20", "ndcg@20")}),
              flush=True)
    result = {
        "benchmark": "bigi-planted",
        "command": "python benchmarks/bigi_planted.py " + " ".join(sys.argv[1:]),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "torch": torch.__version__,
                    "threads": torch.get_num_threads(), "cpus": os.cpu_count()},
        "data": {**dataclasses.asdict(synth), "split": "random 70/10/20, seed 1"},
        "seed": args.seed,
        "runs": runs,
    }
    write_result(args.out, result)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
