"""Methods: one file per method, composing transforms, encoders and losses."""

from .base import METHODS, BPRBatch, Method, MethodConfig, register_method
from .bigi import BiGI, BiGIConfig
from .cl4srec import CL4SRec, CL4SRecConfig
from .clrec import CLRec, CLRecConfig
from .dhcn import DHCN, DHCNConfig
from .gptgnn import GPTGNN, GPTGNNConfig
from .lightgcn import LightGCN, LightGCNConfig
from .mhcn import MHCN, MHCNConfig
from .micrec import MicRec, MicRecConfig
from .mostpop import MostPop
from .ncl import NCL, NCLConfig
from .ptgnn import PTGNN, PTGNNConfig
from .sasrec import SASRec, SASRecConfig
from .sgl import SGL, SGLConfig
from .simgcl import SimGCL, SimGCLConfig
from .ssl4rec import SSL4Rec, SSL4RecConfig
from .twotower import TwoTower, TwoTowerConfig
from .xsimgcl import XSimGCL, XSimGCLConfig

__all__ = ["METHODS", "BPRBatch", "BiGI", "BiGIConfig", "CL4SRec", "CL4SRecConfig", "DHCN", "DHCNConfig",
           "LightGCN", "LightGCNConfig", "MHCN",
           "MHCNConfig", "Method", "MethodConfig", "MostPop", "NCL", "NCLConfig", "SASRec",
           "SASRecConfig", "SGL", "SGLConfig", "SimGCL", "SimGCLConfig", "XSimGCL", "XSimGCLConfig",
           "PTGNN", "PTGNNConfig", "GPTGNN", "GPTGNNConfig", "register_method"]
__all__ += ["CLRec", "CLRecConfig", "SSL4Rec", "SSL4RecConfig", "TwoTower", "TwoTowerConfig"]
__all__ += ["MicRec", "MicRecConfig"]
