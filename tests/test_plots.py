"""Run curves: every run writes curves.png; ``ssgraphrec plot`` overlays runs."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from ssgraphrec.cli import main
from ssgraphrec.errors import SSGraphRecError
from ssgraphrec.plots import draw_runs, read_curves

pytest.importorskip("matplotlib")

PNG = b"\x89PNG\r\n\x1a\n"


def fake_run(folder, epochs=4, val=True, monitor="ndcg@20", seconds=None):
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(f"monitor: {monitor}\n")
    lines = [json.dumps({"phase": "pretrain", "pretrain_epoch": 1, "loss": {"mask": 2.0}})]
    for e in range(1, epochs + 1):
        record = {"epoch": e, "loss": {"bpr": 0.7 / e, "reg": 1e-4 * e}}
        if seconds is not None:
            record["elapsed_s"] = seconds * e
        if val:
            record["val"] = {monitor: 0.1 * e if e < 3 else 0.35 - 0.01 * e, "users_evaluated": 9}
        lines.append(json.dumps(record))
    (folder / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    return folder


def test_curves_are_read_from_the_metrics_of_joint_epochs(tmp_path):
    curves = read_curves(fake_run(tmp_path / "a"))
    assert curves.epochs == [1, 2, 3, 4] and curves.val_epochs == [1, 2, 3, 4]
    assert curves.losses["bpr"] == pytest.approx([0.7, 0.35, 0.7 / 3, 0.175])
    assert "mask" not in curves.losses                     # pre-training records left out
    assert curves.val["ndcg@20"] == pytest.approx([0.1, 0.2, 0.32, 0.31])
    assert curves.selected() == 3                          # the best ndcg@20, the monitor
    curves.val["recall@20"] = [0.4, 0.1, 0.1, 0.1]          # another metric does not select
    assert curves.selected() == 3
    assert read_curves(fake_run(tmp_path / "b", val=False)).selected() is None
    with pytest.raises(SSGraphRecError, match="no metrics.jsonl"):
        read_curves(tmp_path)


def test_plot_overlays_runs_in_one_png(tmp_path):
    a, b = fake_run(tmp_path / "a"), fake_run(tmp_path / "b", val=False)
    out = tmp_path / "both.png"
    result = CliRunner().invoke(main, ["plot", str(a), str(b), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:8] == PNG and out.stat().st_size > 10_000
    bad = CliRunner().invoke(main, ["plot", str(tmp_path / "missing")])
    assert bad.exit_code == 1 and "no metrics.jsonl" in bad.output


def test_the_log_scale_of_the_loss_terms_is_labelled_in_plain_text(tmp_path):
    # mathtext labels (the default of a log axis) would build their parser in every run
    fig = draw_runs([read_curves(fake_run(tmp_path / "a"))])
    left = fig.axes[0]
    assert left.get_yscale() == "log"
    fig.canvas.draw()
    labels = [t.get_text().replace("\u2212", "-")           # matplotlib's minus sign
              for t in left.get_yticklabels() if t.get_text()]
    assert "1e-01" in labels and "1e-03" in labels, labels
    assert not any("$" in label for label in labels), labels


def test_plot_against_minutes_reads_the_elapsed_time_of_each_epoch(tmp_path):
    a = fake_run(tmp_path / "a", seconds=30.0)
    assert read_curves(a).minutes == [0.5, 1.0, 1.5, 2.0]
    assert read_curves(a).x("minutes", [2, 4]) == [1.0, 2.0]
    b = fake_run(tmp_path / "b", seconds=90.0)
    out = tmp_path / "t.png"
    result = CliRunner().invoke(main, ["plot", str(a), str(b), "--x", "minutes", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:8] == PNG
    old = fake_run(tmp_path / "old")                    # records without elapsed_s
    result = CliRunner().invoke(main, ["plot", str(old), "--x", "minutes", "--out", str(out)])
    assert result.exit_code == 1 and "records no elapsed time per epoch" in result.output


def test_a_training_run_writes_its_curves(tmp_path):
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["train", "--method", "lightgcn", "--epochs", "2",
                                       "--no-progress", "--out", str(out), "--set", "emb_dim=8"])
    assert result.exit_code == 0, result.output
    assert (out / "curves.png").read_bytes()[:8] == PNG


def test_a_png_that_cannot_be_written_is_one_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = CliRunner().invoke(main, ["plot", str(fake_run(tmp_path / "a")), "--out",
                                       str(blocker / "x.png")])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    assert f"cannot write {blocker / 'x.png'}" in result.output
