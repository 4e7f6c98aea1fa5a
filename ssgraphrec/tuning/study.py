"""``ssgraphrec tune``: an Optuna study over a method's search space, scored on validation.

Each trial trains the method with the settings the TPE sampler suggests
(Bergstra et al., NeurIPS 2011; Optuna, Akiba et al., KDD 2019), reports the
validation metric (``monitor``, default NDCG@20) after every epoch to the
pruner (median or Hyperband; Li et al., JMLR 2018), and returns the best
validation value of its run. The test split is never evaluated: the trainer
runs with ``evaluate_test=False``.

The study lives in ``DIR/study.db`` (SQLite). Running the same command again
continues it: ``--trials`` is the number of finished (complete or pruned) trials
the study should hold, so a killed tune loses no finished trial and a larger
``--trials`` adds more. A trial's run folder keeps its ``config.yaml`` and
``metrics.jsonl``; its checkpoints are deleted when it ends.
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import RunConfig, apply
from ..errors import ConfigError, SSGraphRecError
from ..methods import METHODS
from .space import TUNABLE_RUN_FIELDS, Param, check_space, restrict, search_space

STUDY_FILE = "study.db"
STUDY_NAME = "ssgraphrec"
PRUNERS = ("median", "hyperband", "none")
#: Run settings that define what a study measures: a study run under other values is
#: another study (refused on resume).
PROTOCOL_FIELDS = ("method", "dataset", "epochs", "split", "test_ratio", "val_ratio", "seed",
                   "patience", "min_steps", "monitor", "eval_ks", "scheme", "pretrain_epochs",
                   "train_fraction")


@dataclass
class TuneSpec:
    """What to tune and how (see ``ssgraphrec tune --help``)."""

    #: the user's run settings, in layering order (``--config`` file, options, ``--set``);
    #: they fix those settings for every trial.
    layers: list[dict[str, Any]]
    trials: int
    out: Path
    timeout: float | None = None
    jobs: int = 1
    pruner: str = "median"
    sampler_seed: int = 0
    #: a user's space: replaces or adds parameters of the method's declared space
    space_override: dict[str, Param] = field(default_factory=dict)
    command: str = ""

    def base_config(self) -> RunConfig:
        """The settings every trial shares: the small-data remedies (as ``train`` applies
        them), then the user's layers; a trial's parameters go on top."""
        from .tuned import remedy_layer

        probe = RunConfig()
        for layer in self.layers:
            apply(probe, dict(layer))
        cfg = RunConfig()
        apply(cfg, remedy_layer(probe.method))
        for layer in self.layers:
            apply(cfg, dict(layer))
        return cfg

    def fixed_keys(self) -> set[str]:
        keys: set[str] = set()
        for layer in self.layers:
            for key, value in layer.items():
                key = key.replace("-", "_")
                keys.update(value if key == "params" and isinstance(value, dict) else [key])
        return keys


def import_optuna():
    try:
        import optuna
    except ImportError:  # pragma: no cover - optuna is a dependency
        raise SSGraphRecError("tuning needs Optuna: pip install optuna") from None
    import warnings

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # The heartbeat of RDB storage is marked experimental; it is what marks a killed trial failed.
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    return optuna


def resolve_space(spec: TuneSpec, cfg: RunConfig) -> dict[str, Param]:
    """The method's declared space, with the user's overrides, minus the settings fixed
    by the user's layers."""
    cls = METHODS.get(cfg.method)
    space = {**search_space(cls), **spec.space_override}
    check_space(cls, space)
    space = restrict(space, spec.fixed_keys())
    if not space:
        raise ConfigError(f"every parameter of the search space of {cfg.method!r} is fixed by "
                          "your settings: nothing left to tune")
    return space


def protocol(cfg: RunConfig, space: dict[str, Param]) -> dict[str, Any]:
    """What a study measures: the protocol settings, the fixed hyper-parameters, the space."""
    out = {k: getattr(cfg, k) for k in PROTOCOL_FIELDS}
    fixed = {k: getattr(cfg, k) for k in TUNABLE_RUN_FIELDS if getattr(cfg, k) not in (None, 0)}
    out["fixed"] = {**fixed, **cfg.params}
    out["space"] = {k: space[k].describe() for k in sorted(space)}
    return json.loads(json.dumps(out, default=str))


