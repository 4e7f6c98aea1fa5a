"""Time to quality: test Recall@20 reached within a wall-clock budget, and the curves.

Trains each method once with ``ssgraphrec train --max-minutes M`` (the model
selected on a validation split carved from training, the test split read once at
the end), all methods at the same time, each in its own process with
``--threads T``, then overlays their validation curves against wall-clock minutes
(``ssgraphrec plot --x minutes``) and writes a summary beside a published target.

Usage::

    SSGRAPHREC_DATA=../shared/data python benchmarks/time_to_quality.py \\
        --dataset gowalla --methods xsimgcl,lightgcn --minutes 60 --threads 1

Outputs in ``--out`` (default ``benchmarks/results/time-to-quality``):
``time-to-quality.json`` (per method: the validation curve with minutes, the
selected epoch, its test metrics, the settings), ``time-to-quality.md`` and
``curves.png``. Run directories (checkpoints) go to ``--runs`` (default
``OUT/runs``, ignored by git); a method whose run directory already holds
``results.json`` is summarised, not retrained.

With ``--refit`` each run is ``ssgraphrec train --refit``: after selecting its epoch on
validation it trains once more, on the whole training file, for that many epochs, and
only that refit's test split is read. A refit's minutes are its selection run's,
through its early stop or budget, plus its own: the hour pays for both.
``--refits NAME=SELECTION`` summarises such a pair trained apart (the refit as
``--val-ratio 0 --epochs E``).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from ssgraphrec.errors import SSGraphRecError
from ssgraphrec.plots import plot_runs, read_curves
from ssgraphrec.train.run import REFIT_DIR

from . import RESULTS


def launch(method: str, args: argparse.Namespace, run_dir: Path) -> subprocess.Popen | None:
    """Start one training run in its own process (None: it has finished before); with
    ``--refit``, ``ssgraphrec train --refit`` (its refit in ``run_dir/refit``)."""
    if (run_dir / "results.json").is_file():
        return None
    if run_dir.exists():
        sys.exit(f"{run_dir} holds an unfinished run: delete it or resume it with "
                 f"'ssgraphrec train --resume {run_dir}'")
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "ssgraphrec", "train", "--method", method,
               "--dataset", args.dataset, "--epochs", str(args.epochs),
               "--max-minutes", str(args.minutes), "--threads", str(args.threads),
               "--seed", str(args.seed), "--no-progress", "--out", str(run_dir)]
    if args.val_ratio is not None:
        command += ["--val-ratio", str(args.val_ratio)]
    if args.lr is not None:
        command += ["--lr", str(args.lr)]
    if args.refit:
        command.append("--refit")
    for setting in args.set:
        command += ["--set", setting]
    log = open(run_dir.parent / f"{method}.log", "w")  # noqa: SIM115 (closed with the process)
    print(" ".join(command), flush=True)
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=os.environ.copy())


def run_settings(run_dir: Path, results: dict) -> dict:
    """How a run was trained, from its own directory (runs summarised here may have been
    trained apart, with other threads or budgets): threads, budget, and the settings
    the user gave."""
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    params = config.get("params") or {}
    given = results.get("provenance", {}).get("user_settings", [])
    return {"threads": config.get("threads"), "max_minutes": config.get("max_minutes"),
            "seed": config.get("seed"),
            "user_settings": {k: params.get(k, config.get(k)) for k in given}}


def summarise(method: str, run_dir: Path, target: float,
              selection_dir: Path | None = None) -> dict:
    """The validation curve against minutes and the selected epoch's test metrics.

    ``selection_dir`` makes ``run_dir`` a refit (:func:`refit_of`): its model is its
    last epoch, reached after the selection run's minutes and its own."""
    results = finished_results(run_dir)
    if selection_dir is None and "refit" in results:
        # its test metrics are its refit's, reached after more minutes than its own curve
        raise SSGraphRecError(f"{run_dir.name} was trained with --refit: its results are its "
                              "refit's; summarise it with --refit (the row of its refit)")
    curves = read_curves(run_dir)
    recall = curves.val.get("recall@20", [])
    minutes = curves.x("minutes", curves.val_epochs)
    test = results["test"]
    best = results["best_epoch"]
    settings = run_settings(run_dir, results)
    at_best = curves.x("minutes", [best])[0]
    refit = {}
    if selection_dir is not None:
        refit = refit_of(run_dir, results, selection_dir)
        at_best += refit["selection_minutes"]
    budget = settings["max_minutes"] if selection_dir is None else refit["selection_budget"]
    return {
        "method": method, "settings": results.get("config_source"), **settings,
        "epochs_trained": results["epochs_trained"], "best_epoch": best,
        "minutes_at_best_epoch": round(at_best, 2),
        "minutes_total": round(curves.minutes[-1] + refit.get("selection_minutes", 0.0), 2),
        "train_s_per_epoch": round(results["timing"]["train_s_per_epoch"], 1),
        "test_recall@20": round(test["recall@20"], 4), "test_ndcg@20": round(test["ndcg@20"], 4),
        # the target counts where the selected epoch ended within the run's budget
        "reaches_target": test["recall@20"] >= target and (budget is None or at_best <= budget),
        "val_curve": [{"epoch": e, "minutes": round(m, 2), "val_recall@20": round(r, 4)}
                      for e, m, r in zip(curves.val_epochs, minutes, recall, strict=True)],
        **refit,
    }


