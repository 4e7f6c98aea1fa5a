"""The trainer: a short loop over a task and a scheme (docs/architecture.md, "Trainer").

What depends on the data (batches, evaluation, cut-offs, the monitor metric) is
the :class:`~ssgraphrec.train.tasks.Task`'s; what happens before and between the
phases (pre-training, freezing, optimizer resets, resume points) is the
:class:`~ssgraphrec.train.schemes.Scheme`'s. The trainer runs epochs, logs them,
selects the best on validation, early-stops, checkpoints and evaluates the test
split once at the end.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch_geometric.data import HeteroData
from tqdm.auto import tqdm

from ..data.schema import summary
from ..distributed import DistContext, any_rank, broadcast_object, current, gather_object
from ..errors import ConfigError, SSGraphRecError
from ..eval.slices import evaluate_slices
from ..methods.base import Method
from . import run_dir as rd
from .checkpoint import load_checkpoint, save_atomic
from .early_stopping import EarlyStopping
from .loggers import make_logger
from .schemes import ENCODER, SCHEMES, make_scheme
from .tasks import EVAL_BLOCK_SCORES, auto_eval_batch_size, make_task

__all__ = ["ENCODER", "EVAL_BLOCK_SCORES", "SCHEMES", "Trainer", "auto_eval_batch_size"]


def _steps(name: str, value: Any) -> int:
    """``value`` as a whole number of optimizer steps >= 0, or a :class:`ConfigError`."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"{name} must be a whole number of optimizer steps >= 0, "
                          f"got {value!r}")
    return value


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


#: Devices whose PyTorch has a fused Adam kernel (``torch.optim.Adam(fused=True)``).
FUSED_ADAM_DEVICES = ("cpu", "cuda")


def adam(params: list[torch.Tensor], lr: float) -> torch.optim.Adam:
    """Adam (Kingma and Ba, ICLR 2015, Algorithm 1) over ``params``, in PyTorch's fused
    kernel where every parameter is a dense floating-point tensor on a device that has
    it: one pass over each parameter and its moments instead of one per operation of the
    update. On tables of Gowalla's LightGCN shapes (70,839 x 64 in all) a step took 3.3
    ms against 9.3 ms, one thread (``benchmarks/step_bookkeeping.py --only adam``;
    docs/benchmarks.md, "The step's bookkeeping"). The update is the same; its rounding
    may differ in the last bit from the unfused one's."""
    fused = bool(params) and all(
        p.is_floating_point() and p.layout == torch.strided
        and p.device.type in FUSED_ADAM_DEVICES for p in params)
    return torch.optim.Adam(params, lr=lr, fused=fused or None)


class _Loss(nn.Module):
    """The method's loss as a ``forward``, so that ``DistributedDataParallel`` can wrap it
    and average the gradients of every rank in the backward pass."""

    def __init__(self, method: Method):
        super().__init__()
        self.method = method

    def forward(self, batch, pretrain: bool = False) -> dict[str, torch.Tensor]:
        return (self.method.pretrain_loss if pretrain else self.method.loss)(batch)