def check_out(out: Path) -> None:
    """:class:`ConfigError` unless ``out`` is (or can become) a writable folder."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(f"cannot write the tune folder {out}: {exc.strerror or exc}") from None


def open_study(spec: TuneSpec, proto: dict[str, Any], *, create: bool = True,
               starting_point: dict[str, Any] | None = None):
    """The study of ``spec.out``, created with ``proto`` (and ``starting_point`` queued
    as its first trial) or checked against it."""
    optuna = import_optuna()
    path = spec.out / STUDY_FILE
    try:
        storage = storage_for(path)
        names = ([s.study_name for s in optuna.get_all_study_summaries(storage)]
                 if path.exists() else [])
    except Exception as exc:  # SQLAlchemy's errors: a file that is not an Optuna database
        raise ConfigError(f"{path} is not an Optuna study database ({type(exc).__name__}); "
                          "tune into another --out, or remove the file") from None
    if names and STUDY_NAME not in names:
        raise ConfigError(f"{path} is not a study of ssgraphrec tune (it holds {', '.join(names)})")
    if STUDY_NAME in names:
        study = optuna.load_study(study_name=STUDY_NAME, storage=storage)
        saved = study.user_attrs.get("protocol")
        if saved is not None and saved != proto:
            diff = [k for k in sorted(set(saved) | set(proto)) if saved.get(k) != proto.get(k)]
            shown = "; ".join(f"{k}: study {saved.get(k)!r}, now {proto.get(k)!r}" for k in diff)
            raise ConfigError(f"{path} holds a study of {saved.get('method')} on "
                              f"{saved.get('dataset')} under other settings ({shown}); continue it "
                              "with its own settings, or tune into another --out")
        return study
    if not create:
        raise ConfigError(f"no study in {spec.out}")
    study = optuna.create_study(study_name=STUDY_NAME, storage=storage, direction="maximize")
    study.set_user_attr("protocol", proto)
    if starting_point:
        # Trial 0 is the starting configuration, so the search can only improve on it.
        study.enqueue_trial(starting_point, user_attrs={"start": "defaults"})
    study.set_user_attr("created", time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    return study


def storage_for(path: Path):
    optuna = import_optuna()
    # Heartbeats let a later run see a trial of a killed tune as failed, not running.
    return optuna.storages.RDBStorage(f"sqlite:///{path}", heartbeat_interval=30, grace_period=90)


def make_pruner(name: str, epochs: int):
    """Optuna's median or Hyperband pruner, never pruning in the first quarter of the
    epochs: contrastive methods dip before they rise (docs/tuning.md)."""
    optuna = import_optuna()
    warmup = max(2, epochs // 4)
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=warmup)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=warmup, max_resource=max(epochs, warmup),
                                              reduction_factor=3)
    if name == "none":
        return optuna.pruners.NopPruner()
    raise ConfigError(f"unknown pruner {name!r}; expected one of {', '.join(PRUNERS)}")


def make_sampler(seed: int, trials: int, done: int, worker: int = 0):
    """TPE with a seed of its own per worker and per resumption, so that neither two
    workers nor a resumed study repeat the same random start-up trials."""
    optuna = import_optuna()
    return optuna.samplers.TPESampler(seed=seed + 7919 * worker + done,
                                      n_startup_trials=max(3, min(10, trials // 3)))


def defaults_in(space: dict[str, Param], base: RunConfig) -> dict[str, Any]:
    """The method's own settings (its paper's, or the user's fixed ones) for the keys of
    ``space`` whose value lies in it: the first trial of a new study."""
    from ..config import method_config

    cfg = method_config(METHODS.get(base.method).config_class, base, base.method)
    point = {}
    for key, param in space.items():
        value = getattr(base, key) if key in TUNABLE_RUN_FIELDS and getattr(base, key) \
            is not None else getattr(cfg, key, None)
        if value is not None and param.contains(value):
            point[key] = value
    return point


def trial_config(base: RunConfig, params: dict[str, Any]) -> RunConfig:
    """``base`` with a trial's parameters: run settings set, the rest method settings."""
    cfg = dataclasses.replace(base, params=dict(base.params))
    for key, value in params.items():
        if key in TUNABLE_RUN_FIELDS:
            setattr(cfg, key, value)
        else:
            cfg.params[key] = value
    return cfg


