"""Losses, one per file."""

from .bpr import bpr_loss
from .hierarchical_mim import hierarchical_mim_loss
from .infonce import info_nce
from .proto_nce import proto_nce
from .regularization import l2_regularization

__all__ = ["bpr_loss", "hierarchical_mim_loss", "info_nce", "l2_regularization", "proto_nce"]
