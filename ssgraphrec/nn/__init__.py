"""Encoders and heads."""

from .dhcn import DHCNEncoder, SoftAttentionReadout
from .feature_clustering import FeatureClustering
from .kmeans import KMeansResult, kmeans
from .lightgcn import LightGCNEncoder
from .mhcn import ChannelAttention, MHCNEncoder, SelfGating
from .noise_offsets import noise_offsets
from .perturb import UniformNoise, row_column_shuffle, row_shuffle, uniform_draw, uniform_noise
from .sequence import SASRecEncoder

__all__ = ["ChannelAttention", "DHCNEncoder", "KMeansResult", "LightGCNEncoder", "MHCNEncoder",
           "SASRecEncoder", "SelfGating", "SoftAttentionReadout", "UniformNoise", "kmeans",
           "noise_offsets", "row_column_shuffle", "row_shuffle", "uniform_draw", "uniform_noise"]
__all__ += ["FeatureClustering"]
