"""The leaderboards: aggregation, resuming, published-figure labels, the CLI, end to end.

Training is either faked (a stand-in for ``train`` that counts its calls) or
tiny (a generated 60-user triples folder, embedding size 8, one layer, one
epoch), so the whole file runs in seconds.
"""

from __future__ import annotations

import csv
import io
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from ssgraphrec.bench import quality
from ssgraphrec.bench.quality import QualitySpec, plan, run_quality
from ssgraphrec.bench.references import Protocol, lookup, other_data
from ssgraphrec.bench.speed import SpeedSpec, run_speed
from ssgraphrec.bench.table import (
    CellResult,
    aggregate,
    csv_text,
    fmt_mean_std,
    markdown_table,
    mean_std,
)
from ssgraphrec.cli import main
from ssgraphrec.errors import ConfigError, SSGraphRecError
from ssgraphrec.train import run_dir as rd

TINY_SETTINGS = {"emb_dim": 8, "num_layers": 1, "batch_size": 256}


@pytest.fixture(autouse=True, scope="module")
def _threads(one_torch_thread):
    pass


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    """A folder with ``ratings.txt``: 60 users x 8-14 ``user item`` rows over 40 items."""
    rng = np.random.default_rng(0)
    p = 1.0 / np.arange(1, 41) ** 0.8
    rows = [f"u{u} i{i}\n" for u in range(60)
            for i in rng.choice(40, rng.integers(8, 15), replace=False, p=p / p.sum())]
    folder = tmp_path_factory.mktemp("data") / "tiny"
    folder.mkdir()
    (folder / "ratings.txt").write_text("".join(rows))
    return folder


def cell(method: str, seed: int, recall: float, ndcg: float, dataset: str = "d") -> CellResult:
    return CellResult(dataset, method, seed, "trained", {"recall@20": recall, "ndcg@20": ndcg},
                      results={"epochs_trained": 4, "best_epoch": 3,
                               "timing": {"train_s_per_epoch": 2.0}})


# ---------------------------------------------------------------- aggregation
def test_mean_std_is_sample_std():
    assert mean_std([0.1, 0.2, 0.3]) == pytest.approx((0.2, 0.1))
    mean, std = mean_std([0.5])
    assert mean == 0.5 and math.isnan(std)
    assert fmt_mean_std(0.2, 0.1) == "0.2000 ± 0.1000"
    assert fmt_mean_std(0.5, math.nan) == "0.5000"


def test_aggregate_over_seeds_with_paired_gain_and_failures():
    cells = [cell("lightgcn", 1, 0.10, 0.05), cell("lightgcn", 2, 0.20, 0.10),
             cell("lightgcn", 3, 0.30, 0.15),
             cell("sgl", 1, 0.11, 0.05), cell("sgl", 2, 0.24, 0.10), cell("sgl", 3, 0.30, 0.15),
             CellResult("d", "mostpop", 1, "failed", error="boom"), cell("mostpop", 2, 0.04, 0.02)]
    rows = {r.method: r for r in aggregate(cells)}
    lgc = rows["lightgcn"]
    assert lgc.seeds == [1, 2, 3]
    assert lgc.mean["recall@20"] == pytest.approx(0.2)
    assert lgc.std["recall@20"] == pytest.approx(0.1)
    assert lgc.mean["ndcg@20"] == pytest.approx(0.1)
    assert lgc.std["ndcg@20"] == pytest.approx(0.05)
    assert not lgc.gain_mean  # no gain of the baseline over itself
    # sgl / lightgcn - 1 per seed: +10%, +20%, 0% -> mean 10, sample std 10
    assert rows["sgl"].gain_mean["recall@20"] == pytest.approx(10.0)
    assert rows["sgl"].gain_std["recall@20"] == pytest.approx(10.0)
    pop = rows["mostpop"]
    assert pop.seeds == [2] and pop.failed == [1]
    assert pop.mean["recall@20"] == pytest.approx(0.04) and math.isnan(pop.std["recall@20"])
    assert lgc.epochs_trained == 4 and lgc.train_s_per_epoch == 2.0


