"""The quality leaderboard: every (dataset, method, seed) cell trained alike, then tabled.

Each cell is one ordinary run of :func:`ssgraphrec.train.run.train`, in
``<out>/runs/<dataset>/<method>/seed<seed>/``. For a given dataset and seed
every method sees the same split (the seed fixes it; the data fingerprints of
the cells are checked to agree), the same uniform negative sampler seeded
alike (methods that draw views from the run's generator then draw other
negatives: the same procedure, not the same draws), the same model selection
(best validation NDCG@20, early stopping) and the same full-ranking test
evaluation.

The leaderboard resumes: a cell whose run directory holds ``results.json`` is
read back, not retrained; a cell with ``last.pt`` but no ``results.json`` (it
was interrupted) continues from its last epoch; anything else starts afresh.
A cell whose saved settings differ from the ones asked for is an error, found
before anything trains, so that one table never mixes two configurations.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import os
import platform
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..config import RUN_FIELDS, RunConfig, method_config
from ..data.registry import DATA_ENV, resolve
from ..errors import ConfigError, SSGraphRecError
from ..methods import METHODS
from ..train import run_dir as rd
from ..train.run import train
from ..tuning.tuned import resolve_run_config
from .references import Protocol, metric_label, other_data
from .table import (
    BACKBONES,
    CURVE_METRIC,
    KIND_METRICS,
    METRICS,
    CellResult,
    Row,
    aggregate,
    csv_text,
    markdown_report,
    plot_curves,
    write_text,
)

#: Settings the leaderboard sets itself (one per cell), not through ``--set``.
OWN_FIELDS = {"method", "dataset", "seed", "epochs"}
#: Saved run settings that must equal the asked ones for a cell to be reused.
COMPARED_FIELDS = ("method", "dataset", "epochs", "seed", "aug", "batch_size", "lr", "split",
                   "test_ratio", "val_ratio", "patience", "monitor")
MARKDOWN = "quality.md"
CSV = "quality.csv"
JSON = "quality.json"
PLOT = "quality_val_ndcg20.png"


@dataclass
class QualitySpec:
    """What to benchmark.

    Attributes:
        methods, datasets: registry names (datasets may also be paths).
        seeds: one cell per seed; the seed fixes the split, the model's
            initialisation and the sampling.
        epochs: maximum epochs of every trainable method.
        out: output folder.
        overrides: ``--set`` values: run settings apply to every cell; a method
            setting applies to the methods that have it; ``<method>.<key>``
            applies to that method only.
        device, threads, data_root: as for ``ssgraphrec train``.
    """

    methods: list[str]
    datasets: list[str]
    seeds: list[int]
    epochs: int
    out: Path
    overrides: dict[str, Any] = field(default_factory=dict)
    device: str | None = None
    data_root: str | None = None
    threads: int | None = None
    #: run each method at its shipped tuned configuration for the dataset, where one exists
    #: (ssgraphrec.tuning.tuned); the paper's defaults elsewhere. ``--set`` still wins.
    tuned: bool = False


@dataclass
class Cell:
    """One planned cell: its config, its run directory and what to do with it."""

    dataset: str
    method: str
    seed: int
    cfg: RunConfig
    run_dir: Path
    state: str  # "done", "interrupted" or "new"
    params: dict[str, Any] = field(default_factory=dict)  # every method setting, resolved
    provenance: dict[str, Any] = field(default_factory=dict)  # results.json: config_source
    kind: str = "ranking"  # the dataset's kind of data: its table's metrics and backbone

    @property
    def metrics(self) -> tuple[str, ...]:
        """The test metrics this cell's table shows (:data:`~.table.KIND_METRICS`)."""
        return KIND_METRICS[self.kind]


@dataclass
class QualityReport:
    """What :func:`run_quality` produced."""

    cells: list[CellResult]
    markdown: Path
    csv: Path
    json: Path
    plot: Path | None
    warnings: list[str]

    @property
    def failed(self) -> list[CellResult]:
        return [c for c in self.cells if not c.ok]


