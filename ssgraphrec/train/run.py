"""Assemble a run from a RunConfig: data, method, trainer, run directory."""

from __future__ import annotations

import copy
import dataclasses
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch_geometric.data import HeteroData

from ..config import RunConfig, apply, method_config
from ..data import DATASETS, load_dataset
from ..data.cold_simulation import simulate_cold_users, simulation_summary
from ..data.schema import INTERACTS, summary, task_of
from ..data.views import training_view
from ..distributed import SINGLE, DistContext, broadcast_object, init_distributed
from ..errors import ConfigError, SSGraphRecError
from ..eval.ranking import check_cutoffs
from ..methods import METHODS, Method
from ..methods.base import MethodConfig
from ..ranges import check_ranges
from ..sparse import resolve_backend
from . import run_dir as rd
from .checkpoint import load_checkpoint
from .device import resolve_device
from .pretrained import init_encoder, init_phase
from .schemes import check_run, resolve_scheme
from .seed import deterministic_cpu_kernels, seed_everything
from .tasks import DEFAULT_CUTOFFS, LinkPredictionTask, RankingTask, task_class
from .trainer import Trainer

VIEW_SEED_OFFSET = 7919
#: Rank r of a distributed run draws its views (SGL's dropped edges, SimGCL's noise) from
#: the seed ``seed + VIEW_SEED_OFFSET + r * RANK_SEED_STRIDE`` (docs/distributed.md).
RANK_SEED_STRIDE = 1_000_003
COLD_SEED_OFFSET = 104729

#: Validation metric of link-prediction data when ``monitor`` is left at its default.
LINK_PREDICTION_MONITOR = LinkPredictionTask.default_monitor


@dataclass
class Run:
    """A dataset and a method built from one config, on one device."""

    cfg: RunConfig
    data: HeteroData
    method: Method
    device: torch.device
    generator: torch.Generator
    #: the ranks of a distributed run (one process: rank 0 of 1)
    ctx: DistContext = SINGLE


def build(cfg: RunConfig) -> Run:
    """Seed, load and split the data, and build the method on the device.

    ``cfg`` is not changed: what the run resolves (the task's cut-offs, the monitor of
    link-prediction data) is in the returned ``Run.cfg``.
    """
    cfg = copy.deepcopy(cfg)
    device = resolve_device(cfg.device)
    ctx = init_distributed(device)   # one process unless launched by torchrun
    cls = METHODS.get(cfg.method)
    mcfg = method_config(cls.config_class, cfg, cfg.method)
    _check_run_settings(cfg, mcfg)
    seed_everything(cfg.seed)
    if device.type == "cpu":
        deterministic_cpu_kernels()
    data = _load_data(cfg, cls)
    if device.type != "cpu":  # the readers build CPU tensors; PyG's ``to`` would walk
        data = data.to(device)  # every element of the node-name lists (0.1 to 1 s)
    generator = torch.Generator(device=device).manual_seed(cfg.seed)
    # Views draw from their own stream, so that every method of a seed sees the same
    # training batches and negatives.
    view_generator = torch.Generator(device=device).manual_seed(
        cfg.seed + VIEW_SEED_OFFSET + ctx.rank * RANK_SEED_STRIDE)
    # The method sees the training view only: no validation or test interaction.
    method = cls(training_view(data), mcfg, backend=cfg.sparse_backend,
                 generator=view_generator).to(device)
    if cfg.train_fraction != 1.0:
        if task_of(data) == "ranking":
            raise SSGraphRecError("train_fraction applies to session and sequence data only")
        method.restrict_training(cfg.train_fraction,
                                 torch.Generator(device=device).manual_seed(cfg.seed))
    return Run(cfg, data, method, device, generator, ctx)


def _check_run_settings(cfg: RunConfig, mcfg: MethodConfig) -> None:
    """The run settings' ranges; ``--threads`` applied."""
    if cfg.epochs < 0:
        raise SSGraphRecError(f"--epochs must be >= 0, got {cfg.epochs}")
    if mcfg.batch_size < 1:
        raise SSGraphRecError(f"batch size must be >= 1, got {mcfg.batch_size}")
    if cfg.threads is not None:
        if cfg.threads < 1:
            raise SSGraphRecError(f"--threads must be >= 1, got {cfg.threads}")
        torch.set_num_threads(cfg.threads)
    check_ranges(cfg)


