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

from . import REPO, shared_data, write_result

SEED = 2020
KEYS = ("recall@20", "ndcg@20", "recall@10", "ndcg@10", "hit@20")

warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta state")




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

    values = {"method": method, "dataset": "lastfm", "seed": args.seed, "threads": args.threads,
              "device": "cpu", "cold_threshold": args.cold_threshold, "patience": 10,
              "data_root": str(root)}
    if args.simulate_cold:
        values.update(simulate_cold=args.simulate_cold, simulate_cold_share=args.simulate_share)
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
        "slices": {name: {"size": s["size"], "rule": s["rule"], "excluded": s["excluded"],
                          **{k: round(s["metrics"][k], 4) for k in KEYS}}
                   for name, s in results.get("test_slices", {}).items()},
        "cold_simulation": results.get("cold_simulation"),
        "best_epoch": results["best_epoch"],
        "epochs_trained": results["epochs_trained"],
        "phases": phase_seconds(run_dir),
        "total_s": round(results["timing"]["total_s"], 1),
    }


def evaluate_cold_mode(run_dir: Path, mode: str, cold_threshold: int) -> dict:
    """Test metrics, overall and on the slices, of a saved PT-GNN run under another cold_mode
    (the trainer's own evaluation: same masking, same slices, same simulated users)."""
    from ssgraphrec.eval.slices import evaluate_slices
    from ssgraphrec.train import Trainer
    from ssgraphrec.train.run import load_run

    run = load_run(run_dir, device="cpu")
    run.method.cfg.cold_mode = mode
    trainer = Trainer(run.method, run.data, run_dir, epochs=0, ks=[10, 20],
                      generator=run.generator, progress=False, cold_threshold=cold_threshold)
    slices = evaluate_slices(trainer.task.slices, lambda t: trainer.evaluate("test", t))
    return {"config": {"cold_mode": mode, "from": "the selected ptgnn model"},
            "test": {k: round(v, 4) for k, v in trainer.evaluate("test").items() if k in KEYS},
            "slices": {name: {"size": s["size"], **{k: round(s["metrics"][k], 4) for k in KEYS}}
                       for name, s in slices.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base", type=int, default=20, help="base-model (LightGCN) epochs")
    parser.add_argument("--recon", type=int, default=10, help="reconstruction epochs")
    parser.add_argument("--finetune", type=int, default=10, help="fine-tuning epochs")
    parser.add_argument("--cold-threshold", type=int, default=3)
    parser.add_argument("--simulate-cold", type=int, default=3,
                        help="K of PT-GNN's cold-start simulation (0: none)")
    parser.add_argument("--simulate-share", type=float, default=0.2,
                        help="share of the eligible test users cut down to K")
    parser.add_argument("--seed", type=int, default=SEED, help="split, model and sampling seed")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results"
                        / "ptgnn-lastfm.json")
    parser.add_argument("--runs", type=Path, default=None, help="keep the run directories here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    root = shared_data("ptgnn", "lastfm")
    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        runs = args.runs or Path(tmp)
        out = {name: run(name, args, root, runs) for name in ("lightgcn", "ptgnn")}
        out["ptgnn_add"] = evaluate_cold_mode(runs / "ptgnn", "add", args.cold_threshold)
    report = {
        "benchmark": "PT-GNN vs LightGCN on lastfm, overall and on cold-start slices",
        "command": "python benchmarks/ptgnn.py " + " ".join(sys.argv[1:]),
        "cold_threshold": args.cold_threshold,
        "protocol": ("PT-GNN's cold-start simulation (Hao et al., WSDM 2021, Sec. 5.1): "
                     f"{args.simulate_share} of the test users with more than "
                     f"{args.simulate_cold} training interactions keep {args.simulate_cold} "
                     "(seeded); their other training interactions leave the graph and are "
                     "masked at ranking; slice simulated_cold_users = their test interactions. "
                     "cold_users / cold_items leave out users / items with no training "
                     "interaction (counted in 'excluded')" if args.simulate_cold
                     else "no cold-start simulation"),
        "results": out,
        "environment": {
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "torch": torch.__version__, "torch_geometric": torch_geometric.__version__,
            "threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
            "platform": platform.platform(), "load_avg_start": load0,
            "load_avg_end": os.getloadavg()[0],
        },
    }
    write_result(args.out, report)
    print(f"{'':10s} {'slice':20s} " + " ".join(f"{k:>10s}" for k in KEYS))
    for name, res in out.items():
        rows = {"overall": res["test"], **res["slices"]}
        for slice_name, m in rows.items():
            print(f"{name:10s} {slice_name:20s} " + " ".join(f"{m[k]:10.4f}" for k in KEYS))
        if "phases" in res:
            print(f"{name:10s} phases: " + ", ".join(
                f"{k} {v['epochs']} x {v['s_per_epoch']} s" for k, v in res["phases"].items()))
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