# ---------------------------------------------------------------- planning
def parse_names(text: str | Sequence[str]) -> list[str]:
    """``"a, b,,c"`` -> ``["a", "b", "c"]`` (duplicates dropped, order kept)."""
    items = text.split(",") if isinstance(text, str) else list(text)
    return list(dict.fromkeys(s.strip() for s in items if s.strip()))


def command_line(name: str, options: dict[str, Any], group: str | None = "bench") -> str:
    """The ``ssgraphrec bench <name> ...`` line that reproduces a run, for its report
    (``group=None``: ``ssgraphrec <name> ...``).

    ``options`` maps option names (``first_seed``) to values; ``None``, ``False``
    and ``()`` are left out, ``True`` is a flag, a tuple repeats the option.
    ``$SSGRAPHREC_DATA`` is written in front when set and no ``data_root`` is given.
    """
    parts = ["ssgraphrec", *([group] if group else []), name]
    for key, value in options.items():
        if value is None or value == () or value is False:
            continue
        flag = "--" + key.replace("_", "-")
        for v in value if isinstance(value, tuple) else (value,):
            parts += [flag] if v is True else [flag, str(v)]
    env = os.environ.get(DATA_ENV)
    prefix = f"{DATA_ENV}={shlex.quote(env)} " if env and not options.get("data_root") else ""
    return prefix + shlex.join(parts)


def check_methods(methods: Sequence[str]) -> None:
    """Raise one clear error naming every unknown method (and the known ones)."""
    if not methods:
        raise ConfigError("no methods given (--methods a,b,...)")
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ConfigError(f"unknown method{'s' if len(unknown) > 1 else ''} "
                          f"{', '.join(repr(m) for m in unknown)}; known: {', '.join(METHODS)}")


def dataset_dirname(dataset: str) -> str:
    """A folder name for a dataset name or path."""
    return Path(dataset).name if ("/" in dataset or "\\" in dataset) else dataset


def split_overrides(overrides: dict[str, Any], methods: Sequence[str]
                    ) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """``--set`` values -> (settings for every cell, settings per method).

    ``<method>.<key>=v`` goes to that method; a run setting (``patience``,
    ``val_ratio``, ``lr``...) goes to every cell; any other key is a method
    hyper-parameter and goes to every selected method whose config has it
    (an error if none has).
    """
    common: dict[str, Any] = {}
    per: dict[str, dict[str, Any]] = {m: {} for m in methods}
    for raw_key, value in overrides.items():
        key = raw_key.replace("-", "_")
        prefix, dot, rest = key.partition(".")
        if dot and prefix != "method":
            if prefix not in METHODS:
                raise ConfigError(f"--set {raw_key}: {prefix!r} is not a method; write "
                                  "<method>.<setting>=value to set one method's setting")
            if prefix in per:
                per[prefix][rest] = value
            continue
        key = key.removeprefix("method.")
        if key in OWN_FIELDS:
            raise ConfigError(f"--set {raw_key}: the leaderboard sets {key!r} itself "
                              "(use --methods, --datasets, --seeds, --first-seed, --epochs)")
        if key in RUN_FIELDS and key != "params":
            common[key] = value
            continue
        takers = [m for m in methods if key in _config_fields(m)]
        if not takers:
            raise ConfigError(f"--set {raw_key}: none of the methods {', '.join(methods)} has "
                              f"a setting {key!r}")
        for m in takers:
            per[m][key] = value
    return common, per


def _config_fields(method: str) -> set[str]:
    return {f.name for f in dataclasses.fields(METHODS.get(method).config_class)}


def cell_config(spec: QualitySpec, dataset: str, method: str, seed: int,
                common: dict[str, Any], own: dict[str, Any]) -> tuple[RunConfig, dict[str, Any]]:
    """The RunConfig of one cell and its resolved method settings, checked without training.

    With ``spec.tuned`` the method's tuned file for ``dataset`` is the layer under the
    ``--set`` values (:func:`ssgraphrec.tuning.tuned.resolve_run_config`).
    """
    cfg, _ = cell_settings(spec, dataset, method, seed, common, own)
    cfg.eval_ks = sorted({*(cfg.eval_ks or (10, 20)), 20})
    params = dataclasses.asdict(method_config(METHODS.get(method).config_class, cfg, method))
    return cfg, params


