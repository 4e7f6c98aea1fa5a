"""The pretrain->finetune scheme, ``ssgraphrec pretrain`` and ``train --init``."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from ssgraphrec.cli import main
from ssgraphrec.data import SyntheticConfig, build_dataset, make_synthetic
from ssgraphrec.errors import ConfigError
from ssgraphrec.methods import LightGCN, LightGCNConfig
from ssgraphrec.train import Trainer

GPT_TINY = ["--set", "emb_dim=8", "--set", "num_heads=2", "--set", "num_layers=1",
            "--set", "pretrain_batch_size=32", "--no-progress", "--threads", "1"]


class Pretrainable(LightGCN):
    """LightGCN with a pretext task that pulls every user embedding towards 1."""

    name = "pretrainable"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls: list[str] = []

    def on_pretrain_epoch_start(self, epoch):
        self.calls.append(f"pre{epoch}")

    def pretrain_loss(self, batch):
        if self.calls[-1] != "pretrain_loss":
            self.calls.append("pretrain_loss")
        return {"to_one": ((self.encoder.user_emb - 1.0) ** 2).mean()}

    def on_finetune_start(self):
        self.calls.append("finetune")
        self.encoder.item_emb.requires_grad_(False)

    def on_epoch_start(self, epoch):
        self.calls.append(f"fine{epoch}")


@pytest.fixture(scope="module")
def data():
    raw = make_synthetic(SyntheticConfig(num_users=60, num_items=40, num_communities=3,
                                         mean_interactions=10, social=False), seed=0)
    return build_dataset(raw, test_ratio=0.2, val_ratio=0.0, seed=0)


def test_pretrain_then_finetune_in_order_with_a_fresh_optimizer(data, tmp_path):
    torch.manual_seed(0)
    m = Pretrainable(data, LightGCNConfig(emb_dim=4, num_layers=1, lr=0.1, batch_size=256))
    start = m.encoder.user_emb.detach().clone()
    trainer = Trainer(m, data, tmp_path, epochs=2, patience=0, scheme="pretrain_finetune",
                      pretrain_epochs=3, finetune_lr=0.02, generator=torch.Generator(),
                      progress=False, log=lambda msg: None)
    res = trainer.fit()
    assert m.calls == ["pre0", "pretrain_loss", "pre1", "pretrain_loss", "pre2",
                       "pretrain_loss", "finetune", "fine0", "fine1"]
    # fine-tuning optimises what on_finetune_start left trainable, at finetune_lr
    group, = trainer.optimizer.param_groups
    assert group["lr"] == 0.02 and len(group["params"]) == 1
    saved = torch.load(tmp_path / "encoder.pt", weights_only=False)
    assert set(saved["encoder"]) == {"encoder.user_emb", "encoder.item_emb"}
    pre = saved["encoder"]["encoder.user_emb"]
    # the pretext task moved the users towards 1 before fine-tuning started
    assert (pre - 1).abs().mean() < (start - 1).abs().mean()
    records = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r.get("phase") for r in records] == ["pretrain"] * 3 + [None] * 2
    assert set(records[0]["loss"]) == {"to_one"}
    assert res["scheme"] == "pretrain_finetune"
    assert res["phases"]["pretrain"]["epochs"] == 3 and res["phases"]["finetune"]["epochs"] == 2
    assert res["phases"]["finetune"]["lr"] == 0.02


def test_a_method_without_a_pretext_task_cannot_pretrain(data, tmp_path):
    m = LightGCN(data, LightGCNConfig(emb_dim=4))
    with pytest.raises(ConfigError, match="method 'lightgcn' has no pre-training task"):
        Trainer(m, data, tmp_path, epochs=1, scheme="pretrain_finetune", pretrain_epochs=1,
                generator=torch.Generator(), progress=False)
    with pytest.raises(ConfigError, match="unknown scheme 'both'"):
        Trainer(m, data, tmp_path, epochs=1, scheme="both", generator=torch.Generator())


def test_loading_an_encoder_names_a_missing_parameter(data):
    m = LightGCN(data, LightGCNConfig(emb_dim=4))
    state = {"encoder.user_emb": torch.zeros(60, 4)}
    with pytest.raises(ConfigError, match="pre.pt has no parameter 'encoder.item_emb'"):
        m.load_encoder_state_dict(state, "pre.pt")


# -- the command line ---------------------------------------------------------

def _recbole(folder: Path, n_users: int, n_items: int, seed: int) -> Path:
    """A tiny RecBole dataset with user and item attributes."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    rows = ["user_id:token\titem_id:token\trating:float\ttimestamp:float"]
    for u in range(1, n_users + 1):
        for i in rng.choice(n_items, 8, replace=False):
            rows.append(f"{u}\t{i + 1}\t4\t{u * 100 + i}")
    (folder / "tiny.inter").write_text("\n".join(rows) + "\n")
    users = ["user_id:token\tage:token\tgender:token"]
    users += [f"{u}\t{20 + u % 3}\t{'MF'[u % 2]}" for u in range(1, n_users + 1)]
    (folder / "tiny.user").write_text("\n".join(users) + "\n")
    items = ["item_id:token\tclass:token_seq"]
    items += [f"{i}\t{'Drama' if i % 2 else 'Comedy Drama'}" for i in range(1, n_items + 1)]
    (folder / "tiny.item").write_text("\n".join(items) + "\n")
    return folder


