"""Full-ranking evaluation: the library's path against a plain one, timed in one process.

For each dataset and method, on the embeddings after ``--epochs`` training epochs
(or of the trained runs named by ``--runs``), this times a test evaluation of all
users (``Trainer.evaluate("test")``, the ``eval s`` column of
``ssgraphrec bench speed``) against the plain path it replaced, the paths
alternated repetition by repetition:

* **plain**: a fresh ``[B, I]`` product for every block, a float64 sum to check
  that the scores are finite, the excluded items set to ``-inf``, then
  ``torch.topk`` over all items;
* **unpruned**: the library's path before the norm bound, one reused block
  (:class:`ssgraphrec.eval.ranking.DotScores`), a float32 sum first, and the exact
  top-k of :func:`ssgraphrec.eval.topk.topk_rows` over every item;
* **library**: the same, but the top-k of :func:`ssgraphrec.eval.pruned.pruned_topk`,
  which scores each user against the items of largest norm only as far as the
  Cauchy-Schwarz bound requires.

It also times the block's parts (product, check, top-k), records how far the
users had to go down the norm-sorted catalogue (``prefix_share``, from each user's
final 20th score) and how many user-item scores the bound's slices computed
(``scored_share``, of users x items; the rows the plain path ranks again, for a tie
or a bound that prunes nothing, are not counted), and checks that the three paths
give the same metrics, which they must to the bit (same top-k lists).

Usage::

    SSGRAPHREC_DATA=../shared/data python benchmarks/evaluation.py \\
        --datasets lastfm-80-20,gowalla --methods lightgcn,xsimgcl --threads 1
    python benchmarks/evaluation.py --runs RUN_DIR[,RUN_DIR...]    # trained runs

Results go to ``benchmarks/results/evaluation.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import Tensor

from ssgraphrec.config import RunConfig
from ssgraphrec.eval import pruned
from ssgraphrec.eval.pruned import FIRST_PER_K, FIRST_SHARE, NormSortedItems
from ssgraphrec.eval.ranking import DotScores, evaluate_top_items, gather_rows
from ssgraphrec.eval.topk import topk_rows
from ssgraphrec.train.run import Run, build, load_run
from ssgraphrec.train.trainer import Trainer

from . import RESULTS, cpu_model, write_result


def plain_evaluation(trainer: Trainer) -> dict[str, float]:
    """The test metrics by the plain path (see the module docstring)."""
    store = trainer.task.store
    user_emb, item_emb = trainer.method.embeddings()
    user_emb, item_emb = user_emb.detach(), item_emb.detach()

    def top_items(users: Tensor, ex: list[tuple[Tensor, Tensor]], k: int) -> Tensor:
        scores = user_emb[users] @ item_emb.t()
        if not bool(torch.isfinite(scores.sum(dtype=torch.float64))):
            raise SystemExit("the plain path: the scores are not finite")
        for e, ptr in ex:
            rows, cols = gather_rows(e, ptr, users)
            scores[rows, cols] = -float("inf")
        return torch.topk(scores, k, dim=1).indices

    return evaluate_top_items(top_items, store.test_edge_index,
                              [store.edge_index, store.val_edge_index], user_emb.size(0),
                              item_emb.size(0), trainer.task.ks, trainer.task.eval_batch_size)


def seconds(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def parts(trainer: Trainer, reps: int) -> dict[str, float]:
    """Milliseconds per block of the product (fresh and reused), the two finiteness
    checks and the two top-k, on the first block of users."""
    user_emb, item_emb = (t.detach() for t in trainer.method.embeddings())
    users = torch.arange(min(trainer.task.eval_batch_size, user_emb.size(0)))
    queries = user_emb[users]
    block = torch.empty(users.numel(), item_emb.size(0))
    scores = queries @ item_emb.t()
    k = max(trainer.task.ks)
    timed = {
        "product_fresh": lambda: queries @ item_emb.t(),
        "product_reused": lambda: torch.mm(queries, item_emb.t(), out=block),
        "check_float64": lambda: torch.isfinite(scores.sum(dtype=torch.float64)),
        "check_float32": lambda: torch.isfinite(scores.sum()),
        "torch_topk": lambda: torch.topk(scores, k, dim=1),
        "topk_rows": lambda: topk_rows(scores, k),
    }
    times: dict[str, list[float]] = {name: [] for name in timed}
    for _ in range(reps):
        for name, fn in timed.items():
            times[name].append(seconds(fn))
    return {"users_per_block": users.numel(), "k": k,
            **{f"{name}_ms": round(statistics.median(t) * 1e3, 2) for name, t in times.items()}}


@contextmanager
def unpruned():
    """Evaluate without the norm bound (:attr:`DotScores.prune`)."""
    saved = DotScores.prune
    DotScores.prune = False
    try:
        yield
    finally:
        DotScores.prune = saved


def prefixes(trainer: Trainer) -> dict:
    """How many items of largest norm each test user's top-k needs, as a share of the
    catalogue (the bound of :class:`~ssgraphrec.eval.pruned.NormSortedItems`)."""
    store = trainer.task.store
    user_emb, item_emb = (t.detach() for t in trainer.method.embeddings())
    users = torch.unique(store.test_edge_index[0])
    k = max(trainer.task.ks)
    scores = user_emb[users] @ item_emb.t()
    for e in (store.edge_index, store.val_edge_index):
        mask = torch.isin(e[0], users)
        rows = torch.searchsorted(users, e[0, mask])
        scores[rows, e[1, mask]] = -float("inf")
    kth = torch.topk(scores, k, dim=1).values[:, -1]
    need = NormSortedItems(item_emb).needed(torch.linalg.vector_norm(user_emb[users].double(),
                                                                     dim=1), kth)
    share = need.double() / item_emb.size(0)
    first = max(item_emb.size(0) // FIRST_SHARE, FIRST_PER_K * (k + 1))
    return {"median": round(float(share.median()), 4),
            "p90": round(float(share.quantile(0.9)), 4), "mean": round(float(share.mean()), 4),
            "within_first_slice": round(float((need <= first).double().mean()), 4),
            "first_slice_items": first}


@contextmanager
def counting_scores(counter: list[int]):
    """Add to ``counter[0]`` the user-item scores each slice of the pruned path computes."""
    real = pruned.row_stable_mm

    def counted(queries: Tensor, items: Tensor, out: Tensor | None = None) -> Tensor:
        counter[0] += queries.size(0) * items.size(0)
        return real(queries, items, out)

    pruned.row_stable_mm = counted
    try:
        yield
    finally:
        pruned.row_stable_mm = real


def trained(dataset: str, method: str, epochs: int) -> tuple[Run, Trainer]:
    """``method`` on ``dataset`` (no validation split) after ``epochs`` epochs."""
    run = build(RunConfig(method=method, dataset=dataset, val_ratio=0.0, seed=2020))
    trainer = Trainer(run.method, run.data, Path(tempfile.mkdtemp()), epochs=epochs,
                      generator=run.generator, progress=False, log=lambda msg: None)
    for epoch in range(epochs):
        trainer.train_epoch(epoch)
    return run, trainer


def loaded(run_dir: str) -> tuple[Run, Trainer]:
    """A saved run's best checkpoint (:func:`ssgraphrec.train.run.load_run`)."""
    run = load_run(run_dir)
    return run, Trainer(run.method, run.data, Path(tempfile.mkdtemp()), epochs=1,
                        generator=run.generator, progress=False, log=lambda msg: None)