def cell_settings(spec: QualitySpec, dataset: str, method: str, seed: int,
                  common: dict[str, Any], own: dict[str, Any]
                  ) -> tuple[RunConfig, dict[str, Any]]:
    """A cell's RunConfig before checking, and where its settings came from."""
    fixed = {"method": method, "dataset": dataset, "seed": seed, "epochs": spec.epochs}
    for key in ("device", "data_root", "threads"):
        if getattr(spec, key):
            fixed[key] = getattr(spec, key)
    return resolve_run_config([fixed, common, own], paper_defaults=not spec.tuned)


def cell_state(run_dir: Path) -> str:
    """``done`` (results.json), ``interrupted`` (last.pt, no results.json) or ``new``."""
    if (run_dir / rd.RESULTS).is_file():
        return "done"
    if (run_dir / rd.LAST).is_file() and (run_dir / rd.CONFIG).is_file():
        return "interrupted"
    return "new"


def check_saved_config(cell: Cell) -> None:
    """Raise if the cell's saved settings are not the ones asked for."""
    saved = rd.read_config(cell.run_dir)
    wanted = cell.cfg.to_dict()
    diffs = [f"{k}={saved.get(k)!r} (asked {wanted[k]!r})" for k in COMPARED_FIELDS
             if saved.get(k) != wanted[k]]
    saved_params = saved.get("params") or {}
    # Every method setting both know: catches a changed --set and a changed default alike.
    diffs += [f"{k}={saved_params[k]!r} (now {v!r})" for k, v in cell.params.items()
              if k in saved_params and saved_params[k] != v]
    diffs += [f"{k}=<default> (asked {v!r})" for k, v in cell.cfg.params.items()
              if k not in saved_params]
    if 20 not in (saved.get("eval_ks") or []):
        diffs.append(f"eval_ks={saved.get('eval_ks')!r} (needs 20)")
    if diffs:
        raise SSGraphRecError(
            f"{cell.run_dir} holds a run with other settings: {', '.join(diffs)}; "
            "pick another --out, or delete that folder to retrain the cell")


def our_protocol(cfg: RunConfig) -> Protocol:
    """The protocol a cell's config stands for (its dataset's default split filled in)."""
    root = Path(cfg.data_root) if cfg.data_root else None
    _, ds, _ = resolve(cfg.dataset, root)
    split = cfg.split or ds.split
    detail = (f"at most {cfg.epochs} epochs, early stopping on validation {metric_label(cfg.monitor)} "
              f"(patience {cfg.patience})" if cfg.val_ratio > 0 else f"{cfg.epochs} epochs")
    test = None
    if split == "random":
        test = ds.test_ratio if cfg.test_ratio is None else cfg.test_ratio
    return Protocol(split, test=test, val=cfg.val_ratio, epochs=cfg.epochs,
                    detail=detail + "; full ranking of all items")


