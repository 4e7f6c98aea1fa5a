"""The command line, end to end with tiny settings, so that each call takes seconds.

One small SGL run (2 epochs, embedding size 8, one layer) on a generated
triples file is shared by the tests that read, evaluate, recommend from or
resume a run; the built-in synthetic data (the default dataset, a few times
bigger) is used where no training is needed.
"""

from __future__ import annotations

import gc
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from click.testing import CliRunner

from ssgraphrec.cli import main
from ssgraphrec.data import DATASETS, INTERACTS, ITEM, USER, SyntheticConfig, load_dataset, summary
from ssgraphrec.methods import METHODS
from ssgraphrec.transforms import AUGMENTATIONS

TINY = ["--no-progress", "--batch-size", "512", "--set", "emb_dim=8", "--set", "num_layers=1"]
KS_METRICS = [f"{m}@{k}" for m in ("recall", "ndcg", "precision", "hit") for k in (10, 20)]
N_USERS, N_ITEMS = 200, 120


@pytest.fixture(autouse=True, scope="module")
def _threads(one_torch_thread):
    pass


def invoke(*args: str):
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result


@pytest.fixture(scope="module")
def small_file(tmp_path_factory) -> Path:
    """A triples file: 200 users with 8-20 rows each over 120 items, popularity skewed."""
    rng = np.random.default_rng(0)
    p = 1.0 / np.arange(1, N_ITEMS + 1) ** 0.7
    rows = [f"u{u} i{i} 1\n" for u in range(N_USERS)
            for i in rng.choice(N_ITEMS, rng.integers(8, 21), replace=False, p=p / p.sum())]
    path = tmp_path_factory.mktemp("small") / "small.txt"
    path.write_text("".join(rows))
    return path


@pytest.fixture(scope="module")
def small_data(small_file):
    """The file's data as the runs split it (default seed 2020, validation 0.1)."""
    return load_dataset(str(small_file), seed=2020, val_ratio=0.1)


@pytest.fixture(scope="module")
def sgl_training(tmp_path_factory, small_file) -> tuple[Path, str]:
    """A 2-epoch SGL run: (run directory, what ``train`` printed)."""
    out = tmp_path_factory.mktemp("cli") / "run"
    result = invoke("train", "--epochs", "2", "--dataset", str(small_file), "--out", str(out),
                    *TINY)
    return out, result.stdout


@pytest.fixture(scope="module")
def sgl_run(sgl_training) -> Path:
    return sgl_training[0]


def table_values(output: str) -> dict[str, float]:
    """The metric table the CLI prints, as ``{"recall@10": 0.1234, ...}``."""
    lines = output.splitlines()
    header = next(k for k, line in enumerate(lines) if line.strip().startswith("@"))
    ks = [int(t[1:]) for t in lines[header].split()]
    values = {}
    for line in lines[header + 1:]:
        m = re.match(r"^\s*(recall|ndcg|precision|hit)((?:\s+[\d.]+)+)\s*$", line)
        if not m:
            break
        for k, v in zip(ks, m.group(2).split(), strict=True):
            values[f"{m.group(1)}@{k}"] = float(v)
    return values