def measure(run: Run, trainer: Trainer, reps: int, source: dict) -> dict:
    """The study's entry for one model; ``source`` says where it came from (its training
    epochs here, or its run directory)."""
    run.method.eval()
    with torch.no_grad():
        library, plain = trainer.evaluate("test"), plain_evaluation(trainer)  # warm-up
        with unpruned():
            before = trainer.evaluate("test")
        same = library == plain == before
        scored = [0]
        with counting_scores(scored):
            trainer.evaluate("test")
        times: dict[str, list[float]] = {"plain": [], "unpruned": [], "library": []}
        for _ in range(reps):
            times["plain"].append(seconds(lambda: plain_evaluation(trainer)))
            with unpruned():
                times["unpruned"].append(seconds(lambda: trainer.evaluate("test")))
            times["library"].append(seconds(lambda: trainer.evaluate("test")))
        median = {name: statistics.median(t) for name, t in times.items()}
        users, items = library["users_evaluated"], int(run.data["item"].num_nodes)
        return {"method": run.cfg.method, "dataset": run.cfg.dataset, "users": users,
                "items": items, **source,
                "plain_s": round(median["plain"], 3), "unpruned_s": round(median["unpruned"], 3),
                "library_s": round(median["library"], 3),
                "speed_up": round(median["plain"] / median["library"], 2),
                "speed_up_over_unpruned": round(median["unpruned"] / median["library"], 2),
                **{f"{name}_s_all": [round(t, 3) for t in ts] for name, ts in times.items()},
                "identical_metrics": same, "recall@20": library["recall@20"],
                "scored_share": round(scored[0] / (users * items), 4),
                "prefix_share": prefixes(trainer), "block": parts(trainer, reps)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="lastfm-80-20,gowalla")
    parser.add_argument("--methods", default="lightgcn",
                        help="methods trained for --epochs on each dataset")
    parser.add_argument("--runs", default="",
                        help="trained run directories to evaluate instead (comma-separated)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=1,
                        help="training epochs before the evaluations (the bound prunes more "
                        "as LightGCN trains)")
    parser.add_argument("--out", default=str(RESULTS / "evaluation.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    out = {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
           "torch": torch.__version__, "cpu": cpu_model(), "threads": torch.get_num_threads(),
           "reps": args.reps, "growth": pruned.GROWTH, "cases": {}}
    if args.runs:
        cases = [(Path(d).name, lambda d=d: loaded(d), {"run": Path(d).name})
                 for d in args.runs.split(",")]
    else:
        out["epochs"] = args.epochs
        cases = [(f"{dataset}/{method}", lambda d=dataset, m=method: trained(d, m, args.epochs),
                  {"epochs": args.epochs})
                 for dataset in args.datasets.split(",") for method in args.methods.split(",")]
    for name, make, source in cases:
        out["cases"][name] = entry = measure(*make(), args.reps, source)
        print(name, json.dumps(entry), flush=True)
        if not entry["identical_metrics"]:
            raise SystemExit(f"{name}: the paths gave different metrics")
    write_result(Path(args.out), out)
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
