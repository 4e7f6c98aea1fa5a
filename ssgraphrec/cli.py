"""The ``ssgraphrec`` command line."""

from __future__ import annotations

import gc
import os
from pathlib import Path
from typing import Any

import click

from .cli_options import given_options, run_options
from .config import RunConfig, apply, load_yaml, parse_overrides
from .distributed import launched
from .errors import SSGraphRecError
from .tuning.tuned import describe_source, resolve_run_config, strip_meta

#: The options a resumed run takes: where and how long it continues, not what it computes.
RESUME_OPTIONS = ("--epochs", "--device", "--threads")


def _fail_cleanly(fn):
    """Turn user errors into one message and exit status 1, never a traceback."""

    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except SSGraphRecError as exc:
            raise click.ClickException(str(exc)) from None
        except FloatingPointError as exc:
            raise click.ClickException(str(exc)) from None

    wrapper.__name__ = fn.__name__
    wrapper.__doc__ = fn.__doc__
    return wrapper


def _table(metrics: dict[str, float], names=("recall", "ndcg", "precision", "hit")) -> str:
    ks = sorted({int(k.split("@")[1]) for k in metrics if "@" in k})
    rows = [f"{'':>10}" + "".join(f"{'@' + str(k):>10}" for k in ks)]
    for name in names:
        if any(f"{name}@{k}" in metrics for k in ks):
            rows.append(f"{name:>10}" + "".join(f"{metrics.get(f'{name}@{k}', float('nan')):>10.4f}"
                                                  for k in ks))
    return "\n".join(rows)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="ssgraphrec")
@_fail_cleanly
def main() -> None:
    """Self-supervised recommendation on PyTorch Geometric."""
    from .heap import retain_freed_memory

    retain_freed_memory()  # large CPU tensors reuse freed pages (ssgraphrec/heap.py)


@main.command()
@run_options()
@click.option("--config", "config_file", type=click.Path(), help="YAML file of settings.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a run or method setting (repeatable).")
@click.option("--out", "-o", type=click.Path(),
              help="Run directory. [default: runs/<method>-<dataset>-<time>]")
@click.option("--resume", type=click.Path(), help="Continue the run in this directory.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@click.option("--paper-defaults", is_flag=True,
              help="Use the paper's hyper-parameters even where the package ships a tuned "
                   "configuration for this method and dataset.")
@click.option("--nproc", type=int,
              help="Train on N ranks of this machine (torchrun, gloo on the CPU, NCCL on "
                   "GPUs; docs/distributed.md). [default: one process]")
@_fail_cleanly
def train(config_file, overrides, out, resume, no_progress, paper_defaults=False, nproc=None,
          **options) -> None:
    """Train a method and report test metrics of the best validation epoch.

    Every option below that is a run setting is also a key of a --config file and of
    --set (the same name with underscores)."""
    from .train import train as run_training

    if nproc is not None and not launched():
        from .launch import check_nproc, launch

        check_nproc(nproc, options.get("device"))
        values = {**options, "config_file": config_file, "overrides": overrides, "out": out,
                  "resume": resume, "no_progress": no_progress,
                  "paper_defaults": paper_defaults}
        code = launch(nproc, "train", values)
        if code:
            raise SSGraphRecError(f"the {nproc}-rank run failed (exit code {code}); the first "
                                  "failing rank's error is above")
        return
    main_rank = int(os.environ.get("RANK", "0")) == 0
    given = given_options(options)
    if resume:
        _check_resume_options(resume, {
            **{f"--{k.replace('_', '-')}": v for k, v in given.items()},
            "--config": config_file, "--set": overrides or None, "--out": out,
            "--paper-defaults": paper_defaults or None})
        run_dir, results = run_training(None, resume=resume, epochs=options["epochs"],
                                        progress=not no_progress, device=options["device"],
                                        threads=options["threads"])
    else:
        if out and any((Path(out) / f).exists() for f in (
                "results.json", "metrics.jsonl", "last.pt", "best.pt")):
            # Training into an old run would mix its metrics and checkpoints with ours.
            raise SSGraphRecError(f"--out {out} already holds a run; continue it with "
                                  "--resume, or pick another --out")
        file_values = strip_meta(load_yaml(config_file)) if config_file else {}
        set_values = parse_overrides(overrides)
        cfg, provenance = resolve_run_config([file_values, given, set_values],
                                             paper_defaults=paper_defaults)
        if cfg.init:
            from .train.pretrained import inherit_data_settings

            explicit = set(given) | set(set_values) | set(file_values)
            copied = inherit_data_settings(cfg, explicit)
            if copied:
                click.echo(f"from --init {cfg.init}: " + ", ".join(
                    f"{k}={getattr(cfg, k)}" for k in copied), err=True)
        if main_rank:
            ranks = f" on {os.environ['WORLD_SIZE']} ranks" if launched() else ""
            click.echo(f"training {cfg.method} on {cfg.dataset}{ranks}"
                       + (f" with {cfg.aug}" if cfg.aug else "") + "; "
                       + describe_source(provenance), err=True)
        run_dir, results = run_training(cfg, out, progress=not no_progress,
                                        provenance=provenance)
    if main_rank:
        _report(run_dir, results)
    _leave_process_group()