# ---------------------------------------------------------------- references
def test_reference_at_other_k_and_split_is_labelled():
    ours = Protocol("random", test=0.1, val=0.1, epochs=5)
    matches = lookup("lightgcn", "lastfm", "recall@20", ours)
    assert len(matches) == 1
    m = matches[0]
    assert m.reference.value == 0.2064 and m.reference.metric == "recall@10"
    assert not m.comparable
    assert "K: published Recall@10, ours Recall@20" in m.label
    assert "split: published random per-user split 80:10:10" in m.label
    assert "ours random per-user split 81:9:10" in m.label
    assert m.tags == ["@10", "other split"]
    # the same K and an exact 8:1:1 split compare (the source states no epoch budget)
    same = lookup("lightgcn", "lastfm", "ndcg@10", Protocol("random", test=0.1, val=1 / 9))
    assert [x.comparable for x in same] == [True] and same[0].reference.value == 0.1972
    # another split of the same data is still the same data, labelled as another split
    fixed = lookup("lightgcn", "lastfm-80-20", "recall@10", Protocol("fixed", val=0.1))
    assert len(fixed) == 1 and fixed[0].tags == ["other split"]


def test_reference_budget_and_other_data():
    gowalla = lookup("lightgcn", "gowalla", "ndcg@20", Protocol("fixed", val=0.1, epochs=5))
    by_source = {m.reference.source: m for m in gowalla}
    assert {m.reference.value for m in gowalla} == {0.1547, 0.15539}
    pt, tf = by_source["LightGCN-PyTorch README"], by_source["official LightGCN (TensorFlow) log"]
    assert "budget: published about 1,000 epochs, ours 5" in pt.label
    assert pt.tags == ["other split", "other budget"]
    assert tf.tags == ["other split"]  # that source states no epoch budget
    assert all("published the dataset's fixed train/test files, no validation split" in m.label
               for m in gowalla)
    exact = lookup("lightgcn", "gowalla", "recall@20", Protocol("fixed", val=0.0, epochs=1000))
    assert all(m.comparable for m in exact)
    assert lookup("sgl", "ml-100k", "recall@20", Protocol("random", test=0.2, val=0.1)) == []
    other = other_data(["sgl", "lightgcn"], ["ml-100k"])
    assert {(r.method, r.dataset) for r in other} >= {("sgl", "ml-1m"), ("lightgcn", "ml-1m")}


def test_table_shows_label_beside_published_figure():
    rows = aggregate([cell("lightgcn", 1, 0.2, 0.1, dataset="lastfm")],
                     protocols={"lastfm": Protocol("random", test=0.1, val=0.1, epochs=5)})
    table, notes = markdown_table(rows)
    assert "0.2064 (@10, other split) [1]" in table
    assert "0.1972 (@10, other split) [2]" in table
    assert notes[0].startswith("[1] LightGCN, lastfm, Recall@10 = 0.2064")
    assert "**not comparable: K: published Recall@10, ours Recall@20" in notes[0]


# ---------------------------------------------------------------- resuming
def fake_train(calls: list):
    """A stand-in for ``train``: records its call and writes config.yaml and results.json."""

    def _train(cfg, out=None, *, resume=None, epochs=None, progress=True, log=None,
               provenance=None):
        run = Path(resume or out)
        calls.append(("resume" if resume else "new", run.parent.name, run.name))
        run.mkdir(parents=True, exist_ok=True)
        if not resume:
            rd.write_config(run, cfg.to_dict())
        results = {"test": {"recall@20": 0.3, "ndcg@20": 0.2}, "val": {"ndcg@20": 0.1},
                   "epochs_trained": 1, "best_epoch": 1, "data": {"fingerprint": "f"}}
        rd.write_results(run, results)
        return run, results

    return _train


def test_resume_skips_finished_cells_and_continues_interrupted(tiny, tmp_path, monkeypatch):
    spec = QualitySpec(["mostpop", "lightgcn"], [str(tiny)], [1, 2], 1, tmp_path / "q",
                       dict(TINY_SETTINGS))
    cells = {(c.method, c.seed): c for c in plan(spec)}
    assert {c.state for c in cells.values()} == {"new"}
    done, cut = cells["lightgcn", 1], cells["lightgcn", 2]
    for c in (done, cut):
        c.run_dir.mkdir(parents=True)
        rd.write_config(c.run_dir, {**c.cfg.to_dict(), "params": {"emb_dim": 8, "num_layers": 1}})
    rd.write_results(done.run_dir, {"test": {"recall@20": 0.5, "ndcg@20": 0.4},
                                    "data": {"fingerprint": "f"}})
    (cut.run_dir / rd.LAST).write_bytes(b"checkpoint")
    (cut.run_dir / rd.METRICS).write_text('{"epoch": 1, "val": {"ndcg@20": 0.1}}\n{"epo')
    calls: list = []
    monkeypatch.setattr(quality, "train", fake_train(calls))
    report = run_quality(spec, log=lambda msg: None)
    assert sorted(calls) == [("new", "mostpop", "seed1"), ("new", "mostpop", "seed2"),
                             ("resume", "lightgcn", "seed2")]
    status = {(c.method, c.seed): c.status for c in report.cells}
    assert status == {("mostpop", 1): "trained", ("mostpop", 2): "trained",
                      ("lightgcn", 1): "cached", ("lightgcn", 2): "resumed"}
    lgc = next(c for c in report.cells if (c.method, c.seed) == ("lightgcn", 1))
    assert lgc.test["recall@20"] == 0.5  # read back, not retrained
    assert next(c for c in report.cells if c.seed == 2 and c.method == "lightgcn").curve == [(1, 0.1)]
    # everything is done now: a second run trains nothing
    calls.clear()
    run_quality(spec, log=lambda msg: None)
    assert calls == []


