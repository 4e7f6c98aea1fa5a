"""Methods: one file per method, composing transforms, encoders and losses."""

from .base import METHODS, BPRBatch, Method, MethodConfig, register_method
from .lightgcn import LightGCN, LightGCNConfig
from .mhcn import MHCN, MHCNConfig
from .mostpop import MostPop
from .ncl import NCL, NCLConfig
from .sgl import SGL, SGLConfig
from .simgcl import SimGCL, SimGCLConfig
from .xsimgcl import XSimGCL, XSimGCLConfig

__all__ = ["METHODS", "BPRBatch", "LightGCN", "LightGCNConfig", "MHCN", "MHCNConfig", "Method",
           "MethodConfig",
           "MostPop", "NCL", "NCLConfig", "SGL", "SGLConfig", "SimGCL", "SimGCLConfig", "XSimGCL",
           "XSimGCLConfig", "register_method"]