def _leave_process_group() -> None:
    """Under torchrun: wait for every rank, then leave the process group, so that no rank
    exits while another still talks to it (gloo aborts a process that exits with a live
    group)."""
    from .distributed import barrier, current, shutdown

    ctx = current()
    if ctx.distributed:
        barrier(ctx)
        shutdown()


def _check_resume_options(resume: str, given: dict[str, Any]) -> None:
    """A resumed run keeps its saved settings: refuse options that would change them.

    ``--method`` and ``--dataset`` equal to the run's are accepted (a repeated
    command line); ``--epochs``, ``--device``, ``--threads`` and
    ``--no-progress`` apply to the continuation.
    """
    from .train import run_dir as rd

    for applies in RESUME_OPTIONS:
        given.pop(applies, None)
    saved = rd.read_config(Path(resume))
    for option, key in (("--method", "method"), ("--dataset", "dataset")):
        if given.get(option) is not None and given[option] == saved.get(key):
            given[option] = None
    extra = [option for option, value in given.items() if value not in (None, False)]
    if extra:
        first = extra[0]
        was = {"--method": saved.get("method"), "--dataset": saved.get("dataset")}.get(first)
        differs = f" (the run's is {was!r})" if was is not None else ""
        raise SSGraphRecError(f"--resume {resume} continues the run with its saved settings; "
                              f"{', '.join(extra)} cannot change them{differs}. Only --epochs, "
                              "--device, --threads and --no-progress apply to a resumed run")


def _baseline_line(method: str, test: dict, baseline: dict) -> str:
    """``MostPop on the same split: recall@20 0.17, ndcg@20 0.11; sgl is 2.62x, 3.11x``."""
    base = baseline["test"]
    k = max(int(key.split("@")[1]) for key in test if key.startswith("recall@"))
    parts, ratios = [], []
    for name in ("recall", "ndcg"):
        key = f"{name}@{k}"
        parts.append(f"{key} {base[key]:.4f}")
        ratios.append(f"{test[key] / base[key]:.2f}x" if base[key] > 0 else "n/a")
    return (f"{baseline['method']} on the same split: {', '.join(parts)}; "
            f"{method} is {', '.join(ratios)} of it")


