"""The trainer: epochs of BPR batches, validation, early stopping, checkpoints."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch_geometric.data import HeteroData
from tqdm.auto import tqdm

from ..data.sampler import NegativeSampler, bpr_batches, num_batches
from ..data.schema import INTERACTS, SESSION, num_items, num_users, task_of
from ..errors import ConfigError
from ..eval import dot_scores, evaluate_ranking
from ..eval.metrics import METRICS
from ..eval.next_item import NEXT_ITEM_METRICS, evaluate_next_item
from ..methods.base import BPRBatch, Method
from . import run_dir as rd
from .checkpoint import load_checkpoint, save_atomic
from .early_stopping import EarlyStopping


class Trainer:
    """Trains a :class:`Method` with the joint scheme and evaluates it.

    User-item data (task ``ranking``) are trained on BPR triples and evaluated
    by full ranking per user; session samples and user sequences (``next_item``,
    ``sequential``) on the method's own batches of sample ids, evaluated by the
    rank of each sample's held-out item (:mod:`ssgraphrec.eval.next_item`).

    Model selection and early stopping use the validation split (``monitor``,
    default NDCG@20) and never the test split. With no validation split the
    last epoch is reported, and ``results.json`` says so.

    Args:
        method: the method, on ``device``.
        data: the dataset, on ``device``.
        run_dir: where config, metrics, results and checkpoints go.
        epochs, patience, monitor, ks, eval_batch_size: see :class:`RunConfig`.
        generator: the seeded generator for sampling.
        progress: show a progress bar per epoch.
        log: where per-epoch lines go.
        mask_history: next-item tasks only: exclude the items of a sample's
            input from its ranking.
    """

    def __init__(self, method: Method, data: HeteroData, run_dir: Path, *, epochs: int,
                 patience: int = 10, monitor: str = "ndcg@20", ks: list[int] | None = None,
                 eval_batch_size: int = 1024, generator: torch.Generator,
                 progress: bool = True, log: Callable[[str], None] | None = None,
                 mask_history: bool = False):
        self.method = method
        self.data = data
        self.task = task_of(data)
        if self.task not in method.tasks:
            raise ConfigError(f"method {method.name!r} runs on {'/'.join(method.tasks)} data; "
                              f"dataset {data.name!r} holds {self.task} data")
        self.mask_history = mask_history
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.epochs = epochs
        self.ks = ks or [10, 20]
        self.monitor = monitor
        self.metric_names = METRICS if self.task == "ranking" else NEXT_ITEM_METRICS
        if monitor not in {f"{m}@{k}" for m in self.metric_names for k in self.ks}:
            raise ConfigError(f"monitor {monitor!r} is not a computed metric; eval_ks={self.ks}")
        self.eval_batch_size = eval_batch_size
        self.generator = generator
        self.progress = progress
        self.log = log or (lambda msg: tqdm.write(msg, file=sys.stderr))
        if self.task == "ranking":
            store = data[INTERACTS]
            self.train_edges = store.edge_index
            self.has_val = store.val_edge_index.size(1) > 0
            self.sampler = NegativeSampler(self.train_edges, num_items(data))
        else:
            self.has_val = bool(data[SESSION].val_mask.any())
        self.device = next(iter(data.edge_stores)).edge_index.device
        self.stopper = EarlyStopping(patience if self.has_val else 0)
        self.optimizer = (torch.optim.Adam(method.parameters(), lr=method.cfg.lr)
                          if method.trainable else None)
        self.start_epoch = 0
        self.epoch_times: list[float] = []

    # -- evaluation -------------------------------------------------------
    @torch.no_grad()
    def evaluate(self, split: str = "test") -> dict[str, float]:
        """Metrics on ``val`` (training items masked) or ``test`` (training and
        validation items masked)."""
        self.method.eval()
        if self.task != "ranking":
            return evaluate_next_item(self.method.score, self.data, split, num_items(self.data),
                                      self.ks, self.eval_batch_size, mask_history=self.mask_history)
        store = self.data[INTERACTS]
        users, items = self.method.embeddings()
        exclude = [store.edge_index] + ([store.val_edge_index] if split == "test" else [])
        target = store.val_edge_index if split == "val" else store.test_edge_index
        return evaluate_ranking(dot_scores(users, items), target, exclude,
                                num_users(self.data), num_items(self.data), self.ks,
                                self.eval_batch_size, split_name=split)

    # -- checkpoints ------------------------------------------------------
    def _state(self, epoch: int) -> dict[str, Any]:
        return {
            "epoch": epoch,
            "method": self.method.state_dict(),
            "optimizer": self.optimizer.state_dict() if self.optimizer else None,
            "early_stopping": self.stopper.state_dict(),
            "generator": self.generator.get_state(),
            "method_generator": (self.method.generator.get_state()
                                 if self.method.generator is not None else None),
            "torch_rng": torch.get_rng_state(),
            "epoch_times": self.epoch_times,
        }

    def resume(self) -> None:
        """Continue from ``last.pt`` of the run directory."""
        state = load_checkpoint(self.run_dir / rd.LAST, self.device)
        self.method.load_state_dict(state["method"])
        if self.optimizer and state["optimizer"]:
            self.optimizer.load_state_dict(state["optimizer"])
        self.stopper.load_state_dict(state["early_stopping"])
        self.generator.set_state(state["generator"].cpu() if hasattr(state["generator"], "cpu")
                                 else state["generator"])
        if state.get("method_generator") is not None and self.method.generator is not None:
            self.method.generator.set_state(state["method_generator"].cpu())
        torch.set_rng_state(state["torch_rng"].cpu())
        self.epoch_times = list(state.get("epoch_times", []))
        self.start_epoch = state["epoch"] + 1

    # -- training ---------------------------------------------------------
    def _batches(self):
        """(batches, count) of one epoch: BPR triples, or the method's sample ids."""
        batch_size = self.method.cfg.batch_size
        if self.task == "ranking":
            triples = bpr_batches(self.train_edges, self.sampler, batch_size, self.generator)
            return ((BPRBatch(*t) for t in triples),
                    num_batches(self.train_edges.size(1), batch_size))
        return self.method.train_batches(self.generator), self.method.num_train_batches()

    def train_epoch(self, epoch: int) -> dict[str, float]:
        method = self.method
        method.train()
        method.on_epoch_start(epoch)
        batches, n = self._batches()
        totals: dict[str, float] = {}
        bar = tqdm(batches, total=n, desc=f"epoch {epoch + 1}/{self.epochs}",
                   disable=not self.progress, leave=False, file=sys.stderr, dynamic_ncols=True)
        for batch in bar:
            terms = method.loss(batch)
            loss = sum(terms.values())
            if not torch.isfinite(loss):
                raise FloatingPointError(f"loss became {float(loss)} at epoch {epoch + 1}; "
                                         "lower the learning rate")
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            for k, v in terms.items():
                totals[k] = totals.get(k, 0.0) + float(v.detach())
            bar.set_postfix(loss=f"{float(loss.detach()):.4f}")
        return {k: v / n for k, v in totals.items()}

    def fit(self) -> dict[str, Any]:
        """Train, select the best epoch on validation, evaluate on test."""
        t_start = time.perf_counter()
        best_val: dict[str, float] = {}
        epochs_run = self.start_epoch
        if self.method.trainable:
            for epoch in range(self.start_epoch, self.epochs):
                t0 = time.perf_counter()
                losses = self.train_epoch(epoch)
                self.epoch_times.append(time.perf_counter() - t0)
                record: dict[str, Any] = {"epoch": epoch + 1, "loss": losses,
                                          "train_s": round(self.epoch_times[-1], 3)}
                msg = f"epoch {epoch + 1:3d} | " + " ".join(f"{k} {v:.4f}" for k, v in losses.items())
                if self.has_val:
                    t1 = time.perf_counter()
                    val = self.evaluate("val")
                    record["val"] = val
                    record["eval_s"] = round(time.perf_counter() - t1, 3)
                    improved = self.stopper.step(val[self.monitor], epoch + 1)
                    first = "recall" if self.task == "ranking" else "hit"
                    msg += (f" | val {first}@{self.ks[-1]} {val[f'{first}@{self.ks[-1]}']:.4f} "
                            f"{self.monitor} {val[self.monitor]:.4f}" + (" *" if improved else ""))
                    if improved:
                        best_val = val
                        save_atomic({"epoch": epoch + 1, "method": self.method.state_dict()},
                                    self.run_dir / rd.BEST)
                self.log(msg + f" | {self.epoch_times[-1]:.1f}s")
                rd.append_metrics(self.run_dir, record)
                save_atomic(self._state(epoch), self.run_dir / rd.LAST)
                epochs_run = epoch + 1
                if self.stopper.should_stop:
                    self.log(f"early stop: no {self.monitor} gain for {self.stopper.patience} "
                             f"epochs; best epoch {self.stopper.best_epoch}")
                    break
        if self.has_val and (self.run_dir / rd.BEST).is_file():
            best = load_checkpoint(self.run_dir / rd.BEST, self.device)
            self.method.load_state_dict(best["method"])
            if not best_val:
                best_val = self.evaluate("val")
            best_epoch = best["epoch"]
        else:
            best_epoch = epochs_run
            save_atomic({"epoch": epochs_run, "method": self.method.state_dict()},
                        self.run_dir / rd.BEST)
            if self.has_val:
                best_val = self.evaluate("val")
        t_eval = time.perf_counter()
        test = self.evaluate("test")
        eval_s = time.perf_counter() - t_eval
        return {
            "task": self.task,
            "test": test,
            "val": best_val,
            "best_epoch": best_epoch,
            "epochs_trained": epochs_run,
            "selection": ("best validation " + self.monitor) if self.has_val
            else "last epoch (no validation split)",
            "timing": {
                "train_s_per_epoch": (sum(self.epoch_times) / len(self.epoch_times)
                                      if self.epoch_times else 0.0),
                "train_s_total": sum(self.epoch_times),
                "test_eval_s": eval_s,
                "total_s": time.perf_counter() - t_start,
            },
        }