def _load_data(cfg: RunConfig, cls: type[Method]) -> HeteroData:
    """Load and split ``cfg.dataset`` (its view for the method's task), check it against
    the method and the run's cut-offs (resolved into ``cfg``), and simulate cold users."""
    data = load_dataset(_view_for(cfg.dataset, cls.tasks), split=cfg.split,
                        test_ratio=cfg.test_ratio, val_ratio=cfg.val_ratio, seed=cfg.seed,
                        root=cfg.data_root)
    task = task_of(data)
    if task not in cls.tasks:
        fitting = sorted(name for name in METHODS if task in METHODS.get(name).tasks)
        datasets = sorted(name for name in DATASETS if DATASETS.get(name).task in cls.tasks)
        raise SSGraphRecError(f"method {cfg.method!r} runs on {'/'.join(cls.tasks)} data, and dataset "
                              f"{cfg.dataset!r} holds {task} data; methods for it: {', '.join(fitting)}; "
                              f"datasets for {cfg.method}: {', '.join(datasets)}")
    _resolve_cutoffs(cfg, cls, data)
    if task == "ranking" and data[INTERACTS].test_edge_index.size(1) == 0:
        raise SSGraphRecError(f"the test split is empty for dataset {cfg.dataset!r}: nothing to "
                              "evaluate (every user has a single interaction, or the test file "
                              "is empty)")
    if cfg.simulate_cold is not None:
        if task != "ranking":
            raise SSGraphRecError(f"simulate_cold applies to ranking data, not {task} data")
        # Its own seeded stream: the same users are cut down for every method of a seed.
        data = simulate_cold_users(data, cfg.simulate_cold, cfg.simulate_cold_share,
                                   torch.Generator().manual_seed(cfg.seed + COLD_SEED_OFFSET))
    return data


def _resolve_cutoffs(cfg: RunConfig, cls: type[Method], data: HeteroData) -> None:
    """``cfg.eval_ks`` and ``cfg.monitor`` where the user left them: the method's paper's
    cut-offs (MicRec: HIT@50 ... 500) or the task's, and AUC on link-prediction data."""
    if not cfg.eval_ks:
        cfg.eval_ks = list(cls.default_cutoffs or DEFAULT_CUTOFFS[task_of(data)])
        if cls.default_monitor and cfg.monitor == RunConfig.monitor:
            cfg.monitor = cls.default_monitor
    if task_class(data) is LinkPredictionTask:   # scored by AUC: no cut-offs to check
        if cfg.monitor == RunConfig.monitor:
            cfg.monitor = LINK_PREDICTION_MONITOR
    else:
        check_cutoffs(cfg.eval_ks, int(data["item"].num_nodes))


def _view_for(dataset: str, tasks: tuple[str, ...]) -> str:
    """The registered name to load: ``dataset`` itself, or its view for one of the method's
    tasks (``amazon-beauty`` -> ``amazon-beauty-ranking`` for a ranking method)."""
    if dataset not in DATASETS:
        return dataset
    spec = DATASETS.get(dataset)
    if spec.task in tasks or not spec.views:
        return dataset
    return next((spec.views[t] for t in tasks if t in spec.views), dataset)


def full_config(run: Run) -> dict[str, Any]:
    """What config.yaml holds: the run config with every method setting resolved."""
    out = run.cfg.to_dict()
    out["params"] = dataclasses.asdict(run.method.cfg)
    return out


