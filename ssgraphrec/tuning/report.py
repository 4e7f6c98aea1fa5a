"""What a tune writes: ``best.yaml``, the trials table (CSV and Markdown), the history plot."""

from __future__ import annotations

import csv
import io
import time
from pathlib import Path
from typing import Any

import yaml

from ..config import RunConfig
from ..train.run_dir import write_text_atomic
from .space import TUNABLE_RUN_FIELDS
from .study import PROTOCOL_FIELDS, finished, trial_config
from .tuned import META_KEY


def trial_rows(study) -> list[dict[str, Any]]:
    """One row per trial: number, state, value, best epoch, epochs, seconds, parameters."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        seconds = (t.datetime_complete - t.datetime_start).total_seconds() \
            if t.datetime_complete and t.datetime_start else None
        rows.append({"trial": t.number, "state": t.state.name.lower(),
                     "value": t.value, "best_epoch": t.user_attrs.get("best_epoch"),
                     "epochs": t.user_attrs.get("epochs_trained",
                                                t.user_attrs.get("pruned_at_epoch")),
                     "seconds": round(seconds, 1) if seconds is not None else None,
                     **{f"param:{k}": v for k, v in t.params.items()},
                     "error": t.user_attrs.get("error", "")})
    return rows


def best_config(study, base: RunConfig, spec) -> dict[str, Any]:
    """best.yaml: the protocol, the best trial's settings, and the ``tuning`` description."""
    best = study.best_trial
    cfg = trial_config(base, best.params)
    # the protocol the value holds for, then the tuned settings
    out: dict[str, Any] = {k: getattr(cfg, k) for k in PROTOCOL_FIELDS
                           if getattr(cfg, k) is not None}
    for key in TUNABLE_RUN_FIELDS:
        if getattr(cfg, key) is not None:
            out[key] = getattr(cfg, key)
    if cfg.aug is not None:
        out["aug"] = cfg.aug
    out["params"] = dict(cfg.params)
    states = [t.state.name.lower() for t in study.get_trials(deepcopy=False)]
    out[META_KEY] = {
        "command": spec.command,
        "trials": finished(study),
        "complete": states.count("complete"),
        "pruned": states.count("pruned"),
        "failed": states.count("fail"),
        "best_trial": best.number,
        "best_epoch": best.user_attrs.get("best_epoch"),
        "monitor": cfg.monitor,
        "value": round(float(best.value), 6),
        "split": "validation (the test split is never evaluated while tuning)",
        "sampler": "optuna TPE",
        "pruner": spec.pruner,
        "date": time.strftime("%Y-%m-%d"),
    }
    return out


def markdown_table(rows: list[dict[str, Any]], monitor: str) -> str:
    params = sorted({k for r in rows for k in r if k.startswith("param:")})
    head = ["trial", "state", f"val {monitor}", "best epoch", "epochs", "s"] + \
        [p.removeprefix("param:") for p in params]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    ranked = sorted(rows, key=lambda r: (r["value"] is None, -(r["value"] or 0.0)))
    for r in ranked:
        seconds = "–" if r["seconds"] is None else f"{r['seconds']:.0f}"
        cells = [r["trial"], r["state"], _fmt(r["value"]), _fmt(r["best_epoch"]), _fmt(r["epochs"]),
                 seconds] + [_fmt(r.get(p)) for p in params]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e-3 and value != 0 else f"{value:.4f}"
    return str(value)


def plot_history(rows: list[dict[str, Any]], monitor: str, path: Path, title: str) -> Path | None:
    """Each finished trial's validation value and the best so far, by trial number."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    done = [r for r in sorted(rows, key=lambda r: r["trial"]) if r["value"] is not None]
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    best, best_so_far = float("-inf"), []
    for r in done:
        best = max(best, r["value"])
        best_so_far.append(best)
    pruned = [r for r in rows if r["state"] == "pruned"]
    complete = [r for r in done if r["state"] == "complete"]
    ax.scatter([r["trial"] for r in complete], [r["value"] for r in complete], s=18,
               label="complete trial")
    if pruned:
        ax.scatter([r["trial"] for r in pruned if r["value"] is not None],
                   [r["value"] for r in pruned if r["value"] is not None], s=18, marker="x",
                   label="pruned trial (last reported)")
    ax.step([r["trial"] for r in done], best_so_far, where="post", color="C3", label="best so far")
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("trial")
    ax.set_ylabel(f"validation {monitor}")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_outputs(study, spec, base: RunConfig) -> dict[str, Path]:
    """Write the tune folder's files; best.yaml only once a trial has completed."""
    out = spec.out
    rows = trial_rows(study)
    for r in rows:  # a pruned trial's value: the last one it reported
        if r["state"] == "pruned" and r["value"] is None:
            trial = study.trials[r["trial"]]
            if trial.intermediate_values:
                r["value"] = trial.intermediate_values[max(trial.intermediate_values)]
    written: dict[str, Path] = {}
    buf = io.StringIO()
    fields = sorted({k for r in rows for k in r}, key=lambda k: (k.startswith("param:"), k == "error"))
    writer = csv.DictWriter(buf, fieldnames=fields)
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(out / "trials.csv", buf.getvalue())
    written["csv"] = out / "trials.csv"
    title = f"{base.method} on {base.dataset}: {len(rows)} trials"
    md = [f"# Tuning {base.method} on {base.dataset}", "",
          f"Command: `{spec.command}`" if spec.command else "", "",
          f"Trials ranked by validation {base.monitor} (the test split is never evaluated).", "",
          markdown_table(rows, base.monitor), ""]
    write_text_atomic(out / "trials.md", "\n".join(md))
    written["markdown"] = out / "trials.md"
    if any(r["state"] == "complete" for r in rows):
        best = best_config(study, base, spec)
        write_text_atomic(out / "best.yaml", f"# ssgraphrec train --config {out / 'best.yaml'}\n"
                          + yaml.safe_dump(best, sort_keys=False))
        written["best"] = out / "best.yaml"
    plot = plot_history(rows, base.monitor, out / "history.png", title)
    if plot is not None:
        written["plot"] = plot
    return written
