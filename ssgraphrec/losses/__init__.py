"""Losses, one per file."""

from .bpr import bpr_loss
from .contrastive import InfoNCE, info_nce
from .cross_channel_mim import cross_channel_mim_loss
from .hierarchical_mim import hierarchical_mim_loss
from .memory_bank import MemoryBank
from .proto_nce import proto_nce
from .reconstruction import cosine_reconstruction, cosine_reconstruction_loss
from .regularization import l2_regularization, parameter_l2
from .sampled_softmax import log_q_of_items, sampled_softmax

__all__ = ["bpr_loss", "cosine_reconstruction", "cosine_reconstruction_loss",
           "cross_channel_mim_loss", "hierarchical_mim_loss", "info_nce",
           "l2_regularization", "parameter_l2",
           "proto_nce"]
__all__ += ["InfoNCE", "MemoryBank", "log_q_of_items", "sampled_softmax"]
