"""Bad input on the command line: a non-zero exit, one clear line, never a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from click.testing import CliRunner

from ssgraphrec.cli import main

#: Every case runs under a 2 GiB allocation cap (conftest.memory_cap).
pytestmark = pytest.mark.usefixtures("memory_cap")


@pytest.fixture(autouse=True, scope="module")
def _threads(one_torch_thread):
    pass


def assert_clean_failure(result, *needles: str) -> str:
    """The command failed with one ``Error:`` line holding every needle; returns that line."""
    assert result.exit_code != 0, result.output
    # A user error leaves through click (SystemExit); anything else is a crash.
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines and lines[-1].startswith("Error: "), result.output
    # Besides the error, only the "training ..." banner and epoch logs may appear.
    assert all(line.startswith(("training ", "epoch ")) for line in lines[:-1]), lines
    assert not result.stdout.strip(), result.stdout
    message = lines[-1]
    for needle in needles:
        assert needle.lower() in message.lower(), message
    return message


def run(*args: str):
    return CliRunner().invoke(main, list(args))


@pytest.fixture(autouse=True)
def in_tmp(tmp_path, monkeypatch):
    """Runs that get as far as a run directory must not write into the repository."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def small(tmp_path) -> Path:
    """A triples file big enough to train on: 30 users, 6 rows each, over 40 items."""
    path = tmp_path / "small.txt"
    path.write_text("".join(f"u{u} i{(u * 5 + k * 3) % 40}\n" for u in range(30)
                            for k in range(6)))
    return path


def train(*args: str):
    return run("train", "--epochs", "1", "--no-progress", "--out", "run", *args)


def test_unknown_method():
    assert_clean_failure(train("--method", "sgll"), "unknown method 'sgll'",
                         "did you mean 'sgl'", "lightgcn")


def test_unknown_augmentation(small):
    assert_clean_failure(train("--dataset", str(small), "--aug", "edge_dorp"),
                         "unknown augmentation 'edge_dorp'", "edge_drop")
    assert_clean_failure(train("--dataset", str(small), "--aug", "edge_drop,nope"),
                         "unknown augmentation 'nope'")


def test_drop_ratio_outside_0_1(small):
    assert_clean_failure(train("--dataset", str(small), "--set", "drop_ratio=1.5"),
                         "drop_ratio", "[0, 1)", "1.5")


def test_unknown_setting():
    msg = assert_clean_failure(train("--set", "unknown_key=1"), "unknown setting 'unknown_key'")
    assert "drop_ratio" in msg and "epochs" in msg  # it lists what is known


def test_cutoff_larger_than_the_item_count(small):
    assert_clean_failure(train("--method", "mostpop", "--dataset", str(small),
                               "--set", "eval_ks=[10,20,100000]"),
                         "K=100000", "larger than the number of items (40)")
    # Without K=20 the default monitor ndcg@20 is not computed: also a clear error.
    assert_clean_failure(train("--method", "mostpop", "--dataset", str(small),
                               "--set", "eval_ks=[10]", "--out", "run2"),
                         "ndcg@20", "eval_ks=[10]")


def test_empty_test_split(tmp_path):
    path = tmp_path / "single.txt"
    path.write_text("".join(f"user{u} item{u}\n" for u in range(30)))  # one row per user
    assert_clean_failure(train("--method", "lightgcn", "--dataset", str(path)),
                         "test split is empty")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA device")
@pytest.mark.parametrize("device", ["cuda", "cuda:1"])
def test_cuda_without_cuda(device):
    assert_clean_failure(train("--device", device), f"--device {device}", "no CUDA device",
                         "--device cpu")


def test_unknown_device():
    assert_clean_failure(train("--device", "tpu"), "unknown device 'tpu'")


def test_missing_dataset_path(tmp_path):
    missing = tmp_path / "nowhere" / "ratings.txt"
    assert_clean_failure(train("--dataset", str(missing)), str(missing),
                         "not an existing path")


