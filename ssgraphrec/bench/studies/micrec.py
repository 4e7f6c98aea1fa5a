"""MicRec and its ablations against the two-tower base on Amazon Beauty (ranking view).

As the MicRec paper's Table 4 (Xie et al., arXiv:2207.01387, 2022): MicRec,
MicRec without the feature-, the semantic- or the session-level item CL, and
the two-tower model without any item CL, on ``amazon-beauty-ranking``
(leave-one-out by position: the last item of each user is the test item, the
second to last the validation item). Reported: HIT@50/100/200/500 and item
coverage@50/500 on test, at the epoch of best validation HIT@50.

1. ``quality``: each variant trained for ``--epochs`` epochs (seed 2020, one
   thread), through :func:`ssgraphrec.train.run.train`, as
   ``ssgraphrec train --method micrec --dataset amazon-beauty`` does.
2. ``speed``: CPU seconds (``time.process_time``, one thread, so that the
   figure does not depend on other load on the machine) of one training step
   (loss, backward, Adam) on ``--steps`` batches of the method's batch size,
   after one warm-up step; the SSL overhead is each variant's step time over
   the two-tower step time (the MicRec paper reports under 2x). Wall seconds
   per epoch of the quality runs are recorded too, but depend on the load.
3. ``retrieval``: the trained MicRec's test top-500 with exact batched top-k
   and with a faiss ``IndexFlatIP`` (when faiss is installed): whether the
   metrics are identical, and the seconds of each.

Usage::

    python benchmarks/micrec.py --threads 1                 # 10-30 min on a busy 2-core machine
    python benchmarks/micrec.py --threads 1 --epochs 1 --steps 3   # a quick check

Results go to ``benchmarks/results/micrec-beauty.json`` (``--out``).
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
from pathlib import Path

import torch

from . import REPO, shared_data, write_result

SEED = 2020
DATASET = "amazon-beauty-ranking"
KS = [50, 100, 200, 500]

#: (name, method, settings): the paper's Table 4 rows.
VARIANTS = [
    ("twotower", "twotower", {}),
    ("micrec", "micrec", {}),
    ("micrec w/o feature CL", "micrec", {"feature_cl": False}),
    ("micrec w/o semantic CL", "micrec", {"semantic_cl": False}),
    ("micrec w/o session CL", "micrec", {"session_cl": False}),
    # Sensitivity to the loss weights: all three item-CL weights at 0.1 instead of 1.
    ("micrec weights 0.1", "micrec", {"feature_weight": 0.1, "semantic_weight": 0.1,
                                      "session_weight": 0.1}),
]




def run_config(method: str, settings: dict, epochs: int, root: Path, threads: int,
               lr: float | None = None, patience: int | None = None):
    from ssgraphrec.config import RunConfig

    return RunConfig(method=method, dataset=DATASET, epochs=epochs, seed=SEED, device="cpu",
                     threads=threads, data_root=str(root), eval_ks=list(KS), monitor="hit@50",
                     patience=patience or epochs, lr=lr, params=dict(settings))


def quality(name: str, method: str, settings: dict, epochs: int, root: Path, threads: int,
            workdir: Path, lr: float | None = None,
            patience: int | None = None) -> tuple[dict, Path]:
    from ssgraphrec.train.run import train

    cfg = run_config(method, settings, epochs, root, threads, lr, patience)
    out = workdir / name.replace(" ", "_").replace("/", "")
    t0 = time.perf_counter()
    run_dir, res = train(cfg, str(out), progress=False, log=lambda msg: print("   ", msg, flush=True))
    test = res["test"]
    return {
        "test": {k: round(test[k], 5) for k in
                 [f"hit@{k}" for k in KS] + ["coverage@50", "coverage@500"]},
        "best_epoch": res["best_epoch"],
        "epochs_trained": res["epochs_trained"],
        "wall_s_per_epoch": round(res["timing"]["train_s_per_epoch"], 2),
        "wall_s_total": round(time.perf_counter() - t0, 1),
        "method_info": res.get("method_info", {}),
    }, run_dir


def step_seconds(method: str, settings: dict, root: Path, threads: int, steps: int) -> float:
    """Mean CPU seconds of one training step (after a warm-up step)."""
    from ssgraphrec.data.sampler import NegativeSampler, bpr_batches
    from ssgraphrec.data.schema import INTERACTS
    from ssgraphrec.methods.base import BPRBatch
    from ssgraphrec.train.run import build
    from ssgraphrec.train.trainer import adam

    run = build(run_config(method, settings, 1, root, threads))
    edges = run.data[INTERACTS].edge_index
    sampler = NegativeSampler(edges, int(run.data["item"].num_nodes))
    batches = bpr_batches(edges, sampler, run.method.cfg.batch_size, run.generator)
    opt = adam(list(run.method.parameters()), run.method.cfg.lr)   # the trainer's Adam
    run.method.train()
    times = []
    for i, triple in enumerate(batches):
        if i > steps:
            break
        t0 = time.process_time()
        loss = sum(run.method.loss(BPRBatch(*triple)).values())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i > 0:
            times.append(time.process_time() - t0)
    return sum(times) / len(times)


def retrieval_check(run_dir: Path) -> dict:
    from ssgraphrec.data.schema import INTERACTS, user_pointer
    from ssgraphrec.eval.retrieval import evaluate_retrieval, faiss_available, make_index, retrieve
    from ssgraphrec.train.run import load_run

    run = load_run(run_dir, device="cpu")
    store = run.data[INTERACTS]
    run.method.eval()
    users, items = run.method.embeddings()
    args = (users, items, store.test_edge_index, [store.edge_index, store.val_edge_index],
            users.size(0), items.size(0), KS)
    out = {}
    t0 = time.perf_counter()
    exact = evaluate_retrieval(*args, backend="exact")
    out["exact_s"] = round(time.perf_counter() - t0, 2)
    if faiss_available():
        t0 = time.perf_counter()
        flat = evaluate_retrieval(*args, backend="faiss")
        out["faiss_flat_ip_s"] = round(time.perf_counter() - t0, 2)
        out["identical_metrics"] = flat == exact
        # faiss sums the inner products in another order (float32 BLAS): items whose scores
        # differ in the last bits may swap places at a cut-off.
        out["max_abs_metric_diff"] = max(abs(flat[k] - exact[k]) for k in exact)
        ex = [(e, user_pointer(e, users.size(0))) for e in args[3]]
        exact_index, faiss_index = make_index(items, "exact"), make_index(items, "faiss")
        tops = [(retrieve(exact_index, users[ids], 500, ids, ex, items.size(0)),
                 retrieve(faiss_index, users[ids], 500, ids, ex, items.size(0)))
                for ids in torch.arange(users.size(0)).split(2048)]
        top_exact = torch.cat([a for a, _ in tops])
        top_faiss = torch.cat([b for _, b in tops])
        out["users_with_same_top500_list"] = float((top_exact == top_faiss).all(1).float().mean())
        out["users_with_same_top500_set"] = float(
            (top_exact.sort(1).values == top_faiss.sort(1).values).all(1).float().mean())
    else:
        out["faiss"] = "not installed"
    out["hit@500"] = round(exact["hit@500"], 5)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--lr", type=float, default=None,
                        help="learning rate of every variant (default: the method's, 1e-3)")
    parser.add_argument("--patience", type=int, default=None,
                        help="stop after this many epochs without a better validation HIT@50 "
                             "(default: never before --epochs)")
    parser.add_argument("--only", help="comma-separated variant names (default: all)")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "micrec-beauty.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    root = shared_data("micrec", "amazon-beauty")
    chosen = [v for v in VARIANTS if not args.only or v[0] in args.only.split(",")]
    result: dict = {
        "benchmark": "micrec vs twotower on amazon-beauty-ranking (MicRec paper, Table 4)",
        "command": " ".join([Path(sys.argv[0]).name] + sys.argv[1:]),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "threads": args.threads, "torch": torch.__version__,
                    "load_avg_at_start": os.getloadavg()[0]},
        "protocol": {"dataset": DATASET, "seed": SEED, "epochs": args.epochs,
                     "lr": args.lr or "method default", "patience": args.patience or args.epochs,
                     "selection": "best validation hit@50", "ks": KS,
                     "step_timing": f"CPU seconds per training step, mean of {args.steps} "
                                    "steps after one warm-up"},
        "variants": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        micrec_dir = None
        for name, method, settings in chosen:
            print(f"== {name}: speed", flush=True)
            step = step_seconds(method, settings, root, args.threads, args.steps)
            print(f"== {name}: {args.epochs} epochs", flush=True)
            entry, run_dir = quality(name, method, settings, args.epochs, root, args.threads,
                                     Path(tmp), args.lr, args.patience)
            entry["cpu_s_per_step"] = round(step, 3)
            result["variants"][name] = entry
            if name == "micrec":
                micrec_dir = run_dir
                result["retrieval"] = retrieval_check(micrec_dir)
            print(f"   {json.dumps(entry)}", flush=True)
            write(result, Path(args.out))  # after every variant: a partial run keeps its rows
    print(json.dumps(result, indent=2))


def write(result: dict, out: Path) -> None:
    base = result["variants"].get("twotower", {}).get("cpu_s_per_step")
    if base:
        for entry in result["variants"].values():
            entry["ssl_overhead_x"] = round(entry["cpu_s_per_step"] / base, 2)
    write_result(out, result)


if __name__ == "__main__":
    main()
