"""``--max-minutes``: a time budget for training and validation, on a fake clock."""

from __future__ import annotations

import json
import types

import pytest
import torch

import ssgraphrec.train.trainer as trainer_module
from ssgraphrec.data import SyntheticConfig, build_dataset, make_synthetic
from ssgraphrec.errors import SSGraphRecError
from ssgraphrec.methods import LightGCN, LightGCNConfig
from ssgraphrec.train import Trainer


@pytest.fixture(scope="module")
def data():
    raw = make_synthetic(SyntheticConfig(num_users=60, num_items=40, num_communities=3,
                                         mean_interactions=10, social=False), seed=0)
    return build_dataset(raw, test_ratio=0.2, val_ratio=0.2, seed=0)


@pytest.fixture
def clock(monkeypatch):
    """A clock that stands still except during an epoch's training, which takes a minute."""
    now = [0.0]
    monkeypatch.setattr(trainer_module, "time", types.SimpleNamespace(perf_counter=lambda: now[0]))
    train_epoch = Trainer.train_epoch

    def one_minute(self, *args, **kwargs):
        out = train_epoch(self, *args, **kwargs)
        now[0] += 60.0
        return out

    monkeypatch.setattr(Trainer, "train_epoch", one_minute)
    return now


def make_trainer(data, run_dir, max_minutes, logs):
    torch.manual_seed(0)
    method = LightGCN(data, LightGCNConfig(emb_dim=4, num_layers=1, batch_size=256))
    return Trainer(method, data, run_dir, epochs=10, patience=100, max_minutes=max_minutes,
                   generator=torch.Generator().manual_seed(0), progress=False, log=logs.append)


def elapsed(run_dir):
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line)["elapsed_s"] for line in lines]


def test_no_epoch_starts_past_the_budget_and_a_resume_continues_its_clock(data, tmp_path, clock):
    logs: list[str] = []
    res = make_trainer(data, tmp_path, 2.5, logs).fit()
    assert res["epochs_trained"] == 3                  # 1, 2 minutes: go on; 3 >= 2.5: stop
    assert elapsed(tmp_path) == [60.0, 120.0, 180.0]
    assert any(msg.startswith("time budget: 3.0 of 2.5 minutes spent after epoch 3")
               for msg in logs)
    assert "test" in res and 1 <= res["best_epoch"] <= 3
    again = make_trainer(data, tmp_path, 4.5, logs)     # a larger budget, resumed
    again.resume()
    assert again.fit()["epochs_trained"] == 5
    assert elapsed(tmp_path) == [60.0, 120.0, 180.0, 240.0, 300.0]


def test_without_a_budget_every_epoch_runs(data, tmp_path, clock):
    res = make_trainer(data, tmp_path, None, []).fit()
    assert res["epochs_trained"] == 10 and elapsed(tmp_path)[-1] == 600.0


@pytest.mark.parametrize("minutes", [0, -1.0])
def test_a_budget_must_be_positive(data, tmp_path, minutes):
    with pytest.raises(SSGraphRecError, match="max_minutes must be > 0"):
        make_trainer(data, tmp_path, minutes, [])