@pytest.mark.parametrize("files, bad, line, expected", [
    ({"bad.txt": "u1 i1 1\nu1 i2 1\nu2 i1 1 9\n"}, "bad.txt", 3, "2 or 3"),
    ({"bad.txt": "u1 i1 1\nu2 i1 lots\n"}, "bad.txt", 2, "numeric weight"),
    ({"lg/train.txt": "0 1 2 3\n1 2 3 4\n1 5\n", "lg/test.txt": "0 4\n"},
     "lg/train.txt", 3, "one line per user"),
    ({"lg/train.txt": "0 1 2 3\n1 2 x 4\n", "lg/test.txt": "0 4\n"},
     "lg/train.txt", 2, "integer item id"),
    ({"rb/x.inter": "user_id:token\titem_id:int\nu1\t1\n"}, "rb/x.inter", 1, "name:type"),
])
def test_malformed_data_file_given_by_path(tmp_path, files, bad, line, expected):
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    target = tmp_path / (bad if len(files) == 1 and "/" not in bad else bad.split("/")[0])
    assert_clean_failure(train("--method", "mostpop", "--dataset", str(target)),
                         str(tmp_path / bad), f"line {line}:", expected)


def test_aug_for_a_method_without_augmentations():
    assert_clean_failure(train("--method", "lightgcn", "--aug", "edge_drop"),
                         "method 'lightgcn' takes no augmentation")


@pytest.mark.parametrize("override, needle", [
    ("eval_ks=abc", "eval_ks must be a list of integers"),
    ("eval_ks=[5,x]", "eval_ks must be a list of integers"),
    ("epochs=abc", "epochs='abc': expected an int"),
    ("seed=1.5", "seed=1.5: expected an int"),
    ("val_ratio=1.5", "val_ratio must be in [0, 1), got 1.5"),
    ("lr=fast", "lr='fast'"),
    ("temperature=0", "temperature must be > 0, got 0"),
    ("split=temporal", "unknown split 'temporal'"),
    ("monitor=ndcg@50", "monitor 'ndcg@50' is not a computed metric"),
    ("noequals", "--set expects key=value"),
    ("params=3", "'params' must be a mapping"),
])
def test_bad_set_values(small, override, needle):
    assert_clean_failure(train("--dataset", str(small), "--set", override), needle)


@pytest.mark.parametrize("method, override, needle", [
    ("dhcn", "ssl_weight=abc", "ssl_weight='abc': expected a number or null, got str"),
    ("dhcn", "position_embedding=3", "position_embedding=3: expected true or false or null"),
    ("lightgcn", "emb_dim=1.5", "emb_dim=1.5: expected an integer, got float"),
    ("lightgcn", "num_layers=two", "num_layers='two': expected an integer"),
    ("sgl", "aug=[1,2]", "aug=[1, 2]: expected a string or null, got list"),
    ("sgl", "ssl_weight=[0.1]", "ssl_weight=[0.1]: expected a number"),
    ("simgcl", "skip_ego=3", "skip_ego=3: expected true or false"),
    ("ncl", "num_clusters=abc", "num_clusters='abc': expected an integer"),
    ("sasrec", "max_len=null", "max_len=None: expected an integer, got NoneType"),
    ("mhcn", "ssl_normalize=1", "ssl_normalize=1: expected true or false"),
    ("ptgnn", "method.pretrain_epochs=abc", "pretrain_epochs='abc': expected an integer or null"),
    ("ptgnn", "pretrain_epochs=abc", "pretrain_epochs='abc': expected an integer, got str"),
    ("lightgcn", "threads=abc", "threads='abc': expected an integer or null"),
    ("lightgcn", "finetune_lr=fast", "finetune_lr='fast': expected a number or null"),
])
def test_wrong_typed_settings_give_one_line_naming_key_value_and_type(method, override, needle):
    """Types come from the annotations, ``None`` defaults included (ssgraphrec.typed)."""
    from ssgraphrec.config import RUN_FIELDS

    message = assert_clean_failure(train("--method", method, "--set", override), needle)
    if override.split("=")[0] not in RUN_FIELDS:   # a method setting: the method is named
        assert f"method {method!r}" in message


def test_an_unknown_choice_names_the_choices():
    assert_clean_failure(train("--method", "simgcl", "--set", "streams=both"),
                         "streams must be one of shared, separate, fused, got 'both'")