def train(cfg: RunConfig | None, out: str | None = None, *, resume: str | None = None,
          epochs: int | None = None, progress: bool = True, log=None,
          on_epoch_end=None, evaluate_test: bool = True,
          provenance: dict[str, Any] | None = None, device: str | None = None,
          threads: int | None = None) -> tuple[Path, dict[str, Any]]:
    """Train as ``cfg`` says; return the run directory and the results.

    With ``resume=RUN_DIR`` the saved config is used (``epochs`` may extend
    it) and training continues from the run's last checkpoint. ``on_epoch_end``
    and ``evaluate_test`` are the :class:`Trainer`'s (tuning passes both);
    ``device`` and ``threads`` apply to a resumed run (others take them from ``cfg``).
    ``provenance`` says where the settings came from
    (:func:`ssgraphrec.tuning.tuned.resolve_run_config`); it goes to
    ``results.json`` (``config_source``: ``tuned``, ``paper`` or ``user``).
    """
    if resume:
        cfg, provenance = _resumed_config(Path(resume), epochs, device, threads, provenance)
    elif cfg is None:
        raise SSGraphRecError("train() needs a config or a run to resume")
    else:
        absolute_paths(cfg)
    run = build(cfg)
    cfg = run.cfg
    # Settings that fail do so before a run directory exists.
    scheme, pretrain_epochs = resolve_scheme(cfg, run.method)
    check_run(cfg, run.method, run.data, scheme, pretrain_epochs)
    check_refit(run)
    pretrained = None
    if cfg.init and not resume:
        pretrained = init_encoder(run.method, run.data, cfg.init, cfg.dataset)
    elif cfg.init:  # a resumed run's checkpoint already holds the initialised encoder
        pretrained = init_phase(cfg.init)
    if provenance is None:
        provenance = {"config_source": "user" if cfg.params or cfg.lr is not None
                      or cfg.batch_size is not None else "paper"}
    run_path = Path(resume) if resume else _new_run_dir(run, out, provenance)
    trainer = _trainer(run, run_path, scheme, pretrain_epochs, pretrained, progress=progress,
                       log=log, on_epoch_end=on_epoch_end,
                       evaluate_test=evaluate_test and not cfg.refit)  # a refit is tested instead
    if resume:
        _resume(trainer, run, run_path)
    try:
        outcome = trainer.fit()
    except (SSGraphRecError, FloatingPointError) as exc:
        if run.ctx.is_main:
            rd.mark_failed(run_path, str(exc))  # the folder says why it holds no results
        raise
    results = _results(run, trainer, outcome, provenance)
    if run.ctx.is_main:
        rd.write_results(run_path, results)
        _write_curves(run_path, trainer)
    if cfg.refit and evaluate_test:
        results = _refit(run, trainer, results, run_path, progress=progress, log=log,
                         provenance=provenance)
    return run_path, results


def _trainer(run: Run, run_path: Path, scheme, pretrain_epochs: int, pretrained, *,
             progress: bool, log, on_epoch_end, evaluate_test: bool) -> Trainer:
    """The :class:`Trainer` of ``run``, from its config and what :func:`train` resolved."""
    cfg = run.cfg
    return Trainer(run.method, run.data, run_path, epochs=cfg.epochs, patience=cfg.patience,
                   monitor=cfg.monitor, ks=cfg.eval_ks, eval_batch_size=cfg.eval_batch_size,
                   generator=run.generator, progress=progress, log=log,
                   mask_history=cfg.mask_history, scheme=scheme,
                   pretrain_epochs=pretrain_epochs, finetune_lr=cfg.finetune_lr,
                   pretrained=pretrained, cold_threshold=cfg.cold_threshold,
                   head_share=cfg.head_share, retrieval=cfg.retrieval,
                   ssl_warmup=cfg.ssl_warmup, min_steps=cfg.min_steps,
                   max_minutes=cfg.max_minutes, on_epoch_end=on_epoch_end,
                   evaluate_test=evaluate_test, logger=cfg.logger)


#: The folder of a run that holds its refit (``--refit``).
REFIT_DIR = "refit"
#: What a refit puts before the selection it refits, in ``results.json``'s ``selection``.
REFIT_SELECTION = "refit on the whole training file to the epoch of "


def check_refit(run: Run) -> None:
    """``--refit`` needs epochs chosen on a validation split carved from user-item training
    data, and a method that trains; anything else is a :class:`ConfigError`."""
    cfg = run.cfg
    if not cfg.refit:
        return
    if not cfg.val_ratio > 0:
        raise ConfigError("--refit trains again for the epochs chosen on validation: it "
                          "needs a validation split (--val-ratio > 0)")
    if task_class(run.data) is not RankingTask or getattr(run.data, "val_from_file", False):
        raise ConfigError("--refit applies to user-item ranking data whose validation split "
                          "is carved from training (not to sessions, sequences, link "
                          "prediction or a split's own validation file)")
    if not run.method.trainable:
        raise ConfigError(f"{cfg.method} does not train: there is nothing to refit")
    if run.ctx.distributed:
        raise ConfigError("--refit runs in one process: train on one rank, or refit apart "
                          "with --val-ratio 0 and --epochs set to the selected epoch")