def _report(run_dir, results: dict) -> None:
    test = results["test"]
    head = (f"\ntest metrics of {results['method']} on {results['dataset']} "
            f"({results['selection']}, epoch {results['best_epoch']}; ")
    if "samples_evaluated" in test:
        history = "history items masked" if test.get("history_masked") else "history items ranked"
        click.echo(head + f"{test['samples_evaluated']} test samples, all items ranked, {history}; "
                   "hit = HR@K, the P@K of session-based papers)")
        click.echo(_table(test, names=("hit", "ndcg", "mrr")))
    elif "auc_roc" in test:
        click.echo(head + f"link prediction, {test['pairs_evaluated']} test pairs: held-out "
                   "edges and as many sampled non-edges)")
        click.echo("  ".join(f"{k} {test[k]:.4f}" for k in ("auc_roc", "auc_pr", "dot_auc_roc",
                                                             "dot_auc_pr")))
    else:
        click.echo(head + f"{test['users_evaluated']} users, {test['users_skipped']} without "
                   "test items skipped)")
        click.echo(_table(test))
        if "baseline" in results:
            click.echo("\n" + _baseline_line(results["method"], test, results["baseline"]))
    for name, part in results.get("test_slices", {}).items():
        size = part["size"]
        click.echo(f"\n{name}: {part['rule']}; {size['interactions']} test interactions, "
                   f"{size['users']} users, {size['items']} items")
        click.echo(_table(part["metrics"]))
    for name, phase in results.get("phases", {}).items():
        click.echo(f"{name}: {phase.get('epochs', '?')} epochs, "
                   f"{phase.get('train_s_per_epoch', 0.0):.2f} s/epoch"
                   + (f" (from {phase['from']})" if "from" in phase else ""))
    click.echo(f"\nrun directory: {run_dir}")


@main.command()
@run_options("method", "dataset", "batch_size", "lr", "device", "threads", "seed", "split",
             "test_ratio", "val_ratio", "data_root")
@click.option("--config", "config_file", type=click.Path(), help="YAML file of settings.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a run or method setting (repeatable).")
@click.option("--pretrain-epochs", "--epochs", "pretrain_epochs", type=int,
              help="Pre-training epochs (--epochs is the same option). [default: the paper's]")
@click.option("--out", "-o", type=click.Path(),
              help="Run directory. [default: runs/<method>-<dataset>-<time>]")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@_fail_cleanly
def pretrain(config_file, overrides, pretrain_epochs, out, no_progress, **options) -> None:
    """Pre-train a method's encoder on its pretext tasks (for 'train --init RUN_DIR'); the
    method must have one (e.g. gptgnn), and fine-tuning must use the same split."""
    from .train.run import pretrain as run_pretraining

    if out and (Path(out) / "encoder.pt").exists():
        raise SSGraphRecError(f"--out {out} already holds a pre-trained encoder; pick another "
                              "--out")
    cfg = RunConfig()
    if config_file:
        apply(cfg, load_yaml(config_file))
    apply(cfg, given_options({**options, "pretrain_epochs": pretrain_epochs}))
    apply(cfg, parse_overrides(overrides))
    click.echo(f"pre-training {cfg.method} on {cfg.dataset}", err=True)
    run_dir, results = run_pretraining(cfg, out, progress=not no_progress)
    phase = results["phases"]["pretrain"]
    click.echo(f"pre-trained {cfg.method} on {cfg.dataset}: {phase['epochs']} epochs, "
               f"{phase['train_s_per_epoch']:.2f} s/epoch")
    click.echo(f"encoder: {run_dir / 'encoder.pt'}  (fine-tune with: ssgraphrec train "
               f"--init {run_dir} ...)")


SELECTED_HELP = ("With a run trained with --refit: the model selected on validation, not "
                 "its refit (the one results.json reports).")


def _model_dir(run_dir: str, selected: bool) -> Path:
    """The folder of the model to load (:func:`~ssgraphrec.train.run.reported_model_dir`),
    said on stderr when it is a refit."""
    from .train.run import reported_model_dir

    folder = reported_model_dir(run_dir, selected)
    if folder != Path(run_dir):
        click.echo(f"the refitted model of {run_dir}: {folder} (--selected for the model "
                   "selected on validation)", err=True)
    return folder