def cli(*args: str):
    return CliRunner().invoke(main, list(args))


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    root = tmp_path_factory.mktemp("schemes")
    ds = _recbole(root / "tiny", 30, 25, 0)
    out = root / "pre"
    res = cli("pretrain", "-m", "gptgnn", "-d", str(ds), "--pretrain-epochs", "1",
              "--out", str(out), *GPT_TINY)
    assert res.exit_code == 0, res.output
    return root, ds, out


def test_pretrain_command_writes_the_encoder_and_its_phase(pretrained):
    _, _, out = pretrained
    results = json.loads((out / "results.json").read_text())
    assert results["phases"]["pretrain"]["epochs"] == 1
    assert results["data"]["users"] == 30
    enc = torch.load(out / "encoder.pt", weights_only=False)["encoder"]
    assert enc["encoder.user_emb"].shape == (30, 8)


def test_lightgcn_starts_from_the_pretrained_tables(pretrained):
    root, ds, out = pretrained
    run = root / "lgcn"
    res = cli("train", "-m", "lightgcn", "-d", str(ds), "--epochs", "0", "--init", str(out),
              "--out", str(run), "--set", "emb_dim=8", "--no-progress", "--threads", "1")
    assert res.exit_code == 0, res.output
    enc = torch.load(out / "encoder.pt", weights_only=False)["encoder"]
    best = torch.load(run / "best.pt", weights_only=False)["method"]
    assert torch.equal(best["encoder.user_emb"], enc["encoder.user_emb"])
    results = json.loads((run / "results.json").read_text())
    assert results["phases"]["pretrain"]["from"] == str(out)
    assert results["phases"]["pretrain"]["epochs"] == 1


def test_init_without_a_dataset_fine_tunes_on_the_pretraining_data(pretrained):
    root, ds, out = pretrained
    run = root / "inherit"
    res = cli("train", "-m", "lightgcn", "--epochs", "0", "--init", str(out), "--out", str(run),
              "--set", "emb_dim=8", "--no-progress", "--threads", "1")
    assert res.exit_code == 0, res.output
    assert f"from --init {out}: dataset={ds}" in res.output
    pre = json.loads((out / "results.json").read_text())
    results = json.loads((run / "results.json").read_text())
    assert results["dataset"] == str(ds)
    assert results["data"]["fingerprint"] == pre["data"]["fingerprint"]


def test_pretrain_command_refuses_a_method_without_a_pretext_task(pretrained):
    root, ds, _ = pretrained
    res = cli("pretrain", "-m", "lightgcn", "-d", str(ds), "--out", str(root / "x"))
    assert res.exit_code == 1
    assert "method 'lightgcn' has no pre-training task; methods that do: gptgnn" in res.output


@pytest.mark.parametrize("case", ["emb_dim", "dataset", "seed", "split"])
def test_init_from_an_incompatible_run_is_one_clear_error(pretrained, case):
    root, ds, out = pretrained
    args = ["train", "-m", "lightgcn", "-d", str(ds), "--epochs", "1", "--init", str(out),
            "--no-progress", "--out", str(root / f"bad-{case}"), "--set", "emb_dim=8"]
    if case == "emb_dim":
        args[-1] = "emb_dim=16"
        want = (r"the embedding sizes differ: it was pre-trained by 'gptgnn' with emb_dim 8, "
                r"this run's 'lightgcn' has emb_dim 16; add --set emb_dim=8")
    elif case == "dataset":
        args[4] = str(_recbole(root / "other", 40, 25, 1))
        want = (r"the id spaces differ: it was pre-trained on dataset 'tiny' \(30 users, 25 "
                r"items, .*this run uses dataset 'other' \(40 users, 25 items")
    elif case == "seed":
        args += ["--seed", "7"]
        want = "the training split differs"
    else:
        args += ["--split", "loo"]
        want = (r"the training split differs: it was pre-trained on dataset 'tiny' \(30 users, "
                r"25 items, fingerprint \w+\), this run uses dataset '.*tiny' \(30 users, 25 "
                r"items, fingerprint \w+\)")
    res = cli(*args)
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert re.search(want, res.output), res.output
    assert not (root / f"bad-{case}").exists()  # refused before a run directory is made


def test_evaluate_reports_slices_and_a_slice_of_everyone_equals_the_whole(pretrained):
    root, ds, out = pretrained
    run = root / "lgcn-eval"
    res = cli("train", "-m", "lightgcn", "-d", str(ds), "--epochs", "1", "--out", str(run),
              "--set", "emb_dim=8", "--no-progress", "--threads", "1")
    assert res.exit_code == 0, res.output
    res = cli("evaluate", str(run), "--cold-threshold", "1000", "--head-share", "0.5")
    assert res.exit_code == 0, res.output
    assert "cold_users: users with 1 to 1000 training interactions" in res.output
    assert "head_items: the 13 most frequent items (share 0.5)" in res.output
    # every user is "cold" at 1000: the slice's table is the overall table
    tables = [t.strip() for t in res.output.split("\n\n")]
    overall = next(t for t in tables if t.startswith("test metrics"))
    cold = next(t for t in tables if t.startswith("cold_users"))
    assert overall.splitlines()[1:] == cold.splitlines()[1:]
    res = cli("evaluate", str(run), "--cold-threshold", "0")
    assert res.exit_code == 1 and "--cold-threshold must be >= 1" in res.output