def _refit(run: Run, trainer: Trainer, results: dict[str, Any], run_path: Path, *,
           progress: bool, log, provenance: dict[str, Any] | None) -> dict[str, Any]:
    """Train ``run``'s config once more in ``run_path/refit``, on the whole training file
    (no validation split, so the validation pairs train too), for the ``best_epoch``
    epochs that validation selected, and test that model; ``results`` with its test
    metrics, written to the run's ``results.json``.

    The selection run's own model is never tested, and the refit has no time budget of
    its own. The test split does not depend on the validation share (it is held out
    first), so both runs see the same test pairs.
    """
    cfg, epochs = run.cfg, results["best_epoch"]
    trainer.log(f"refit: training again on the whole training file, validation pairs "
                f"included, for the {epochs} epochs selected on validation")
    shutil.rmtree(run_path / REFIT_DIR, ignore_errors=True)  # a refit left unfinished starts again
    refit_cfg = dataclasses.replace(cfg, val_ratio=0.0, epochs=epochs, refit=False,
                                    max_minutes=None)
    _, refit = train(refit_cfg, str(run_path / REFIT_DIR), progress=progress, log=log,
                     provenance=provenance)
    merged = {**results, "selection": REFIT_SELECTION + results["selection"],
              "refit": {"run_dir": REFIT_DIR, "epochs": epochs, "data": refit["data"],
                        "timing": refit["timing"]}}
    for key in ("test", "test_slices", "baseline"):
        if key in refit:
            merged[key] = refit[key]
    if run.ctx.is_main:
        rd.write_results(run_path, merged)
    return merged


def reported_model_dir(run_dir: str | Path, selected: bool = False) -> Path:
    """The folder whose ``best.pt`` is the model a run's ``results.json`` reports: the
    refit (``RUN/refit``) of a run trained with ``--refit``, unless ``selected`` asks for
    the model selected on validation; the run itself otherwise. A ``--refit`` run whose
    refit did not finish, or whose refit folder is gone, is a :class:`SSGraphRecError`."""
    run_dir = Path(run_dir)
    if selected or not rd.read_config(run_dir).get("refit"):
        return run_dir
    refit = rd.read_results(run_dir).get("refit")
    if refit is None:
        raise SSGraphRecError(f"the refit of {run_dir} did not finish: resume it "
                              f"(ssgraphrec train --resume {run_dir}), or pass --selected "
                              "for the model selected on validation")
    folder = run_dir / refit["run_dir"]
    if not (folder / rd.BEST).is_file():
        raise SSGraphRecError(f"{run_dir} reports its refit, but {folder / rd.BEST} is "
                              "missing: pass --selected for the model selected on validation")
    return folder


def _write_curves(run_path: Path, trainer: Trainer) -> None:
    """``curves.png`` of the run when matplotlib is installed; a figure that fails is
    reported, never fatal (the results are written already)."""
    from ..plots import write_run_curves

    try:
        write_run_curves(run_path)
    except Exception as exc:  # noqa: BLE001 - a plot must not fail a finished run
        trainer.log(f"curves.png not written: {exc}")


def _new_run_dir(run: Run, out: str | None, provenance: dict[str, Any]) -> Path:
    """Rank 0 makes the run directory (config, provenance) and tells the others its name."""
    run_path = rd.new_run_dir(run.cfg.method, run.cfg.dataset, out) if run.ctx.is_main else None
    run_path = broadcast_object(run_path, run.ctx)
    if run.ctx.is_main:
        rd.write_config(run_path, full_config(run))
        rd.write_provenance(run_path, provenance)
    return run_path


def _resumed_config(run_path: Path, epochs: int | None, device: str | None, threads: int | None,
                    provenance: dict[str, Any] | None) -> tuple[RunConfig, dict[str, Any]]:
    """The saved config of a run to resume (``epochs`` may extend it; ``device`` and
    ``threads`` say where the continuation runs, not what it computes), and its provenance."""
    cfg = apply(RunConfig(), rd.read_config(run_path))
    if epochs is not None:
        cfg.epochs = epochs
    cfg.device = device or cfg.device
    cfg.threads = threads or cfg.threads
    return cfg, provenance if provenance is not None else rd.read_provenance(run_path)


def _resume(trainer: Trainer, run: Run, run_path: Path) -> None:
    """Load the last checkpoint into ``trainer``; record a changed epoch budget."""
    trainer.resume()
    trainer.log(f"resuming {run_path} at epoch {trainer.start_epoch + 1} of {run.cfg.epochs}")
    if not run.ctx.is_main:
        return
    if run.cfg.epochs != rd.read_config(run_path).get("epochs"):
        rd.write_config(run_path, full_config(run))  # --epochs extended (or cut) the run
    (run_path / rd.FAILED).unlink(missing_ok=True)