def plan(spec: QualitySpec) -> list[Cell]:
    """Every cell with its config and state; all checks happen here, before training."""
    check_methods(spec.methods)
    if not spec.datasets:
        raise ConfigError("no datasets given (--datasets a,b,...)")
    if not spec.seeds:
        raise ConfigError("--seeds must be at least 1")
    if spec.epochs < 0:
        raise ConfigError(f"--epochs must be >= 0, got {spec.epochs}")
    common, per = split_overrides(spec.overrides, spec.methods)
    root = Path(spec.data_root) if spec.data_root else None
    kinds = {}
    for dataset in spec.datasets:
        _, ds, _ = resolve(dataset, root)  # an absent dataset fails now, not after hours of training
        if ds.task not in KIND_METRICS:
            raise ConfigError(f"dataset {dataset!r} holds {ds.task} data; the quality leaderboard "
                              f"tables {', '.join(KIND_METRICS)} data")
        kinds[dataset] = ds.task
    cells = []
    for dataset in spec.datasets:
        for method in spec.methods:
            for seed in spec.seeds:
                cfg, params = cell_config(spec, dataset, method, seed, common, per[method])
                _, provenance = cell_settings(spec, dataset, method, seed, common, per[method])
                path = spec.out / "runs" / dataset_dirname(dataset) / method / f"seed{seed}"
                cell = Cell(dataset, method, seed, cfg, path, cell_state(path), params,
                            provenance, kinds[dataset])
                if cell.state != "new":
                    check_saved_config(cell)
                cells.append(cell)
    return cells


# ---------------------------------------------------------------- running
def read_curve(run_dir: Path, metric: str = CURVE_METRIC) -> list[tuple[int, float]]:
    """``(epoch, validation metric)`` from ``metrics.jsonl``; a repeated epoch keeps its last line."""
    path = Path(run_dir) / rd.METRICS
    if not path.is_file():
        return []
    points: dict[int, float] = {}
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut short by an interruption
        value = (record.get("val") or {}).get(metric)
        if isinstance(value, (int, float)) and "epoch" in record:
            points[int(record["epoch"])] = float(value)
    return sorted(points.items())


def _clear_partial(run_dir: Path) -> None:
    """Remove what a run that never finished an epoch may have left (known files only)."""
    for name in (rd.CONFIG, rd.METRICS, rd.BEST, rd.LAST, rd.RESULTS):
        (run_dir / name).unlink(missing_ok=True)


def run_cell(cell: Cell, log: Callable[[str], None]) -> CellResult:
    """Read, resume or train one cell; a failure is recorded, not raised."""
    result = CellResult(cell.dataset, cell.method, cell.seed, "failed", run_dir=str(cell.run_dir))
    try:
        if cell.state == "done":
            results = rd.read_results(cell.run_dir)
            result.status = "cached"
        elif cell.state == "interrupted":
            _, results = train(None, resume=str(cell.run_dir), progress=False, log=log)
            result.status = "resumed"
        else:
            _clear_partial(cell.run_dir)
            _, results = train(cell.cfg, str(cell.run_dir), progress=False, log=log,
                               provenance=cell.provenance)
            result.status = "trained"
    except Exception as exc:  # one broken cell must not lose the others' hours
        result.error = f"{type(exc).__name__}: {exc}"
        return result
    result.results = results
    result.test = {k: float(v) for k, v in (results.get("test") or {}).items()
                   if isinstance(v, (int, float))}
    missing = [m for m in cell.metrics if m not in result.test]
    if missing:
        result.status, result.error = "failed", f"results.json lacks {', '.join(missing)}"
    result.curve = read_curve(cell.run_dir)
    return result


def check_same_splits(cells: Sequence[CellResult]) -> list[str]:
    """Warnings for any (dataset, seed) whose cells saw different data (fingerprints)."""
    seen: dict[tuple[str, int], dict[str, list[str]]] = {}
    for c in cells:
        fp = (c.results.get("data") or {}).get("fingerprint")
        if c.ok and fp:
            seen.setdefault((c.dataset, c.seed), {}).setdefault(fp, []).append(c.method)
    return [f"{dataset} seed {seed}: the methods saw different data ("
            + "; ".join(f"{fp}: {', '.join(ms)}" for fp, ms in fps.items()) + ")"
            for (dataset, seed), fps in seen.items() if len(fps) > 1]


