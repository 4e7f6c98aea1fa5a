"""``--logger tensorboard``: the epoch records of metrics.jsonl as TensorBoard scalars."""

from __future__ import annotations

import builtins
import json

import pytest
from click.testing import CliRunner

from ssgraphrec.cli import main
from ssgraphrec.errors import ConfigError


def test_tensorboard_events_hold_the_metrics_of_every_epoch(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["train", "--method", "sgl", "--epochs", "3",
                                       "--no-progress", "--out", str(out), "--logger",
                                       "tensorboard", "--set", "emb_dim=8"])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"loss/bpr", "loss/ssl", "loss/reg", "val/ndcg@20", "time/train_s"} <= tags
    for tag, pick in (("loss/ssl", lambda r: r["loss"]["ssl"]),
                      ("val/ndcg@20", lambda r: r["val"]["ndcg@20"])):
        scalars = events.Scalars(tag)
        assert [s.step for s in scalars] == [1, 2, 3]
        assert [s.value for s in scalars] == pytest.approx([pick(r) for r in records], rel=1e-6)


def test_tensorboard_absent_is_one_clear_error(monkeypatch, tmp_path):
    from ssgraphrec.train.loggers import make_logger

    real_import = builtins.__import__

    def no_tensorboard(name, *args, **kwargs):
        if name.startswith("torch.utils.tensorboard"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tensorboard)
    with pytest.raises(ConfigError, match="pip install tensorboard"):
        make_logger("tensorboard", tmp_path)
    with pytest.raises(ConfigError, match="unknown logger 'wandb'"):
        make_logger("wandb", tmp_path)
