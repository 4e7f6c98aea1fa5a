"""Assemble a run from a RunConfig: data, method, trainer, run directory."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch_geometric.data import HeteroData

from ..config import RunConfig, apply, method_config
from ..data import DATASETS, load_dataset
from ..data.schema import INTERACTS, summary, task_of
from ..errors import SSGraphRecError
from ..eval.ranking import check_cutoffs
from ..methods import METHODS, Method
from ..sparse import resolve_backend
from . import run_dir as rd
from .checkpoint import load_checkpoint
from .device import resolve_device
from .seed import seed_everything
from .trainer import Trainer

VIEW_SEED_OFFSET = 7919

#: Cut-offs reported when ``eval_ks`` is not set: the ones the task's papers report
#: (LightGCN/SGL: 10, 20; DHCN: P@10/20, MRR@10/20; S3-Rec/CL4SRec: HR and NDCG@5/10/20).
DEFAULT_CUTOFFS = {"ranking": (10, 20), "next_item": (10, 20), "sequential": (5, 10, 20)}


@dataclass
class Run:
    """A dataset and a method built from one config, on one device."""

    cfg: RunConfig
    data: HeteroData
    method: Method
    device: torch.device
    generator: torch.Generator


def build(cfg: RunConfig) -> Run:
    """Seed, load and split the data, and build the method on the device."""
    device = resolve_device(cfg.device)
    cls = METHODS.get(cfg.method)
    mcfg = method_config(cls.config_class, cfg, cfg.method)
    if cfg.epochs < 0:
        raise SSGraphRecError(f"--epochs must be >= 0, got {cfg.epochs}")
    if mcfg.batch_size < 1:
        raise SSGraphRecError(f"batch size must be >= 1, got {mcfg.batch_size}")
    if cfg.threads is not None:
        if cfg.threads < 1:
            raise SSGraphRecError(f"--threads must be >= 1, got {cfg.threads}")
        torch.set_num_threads(cfg.threads)
    seed_everything(cfg.seed)
    data = load_dataset(cfg.dataset, split=cfg.split, test_ratio=cfg.test_ratio,
                        val_ratio=cfg.val_ratio, seed=cfg.seed, root=cfg.data_root)
    task = task_of(data)
    if task not in cls.tasks:
        fitting = sorted(name for name in METHODS if task in METHODS.get(name).tasks)
        datasets = sorted(name for name in DATASETS if DATASETS.get(name).task in cls.tasks)
        raise SSGraphRecError(f"method {cfg.method!r} runs on {'/'.join(cls.tasks)} data, and dataset "
                              f"{cfg.dataset!r} holds {task} data; methods for it: {', '.join(fitting)}; "
                              f"datasets for {cfg.method}: {', '.join(datasets)}")
    if not cfg.eval_ks:
        cfg.eval_ks = list(DEFAULT_CUTOFFS[task])
    check_cutoffs(cfg.eval_ks, int(data["item"].num_nodes))
    if task == "ranking" and data[INTERACTS].test_edge_index.size(1) == 0:
        raise SSGraphRecError(f"the test split is empty for dataset {cfg.dataset!r}: nothing to "
                              "evaluate (every user has a single interaction, or the test file "
                              "is empty)")
    data = data.to(device)
    generator = torch.Generator(device=device).manual_seed(cfg.seed)
    # Views draw from their own stream, so that every method of a seed sees the same
    # training batches and negatives.
    view_generator = torch.Generator(device=device).manual_seed(cfg.seed + VIEW_SEED_OFFSET)
    method = cls(data, mcfg, backend=cfg.sparse_backend, generator=view_generator).to(device)
    if cfg.train_fraction != 1.0:
        if task == "ranking":
            raise SSGraphRecError("train_fraction applies to session and sequence data only")
        method.restrict_training(cfg.train_fraction,
                                 torch.Generator(device=device).manual_seed(cfg.seed))
    return Run(cfg, data, method, device, generator)


def full_config(run: Run) -> dict[str, Any]:
    """What config.yaml holds: the run config with every method setting resolved."""
    out = run.cfg.to_dict()
    out["params"] = dataclasses.asdict(run.method.cfg)
    return out


def train(cfg: RunConfig | None, out: str | None = None, *, resume: str | None = None,
          epochs: int | None = None, progress: bool = True, log=None
          ) -> tuple[Path, dict[str, Any]]:
    """Train as ``cfg`` says; return the run directory and the results.

    With ``resume=RUN_DIR`` the saved config is used (``epochs`` may extend
    it) and training continues from the run's last checkpoint.
    """
    if resume:
        run_path = Path(resume)
        cfg = apply(RunConfig(), rd.read_config(run_path))
        if epochs is not None:
            cfg.epochs = epochs
    elif cfg is None:
        raise SSGraphRecError("train() needs a config or a run to resume")
    run = build(cfg)
    if not resume:
        run_path = rd.new_run_dir(cfg.method, cfg.dataset, out)
        rd.write_config(run_path, full_config(run))
    trainer = Trainer(run.method, run.data, run_path, epochs=cfg.epochs, patience=cfg.patience,
                      monitor=cfg.monitor, ks=cfg.eval_ks, eval_batch_size=cfg.eval_batch_size,
                      generator=run.generator, progress=progress, log=log,
                      mask_history=cfg.mask_history)
    if resume:
        trainer.resume()
    outcome = trainer.fit()
    results = {
        "method": cfg.method,
        "dataset": cfg.dataset,
        "data": summary(run.data),
        **outcome,
        "device": str(run.device),
        "sparse_backend": resolve_backend(cfg.sparse_backend),
        "seed": cfg.seed,
        "versions": rd.versions(),
    }
    rd.write_results(run_path, results)
    return run_path, results


def load_run(run_dir: str | Path, device: str | None = None) -> Run:
    """Rebuild a saved run's data and method and load its best checkpoint.

    Fails clearly if the data no longer matches the run (different fingerprint).
    """
    run_dir = Path(run_dir)
    cfg = apply(RunConfig(), rd.read_config(run_dir))
    if device is not None:
        cfg.device = device
    run = build(cfg)
    state = load_checkpoint(run_dir / rd.BEST, run.device)
    run.method.load_state_dict(state["method"])
    expected = rd.read_results(run_dir).get("data", {}).get("fingerprint")
    actual = summary(run.data)["fingerprint"]
    if expected and expected != actual:
        raise SSGraphRecError(f"the data of {run_dir} has changed since training "
                              f"(fingerprint {actual}, run was trained on {expected})")
    return run
