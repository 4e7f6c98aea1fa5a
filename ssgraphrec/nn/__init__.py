"""Encoders and heads."""

from .kmeans import KMeansResult, kmeans
from .lightgcn import LightGCNEncoder
from .perturb import UniformNoise, row_column_shuffle, row_shuffle, uniform_noise

__all__ = ["KMeansResult", "LightGCNEncoder", "UniformNoise", "kmeans", "row_column_shuffle",
           "row_shuffle", "uniform_noise"]
