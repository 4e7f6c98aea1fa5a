"""The speed leaderboard: seconds per epoch, evaluation seconds and peak memory per method.

Each method is measured in a fresh Python process of its own (``spawn``), so
that its memory high-water mark is its own and not that of the methods before
it, and no method warms a cache for the next. In that process:

1. the dataset is loaded and split, and the method built (``build`` of a
   :class:`RunConfig` with ``val_ratio=0``: all training rows are trained on);
2. one warm-up epoch (untimed), then ``epochs`` timed epochs of
   :meth:`Trainer.train_epoch` (views, sampling, forward, backward, step):
   the median wall-clock and process-CPU seconds, and the seconds per batch;
   with ``steps`` > 0 each "epoch" (the warm-up included) is a window of its
   first ``steps`` batches (for large data, where an epoch takes minutes), and
   seconds per epoch are the window's seconds per batch times the batches of an
   epoch, plus the method's per-epoch work (``on_epoch_start``: SGL's views,
   NCL's k-means) once, timed on its own (``epoch_start_s``);
3. ``eval_reps`` full-ranking evaluations of all test users
   (:meth:`Trainer.evaluate`): the median wall-clock seconds;
4. memory: on the CPU, ``resource.getrusage(RUSAGE_SELF).ru_maxrss``, the
   process's resident-set high-water mark (torch's own allocations included,
   which ``tracemalloc`` does not see), at the end (``peak_rss_mib``) and its
   growth during steps 2-3 over the mark reached by step 1
   (``train_eval_rss_growth_mib``; 0 when training and evaluation stayed below
   the loading peak); on CUDA also ``torch.cuda.max_memory_allocated`` over
   steps 2-3 (``cuda_peak_mib``) and what the data and model hold before them
   (``cuda_after_build_mib``).

Each process keeps freed memory in its heap, as ``ssgraphrec train`` does
(:func:`ssgraphrec.heap.retain_freed_memory`; ``SSGRAPHREC_HEAP=system`` measures
``malloc`` as the system sets it).
"""

from __future__ import annotations

import concurrent.futures
import datetime
import json
import multiprocessing
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..errors import ConfigError
from .table import write_text

MARKDOWN = "speed.md"
JSON = "speed.json"


@dataclass
class SpeedSpec:
    """What to time (see the module docstring for what each figure is)."""

    methods: list[str]
    dataset: str = "lastfm-80-20"
    epochs: int = 2
    steps: int = 0
    eval_reps: int = 3
    seed: int = 2020
    device: str | None = None
    threads: int | None = None
    data_root: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)


