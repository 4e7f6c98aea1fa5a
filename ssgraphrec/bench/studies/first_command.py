"""The first command of the README, timed as a new user runs it.

Runs ``ssgraphrec train --method sgl --aug edge_drop`` (and any other command
given with ``--command``) in a fresh process, ``--reps`` times, and records the
whole-process wall-clock seconds (imports, data generation, training with the
progress bar on, the final test evaluation and MostPop's on the same split), the
test Recall@20 / NDCG@20 and their ratio to MostPop's, the epochs trained, the
CPU count and the 1-minute load average at the start of each run.

Usage::

    python benchmarks/first_command.py                         # the README's command
    python benchmarks/first_command.py --reps 3 --threads 2
    python benchmarks/first_command.py --command "--method lightgcn"

Results go to ``benchmarks/results/first-command.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import RESULTS

FIRST = "--method sgl --aug edge_drop"


def loadavg() -> float | None:
    try:
        return float(Path("/proc/loadavg").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def run_once(args: list[str], threads: int | None) -> dict:
    """One whole-process run of ``ssgraphrec train ARGS``: seconds and results."""
    with tempfile.TemporaryDirectory(prefix="ssgraphrec-first-") as tmp:
        out = Path(tmp) / "run"
        env = dict(os.environ)
        if threads is not None:
            env["OMP_NUM_THREADS"] = str(threads)
        entry = "from ssgraphrec.cli import console_main; console_main()"  # the script's
        command = [sys.executable, "-c", entry, "train", *args, "--out", str(out)]
        if threads is not None:
            command += ["--threads", str(threads)]
        load = loadavg()
        t0 = time.perf_counter()
        done = subprocess.run(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              text=True)
        seconds = time.perf_counter() - t0
        if done.returncode != 0:
            raise SystemExit(f"ssgraphrec train {' '.join(args)} failed:\n{done.stdout}")
        results = json.loads((out / "results.json").read_text())
    test, base = results["test"], results["baseline"]["test"]
    return {
        "seconds": round(seconds, 2), "loadavg_1min_at_start": load,
        "epochs_trained": results["epochs_trained"], "best_epoch": results["best_epoch"],
        "recall@20": test["recall@20"], "ndcg@20": test["ndcg@20"],
        "mostpop_recall@20": base["recall@20"], "mostpop_ndcg@20": base["ndcg@20"],
        "recall_ratio": round(test["recall@20"] / base["recall@20"], 3),
        "ndcg_ratio": round(test["ndcg@20"] / base["ndcg@20"], 3),
        "device": results["device"], "dataset": results["dataset"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--command", action="append", default=[],
                        help=f"arguments of 'ssgraphrec train' (default: {FIRST!r}); repeatable")
    parser.add_argument("--reps", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None,
                        help="--threads of the run (default: torch's own choice)")
    parser.add_argument("--out", default=str(RESULTS / "first-command.json"))
    args = parser.parse_args()
    commands = args.command or [FIRST]
    records = []
    for rep in range(args.reps):
        for command in commands:  # alternated, so that load drifts hit every command alike
            record = {"command": f"ssgraphrec train {command}", "rep": rep,
                      **run_once(shlex.split(command), args.threads)}
            print(json.dumps(record), flush=True)
            records.append(record)
    summary = {}
    for command in commands:
        mine = [r for r in records if r["command"] == f"ssgraphrec train {command}"]
        summary[f"ssgraphrec train {command}"] = {
            "median_seconds": statistics.median(r["seconds"] for r in mine),
            "max_seconds": max(r["seconds"] for r in mine),
            "recall_ratio_to_mostpop": mine[-1]["recall_ratio"],
            "ndcg_ratio_to_mostpop": mine[-1]["ndcg_ratio"],
        }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "python": platform.python_version(), "cpu_count": os.cpu_count(),
        "threads": args.threads, "summary": summary, "runs": records,
    }, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
