"""S²-DHCN on the DHCN Tmall pickles, a bounded run (see docs/sessions.md).

The paper reports P@20 ≈ 31 % and MRR@20 ≈ 15 % on Tmall after full training;
MostPop gives 2.3 % and 1.0 % on the same test samples. One epoch over a seeded
2 % of the training samples (63 batches of 100) already gives about 27 % and
15 % (measured: 0.2703 and 0.1480, seed 2020).
"""

import os
from pathlib import Path

import pytest

from ssgraphrec.config import RunConfig
from ssgraphrec.train import train


def _data_root() -> Path:
    root = os.environ.get("SSGRAPHREC_DATA")
    if not root or not (Path(root) / "tmall" / "train.txt").is_file():
        pytest.skip("needs SSGRAPHREC_DATA with tmall/")
    return Path(root)


@pytest.mark.slow
@pytest.mark.realdata
def test_dhcn_on_a_fraction_of_tmall_far_above_popularity(tmp_path):
    root = str(_data_root())
    common = dict(dataset="tmall", data_root=root, device="cpu", seed=2020)
    _, pop = train(RunConfig(method="mostpop", epochs=0, **common), str(tmp_path / "pop"),
                   progress=False, log=lambda m: None)
    _, dhcn = train(RunConfig(method="dhcn", epochs=1, train_fraction=0.02, **common),
                    str(tmp_path / "dhcn"), progress=False, log=lambda m: None)
    assert pop["test"]["hit@20"] == pytest.approx(0.0232, abs=0.001)
    assert dhcn["task"] == "next_item" and dhcn["test"]["samples_evaluated"] == 25_898
    assert dhcn["test"]["hit@20"] > 0.22 and dhcn["test"]["mrr@20"] > 0.11