def finished_results(run_dir: Path) -> dict:
    """``run_dir/results.json``; a folder without it (a run unfinished, or trained before
    without ``--refit``) is a :class:`SSGraphRecError` that names it."""
    path = run_dir / "results.json"
    if not path.is_file():
        raise SSGraphRecError(f"{run_dir} holds no finished run (no results.json): train it, "
                              "or summarise the runs it holds by name with --runs/--refits")
    return json.loads(path.read_text())


def refit_of(run_dir: Path, results: dict, selection_dir: Path) -> dict:
    """What makes ``run_dir`` the refit of ``selection_dir``, checked: it trained without a
    validation split for exactly the epochs the selection run chose on validation. Returns
    the selection run's name, selected epoch, whole minutes and budget."""
    selection = finished_results(selection_dir)
    val_ratio = yaml.safe_load((run_dir / "config.yaml").read_text()).get("val_ratio")
    if val_ratio not in (0, 0.0):
        raise SSGraphRecError(f"{run_dir.name} is not a refit: it carved a validation split "
                              f"(val_ratio {val_ratio}); refits train with --val-ratio 0")
    if results["epochs_trained"] != selection["best_epoch"]:
        raise SSGraphRecError(
            f"{run_dir.name} trained {results['epochs_trained']} epochs, but "
            f"{selection_dir.name} selected epoch {selection['best_epoch']} on validation")
    return {"refit_of": selection_dir.name, "selected_epoch": selection["best_epoch"],
            "selection_minutes": round(read_curves(selection_dir).minutes[-1], 2),
            "selection_budget": run_settings(selection_dir, selection)["max_minutes"]}


