"""Curves of training runs: every run's ``curves.png``, and ``ssgraphrec plot`` to overlay runs.

A run directory's ``metrics.jsonl`` holds one record per epoch: the mean of each
loss term, and the validation metrics when there is a validation split (pre-training
epochs have ``phase: pretrain``). :func:`plot_runs` draws, for one or more runs, the
loss terms per epoch (left) and a validation metric per epoch (right), the best
epoch of each run marked; with ``x="minutes"`` against the wall-clock minutes of
training and validation instead (``elapsed_s`` of each record), to compare the time
methods take to a quality. It needs matplotlib (``pip install matplotlib``); a run
writes its own ``curves.png`` when matplotlib is installed and skips it otherwise.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import SSGraphRecError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: The figure a run writes beside its metrics.
CURVES = "curves.png"


@dataclass
class Curves:
    """The per-epoch records of one run."""

    name: str
    epochs: list[int] = field(default_factory=list)
    losses: dict[str, list[float]] = field(default_factory=dict)
    val: dict[str, list[float]] = field(default_factory=dict)
    val_epochs: list[int] = field(default_factory=list)
    monitor: str = "ndcg@20"
    #: minutes of training and validation at the end of each epoch (empty for runs
    #: written before the records carried ``elapsed_s``)
    minutes: list[float] = field(default_factory=list)

    def selected(self) -> int | None:
        """The epoch the run selected: the first best of its validation ``monitor``
        (None without validation)."""
        values = self.val.get(self.monitor)
        if not values:
            return None
        return self.val_epochs[max(range(len(values)), key=values.__getitem__)]

    def x(self, axis: str, epochs: list[int]) -> list[float]:
        """The x values of ``epochs`` on ``axis`` ("epoch" or "minutes")."""
        if axis == "epoch":
            return [float(e) for e in epochs]
        if len(self.minutes) != len(self.epochs):
            raise SSGraphRecError(f"run {self.name!r} records no elapsed time per epoch "
                                  "(written by an older version): plot it against epochs")
        at = dict(zip(self.epochs, self.minutes, strict=True))
        return [at[e] for e in epochs]


def read_curves(run_dir: str | Path) -> Curves:
    """The joint-training epochs of ``run_dir/metrics.jsonl`` (and its monitor from
    ``config.yaml``); a folder without metrics is a :class:`SSGraphRecError`."""
    run_dir = Path(run_dir)
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        raise SSGraphRecError(f"{run_dir} has no metrics.jsonl: not a run directory of "
                              "'ssgraphrec train'")
    curves = Curves(run_dir.name)
    config = run_dir / "config.yaml"
    if config.is_file():
        import yaml

        curves.monitor = (yaml.safe_load(config.read_text()) or {}).get("monitor", curves.monitor)
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            raise SSGraphRecError(f"{path}, line {number}: not a JSON record") from None
        if "epoch" not in record:   # a pre-training record
            continue
        curves.epochs.append(int(record["epoch"]))
        if "elapsed_s" in record:
            curves.minutes.append(float(record["elapsed_s"]) / 60)
        for term, value in record.get("loss", {}).items():
            curves.losses.setdefault(term, []).append(float(value))
        if record.get("val"):
            curves.val_epochs.append(int(record["epoch"]))
            for name, value in record["val"].items():
                if isinstance(value, (int, float)):
                    curves.val.setdefault(name, []).append(float(value))
    if not curves.epochs:
        raise SSGraphRecError(f"{path} holds no training epoch yet")
    return curves


#: The x axes of :func:`plot_runs`.
X_AXES = ("epoch", "minutes")

#: The figure's margins and gap, as fractions of its 11 x 4.2 inches: room for the
#: tick labels, the axis labels and the titles.
MARGINS = {"left": 0.07, "right": 0.985, "bottom": 0.12, "top": 0.92, "wspace": 0.22}


def plot_runs(run_dirs: list[str | Path], out: str | Path, metric: str | None = None,
              x: str = "epoch") -> Path:
    """Overlay the loss terms and the validation ``metric`` (default: the first run's
    monitor) of ``run_dirs`` in one PNG, against epochs or wall-clock minutes (``x``);
    returns its path."""
    fig = draw_runs([read_curves(d) for d in run_dirs], metric, x)
    out = Path(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, dpi=110)
    except OSError as exc:
        raise SSGraphRecError(f"cannot write {out}: {exc.strerror or exc}") from None
    return out


def draw_runs(runs: list[Curves], metric: str | None = None, x: str = "epoch") -> Figure:
    """The figure of :func:`plot_runs` for curves already read."""
    if x not in X_AXES:
        raise SSGraphRecError(f"x must be one of {', '.join(X_AXES)}, got {x!r}")
    try:
        # the object-oriented API: no pyplot, so no backend to select, no global figure
        # registry, and nothing to close
        from matplotlib import rcParams
        from matplotlib.figure import Figure
        from matplotlib.ticker import LogFormatter
    except ImportError:
        raise SSGraphRecError("plotting needs matplotlib: pip install matplotlib") from None
    metric = metric or runs[0].monitor
    fig = Figure(figsize=(11, 4.2))
    left, right = fig.subplots(1, 2)
    colors = rcParams["axes.prop_cycle"].by_key()["color"]
    styles = ["-", "--", ":", "-."]
    for r, run in enumerate(runs):
        color = colors[r % len(colors)]
        for t, (term, values) in enumerate(run.losses.items()):
            left.plot(run.x(x, run.epochs), values, styles[t % len(styles)], color=color,
                      label=f"{run.name}: {term}" if len(runs) > 1 else term)
        if metric in run.val:
            values, at = run.val[metric], run.x(x, run.val_epochs)
            right.plot(at, values, "-o", color=color, markersize=3, label=run.name)
            selected = run.selected()           # the star: the epoch the run selected
            best = (run.val_epochs.index(selected) if selected is not None
                    else max(range(len(values)), key=values.__getitem__))
            right.plot([at[best]], [values[best]], "*", color=color, markersize=12)
    xlabel = "epoch" if x == "epoch" else "minutes of training and validation"
    left.set(title="training loss terms (mean per epoch)", xlabel=xlabel, ylabel="loss")
    lowest = min(min(v) for run in runs for v in run.losses.values())
    if lowest > 0:                      # terms span decades (reg vs bpr)
        left.set_yscale("log")
        # plain labels ("1e-03"): the default ones are mathtext, whose parser is built on
        # first use, a third of a second of every run's curves.png
        left.yaxis.set_major_formatter(LogFormatter())
        left.yaxis.set_minor_formatter(LogFormatter(labelOnlyBase=False))
    monitors = sorted({run.monitor for run in runs})
    star = f"the epoch selected on {monitors[0]}" if len(monitors) == 1 else "the epoch selected"
    right.set(title=f"validation {metric} (star: {star})", xlabel=xlabel, ylabel=metric)
    if not any(metric in run.val for run in runs):
        right.text(0.5, 0.5, f"no validation {metric}\n(--val-ratio 0?)", ha="center",
                   va="center", transform=right.transAxes)
    for axis in (left, right):
        axis.grid(alpha=0.3)
        if axis.get_legend_handles_labels()[0]:
            axis.legend(fontsize=8)
    # fixed margins: tight_layout would draw the figure once more only to measure it
    fig.subplots_adjust(**MARGINS)
    return fig


def write_run_curves(run_dir: str | Path) -> Path | None:
    """``run_dir/curves.png`` of one run, or None when matplotlib is not installed."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return None
    return plot_runs([run_dir], Path(run_dir) / CURVES)