@main.command()
@click.argument("run_dir", type=click.Path())
@click.option("--device", help="Device to evaluate on. [default: the run's]")
@click.option("--selected", is_flag=True, help=SELECTED_HELP)
@run_options("cold_threshold", "head_share")
@_fail_cleanly
def evaluate(run_dir, device, selected, cold_threshold=None, head_share=None) -> None:
    """Re-evaluate a saved run's best checkpoint on its test split (a --refit run's
    refitted model)."""
    from .train import Trainer, load_run
    from .train.run import REFIT_SELECTION
    from .train.run_dir import read_results

    model_dir = _model_dir(run_dir, selected)
    run = load_run(model_dir, device)
    trainer = Trainer(run.method, run.data, model_dir, epochs=0, ks=run.cfg.eval_ks,
                      monitor=run.cfg.monitor, generator=run.generator, progress=False,
                      mask_history=run.cfg.mask_history, cold_threshold=cold_threshold,
                      head_share=head_share)
    test = trainer.evaluate("test")
    saved = read_results(run_dir)
    if selected and "refit" in saved:   # the refit's baseline and slices are not this model's
        saved = {k: v for k, v in saved.items() if k not in ("baseline", "test_slices")}
        saved["selection"] = saved["selection"].removeprefix(REFIT_SELECTION)
    results = {**saved, "test": test, "method": run.cfg.method, "dataset": run.cfg.dataset,
               "selection": saved.get("selection", "saved checkpoint"),
               "best_epoch": saved.get("best_epoch", "?")}
    if cold_threshold is not None or head_share is not None:
        from .eval.slices import evaluate_slices

        results["test_slices"] = evaluate_slices(trainer.task.slices,
                                                 lambda t: trainer.evaluate("test", t))
    _report(run_dir, results)


@main.command()
@click.argument("run_dir", type=click.Path())
@click.option("--user", "-u", "raw_user", help="User id as in the data files.")
@click.option("--all", "all_users", is_flag=True,
              help="Every user, written to --out (CSV, or Parquet with pyarrow).")
@click.option("--out", "-o", type=click.Path(), help="File of --all: recs.csv or recs.parquet.")
@click.option("-k", "k", type=int, default=20, show_default=True, help="Number of items.")
@click.option("--batch-size", type=int, default=0, show_default=True,
              help="Users scored at once by --all (0: about 2**23 scores).")
@click.option("--device", help="Device. [default: the run's]")
@click.option("--selected", is_flag=True, help=SELECTED_HELP)
@_fail_cleanly
def recommend(run_dir, raw_user, all_users, out, k, batch_size, device, selected) -> None:
    """Top-K items for one user (--user) or for every user (--all --out FILE), in raw ids,
    excluding the items each user already has in training or validation (from a --refit
    run, its refitted model's)."""
    from .train import load_run
    from .train.recommend import recommend_all, recommend_for_user

    if bool(raw_user) == bool(all_users):
        raise SSGraphRecError("give --user ID for one user, or --all --out FILE for every user")
    if all_users and not out:
        raise SSGraphRecError("--all writes a file: add --out recs.csv (or recs.parquet)")
    run = load_run(_model_dir(run_dir, selected), device)
    if all_users:
        done = recommend_all(run, out, k, batch_size)
        click.echo(f"wrote {done['rows']:,} rows ({done['users']:,} users x top {k}) to "
                   f"{done['path']} ({done['format']})")
        return
    for rank, (item, score) in enumerate(recommend_for_user(run, raw_user, k), 1):
        click.echo(f"{rank:>3}  {item}  {score:.4f}")


@main.command()
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path())
@click.option("--out", "-o", type=click.Path(), default="curves.png", show_default=True,
              help="PNG file to write.")
@click.option("--metric", help="Validation metric to draw. [default: the first run's monitor]")
@click.option("--x", "x_axis", type=click.Choice(["epoch", "minutes"]), default="epoch",
              show_default=True,
              help="Against epochs, or wall-clock minutes of training and validation.")
