"""``--refit``: select the epochs on validation, then train on the whole training file for
that many epochs and test that model, the selected one never."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from ssgraphrec.cli import main
from ssgraphrec.config import RunConfig
from ssgraphrec.data import SyntheticConfig, make_synthetic
from ssgraphrec.errors import ConfigError
from ssgraphrec.train import train
from ssgraphrec.train.trainer import Trainer


@pytest.fixture(scope="module")
def planted(tmp_path_factory) -> Path:
    """Planted communities as a pairs file."""
    raw = make_synthetic(SyntheticConfig(num_users=200, num_items=150, num_communities=4,
                                         mean_interactions=15, social=False), seed=3).interactions
    path = tmp_path_factory.mktemp("data") / "planted.txt"
    path.write_text("".join(f"u{u} i{i}\n" for u, i in zip(raw.user, raw.item, strict=True)))
    return path


def config(planted: Path, **settings) -> RunConfig:
    return RunConfig(**{"method": "lightgcn", "dataset": str(planted), "epochs": 6, "seed": 7,
                        "threads": 1, "batch_size": 256, "lr": 0.01, "patience": 2,
                        "params": {"emb_dim": 8, "num_layers": 2}, **settings})


def quiet(cfg: RunConfig, out: Path) -> dict:
    return train(cfg, str(out), progress=False, log=lambda msg: None)[1]


def test_a_refit_is_a_run_on_the_whole_training_file_for_the_selected_epochs(planted, tmp_path,
                                                                             monkeypatch):
    """The refit's test metrics are those of a run trained apart with --val-ratio 0 and
    --epochs at the selected epoch; the selected model is never tested."""
    tested = []
    evaluate = Trainer.evaluate
    monkeypatch.setattr(Trainer, "evaluate", lambda self, split="val", *a, **k: (
        tested.append((self.run_dir.name, split, "method" in k)),  # "method": MostPop's
        evaluate(self, split, *a, **k))[1])
    res = quiet(config(planted, refit=True), tmp_path / "run")
    refit_dir = tmp_path / "run" / "refit"
    epochs = res["best_epoch"]
    assert res["refit"]["epochs"] == epochs and res["refit"]["run_dir"] == "refit"
    assert res["selection"] == "refit on the whole training file to the epoch of best validation ndcg@20"
    saved = json.loads((refit_dir / "results.json").read_text())
    assert saved["epochs_trained"] == epochs and not saved.get("val")
    assert res["test"] == saved["test"] and res["baseline"] == saved["baseline"]
    assert json.loads((tmp_path / "run" / "results.json").read_text())["test"] == res["test"]
    # the selection run read validation only; the refit read no validation
    assert {split for name, split, _ in tested if name == "run"} == {"val"}
    assert [t for t in tested if t[0] == "refit"] == [("refit", "test", False),
                                                      ("refit", "test", True)]
    # the same pairs trained on: validation's carried back into training
    selection, refit = res["data"], res["refit"]["data"]
    assert selection["val"] > 0 and refit["val"] == 0
    assert refit["train"] == selection["train"] + selection["val"]
    assert refit["test"] == selection["test"]
    apart = quiet(config(planted, val_ratio=0.0, epochs=epochs), tmp_path / "apart")
    assert apart["test"] == res["test"]


def test_a_refit_is_refused_where_it_has_nothing_to_select_or_train(planted, tmp_path):
    """No validation split, or a method that does not train: a clear error, no run folder."""
    with pytest.raises(ConfigError, match="needs a validation split"):
        quiet(config(planted, refit=True, val_ratio=0.0), tmp_path / "no-val")
    with pytest.raises(ConfigError, match="mostpop does not train"):
        quiet(config(planted, refit=True, method="mostpop", params={}), tmp_path / "mostpop")
    assert not (tmp_path / "no-val").exists() and not (tmp_path / "mostpop").exists()


def test_a_refit_is_refused_on_data_whose_validation_is_not_carved_from_training():
    """Sessions (and a split's own validation file): the refit would not train on the
    validation pairs, so it is refused by name."""
    import torch

    from ssgraphrec.data.sessions import session_data
    from ssgraphrec.distributed import SINGLE
    from ssgraphrec.train.run import check_refit

    sessions = session_data([[0, 1], [1, 2], [2, 3]], 5, targets=[2, 3, 4],
                            split=torch.tensor([0, 1, 2]))
    trains = SimpleNamespace(trainable=True)
    with pytest.raises(ConfigError, match="not to sessions, sequences"):
        check_refit(SimpleNamespace(cfg=RunConfig(refit=True), data=sessions, method=trains,
                                    ctx=SINGLE))
    check_refit(SimpleNamespace(cfg=RunConfig(refit=False), data=sessions, method=trains,
                                ctx=SINGLE))   # no --refit: nothing to check


def test_train_refit_reports_the_refit_model(planted, tmp_path):
    out = tmp_path / "cli"
    result = CliRunner().invoke(main, [
        "train", "--method", "lightgcn", "--dataset", str(planted), "--epochs", "3",
        "--batch-size", "256", "--threads", "1", "--no-progress", "--refit", "--out", str(out),
        "--set", "emb_dim=8"])
    assert result.exit_code == 0, result.output
    assert "(refit on the whole training file to the epoch of best validation ndcg@20, epoch" \
        in result.output
    assert "refit: training again on the whole training file" in result.output
    assert (out / "refit" / "results.json").is_file()


def metric_rows(output: str) -> list[str]:
    """The rows of the test table that ``train`` and ``evaluate`` print."""
    return [line for line in output.splitlines()
            if line.split() and line.split()[0] in ("recall", "ndcg", "precision", "hit")]


def test_evaluate_and_recommend_read_the_refitted_model_unless_told_the_selected(planted,
                                                                                 tmp_path):
    out = tmp_path / "cli"
    invoke = CliRunner().invoke
    trained = invoke(main, [
        "train", "--method", "lightgcn", "--dataset", str(planted), "--epochs", "4",
        "--batch-size", "256", "--threads", "1", "--no-progress", "--refit", "--out", str(out),
        "--set", "emb_dim=8"])
    assert trained.exit_code == 0, trained.output
    refitted = invoke(main, ["evaluate", str(out)])
    assert refitted.exit_code == 0, refitted.output
    assert f"the refitted model of {out}: {out / 'refit'}" in refitted.output
    assert "(refit on the whole training file to the epoch of best" in refitted.output
    assert metric_rows(refitted.output) == metric_rows(trained.output) != []
    selected = invoke(main, ["evaluate", str(out), "--selected"])
    assert selected.exit_code == 0, selected.output
    assert "(best validation ndcg@20, epoch" in selected.output
    assert "refitted model" not in selected.output and "mostpop" not in selected.output
    assert metric_rows(selected.output) != metric_rows(trained.output)

    def top(*args):
        done = invoke(main, ["recommend", *args, "--user", "u1", "-k", "5"])
        assert done.exit_code == 0, done.output
        return [line for line in done.output.splitlines() if line.startswith("  ")]

    assert top(str(out)) == top(str(out / "refit")) != top(str(out), "--selected")
    # an unfinished refit, and a refit folder removed: one clear line each
    results = json.loads((out / "results.json").read_text())
    (out / "results.json").write_text(json.dumps({k: v for k, v in results.items()
                                                  if k != "refit"}))
    unfinished = invoke(main, ["evaluate", str(out)])
    assert unfinished.exit_code == 1 and "did not finish: resume it" in unfinished.output
    (out / "results.json").write_text(json.dumps(results))
    (out / "refit" / "best.pt").unlink()
    gone = invoke(main, ["recommend", str(out), "--user", "u1"])
    assert gone.exit_code == 1 and "best.pt is missing: pass --selected" in gone.output