def test_negative_epochs_and_batch_size():
    assert_clean_failure(train("--epochs", "-1"), "--epochs must be >= 0")
    assert_clean_failure(train("--method", "lightgcn", "--batch-size", "0"),
                         "batch_size must be >= 1, got 0")


def test_loo_split_of_data_without_timestamps(small):
    assert_clean_failure(train("--dataset", str(small), "--split", "loo"),
                         "leave-one-out split needs timestamps")


def test_bad_config_files(tmp_path):
    assert_clean_failure(train("--config", str(tmp_path / "none.yaml")),
                         "config file not found", "none.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("method: sgl\nepochs: [1,\n")
    assert_clean_failure(train("--config", str(broken)), "broken.yaml", "not valid YAML")
    listed = tmp_path / "list.yaml"
    listed.write_text("- method\n- sgl\n")
    assert_clean_failure(train("--config", str(listed)), "expected a mapping")


def test_commands_on_a_folder_that_is_not_a_run(tmp_path):
    (tmp_path / "empty").mkdir()
    for args in (["evaluate", "empty"], ["recommend", "empty", "--user", "0"],
                 ["train", "--resume", "empty", "--no-progress"]):
        assert_clean_failure(run(*args), "not a run directory", "no config.yaml")


def test_data_info_of_an_unknown_dataset():
    assert_clean_failure(run("data", "info", "movielens-1b"), "unknown dataset 'movielens-1b'",
                         "synthetic")


def test_registered_dataset_missing_from_the_data_root(tmp_path):
    assert_clean_failure(run("data", "info", "gowalla", "--data-root", str(tmp_path)),
                         "dataset 'gowalla' not found", str(tmp_path / "gowalla"))


def test_the_installed_command_exits_1_without_a_traceback():
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "ssgraphrec.cli", "train", "--method", "nope"],
                          capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("Error: unknown method 'nope'")
    assert proc.stdout == ""


@pytest.mark.parametrize("args, needle", [
    (["--lr", "inf"], "lr must be a finite number, got inf"),
    (["--lr", "nan"], "lr must be a finite number, got nan"),
    (["--lr", "-0.1"], "lr must be > 0, got -0.1"),
    (["--lr", "0"], "lr must be > 0, got 0"),
    (["--set", "emb_dim=0"], "emb_dim must be >= 1, got 0"),
    (["--set", "num_layers=-1"], "num_layers must be >= 0, got -1"),
    (["--set", "reg=-1e-4"], "reg must be >= 0, got -0.0001"),
    (["--set", "init_std=1e400"], "init_std must be a finite number, got inf"),
    (["--patience", "-1"], "patience must be >= 0, got -1"),
    (["--set", "min_steps=-5"], "min_steps must be >= 0, got -5"),
    (["--set", "eval_batch_size=-2"], "eval_batch_size must be >= 0, got -2"),
])
def test_settings_outside_their_range_are_refused_before_training(small, args, needle):
    message = assert_clean_failure(train("--dataset", str(small), "--method", "lightgcn", *args),
                                   needle)
    assert not Path("run").exists(), message  # refused before a run directory is made


@pytest.mark.parametrize("args, needle", [
    (["--method", "sgl", "--set", "dropout=1.5"], "unknown setting 'dropout'"),
    (["--method", "sasrec", "--set", "dropout=1.5"], "dropout must be in [0, 1], got 1.5"),
    (["--method", "simgcl", "--set", "temperature=-1"], "temperature must be > 0, got -1"),
    (["--method", "ncl", "--set", "ssl_weight=-0.5"], "ssl_weight must be >= 0, got -0.5"),
])
def test_method_settings_are_checked_by_their_shared_range(small, args, needle):
    assert_clean_failure(train("--dataset", str(small), *args), needle)


def test_a_diverging_run_stops_naming_the_epoch_instead_of_reporting_nan_metrics(small):
    assert_clean_failure(train("--dataset", str(small), "--method", "lightgcn", "--lr", "1e30"),
                         "after epoch 1", "scores are not finite", "lower the learning rate")


def test_numbers_yaml_1_1_reads_as_strings_are_numbers_in_set():
    from ssgraphrec.config import parse_value

    assert parse_value("1e-4") == 1e-4 and parse_value("-1e-4") == -1e-4
    assert parse_value("inf") == float("inf") and parse_value("nan") != parse_value("nan")
    assert parse_value("edge_drop") == "edge_drop" and parse_value("128,64") == "128,64"
    assert parse_value("[10, 20]") == [10, 20] and parse_value("true") is True


def test_out_that_is_a_file_or_cannot_be_made(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert_clean_failure(train("--method", "mostpop", "--out", str(afile)),
                         f"--out {afile} is a file, not a folder")
    assert_clean_failure(train("--method", "mostpop", "--out", str(afile / "sub")),
                         f"cannot create the run folder {afile / 'sub'}", "not a directory")


def test_sgl_with_an_augmentation_of_another_kind_of_data():
    assert_clean_failure(train("--method", "sgl", "--aug", "item_crop"),
                         "augmentation 'item_crop' does not act on the user-item graph",
                         "edge_drop", "node_drop", "random_walk")


@pytest.fixture
def finished_run(small) -> Path:
    result = run("train", "--method", "lightgcn", "--dataset", str(small), "--epochs", "1",
                 "--no-progress", "--out", "done", "--set", "emb_dim=4")
    assert result.exit_code == 0, result.output
    return Path("done").resolve()


@pytest.mark.parametrize("text, needle", [
    ("method: lightgcn\nepochs: [1,\n", "not valid YAML"),
    ("- a\n- b\n", "is not a mapping of settings (it holds a list)"),
])
def test_a_malformed_config_in_a_run_folder(finished_run, text, needle):
    (finished_run / "config.yaml").write_text(text)
    for command in (["evaluate", str(finished_run)], ["train", "--resume", str(finished_run)],
                    ["recommend", str(finished_run), "--user", "u0"]):
        assert_clean_failure(run(*command), "config.yaml", needle)


def test_evaluate_after_the_data_changed_size_names_the_fingerprint(finished_run, small):
    with small.open("a") as f:
        f.write("".join(f"u{u} i{40 + u}\n" for u in range(30, 40)))  # 10 new users and items
    for command in (["evaluate", str(finished_run)],
                    ["recommend", str(finished_run), "--user", "u0"]):
        assert_clean_failure(run(*command), "has changed since training", "fingerprint")


@pytest.mark.parametrize("content", [b"u1 caf\xe9 1\nu2 b 1\n", bytes(range(256)) * 4])
def test_a_latin1_or_binary_data_file_is_named_not_a_unicode_traceback(tmp_path, content):
    path = tmp_path / "data.txt"
    path.write_bytes(content)
    assert_clean_failure(train("--method", "mostpop", "--dataset", str(path)),
                         f"{path}: not UTF-8 text", "save the data as UTF-8")
    assert_clean_failure(run("data", "info", str(path)), f"{path}: not UTF-8 text")


def test_pretrain_takes_epochs_like_train():
    result = run("pretrain", "--method", "gptgnn", "--epochs", "1", "--out", "pre",
                 "--set", "emb_dim=8")
    assert result.exit_code == 0, result.output
    assert "1 epochs" in result.output


@pytest.mark.parametrize("args, needle", [
    (["--method", "sgl"], "--method cannot change them (the run's is 'lightgcn')"),
    (["--dataset", "synthetic"], "--dataset cannot change them"),
    (["--lr", "0.1"], "--lr cannot change them"),
    (["--set", "reg=0.1"], "--set cannot change them"),
])
def test_resume_refuses_options_that_would_change_the_run(finished_run, args, needle):
    before = (finished_run / "metrics.jsonl").read_text()
    assert_clean_failure(run("train", "--resume", str(finished_run), "--epochs", "2", *args),
                         needle, "only --epochs, --device, --threads and --no-progress")
    assert (finished_run / "metrics.jsonl").read_text() == before


def test_resume_says_where_it_continues_and_records_the_new_epochs(finished_run, small):
    result = run("train", "--resume", str(finished_run), "--epochs", "3", "--no-progress",
                 "--method", "lightgcn", "--dataset", str(small), "--threads", "1")
    assert result.exit_code == 0, result.output
    assert f"resuming {finished_run} at epoch 2 of 3" in result.output
    assert yaml.safe_load((finished_run / "config.yaml").read_text())["epochs"] == 3


def test_a_failed_run_marks_its_folder_with_the_message(small):
    message = assert_clean_failure(train("--dataset", str(small), "--method", "lightgcn",
                                         "--lr", "1e30"), "after epoch 1")
    failed = json.loads((Path("run") / "failed.json").read_text())
    assert failed["error"] == message.removeprefix("Error: ")
    assert failed["epochs_logged"] == 0 and "--resume" in failed["resume"]
    assert not (Path("run") / "results.json").exists()


def test_a_run_on_a_relative_path_is_evaluated_from_another_directory(small, tmp_path,
                                                                      monkeypatch):
    monkeypatch.chdir(small.parent)
    result = run("train", "--method", "lightgcn", "--dataset", small.name, "--epochs", "1",
                 "--no-progress", "--out", "rel", "--set", "emb_dim=4")
    assert result.exit_code == 0, result.output
    saved = yaml.safe_load((small.parent / "rel" / "config.yaml").read_text())
    assert saved["dataset"] == str(small.resolve())
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    for command in (["evaluate", str(small.parent / "rel")],
                    ["recommend", str(small.parent / "rel"), "--user", "u0", "-k", "3"]):
        result = run(*command)
        assert result.exit_code == 0, result.output


def test_the_memory_cap_refuses_what_a_blow_up_would_allocate(memory_cap):
    """Positive control of the cap every case here runs under."""
    if memory_cap is None:
        pytest.skip("RLIMIT_DATA is Linux-only")
    with pytest.raises(RuntimeError, match="can't allocate memory"):
        torch.empty(3 * 2**30, dtype=torch.uint8)
    torch.empty(2**28, dtype=torch.uint8).fill_(1)   # 256 MiB: well inside


def _two_gigabytes() -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (2 * 2**30, 2 * 2**30))


@pytest.mark.parametrize("train_txt, test_txt, needle", [
    ("0 1 2 3\n1 2 1000000000000\n2 0 1\n", "0 4\n1 3\n2 2\n",
     "train.txt: item id 1000000000000 with only 5 distinct items"),
    ("0 1 2 3\n1 2 3\n2 0 1\n", "0 4\n1 3\n99999999999 2\n",
     "test.txt: user id 99999999999 with only 3 distinct users"),
])
def test_an_id_far_beyond_the_distinct_ids_is_refused_before_allocating(tmp_path, train_txt,
                                                                       test_txt, needle):
    """One huge id once grew the process to 23.8 GB; now, under a 2 GB limit, one message."""
    folder = tmp_path / "lines"
    folder.mkdir()
    (folder / "train.txt").write_text(train_txt)
    (folder / "test.txt").write_text(test_txt)
    proc = subprocess.run([sys.executable, "-m", "ssgraphrec.cli", "train", "--method",
                           "mostpop", "--dataset", str(folder), "--out", str(tmp_path / "r")],
                          capture_output=True, text=True, timeout=120, preexec_fn=_two_gigabytes,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 1, proc.stderr[-500:]
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("Error: ") and needle in last, last
    assert "contiguously from 0" in last


def test_a_byte_order_mark_makes_no_phantom_user(tmp_path):
    rows = "".join(f"u{u} i{(u * 5 + k * 3) % 40}\n" for u in range(30) for k in range(6))
    plain, marked = tmp_path / "plain.txt", tmp_path / "marked.txt"
    plain.write_text(rows)
    marked.write_bytes(b"\xef\xbb\xbf" + rows.encode())
    infos = []
    for path in (plain, marked):
        result = run("data", "info", str(path))
        assert result.exit_code == 0, result.output
        infos.append(dict(line.split(None, 1) for line in result.output.strip().splitlines()))
    assert infos[0]["users"] == infos[1]["users"] == "30"
    assert infos[0]["fingerprint"] == infos[1]["fingerprint"]


def test_line_format_train_beside_triples_test_is_refused(tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "train.txt").write_text("".join(
        f"{u} " + " ".join(str((u * 3 + k) % 30) for k in range(5)) + "\n" for u in range(30)))
    (folder / "test.txt").write_text("".join(f"{u} {(u * 7) % 30} 1\n" for u in range(30)))
    assert_clean_failure(train("--method", "mostpop", "--dataset", str(folder)),
                         f"{folder / 'test.txt'}", "the weights would be read as items")


@pytest.mark.parametrize("weight", ["nan", "inf", "-inf"])
def test_a_non_finite_weight_is_refused_with_its_line(tmp_path, weight):
    path = tmp_path / "w.txt"
    path.write_text("u0 i0 1\nu0 i1 2\n" + f"u1 i0 {weight}\n" + "u1 i2 1\n")
    assert_clean_failure(train("--method", "mostpop", "--dataset", str(path)),
                         f"{path}, line 3", f"weight '{weight}' is not finite")


def test_a_four_column_line_in_triples_is_named_as_the_cause(tmp_path):
    folder = tmp_path / "tri"
    folder.mkdir()
    (folder / "train.txt").write_text("0 5 1\n0 7 1\n1 5 1 9\n1 8 1\n")
    (folder / "test.txt").write_text("0 8 1\n1 7 1\n")
    assert_clean_failure(train("--method", "mostpop", "--dataset", str(folder)),
                         "train.txt, line 2", "triples",
                         "a line with more than 3 columns made it look like the line format "
                         "(line 3)")


def test_a_bad_timestamp_is_blamed_on_its_own_line(tmp_path):
    path = tmp_path / "clicks.csv"
    path.write_text("session_id,item_id,timestamp\n1,10,100\n1,11,abc\n2,10,300\n")
    assert_clean_failure(train("--method", "dhcn", "--dataset", str(path)),
                         f"{path}, line 3", "timestamp 'abc'")


def test_a_social_file_beside_a_fixed_split_is_read(tmp_path):
    folder = tmp_path / "fixed"
    folder.mkdir()
    (folder / "train.txt").write_text("".join(f"u{u} i{(u + k) % 12} 1\n" for u in range(10)
                                              for k in range(5)))
    (folder / "test.txt").write_text("".join(f"u{u} i{(u + 6) % 12} 1\n" for u in range(10)))
    result = run("data", "info", str(folder))
    assert result.exit_code == 0 and "social_links" not in result.output
    (folder / "trusts.txt").write_text("u0 u1\nu1 u2\nu2 u0\n")
    info = dict(line.split(None, 1) for line in run("data", "info", str(folder)).output
                .strip().splitlines())
    assert info["social_links"] == "3"  # directed, as the file gives them


@pytest.mark.parametrize("fmt", ["triples", "lines"])
def test_a_fixed_split_brings_its_own_validation_file(tmp_path, fmt):
    folder = tmp_path / fmt
    folder.mkdir()
    if fmt == "triples":
        line = lambda u, items: "".join(f"u{u} i{i} 1\n" for i in items)  # noqa: E731
    else:
        line = lambda u, items: f"{u} " + " ".join(str(i) for i in items) + "\n"  # noqa: E731
    (folder / "train.txt").write_text("".join(line(u, [(u + k) % 12 for k in range(6)])
                                              for u in range(10)))
    (folder / "test.txt").write_text("".join(line(u, [(u + 7) % 12]) for u in range(10)))
    # 10 validation pairs: one per user, u0's is a training pair (dropped and counted)
    (folder / "val.txt").write_text("".join(line(u, [(u + (0 if u == 0 else 6)) % 12])
                                            for u in range(10)))
    info = dict(line.split(None, 1) for line in run("data", "info", str(folder)).output
                .strip().splitlines())
    assert info["train"] == "60"  # nothing carved out of training
    assert info["val"] == "9" and info["val_dropped"] == "1" and info["val_source"] == "file"
    off = dict(line.split(None, 1) for line in run("data", "info", str(folder), "--val-ratio",
                                                    "0").output.strip().splitlines())
    assert off["val"] == "0" and off["train"] == "60"
