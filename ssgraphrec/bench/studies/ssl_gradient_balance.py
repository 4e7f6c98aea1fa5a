"""Why the contrastive term wrecks the first epochs: the gradients of BPR and of the SSL term.

For a graph SSL method (SimGCL by default) on a real dataset this measures, on
the same training batches, the norms of the gradients of ``bpr`` and of the
weighted ``ssl`` term over the embedding tables, their ratio, and the mean norm
of the final (propagated) user embeddings, at initialisation and after every
``--every`` Adam steps of the method's own training (``--steps`` in all). The
InfoNCE of cosine similarities has a gradient of order ``1 / (tau * |z|)`` in
the embedding ``z``, BPR one of order ``|z|``: with small embeddings the SSL
term decides the direction of every Adam step (docs/tuning.md).

Usage::

    SSGRAPHREC_DATA=../shared/data python benchmarks/ssl_gradient_balance.py \\
        --dataset lastfm-80-20 --set init_std=0.1 --out /tmp/balance.json

Results go to ``benchmarks/results/ssl-gradient-balance.json`` (``--out``); each call
adds one record (method, dataset, settings) to the file.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from pathlib import Path

import torch

from ssgraphrec.config import RunConfig, apply, parse_value
from ssgraphrec.data.sampler import bpr_batches
from ssgraphrec.data.schema import INTERACTS
from ssgraphrec.methods.base import BPRBatch
from ssgraphrec.train.run import build
from ssgraphrec.train.trainer import Trainer

from . import RESULTS


def grad_norm(loss: torch.Tensor, params: list[torch.nn.Parameter]) -> float:
    grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
    return math.sqrt(sum(float((g.to_dense() if g.is_sparse else g).pow(2).sum())
                         for g in grads if g is not None))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", default="simgcl")
    parser.add_argument("--dataset", default="lastfm-80-20")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--every", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=2020)
    parser.add_argument("--out", default=str(RESULTS / "ssl-gradient-balance.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    settings = {k: parse_value(v) for k, _, v in (s.partition("=") for s in args.set)}
    cfg = apply(RunConfig(method=args.method, dataset=args.dataset, seed=args.seed), dict(settings))
    run = build(cfg)
    method = run.method.train()
    trainer = Trainer(method, run.data, Path("/tmp"), epochs=1, generator=run.generator,
                      progress=False, ssl_warmup=cfg.ssl_warmup)
    tables = [p for p in method.parameters() if p.requires_grad]
    edges = run.data[INTERACTS].edge_index
    rows = []
    step = 0
    epoch = 0
    t0 = time.perf_counter()
    while step <= args.steps:
        method.on_epoch_start(epoch)
        for triple in bpr_batches(edges, trainer.task.sampler, method.cfg.batch_size, run.generator):
            batch = BPRBatch(*triple)
            terms = method.loss(batch)
            scale = trainer.ssl_scale() if cfg.ssl_warmup else 1.0
            ssl = sum(v for k, v in terms.items() if k in method.ssl_terms) * scale
            if step % args.every == 0:
                with torch.no_grad():
                    users, _ = method.embeddings()
                g_bpr, g_ssl = grad_norm(terms["bpr"], tables), grad_norm(ssl, tables)
                rows.append({"step": step, "bpr": round(float(terms["bpr"]), 5),
                             "ssl": round(float(ssl), 5), "grad_bpr": g_bpr, "grad_ssl": g_ssl,
                             "ratio_ssl_to_bpr": g_ssl / max(g_bpr, 1e-30),
                             "user_norm": float(users.norm(dim=1).mean())})
                print(f"step {step:4d} bpr {rows[-1]['bpr']:.4f} grad bpr {g_bpr:.3e} "
                      f"ssl {g_ssl:.3e} ratio {rows[-1]['ratio_ssl_to_bpr']:9.1f} "
                      f"|z_u| {rows[-1]['user_norm']:.4f}", flush=True)
            loss = sum(v for k, v in terms.items() if k not in method.ssl_terms) + ssl
            trainer.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            trainer.optimizer.step()
            trainer.step += 1
            step += 1
            if step > args.steps:
                break
        epoch += 1
    out = Path(args.out)
    doc = json.loads(out.read_text()) if out.is_file() else {"records": []}
    doc["records"].append({"method": args.method, "dataset": args.dataset, "settings": settings,
                           "seed": args.seed, "steps_per_epoch": -(-edges.size(1)
                                                                   // method.cfg.batch_size),
                           "rows": rows, "wall_s": round(time.perf_counter() - t0, 1),
                           "torch": torch.__version__, "python": platform.python_version(),
                           "written": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=1))


if __name__ == "__main__":
    main()