def markdown(out: dict) -> str:
    lines = [f"# Time to quality on {out['dataset']}", "",
             f"Command: `{out['command']}`", "",
             f"{out['date']}. Each method ran once (seed {out['seed']}), each in its own "
             "process, with the budget and threads of its row (runs this study launches run "
             f"at the same time, with `--max-minutes {out['minutes']}` and `--threads "
             f"{out['threads']}`; runs trained apart are summarised as they ran); minutes "
             "count training and validation. The model is selected on the validation split "
             "carved from training (best NDCG@20); the test split is read once, at the end. "
             f"Target: test Recall@20 {out['target']} ({out['target_source']}).", "",
             "| method | settings given | threads | budget (min) | epochs | s/epoch (train) "
             "| best epoch | at minute | test Recall@20 | test NDCG@20 | reaches target |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in out["methods"]:
        given = ", ".join(f"{k} {v}" for k, v in r["user_settings"].items()) or "none"
        if r.get("seed") not in (None, out["seed"]):  # a run trained apart with a seed of its own
            given += f", seed {r['seed']}"
        budget = r.get("selection_budget", r["max_minutes"])  # a refit: its selection run's
        lines.append(f"| {r['method']} | {given} | {r['threads']} | {budget} | "
                     f"{r['epochs_trained']} | {r['train_s_per_epoch']} | "
                     f"{r['best_epoch']} | {r['minutes_at_best_epoch']} | {r['test_recall@20']} | "
                     f"{r['test_ndcg@20']} | {'yes' if r['reaches_target'] else 'no'} |")
    refits = [r for r in out["methods"] if "refit_of" in r]
    if refits:
        lines.append("")
    for r in refits:
        lines.append(f"{r['method']} is a refit: it trained on the whole training file, with no "
                     f"validation split, for the {r['selected_epoch']} epochs that "
                     f"{r['refit_of']} selected on validation, and was tested at its last "
                     f"epoch; its minutes add {r['refit_of']}'s whole run "
                     f"({r['selection_minutes']} minutes) to its own, within that run's budget.")
    return "\n".join(lines) + "\n"


def refit_pair(pair: str) -> tuple[str, str]:
    """``NAME=SELECTION`` of ``--refits`` as its two run names."""
    name, sep, selection = pair.partition("=")
    if not (sep and name and selection):
        sys.exit(f"--refits takes NAME=SELECTION (two run directories), got {pair!r}")
    return name, selection


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="gowalla")
    parser.add_argument("--methods", default="xsimgcl,lightgcn")
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=1000, help="upper bound of epochs")
    parser.add_argument("--seed", type=int, default=2020)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a setting passed to every run (repeatable)")
    parser.add_argument("--lr", type=float, help="learning rate of every run")
    parser.add_argument("--val-ratio", type=float,
                        help="share of each user's training items held out for validation")
    parser.add_argument("--refit", action="store_true",
                        help="train with --refit: after selecting the epochs on validation, "
                        "on the whole training file for that many epochs, that model tested")
    parser.add_argument("--refits", action="append", default=[], metavar="NAME=SELECTION",
                        help="summarise run NAME as the refit of run SELECTION (repeatable)")
    parser.add_argument("--target", type=float, default=0.1824)
    parser.add_argument("--target-source", default="LightGCN's published Recall@20 on this "
                        "Gowalla split after 1,000 epochs (LightGCN-PyTorch README)")
    parser.add_argument("--out", default=str(RESULTS / "time-to-quality"))
    parser.add_argument("--runs", help="run directories [default: OUT/runs]")
    args = parser.parse_args()
    out_dir = Path(args.out)
    runs = Path(args.runs) if args.runs else out_dir / "runs"
    methods = [m for m in args.methods.split(",") if m]
    # a refit's name: (its run directory, its selection run's)
    refits = {name: (runs / name, runs / selection)
              for name, selection in map(refit_pair, args.refits)}
    started = {m: launch(m, args, runs / m) for m in methods}
    failed = [m for m, proc in started.items() if proc is not None and proc.wait() != 0]
    if failed:
        sys.exit(f"training failed for {', '.join(failed)}: see {runs}/<method>.log")
    if args.refit:  # each run's own results are its refit's: the selected model is not tested
        refits.update({f"{m}-refit": (runs / m / REFIT_DIR, runs / m) for m in methods})
    rows = [] if args.refit else [summarise(m, runs / m, args.target) for m in methods]
    rows += [summarise(name, run_dir, args.target, selection_dir=selection)
             for name, (run_dir, selection) in refits.items()]
    out = {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": " ".join(["python", "benchmarks/time_to_quality.py", *sys.argv[1:]]),
        "dataset": args.dataset, "minutes": args.minutes, "threads": args.threads,
        "seed": args.seed, "settings": args.set, "lr": args.lr, "val_ratio": args.val_ratio,
        "target": args.target,
        "target_source": args.target_source,
        "methods": rows,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "time-to-quality.json").write_text(json.dumps(out, indent=2) + "\n")
    (out_dir / "time-to-quality.md").write_text(markdown(out))
    plot_runs([runs / m for m in methods], out_dir / "curves.png", metric="recall@20", x="minutes")
    print(markdown(out))


if __name__ == "__main__":
    main()