@_fail_cleanly
def plot(run_dirs, out, metric, x_axis) -> None:
    """Overlay the loss terms and validation curves of one or more runs in one PNG
    (every run also writes its own curves.png)."""
    from .plots import plot_runs

    click.echo(f"wrote {plot_runs(list(run_dirs), out, metric, x=x_axis)}")


@main.command()
@click.option("--show-space", "show_space", metavar="NAME",
              help="Print the search space of one method (what 'ssgraphrec tune' searches).")
@_fail_cleanly
def methods(show_space) -> None:
    """List the methods."""
    from .methods import METHODS

    if show_space:
        from .tuning.space import describe_space

        cls = METHODS.get(show_space)
        click.echo(f"search space of {show_space} ({cls.paper}):")
        for line in describe_space(cls):
            click.echo("  " + line)
        return
    for name, cls in METHODS.items():
        click.echo(f"{name:<12} {cls.description}  [{cls.paper}]")


@main.command()
@click.option("--method", "-m", help="Method name (see 'ssgraphrec methods'). [default: sgl]")
@click.option("--dataset", "-d", help="Dataset name or path. [default: synthetic]")
@click.option("--trials", type=int, default=30, show_default=True,
              help="Finished (complete or pruned) trials the study should hold; running the "
                   "command again continues the study up to this number.")
@click.option("--timeout", type=float, help="Stop starting trials after this many seconds.")
@click.option("--jobs", type=int, default=1, show_default=True,
              help="Worker processes, each with one torch thread.")
@click.option("--out", "-o", type=click.Path(),
              help="Tune folder (study.db, best.yaml, trials.csv/.md, history.png). "
                   "[default: tunes/<method>-<dataset>]")
@click.option("--epochs", type=int, help="Maximum epochs per trial. [default: 40]")
@click.option("--pruner", type=click.Choice(["median", "hyperband", "none"]), default="median",
              show_default=True, help="Stops unpromising trials on their per-epoch validation.")
@click.option("--space", "space_file", type=click.Path(),
              help="YAML file: parameters to search instead of (or besides) the declared space; "
                   "NAME: {low: L, high: H, log: true} or NAME: [choice, ...].")
@click.option("--config", "config_file", type=click.Path(), help="YAML file of fixed settings.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Fix a run or method setting for every trial (it leaves the space).")
@click.option("--seed", type=int, help="Seed of the split and of each trial's training.")
@click.option("--sampler-seed", type=int, default=0, show_default=True,
              help="Seed of the TPE sampler.")
@click.option("--device", help="cpu, cuda, cuda:N or auto. [default: auto]")
@click.option("--data-root", type=click.Path(), help="Data directory. [default: $SSGRAPHREC_DATA]")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@_fail_cleanly
def tune(method, dataset, trials, timeout, jobs, out, epochs, pruner, space_file, config_file,
         overrides, seed, sampler_seed, device, data_root, no_progress) -> None:
    """Search a method's hyper-parameters on the validation split (Optuna TPE + pruning)."""
    from .bench.quality import command_line
    from .tuning.space import read_space_file
    from .tuning.study import TuneSpec
    from .tuning.study import tune as run_tune

    file_values = strip_meta(load_yaml(config_file)) if config_file else {}
    options = {"method": method, "dataset": dataset, "seed": seed, "device": device,
               "data_root": data_root, "epochs": 40 if epochs is None else epochs}
    layers = [file_values, {k: v for k, v in options.items() if v is not None},
              parse_overrides(overrides)]
    probe = RunConfig()
    for layer in layers:
        apply(probe, dict(layer))
    folder = Path(out) if out else Path("tunes") / f"{probe.method}-{Path(probe.dataset).name}"
    command = command_line("tune", {
        "method": probe.method, "dataset": probe.dataset, "trials": trials, "timeout": timeout,
        "jobs": jobs, "out": str(folder), "epochs": probe.epochs, "pruner": pruner,
        "space": space_file, "config": config_file, "set": overrides, "seed": seed,
        "sampler_seed": sampler_seed or None}, group=None)
    spec = TuneSpec(layers=layers, trials=trials, out=folder, timeout=timeout, jobs=jobs,
                    pruner=pruner, sampler_seed=sampler_seed,
                    space_override=read_space_file(space_file) if space_file else {},
                    command=command)
    outcome = run_tune(spec, log=lambda msg: click.echo(msg, err=True), progress=not no_progress)
    study = outcome.study
    if "markdown" in outcome.outputs:
        lines = outcome.outputs["markdown"].read_text().splitlines()
        table = [line for line in lines if line.startswith("|")]
        click.echo("\n".join(table[:12]))
    if "best" in outcome.outputs:
        best = study.best_trial
        click.echo(f"\nbest trial {best.number}: validation {probe.monitor} {best.value:.4f}; "
                   + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                               for k, v in best.params.items()))
        click.echo(f"train with it: ssgraphrec train --config {outcome.outputs['best']}")
    else:
        click.echo("no trial has completed yet: no best.yaml")
    click.echo("written: " + ", ".join(str(p) for p in outcome.outputs.values()), err=True)


