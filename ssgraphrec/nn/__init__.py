"""Encoders and heads."""

from .kmeans import KMeansResult, kmeans
from .lightgcn import LightGCNEncoder
from .mhcn import ChannelAttention, MHCNEncoder, SelfGating
from .perturb import UniformNoise, row_column_shuffle, row_shuffle, uniform_noise

__all__ = ["ChannelAttention", "KMeansResult", "LightGCNEncoder", "MHCNEncoder", "SelfGating",
           "UniformNoise", "kmeans", "row_column_shuffle",
           "row_shuffle", "uniform_noise"]
