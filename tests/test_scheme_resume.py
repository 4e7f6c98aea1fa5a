"""Resuming pretrain->finetune runs in either phase, --init freezing, and the CLI on such runs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from ssgraphrec.errors import ConfigError
from ssgraphrec.methods import LightGCNConfig
from ssgraphrec.train import Trainer

sys.path.insert(0, str(Path(__file__).parent))
from test_schemes import GPT_TINY, Pretrainable, _recbole, cli  # noqa: E402
from test_schemes import data as data  # noqa: E402,F401  (the module fixture)


class Interrupt(Exception):
    """Stands for a killed process."""


class Stopping(Pretrainable):
    """Pretrainable that is 'killed' when a given (pre-)training epoch starts."""

    stop_at: str | None = None

    def on_pretrain_epoch_start(self, epoch):
        super().on_pretrain_epoch_start(epoch)
        if self.stop_at == f"pre{epoch}":
            raise Interrupt

    def on_epoch_start(self, epoch):
        super().on_epoch_start(epoch)
        if self.stop_at == f"fine{epoch}":
            raise Interrupt


def _method(data, stop_at=None):
    torch.manual_seed(0)
    m = Stopping(data, LightGCNConfig(emb_dim=4, num_layers=1, lr=0.1, batch_size=256))
    m.stop_at = stop_at
    return m


def _trainer(m, data, path, **kw):
    return Trainer(m, data, path, epochs=3, patience=0, scheme="pretrain_finetune",
                   pretrain_epochs=3, finetune_lr=0.02, generator=torch.Generator().manual_seed(1),
                   progress=False, log=lambda msg: None, **kw)


def _phases(path: Path) -> list:
    return [json.loads(x).get("phase", "finetune")
            for x in (path / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("stop_at", ["pre2", "fine1"])
def test_an_interrupted_run_resumes_where_it_stopped_and_ends_as_an_uninterrupted_one(
        data, tmp_path, stop_at):
    whole = _trainer(_method(data), data, tmp_path / "whole")
    expected = whole.fit()
    m = _method(data, stop_at)
    with pytest.raises(Interrupt):
        _trainer(m, data, tmp_path / "cut").fit()
    # a fresh process: new method and trainer, resumed from last.pt
    m2 = _method(data)
    trainer = _trainer(m2, data, tmp_path / "cut")
    trainer.resume()
    got = trainer.fit()
    done = "pre0 pre1".split() if stop_at == "pre2" else "pre0 pre1 pre2 finetune fine0".split()
    assert [c for c in m.calls if c != "pretrain_loss"] == done + [stop_at]
    # the resumed process pre-trains only what was left, enters fine-tuning once
    rest = [c for c in m2.calls if c != "pretrain_loss"]
    assert rest == (["pre2", "finetune", "fine0", "fine1", "fine2"] if stop_at == "pre2"
                    else ["finetune", "fine1", "fine2"])
    # fine-tuning runs with the fine-tuning optimizer: item table frozen, finetune_lr
    group, = trainer.optimizer.param_groups
    assert group["lr"] == 0.02 and len(group["params"]) == 1
    assert not m2.encoder.item_emb.requires_grad
    assert _phases(tmp_path / "cut") == ["pretrain"] * 3 + ["finetune"] * 3
    assert got["phases"]["pretrain"]["epochs"] == 3
    assert got["phases"]["finetune"]["epochs"] == 3 and got["epochs_trained"] == 3
    for key in ("user_emb", "item_emb"):
        assert torch.allclose(getattr(m2.encoder, key), getattr(whole.method.encoder, key),
                              atol=1e-6)
    assert got["test"] == pytest.approx(expected["test"])


def test_an_init_run_enters_finetuning_like_a_pretrained_one(data, tmp_path):
    m = _method(data)
    item_before = m.encoder.item_emb.detach().clone()
    trainer = Trainer(m, data, tmp_path, epochs=2, patience=0, finetune_lr=0.05,
                      pretrained={"from": "elsewhere", "epochs": 4},
                      generator=torch.Generator(), progress=False, log=lambda msg: None)
    res = trainer.fit()
    assert "finetune" in m.calls  # on_finetune_start ran: the item table stayed frozen
    assert torch.equal(m.encoder.item_emb, item_before)
    group, = trainer.optimizer.param_groups
    assert group["lr"] == 0.05 and len(group["params"]) == 1
    assert res["phases"]["pretrain"] == {"from": "elsewhere", "epochs": 4}


def test_a_pretraining_checkpoint_cannot_resume_a_run_without_pretraining(data, tmp_path):
    with pytest.raises(Interrupt):
        _trainer(_method(data, "pre1"), data, tmp_path).fit()
    joint = Trainer(_method(data), data, tmp_path, epochs=2, generator=torch.Generator(),
                    progress=False)
    with pytest.raises(ConfigError, match="saved during pre-training.*scheme 'joint'"):
        joint.resume()


# -- the command line on a GPT-GNN pretrain->finetune run ----------------------

GPT_TWO = [a if a != "num_layers=1" else "num_layers=2" for a in GPT_TINY]


@pytest.fixture(scope="module")
def gpt_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("resume")
    ds = _recbole(root / "tiny", 30, 25, 0)
    run = root / "run"
    res = cli("train", "-m", "gptgnn", "-d", str(ds), "--epochs", "2", "--pretrain-epochs", "1",
              "--out", str(run), "--set", "freeze_layers=1", *GPT_TWO)
    assert res.exit_code == 0, res.output
    return root, ds, run


def test_resume_of_a_frozen_gptgnn_run_refreezes_and_records_both_phases(gpt_run):
    _, _, run = gpt_run
    frozen = torch.load(run / "last.pt", weights_only=False)["method"]
    res = cli("train", "--resume", str(run), "--epochs", "3", "--no-progress")
    assert res.exit_code == 0, res.output
    after = torch.load(run / "last.pt", weights_only=False)["method"]
    # the inputs and the first HGT layer stay frozen across the resumed epoch
    for key in frozen:
        if key.startswith(("encoder.emb", "encoder.adapt", "encoder.convs.0.")):
            assert torch.equal(frozen[key], after[key]), key
    assert not all(torch.equal(frozen[k], after[k]) for k in frozen
                   if k.startswith("encoder.convs.1."))
    results = json.loads((run / "results.json").read_text())
    assert results["phases"]["pretrain"]["epochs"] == 1
    assert results["phases"]["finetune"]["epochs"] == 3
    assert _phases(run) == ["pretrain", "finetune", "finetune", "finetune"]


def test_evaluate_and_recommend_read_a_pretrain_finetune_run(gpt_run):
    _, _, run = gpt_run
    res = cli("evaluate", str(run))
    assert res.exit_code == 0, res.output
    saved = json.loads((run / "results.json").read_text())["test"]["recall@20"]
    assert f"{saved:.4f}" in res.output
    res = cli("recommend", str(run), "-u", "1", "-k", "3")
    assert res.exit_code == 0, res.output
    assert len(res.output.strip().splitlines()) == 3


def test_freezing_every_gptgnn_layer_is_refused_before_training(gpt_run):
    root, ds, _ = gpt_run
    res = cli("train", "-m", "gptgnn", "-d", str(ds), "--epochs", "1", "--out",
              str(root / "all-frozen"), "--set", "freeze_layers=1", *GPT_TINY)
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert "freeze_layers 1 must be below num_layers 1" in res.output
    assert not (root / "all-frozen").exists()
