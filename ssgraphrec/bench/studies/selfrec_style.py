"""Our training against a SELFRec-style loop at equal settings: whole-process seconds, Recall@20.

The reference loop is written here from the structure the SELFRec library (Yu et
al., "Self-Supervised Learning for Recommender Systems: A Survey", TKDE 2023)
documents, not copied from it:

* data: ``user item weight`` triples read into Python dictionaries;
* batches: the training pairs shuffled with ``random.shuffle``, one uniform
  negative per pair drawn with ``random.choice`` and drawn again while the user
  has it (a Python loop);
* propagation: the symmetric-normalised adjacency built with scipy and used as a
  torch COO tensor, ``torch.sparse.mm`` per layer with autograd, the layer mean
  by ``torch.stack(...).mean``;
* losses: BPR as ``-log(1e-5 + sigmoid(pos - neg))``, L2 on the batch's ego
  embeddings; SGL-ED: two edge-dropped adjacencies rebuilt with scipy per epoch
  and InfoNCE over the batch's distinct users and items; SimGCL: noise from
  ``torch.rand_like`` per layer of two more propagations;
* evaluation: per test user, the scores of all items as a numpy array, the
  training items set to -1e8, the top 20 by a heap over every item
  (``heapq``), Recall@20 and NDCG@20 in Python.

Each configuration runs as a fresh process (imports, data, ``--epochs`` epochs,
one test evaluation), ours as ``ssgraphrec train`` with the same settings and
``--paper-defaults``; the two run one after the other, repetition by repetition.

Usage::

    SSGRAPHREC_DATA=../shared/data python benchmarks/selfrec_style.py --methods lightgcn,sgl,simgcl

Results go to ``benchmarks/results/selfrec-style.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import datetime
import heapq
import json
import math
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import RESULTS, cpu_model, shared_data, write_result

#: The settings both loops use, per method (ours: ``--paper-defaults`` plus these).
SETTINGS = {
    "lightgcn": {"num_layers": 3},
    "sgl": {"num_layers": 2, "drop_ratio": 0.1, "temperature": 0.2, "ssl_weight": 0.1},
    "simgcl": {"num_layers": 2, "eps": 0.1, "temperature": 0.2, "ssl_weight": 0.5},
}
COMMON = {"emb_dim": 64, "batch_size": 2048, "lr": 1e-3, "reg": 1e-4}


def read_triples(path: Path) -> list[tuple[str, str]]:
    with open(path) as f:
        return [tuple(line.split()[:2]) for line in f if line.strip()]


def normalized_adjacency(pairs, n_users, n_items):
    """``D^-1/2 A D^-1/2`` of the user-item graph as a torch COO tensor (scipy-built)."""
    import numpy as np
    import scipy.sparse as sp
    import torch

    rows = np.array([u for u, _ in pairs])
    cols = np.array([i for _, i in pairs]) + n_users
    n = n_users + n_items
    adj = sp.csr_matrix((np.ones(len(pairs), dtype=np.float32), (rows, cols)), shape=(n, n))
    adj = adj + adj.T
    degree = np.asarray(adj.sum(1)).ravel()
    inv = np.power(degree, -0.5, where=degree > 0, out=np.zeros_like(degree))
    norm = sp.diags(inv) @ adj @ sp.diags(inv)
    coo = norm.tocoo()
    index = torch.tensor(np.vstack([coo.row, coo.col]), dtype=torch.long)
    return torch.sparse_coo_tensor(index, torch.tensor(coo.data, dtype=torch.float32), (n, n))


def reference_run(method: str, epochs: int, seed: int) -> dict:
    """The SELFRec-style loop of ``method`` in this process; Recall@20 and NDCG@20."""
    import torch
    import torch.nn.functional as F

    random.seed(seed)
    torch.manual_seed(seed)
    settings = {**COMMON, **SETTINGS[method]}
    root = shared_data("selfrec_style", "lastfm/split-80-20") / "lastfm" / "split-80-20"
    train_raw, test_raw = read_triples(root / "train.txt"), read_triples(root / "test.txt")
    users = {u: k for k, u in enumerate(dict.fromkeys(u for u, _ in train_raw))}
    items = {i: k for k, i in enumerate(dict.fromkeys(i for _, i in train_raw))}
    pairs = [(users[u], items[i]) for u, i in train_raw]
    rated: dict[int, set[int]] = {}
    for u, i in pairs:
        rated.setdefault(u, set()).add(i)
    test: dict[int, set[int]] = {}
    for u, i in test_raw:
        if u in users and i in items:
            test.setdefault(users[u], set()).add(items[i])
    n_users, n_items = len(users), len(items)
    adj = normalized_adjacency(pairs, n_users, n_items)
    user_emb = torch.nn.Parameter(torch.nn.init.xavier_uniform_(torch.empty(n_users, 64)))
    item_emb = torch.nn.Parameter(torch.nn.init.xavier_uniform_(torch.empty(n_items, 64)))
    optimizer = torch.optim.Adam([user_emb, item_emb], lr=settings["lr"])
    layers, item_list = settings["num_layers"], list(range(n_items))

    def propagate(graph, noise: bool = False):
        ego = torch.cat([user_emb, item_emb], 0)
        out = [] if method == "simgcl" else [ego]
        for _ in range(layers):
            ego = torch.sparse.mm(graph, ego)
            if noise:
                ego = ego + torch.sign(ego) * F.normalize(torch.rand_like(ego), dim=-1) * settings["eps"]
            out.append(ego)
        mean = torch.stack(out, dim=1).mean(dim=1)
        return mean[:n_users], mean[n_users:]

    def dropped():
        keep = [p for p in pairs if random.random() >= settings["drop_ratio"]]
        return normalized_adjacency(keep, n_users, n_items)

    def info_nce(a, b):
        a, b = F.normalize(a, dim=1), F.normalize(b, dim=1)
        pos = (a * b).sum(1) / settings["temperature"]
        return (torch.logsumexp(a @ b.t() / settings["temperature"], 1) - pos).mean()

    epoch_s = []
    for _ in range(epochs):
        t0 = time.perf_counter()
        views = (dropped(), dropped()) if method == "sgl" else None
        random.shuffle(pairs)
        for start in range(0, len(pairs), settings["batch_size"]):
            batch = pairs[start:start + settings["batch_size"]]
            u_idx, i_idx, j_idx = [], [], []
            for u, i in batch:
                j = random.choice(item_list)
                while j in rated[u]:
                    j = random.choice(item_list)
                u_idx.append(u)
                i_idx.append(i)
                j_idx.append(j)
            users_all, items_all = propagate(adj)
            u_e, i_e, j_e = users_all[u_idx], items_all[i_idx], items_all[j_idx]
            pos, neg = (u_e * i_e).sum(1), (u_e * j_e).sum(1)
            loss = -torch.log(1e-5 + torch.sigmoid(pos - neg)).mean()
            ego = (user_emb[u_idx], item_emb[i_idx], item_emb[j_idx])
            loss = loss + settings["reg"] * sum(e.pow(2).sum() for e in ego) / (2 * len(batch))
            if method != "lightgcn":
                (u1, i1), (u2, i2) = ((propagate(v) for v in views) if method == "sgl"
                                      else (propagate(adj, True), propagate(adj, True)))
                uu = torch.unique(torch.tensor(u_idx))
                ii = torch.unique(torch.tensor(i_idx))
                loss = loss + settings["ssl_weight"] * (info_nce(u1[uu], u2[uu])
                                                        + info_nce(i1[ii], i2[ii]))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        epoch_s.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    with torch.no_grad():
        users_all, items_all = propagate(adj)
    recall, ndcg = [], []
    for u, truth in test.items():
        scores = (users_all[u] @ items_all.t()).numpy()
        for i in rated[u]:
            scores[i] = -1e8
        top = [i for _, i in heapq.nlargest(20, ((s, i) for i, s in enumerate(scores)))]
        hits = [1.0 if i in truth else 0.0 for i in top]
        recall.append(sum(hits) / len(truth))
        ideal = sum(1 / math.log2(r + 2) for r in range(min(len(truth), 20)))
        ndcg.append(sum(h / math.log2(r + 2) for r, h in enumerate(hits)) / ideal)
    return {"recall@20": sum(recall) / len(recall), "ndcg@20": sum(ndcg) / len(ndcg),
            "train_s_per_epoch": sum(epoch_s) / len(epoch_s),
            "test_eval_s": time.perf_counter() - t0}


def timed(command: list[str], env: dict) -> tuple[float, str]:
    t0 = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    return time.perf_counter() - t0, done.stdout


def ours_command(method: str, epochs: int, seed: int, out: Path) -> list[str]:
    command = [sys.executable, "-m", "ssgraphrec", "train", "--method", method,
               "--dataset", "lastfm-80-20", "--epochs", str(epochs), "--seed", str(seed),
               "--val-ratio", "0", "--paper-defaults", "--no-progress", "--out", str(out),
               "--batch-size", str(COMMON["batch_size"]), "--lr", str(COMMON["lr"])]
    for key, value in {**SETTINGS[method], "emb_dim": 64, "reg": COMMON["reg"]}.items():
        command += ["--set", f"{key}={value}"]
    return command


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", default="lightgcn,sgl,simgcl")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--reps", type=int, default=1)
    parser.add_argument("--seed", type=int, default=2020)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--reference", help=argparse.SUPPRESS)  # run one reference loop
    parser.add_argument("--out", default=str(RESULTS / "selfrec-style.json"))
    args = parser.parse_args()
    if args.reference:
        import torch

        torch.set_num_threads(args.threads)
        print(json.dumps(reference_run(args.reference, args.epochs, args.seed)))
        return
    shared_data("selfrec_style", "lastfm/split-80-20")
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads),
           "MKL_NUM_THREADS": str(args.threads)}
    rows = {}
    for method in args.methods.split(","):
        times: dict[str, list[float]] = {"ours": [], "reference": []}
        metrics: dict[str, dict] = {}
        for _ in range(args.reps):
            with tempfile.TemporaryDirectory() as tmp:
                out = Path(tmp) / "run"
                seconds, _ = timed(ours_command(method, args.epochs, args.seed, out)
                                   + ["--threads", str(args.threads)], env)
                times["ours"].append(seconds)
                results = json.loads((out / "results.json").read_text())
                metrics["ours"] = {**results["test"],
                                   "train_s_per_epoch": results["timing"]["train_s_per_epoch"],
                                   "test_eval_s": results["timing"]["test_eval_s"]}
            seconds, stdout = timed([sys.executable, "-m", "ssgraphrec.bench.studies.selfrec_style",
                                     "--reference", method, "--epochs", str(args.epochs),
                                     "--seed", str(args.seed), "--threads", str(args.threads)],
                                    env)
            times["reference"].append(seconds)
            metrics["reference"] = json.loads(stdout.strip().splitlines()[-1])
        ours, ref = statistics.median(times["ours"]), statistics.median(times["reference"])
        rows[method] = {
            "settings": {**COMMON, **SETTINGS[method]},
            "ours_s": round(ours, 1), "reference_s": round(ref, 1),
            "speedup": round(ref / ours, 2), "times_s": times,
            "ours_recall@20": round(metrics["ours"]["recall@20"], 4),
            "reference_recall@20": round(metrics["reference"]["recall@20"], 4),
            "ours_ndcg@20": round(metrics["ours"]["ndcg@20"], 4),
            "reference_ndcg@20": round(metrics["reference"]["ndcg@20"], 4),
            **{f"{who}_{key}": round(metrics[who][key], 3) for who in ("ours", "reference")
               for key in ("train_s_per_epoch", "test_eval_s")},
        }
        print(method, json.dumps({k: v for k, v in rows[method].items() if k != "times_s"}),
              flush=True)
    write_result(Path(args.out), {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": " ".join(["python", "benchmarks/selfrec_style.py", *sys.argv[1:]]),
        "cpu": cpu_model(), "threads": args.threads, "epochs": args.epochs,
        "dataset": "lastfm-80-20", "methods": rows,
    })
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