def objective_for(spec: TuneSpec, base: RunConfig, space: dict[str, Param]) -> Callable:
    """The function a study optimises: one training run scored on validation."""
    optuna = import_optuna()
    from ..train.run import train

    def objective(trial) -> float:
        params = {key: param.suggest(trial, key) for key, param in space.items()}
        cfg = trial_config(base, params)
        run_dir = spec.out / "trials" / f"{trial.number:04d}"
        if run_dir.exists():
            shutil.rmtree(run_dir)

        def report(epoch: int, val: dict[str, float]) -> None:
            value = val.get(cfg.monitor)
            if value is None:
                return
            trial.report(value, epoch)
            if trial.should_prune():
                trial.set_user_attr("pruned_at_epoch", epoch)
                raise optuna.TrialPruned(f"pruned at epoch {epoch} ({cfg.monitor} {value:.4f})")

        try:
            _, results = train(cfg, str(run_dir), progress=False, log=lambda _msg: None,
                               on_epoch_end=report, evaluate_test=False,
                               provenance={"config_source": "user", "tune_trial": trial.number})
        except (SSGraphRecError, FloatingPointError) as exc:
            trial.set_user_attr("error", str(exc))
            raise
        finally:
            for ckpt in run_dir.glob("*.pt"):
                ckpt.unlink()
        trial.set_user_attr("best_epoch", results["best_epoch"])
        trial.set_user_attr("epochs_trained", results["epochs_trained"])
        trial.set_user_attr("train_s_per_epoch", round(results["timing"]["train_s_per_epoch"], 3))
        value = results["val"].get(cfg.monitor)
        if value is None or not math.isfinite(value):
            raise SSGraphRecError(f"trial {trial.number}: no validation {cfg.monitor}")
        return float(value)

    return objective


def finished(study) -> int:
    optuna = import_optuna()
    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    return len(study.get_trials(deepcopy=False, states=states))


def run_worker(spec: TuneSpec, threads: int, n_trials: int, callbacks: list | None = None,
               worker: int = 0) -> None:
    """Worker ``worker``: ``n_trials`` trials (its share, counted by the caller before any
    worker started) of the shared study, stopping early once it holds ``spec.trials``
    finished ones (``callbacks`` are Optuna's, called after each trial)."""
    import torch

    optuna = import_optuna()
    torch.set_num_threads(threads)
    base = spec.base_config()
    space = resolve_space(spec, base)
    study = open_study(spec, protocol(base, space), create=False)
    study.sampler = make_sampler(spec.sampler_seed, spec.trials, len(study.trials), worker)
    study.pruner = make_pruner(spec.pruner, base.epochs)
    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    if worker > 0:
        # SQLite cannot lock a queued trial for one worker: leave the queued starting
        # point to worker 0 rather than run it twice.
        waiting = (optuna.trial.TrialState.WAITING,)
        deadline = time.monotonic() + 120
        while study.get_trials(deepcopy=False, states=waiting) and time.monotonic() < deadline:
            time.sleep(0.5)
    study.optimize(objective_for(spec, base, space), n_trials=n_trials,
                   timeout=spec.timeout, catch=(SSGraphRecError, FloatingPointError),
                   callbacks=[optuna.study.MaxTrialsCallback(spec.trials, states=states),
                              *(callbacks or [])])


def _worker_main(spec: TuneSpec, worker: int, n_trials: int) -> None:  # pragma: no cover
    try:
        run_worker(spec, threads=1, n_trials=n_trials, worker=worker)
    except SSGraphRecError as exc:
        print(f"tune worker: {exc}", file=sys.stderr)
        raise SystemExit(1) from None


@dataclass
class TuneOutcome:
    study: Any
    outputs: dict[str, Path]
    ran: int


