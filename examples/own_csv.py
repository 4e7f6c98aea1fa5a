"""Train on your own CSV of interactions.

    python examples/own_csv.py [interactions.csv]

A CSV with a header that names a user and an item column (``user_id,item_id``, and
optionally ``rating`` and ``timestamp``) is read as interactions and split per user at
random (80:20, with 10 % of training held out for validation). Without an argument
the example writes such a file from the synthetic data first. The same from the
command line:

    ssgraphrec train --method lightgcn --dataset interactions.csv --epochs 20
    ssgraphrec recommend runs/<run> --all --out recs.csv
"""

from __future__ import annotations

import csv
import sys
import tempfile
from pathlib import Path

from ssgraphrec.config import RunConfig
from ssgraphrec.data.synthetic import SyntheticConfig, make_synthetic
from ssgraphrec.train import train
from ssgraphrec.train.recommend import recommend_all
from ssgraphrec.train.run import load_run


def write_example_csv(path: Path) -> Path:
    raw = make_synthetic(SyntheticConfig(num_users=500, num_items=300, social=False), seed=1)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["user_id", "item_id", "timestamp"])
        for u, i, t in zip(raw.interactions.user, raw.interactions.item, raw.interactions.time,
                           strict=True):
            writer.writerow([f"user{u}", f"item{i}", int(1_700_000_000 + t * 1e6)])
    return path


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(sys.argv[1]) if len(sys.argv) > 1 else write_example_csv(
            Path(tmp) / "interactions.csv")
        run_dir, results = train(RunConfig(method="lightgcn", dataset=str(data), epochs=10,
                                           lr=5e-3), str(Path(tmp) / "run"), progress=False)
        print(f"lightgcn on {data.name}: test recall@20 {results['test']['recall@20']:.4f} "
              f"(MostPop {results['baseline']['test']['recall@20']:.4f})")
        done = recommend_all(load_run(run_dir), Path(tmp) / "recs.csv", k=10, progress=False)
        print(f"wrote {done['rows']:,} recommendations for {done['users']:,} users")
        print((Path(tmp) / "recs.csv").read_text().splitlines()[:3])