def test_cell_with_other_settings_is_an_error_before_training(tiny, tmp_path, monkeypatch):
    spec = QualitySpec(["lightgcn"], [str(tiny)], [1], 1, tmp_path / "q", dict(TINY_SETTINGS))
    (c,) = plan(spec)
    c.run_dir.mkdir(parents=True)
    rd.write_config(c.run_dir, {**c.cfg.to_dict(), "epochs": 7,
                                "params": {"emb_dim": 16, "num_layers": 1, "reg": 1e-4}})
    rd.write_results(c.run_dir, {"test": {"recall@20": 0.5, "ndcg@20": 0.4}})
    calls: list = []
    monkeypatch.setattr(quality, "train", fake_train(calls))
    with pytest.raises(SSGraphRecError, match=r"epochs=7 \(asked 1\), emb_dim=16 \(now 8\)"):
        run_quality(spec, log=lambda msg: None)
    assert calls == []


def test_set_scoping(tiny, tmp_path):
    spec = QualitySpec(["mostpop", "lightgcn", "sgl"], [str(tiny)], [1], 1, tmp_path,
                       {"emb_dim": 8, "sgl.drop_ratio": 0.2, "patience": 3})
    cfgs = {c.method: c.cfg for c in plan(spec)}
    assert cfgs["mostpop"].params == {} and cfgs["mostpop"].patience == 3
    assert cfgs["lightgcn"].params == {"emb_dim": 8}
    assert cfgs["sgl"].params == {"emb_dim": 8, "drop_ratio": 0.2}
    with pytest.raises(SSGraphRecError, match="none of the methods"):
        plan(QualitySpec(["mostpop"], [str(tiny)], [1], 1, tmp_path, {"emb_dim": 8}))


# ---------------------------------------------------------------- CLI
def test_cli_rejects_unknown_methods_before_training(tiny, tmp_path, monkeypatch):
    calls: list = []
    monkeypatch.setattr(quality, "train", fake_train(calls))
    result = CliRunner().invoke(main, ["bench", "quality", "--methods", "lightgcn,nosuch,bogus",
                                       "--datasets", str(tiny), "--out", str(tmp_path / "q")])
    assert result.exit_code != 0
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith("Error: unknown methods 'nosuch', 'bogus'; known: ")
    assert "lightgcn" in lines[0] and "Traceback" not in result.output
    assert calls == [] and not (tmp_path / "q").exists()