def _results(run: Run, trainer: Trainer, outcome: dict[str, Any],
             provenance: dict[str, Any]) -> dict[str, Any]:
    """What ``results.json`` holds: the run, where its settings came from, the data, the
    trainer's outcome, the popularity baseline and what the method chose at run time."""
    cfg = run.cfg
    results = {
        "method": cfg.method,
        "dataset": cfg.dataset,
        "config_source": provenance.get("config_source", "user"),
        "provenance": provenance,
        "data": summary(run.data),
        **outcome,
        "device": str(run.device),
        "ranks": run.ctx.world_size,
        "sparse_backend": resolve_backend(cfg.sparse_backend),
        "seed": cfg.seed,
        "versions": rd.versions(),
    }
    baseline = popularity_baseline(trainer, run)
    if baseline is not None:
        results["baseline"] = baseline
    simulated = simulation_summary(run.data)
    if simulated is not None:
        results["cold_simulation"] = {"k": cfg.simulate_cold, "share": cfg.simulate_cold_share,
                                      **simulated}
    if run.method.info:  # what the method chose at run time (MicRec)
        results["method_info"] = dict(run.method.info)
    return results


def absolute_paths(cfg: RunConfig) -> RunConfig:
    """Make the paths of ``cfg`` absolute (a dataset given by path, ``data_root``, ``init``),
    so that ``evaluate`` and ``recommend`` find them from any directory; the data's
    fingerprint in ``results.json`` still guards against a changed file."""
    if cfg.dataset not in DATASETS and Path(cfg.dataset).expanduser().exists():
        cfg.dataset = str(Path(cfg.dataset).expanduser().resolve())
    for key in ("data_root", "init"):
        if getattr(cfg, key):
            setattr(cfg, key, str(Path(getattr(cfg, key)).expanduser().resolve()))
    return cfg


def popularity_baseline(trainer: Trainer, run: Run) -> dict[str, Any] | None:
    """Test metrics of MostPop on the run's own split and protocol, or ``None``.

    The bar a learned recommender must clear: ``results.json`` keeps it as
    ``baseline`` and ``train`` prints the method's ratio to it. Computed for
    user-item ranking runs that evaluate the test split (not for MostPop
    itself, nor for link prediction); it costs one full-ranking evaluation.
    """
    if (run.method.name == "mostpop" or type(trainer.task) is not RankingTask
            or not trainer.evaluate_test):
        return None
    popularity = METHODS.get("mostpop")(training_view(run.data), MethodConfig()).to(run.device)
    return {"method": "mostpop", "test": trainer.evaluate("test", method=popularity)}


def pretrain(cfg: RunConfig, out: str | None = None, *, progress: bool = True, log=None
             ) -> tuple[Path, dict[str, Any]]:
    """Pre-train only: the method's pretext tasks for its pre-training epochs.

    The run directory gets ``config.yaml``, ``metrics.jsonl`` (``pretrain``
    records), ``encoder.pt`` (what ``--init`` loads) and ``results.json``
    with the data summary and the ``pretrain`` phase.
    """
    absolute_paths(cfg)
    run = build(cfg)
    cfg = run.cfg
    _, epochs = resolve_scheme(cfg, run.method)
    if not run.method.has_pretrain_task():
        raise SSGraphRecError(f"method {cfg.method!r} has no pre-training task; methods that "
                              "do: " + ", ".join(n for n in METHODS
                                                 if METHODS.get(n).pretrain_loss
                                                 is not Method.pretrain_loss))
    if epochs < 1:
        raise SSGraphRecError(f"nothing to pre-train: --pretrain-epochs is {epochs}")
    run_path = rd.new_run_dir(cfg.method, cfg.dataset, out)
    rd.write_config(run_path, full_config(run))
    trainer = Trainer(run.method, run.data, run_path, epochs=0, ks=cfg.eval_ks,
                      monitor=cfg.monitor, generator=run.generator, progress=progress, log=log,
                      scheme="pretrain_finetune", pretrain_epochs=epochs)
    phase = trainer.pretrain()
    results = {"method": cfg.method, "dataset": cfg.dataset, "data": summary(run.data),
               "scheme": "pretrain", "phases": {"pretrain": phase}, "device": str(run.device),
               "seed": cfg.seed, "versions": rd.versions()}
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
    # The fingerprint first: data of another size would fail in load_state_dict with
    # a size mismatch that says nothing about the cause.
    expected = rd.read_results(run_dir).get("data", {}).get("fingerprint")
    actual = summary(run.data)["fingerprint"]
    if expected and expected != actual:
        raise SSGraphRecError(f"the data of {run_dir} has changed since training "
                              f"(fingerprint {actual}, run was trained on {expected})")
    state = load_checkpoint(run_dir / rd.BEST, run.device)
    run.method.load_state_dict(state["method"])
    return run
