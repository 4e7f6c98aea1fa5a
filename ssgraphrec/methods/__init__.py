"""Methods: one file per method, composing transforms, encoders and losses."""

from .base import METHODS, BPRBatch, Method, MethodConfig, register_method
from .cl4srec import CL4SRec, CL4SRecConfig
from .dhcn import DHCN, DHCNConfig
from .lightgcn import LightGCN, LightGCNConfig
from .mhcn import MHCN, MHCNConfig
from .mostpop import MostPop
from .ncl import NCL, NCLConfig
from .sasrec import SASRec, SASRecConfig
from .sgl import SGL, SGLConfig
from .simgcl import SimGCL, SimGCLConfig
from .xsimgcl import XSimGCL, XSimGCLConfig

__all__ = ["METHODS", "BPRBatch", "CL4SRec", "CL4SRecConfig", "DHCN", "DHCNConfig",
           "LightGCN", "LightGCNConfig", "MHCN",
           "MHCNConfig", "Method", "MethodConfig", "MostPop", "NCL", "NCLConfig", "SASRec",
           "SASRecConfig", "SGL", "SGLConfig", "SimGCL", "SimGCLConfig", "XSimGCL", "XSimGCLConfig",
           "register_method"]