class Trainer:
    """Trains a :class:`Method` on the task of ``data`` with a scheme.

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
        mask_history, retrieval, cold_threshold, head_share: the task's
            (:func:`~ssgraphrec.train.tasks.make_task`).
        scheme, pretrain_epochs, finetune_lr, pretrained: the scheme's
            (:func:`~ssgraphrec.train.schemes.make_scheme`); ``pretrained`` is the
            pre-training record of an ``--init`` run.
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
        max_minutes: a time budget: no joint epoch starts once the training and
            validation of the epochs so far (``elapsed_s`` of metrics.jsonl, which
            continues across a resume) have taken this many minutes; the best
            validation epoch so far is then selected and tested, as after early
            stopping. None: no budget.
        logger: ``"tensorboard"``: also write the epoch records as TensorBoard event
            files in ``run_dir/tensorboard`` (:mod:`ssgraphrec.train.loggers`).
        ctx: the ranks of a distributed run (default: the process group this process
            belongs to, if any). Each rank trains on its share of every global batch
            through ``DistributedDataParallel`` and evaluates its share of the users;
            rank 0 alone writes (docs/distributed.md).
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
                 evaluate_test: bool = True, min_steps: int = 0,
                 max_minutes: float | None = None,
                 ctx: DistContext | None = None, logger: str = "none"):
        self.method, self.data, self.generator = method, data, generator
        self.ctx = ctx if ctx is not None else current()
        #: whether this process writes the run directory (rank 0)
        self.writes = self.ctx.is_main
        self.task = make_task(data, method, ks=ks, monitor=monitor,
                              eval_batch_size=eval_batch_size, mask_history=mask_history,
                              retrieval=retrieval, cold_threshold=cold_threshold,
                              head_share=head_share, ctx=self.ctx)
        self.scheme = make_scheme(scheme, method, pretrain_epochs=pretrain_epochs,
                                  finetune_lr=finetune_lr, pretrained=pretrained)
        self.run_dir = Path(run_dir)
        if self.writes:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        #: where records go besides metrics.jsonl (``--logger``), rank 0 only
        self.logger = make_logger(logger, self.run_dir) if self.writes else None
        self.epochs, self.progress = epochs, progress and self.writes
        write = log or (lambda msg: tqdm.write(msg, file=sys.stderr))
        self.log = write if self.writes else (lambda msg: None)
        self.device = next(iter(data.edge_stores)).edge_index.device
        self.stopper = EarlyStopping(patience if self.task.has_val else 0)
        self.ssl_warmup = _steps("ssl_warmup", ssl_warmup)
        self.min_steps = _steps("min_steps", min_steps)
        if max_minutes is not None and not max_minutes > 0:
            raise SSGraphRecError(f"max_minutes must be > 0, got {max_minutes}")
        self.budget_s = None if max_minutes is None else 60.0 * max_minutes
        #: seconds of joint training and validation so far (resumed runs included)
        self.elapsed_s = 0.0
        self.on_epoch_end, self.evaluate_test = on_epoch_end, evaluate_test
        self.optimizer: torch.optim.Optimizer | None = None
        self.loss_module: nn.Module = _Loss(method)
        if method.trainable:
            self.reset_optimizer(self.scheme.first_lr(method))
        self.start_epoch = self.start_pretrain_epoch = 0
        #: True once resume() has found a checkpoint of the joint (fine-tuning) phase
        self.resumed_joint = False
        self.epoch_times: list[float] = []
        self.pretrain_times: list[float] = []
        #: batches of the last epoch :meth:`train_epoch` started (all of it, not only
        #: the ``max_steps`` it ran); ``ssgraphrec bench speed`` scales its window by it
        self.epoch_batches = 0
        #: optimizer steps of joint (fine-tuning) training so far; drives ``ssl_warmup``
        self.step = 0
        #: validation metrics of the best epoch of this process (empty after a resume)
        self.best_val: dict[str, float] = {}

    @property
    def monitor(self) -> str:
        return self.task.monitor

    def ssl_scale(self) -> float:
        """The weight of the self-supervised terms at the current step (linear warm-up)."""
        if self.ssl_warmup == 0:
            return 1.0
        return min(1.0, (self.step + 1) / self.ssl_warmup)

    def reset_optimizer(self, lr: float) -> None:
        """A fresh Adam over the parameters that are trainable now (re-wrapped in
        ``DistributedDataParallel`` on several ranks, which also makes every rank start
        from rank 0's parameters)."""
        params = [p for p in self.method.parameters() if p.requires_grad]
        self.optimizer = adam(params, lr)
        if self.ctx.distributed:
            # A method's joint loss reaches every trainable parameter (a contract test checks
            # it), except the pretext heads of a method that pre-trains.
            self.loss_module = DistributedDataParallel(
                _Loss(self.method), find_unused_parameters=self.method.has_pretrain_task())

    def load_main(self, path: Path) -> dict[str, Any] | None:
        """The checkpoint ``path`` as rank 0 reads it (None if absent), on every rank: only
        rank 0 needs to see the run directory."""
        state = None
        if self.writes and path.is_file():
            state = load_checkpoint(path, self.device)
        state = broadcast_object(state, self.ctx)
        return state

    def save(self, state: dict[str, Any], path: Path) -> None:
        """Write a checkpoint atomically, from rank 0 only."""
        if self.writes:
            save_atomic(state, path)

    def record(self, record: dict[str, Any]) -> None:
        """Append a metrics.jsonl record, from rank 0 only."""
        if self.writes:
            rd.append_metrics(self.run_dir, record)
            if self.logger is not None:
                self.logger.log(record)

    @torch.no_grad()
    def evaluate(self, split: str = "test", target: torch.Tensor | None = None,
                 method: Method | None = None) -> dict[str, float]:
        """Metrics on ``val`` (training items masked) or ``test`` (training and
        validation items masked); ``target`` replaces the split's pairs (a slice).
        ``method`` (default: the one trained) is another model on the same data and
        protocol, e.g. the popularity baseline the results are compared with."""
        method = self.method if method is None else method
        method.eval()
        return self.task.evaluate(method, split, target)

    # -- checkpoints ------------------------------------------------------
    def _state(self, epoch: int, phase: str = "finetune") -> dict[str, Any]:
        """A resumable checkpoint; ``phase`` ``"pretrain"``: ``epoch`` is a pre-training epoch."""
        method_gen = self.method.generator
        # Per rank: each rank draws its own views and dropout (docs/distributed.md).
        per_rank = gather_object({
            "method_generator": method_gen.get_state() if method_gen is not None else None,
            "torch_rng": torch.get_rng_state()}, self.ctx)
        return {
            "phase": phase, "epoch": epoch, "step": self.step, "world_size": self.ctx.world_size,
            "pretrain_times": self.pretrain_times, "epoch_times": self.epoch_times,
            "elapsed_s": self.elapsed_s, "method": self.method.state_dict(),
            "optimizer": self.optimizer.state_dict() if self.optimizer else None,
            "early_stopping": self.stopper.state_dict(),
            "generator": self.generator.get_state(),
            "ranks": per_rank,
        }

    def resume(self) -> None:
        """Continue from ``last.pt`` of the run directory, where the scheme says
        (:meth:`~ssgraphrec.train.schemes.Scheme.resume_at`): a checkpoint of the
        pre-training phase continues pre-training; one of the joint phase re-enters
        it (layers frozen again after pre-training), then loads the optimizer state."""
        state = self.load_main(self.run_dir / rd.LAST)
        if state is None:
            raise ConfigError(f"cannot resume {self.run_dir}: no {rd.LAST} there")
        saved_world = int(state.get("world_size", 1))
        if saved_world != self.ctx.world_size:
            raise ConfigError(f"cannot resume {self.run_dir} on {self.ctx.world_size} rank(s): it "
                              f"was trained on {saved_world} (each rank's views and batches "
                              f"depend on it); resume with --nproc {saved_world}")
        self.method.load_state_dict(state["method"])
        phase = state.get("phase", "finetune")
        removed = (rd.align_with_checkpoint(self.run_dir, phase, int(state["epoch"]))
                   if self.writes else {})
        if any(removed.values()):
            self.log(f"resume: removed what an interrupted epoch left behind "
                     f"({removed['metrics_lines']} metrics line(s) past the checkpoint, "
                     f"{removed['temp_files']} temporary file(s))")
        self.scheme.resume_at(self, phase, int(state["epoch"]))
        if self.optimizer and state["optimizer"]:
            try:
                self.optimizer.load_state_dict(state["optimizer"])
            except ValueError as exc:
                raise ConfigError(f"cannot resume {self.run_dir}: the saved optimizer does not "
                                  f"fit the trainable parameters of this run ({exc})") from None
        self.stopper.load_state_dict(state["early_stopping"])
        self.generator.set_state(state["generator"].cpu())
        ranks = state.get("ranks") or [{  # a checkpoint written before runs had ranks
            "method_generator": state.get("method_generator"), "torch_rng": state["torch_rng"]}]
        own = ranks[self.ctx.rank]
        if own["method_generator"] is not None and self.method.generator is not None:
            self.method.generator.set_state(own["method_generator"].cpu())
        torch.set_rng_state(own["torch_rng"].cpu())
        self.epoch_times = list(state.get("epoch_times", []))
        self.elapsed_s = float(state.get("elapsed_s", sum(self.epoch_times)))
        self.step = int(state.get("step", 0))
        self.pretrain_times = list(state.get("pretrain_times", []))

    # -- training ---------------------------------------------------------
    def train_epoch(self, epoch: int, pretrain: bool = False,
                    max_steps: int | None = None) -> dict[str, float]:
        """One epoch of ``method.loss`` (or ``method.pretrain_loss`` when ``pretrain``);
        the mean of each named loss term. ``max_steps`` ends the epoch after that many
        batches (``ssgraphrec bench speed --steps``: a window of a long epoch)."""
        method = self.method
        method.train()
        if pretrain:
            method.on_pretrain_epoch_start(epoch)
            own = method.pretrain_batches(self.generator)
            batches, n = own if own is not None else self.task.batches(method, self.generator)
            total = self.scheme.pretrain_epochs
        else:
            method.on_epoch_start(epoch)
            batches, n = self.task.batches(method, self.generator)
            total = self.epochs
        self.epoch_batches = n
        totals: dict[str, float] = {}
        bar = tqdm(batches, total=n, desc=f"{'pre-train ' if pretrain else ''}epoch "
                   f"{epoch + 1}/{total}", disable=not self.progress, leave=False,
                   file=sys.stderr, dynamic_ncols=True)
        steps = 0
        for steps, batch in enumerate(bar, 1):
            terms = self.loss_module(batch, pretrain)
            if not pretrain and self.ssl_warmup > 0:
                scale = self.ssl_scale()
                terms = {k: v * scale if k in method.ssl_terms else v for k, v in terms.items()}
            loss = self._step(terms, epoch, steps)
            if not pretrain:
                self.step += 1
            for k, v in terms.items():
                totals[k] = totals.get(k, 0.0) + float(v.detach())
            bar.set_postfix(loss=f"{float(loss):.4f}")
            if max_steps is not None and steps >= max_steps:
                break
        return {k: v / max(steps, 1) for k, v in totals.items()}

    def _step(self, terms: dict[str, torch.Tensor], epoch: int, step: int) -> torch.Tensor:
        """One optimizer step on the sum of ``terms``; a non-finite sum stops the run with
        the epoch, the step and the terms that caused it."""
        loss = sum(terms.values())
        if not torch.isfinite(loss):
            bad = {k: float(v) for k, v in terms.items() if not torch.isfinite(v)}
            named = ", ".join(f"{k} = {v}" for k, v in bad.items()) or f"total = {float(loss)}"
            raise FloatingPointError(
                f"the loss became non-finite at epoch {epoch + 1}, step {step} ({named}); "
                "lower the learning rate, or check the data for extreme weights")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss.detach()

    def pretrain(self) -> dict[str, Any]:
        """The pre-training phase: the scheme's ``pretrain_epochs`` epochs of
        ``pretrain_loss``, ``pretrain`` records in metrics.jsonl, the encoder saved to
        ``encoder.pt``. Returns the phase record (epochs, seconds per epoch) also kept
        in ``encoder.pt``."""
        self.method.to(self.device)
        for epoch in range(self.start_pretrain_epoch, self.scheme.pretrain_epochs):
            t0 = time.perf_counter()
            losses = self.train_epoch(epoch, pretrain=True)
            self.pretrain_times.append(time.perf_counter() - t0)
            self.record({"phase": "pretrain", "pretrain_epoch": epoch + 1, "loss": losses,
                         "train_s": round(self.pretrain_times[-1], 3)})
            self.save(self._state(epoch, phase="pretrain"), self.run_dir / rd.LAST)
            self.log(f"pre-train epoch {epoch + 1:3d} | "
                     + " ".join(f"{k} {v:.4f}" for k, v in losses.items())
                     + f" | {self.pretrain_times[-1]:.1f}s")
        phase = {"epochs": len(self.pretrain_times), "method": self.method.name,
                 "train_s_per_epoch": _mean(self.pretrain_times),
                 "train_s_total": sum(self.pretrain_times)}
        self.method.eval()
        self.save({"encoder": self.method.encoder_state_dict(), "phase": phase,
                   "method": self.method.name, "data": summary(self.data)},
                  self.run_dir / ENCODER)
        return phase

    def _validate(self, epoch: int, record: dict[str, Any]) -> str:
        """Validation after ``epoch``: metrics into ``record``, early-stopping bookkeeping,
        ``best.pt`` on improvement; returns the epoch line's validation part."""
        t1 = time.perf_counter()
        try:
            val = self.evaluate("val")
        except SSGraphRecError as exc:  # e.g. scores that became NaN: say when
            raise SSGraphRecError(f"after epoch {epoch + 1}: {exc}") from None
        record["val"] = val
        record["eval_s"] = round(time.perf_counter() - t1, 3)
        improved = self.stopper.step(val[self.monitor], epoch + 1)
        if improved:
            self.best_val = val
            self.save({"epoch": epoch + 1, "method": self.method.state_dict()},
                      self.run_dir / rd.BEST)
        head = self.task.headline
        return (f" | val {head} {val[head]:.4f} {self.monitor} {val[self.monitor]:.4f}"
                + (" *" if improved else ""))

    def _run_epoch(self, epoch: int) -> bool:
        """Train, validate, log and checkpoint one joint epoch; True: stop early."""
        t0 = time.perf_counter()
        losses = self.train_epoch(epoch)
        self.epoch_times.append(time.perf_counter() - t0)
        record: dict[str, Any] = {"epoch": epoch + 1, "loss": losses,
                                  "train_s": round(self.epoch_times[-1], 3)}
        msg = f"epoch {epoch + 1:3d} | " + " ".join(f"{k} {v:.4f}" for k, v in losses.items())
        if self.task.has_val:
            msg += self._validate(epoch, record)
        self.elapsed_s += time.perf_counter() - t0
        record["elapsed_s"] = round(self.elapsed_s, 3)
        self.log(msg + f" | {self.epoch_times[-1]:.1f}s")
        self.record(record)
        self.save(self._state(epoch), self.run_dir / rd.LAST)
        if self.on_epoch_end is not None:
            self.on_epoch_end(epoch + 1, record.get("val", {}))
        if self.stopper.should_stop and self.step >= self.min_steps:
            budget = f" (past the minimum of {self.min_steps} steps)" if self.min_steps else ""
            self.log(f"early stop: no {self.monitor} gain for {self.stopper.bad_epochs} "
                     f"epochs{budget}; best epoch {self.stopper.best_epoch}")
            return True
        if self._over_budget() and epoch + 1 < self.epochs:
            self.log(f"time budget: {self.elapsed_s / 60:.1f} of {self.budget_s / 60:g} minutes "
                     f"spent after epoch {epoch + 1}; best epoch {self.stopper.best_epoch or epoch + 1}")
            return True
        return False

    def _over_budget(self) -> bool:
        """Whether the time budget is spent on any rank: each rank reads its own clock,
        and the ranks must stop after the same epoch, or the others would wait for it."""
        if self.budget_s is None:
            return False
        spent = torch.tensor([self.elapsed_s >= self.budget_s], device=self.device)
        return bool(any_rank(spent, self.ctx))

    def _select(self, epochs_run: int) -> tuple[int, dict[str, float]]:
        """Load the best validation epoch (the last without validation); its epoch and
        validation metrics."""
        best = self.load_main(self.run_dir / rd.BEST) if self.task.has_val else None
        if best is not None:
            self.method.load_state_dict(best["method"])
            return best["epoch"], self.best_val or self.evaluate("val")
        self.save({"epoch": epochs_run, "method": self.method.state_dict()},
                  self.run_dir / rd.BEST)
        return epochs_run, self.evaluate("val") if self.task.has_val else {}

    def _test(self) -> tuple[dict[str, Any], float]:
        """The test split, read once: metrics, slices, and the seconds it took."""
        if not self.evaluate_test:
            return {}, 0.0
        t0 = time.perf_counter()
        out: dict[str, Any] = {"test": self.evaluate("test")}
        seconds = time.perf_counter() - t0
        if self.task.slices:
            out["test_slices"] = evaluate_slices(self.task.slices,
                                                 lambda t: self.evaluate("test", t))
        return out, seconds

    def fit(self) -> dict[str, Any]:
        """Run the scheme's phases, select the best epoch on validation, evaluate on test."""
        t_start = time.perf_counter()
        phases = self.scheme.begin(self)
        epochs_run = self.start_epoch
        if self.method.trainable:
            for epoch in range(self.start_epoch, self.epochs):
                epochs_run = epoch + 1
                if self._run_epoch(epoch):
                    break
        if self.logger is not None:
            self.logger.close()
        best_epoch, best_val = self._select(epochs_run)
        extra, eval_s = self._test()
        timing = {"train_s_per_epoch": _mean(self.epoch_times),
                  "train_s_total": sum(self.epoch_times)}
        if phases:
            phases["finetune"] = {"epochs": epochs_run,
                                  "lr": self.scheme.joint_lr(self.method), **timing}
            extra.update(scheme=self.scheme.name, phases=phases)
        return {
            "task": self.task.kind, **extra, "val": best_val, "best_epoch": best_epoch,
            "epochs_trained": epochs_run,
            "selection": ("best validation " + self.monitor) if self.task.has_val
            else "last epoch (no validation split)",
            "timing": {**timing, "test_eval_s": eval_s,
                       "total_s": time.perf_counter() - t_start},
        }
