"""Aggregate per-seed results into leaderboard rows; write Markdown, CSV and a plot.

Everything here works on plain data (:class:`CellResult`), so that the
aggregation can be checked on hand-made numbers without training anything.
"""

from __future__ import annotations

import csv
import io
import math
import os
import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .references import Match, Protocol, Reference, lookup, metric_label

#: The metrics of the quality table of user-item data, all on the test split.
METRICS: tuple[str, ...] = ("recall@20", "ndcg@20")
#: The validation metric plotted per epoch.
CURVE_METRIC = "ndcg@20"
#: Relative gains are reported against this method when it is benchmarked too.
BASELINE = "lightgcn"
#: The test metrics tabled for each kind of data (``DatasetSpec.task``): user-item
#: ranking; user sequences, leave-one-out (hit ratio = recall with one held-out item);
#: session samples with next-item labels (P@20 and MRR@20 of the session papers).
KIND_METRICS: dict[str, tuple[str, ...]] = {
    "ranking": METRICS, "sequential": ("hit@20", "ndcg@20"), "next_item": ("hit@20", "mrr@20")}
#: The backbone each kind's self-supervised methods are measured against: LightGCN for
#: the graph methods, SASRec for CL4SRec (the encoder it adds its contrastive term to).
BACKBONES: dict[str, str] = {"ranking": BASELINE, "sequential": "sasrec", "next_item": "sasrec"}