@main.command()
def augs() -> None:
    """List the augmentations."""
    from .transforms import AUGMENTATIONS

    for name, cls in AUGMENTATIONS.items():
        doc = (cls.__doc__ or "").strip().splitlines()[0]
        click.echo(f"{name:<16} {cls.__name__}: {doc}")


@main.group()
def data() -> None:
    """List datasets and show their statistics."""


@data.command("list")
@click.option("--root", type=click.Path(), help="Data directory. [default: $SSGRAPHREC_DATA]")
def data_list(root) -> None:
    """One line per registered dataset: built in, present (every file with its pinned
    SHA-256), absent, partial or corrupt."""
    from .data import DATASETS, data_dir
    from .data.download import folders_of, status

    root = Path(root) if root else data_dir()
    for name, spec in DATASETS.items():
        if spec.path is None:
            where = "built in"
        else:
            try:
                states = [status(folder, root) for folder in folders_of(name)]
            except SSGraphRecError as exc:   # a folder without a pinned source
                states = [f"present, unverified: {exc}" if (root / spec.path).exists()
                          else "absent"]
            where = next((s for s in states if s != "present"), "present")
            if where != "present":
                where += f" in {root}; ssgraphrec data download {name}"
        click.echo(f"{name:<22} {spec.description} ({where})")


@data.command("download")
@click.argument("names", nargs=-1)
@click.option("--all", "every", is_flag=True, help="Every registered dataset.")
@click.option("--root", type=click.Path(), help="Data directory. [default: $SSGRAPHREC_DATA]")
@click.option("--mirror", help="Fetch MIRROR/<folder>/<file> instead of upstream. "
                               "[default: $SSGRAPHREC_MIRROR]")
