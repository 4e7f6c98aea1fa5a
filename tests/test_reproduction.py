"""Published figures on lastfm/split-80-20 (see that folder's README).

Protocol: the fixed 80/20 split, no validation carve-out (the last epoch is
reported), test items never seen in training dropped, full ranking over the
15,425 training items. SELFRec reaches 0.1077 (MostPop), 0.2075 (LightGCN,
3 layers, 40 epochs) and 0.3008 (SGL-ED, 2 layers, 40 epochs) Recall@20.
"""

import os
from pathlib import Path

import pytest

from ssgraphrec.config import RunConfig
from ssgraphrec.train import train


def _data_root() -> Path:
    root = os.environ.get("SSGRAPHREC_DATA")
    if not root or not (Path(root) / "lastfm" / "split-80-20").is_dir():
        pytest.skip("needs SSGRAPHREC_DATA with lastfm/split-80-20")
    return Path(root)


def _run(tmp_path, method, epochs, **params):
    cfg = RunConfig(method=method, dataset="lastfm-80-20", data_root=str(_data_root()),
                    val_ratio=0.0, epochs=epochs, batch_size=2048, device="cpu",
                    params=params)
    _, results = train(cfg, str(tmp_path / method), progress=False, log=lambda m: None)
    return results


@pytest.mark.realdata
def test_mostpop_matches_the_published_check_value(tmp_path):
    res = _run(tmp_path, "mostpop", 0)
    assert res["data"]["test_dropped_unseen"] == 2308
    assert res["test"]["recall@20"] == pytest.approx(0.1077, abs=0.0006)
    assert res["test"]["ndcg@20"] == pytest.approx(0.0991, abs=0.0006)
    assert res["selection"].startswith("last epoch")


@pytest.mark.slow
@pytest.mark.realdata
def test_lightgcn_40_epochs_reaches_the_target(tmp_path):
    res = _run(tmp_path, "lightgcn", 40, num_layers=3)
    assert res["test"]["recall@20"] >= 0.19


@pytest.mark.slow
@pytest.mark.realdata
def test_sgl_edge_drop_40_epochs_reaches_the_target(tmp_path):
    res = _run(tmp_path, "sgl", 40, num_layers=2, aug="edge_drop")
    assert res["test"]["recall@20"] >= 0.28