def test_train_writes_the_run_directory(sgl_run, small_file):
    assert {p.name for p in sgl_run.iterdir()} >= {"config.yaml", "metrics.jsonl",
                                                   "results.json", "best.pt", "last.pt"}
    records = [json.loads(line) for line in (sgl_run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2]
    for r in records:
        assert set(r["loss"]) == {"bpr", "reg", "ssl"}
        assert all(v == v and v >= 0 for v in r["loss"].values())  # finite, not NaN
        assert 0.0 <= r["val"]["ndcg@20"] <= 1.0
    results = json.loads((sgl_run / "results.json").read_text())
    assert results["method"] == "sgl" and results["dataset"].endswith("small.txt")
    assert results["epochs_trained"] == 2 and results["best_epoch"] in (1, 2)
    for name in KS_METRICS:
        assert 0.0 <= results["test"][name] <= 1.0, name
    assert results["test"]["hit@20"] >= results["test"]["hit@10"]
    assert results["data"]["users"] == N_USERS
    assert results["data"]["items"] == len({line.split()[1] for line in
                                            small_file.read_text().splitlines()})
    config = yaml.safe_load((sgl_run / "config.yaml").read_text())
    assert config["method"] == "sgl" and config["epochs"] == 2
    assert config["params"]["emb_dim"] == 8 and config["params"]["num_layers"] == 1
    assert config["params"]["batch_size"] == 512 and config["params"]["aug"] == "edge_drop"
    best = torch.load(sgl_run / "best.pt", weights_only=False)
    assert best["epoch"] == results["best_epoch"]
    assert best["method"]["encoder.user_emb"].shape == (N_USERS, 8)


def test_train_prints_the_test_metrics(sgl_training):
    run, printed = sgl_training
    results = json.loads((run / "results.json").read_text())
    values = table_values(printed)
    assert set(values) == set(KS_METRICS)
    for name in KS_METRICS:
        assert values[name] == pytest.approx(results["test"][name], abs=5e-5), name
    assert f"run directory: {run}" in printed


def test_evaluate_reproduces_the_saved_test_metrics(sgl_run):
    results = json.loads((sgl_run / "results.json").read_text())
    out = invoke("evaluate", str(sgl_run)).output
    printed = table_values(out)
    assert printed["recall@20"] == pytest.approx(results["test"]["recall@20"], abs=5e-5)
    for name in KS_METRICS:
        assert printed[name] == pytest.approx(results["test"][name], abs=5e-5), name
    assert f"epoch {results['best_epoch']}" in out


def test_recommend_gives_k_new_items(sgl_run, small_data):
    out = invoke("recommend", str(sgl_run), "--user", "u0", "-k", "5").output
    rows = [line.split() for line in out.splitlines() if line.strip()]
    assert [int(r[0]) for r in rows] == [1, 2, 3, 4, 5]
    items = [r[1] for r in rows]
    scores = [float(r[2]) for r in rows]
    assert len(set(items)) == 5
    assert scores == sorted(scores, reverse=True)
    data = small_data
    results = json.loads((sgl_run / "results.json").read_text())
    assert summary(data)["fingerprint"] == results["data"]["fingerprint"]
    user = data[USER].raw_id.index("u0")
    store = data[INTERACTS]
    owned = {data[ITEM].raw_id[i] for e in (store.edge_index, store.val_edge_index)
             for i in e[1, e[0] == user].tolist()}
    assert len(owned) >= 5
    assert not set(items) & owned
    assert set(items) <= set(data[ITEM].raw_id)


def test_recommend_all_writes_every_user_as_recommend_user_does(sgl_run, small_data, tmp_path):
    import csv

    out = tmp_path / "recs.csv"
    printed = invoke("recommend", str(sgl_run), "--all", "--out", str(out), "-k", "5",
                     "--batch-size", "7").output          # several batches of users
    rows = list(csv.DictReader(out.open()))
    users = small_data[USER].raw_id
    assert len(rows) == len(users) * 5 and f"wrote {len(rows):,} rows" in printed
    assert [r["user"] for r in rows[::5]] == users            # every user, in id order
    assert not (tmp_path / "recs.csv.tmp").exists()
    by_user: dict[str, list[tuple[str, float]]] = {}
    for r in rows:
        by_user.setdefault(r["user"], []).append((r["item"], float(r["score"])))
    for user in users[:: max(1, len(users) // 6)]:             # a sample against --user
        one = invoke("recommend", str(sgl_run), "--user", user, "-k", "5").output.split("\n")
        expected = [(line.split()[1], float(line.split()[2])) for line in one if line.strip()]
        assert [i for i, _ in by_user[user]] == [i for i, _ in expected], user
        assert [s for _, s in by_user[user]] == pytest.approx([s for _, s in expected], abs=1e-4)


def test_recommend_all_scores_the_model_once_for_all_batches(sgl_run, tmp_path, monkeypatch):
    from ssgraphrec.methods.base import Method

    calls = []
    real = Method.ranking_scores

    def counting(self):
        calls.append(1)
        return real(self)

    monkeypatch.setattr(Method, "ranking_scores", counting)
    invoke("recommend", str(sgl_run), "--all", "--out", str(tmp_path / "r.csv"), "-k", "5",
           "--batch-size", "7")                               # several batches of users
    assert len(calls) == 1                                     # one propagation, not one a batch


def test_recommend_needs_one_of_user_and_all(sgl_run, tmp_path):
    for args in ([], ["--user", "u0", "--all", "--out", str(tmp_path / "x.csv")], ["--all"]):
        result = CliRunner().invoke(main, ["recommend", str(sgl_run), *args])
        assert result.exit_code == 1 and "Traceback" not in result.output, args
        assert "--user" in result.output or "--out" in result.output
    for args, needle in ((["--out", str(tmp_path / "no" / "dir" / "x.csv")], "cannot write"),
                         (["--out", str(tmp_path / "x.csv"), "--batch-size", "-3"],
                          "--batch-size must be >= 1")):
        result = CliRunner().invoke(main, ["recommend", str(sgl_run), "--all", *args])
        assert result.exit_code == 1 and isinstance(result.exception, SystemExit), args
        assert needle in result.output and not (tmp_path / "x.csv").exists()


def test_recommend_refuses_non_finite_scores(sgl_run, tmp_path, monkeypatch):
    from ssgraphrec.methods.base import Method

    def nan_scores(self):
        items = self.embeddings()[1]
        return lambda users: torch.full((users.numel(), items.size(0)), float("nan"))

    monkeypatch.setattr(Method, "ranking_scores", nan_scores)
    for args in (["--user", "u0"], ["--all", "--out", str(tmp_path / "x.csv")]):
        result = CliRunner().invoke(main, ["recommend", str(sgl_run), *args])
        assert result.exit_code == 1 and isinstance(result.exception, SystemExit), args
        assert "scores are not finite" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "x.csv").exists()


def test_recommend_unknown_user(sgl_run):
    result = CliRunner().invoke(main, ["recommend", str(sgl_run), "--user", "nobody"])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    assert "user 'nobody' is not in the dataset" in result.output
    assert "Traceback" not in result.output


def test_resume_continues_from_last_checkpoint(sgl_run, tmp_path):
    run = tmp_path / "resumed"
    shutil.copytree(sgl_run, run)
    before = (run / "metrics.jsonl").read_text().splitlines()
    out = invoke("train", "--resume", str(run), "--epochs", "3", "--no-progress").output
    after = (run / "metrics.jsonl").read_text().splitlines()
    # Two old epochs kept, one new epoch 3 appended: it continued, it did not restart.
    assert after[:2] == before
    assert [json.loads(line)["epoch"] for line in after] == [1, 2, 3]
    results = json.loads((run / "results.json").read_text())
    assert results["epochs_trained"] == 3
    assert yaml.safe_load((run / "config.yaml").read_text())["params"]["emb_dim"] == 8
    assert "test metrics of sgl on " in out and "small.txt" in out


def test_resume_after_a_kill_between_the_metrics_line_and_the_checkpoint(sgl_run, tmp_path):
    """What a SIGKILL after an epoch's metrics line and before its last.pt leaves behind."""
    run = tmp_path / "killed"
    shutil.copytree(sgl_run, run)
    lines = (run / "metrics.jsonl").read_text().splitlines()
    ahead = dict(json.loads(lines[-1]), epoch=3)  # epoch 3 logged, its checkpoint never written
    with (run / "metrics.jsonl").open("a") as f:
        f.write(json.dumps(ahead) + "\n" + '{"epoch": 4, "lo')  # and a half-written line
    (run / "last.pt.abc123.tmp").write_bytes(b"partial")
    result = CliRunner().invoke(main, ["train", "--resume", str(run), "--epochs", "3",
                                       "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "2 metrics line(s) past the checkpoint, 1 temporary file(s)" in result.output
    after = (run / "metrics.jsonl").read_text().splitlines()
    assert after[:2] == lines
    assert [json.loads(line)["epoch"] for line in after] == [1, 2, 3]  # one line per epoch
    assert json.loads(after[2])["loss"] != ahead["loss"]  # epoch 3 trained again, not kept
    assert not list(run.glob("*.tmp"))


def test_resumed_run_equals_an_uninterrupted_one(sgl_run, small_file, tmp_path):
    run = tmp_path / "resumed"
    shutil.copytree(sgl_run, run)
    invoke("train", "--resume", str(run), "--epochs", "3", "--no-progress")
    straight = tmp_path / "straight"
    invoke("train", "--epochs", "3", "--dataset", str(small_file), "--out", str(straight), *TINY)
    a, b = ([json.loads(line) for line in (d / "metrics.jsonl").read_text().splitlines()]
            for d in (run, straight))
    for ra, rb in zip(a, b, strict=True):
        assert ra["loss"] == pytest.approx(rb["loss"], rel=1e-5)
        assert ra["val"]["ndcg@20"] == pytest.approx(rb["val"]["ndcg@20"], abs=1e-6)
    ta, tb = (json.loads((d / "results.json").read_text())["test"] for d in (run, straight))
    for name in KS_METRICS:
        assert ta[name] == pytest.approx(tb[name], abs=1e-6), name


def test_out_directory_of_an_existing_run_is_refused(sgl_run):
    stamp = (sgl_run / "metrics.jsonl").read_text()
    result = CliRunner().invoke(main, ["train", "--method", "mostpop", "--out", str(sgl_run),
                                       "--no-progress"])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    assert "already holds a run" in result.output and "--resume" in result.output
    assert (sgl_run / "metrics.jsonl").read_text() == stamp


def test_mostpop_ranks_by_training_popularity(tmp_path, small_file, small_data):
    out = tmp_path / "pop"
    invoke("train", "--method", "mostpop", "--dataset", str(small_file), "--out", str(out),
           "--no-progress")
    results = json.loads((out / "results.json").read_text())
    assert results["method"] == "mostpop" and results["epochs_trained"] == 0
    assert not (out / "metrics.jsonl").exists()  # nothing to train
    for name in KS_METRICS:
        assert 0.0 < results["test"][name] <= 1.0
    # Its top items for u0 are the most popular training items that u0 does not have.
    data = small_data
    assert summary(data)["fingerprint"] == results["data"]["fingerprint"]
    store = data[INTERACTS]
    pop = torch.bincount(store.edge_index[1], minlength=data[ITEM].num_nodes).float()
    for e in (store.edge_index, store.val_edge_index):
        pop[e[1, e[0] == 0]] = -1
    out_lines = invoke("recommend", str(out), "--user", "u0", "-k", "3").output.splitlines()
    scores = [float(line.split()[2]) for line in out_lines]
    assert scores == pop.sort(descending=True).values[:3].tolist()
    top = out_lines[0].split()
    assert top[1] == data[ITEM].raw_id[int(pop.argmax())]


def test_train_reports_the_popularity_baseline_of_its_own_split(tmp_path, small_file,
                                                                sgl_training):
    run, printed = sgl_training
    results = json.loads((run / "results.json").read_text())
    out = tmp_path / "pop"
    invoke("train", "--method", "mostpop", "--dataset", str(small_file), "--out", str(out),
           "--no-progress")
    popularity = json.loads((out / "results.json").read_text())
    assert "baseline" not in popularity  # MostPop is not compared with itself
    assert results["baseline"]["method"] == "mostpop"
    assert results["baseline"]["test"] == popularity["test"]  # same split, same protocol
    base, own = popularity["test"], results["test"]
    line = next(x for x in printed.splitlines() if x.startswith("mostpop on the same split"))
    assert f"recall@20 {base['recall@20']:.4f}, ndcg@20 {base['ndcg@20']:.4f}" in line
    assert line.endswith(f"sgl is {own['recall@20'] / base['recall@20']:.2f}x, "
                         f"{own['ndcg@20'] / base['ndcg@20']:.2f}x of it")


@pytest.mark.slow
def test_the_first_command_beats_popularity_on_the_default_data(tmp_path):
    """README's first command, as a new user types it: 1.5x MostPop's Recall@20 at least."""
    out = tmp_path / "first"
    invoke("train", "--method", "sgl", "--aug", "edge_drop", "--out", str(out), "--no-progress")
    results = json.loads((out / "results.json").read_text())
    assert results["dataset"] == "synthetic"
    assert yaml.safe_load((out / "config.yaml").read_text())["epochs"] == 50  # the default
    assert results["epochs_trained"] <= 50  # early stopping may end it sooner
    assert results["test"]["recall@20"] >= 1.5 * results["baseline"]["test"]["recall@20"]
    assert results["test"]["ndcg@20"] >= 1.5 * results["baseline"]["test"]["ndcg@20"]


def test_mostpop_on_the_default_synthetic_data(tmp_path):
    out = tmp_path / "syn"
    printed = invoke("train", "--method", "mostpop", "--out", str(out), "--no-progress").output
    results = json.loads((out / "results.json").read_text())
    assert results["dataset"] == "synthetic"
    assert results["data"]["users"] == SyntheticConfig().num_users
    assert results["data"]["items"] == SyntheticConfig().num_items
    assert results["data"]["social_links"] > 0
    assert set(table_values(printed)) == set(KS_METRICS)
    assert results["test"]["users_evaluated"] + results["test"]["users_skipped"] == \
        SyntheticConfig().num_users


def test_config_file_and_set_overrides_take_effect(tmp_path, small_file):
    cfg = tmp_path / "run.yaml"
    cfg.write_text("method: lightgcn\nepochs: 5\nseed: 7\nval_ratio: 0.2\n"
                   "params:\n  emb_dim: 4\n  reg: 0.5\n")
    out = tmp_path / "cfg"
    invoke("train", "--config", str(cfg), "--epochs", "0", "--set", "seed=11",
           "--dataset", str(small_file),
           "--set", "num_layers=1", "--set", "lr=0.005", "--set", "eval_ks=[5,10,20]",
           "--out", str(out), "--no-progress")
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["method"] == "lightgcn"  # from the file
    assert saved["epochs"] == 0  # the option beats the file
    assert saved["seed"] == 11  # --set beats the file
    assert saved["val_ratio"] == 0.2
    assert saved["eval_ks"] == [5, 10, 20]
    assert saved["params"]["emb_dim"] == 4 and saved["params"]["reg"] == 0.5
    assert saved["params"]["num_layers"] == 1 and saved["params"]["lr"] == 0.005
    results = json.loads((out / "results.json").read_text())
    assert "recall@5" in results["test"]
    assert results["seed"] == 11
    assert results["data"]["val"] > 0
    state = torch.load(out / "best.pt", weights_only=False)["method"]
    assert state["encoder.user_emb"].shape == (N_USERS, 4)


def test_methods_lists_one_line_per_method():
    lines = invoke("methods").output.strip().splitlines()
    assert len(lines) == len(METHODS.items())
    assert [line.split()[0] for line in lines] == list(METHODS)
    assert {"sgl", "lightgcn", "mostpop"} <= {line.split()[0] for line in lines}


def test_augs_lists_one_line_per_augmentation():
    lines = invoke("augs").output.strip().splitlines()
    assert [line.split()[0] for line in lines] == list(AUGMENTATIONS)
    assert {"edge_drop", "node_drop", "random_walk"} <= set(AUGMENTATIONS)


def test_data_list_lists_one_line_per_dataset(monkeypatch, tmp_path):
    monkeypatch.setenv("SSGRAPHREC_DATA", str(tmp_path))
    (tmp_path / "gowalla").mkdir()
    (tmp_path / "gowalla" / "train.txt").write_text("0 1 2\n")   # not the pinned file
    lines = invoke("data", "list").output.strip().splitlines()
    assert [line.split()[0] for line in lines] == list(DATASETS)
    status = {line.split()[0]: line for line in lines}
    assert status["synthetic"].endswith("(built in)")
    assert "(corrupt: gowalla/train.txt (checksum differs) in" in status["gowalla"]
    assert status["ml-100k"].endswith(f"(absent in {tmp_path}; ssgraphrec data download ml-100k)")


def test_data_info_synthetic():
    out = invoke("data", "info", "synthetic").output
    info = dict(line.split(None, 1) for line in out.strip().splitlines())
    # The generator draws items with replacement: repeated pairs are merged, and counted.
    assert list(info) == ["name", "users", "items", "train", "val", "test", "social_links",
                          "duplicates_merged", "fingerprint"]
    assert int(info["duplicates_merged"]) > 0
    assert info["name"] == "synthetic"
    assert info["users"] == str(SyntheticConfig().num_users)
    assert info["items"] == str(SyntheticConfig().num_items)
    assert all(int(info[k]) > 0 for k in ("train", "val", "test", "social_links"))


def test_data_info_counts_the_split_a_default_train_run_uses(sgl_run, small_file):
    results = json.loads((sgl_run / "results.json").read_text())
    info = dict(line.split(None, 1) for line in
                invoke("data", "info", str(small_file)).output.strip().splitlines())
    assert info["fingerprint"] == results["data"]["fingerprint"]
    assert int(info["val"]) == results["data"]["val"]
    other = dict(line.split(None, 1) for line in invoke(
        "data", "info", str(small_file), "--seed", "7").output.strip().splitlines())
    assert other["fingerprint"] != info["fingerprint"]


def test_data_info_of_a_path(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("a x\na y\nb x\nb y\nb z\n")
    out = invoke("data", "info", str(path)).output
    info = dict(line.split(None, 1) for line in out.strip().splitlines())
    # a: 2 rows -> 1 test, 1 train; b: 3 rows -> 1 test, then 1 of the 2 left for validation.
    assert (info["users"], info["items"]) == ("2", "3")
    assert (info["train"], info["val"], info["test"]) == ("2", "1", "2")


def test_train_options_are_generated_from_the_run_config():
    """One source for run options: every option field of RunConfig is a train option of
    the same name and type, and a --config key of the same name."""
    import dataclasses

    from ssgraphrec.cli import train as train_command
    from ssgraphrec.cli_options import cli_fields
    from ssgraphrec.config import RunConfig

    options = {p.name: p for p in train_command.params}
    fields = cli_fields()
    assert len(fields) >= 20
    for f in fields:
        assert f.name in options, f.name
        assert options[f.name].opts[0] == "--" + f.name.replace("_", "-")
        assert options[f.name].default is None     # absent: the config file's value stands
    run_fields = {f.name for f in dataclasses.fields(RunConfig)}
    extra = set(options) - run_fields
    assert extra == {"config_file", "overrides", "out", "resume", "no_progress",
                     "paper_defaults", "nproc"}, extra


def test_the_console_script_freezes_what_lives_until_exit_and_main_alone_does_not():
    """``console_main`` (the ``ssgraphrec`` script, ``python -m ssgraphrec``) freezes the
    collector's objects before and after the command, so that the walk at exit skips
    them; :func:`main` in a process that goes on (here, pytest's) leaves them alone."""
    probe = ("import atexit, gc, sys\n"
             "atexit.register(lambda: print('frozen at exit', gc.get_freeze_count()))\n"
             "from ssgraphrec.cli import console_main\n"
             "sys.argv = ['ssgraphrec', '--version']\n"
             "console_main()\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    frozen = int(re.search(r"frozen at exit (\d+)", done.stdout).group(1))
    assert frozen > 50_000, done.stdout               # torch's objects, at the least
    root = Path(__file__).parents[1]
    assert "console_main()" in (root / "ssgraphrec" / "__main__.py").read_text()
    script = re.search(r'^ssgraphrec = "(.+)"$', (root / "pyproject.toml").read_text(), re.M)
    assert script and script.group(1) == "ssgraphrec.cli:console_main"
    before = gc.get_freeze_count()
    assert CliRunner().invoke(main, ["--version"]).exit_code == 0
    assert gc.get_freeze_count() == before