@click.option("--timeout", type=float, default=30.0, show_default=True,
              help="Seconds to wait on a silent connection.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@_fail_cleanly
def data_download(names, every, root, mirror, timeout, no_progress) -> None:
    """Fetch datasets from their upstream repositories (pinned commits), verified by SHA-256."""
    from .data import DATASETS, data_dir
    from .data.download import download

    if every:
        names = tuple(n for n, spec in DATASETS.items() if spec.path is not None)
    if not names:
        raise SSGraphRecError("name a dataset (see 'ssgraphrec data list'), or --all")
    root = Path(root) if root else data_dir()
    for name in names:
        DATASETS.get(name)   # an unknown name: the registry's error, with suggestions
        written = download(name, root, mirror=mirror, timeout=timeout,
                           progress=not no_progress, log=lambda m: click.echo(m, err=True))
        click.echo(f"{name}: {'fetched ' + str(len(written)) + ' file(s)' if written else 'present'}"
                   f" in {root}")


@data.command("info")
@click.argument("name")
@click.option("--data-root", type=click.Path(), help="Data directory.")
@click.option("--seed", type=int, default=RunConfig.seed, show_default=True,
              help="Split seed (train's default, so that the counts are a run's).")
@click.option("--val-ratio", type=float, default=RunConfig.val_ratio, show_default=True,
              help="Validation share, as for train.")
@_fail_cleanly
def data_info(name, data_root, seed, val_ratio) -> None:
    """Counts of a dataset after the split a default ``train`` run uses."""
    from .data import load_dataset, summary

    for key, value in summary(load_dataset(name, root=data_root, seed=seed,
                                           val_ratio=val_ratio)).items():
        click.echo(f"{key:<26} {value}")


@main.group()
def bench() -> None:
    """Leaderboards: quality over seeds, and speed (see docs/benchmarks.md)."""


@bench.command("quality")
@click.option("--methods", default="mostpop,lightgcn,sgl", show_default=True,
              help="Comma-separated method names.")
@click.option("--datasets", default="lastfm", show_default=True,
              help="Comma-separated dataset names or paths.")
@click.option("--epochs", type=int, default=50, show_default=True,
              help="Maximum epochs per run (early stopping on validation NDCG@20).")
@click.option("--seeds", type=int, default=3, show_default=True,
              help="Number of seeds; each seed fixes the split, the initialisation and sampling.")
@click.option("--first-seed", type=int, default=2020, show_default=True,
              help="Seeds are first-seed, first-seed + 1, ...")
@click.option("--out", "-o", type=click.Path(), default="benchmarks/results/quality",
              show_default=True, help="Output folder (tables, plot, runs/).")
@click.option("--device", help="cpu, cuda, cuda:N or auto. [default: auto]")
@click.option("--threads", type=int, help="CPU threads for PyTorch. [default: PyTorch's]")
@click.option("--data-root", type=click.Path(), help="Data directory. [default: $SSGRAPHREC_DATA]")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="A run setting (all cells), a method setting (the methods that have it) "
                   "or METHOD.KEY=VALUE (one method). Repeatable.")
@click.option("--tuned", is_flag=True,
              help="Run each method at the package's tuned configuration for the dataset, "
                   "where one exists (the paper's defaults elsewhere).")
@_fail_cleanly
def bench_quality(methods, datasets, epochs, seeds, first_seed, out, device, threads, data_root,
                  overrides, tuned) -> None:
    """Train every (method, dataset, seed) cell and table test Recall@20 / NDCG@20.

    Resumes: finished cells are read back, interrupted ones continue.
    """
    from .bench.quality import QualitySpec, command_line, parse_names, run_quality

    if seeds < 1:
        raise SSGraphRecError(f"--seeds must be >= 1, got {seeds}")
    if threads is not None and threads < 1:
        raise SSGraphRecError(f"--threads must be >= 1, got {threads}")
    spec = QualitySpec(parse_names(methods), parse_names(datasets),
                       list(range(first_seed, first_seed + seeds)), epochs, Path(out),
                       parse_overrides(overrides), device, data_root, threads, tuned=tuned)
    command = command_line("quality", {
        "methods": ",".join(spec.methods), "datasets": ",".join(spec.datasets),
        "epochs": epochs, "seeds": seeds, "first_seed": first_seed, "out": out,
        "device": device, "threads": threads, "data_root": data_root, "set": overrides,
        "tuned": tuned})
    report = run_quality(spec, log=lambda msg: click.echo(msg, err=True), command=command)
    click.echo(report.markdown.read_text())
    click.echo(f"written: {report.markdown}, {report.csv}, {report.json}"
               + (f", {report.plot}" if report.plot else " (no plot)"), err=True)
    if report.failed:
        raise click.ClickException(f"{len(report.failed)} cell(s) failed (listed in "
                                   f"{report.markdown}); run the same command again to retry them")


@bench.command("study", context_settings={"ignore_unknown_options": True,
                                          "allow_extra_args": True, "help_option_names": []})
