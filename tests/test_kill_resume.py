"""Crash consistency: training killed with SIGKILL at random points, then resumed, ends as
an uninterrupted run, with one metrics line per epoch and no temporary file left."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest

EPOCHS = 200
#: Seeds of the kill points: one in CI; SSGRAPHREC_KILL_SEEDS=20 for a longer hunt.
SEEDS = range(int(os.environ.get("SSGRAPHREC_KILL_SEEDS", "1")))
COMMON = ["--no-progress", "--threads", "1", "--set", "emb_dim=8"]
#: Kills per run, each at a random point of a random epoch.
KILLS = 3


def done_epochs(run) -> int:
    """Epochs the run has logged so far (a line being written is not counted)."""
    path = run / "metrics.jsonl"
    return path.read_text().count("\n") if path.exists() else 0


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "ssgraphrec.cli", "train", *args]


def env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1"}


@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS)
def test_sigkill_at_random_points_then_resume_equals_an_uninterrupted_run(tmp_path, seed):
    data = tmp_path / "data.txt"
    data.write_text("".join(f"u{u} i{(u * 7 + k * 3) % 90} 1\n" for u in range(400)
                            for k in range(15)))
    fresh = ["--method", "lightgcn", "--dataset", str(data), "--epochs", str(EPOCHS), *COMMON]
    ref = tmp_path / "ref"
    t0 = time.perf_counter()
    subprocess.run(command(*fresh, "--out", str(ref)), check=True, env=env(),
                   capture_output=True, timeout=300)
    whole = time.perf_counter() - t0
    run = tmp_path / "run"
    rng = random.Random(seed)
    epoch_s = whole / EPOCHS     # an upper bound: start-up and evaluation are in `whole`
    kills = resumes = 0
    for _ in range(KILLS + 1):
        if (run / "last.pt").exists():
            args = command("--resume", str(run), *COMMON[:3])
            resumes += 1
        else:
            args = command(*fresh, "--out", str(run))
        proc = subprocess.Popen(args, env=env(), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        if kills < KILLS:
            # Kill at a random point of a random later epoch: after `target` epochs have
            # been logged, within the next epoch (mid-step, mid-evaluation or mid-save).
            target = min(done_epochs(run) + rng.randint(1, EPOCHS // (KILLS + 1)), EPOCHS - 1)
            while proc.poll() is None and done_epochs(run) < target:
                time.sleep(0.005)
            if proc.poll() is None:
                time.sleep(rng.uniform(0.0, epoch_s))
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                kills += 1
                continue
        assert proc.wait(timeout=300) == 0
    assert (run / "results.json").exists(), "did not finish"
    assert kills == KILLS and resumes == KILLS, (kills, resumes)
    epochs = [json.loads(line)["epoch"] for line in (run / "metrics.jsonl").read_text()
              .splitlines()]
    assert epochs == list(range(1, EPOCHS + 1))
    assert not list(run.glob("*.tmp"))
    got, want = (json.loads((d / "results.json").read_text())["test"] for d in (run, ref))
    for key in ("recall@20", "ndcg@20", "recall@10", "ndcg@10"):
        assert got[key] == pytest.approx(want[key], abs=1e-6), key
