"""Leaderboards: ``ssgraphrec bench quality`` and ``ssgraphrec bench speed``.

``quality`` trains every (dataset, method, seed) cell alike and tables test
Recall@20 / NDCG@20 (mean ± std over seeds) beside published figures
(:mod:`.references`); ``speed`` times epochs and evaluation and measures peak
memory per method. See ``docs/benchmarks.md``.
"""

from .quality import QualitySpec, run_quality
from .references import REFERENCES, Protocol, Reference, lookup
from .speed import SpeedSpec, run_speed
from .table import CellResult, aggregate, mean_std

__all__ = ["REFERENCES", "CellResult", "Protocol", "QualitySpec", "Reference", "SpeedSpec",
           "aggregate", "lookup", "mean_std", "run_quality", "run_speed"]
