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

from ..data.cold_simulation import HIDDEN, SIMULATED
from ..data.link_negatives import is_link_prediction
from ..data.sampler import NegativeSampler, bpr_batches, num_batches
from ..data.schema import INTERACTS, SESSION, num_items, num_users, summary, task_of
from ..errors import ConfigError, SSGraphRecError
from ..eval import dot_scores, evaluate_ranking
from ..eval.link_prediction import LINK_METRICS, evaluate_link_prediction
from ..eval.metrics import METRICS
from ..eval.next_item import NEXT_ITEM_METRICS, evaluate_next_item
from ..eval.retrieval import check_backend, evaluate_retrieval
from ..eval.slices import build_slices, evaluate_slices
from ..methods.base import BPRBatch, Method
from . import run_dir as rd
from .checkpoint import load_checkpoint, save_atomic
from .early_stopping import EarlyStopping

SCHEMES = ("joint", "pretrain_finetune")
#: The file of the pre-trained encoder in a run directory (``--init`` reads it).
ENCODER = "encoder.pt"


#: Scores per full-ranking block when ``eval_batch_size`` is 0 (automatic).
EVAL_BLOCK_SCORES = 2**23


def auto_eval_batch_size(num_items: int) -> int:
    """Users per evaluation block: about :data:`EVAL_BLOCK_SCORES` scores (32 MB), 64 to 1024.

    Measured with one thread: 1,024 users per block is 1.2-1.3x slower than
    200-500 on Gowalla (40,981 items) and lastfm-80-20 (17,632): a block that
    stays in the cache is written by the product and read by the top-K without
    a trip to memory (docs/benchmarks.md, "Evaluation").
    """
    return max(64, min(1024, EVAL_BLOCK_SCORES // max(num_items, 1)))


class Trainer:
    """Trains a :class:`Method` with the joint or the pretrain->finetune scheme.

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
        scheme: ``"joint"`` (the method's ``loss`` from the start) or
            ``"pretrain_finetune"``: ``pretrain_epochs`` epochs of the
            method's ``pretrain_loss`` (its ``pretrain_batches``, or the usual
            batches), ``encoder.pt`` saved, ``on_finetune_start()``, a fresh
            optimizer with ``finetune_lr`` (or the method's lr), then joint
            training (docs/training-schemes.md).
        pretrain_epochs, finetune_lr: see :class:`~ssgraphrec.config.RunConfig`.
        pretrained: the pre-training phase of an ``--init`` run, when the
            encoder was loaded from one: no pre-training here, the optimizer
            starts with ``finetune_lr``, and ``phases`` records it.
        retrieval: ranking data: ``"exact"`` or ``"faiss"`` top-K search over the
            dot-product embeddings (:mod:`ssgraphrec.eval.retrieval`; same results).
        cold_threshold, head_share: test slices (:mod:`ssgraphrec.eval.slices`),
            ranking data only; checked (empty slices) before training.
        ssl_warmup: ramp the weight of the method's self-supervised terms
            (``method.ssl_terms``) linearly from 0 to 1 over this many optimizer
            steps of joint training (0: full weight from the start; docs/tuning.md).
        on_epoch_end: called as ``on_epoch_end(epoch, val)`` after each epoch's
            validation (``val`` empty without a validation split); the tuner's
            pruner raises from it to stop a trial.
        evaluate_test: False: never evaluate the test split (tuning); ``test`` is
            then absent from the outcome.
        min_steps: early stopping does not stop a run before this many optimizer
            steps of joint training: contrastive methods dip before they rise on
            small data (docs/tuning.md).
    """

    def __init__(self, method: Method, data: HeteroData, run_dir: Path, *, epochs: int,
                 patience: int = 10, monitor: str = "ndcg@20", ks: list[int] | None = None,
                 eval_batch_size: int = 0, generator: torch.Generator,
                 progress: bool = True, log: Callable[[str], None] | None = None,
                 mask_history: bool = False, scheme: str = "joint", pretrain_epochs: int = 0,
                 finetune_lr: float | None = None, pretrained: dict[str, Any] | None = None,
                 cold_threshold: int | None = None, head_share: float | None = None,
                 retrieval: str = "exact", ssl_warmup: int = 0,
                 on_epoch_end: Callable[[int, dict[str, float]], None] | None = None,
                 evaluate_test: bool = True, min_steps: int = 0):
        self.method = method
        self.data = data
        self.retrieval = check_backend(retrieval)
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
        # Link-prediction data (bigi-dblp) are scored by AUC, not by ranking.
        self.link_prediction = is_link_prediction(data)
        allowed = (set(LINK_METRICS) if self.link_prediction
                   else {f"{m}@{k}" for m in self.metric_names for k in self.ks})
        if monitor not in allowed:
            raise ConfigError(f"monitor {monitor!r} is not a computed metric; eval_ks={self.ks}")
        if eval_batch_size < 0:
            raise ConfigError(f"eval_batch_size must be >= 1 (0: automatic), got {eval_batch_size}")
        self.eval_batch_size = eval_batch_size or auto_eval_batch_size(num_items(data))
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
        if scheme not in SCHEMES:
            raise ConfigError(f"unknown scheme {scheme!r}; expected one of {', '.join(SCHEMES)}")
        if pretrain_epochs < 0:
            raise ConfigError(f"pretrain_epochs must be >= 0, got {pretrain_epochs}")
        if finetune_lr is not None and not finetune_lr > 0:
            raise ConfigError(f"finetune_lr must be > 0, got {finetune_lr}")
        if scheme == "pretrain_finetune" and pretrain_epochs > 0 and pretrained is None \
                and not method.has_pretrain_task():
            raise ConfigError(f"method {method.name!r} has no pre-training task; scheme "
                              "pretrain_finetune needs one (e.g. gptgnn), or --init RUN_DIR")
        self.scheme = scheme
        self.pretrain_epochs = pretrain_epochs if pretrained is None else 0
        self.finetune_lr = finetune_lr
        self.pretrained = pretrained
        self.pretrain_times: list[float] = []
        self.slices = []
        simulated = (data["user"][SIMULATED] if self.task == "ranking"
                     and SIMULATED in data["user"] else None)
        if cold_threshold is not None or head_share is not None or simulated is not None:
            if self.task != "ranking":
                raise ConfigError("cold-start and head/tail slices (--cold-threshold, "
                                  f"--head-share) apply to ranking data, not {self.task} data")
            store = data[INTERACTS]
            self.slices = build_slices(store.edge_index, store.test_edge_index, num_users(data),
                                       num_items(data), cold_threshold=cold_threshold,
                                       head_share=head_share, simulated=simulated)
        lr = method.cfg.lr if pretrained is None or finetune_lr is None else finetune_lr
        self.optimizer = self._new_optimizer(lr) if method.trainable else None
        self.start_epoch = 0
        self.start_pretrain_epoch = 0
        #: True once resume() has found a checkpoint of the fine-tuning (or joint) phase
        self.resumed_finetune = False
        self.epoch_times: list[float] = []
        if isinstance(ssl_warmup, bool) or not isinstance(ssl_warmup, int) or ssl_warmup < 0:
            raise ConfigError(f"ssl_warmup must be a whole number of optimizer steps >= 0, "
                              f"got {ssl_warmup!r}")
        self.ssl_warmup = ssl_warmup
        if isinstance(min_steps, bool) or not isinstance(min_steps, int) or min_steps < 0:
            raise ConfigError(f"min_steps must be a whole number of optimizer steps >= 0, "
                              f"got {min_steps!r}")
        self.min_steps = min_steps
        #: optimizer steps of joint (fine-tuning) training so far; drives ``ssl_warmup``
        self.step = 0
        self.on_epoch_end = on_epoch_end
        self.evaluate_test = evaluate_test

    def ssl_scale(self) -> float:
        """The weight of the self-supervised terms at the current step (linear warm-up)."""
        if self.ssl_warmup == 0:
            return 1.0
        return min(1.0, (self.step + 1) / self.ssl_warmup)

    def _new_optimizer(self, lr: float) -> torch.optim.Optimizer:
        params = [p for p in self.method.parameters() if p.requires_grad]
        return torch.optim.Adam(params, lr=lr)

    def _follows_pretraining(self) -> bool:
        """Whether fine-tuning starts from a pre-trained encoder (this run's or ``--init``'s)."""
        return self.method.trainable and (self.pretrained is not None
                                          or self.scheme == "pretrain_finetune")

    def _enter_finetune(self) -> None:
        """Between the phases: ``on_finetune_start()`` (freeze layers, check the pretext
        state), then a fresh optimizer over what stays trainable, at ``finetune_lr``."""
        self.method.on_finetune_start()
        if not any(p.requires_grad for p in self.method.parameters()):
            raise ConfigError(f"method {self.method.name!r} has no trainable parameter left "
                              "after on_finetune_start (every layer frozen?): nothing to "
                              "fine-tune")
        self.optimizer = self._new_optimizer(self.finetune_lr or self.method.cfg.lr)

    # -- evaluation -------------------------------------------------------
    @torch.no_grad()
    def evaluate(self, split: str = "test", target: torch.Tensor | None = None,
                 method: Method | None = None) -> dict[str, float]:
        """Metrics on ``val`` (training items masked) or ``test`` (training and
        validation items masked); ``target`` replaces the split's pairs (a slice).
        ``method`` (default: the one trained) is another model on the same data and
        protocol, e.g. the popularity baseline the results are compared with."""
        method = self.method if method is None else method
        method.eval()
        if self.task != "ranking":
            return evaluate_next_item(method.score, self.data, split, num_items(self.data),
                                      self.ks, self.eval_batch_size, mask_history=self.mask_history)
        if self.link_prediction:
            return evaluate_link_prediction(*method.embeddings(), self.data, split)
        store = self.data[INTERACTS]
        users, items = method.embeddings()
        # A method whose score is not a dot product (BiGI's MLP) offers ranking_scores().
        score = (method.ranking_scores() if hasattr(method, "ranking_scores")
                 else dot_scores(users, items))
        exclude = [store.edge_index] + ([store.val_edge_index] if split == "test" else [])
        if HIDDEN in store:  # what the cold-start simulation took away: neither hit nor miss
            exclude.append(store[HIDDEN])
        if target is None:
            target = store.val_edge_index if split == "val" else store.test_edge_index
        if self.retrieval != "exact" and not hasattr(method, "ranking_scores"):
            return evaluate_retrieval(users, items, target, exclude, num_users(self.data),
                                      num_items(self.data), self.ks, backend=self.retrieval,
                                      batch_size=self.eval_batch_size, split_name=split)
        return evaluate_ranking(score, target, exclude,
                                num_users(self.data), num_items(self.data), self.ks,
                                self.eval_batch_size, split_name=split)

    # -- checkpoints ------------------------------------------------------
    def _state(self, epoch: int, phase: str = "finetune") -> dict[str, Any]:
        """A resumable checkpoint; ``phase`` ``"pretrain"``: ``epoch`` is a pre-training epoch."""
        return {
            "phase": phase,
            "epoch": epoch,
            "pretrain_times": self.pretrain_times,
            "method": self.method.state_dict(),
            "optimizer": self.optimizer.state_dict() if self.optimizer else None,
            "early_stopping": self.stopper.state_dict(),
            "generator": self.generator.get_state(),
            "method_generator": (self.method.generator.get_state()
                                 if self.method.generator is not None else None),
            "torch_rng": torch.get_rng_state(),
            "epoch_times": self.epoch_times,
            "step": self.step,
        }

    def resume(self) -> None:
        """Continue from ``last.pt`` of the run directory.

        A checkpoint of the pre-training phase continues pre-training at the next
        pre-training epoch with its optimizer. One of the fine-tuning phase of a
        pretrain->finetune (or ``--init``) run re-enters fine-tuning first (layers
        frozen again by ``on_finetune_start``, the fine-tuning optimizer over the
        parameters left trainable), then loads that optimizer's state.
        """
        state = load_checkpoint(self.run_dir / rd.LAST, self.device)
        self.method.load_state_dict(state["method"])
        phase = state.get("phase", "finetune")
        removed = rd.align_with_checkpoint(self.run_dir, phase, int(state["epoch"]))
        if any(removed.values()):
            self.log(f"resume: removed what an interrupted epoch left behind "
                     f"({removed['metrics_lines']} metrics line(s) past the checkpoint, "
                     f"{removed['temp_files']} temporary file(s))")
        if phase == "pretrain":
            if self.scheme != "pretrain_finetune" or self.pretrained is not None:
                raise ConfigError(f"{self.run_dir / rd.LAST} was saved during pre-training, "
                                  f"but this run does not pre-train (scheme {self.scheme!r})")
            self.start_pretrain_epoch = state["epoch"] + 1
        else:
            self.resumed_finetune = True
            self.start_epoch = state["epoch"] + 1
            if self._follows_pretraining():
                self._enter_finetune()
        if self.optimizer and state["optimizer"]:
            try:
                self.optimizer.load_state_dict(state["optimizer"])
            except ValueError as exc:
                raise ConfigError(f"cannot resume {self.run_dir}: the saved optimizer does not "
                                  f"fit the trainable parameters of this run ({exc})") from None
        self.stopper.load_state_dict(state["early_stopping"])
        self.generator.set_state(state["generator"].cpu() if hasattr(state["generator"], "cpu")
                                 else state["generator"])
        if state.get("method_generator") is not None and self.method.generator is not None:
            self.method.generator.set_state(state["method_generator"].cpu())
        torch.set_rng_state(state["torch_rng"].cpu())
        self.epoch_times = list(state.get("epoch_times", []))
        self.step = int(state.get("step", 0))
        self.pretrain_times = list(state.get("pretrain_times", []))

    # -- training ---------------------------------------------------------
    def _batches(self):
        """(batches, count) of one epoch: BPR triples, or the method's sample ids."""
        batch_size = self.method.cfg.batch_size
        if self.task == "ranking":
            triples = bpr_batches(self.train_edges, self.sampler, batch_size, self.generator)
            return ((BPRBatch(*t) for t in triples),
                    num_batches(self.train_edges.size(1), batch_size))
        return self.method.train_batches(self.generator), self.method.num_train_batches()

    def train_epoch(self, epoch: int, pretrain: bool = False) -> dict[str, float]:
        """One epoch of ``method.loss`` (or ``method.pretrain_loss`` when ``pretrain``)."""
        method = self.method
        method.train()
        if pretrain:
            method.on_pretrain_epoch_start(epoch)
            own = method.pretrain_batches(self.generator)
            batches, n = own if own is not None else self._batches()
            loss_fn, total = method.pretrain_loss, self.pretrain_epochs
        else:
            method.on_epoch_start(epoch)
            batches, n = self._batches()
            loss_fn, total = method.loss, self.epochs
        totals: dict[str, float] = {}
        steps = 0
        desc = f"{'pre-train ' if pretrain else ''}epoch {epoch + 1}/{total}"
        bar = tqdm(batches, total=n, desc=desc,
                   disable=not self.progress, leave=False, file=sys.stderr, dynamic_ncols=True)
        warm = not pretrain and self.ssl_warmup > 0
        for batch in bar:
            terms = loss_fn(batch)
            if warm:
                scale = self.ssl_scale()
                terms = {k: v * scale if k in method.ssl_terms else v for k, v in terms.items()}
            loss = sum(terms.values())
            if not torch.isfinite(loss):
                bad = {k: float(v) for k, v in terms.items() if not torch.isfinite(v)}
                named = ", ".join(f"{k} = {v}" for k, v in bad.items()) or f"total = {float(loss)}"
                raise FloatingPointError(
                    f"the loss became non-finite at epoch {epoch + 1}, step {steps + 1} ({named}); "
                    "lower the learning rate, or check the data for extreme weights")
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            if not pretrain:
                self.step += 1
            for k, v in terms.items():
                totals[k] = totals.get(k, 0.0) + float(v.detach())
            steps += 1
            bar.set_postfix(loss=f"{float(loss.detach()):.4f}")
        return {k: v / max(steps, 1) for k, v in totals.items()}

    def pretrain(self) -> dict[str, Any]:
        """The pre-training phase: ``pretrain_epochs`` epochs of ``pretrain_loss``,
        ``pretrain`` records in metrics.jsonl, the encoder saved to ``encoder.pt``.

        Returns the phase record (epochs, seconds per epoch) also kept in
        ``encoder.pt``.
        """
        self.method.to(self.device)
        for epoch in range(self.start_pretrain_epoch, self.pretrain_epochs):
            t0 = time.perf_counter()
            losses = self.train_epoch(epoch, pretrain=True)
            self.pretrain_times.append(time.perf_counter() - t0)
            rd.append_metrics(self.run_dir, {"phase": "pretrain", "pretrain_epoch": epoch + 1,
                                             "loss": losses,
                                             "train_s": round(self.pretrain_times[-1], 3)})
            save_atomic(self._state(epoch, phase="pretrain"), self.run_dir / rd.LAST)
            self.log(f"pre-train epoch {epoch + 1:3d} | "
                     + " ".join(f"{k} {v:.4f}" for k, v in losses.items())
                     + f" | {self.pretrain_times[-1]:.1f}s")
        phase = {"epochs": len(self.pretrain_times), "method": self.method.name,
                 "train_s_per_epoch": (sum(self.pretrain_times) / len(self.pretrain_times)
                                       if self.pretrain_times else 0.0),
                 "train_s_total": sum(self.pretrain_times)}
        self.method.eval()
        save_atomic({"encoder": self.method.encoder_state_dict(), "phase": phase,
                     "method": self.method.name, "data": summary(self.data)},
                    self.run_dir / ENCODER)
        return phase

    def fit(self) -> dict[str, Any]:
        """Train, select the best epoch on validation, evaluate on test."""
        t_start = time.perf_counter()
        best_val: dict[str, float] = {}
        epochs_run = self.start_epoch
        phases: dict[str, Any] = {}
        if self.pretrained is not None:
            phases["pretrain"] = self.pretrained
            if self.method.trainable and not self.resumed_finetune:
                self._enter_finetune()  # an --init run freezes layers as a pre-training one
        elif self.scheme == "pretrain_finetune" and self.method.trainable:
            if self.resumed_finetune:  # resumed after pre-training: encoder.pt holds its record
                phases["pretrain"] = load_checkpoint(self.run_dir / ENCODER,
                                                     self.device).get("phase", {})
            else:
                phases["pretrain"] = self.pretrain()
                self._enter_finetune()
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
                    try:
                        val = self.evaluate("val")
                    except SSGraphRecError as exc:  # e.g. scores that became NaN: say when
                        raise SSGraphRecError(f"after epoch {epoch + 1}: {exc}") from None
                    record["val"] = val
                    record["eval_s"] = round(time.perf_counter() - t1, 3)
                    improved = self.stopper.step(val[self.monitor], epoch + 1)
                    first = ("auc_pr" if self.link_prediction else
                             f"{'recall' if self.task == 'ranking' else 'hit'}@{self.ks[-1]}")
                    msg += (f" | val {first} {val[first]:.4f} "
                            f"{self.monitor} {val[self.monitor]:.4f}" + (" *" if improved else ""))
                    if improved:
                        best_val = val
                        save_atomic({"epoch": epoch + 1, "method": self.method.state_dict()},
                                    self.run_dir / rd.BEST)
                self.log(msg + f" | {self.epoch_times[-1]:.1f}s")
                rd.append_metrics(self.run_dir, record)
                save_atomic(self._state(epoch), self.run_dir / rd.LAST)
                epochs_run = epoch + 1
                if self.on_epoch_end is not None:
                    self.on_epoch_end(epoch + 1, record.get("val", {}))
                if self.stopper.should_stop and self.step >= self.min_steps:
                    budget = f" (past the minimum of {self.min_steps} steps)" if self.min_steps else ""
                    self.log(f"early stop: no {self.monitor} gain for {self.stopper.bad_epochs} "
                             f"epochs{budget}; best epoch {self.stopper.best_epoch}")
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
        extra: dict[str, Any] = {}
        eval_s = 0.0
        if self.evaluate_test:
            t_eval = time.perf_counter()
            extra["test"] = self.evaluate("test")
            eval_s = time.perf_counter() - t_eval
        if self.slices and self.evaluate_test:
            extra["test_slices"] = evaluate_slices(self.slices,
                                                   lambda t: self.evaluate("test", t))
        if phases:
            phases["finetune"] = {
                "epochs": epochs_run,
                "lr": (self.finetune_lr or self.method.cfg.lr),
                "train_s_per_epoch": (sum(self.epoch_times) / len(self.epoch_times)
                                      if self.epoch_times else 0.0),
                "train_s_total": sum(self.epoch_times)}
            extra["scheme"] = self.scheme
            extra["phases"] = phases
        return {
            "task": self.task,
            **extra,
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