def test_cli_end_to_end_tiny(tiny, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # the command must work without it
    out = tmp_path / "q"
    args = ["bench", "quality", "--methods", "mostpop,lightgcn", "--datasets", str(tiny),
            "--epochs", "1", "--seeds", "2", "--out", str(out), "--device", "cpu",
            "--set", "emb_dim=8", "--set", "num_layers=1", "--set", "batch_size=256"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert "skipped the plot" in result.output
    md = (out / "quality.md").read_text()
    assert "| mostpop | user | 2 |" in md and "| lightgcn | user | 2 |" in md
    assert "Command: `" in md and "--methods mostpop,lightgcn" in md
    rows = list(csv.DictReader((out / "quality.csv").open()))
    assert [r["method"] for r in rows] == ["mostpop", "lightgcn"]
    for r in rows:
        values = [float(v) for v in r["recall@20_values"].split()]
        assert len(values) == 2 and float(r["recall@20_mean"]) == pytest.approx(
            np.mean(values), abs=1e-5)
    for seed in (2020, 2021):
        assert (out / "runs" / "tiny" / "lightgcn" / f"seed{seed}" / rd.RESULTS).is_file()
    strict = json.loads((out / "quality.json").read_text(),
                        parse_constant=lambda c: pytest.fail(f"{c} in quality.json"))
    cells = strict["cells"]
    fps = {(c["seed"], c["fingerprint"]) for c in cells}
    assert len(fps) == 2  # one split per seed, shared by both methods
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 0 and "4 already done" in again.output


def test_speed_in_process(tiny, tmp_path):
    md, js, results = run_speed(SpeedSpec(["mostpop", "lightgcn"], str(tiny), epochs=1,
                                          eval_reps=1, device="cpu", overrides=TINY_SETTINGS),
                                tmp_path / "s", isolate=False, log=lambda msg: None)
    rows = {r["method"]: r for r in results["methods"]}
    assert rows["mostpop"]["epoch_s"] is None and rows["lightgcn"]["epoch_s"] > 0
    assert rows["lightgcn"]["sparse_backend"] in ("torch", "torch_sparse")
    assert rows["lightgcn"]["threads"] == 1 and rows["lightgcn"]["peak_rss_mib"] > 0
    assert "| lightgcn | " in md.read_text() and json.loads(js.read_text())["methods"]


def test_speed_on_a_window_of_steps_scales_the_window_to_the_epoch(tiny, tmp_path, monkeypatch):
    from ssgraphrec.methods.lightgcn import LightGCN

    calls = []
    loss = LightGCN.loss
    monkeypatch.setattr(LightGCN, "loss", lambda self, batch: calls.append(1) or loss(self, batch))
    monkeypatch.setattr(LightGCN, "on_epoch_start", lambda self, epoch: time.sleep(0.2))
    settings = {**TINY_SETTINGS, "batch_size": 8}
    md, _, results = run_speed(SpeedSpec(["lightgcn"], str(tiny), epochs=2, steps=3,
                                         eval_reps=1, device="cpu", overrides=settings),
                               tmp_path / "s", isolate=False, log=lambda msg: None)
    (row,) = results["methods"]
    assert row["batches_per_epoch"] > 3 and row["timed_batches"] == 3
    assert len(calls) == 3 * 3                       # warm-up and two timed windows of 3 batches
    window = sum(row["epoch_s_all"]) / 2             # the median of two windows (rounded)
    assert row["step_s"] == pytest.approx(window / 3, abs=1e-3)
    # the per-epoch work (0.2 s here) is timed apart and counted once, not once per window
    assert 0.2 <= row["epoch_start_s"] < 0.3 and window < 0.2
    assert row["epoch_s"] == pytest.approx(row["step_s"] * row["batches_per_epoch"]
                                           + row["epoch_start_s"], rel=1e-3, abs=1e-3)
    assert "first 3 batches" in md.read_text()
    with pytest.raises(ConfigError, match="--steps must be >= 0"):
        run_speed(SpeedSpec(["lightgcn"], str(tiny), steps=-1), tmp_path / "t", isolate=False,
                  log=lambda msg: None)


class _Interrupt(KeyboardInterrupt):
    """Ctrl-C in the middle of a cell."""


def test_interrupted_real_run_resumes_from_its_last_epoch(tiny, tmp_path):
    spec = QualitySpec(["lightgcn"], [str(tiny)], [1], 3, tmp_path / "q",
                       {**TINY_SETTINGS, "patience": 10}, device="cpu")

    def stop_in_epoch_2(msg: str) -> None:
        if "epoch   2 |" in msg:  # logged before epoch 2's checkpoint is written
            raise _Interrupt

    with pytest.raises(_Interrupt):
        run_quality(spec, log=stop_in_epoch_2)
    (c,) = plan(spec)
    assert c.state == "interrupted" and not (c.run_dir / rd.RESULTS).exists()
    report = run_quality(spec, log=lambda msg: None)
    assert [x.status for x in report.cells] == ["resumed"]
    assert [e for e, _ in report.cells[0].curve] == [1, 2, 3]
    assert report.cells[0].results["epochs_trained"] == 3


def test_plot_of_validation_curves(tmp_path):
    pytest.importorskip("matplotlib")
    from ssgraphrec.bench.table import plot_curves

    cells = [CellResult("d", "lightgcn", s, "trained", curve=[(1, 0.1 + s / 100), (2, 0.2)])
             for s in (1, 2)]
    cells.append(CellResult("d", "mostpop", 1, "trained", results={"val": {"ndcg@20": 0.15}}))
    path = plot_curves(cells, tmp_path / "p.png", log=lambda msg: None)
    assert path is not None and path.read_bytes()[:4] == b"\x89PNG"


def test_session_data_is_planned_with_its_own_metrics(tmp_path):
    folder = tmp_path / "sessions"
    folder.mkdir()
    import pickle

    for name in ("train.txt", "test.txt"):
        (folder / name).write_bytes(pickle.dumps(([[1, 2], [2]], [3, 1]), protocol=3))
    (only,) = plan(QualitySpec(["mostpop"], [str(folder)], [1], 1, tmp_path / "q", {}))
    assert only.kind == "next_item" and only.metrics == ("hit@20", "mrr@20")


def test_aggregate_measures_each_kind_of_data_against_its_backbone():
    seq = lambda method, seed, hit, ndcg: CellResult(  # noqa: E731
        "seq", method, seed, "trained", {"hit@20": hit, "ndcg@20": ndcg})
    cells = [seq("sasrec", 1, 0.10, 0.04), seq("sasrec", 2, 0.20, 0.05),
             seq("cl4srec", 1, 0.12, 0.03), seq("cl4srec", 2, 0.20, 0.06),
             seq("lightgcn", 1, 0.50, 0.50), seq("lightgcn", 2, 0.50, 0.50),
             cell("lightgcn", 1, 0.10, 0.05), cell("sgl", 1, 0.11, 0.05)]
    rows = {(r.dataset, r.method): r for r in
            aggregate(cells, kinds={"seq": "sequential", "d": "ranking"})}
    cl4 = rows["seq", "cl4srec"]
    assert cl4.metrics == ("hit@20", "ndcg@20") and cl4.baseline == "sasrec"
    # paired by seed against SASRec, not LightGCN: hit +20 % and 0 %; NDCG -25 % and +20 %
    assert cl4.gain_mean["hit@20"] == pytest.approx(10.0)
    assert cl4.gain_mean["ndcg@20"] == pytest.approx(-2.5)
    assert not rows["seq", "sasrec"].gain_mean
    assert rows["seq", "lightgcn"].gain_mean["hit@20"] == pytest.approx(275.0)  # 5x and 2.5x
    assert rows["d", "sgl"].gain_mean["recall@20"] == pytest.approx(10.0)
    assert rows["d", "sgl"].metrics == ("recall@20", "ndcg@20")
    table, _ = markdown_table([r for r in rows.values() if r.dataset == "seq"])
    assert "| test HR@20 | test NDCG@20 | HR@20 vs sasrec [95% CI] |" in table
    text = csv_text(list(rows.values()), {})
    lines = list(csv.DictReader(io.StringIO(text)))
    by = {(r["dataset"], r["method"]): r for r in lines}
    assert float(by["seq", "cl4srec"]["hit@20_gain_pct_mean"]) == pytest.approx(10.0)
    assert by["seq", "cl4srec"]["recall@20_mean"] == "" and by["d", "sgl"]["hit@20_mean"] == ""


def seq_folder(root: Path, users: int = 40) -> Path:
    """An S3-Rec style folder: ``users`` sequences of 5-10 items over 30 items."""
    folder = root / "seqs"
    folder.mkdir()
    gen = np.random.default_rng(0)
    lines = [" ".join([str(u)] + [str(i) for i in gen.integers(1, 31, size=gen.integers(5, 11))])
             for u in range(1, users + 1)]
    (folder / "Toy.txt").write_text("\n".join(lines) + "\n")
    (folder / "Toy_item2attributes.json").write_text(json.dumps({"1": [1]}))
    return folder


SEQ_SETTINGS = {"emb_dim": 8, "num_heads": 1, "num_layers": 1, "max_len": 10, "inner_size": 16,
                "batch_size": 8}


def test_quality_on_user_sequences_tables_hit_ratio_against_sasrec(tmp_path):
    spec = QualitySpec(["sasrec", "cl4srec"], [str(seq_folder(tmp_path))], [1, 2], 1,
                       tmp_path / "q", SEQ_SETTINGS, device="cpu")
    report = run_quality(spec, log=lambda msg: None)
    assert not report.failed, [c.error for c in report.failed]
    test = {(c.method, c.seed): c.test for c in report.cells}
    gains = [100 * (test["cl4srec", s]["hit@20"] / test["sasrec", s]["hit@20"] - 1) for s in (1, 2)]
    saved = json.loads(report.json.read_text())
    (row,) = [r for r in saved["rows"] if r["method"] == "cl4srec"]
    assert row["gain_pct_mean"]["hit@20"] == pytest.approx(sum(gains) / 2)
    assert saved["backbones"] == {str(spec.datasets[0]): "sasrec"}
    md = report.markdown.read_text()
    assert "HR@20 vs sasrec" in md and "Test HR@20 and NDCG@20" in md and "Recall@20" not in md


def test_published_figures_are_read_from_the_cited_csv(tmp_path):
    from ssgraphrec.bench.references import REFERENCES, load_references

    assert len(REFERENCES) >= 29 and all(r.source for r in REFERENCES)
    gowalla = [r for r in REFERENCES if r.dataset == "gowalla" and r.metric == "recall@20"]
    assert {r.value for r in gowalla} == {0.1824, 0.18236}
    path = tmp_path / "refs.csv"
    path.write_text("# a comment\nmethod,method_label,dataset,split,test_share,val_share,epochs,"
                    "protocol_detail,metric,value,approximate,source,note\n"
                    "sgl,SGL,lastfm,random,0.1,0.1111,,,recall@10,0.2,yes,a paper,\n")
    (ref,) = load_references(path)
    assert (ref.method, ref.protocol.test, ref.protocol.epochs, ref.value, ref.approximate) == (
        "sgl", 0.1, None, 0.2, True)


def test_every_benchmark_script_is_a_thin_wrapper_over_a_study():
    """One benchmark home (ssgraphrec.bench): benchmarks/*.py only call a study."""
    import re

    from ssgraphrec.bench.studies import study_names

    scripts = sorted((Path(__file__).resolve().parents[1] / "benchmarks").glob("*.py"))
    assert scripts
    wrapped = set()
    for script in scripts:
        text = script.read_text()
        called = re.findall(r'run_study\("([a-z0-9_]+)", sys\.argv\[1:\]\)', text)
        assert len(called) == 1 and len(text.splitlines()) <= 12, script.name
        wrapped.add(called[0])
    assert wrapped == set(study_names())   # and every study has its script


def test_every_benchmark_script_has_its_row_in_the_benchmarks_readme():
    """benchmarks/README.md says what each script measures and where it writes."""
    import re

    folder = Path(__file__).resolve().parents[1] / "benchmarks"
    documented = set(re.findall(r"^(?:\| |## )`([a-z0-9_]+\.py)`", (folder / "README.md").read_text(),
                                re.M))
    assert {script.name for script in folder.glob("*.py")} <= documented


def test_bench_study_lists_runs_and_refuses_an_unknown_study():
    listed = CliRunner().invoke(main, ["bench", "study", "--list"])
    assert listed.exit_code == 0
    assert "time_to_quality        Time to quality:" in listed.output
    helped = CliRunner().invoke(main, ["bench", "study", "remedies", "--help"])
    assert helped.exit_code == 0 and "ssgraphrec bench study remedies" in helped.output
    unknown = CliRunner().invoke(main, ["bench", "study", "nope"])
    assert unknown.exit_code == 1 and "unknown study 'nope'; studies: batch_rows, bigi," in unknown.output


def test_a_study_script_ends_a_bad_setting_with_one_message(capsys):
    """``benchmarks/NAME.py`` runs ``run_study``: an unknown method ends the study with
    the package's message and exit status 1, not a traceback; a malformed option with
    argparse's."""
    from ssgraphrec.bench.studies import run_study

    with pytest.raises(SystemExit) as bad_method:
        run_study("contrastive_floor", ["--methods", "nope", "--dataset", "synthetic"])
    assert str(bad_method.value).startswith("Error: unknown method 'nope'; known: bigi,")
    with pytest.raises(SystemExit) as bad_shapes:
        run_study("step_bookkeeping", ["--only", "adam", "--adam-shapes", "12y"])
    assert bad_shapes.value.code == 2
    assert "--adam-shapes: ROWSxCOLUMNS,..., got '12y'" in capsys.readouterr().err


def test_a_study_script_applies_the_heap_setting_of_the_command_line(monkeypatch):
    """``benchmarks/NAME.py`` keeps freed memory in the heap before the study starts, as
    ``ssgraphrec bench study`` does; a bad policy ends it with the command line's message."""
    from ssgraphrec import heap
    from ssgraphrec.bench.studies import run_study

    calls = []
    monkeypatch.setattr(heap, "retain_freed_memory", lambda: calls.append("heap") or True)
    monkeypatch.setattr("ssgraphrec.bench.studies.contrastive_floor.main",
                        lambda: calls.append("study"))
    run_study("contrastive_floor", [])
    assert calls == ["heap", "study"]

    monkeypatch.undo()
    monkeypatch.setenv(heap.HEAP_ENV, "keep")
    with pytest.raises(SystemExit) as bad_policy:
        run_study("contrastive_floor", ["--help"])
    assert str(bad_policy.value) == ("Error: SSGRAPHREC_HEAP must be 'retain' or 'system', "
                                     "got 'keep'")


def test_speed_counts_the_batches_of_a_sequence_method(tmp_path):
    """Sequence data has no user-item edges to count: the epoch's batches are the
    method's own (one sample per user here), and the window scales by them."""
    _, _, results = run_speed(SpeedSpec(["sasrec"], str(seq_folder(tmp_path)), epochs=1, steps=2,
                                        eval_reps=1, device="cpu", overrides=SEQ_SETTINGS),
                              tmp_path / "s", isolate=False, log=lambda msg: None)
    (row,) = results["methods"]
    assert "error" not in row, row.get("error")
    assert row["batches_per_epoch"] == 40 // 8 and row["timed_batches"] == 2
    assert row["epoch_s"] > 0


def _fake_run(run_dir, minutes: list[float], best: int, recall: float, threads: int = 2,
              val_ratio: float = 0.02, seed: int = 2020):
    """A run directory as ``ssgraphrec train --max-minutes 60`` leaves it (``val_ratio`` 0:
    as ``--val-ratio 0`` with no budget leaves it, its last epoch the model)."""
    run_dir.mkdir(parents=True)
    budget = "null" if val_ratio == 0 else "60.0"
    (run_dir / "config.yaml").write_text(
        f"method: xsimgcl\nthreads: {threads}\nmax_minutes: {budget}\nlr: 0.002\n"
        f"val_ratio: {val_ratio}\nseed: {seed}\nparams:\n  lr: 0.002\n  eps: 0.1\n  reg: 0.001\n")
    val = {} if val_ratio == 0 else {"val": {"recall@20": 0.2, "ndcg@20": 0.1}}
    (run_dir / "metrics.jsonl").write_text("".join(
        json.dumps({"epoch": e, "loss": {"bpr": 0.1}, **val, "elapsed_s": m * 60}) + "\n"
        for e, m in enumerate(minutes, 1)))
    (run_dir / "results.json").write_text(json.dumps({
        "config_source": "user", "provenance": {"user_settings": ["eps", "lr", "reg"]},
        "test": {"recall@20": recall, "ndcg@20": 0.15}, "best_epoch": best,
        "epochs_trained": len(minutes), "timing": {"train_s_per_epoch": 150.0}}))


def test_time_to_quality_counts_a_refit_after_its_selection_run_within_that_runs_budget(
        tmp_path):
    """A refit's minutes add its selection run's whole run to its own, its epochs must be the
    epochs selected on validation, and it must have trained without a validation split."""
    from ssgraphrec.bench.studies.time_to_quality import markdown, summarise
    from ssgraphrec.errors import SSGraphRecError

    _fake_run(tmp_path / "select", [10.0, 20.0, 30.0], best=2, recall=0.1822)
    _fake_run(tmp_path / "refit", [9.5, 19.5], best=2, recall=0.1850, val_ratio=0, seed=2021)
    row = summarise("refit", tmp_path / "refit", target=0.1824, selection_dir=tmp_path / "select")
    assert row["minutes_at_best_epoch"] == 49.5 and row["minutes_total"] == 49.5
    assert row["reaches_target"] and row["refit_of"] == "select" and row["selected_epoch"] == 2
    assert not summarise("select", tmp_path / "select", target=0.1824)["reaches_target"]

    _fake_run(tmp_path / "slow-select", [25.0, 41.0, 45.0], best=2, recall=0.1822)
    late = summarise("refit", tmp_path / "refit", target=0.1824,
                     selection_dir=tmp_path / "slow-select")
    assert late["minutes_at_best_epoch"] == 64.5 and not late["reaches_target"]  # past 60

    _fake_run(tmp_path / "wrong-epochs", [9.5, 19.5, 29.0], best=3, recall=0.19, val_ratio=0)
    with pytest.raises(SSGraphRecError, match="trained 3 epochs, but select selected epoch 2"):
        summarise("wrong-epochs", tmp_path / "wrong-epochs", 0.1824, tmp_path / "select")
    _fake_run(tmp_path / "validated", [9.5, 19.5], best=2, recall=0.19)
    with pytest.raises(SSGraphRecError, match="is not a refit"):
        summarise("validated", tmp_path / "validated", 0.1824, tmp_path / "select")
    with pytest.raises(SSGraphRecError, match="select/refit holds no finished run"):
        summarise("select-refit", tmp_path / "select" / "refit", 0.1824, tmp_path / "select")
    # a run of train --refit reports its refit's test: never as the selection run's row
    _fake_run(tmp_path / "trained-refit", [10.0, 20.0, 30.0], best=2, recall=0.1850)
    results = json.loads((tmp_path / "trained-refit" / "results.json").read_text())
    (tmp_path / "trained-refit" / "results.json").write_text(json.dumps(
        {**results, "refit": {"run_dir": "refit", "epochs": 2}}))
    with pytest.raises(SSGraphRecError, match="trained-refit was trained with --refit"):
        summarise("trained-refit", tmp_path / "trained-refit", 0.1824)

    table = markdown({"dataset": "gowalla", "command": "c", "date": "d", "seed": 2020,
                      "minutes": 60.0, "threads": 1, "target": 0.1824, "target_source": "s",
                      "methods": [row]})
    assert "| refit | eps 0.1, lr 0.002, reg 0.001, seed 2021 | 2 | 60.0 | 2 |" in table
    assert "for the 2 epochs that select selected on validation" in table
    assert "(30.0 minutes)" in table


def test_time_to_quality_launches_train_with_the_studys_settings_and_refit(tmp_path, monkeypatch):
    """Each run gets the study's budget, validation share, lr and settings; ``--refit``
    passes on to ``ssgraphrec train``."""
    import argparse
    import subprocess

    from ssgraphrec.bench.studies import time_to_quality

    commands = []
    monkeypatch.setattr(subprocess, "Popen", lambda command, **kw: commands.append(command))
    args = argparse.Namespace(dataset="gowalla", threads=2, seed=2020, epochs=1000, minutes=60.0,
                              val_ratio=0.02, lr=0.002, set=["reg=0.001"], refit=False)
    time_to_quality.launch("xsimgcl", args, tmp_path / "plain")
    time_to_quality.launch("xsimgcl", argparse.Namespace(**{**vars(args), "refit": True}),
                           tmp_path / "refit")
    plain, refit = (" ".join(c[3:]) for c in commands)
    assert "--epochs 1000 --max-minutes 60.0 --threads 2 --seed 2020" in plain
    assert plain.endswith("--val-ratio 0.02 --lr 0.002 --set reg=0.001")
    assert refit.endswith("--val-ratio 0.02 --lr 0.002 --refit --set reg=0.001")


def test_time_to_quality_reads_each_runs_settings_and_counts_the_target_within_its_budget(
        tmp_path):
    """Runs trained apart are summarised with their own threads, budget and settings, and
    a selected epoch that ended past the budget does not reach the target."""
    from ssgraphrec.bench.studies.time_to_quality import markdown, summarise

    _fake_run(tmp_path / "in-budget", [20.0, 40.0, 59.0, 61.5], best=3, recall=0.1830)
    _fake_run(tmp_path / "past-budget", [30.0, 61.2], best=2, recall=0.1830, threads=1)
    _fake_run(tmp_path / "below", [30.0, 59.0], best=2, recall=0.1823)
    rows = {name: summarise(name, tmp_path / name, target=0.1824)
            for name in ("in-budget", "past-budget", "below")}
    assert rows["in-budget"]["reaches_target"] and rows["in-budget"]["minutes_at_best_epoch"] == 59.0
    assert not rows["past-budget"]["reaches_target"]          # 0.1830 >= 0.1824, at minute 61.2
    assert not rows["below"]["reaches_target"]
    assert rows["in-budget"]["threads"] == 2 and rows["past-budget"]["threads"] == 1
    assert rows["in-budget"]["max_minutes"] == 60.0
    assert rows["in-budget"]["user_settings"] == {"eps": 0.1, "lr": 0.002, "reg": 0.001}
    table = markdown({"dataset": "gowalla", "command": "c", "date": "d", "seed": 2020,
                      "minutes": 60.0, "threads": 1, "target": 0.1824, "target_source": "s",
                      "methods": list(rows.values())})
    assert "| past-budget | eps 0.1, lr 0.002, reg 0.001 | 1 | 60.0 | 2 |" in table