@dataclass
class CellResult:
    """The outcome of one (dataset, method, seed) cell.

    Attributes:
        dataset, method, seed: the cell.
        status: ``trained``, ``resumed``, ``cached`` (results.json was there)
            or ``failed``.
        test: test metrics of the selected epoch (empty when failed).
        run_dir: the cell's run directory.
        results: the whole ``results.json`` (empty when failed).
        error: the error message of a failed cell.
        curve: ``(epoch, validation metric)`` pairs from ``metrics.jsonl``.
    """

    dataset: str
    method: str
    seed: int
    status: str
    test: dict[str, float] = field(default_factory=dict)
    run_dir: str = ""
    results: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    curve: list[tuple[int, float]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status != "failed"


@dataclass
class Row:
    """One (dataset, method) line of the leaderboard: statistics over seeds."""

    dataset: str
    method: str
    seeds: list[int]
    failed: list[int]
    values: dict[str, list[float]]
    mean: dict[str, float]
    std: dict[str, float]
    gain_mean: dict[str, float] = field(default_factory=dict)
    gain_std: dict[str, float] = field(default_factory=dict)
    #: half-width of the 95 % t-interval of the paired gain (NaN for one seed)
    gain_ci: dict[str, float] = field(default_factory=dict)
    #: where the settings of the row's cells came from (tuned, paper, user)
    config_source: str = ""
    epochs_trained: float = math.nan
    best_epoch: float = math.nan
    train_s_per_epoch: float = math.nan
    references: dict[str, list[Match]] = field(default_factory=dict)
    #: the test metrics of the row's table (its dataset's kind, :data:`KIND_METRICS`)
    metrics: tuple[str, ...] = METRICS
    #: the method the gains are relative to (:data:`BACKBONES`)
    baseline: str = BASELINE


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and *sample* standard deviation (n - 1); std is NaN for fewer than 2 values."""
    vals = [float(v) for v in values]
    if not vals:
        return math.nan, math.nan
    mean = statistics.fmean(vals)
    return mean, (statistics.stdev(vals) if len(vals) > 1 else math.nan)


#: Two-sided 95 % quantiles of Student's t for 1..30 degrees of freedom.
T95 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
       2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
       2.052, 2.048, 2.045, 2.042)


def t_interval(values: Sequence[float]) -> float:
    """Half-width of the 95 % confidence interval of the mean of ``values`` (Student's t,
    n - 1 degrees of freedom); NaN for fewer than two values."""
    n = len(values)
    if n < 2:
        return math.nan
    t = T95[n - 2] if n - 1 <= len(T95) else 1.96
    return t * statistics.stdev(values) / math.sqrt(n)


def aggregate(cells: Iterable[CellResult], metrics: Sequence[str] = METRICS,
              protocols: dict[str, Protocol] | None = None, baseline: str = BASELINE,
              kinds: dict[str, str] | None = None) -> list[Row]:
    """One :class:`Row` per (dataset, method), in the order cells first name them.

    Means and standard deviations are over the seeds whose cell succeeded.
    ``gain_*`` is the relative gain over ``baseline`` in percent, paired by
    seed (the same seed means the same split): mean and sample std over seeds of
    ``100 * (ours / baseline - 1)``. With ``protocols`` (dataset -> our
    protocol), each row carries the published figures for each metric.
    ``kinds`` (dataset -> kind of data) gives a dataset its kind's metrics and
    backbone (:data:`KIND_METRICS`, :data:`BACKBONES`) instead of ``metrics`` and
    ``baseline``.
    """
    cells = list(cells)
    groups: dict[tuple[str, str], list[CellResult]] = {}
    for cell in cells:
        groups.setdefault((cell.dataset, cell.method), []).append(cell)
    rows = []
    for (dataset, method), group in groups.items():
        kind = (kinds or {}).get(dataset)
        table_metrics = KIND_METRICS[kind] if kind else tuple(metrics)
        ok = sorted((c for c in group if c.ok), key=lambda c: c.seed)
        values = {m: [float(c.test[m]) for c in ok if m in c.test] for m in table_metrics}
        row = Row(dataset, method, [c.seed for c in ok],
                  sorted(c.seed for c in group if not c.ok), values,
                  {m: mean_std(v)[0] for m, v in values.items()},
                  {m: mean_std(v)[1] for m, v in values.items()},
                  metrics=table_metrics, baseline=BACKBONES[kind] if kind else baseline)
        sources = sorted({_source_label(c.results) for c in ok} - {""})
        row.config_source = "/".join(sources)
        row.epochs_trained = _mean(c.results.get("epochs_trained") for c in ok)
        row.best_epoch = _mean(c.results.get("best_epoch") for c in ok)
        row.train_s_per_epoch = _mean(c.results.get("timing", {}).get("train_s_per_epoch")
                                      for c in ok if c.results.get("epochs_trained"))
        if protocols is not None and dataset in protocols:
            row.references = {m: lookup(method, dataset, m, protocols[dataset])
                              for m in table_metrics}
        rows.append(row)
    by_key = {(r.dataset, r.method): r for r in rows}
    base_cells = {(c.dataset, c.method, c.seed): c for c in cells if c.ok}
    for row in rows:
        if row.method == row.baseline or (row.dataset, row.baseline) not in by_key:
            continue
        for m in row.metrics:
            gains = []
            for seed, value in zip(row.seeds, row.values[m], strict=False):
                base = base_cells.get((row.dataset, row.baseline, seed))
                if base is not None and base.test.get(m):
                    gains.append(100.0 * (value / float(base.test[m]) - 1.0))
            if gains:
                row.gain_mean[m], row.gain_std[m] = mean_std(gains)
                row.gain_ci[m] = t_interval(gains)
    return rows


def _source_label(results: dict[str, Any]) -> str:
    """``tuned``, ``paper``, ``paper + remedies`` (the small-data remedies of
    docs/tuning.md were applied) or ``user``."""
    source = results.get("config_source", "")
    if source == "paper" and (results.get("provenance") or {}).get("remedies"):
        return "paper + remedies"
    return source


def _mean(values: Iterable[Any]) -> float:
    vals = [float(v) for v in values if isinstance(v, (int, float))]
    return statistics.fmean(vals) if vals else math.nan


def fmt_mean_std(mean: float, std: float, digits: int = 4) -> str:
    """``0.1234 ± 0.0056``; just the mean when std is NaN (one seed); ``–`` when no value."""
    if math.isnan(mean):
        return "–"
    if math.isnan(std):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def fmt_gain(mean: float | None, std: float | None) -> str:
    """``+3.1% ± 1.2``."""
    if mean is None or math.isnan(mean):
        return "–"
    text = f"{mean:+.1f}%"
    return text if std is None or math.isnan(std) else f"{text} ± {std:.1f}"


def fmt_gain_ci(mean: float | None, half: float | None) -> str:
    """``+3.1% [+0.4, +5.8]``: the paired gain and its 95 % interval; a gain whose interval
    lies below zero is marked ``(worse)``, one above zero ``(better)``."""
    if mean is None or math.isnan(mean):
        return "–"
    if half is None or math.isnan(half):
        return f"{mean:+.1f}%"
    lo, hi = mean - half, mean + half
    verdict = " (better)" if lo > 0 else (" (worse)" if hi < 0 else "")
    return f"{mean:+.1f}% [{lo:+.1f}, {hi:+.1f}]{verdict}"


def _fmt_number(x: float, digits: int = 1) -> str:
    return "–" if math.isnan(x) else f"{x:.{digits}f}"


def write_text(path: Path, text: str) -> None:
    """Write ``text`` atomically (a temporary file, then a rename), with the umask's permissions.

    Tables are meant to be read and committed, so unlike the private files of
    a run directory they get the usual permissions (``rw-r--r--`` with umask 022).
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


# ---------------------------------------------------------------- Markdown
class _Footnotes:
    """Numbers published figures in the order a table cites them."""

    def __init__(self) -> None:
        self.refs: list[Match] = []

    def cite(self, match: Match) -> int:
        for k, m in enumerate(self.refs, 1):
            if m.reference == match.reference:
                return k
        self.refs.append(match)
        return len(self.refs)

    def lines(self) -> list[str]:
        out = []
        for k, m in enumerate(self.refs, 1):
            verdict = ("comparable: same K, split and budget" if m.comparable
                       else f"**{m.label}**")
            out.append(f"[{k}] {m.reference.describe()}. {verdict}.")
        return out


def _published_cell(matches: list[Match], notes: _Footnotes) -> str:
    parts = []
    for m in matches:
        shown = [t for t in m.tags if t != "approx."]
        text = ("~" if m.reference.approximate else "") + f"{m.reference.value:g}"
        if shown:
            text += f" ({', '.join(shown)})"
        parts.append(f"{text} [{notes.cite(m)}]")
    return "; ".join(parts) if parts else "–"


def markdown_table(rows: Sequence[Row], metrics: Sequence[str] | None = None,
                   baseline: str | None = None) -> tuple[str, list[str]]:
    """The Markdown table of ``rows`` (one dataset) and its footnotes; the metrics and
    the baseline are the rows' own unless given."""
    metrics = tuple(metrics) if metrics is not None else (rows[0].metrics if rows else METRICS)
    baseline = baseline or (rows[0].baseline if rows else BASELINE)
    notes = _Footnotes()
    labels = [metric_label(m) for m in metrics]
    has_gain = any(r.gain_mean for r in rows)
    has_source = any(r.config_source for r in rows)
    head = (["method"] + (["settings"] if has_source else []) + ["seeds"]
            + [f"test {lab}" for lab in labels]
            + ([f"{lab} vs {baseline} [95% CI]" for lab in labels] if has_gain else [])
            + [f"published {lab.split('@')[0]}" for lab in labels]
            + ["epochs (best)", "s/epoch"])
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for r in rows:
        seeds = str(len(r.seeds)) + (f" ({len(r.failed)} failed)" if r.failed else "")
        cells = [r.method] + ([r.config_source or "–"] if has_source else []) + [seeds]
        cells += [fmt_mean_std(r.mean[m], r.std[m]) for m in metrics]
        if has_gain:
            cells += [fmt_gain_ci(r.gain_mean.get(m), r.gain_ci.get(m)) if r.method != baseline
                      else "–" for m in metrics]
        cells += [_published_cell(r.references.get(m, []), notes) for m in metrics]
        epochs = ("–" if math.isnan(r.epochs_trained) or not r.epochs_trained
                  else f"{r.epochs_trained:.3g} ({r.best_epoch:.3g})")
        cells += [epochs, _fmt_number(r.train_s_per_epoch, 2)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines), notes.lines()


def markdown_report(rows: Sequence[Row], *, protocols: dict[str, Protocol],
                    header: Sequence[str], other: Sequence[Reference] = (),
                    warnings: Sequence[str] = (), failures: Sequence[CellResult] = (),
                    plot: str | None = None, metrics: Sequence[str] | None = None) -> str:
    """The whole ``quality.md``: header lines, one table per dataset, references, failures."""
    out = ["# Quality leaderboard", "", *header, ""]
    datasets = list(dict.fromkeys(r.dataset for r in rows))
    for dataset in datasets:
        part = [r for r in rows if r.dataset == dataset]
        table, notes = markdown_table(part, metrics)
        proto = protocols.get(dataset)
        out += [f"## {dataset}", ""]
        if proto is not None:
            out += [f"Protocol: {proto.describe()}.", ""]
        out += [table, ""]
        if notes:
            out += ["Published figures:", ""] + [f"- {n}" for n in notes] + [""]
    if other:
        out += ["## Published figures for these methods on other data", "",
                "Not comparable with any row above (different data):", ""]
        out += [f"- {r.describe()}" for r in other] + [""]
    if plot:
        out += ["## Validation curves", "", f"![validation {metric_label(CURVE_METRIC)} per epoch]"
                f"({plot})", ""]
    if warnings:
        out += ["## Warnings", ""] + [f"- {w}" for w in warnings] + [""]
    if failures:
        out += ["## Failed cells", ""]
        out += [f"- {c.dataset} / {c.method} / seed {c.seed}: {c.error}" for c in failures]
        out += [""]
    return "\n".join(out)


# ---------------------------------------------------------------- CSV
def csv_text(rows: Sequence[Row], protocols: dict[str, Protocol],
             metrics: Sequence[str] | None = None) -> str:
    """One CSV line per (dataset, method); published figures beside each metric.

    Several published figures for one metric are joined with `` | ``. The columns
    are ``metrics``, by default every row's metrics in order of appearance (a row
    without one leaves its columns empty).
    """
    if metrics is None:
        metrics = list(dict.fromkeys(m for r in rows for m in r.metrics)) or list(METRICS)
    fields = ["dataset", "method", "config_source", "protocol", "seeds", "failed_seeds"]
    for m in metrics:
        fields += [f"{m}_mean", f"{m}_std", f"{m}_values", f"{m}_gain_pct_mean",
                   f"{m}_gain_pct_std", f"{m}_gain_pct_ci95", f"{m}_published", f"{m}_published_metric",
                   f"{m}_published_comparable", f"{m}_published_label",
                   f"{m}_published_source"]
    fields += ["epochs_trained_mean", "best_epoch_mean", "train_s_per_epoch_mean"]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for r in rows:
        proto = protocols.get(r.dataset)
        line: dict[str, Any] = {
            "dataset": r.dataset, "method": r.method, "config_source": r.config_source,
            "protocol": proto.describe() if proto else "",
            "seeds": " ".join(map(str, r.seeds)), "failed_seeds": " ".join(map(str, r.failed)),
            "epochs_trained_mean": _csv_num(r.epochs_trained),
            "best_epoch_mean": _csv_num(r.best_epoch),
            "train_s_per_epoch_mean": _csv_num(r.train_s_per_epoch),
        }
        for m in metrics:
            if m not in r.metrics:
                continue
            matches = r.references.get(m, [])
            line |= {
                f"{m}_mean": _csv_num(r.mean[m]), f"{m}_std": _csv_num(r.std[m]),
                f"{m}_values": " ".join(f"{v:.6f}" for v in r.values[m]),
                f"{m}_gain_pct_mean": _csv_num(r.gain_mean.get(m, math.nan)),
                f"{m}_gain_pct_std": _csv_num(r.gain_std.get(m, math.nan)),
                f"{m}_gain_pct_ci95": _csv_num(r.gain_ci.get(m, math.nan)),
                f"{m}_published": " | ".join(f"{x.reference.value:g}" for x in matches),
                f"{m}_published_metric": " | ".join(x.reference.metric for x in matches),
                f"{m}_published_comparable": " | ".join(str(x.comparable).lower()
                                                        for x in matches),
                f"{m}_published_label": " | ".join(x.label or "comparable" for x in matches),
                f"{m}_published_source": " | ".join(x.reference.source for x in matches),
            }
        writer.writerow(line)
    return buf.getvalue()


def _csv_num(x: float) -> str:
    return "" if x is None or math.isnan(x) else f"{x:.6g}"


# ---------------------------------------------------------------- plot
def plot_curves(cells: Sequence[CellResult], path: Path,
                log: Callable[[str], None] = print) -> Path | None:
    """Validation NDCG@20 per epoch, one panel per dataset, one line per method.

    A line is the mean over seeds at each epoch (a band: min to max over
    seeds); methods with nothing to train (no epochs) are a dashed level at
    their validation value. Returns None, saying so through ``log``, when
    matplotlib is not installed or there is nothing to plot.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import MaxNLocator
    except ImportError:
        log("matplotlib is not installed (pip install 'ssgraphrec[plot]'): skipped the plot")
        return None
    datasets = list(dict.fromkeys(c.dataset for c in cells if c.ok))
    if not datasets:
        log("no finished cells: skipped the plot")
        return None
    fig, axes = plt.subplots(1, len(datasets), figsize=(5.5 * len(datasets), 4), squeeze=False)
    drawn = False
    for ax, dataset in zip(axes[0], datasets, strict=True):
        methods = list(dict.fromkeys(c.method for c in cells if c.dataset == dataset and c.ok))
        for method in methods:
            group = [c for c in cells if c.dataset == dataset and c.method == method and c.ok]
            by_epoch: dict[int, list[float]] = {}
            for c in group:
                for epoch, value in c.curve:
                    by_epoch.setdefault(epoch, []).append(value)
            if by_epoch:
                epochs = sorted(by_epoch)
                mean = [statistics.fmean(by_epoch[e]) for e in epochs]
                line, = ax.plot(epochs, mean, marker="o", markersize=3, label=method)
                if len(group) > 1:
                    ax.fill_between(epochs, [min(by_epoch[e]) for e in epochs],
                                    [max(by_epoch[e]) for e in epochs],
                                    color=line.get_color(), alpha=0.15, linewidth=0)
                drawn = True
            else:
                level = [c.results.get("val", {}).get(CURVE_METRIC) for c in group]
                level = [v for v in level if isinstance(v, (int, float))]
                if level:
                    ax.axhline(statistics.fmean(level), linestyle="--", color="grey",
                               label=f"{method} (no training)")
                    drawn = True
        ax.set_title(dataset)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel(f"validation {metric_label(CURVE_METRIC)}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if not drawn:
        plt.close(fig)
        log(f"no validation {metric_label(CURVE_METRIC)} in any run (val_ratio=0?): "
            "skipped the plot")
        return None
    fig.suptitle(f"validation {metric_label(CURVE_METRIC)}: mean over seeds (band: min-max)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