def tune(spec: TuneSpec, log: Callable[[str], None] = print, progress: bool = True) -> TuneOutcome:
    """Run (or continue) the study of ``spec``; write best.yaml, the trials tables and the
    history plot. Settings are checked before any trial runs."""
    from tqdm.auto import tqdm

    from ..train.run import build
    from .report import write_outputs

    if isinstance(spec.trials, bool) or not isinstance(spec.trials, int) or spec.trials < 1:
        raise ConfigError(f"--trials must be a whole number >= 1, got {spec.trials!r}")
    if spec.jobs < 1:
        raise ConfigError(f"--jobs must be >= 1, got {spec.jobs}")
    if spec.timeout is not None and not spec.timeout > 0:
        raise ConfigError(f"--timeout must be a positive number of seconds, got {spec.timeout}")
    if spec.pruner not in PRUNERS:
        raise ConfigError(f"unknown pruner {spec.pruner!r}; expected one of {', '.join(PRUNERS)}")
    base = spec.base_config()
    space = resolve_space(spec, base)
    if not base.val_ratio > 0 and base.split != "fixed":
        raise ConfigError("tuning scores trials on the validation split: --val-ratio must be > 0")
    check_out(spec.out)
    study = open_study(spec, protocol(base, space), starting_point=defaults_in(space, base))
    # Fail on the data or the settings now, once, rather than in every trial.
    build(trial_config(base, {}))
    before = finished(study)
    if before >= spec.trials:
        log(f"the study in {spec.out} already holds {before} finished trials (--trials "
            f"{spec.trials}); raise --trials to run more")
    else:
        log(f"tuning {base.method} on {base.dataset}: {spec.trials - before} more trial(s) "
            f"({before} finished), {spec.jobs} worker(s), pruner {spec.pruner}, space: "
            + ", ".join(space))
        bar = tqdm(total=spec.trials, initial=before, desc="trials", disable=not progress,
                   file=sys.stderr, dynamic_ncols=True)
        remaining = spec.trials - before
        if spec.jobs == 1:
            _run_inline(spec, base, bar, remaining)
        else:
            shares = [remaining // spec.jobs + (k < remaining % spec.jobs)
                      for k in range(spec.jobs)]
            _run_workers(spec, bar, [n for n in shares if n > 0])
        bar.close()
    study = open_study(spec, protocol(base, space))
    outputs = write_outputs(study, spec, base)
    return TuneOutcome(study, outputs, finished(study) - before)


def _run_inline(spec: TuneSpec, base: RunConfig, bar, n_trials: int) -> None:
    import torch

    threads = base.threads or 1
    previous = torch.get_num_threads()
    try:
        def step(study, trial) -> None:
            bar.n = finished(study)
            best = _best_value(study)
            if best is not None:
                bar.set_postfix({f"best {base.monitor}": f"{best:.4f}"})
            bar.refresh()

        run_worker(spec, threads, n_trials, callbacks=[step])
    finally:
        torch.set_num_threads(previous)


def _run_workers(spec: TuneSpec, bar, shares: list[int]) -> None:
    import multiprocessing as mp

    optuna = import_optuna()
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_worker_main, args=(spec, k, n), daemon=False)
             for k, n in enumerate(shares)]
    for p in procs:
        p.start()
    storage = storage_for(spec.out / STUDY_FILE)
    try:
        while any(p.is_alive() for p in procs):
            time.sleep(2.0)
            study = optuna.load_study(study_name=STUDY_NAME, storage=storage)
            bar.n = finished(study)
            best = _best_value(study)
            if best is not None:
                bar.set_postfix({"best": f"{best:.4f}"})
            bar.refresh()
    except KeyboardInterrupt:
        for p in procs:
            p.terminate()
        raise
    finally:
        for p in procs:
            p.join()
    failed = [p.exitcode for p in procs if p.exitcode]
    if failed:
        raise SSGraphRecError(f"{len(failed)} tune worker(s) failed (exit codes {failed}); "
                              "finished trials are kept in the study")


def _best_value(study) -> float | None:
    try:
        return float(study.best_value)
    except ValueError:
        return None