def run_quality(spec: QualitySpec, *, log: Callable[[str], None] = print,
                command: str | None = None) -> QualityReport:
    """Plan, train what is missing, and write ``quality.md``, ``.csv``, ``.json`` and the plot.

    Args:
        spec: what to benchmark.
        log: where progress lines go.
        command: the command line to record in the report.
    """
    cells = plan(spec)
    spec.out.mkdir(parents=True, exist_ok=True)
    todo = sum(c.state != "done" for c in cells)
    log(f"{len(cells)} cells: {len(cells) - todo} already done, "
        f"{sum(c.state == 'interrupted' for c in cells)} to resume, "
        f"{sum(c.state == 'new' for c in cells)} to train")
    results = []
    for k, cell in enumerate(cells, 1):
        name = f"[{k}/{len(cells)}] {cell.dataset} {cell.method} seed {cell.seed}"
        if cell.state != "done":
            log(f"{name}: {'resuming' if cell.state == 'interrupted' else 'training'}")
        res = run_cell(cell, lambda msg, name=name: log(f"  {name} {msg}"))
        if res.ok:
            log(f"{name}: {res.status}; test " + " ".join(
                f"{m} {res.test[m]:.4f}" for m in cell.metrics))
        else:
            log(f"{name}: FAILED: {res.error}")
        results.append(res)
    protocols = {c.dataset: our_protocol(c.cfg) for c in cells}
    warnings = check_same_splits(results)
    for w in warnings:
        log(f"warning: {w}")
    return write_report(spec, results, protocols, warnings, log=log, command=command,
                        monitor=cells[0].cfg.monitor if cells else "ndcg@20",
                        kinds={c.dataset: c.kind for c in cells})


def write_report(spec: QualitySpec, results: list[CellResult], protocols: dict[str, Protocol],
                 warnings: list[str], *, log: Callable[[str], None] = print,
                 command: str | None = None, monitor: str = "ndcg@20",
                 kinds: dict[str, str] | None = None) -> QualityReport:
    """Write the tables (and the plot) of ``results`` into ``spec.out``; ``kinds``
    (dataset -> kind of data) picks each dataset's metrics and backbone (user-item
    ranking where absent)."""
    kinds = {d: (kinds or {}).get(d, "ranking") for d in dict.fromkeys(c.dataset for c in results)}
    rows = aggregate(results, METRICS, protocols, kinds=kinds)
    plot = plot_curves(results, spec.out / PLOT, log=log)
    header = _header(spec, results, command, monitor, kinds)
    md = markdown_report(rows, protocols=protocols, header=header,
                         other=other_data(spec.methods, spec.datasets),
                         warnings=warnings, failures=[c for c in results if not c.ok],
                         plot=plot.name if plot else None)
    paths = spec.out / MARKDOWN, spec.out / CSV, spec.out / JSON
    write_text(paths[0], md)
    write_text(paths[1], csv_text(rows, protocols))
    payload = {
        "command": command, "header": header,
        "metrics": {d: list(KIND_METRICS[k]) for d, k in kinds.items()},
        "backbones": {d: BACKBONES[k] for d, k in kinds.items()},
        "protocols": {d: p.describe() for d, p in protocols.items()},
        "rows": [_row_json(r) for r in rows],
        "cells": [{"dataset": c.dataset, "method": c.method, "seed": c.seed,
                   "status": c.status, "run_dir": c.run_dir, "error": c.error,
                   "test": c.test, "val": c.results.get("val", {}),
                   "best_epoch": c.results.get("best_epoch"),
                   "epochs_trained": c.results.get("epochs_trained"),
                   "timing": c.results.get("timing", {}),
                   "fingerprint": (c.results.get("data") or {}).get("fingerprint")}
                  for c in results],
        "warnings": warnings,
    }
    write_text(paths[2], json.dumps(_finite(payload), indent=2, default=str) + "\n")
    return QualityReport(results, *paths, plot, warnings)


def _row_json(r: Row) -> dict[str, Any]:
    return {"dataset": r.dataset, "method": r.method, "seeds": r.seeds, "failed": r.failed,
            "values": r.values, "mean": r.mean, "std": r.std, "gain_pct_mean": r.gain_mean,
            "gain_pct_std": r.gain_std, "epochs_trained": r.epochs_trained,
            "best_epoch": r.best_epoch, "train_s_per_epoch": r.train_s_per_epoch,
            "published": {m: [{"value": x.reference.value, "metric": x.reference.metric,
                               "source": x.reference.source, "comparable": x.comparable,
                               "label": x.label} for x in ms]
                          for m, ms in r.references.items()}}


