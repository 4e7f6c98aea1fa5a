"""Propagation kernels, epochs and evaluation against PyTorch COO, PyG and torch_sparse (CPU).

Three sections, all in one process so that every figure shares the same
machine state:

1. ``propagation``: 3-layer LightGCN propagation (mean of E0..E3) forward and
   backward of a fixed upstream gradient on ``gowalla``, for our CSR
   propagation, PyTorch COO ``torch.sparse.mm`` (as SELFRec), PyG ``LGConv``
   (as PyG's ``LightGCN``) and ``torch_sparse`` (when installed); outputs and
   gradients are checked against ours, and ours is compared with a
   memory-bandwidth bound measured in the same run.
2. ``epochs``: seconds per training epoch on ``lastfm-80-20`` of our LightGCN,
   our SGL (edge drop) and PyG's ``torch_geometric.nn.models.LightGCN`` fed the
   same BPR batches.
3. ``eval``: one full-ranking evaluation of all test users on ``gowalla`` and
   ``lastfm-80-20``.

Usage::

    python benchmarks/speed.py            # full run, a few minutes
    python benchmarks/speed.py --quick    # fewer repetitions

Results go to ``benchmarks/results/speed.json`` (``--out``); see
``benchmarks/README.md`` for what each number means.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
import torch_geometric
from torch import Tensor

from . import REPO, cpu_model, shared_data

NUM_LAYERS = 3
EMB_DIM = 64
SEED = 2020

# Targets the project set itself (see README.md in this folder).
TARGET_COO_OVER_OURS = 3.0
TARGET_PYG_OVER_OURS_EPOCH = 5.0
TARGET_SGL_OVER_LIGHTGCN = 3.0

warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta state")
warnings.filterwarnings("ignore", message="Sparse invariant checks are implicitly disabled")


# ---------------------------------------------------------------- helpers




def _loadavg() -> float | None:
    try:
        return float(Path("/proc/loadavg").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


class Stopwatch:
    """Wall-clock and process CPU seconds of a ``with`` block.

    With one thread the CPU time hardly depends on other processes competing
    for the cores, so it is the steadier figure on a busy machine; with
    several threads it adds up all threads (spin-waits included).
    """

    def __enter__(self) -> Stopwatch:
        self._wall, self._cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc) -> None:
        self.wall = time.perf_counter() - self._wall
        self.cpu = time.process_time() - self._cpu

    @property
    def sample(self) -> tuple[float, float]:
        return self.wall, self.cpu


Samples = list[tuple[float, float]]  # (wall s, cpu s) per repetition


def timed(fn: Callable[[], object], reps: int, warmup: int = 1) -> tuple[Samples, object]:
    """(wall, cpu) seconds of ``reps`` calls after ``warmup`` calls, and the first result."""
    first = None
    for k in range(warmup):
        res = fn()
        if k == 0:
            first = res
    samples: Samples = []
    for _ in range(reps):
        with Stopwatch() as sw:
            res = fn()
        samples.append(sw.sample)
        if first is None:
            first = res
        del res
    return samples, first


def summary_ms(samples: Samples) -> dict:
    wall, cpu = [w for w, _ in samples], [c for _, c in samples]
    return {"median_ms": round(1e3 * statistics.median(wall), 2),
            "min_ms": round(1e3 * min(wall), 2),
            "cpu_median_ms": round(1e3 * statistics.median(cpu), 2),
            "times_ms": [round(1e3 * t, 2) for t in wall],
            "cpu_times_ms": [round(1e3 * t, 2) for t in cpu]}


def summary_s(samples: Samples) -> dict:
    wall, cpu = [w for w, _ in samples], [c for _, c in samples]
    return {"median_s": round(statistics.median(wall), 4), "min_s": round(min(wall), 4),
            "cpu_median_s": round(statistics.median(cpu), 4),
            "times_s": [round(t, 4) for t in wall], "cpu_times_s": [round(t, 4) for t in cpu]}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- bandwidth
def measure_bandwidth(num_bytes: int, reps: int) -> dict:
    """STREAM-style copy (``y = x``) and triad (``a = b + s*c``) bandwidth, in GB/s.

    Bytes counted as STREAM does: copy moves 2 arrays, triad 3 (write-allocate
    traffic not counted). The best of ``reps`` runs is reported.
    """
    n = num_bytes // 4
    a, b, c = torch.empty(n), torch.ones(n), torch.full((n,), 2.0)
    a.zero_()  # first touch outside the timing
    copy_t, triad_t = [], []
    for _ in range(reps + 1):
        t0 = time.perf_counter()
        a.copy_(b)
        copy_t.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        torch.add(b, c, alpha=3.0, out=a)
        triad_t.append(time.perf_counter() - t0)
    copy_t, triad_t = copy_t[1:], triad_t[1:]
    del a, b, c
    copy_gbs = 2 * n * 4 / min(copy_t) / 1e9
    triad_gbs = 3 * n * 4 / min(triad_t) / 1e9
    return {"array_mib": num_bytes // 2**20, "copy_GBps": round(copy_gbs, 2),
            "triad_GBps": round(triad_gbs, 2), "best_GBps": round(max(copy_gbs, triad_gbs), 2),
            "copy_median_GBps": round(2 * n * 4 / statistics.median(copy_t) / 1e9, 2),
            "triad_median_GBps": round(3 * n * 4 / statistics.median(triad_t) / 1e9, 2)}


def byte_model(num_nodes: int, nnz: int, dim: int, index_bytes: int, products: int = 6) -> dict:
    """Bytes the ``products`` CSR SpMMs ``Y = A X`` must move (fp32 values and features).

    ``gather``: CSR row pointers + column indices + values, plus one gathered
    d-dim row of X per non-zero (no cache reuse), plus writing Y once.
    ``compulsory``: the same, but every row of X read only once (perfect cache
    reuse): the lowest traffic possible.
    """
    index = (num_nodes + 1) * index_bytes + nnz * index_bytes + nnz * 4
    gathered = nnz * dim * 4
    once = num_nodes * dim * 4
    written = num_nodes * dim * 4
    per_gather = index + gathered + written
    per_once = index + once + written
    return {
        "products": products,
        "description": (f"per SpMM: (N+1)*{index_bytes} B row pointers + nnz*{index_bytes} B "
                        "column indices + nnz*4 B values + nnz*d*4 B gathered rows of X "
                        "+ N*d*4 B written rows of Y; x6 products (3 forward, 3 backward); "
                        "layer-mean adds and autograd bookkeeping not counted"),
        "index_bytes_per_product": index,
        "gather_bytes_per_product": per_gather,
        "compulsory_bytes_per_product": per_once,
        "gather_bytes_total": products * per_gather,
        "compulsory_bytes_total": products * per_once,
    }


# ---------------------------------------------------------------- propagation
def lightgcn_mean(step: Callable[[Tensor], Tensor], x: Tensor, layers: int) -> Tensor:
    """Mean of E0..EK with E(k+1) = step(E(k)), summed as LightGCNEncoder does."""
    h, total = x, x
    for _ in range(layers):
        h = step(h)
        total = total + h
    return total / (layers + 1)


class _WholeMean:
    """A variant that computes the whole layer mean itself (not one step per layer)."""

    def __init__(self, mean: Callable[[Tensor], Tensor]):
        self.mean = mean


def bench_propagation(data, reps: int, slow_reps: int, bw: dict) -> dict:
    from torch_geometric.nn import LGConv

    from ssgraphrec.data.schema import INTERACTS, num_items, num_users
    from ssgraphrec.sparse import BipartiteGraph, has_torch_sparse, propagate, propagate_mean
    from ssgraphrec.sparse.blocks import block_bytes

    U, I = num_users(data), num_items(data)
    N = U + I
    t0 = time.perf_counter()
    graph = BipartiteGraph(data[INTERACTS].edge_index, U, I)
    t_graph = time.perf_counter() - t0
    t0 = time.perf_counter()
    adj = graph.normalized_adjacency(backend="torch")
    t_adj = time.perf_counter() - t0
    nnz = adj.nnz
    log(f"[prop] gowalla: {N} nodes, {nnz} non-zeros, d={EMB_DIM}")

    gen = torch.Generator().manual_seed(SEED)
    bound = 6.0 ** 0.5 / (N + EMB_DIM) ** 0.5  # Xavier-uniform scale, as the encoder
    x0 = (torch.rand(N, EMB_DIM, generator=gen) * 2 - 1) * bound
    upstream = torch.randn(N, EMB_DIM, generator=gen)

    row = torch.repeat_interleave(torch.arange(N), adj.crow.diff())
    edge_index = torch.stack([row, adj.col])  # CSR order; A is symmetric

    def fwd_bwd(step: Callable[[Tensor], Tensor]) -> Callable[[], tuple[Tensor, Tensor]]:
        """A layer step, or (wrapped in :class:`_WholeMean`) the whole layer mean."""
        def fn():
            x = x0.detach().requires_grad_()
            out = step.mean(x) if isinstance(step, _WholeMean) else lightgcn_mean(step, x, NUM_LAYERS)
            out.backward(upstream)
            return out.detach(), x.grad

        return fn

    variants: list[tuple[str, str, Callable[[], Callable], int]] = []

    # (a) ours: the layer mean in one autograd node (what LightGCNEncoder runs)
    variants.append(("ours", "ssgraphrec: BipartiteGraph.normalized_adjacency + "
                     "sparse.propagate_mean (torch CSR, the layer mean in one autograd node, "
                     "Horner's rule backward)",
                     lambda: _WholeMean(lambda h: propagate_mean(adj, h, NUM_LAYERS)), reps))
    def whole_columns(h):
        with block_bytes(0):
            return propagate_mean(adj, h, NUM_LAYERS)

    variants.append(("ours_whole_columns", "ssgraphrec: sparse.propagate_mean with every "
                     "product over all 64 columns at once (SSGRAPHREC_SPMM_BLOCK_BYTES=0; "
                     "before column blocks)", lambda: _WholeMean(whole_columns), reps))
    variants.append(("ours_layer_by_layer", "ssgraphrec: sparse.propagate per layer, "
                     "autograd sums the layers (before propagate_mean)",
                     lambda: (lambda h: propagate(adj, h)), reps))

    # (b) PyTorch COO with autograd (SELFRec)
    def make_coo():
        coo = torch.sparse_coo_tensor(edge_index, adj.value, (N, N)).coalesce()
        return lambda h: torch.sparse.mm(coo, h)

    variants.append(("torch_coo", "PyTorch COO torch.sparse.mm with autograd (SELFRec)",
                     make_coo, reps))

    # PyTorch CSR with PyTorch's own autograd (what our autograd.Function replaces)
    def make_csr_autograd():
        csr = torch.sparse_csr_tensor(adj.crow, adj.col, adj.value, (N, N))
        return lambda h: torch.sparse.mm(csr, h)

    variants.append(("torch_csr_autograd", "PyTorch CSR torch.sparse.mm with PyTorch autograd "
                     "(backward builds A^T each call)", make_csr_autograd, slow_reps))

    # (c) PyG LGConv: its own gcn_norm every layer (as PyG's LightGCN), and our weights
    def make_lgconv():
        conv = LGConv()
        return lambda h: conv(h, edge_index)

    def make_lgconv_w():
        conv = LGConv(normalize=False)
        return lambda h: conv(h, edge_index, adj.value)

    variants.append(("pyg_lgconv", "PyG LGConv(normalize=True): gcn_norm + gather/scatter per "
                     "layer (PyG LightGCN)", make_lgconv, slow_reps))
    variants.append(("pyg_lgconv_weights", "PyG LGConv(normalize=False) with our normalized "
                     "edge weights", make_lgconv_w, slow_reps))

    # (d) torch_sparse backend of ours
    if has_torch_sparse():
        def make_ts():
            adj_ts = graph.normalized_adjacency(backend="torch_sparse")
            return lambda h: propagate(adj_ts, h)

        variants.append(("torch_sparse", "ssgraphrec propagate on the torch_sparse backend "
                         "(SparseTensor)", make_ts, reps))

    # Build every variant, warm it up (its first call gives the outputs checked
    # against ours), then time them round-robin, so that drifting load on a
    # shared machine hits all of them alike.
    fns: dict[str, Callable[[], tuple[Tensor, Tensor]]] = {}
    results: dict = {}
    ref_out = ref_grad = None
    for name, desc, make, n_reps in variants:
        gc.collect()
        t0 = time.perf_counter()
        step = make()
        setup = time.perf_counter() - t0
        fn = fwd_bwd(step)
        t0 = time.perf_counter()
        out, grad = fn()
        first = time.perf_counter() - t0
        if ref_out is None:
            ref_out, ref_grad = out, grad
        d_out = float((out - ref_out).abs().max())
        d_grad = float((grad - ref_grad).abs().max())
        fns[name] = fn
        results[name] = {
            "description": desc, "setup_ms": round(1e3 * setup, 2),
            "first_call_ms": round(1e3 * first, 2), "reps": n_reps,
            "max_abs_diff_out": d_out, "max_abs_diff_grad": d_grad,
            "allclose": bool(torch.allclose(out, ref_out, rtol=1e-4, atol=1e-6)
                             and torch.allclose(grad, ref_grad, rtol=1e-4, atol=1e-5)),
        }
        log(f"[prop] {name:20s} built, first call {1e3 * first:8.1f} ms "
            f"(max diff out {d_out:.1e}, grad {d_grad:.1e})")
        del out, grad
    times: dict[str, Samples] = {name: [] for name in fns}
    for r in range(max(v[3] for v in variants)):
        for name, _, _, n_reps in variants:
            if r >= n_reps:
                continue
            with Stopwatch() as sw:
                fns[name]()
            times[name].append(sw.sample)
    for name in fns:
        results[name].update(summary_ms(times[name]))
        log(f"[prop] {name:20s} {results[name]['median_ms']:9.1f} ms median of "
            f"{len(times[name])}")
    del fns
    if not has_torch_sparse():
        results["torch_sparse"] = {"skipped": "torch_sparse is not installed"}

    ours = results["ours"]["median_ms"]
    ours_cpu = results["ours"]["cpu_median_ms"]
    for entry in results.values():
        if "median_ms" in entry:
            entry["ratio_over_ours"] = round(entry["median_ms"] / ours, 2)
            entry["cpu_ratio_over_ours"] = round(entry["cpu_median_ms"] / ours_cpu, 2)

    # Kernel only: the 6 raw SpMMs, without autograd or layer means.
    x = x0.clone()
    kern_times, _ = timed(lambda: [adj.matmul(x) for _ in range(6)], reps)
    kernel_only = {"description": "6 x Adjacency.matmul (no autograd, no layer mean)",
                   "ours": summary_ms(kern_times)}

    model = byte_model(N, nnz, EMB_DIM, adj.col.element_size())
    best = bw["best_GBps"] * 1e9
    bound_ms = 1e3 * model["gather_bytes_total"] / best
    bound_once_ms = 1e3 * model["compulsory_bytes_total"] / best
    kern = kernel_only["ours"]["median_ms"]
    bound = {
        **model,
        "bandwidth_GBps": bw["best_GBps"],
        "bound_ms": round(bound_ms, 2),
        "compulsory_bound_ms": round(bound_once_ms, 2),
        "ours_over_bound": round(ours / bound_ms, 2),
        "ours_cpu_over_bound": round(ours_cpu / bound_ms, 2),
        "ours_kernel_over_bound": round(kern / bound_ms, 2),
        "ours_over_compulsory_bound": round(ours / bound_once_ms, 2),
    }
    return {
        "dataset": "gowalla", "num_nodes": N, "num_users": U, "num_items": I, "nnz": nnz,
        "dim": EMB_DIM, "layers": NUM_LAYERS, "reps": reps, "slow_reps": slow_reps,
        "graph_build_ms": round(1e3 * t_graph, 2), "adjacency_build_ms": round(1e3 * t_adj, 2),
        "variants": results,
        "ratio_coo_over_ours": round(results["torch_coo"]["median_ms"] / ours, 2),
        "cpu_ratio_coo_over_ours": results["torch_coo"]["cpu_ratio_over_ours"],
        "target_coo_over_ours": TARGET_COO_OVER_OURS,
        "target_met": results["torch_coo"]["median_ms"] / ours >= TARGET_COO_OVER_OURS,
        "kernel_only": kernel_only,
        "bandwidth_bound": bound,
    }


# ---------------------------------------------------------------- epochs
def _pyg_lightgcn_epoch_fn(data, batch_size: int, lr: float):
    from torch_geometric.nn.models import LightGCN as PyGLightGCN

    from ssgraphrec.data.sampler import NegativeSampler, bpr_batches
    from ssgraphrec.data.schema import INTERACTS, num_items, num_users

    U, I = num_users(data), num_items(data)
    train = data[INTERACTS].edge_index
    u, i = train[0], train[1] + U
    edge_index = torch.stack([torch.cat([u, i]), torch.cat([i, u])])
    torch.manual_seed(SEED)
    model = PyGLightGCN(U + I, EMB_DIM, NUM_LAYERS)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sampler = NegativeSampler(train, I)
    gen = torch.Generator().manual_seed(SEED)

    def epoch() -> float:
        model.train()
        total, n = 0.0, 0
        for users, pos, neg in bpr_batches(train, sampler, batch_size, gen):
            label_index = torch.stack([torch.cat([users, users]), torch.cat([pos, neg]) + U])
            pos_rank, neg_rank = model(edge_index, label_index).chunk(2)
            loss = model.recommendation_loss(pos_rank, neg_rank, node_id=label_index.unique(),
                                             lambda_reg=1e-4)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach())
            n += 1
        return total / n

    return epoch


def bench_epochs(root: Path, epochs: int, run_dir: Path) -> tuple[dict, dict]:
    """Seconds per epoch; all methods are built first, then trained round-robin
    (one epoch each in turn) so that drifting load hits them alike."""
    from ssgraphrec.config import RunConfig
    from ssgraphrec.data.sampler import num_batches
    from ssgraphrec.data.schema import INTERACTS
    from ssgraphrec.train.run import build
    from ssgraphrec.train.trainer import Trainer

    common = dict(dataset="lastfm-80-20", data_root=str(root), val_ratio=0.0, batch_size=2048,
                  lr=1e-3, device="cpu", seed=SEED, epochs=epochs + 1)
    configs = {
        "ours_lightgcn": RunConfig(method="lightgcn", params={"num_layers": 3}, **common),
        "ours_sgl_ed": RunConfig(method="sgl", aug="edge_drop", params={"num_layers": 2},
                                 **common),
    }
    trainers: dict = {}
    jobs: dict = {}
    data = None
    for name, cfg in configs.items():
        run = build(cfg)
        data = run.data
        trainer = Trainer(run.method, run.data, run_dir, epochs=cfg.epochs,
                          generator=run.generator, progress=False)
        trainers[name] = trainer
        mcfg = run.method.cfg
        desc = (f"{cfg.method} ({mcfg.num_layers} layers, batch {mcfg.batch_size}, lr {mcfg.lr}, "
                f"backend {run.method.backend}) via Trainer.train_epoch")
        jobs[name] = (desc, trainer.train_epoch)
    if epochs == 0:  # eval only: the trainers are all that is wanted
        return {}, trainers

    pyg_epoch = _pyg_lightgcn_epoch_fn(data, 2048, 1e-3)
    jobs["pyg_lightgcn"] = ("torch_geometric.nn.models.LightGCN (3 layers, 64 dims, LGConv with "
                            "gcn_norm per layer), same BPR batches, Adam lr 1e-3, "
                            "recommendation_loss(lambda_reg=1e-4)", lambda ep: pyg_epoch())
    times: dict[str, Samples] = {name: [] for name in jobs}
    losses: dict = {}
    for ep in range(epochs + 1):
        for name, (_, epoch_fn) in jobs.items():
            with Stopwatch() as sw:
                losses[name] = epoch_fn(ep)
            times[name].append(sw.sample)
            log(f"[epoch] {name:24s} epoch {ep} {sw.wall:7.3f} s (cpu {sw.cpu:7.3f} s)")
    out: dict = {}
    for name, (desc, _) in jobs.items():
        loss = losses[name]
        out[name] = {"description": desc, "warmup_s": round(times[name][0][0], 3),
                     **summary_s(times[name][1:]),
                     "last_loss": ({k: round(v, 5) for k, v in loss.items()}
                                   if isinstance(loss, dict) else round(loss, 5))}

    train = data[INTERACTS].edge_index
    lg = out["ours_lightgcn"]["median_s"]
    pyg_ratio = out["pyg_lightgcn"]["median_s"] / lg
    sgl_ratio = out["ours_sgl_ed"]["median_s"] / lg
    def cpu_ratio(a: str, b: str) -> float:
        return round(out[a]["cpu_median_s"] / out[b]["cpu_median_s"], 2)

    result = {
        "dataset": "lastfm-80-20", "train_edges": int(train.size(1)),
        "batches_per_epoch": num_batches(train.size(1), 2048), "epochs_timed": epochs,
        "methods": out,
        "ratio_pyg_over_ours_lightgcn": round(pyg_ratio, 2),
        "cpu_ratio_pyg_over_ours_lightgcn": cpu_ratio("pyg_lightgcn", "ours_lightgcn"),
        "cpu_ratio_sgl_over_lightgcn": cpu_ratio("ours_sgl_ed", "ours_lightgcn"),
        "target_pyg_over_ours_lightgcn": TARGET_PYG_OVER_OURS_EPOCH,
        "target_pyg_met": pyg_ratio >= TARGET_PYG_OVER_OURS_EPOCH,
        "ratio_sgl_over_lightgcn": round(sgl_ratio, 2),
        "target_sgl_over_lightgcn": TARGET_SGL_OVER_LIGHTGCN,
        "target_sgl_met": sgl_ratio <= TARGET_SGL_OVER_LIGHTGCN,
    }
    return result, trainers


# ---------------------------------------------------------------- evaluation
def bench_eval(trainer, name: str, reps: int) -> dict:
    from ssgraphrec.data.schema import INTERACTS

    with torch.no_grad():
        emb_times, _ = timed(lambda: trainer.method.embeddings(), reps, warmup=0)
    times, metrics = timed(lambda: trainer.evaluate("test"), reps, warmup=0)
    store = trainer.data[INTERACTS]
    res = {"dataset": name, "users_evaluated": metrics["users_evaluated"],
           "num_items": int(trainer.method.num_items),
           "test_pairs": int(store.test_edge_index.size(1)),
           "embeddings_s": round(statistics.median(w for w, _ in emb_times), 4),
           **summary_s(times),
           "recall@20": round(metrics["recall@20"], 5), "ndcg@20": round(metrics["ndcg@20"], 5)}
    log(f"[eval] {name:14s} {res['median_s']:7.3f} s (embeddings {res['embeddings_s']:.3f} s)")
    return res


# ---------------------------------------------------------------- report
def print_table(res: dict) -> None:
    env = res["environment"]
    print(f"\nssgraphrec speed benchmark  {env['date']}")
    print(f"torch {env['torch']}, torch_geometric {env['torch_geometric']}, "
          f"{env['num_threads']} threads, {env['cpu_model']} ({env['cpu_count']} CPUs), "
          f"load average {env['loadavg_1min_start']} -> {env.get('loadavg_1min_end')}")
    if "bandwidth" in res:
        bw = res["bandwidth"]
        print(f"memory bandwidth ({bw['array_mib']} MiB arrays): copy {bw['copy_GBps']} GB/s, "
              f"triad {bw['triad_GBps']} GB/s")
    if "propagation" in res:
        p = res["propagation"]
        print(f"\n1. Propagation, {p['dataset']} ({p['num_nodes']} nodes, {p['nnz']} nnz, "
              f"d={p['dim']}), {p['layers']} layers forward + backward")
        print(f"   {'variant':20s} {'median ms':>10s} {'min ms':>9s} {'x ours':>7s} "
              f"{'cpu ms':>9s} {'x ours':>7s} {'max|dOut|':>10s} {'max|dGrad|':>10s}  ok")
        for name, e in p["variants"].items():
            if "skipped" in e:
                print(f"   {name:20s} skipped: {e['skipped']}")
                continue
            print(f"   {name:20s} {e['median_ms']:10.1f} {e['min_ms']:9.1f} "
                  f"{e['ratio_over_ours']:7.2f} {e['cpu_median_ms']:9.1f} "
                  f"{e['cpu_ratio_over_ours']:7.2f} {e['max_abs_diff_out']:10.1e} "
                  f"{e['max_abs_diff_grad']:10.1e}  {'yes' if e['allclose'] else 'NO'}")
        print(f"   COO / ours = {p['ratio_coo_over_ours']:.2f} wall, "
              f"{p['cpu_ratio_coo_over_ours']:.2f} cpu  (target >= "
              f"{p['target_coo_over_ours']:.0f}: {'met' if p['target_met'] else 'NOT met'})")
        k = p["kernel_only"]
        print(f"   kernel only (6 SpMMs): ours {k['ours']['median_ms']:.1f} ms")
        b = p["bandwidth_bound"]
        print(f"   byte model: {b['description']}")
        print(f"   = {b['gather_bytes_total'] / 1e6:.0f} MB -> bound {b['bound_ms']:.1f} ms at "
              f"{b['bandwidth_GBps']} GB/s; ours / bound = {b['ours_over_bound']:.2f} "
              f"(kernel only {b['ours_kernel_over_bound']:.2f})")
        print(f"   compulsory traffic (each row of X read once) "
              f"{b['compulsory_bytes_total'] / 1e6:.0f} MB -> {b['compulsory_bound_ms']:.1f} ms; "
              f"ours / that = {b['ours_over_compulsory_bound']:.1f}")
    if "epochs" in res:
        e = res["epochs"]
        print(f"\n2. Training epoch, {e['dataset']} ({e['train_edges']} pairs, "
              f"{e['batches_per_epoch']} batches of 2048), median of {e['epochs_timed']} "
              "after 1 warm-up")
        print(f"   {'method':24s} {'s/epoch':>8s} {'cpu s':>8s} {'warm-up s':>10s}")
        for name, m in e["methods"].items():
            print(f"   {name:24s} {m['median_s']:8.3f} {m['cpu_median_s']:8.3f} "
                  f"{m['warmup_s']:10.3f}")
        print(f"   PyG / ours LightGCN = {e['ratio_pyg_over_ours_lightgcn']:.2f} wall, "
              f"{e['cpu_ratio_pyg_over_ours_lightgcn']:.2f} cpu  (target >= "
              f"{e['target_pyg_over_ours_lightgcn']:.0f}: "
              f"{'met' if e['target_pyg_met'] else 'NOT met'})")
        print(f"   ours SGL / ours LightGCN = {e['ratio_sgl_over_lightgcn']:.2f} wall, "
              f"{e['cpu_ratio_sgl_over_lightgcn']:.2f} cpu  (target <= "
              f"{e['target_sgl_over_lightgcn']:.0f}: "
              f"{'met' if e['target_sgl_met'] else 'NOT met'})")
    if "eval" in res:
        print("\n3. Full-ranking evaluation of all test users (Trainer.evaluate('test'))")
        for r in res["eval"].values():
            print(f"   {r['dataset']:14s} {r['median_s']:8.3f} s (cpu {r['cpu_median_s']:.3f} s; "
                  f"{r['users_evaluated']} users x "
                  f"{r['num_items']} items; embeddings {r['embeddings_s']:.3f} s of it)")
    print()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "speed.json"),
                        help="where the JSON results go (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch.set_num_threads (default: torch's own choice); on a busy "
                        "shared machine 1 thread is far less noisy than several")
    parser.add_argument("--only", default="propagation,epochs,eval",
                        help="comma-separated sections to run (default: %(default)s)")
    args = parser.parse_args(argv)
    sections = {s.strip() for s in args.only.split(",") if s.strip()}
    unknown = sections - {"propagation", "epochs", "eval"}
    if unknown:
        parser.error(f"unknown sections: {', '.join(sorted(unknown))}")

    root = shared_data("kernels", "gowalla", "lastfm/split-80-20")
    if args.threads is not None:
        if args.threads < 1:
            parser.error("--threads must be >= 1")
        torch.set_num_threads(args.threads)
    load_start = _loadavg()
    if load_start is not None and load_start > (os.cpu_count() or 1):
        log(f"warning: load average {load_start:.1f} exceeds the {os.cpu_count()} CPUs; "
            "other processes compete for the cores and timings will be noisy"
            + ("" if torch.get_num_threads() == 1 else " (--threads 1 suffers least)"))
    from ssgraphrec.data import load_dataset
    from ssgraphrec.methods import LightGCN, LightGCNConfig
    from ssgraphrec.train.trainer import Trainer

    reps, slow_reps, epochs = (3, 1, 2) if args.quick else (7, 3, 3)
    torch.manual_seed(SEED)
    t_start = time.perf_counter()
    res: dict = {"environment": {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "torch": torch.__version__, "torch_geometric": torch_geometric.__version__,
        "python": platform.python_version(), "num_threads": torch.get_num_threads(),
        "cpu_model": cpu_model(), "cpu_count": os.cpu_count(), "quick": args.quick,
        "data_root": str(root), "loadavg_1min_start": load_start,
    }}

    with tempfile.TemporaryDirectory(prefix="ssgraphrec-speed-") as tmp:
        gowalla = None
        if sections & {"propagation", "eval"}:
            t0 = time.perf_counter()
            gowalla = load_dataset("gowalla", root=root, val_ratio=0)
            log(f"[load] gowalla in {time.perf_counter() - t0:.1f} s")
        if "propagation" in sections:
            res["bandwidth"] = measure_bandwidth(512 * 2**20, reps=3 if args.quick else 5)
            log(f"[bw] copy {res['bandwidth']['copy_GBps']} GB/s, "
                f"triad {res['bandwidth']['triad_GBps']} GB/s")
            res["propagation"] = bench_propagation(gowalla, reps, slow_reps, res["bandwidth"])
        trainers = {}
        if sections & {"epochs", "eval"}:
            res_epochs, trainers = bench_epochs(root, epochs if "epochs" in sections else 0, Path(tmp))
            if "epochs" in sections:
                res["epochs"] = res_epochs
        if "eval" in sections:
            gen = torch.Generator().manual_seed(SEED)
            method = LightGCN(gowalla, LightGCNConfig(), backend="auto", generator=gen)
            trainer = Trainer(method, gowalla, Path(tmp), epochs=1, generator=gen,
                              progress=False)
            res["eval"] = {
                "gowalla": bench_eval(trainer, "gowalla", 1),
                "lastfm-80-20": bench_eval(trainers["ours_lightgcn"], "lastfm-80-20",
                                           1 if args.quick else 3),
            }
            res["eval"]["gowalla"]["note"] = "untrained LightGCN (timing does not depend on it)"
    res["environment"]["loadavg_1min_end"] = _loadavg()
    res["environment"]["total_s"] = round(time.perf_counter() - t_start, 1)

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = out.with_name(out.name + ".tmp")
    tmp_out.write_text(json.dumps(res, indent=2) + "\n")
    os.replace(tmp_out, out)
    print_table(res)
    print(f"results written to {out} ({res['environment']['total_s']} s in all)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
