"""Methods: one file per method, composing transforms, encoders and losses."""

from .base import METHODS, BPRBatch, Method, MethodConfig, register_method
from .lightgcn import LightGCN, LightGCNConfig
from .mostpop import MostPop
from .sgl import SGL, SGLConfig

__all__ = ["METHODS", "BPRBatch", "LightGCN", "LightGCNConfig", "Method", "MethodConfig",
           "MostPop", "SGL", "SGLConfig", "register_method"]
