"""Evaluation: full-ranking metrics."""

from .metrics import METRICS, ranking_metrics
from .ranking import dot_scores, evaluate_ranking

__all__ = ["METRICS", "dot_scores", "evaluate_ranking", "ranking_metrics"]