@click.argument("name", required=False)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.option("--list", "list_studies", is_flag=True, help="List the studies.")
@_fail_cleanly
def bench_study(name, args, list_studies) -> None:
    """Run one of the studies behind docs/benchmarks.md: 'ssgraphrec bench study NAME
    [OPTIONS]' (NAME --help: its options; --list: the studies). Run it from the
    repository root: results go to benchmarks/results/."""
    from .bench.studies import describe, run_study, study_names

    if list_studies or name in (None, "--help", "-h"):
        for study in study_names():
            click.echo(f"{study:22s} {describe(study)}")
        return
    run_study(name, list(args))


@bench.command("speed")
@click.option("--methods", help="Comma-separated method names. [default: every method]")
@click.option("--dataset", default="lastfm-80-20", show_default=True,
              help="Dataset name or path.")
@click.option("--epochs", type=int, default=2, show_default=True,
              help="Timed epochs, after one untimed warm-up epoch.")
@click.option("--steps", type=int, default=0, show_default=True,
              help="Time each epoch on its first N batches and scale to the whole epoch "
                   "(large data); 0: whole epochs.")
@click.option("--eval-reps", type=int, default=3, show_default=True,
              help="Timed full-ranking evaluations (median reported).")
@click.option("--out", "-o", type=click.Path(), default="benchmarks/results/speed",
              show_default=True, help="Output folder (speed.md, speed.json).")
@click.option("--device", help="cpu, cuda, cuda:N or auto. [default: auto]")
@click.option("--threads", type=int, help="CPU threads for PyTorch. [default: PyTorch's]")
@click.option("--data-root", type=click.Path(), help="Data directory. [default: $SSGRAPHREC_DATA]")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="As for 'bench quality': a run setting, a method setting, or "
                   "METHOD.KEY=VALUE. Repeatable.")
@click.option("--same-process", is_flag=True,
              help="Measure all methods in this process (faster start; memory figures then "
                   "carry over from one method to the next).")
@_fail_cleanly
def bench_speed(methods, dataset, epochs, steps, eval_reps, out, device, threads, data_root,
                overrides, same_process) -> None:
    """Seconds per epoch, evaluation seconds and peak memory, per method."""
    from .bench.quality import command_line, parse_names
    from .bench.speed import SpeedSpec, run_speed
    from .methods import METHODS

    if threads is not None and threads < 1:
        raise SSGraphRecError(f"--threads must be >= 1, got {threads}")
    names = parse_names(methods) if methods else list(METHODS)
    spec = SpeedSpec(names, dataset, epochs, steps, eval_reps, device=device, threads=threads,
                     data_root=data_root, overrides=parse_overrides(overrides))
    command = command_line("speed", {
        "methods": ",".join(names), "dataset": dataset, "epochs": epochs, "steps": steps or None,
        "eval_reps": eval_reps, "out": out, "device": device, "threads": threads,
        "data_root": data_root, "set": overrides, "same_process": same_process})
    md, js, _ = run_speed(spec, Path(out), isolate=not same_process,
                          log=lambda msg: click.echo(msg, err=True), command=command)
    click.echo(md.read_text())
    click.echo(f"written: {md}, {js}", err=True)


def console_main() -> None:
    """The ``ssgraphrec`` console script and ``python -m ssgraphrec``: :func:`main` as a
    process of its own.

    The objects that the imports (torch, PyG) and then the command build live until the
    process ends. Frozen (:func:`gc.freeze`), they are left out of the collector's full
    walks, and above all out of the one at interpreter exit, which otherwise walks them
    all once more (0.6 s of a 10-epoch LightGCN run on lastfm-80-20, docs/benchmarks.md
    "Against a SELFRec-style loop"). Nothing is skipped: exit handlers still run, and
    objects still die by reference count. Only garbage in reference cycles already
    there is kept, and the process ends. :func:`main` called in a process that goes on
    (a test's ``CliRunner``, a notebook) freezes nothing.
    """
    gc.freeze()
    try:
        main()
    finally:
        gc.freeze()


if __name__ == "__main__":  # pragma: no cover
    console_main()