def _maxrss_mib() -> float:
    """The process's resident-set high-water mark in MiB (ru_maxrss: KiB on Linux, bytes on macOS)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 1024


def _current_rss_mib() -> float | None:
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(method: str, spec: SpeedSpec, settings: dict[str, Any] | None = None
            ) -> dict[str, Any]:
    """Time and measure one method in this process (see the module docstring).

    ``settings`` are this method's run and method settings (the ``--set``
    values that apply to it); default: ``spec.overrides`` as they are.
    """
    import dataclasses

    from ..config import RunConfig, apply
    from ..heap import retain_freed_memory
    from ..sparse import resolve_backend
    from ..train.run import build
    from ..train.trainer import Trainer

    cfg = RunConfig(method=method, dataset=spec.dataset, seed=spec.seed, val_ratio=0.0,
                    epochs=spec.epochs + 1, data_root=spec.data_root, threads=spec.threads)
    if spec.device:
        cfg.device = spec.device
    apply(cfg, spec.overrides if settings is None else settings)
    heap_retained = retain_freed_memory()  # as the command line does, also when spawned
    t0 = time.perf_counter()
    run = build(cfg)
    build_s = time.perf_counter() - t0
    device = run.device
    rss_built = _maxrss_mib()
    out: dict[str, Any] = {
        "method": method, "dataset": spec.dataset, "device": str(device),
        "sparse_backend": resolve_backend(cfg.sparse_backend),
        "threads": torch.get_num_threads(), "heap_retained": heap_retained,
        "build_s": round(build_s, 3),
        "params": dataclasses.asdict(run.method.cfg),
        "rss_after_build_mib": _round(_current_rss_mib()),
    }
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        out["cuda_after_build_mib"] = round(torch.cuda.memory_allocated(device) / 2**20, 1)
        torch.cuda.reset_peak_memory_stats(device)
    hook_s = _time_epoch_start(run.method, device)
    with tempfile.TemporaryDirectory(prefix="ssgraphrec-bench-speed-") as tmp:
        trainer = Trainer(run.method, run.data, Path(tmp), epochs=cfg.epochs,
                          generator=run.generator, progress=False, log=lambda msg: None)
        walls, cpus = [], []
        if run.method.trainable:
            for epoch in range(cfg.epochs):
                _sync(device)
                w0, c0 = time.perf_counter(), time.process_time()
                trainer.train_epoch(epoch, max_steps=spec.steps or None)
                _sync(device)
                if epoch > 0:  # epoch 0 is the warm-up
                    walls.append(time.perf_counter() - w0 - hook_s[-1][0])
                    cpus.append(time.process_time() - c0 - hook_s[-1][1])
        evals = []
        for _ in range(max(1, spec.eval_reps)):
            _sync(device)
            w0 = time.perf_counter()
            trainer.evaluate("test")
            _sync(device)
            evals.append(time.perf_counter() - w0)
    batches = trainer.epoch_batches if run.method.trainable else 0
    timed = min(spec.steps, batches) if spec.steps else batches
    per_epoch = batches / timed if timed else 1.0
    hook = [statistics.median(t[i] for t in hook_s[1:]) if len(hook_s) > 1 else 0.0
            for i in (0, 1)]
    out |= {
        "batches_per_epoch": batches,
        "timed_batches": timed,
        "epoch_start_s": _round(hook[0]),
        "step_s": _round(statistics.median(walls) / timed, 6) if walls and timed else None,
        "epoch_s": _round(statistics.median(walls) * per_epoch + hook[0]) if walls else None,
        "epoch_cpu_s": _round(statistics.median(cpus) * per_epoch + hook[1]) if cpus else None,
        "epoch_s_all": [_round(w) for w in walls],
        "eval_s": _round(statistics.median(evals)),
        "eval_s_all": [_round(w) for w in evals],
        "peak_rss_mib": _round(_maxrss_mib()),
        "train_eval_rss_growth_mib": _round(_maxrss_mib() - rss_built),
    }
    if device.type == "cuda":
        out["cuda_peak_mib"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    return out


def _time_epoch_start(method, device: torch.device) -> list[tuple[float, float]]:
    """Time each call of ``method.on_epoch_start`` (wall, process CPU seconds), appended
    to the returned list, so that a window of an epoch counts the per-epoch work once."""
    times: list[tuple[float, float]] = []
    hook = method.on_epoch_start

    def timed(epoch: int) -> None:
        _sync(device)
        w0, c0 = time.perf_counter(), time.process_time()
        hook(epoch)
        _sync(device)
        times.append((time.perf_counter() - w0, time.process_time() - c0))

    method.on_epoch_start = timed
    return times


def _round(x: float | None, digits: int = 3) -> float | None:
    return None if x is None else round(float(x), digits)


def _measure_isolated(method: str, spec: SpeedSpec, settings: dict[str, Any]) -> dict[str, Any]:
    ctx = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
        return pool.submit(measure, method, spec, settings).result()


def environment(spec: SpeedSpec) -> dict[str, Any]:
    """Versions, threads, CPU and load of the machine the figures come from."""
    import torch_geometric

    from .studies import cpu_model

    cpu = cpu_model()
    try:
        load: float | None = float(Path("/proc/loadavg").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        load = None
    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "torch": torch.__version__, "torch_geometric": torch_geometric.__version__,
        "python": platform.python_version(), "cpu_model": cpu, "cpu_count": os.cpu_count(),
        "loadavg_1min": load, "cuda": torch.cuda.get_device_name(0)
        if torch.cuda.is_available() else None,
        "spec": asdict(spec),
    }


def run_speed(spec: SpeedSpec, out: Path, *, isolate: bool = True,
              log: Callable[[str], None] = print, command: str | None = None
              ) -> tuple[Path, Path, dict[str, Any]]:
    """Measure every method and write ``speed.md`` and ``speed.json`` into ``out``.

    A method that fails is recorded with its error and the others go on.
    ``isolate=False`` measures in this process (faster to start; the memory
    figures of later methods then include the earlier ones' high-water mark).
    """
    from ..data.registry import resolve
    from .quality import check_methods, split_overrides

    check_methods(spec.methods)
    common, per = split_overrides(spec.overrides, spec.methods)
    if spec.epochs < 1:
        raise ConfigError(f"--epochs must be >= 1 (timed epochs after the warm-up), got {spec.epochs}")
    if spec.steps < 0:
        raise ConfigError(f"--steps must be >= 0 (0: whole epochs), got {spec.steps}")
    resolve(spec.dataset, Path(spec.data_root) if spec.data_root else None)
    results: dict[str, Any] = {"command": command, "environment": environment(spec),
                               "isolated": isolate, "methods": []}
    for method in spec.methods:
        window = f" of {spec.steps} batches" if spec.steps else ""
        log(f"{method}: 1 warm-up + {spec.epochs} timed epochs{window}, {spec.eval_reps} evaluations "
            f"on {spec.dataset}" + (" (own process)" if isolate else ""))
        try:
            settings = {**common, **per[method]}
            row = (_measure_isolated(method, spec, settings) if isolate
                   else measure(method, spec, settings))
        except Exception as exc:  # one failing method must not lose the others' figures
            row = {"method": method, "error": f"{type(exc).__name__}: {exc}"}
            log(f"{method}: FAILED: {row['error']}")
        else:
            log(f"{method}: {_fmt(row.get('epoch_s'))} s/epoch, eval {_fmt(row['eval_s'])} s, "
                f"peak RSS {_fmt(row['peak_rss_mib'], 0)} MiB")
        results["methods"].append(row)
    out.mkdir(parents=True, exist_ok=True)
    md, js = out / MARKDOWN, out / JSON
    write_text(js, json.dumps(results, indent=2) + "\n")
    write_text(md, markdown(results))
    return md, js, results


def _fmt(x: float | None, digits: int = 3) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def markdown(results: dict[str, Any]) -> str:
    """The Markdown of :func:`run_speed`'s results."""
    env = results["environment"]
    spec = env["spec"]
    cuda = any("cuda_peak_mib" in r for r in results["methods"])
    lines = ["# Speed leaderboard", ""]
    if results.get("command"):
        lines += [f"Command: `{results['command']}`", ""]
    lines += [
        f"{env['date']}; torch {env['torch']}, PyG {env['torch_geometric']}, Python "
        f"{env['python']}; {env['cpu_model']} ({env['cpu_count']} CPUs, 1-min load average "
        f"{env['loadavg_1min']} at the start)" + (f"; GPU {env['cuda']}" if env["cuda"] else "")
        + ".",
        "",
        f"Dataset `{spec['dataset']}` (all training rows, no validation split), seed "
        f"{spec['seed']}. `s/epoch`: median wall-clock seconds of {spec['epochs']} training "
        "epoch(s) after one untimed warm-up epoch (`cpu s`: process CPU seconds of the same, "
        "all threads added)"
        + (f", each epoch timed on its first {spec['steps']} batches, scaled to the "
           "epoch's batches, plus the per-epoch work (SGL's views, NCL's k-means) once"
           if spec.get("steps") else "")
        + "; `s/batch`: the same per batch; `eval s`: median of "
        f"{spec['eval_reps']} full-ranking evaluations of all test users; `peak RSS`: the "
        "process's resident-set high-water mark (`ru_maxrss`), `growth`: how far training and "
        "evaluation raised it above the mark after loading the data and building the model"
        + ("; `CUDA peak`: `torch.cuda.max_memory_allocated` during training and evaluation"
           if cuda else "")
        + (". Each method ran in a fresh process." if results.get("isolated") else
           ". All methods ran in one process: memory figures after the first include the "
           "earlier methods' high-water mark."),
        "",
    ]
    head = ["method", "backend", "threads", "device", "batches", "s/batch", "s/epoch", "cpu s",
            "eval s",
            "peak RSS MiB", "growth MiB"] + (["CUDA peak MiB"] if cuda else [])
    lines += ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for r in results["methods"]:
        if "error" in r:
            lines.append(f"| {r['method']} | failed: {r['error']} |" + " |" * (len(head) - 2))
            continue
        cells = [r["method"], r["sparse_backend"], str(r["threads"]), r["device"],
                 str(r["batches_per_epoch"]), _fmt(r.get("step_s"), 4), _fmt(r["epoch_s"]),
                 _fmt(r["epoch_cpu_s"]),
                 _fmt(r["eval_s"]), _fmt(r["peak_rss_mib"], 0),
                 _fmt(r["train_eval_rss_growth_mib"], 0)]
        if cuda:
            cells.append(_fmt(r.get("cuda_peak_mib"), 0))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
