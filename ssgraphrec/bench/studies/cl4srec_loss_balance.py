"""CL4SRec on a real sequence dataset: how the NT-Xent term weighs against the CE term.

Xie et al., "Contrastive Learning for Sequential Recommendation", ICDE 2022
(arXiv:2010.14395): the loss is :math:`\\mathcal{L}_{main} + \\lambda
\\mathcal{L}_{cl}` (Eq. 8). For each training feeding (``--set
train_on=sequences``: one sample per user, a target at every position; or
``prefixes``: RecBole's one sample per prefix) this trains CL4SRec with the
run's settings (paper defaults unless ``--set``) for ``--steps`` Adam steps and,
every ``--every`` steps, records on the current batch:

* ``ce`` and ``ssl_raw`` (the NT-Xent before :math:`\\lambda`), with
  ``ln(2N - 1)``, the NT-Xent of a batch whose representations are all equal;
* ``grad_ce`` and ``grad_ssl``: the norms of the gradients of ``ce`` and of
  :math:`\\lambda \\cdot` ``ssl_raw`` over all parameters, and their ratio;
* ``rep_norm``: the mean norm of the last-position outputs of the batch.

Usage::

    SSGRAPHREC_DATA=../shared/data python benchmarks/cl4srec_loss_balance.py --threads 1
    python benchmarks/cl4srec_loss_balance.py --set similarity=cos --out /tmp/cos.json

Results go to ``benchmarks/results/cl4srec-loss-balance.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from pathlib import Path

import torch

from ssgraphrec.config import RunConfig, parse_value
from ssgraphrec.train.run import build

from . import RESULTS


def grad_norm(loss: torch.Tensor, params: list[torch.nn.Parameter]) -> float:
    grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
    return math.sqrt(sum(float((g ** 2).sum()) for g in grads if g is not None))


def probe(feeding: str, args: argparse.Namespace) -> list[dict[str, float]]:
    """Train ``args.steps`` steps with ``train_on=feeding``; probe every ``args.every``."""
    params = {**args.params, "train_on": feeding}
    cfg = RunConfig(method="cl4srec", dataset=args.dataset, epochs=1, seed=args.seed,
                    threads=args.threads, data_root=args.data_root, params=params)
    run = build(cfg)
    method = run.method.train()
    weights = [p for p in method.parameters() if p.requires_grad]
    opt = torch.optim.Adam(weights, lr=method.cfg.lr)
    rows: list[dict[str, float]] = []
    step = 0
    while step <= args.steps:
        for batch in method.train_batches(run.generator):
            terms = method.loss(batch)
            if step % args.every == 0:
                inputs, _ = method.train_sequences(batch)
                n = int((inputs > 0).any(1).sum())
                g_ce, g_ssl = grad_norm(terms["ce"], weights), grad_norm(terms["ssl"], weights)
                with torch.no_grad():
                    rep = method.encoder.represent(inputs).norm(dim=1).mean()
                rows.append({"step": step, "ce": round(float(terms["ce"].detach()), 4),
                             "ssl_raw": round(float(terms["ssl"].detach()) / method.cfg.ssl_weight, 4),
                             "ln_2n_minus_1": round(math.log(2 * n - 1), 4),
                             "grad_ce": round(g_ce, 4), "grad_ssl": round(g_ssl, 4),
                             "grad_ratio": round(g_ssl / g_ce, 2),
                             "rep_norm": round(float(rep), 3)})
                print(feeding, rows[-1], flush=True)
            opt.zero_grad()
            sum(terms.values()).backward()
            opt.step()
            step += 1
            if step > args.steps:
                break
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="amazon-beauty")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--every", type=int, default=50)
    parser.add_argument("--seed", type=int, default=2020)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--feedings", default="sequences,prefixes")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--out", default=str(RESULTS / "cl4srec-loss-balance.json"))
    args = parser.parse_args()
    args.params = {}
    for item in args.set:
        key, _, value = item.partition("=")
        args.params[key] = parse_value(value)
    torch.set_num_threads(args.threads)
    t0 = time.time()
    out = {"dataset": args.dataset, "seed": args.seed, "steps": args.steps, "settings": args.params,
           "threads": args.threads, "python": platform.python_version(), "torch": torch.__version__,
           "feedings": {f: probe(f, args) for f in args.feedings.split(",")}}
    out["wall_s"] = round(time.time() - t0, 1)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
