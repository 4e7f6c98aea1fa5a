"""GPT-GNN benchmark: pre-training + fine-tuning vs training from scratch on ml-100k.

Hu et al., "GPT-GNN: Generative Pre-Training of Graph Neural Networks", KDD
2020. One seed, the default random 80/20 split (10% of training rows for
validation), on CPU with bounded epochs:

1. ``pretrain``: GPT-GNN's attribute and edge generation on the
   user-item-attribute graph (``ssgraphrec pretrain``);
2. ``lightgcn-scratch`` vs ``lightgcn-init``: LightGCN from its own
   initialisation, and from the pre-trained user and item representations
   (``train --method lightgcn --init``), same epochs;
3. ``gptgnn-scratch`` vs ``gptgnn-finetune``: the HGT encoder trained with
   BPR from a random initialisation (``--scheme joint``), and fine-tuned from
   the pre-trained encoder (``--init``), same epochs.

Every run reports test Recall@20 / NDCG@20 overall and on the cold-start
slices (``--cold-threshold``: users, and items, with at most N training
interactions; every ml-100k user has at least 15 training interactions after
the split, so N must be at least 15 for the user slice to be non-empty), and
seconds per epoch of each phase. The HGT is smaller than the paper's (64
dimensions, 2 layers, batches of 1024 targets) to keep the whole script to a
quarter of an hour on one thread; the settings are written to the JSON.

Usage::

    SSGRAPHREC_DATA=../shared/data python benchmarks/gptgnn.py --threads 1

Results go to ``benchmarks/results/gptgnn-ml-100k.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

from ssgraphrec.config import RunConfig, apply
from ssgraphrec.train.run import pretrain, train

GPT = {"emb_dim": 64, "num_heads": 8, "num_layers": 2, "pretrain_batch_size": 1024}
#: BPR fine-tuning of the HGT: large batches and a larger step, so that a few epochs
#: (one full-graph pass per batch) do something; the same for scratch and fine-tuned.
GPT_FINETUNE = {"batch_size": 8192, "lr": 5e-3}


def _round(value: Any) -> Any:
    return round(value, 4) if isinstance(value, float) else value


def _summary(results: dict[str, Any]) -> dict[str, Any]:
    keys = ("recall@20", "ndcg@20")
    out: dict[str, Any] = {"test": {k: round(results["test"][k], 4) for k in keys},
                           "best_epoch": results.get("best_epoch"),
                           "epochs_trained": results.get("epochs_trained"),
                           "train_s_per_epoch": round(results["timing"]["train_s_per_epoch"], 2),
                           "test_eval_s": round(results["timing"]["test_eval_s"], 2)}
    for name, part in results.get("test_slices", {}).items():
        out[name] = {"size": part["size"],
                     **{k: round(part["metrics"][k], 4) for k in keys}}
    if "phases" in results:
        out["phases"] = {p: {k: _round(v) for k, v in ph.items() if k != "from"}
                         for p, ph in results["phases"].items()}
        if "from" in results["phases"].get("pretrain", {}):
            out["phases"]["pretrain"]["from"] = "the pretrain run above (--init)"
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=2020)
    parser.add_argument("--pretrain-epochs", type=int, default=4)
    parser.add_argument("--lightgcn-epochs", type=int, default=30)
    parser.add_argument("--gptgnn-epochs", type=int, default=5)
    parser.add_argument("--cold-threshold", type=int, default=20)
    parser.add_argument("--out", default="benchmarks/results/gptgnn-ml-100k.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    base = {"dataset": "ml-100k", "seed": args.seed, "threads": args.threads,
            "cold_threshold": args.cold_threshold, "device": "cpu"}
    report: dict[str, Any] = {
        "command": "python benchmarks/gptgnn.py " + " ".join(argv if argv is not None
                                                              else sys.argv[1:]),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"python": platform.python_version(), "torch": torch.__version__,
                    "threads": args.threads, "cpu": platform.processor() or platform.machine()},
        "settings": {"gptgnn": GPT, "gptgnn_finetune": GPT_FINETUNE, "pretrain_epochs": args.pretrain_epochs,
                     "lightgcn_epochs": args.lightgcn_epochs,
                     "gptgnn_epochs": args.gptgnn_epochs, **base},
        "runs": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        def log(msg: str) -> None:
            print(msg, file=sys.stderr, flush=True)

        pre_cfg = apply(RunConfig(), {**base, "method": "gptgnn",
                                      "pretrain_epochs": args.pretrain_epochs, "params": GPT})
        pre_dir, pre = pretrain(pre_cfg, f"{tmp}/pre", progress=False, log=log)
        report["runs"]["pretrain"] = {k: _round(v) for k, v in pre["phases"]["pretrain"].items()}
        cells = {
            "lightgcn-scratch": {"method": "lightgcn", "epochs": args.lightgcn_epochs},
            "lightgcn-init": {"method": "lightgcn", "epochs": args.lightgcn_epochs,
                              "init": str(pre_dir)},
            "gptgnn-scratch": {"method": "gptgnn", "epochs": args.gptgnn_epochs,
                               "scheme": "joint", "params": {**GPT, **GPT_FINETUNE}},
            "gptgnn-finetune": {"method": "gptgnn", "epochs": args.gptgnn_epochs,
                                "scheme": "joint", "init": str(pre_dir),
                                "params": {**GPT, **GPT_FINETUNE}},
        }
        for name, values in cells.items():
            log(f"== {name}")
            cfg = apply(RunConfig(), {**base, "patience": 100, **values})
            _, results = train(cfg, f"{tmp}/{name}", progress=False, log=log)
            report["runs"][name] = _summary(results)
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report["runs"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