def _finite(x: Any) -> Any:
    """``x`` with NaN floats as None, so that the JSON is strict JSON."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_finite(v) for v in x]
    return x


def _header(spec: QualitySpec, results: Sequence[CellResult], command: str | None,
            monitor: str, kinds: dict[str, str]) -> list[str]:
    ok = [c for c in results if c.ok]
    devices = sorted({str(c.results.get("device")) for c in ok if c.results.get("device")})
    backends = sorted({str(c.results.get("sparse_backend")) for c in ok
                       if c.results.get("sparse_backend")})
    threads = sorted({str((c.results.get("versions") or {}).get("threads")) for c in ok
                      if (c.results.get("versions") or {}).get("threads")})
    lines = []
    if command:
        lines += [f"Command: `{command}`", ""]
    lines += [
        f"Written {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}; "
        f"torch {torch.__version__}, Python {platform.python_version()}; device "
        f"{', '.join(devices) or '?'}; sparse backend {', '.join(backends) or '?'}; torch threads "
        f"{', '.join(threads) or '?'} (as recorded by the runs).",
        "",
        f"Methods {', '.join(spec.methods)}; seeds {', '.join(map(str, spec.seeds))}; at most "
        f"{spec.epochs} epochs" + (f"; settings {_fmt_overrides(spec.overrides)}"
                                   if spec.overrides else "")
        + ("; each method at its tuned configuration where the package ships one (--tuned)"
           if spec.tuned else "") + ".",
        "",
        f"Test {_metrics_text(kinds)} of the epoch with the best validation "
        f"{metric_label(monitor)} (early stopping on it; the last epoch without a validation "
        "split), full ranking over all items (user-item data: the user's training and "
        "validation items masked); mean ± sample standard deviation (n − 1) over seeds. For "
        "one dataset and seed every method has the same split. `vs <backbone>`: relative "
        f"gain over {_backbones_text(kinds)}, paired by seed, with its 95 % t-interval over "
        "seeds; (better) / (worse): "
        "the interval excludes zero. `settings`: tuned (the package's tuned file for the "
        "dataset), paper (the paper's defaults), paper + remedies (with the small-data "
        "remedies of docs/tuning.md) or user (--set). Published figures are "
        "labelled where their K, split or budget differ from ours (see the notes under each "
        "table).",
        "",
        f"Cells: {sum(c.status == 'trained' for c in results)} trained, "
        f"{sum(c.status == 'resumed' for c in results)} resumed, "
        f"{sum(c.status == 'cached' for c in results)} read back, "
        f"{sum(not c.ok for c in results)} failed; run directories under "
        f"`{spec.out / 'runs'}`.",
    ]
    return lines


def _metrics_text(kinds: dict[str, str]) -> str:
    """``Recall@20 and NDCG@20`` (one kind of data) or the metrics of each kind."""
    groups = {k: " and ".join(metric_label(m) for m in KIND_METRICS[k])
              for k in dict.fromkeys(kinds.values())} or {"ranking": "Recall@20 and NDCG@20"}
    if len(groups) == 1:
        return next(iter(groups.values()))
    return "; ".join(f"{text} ({kind} data)" for kind, text in groups.items())


def _backbones_text(kinds: dict[str, str]) -> str:
    """``lightgcn`` or, with several kinds of data, each kind's backbone."""
    groups = {k: BACKBONES[k] for k in dict.fromkeys(kinds.values())} or {"ranking": "lightgcn"}
    if len(set(groups.values())) == 1:
        return next(iter(groups.values()))
    return ", ".join(f"{b} on {kind} data" for kind, b in groups.items())


def _fmt_overrides(overrides: dict[str, Any]) -> str:
    return ", ".join(f"`{k}={v}`" for k, v in overrides.items())
