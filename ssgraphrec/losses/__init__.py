"""Losses, one per file."""

from .bpr import bpr_loss
from .infonce import info_nce
from .proto_nce import proto_nce
from .regularization import l2_regularization

__all__ = ["bpr_loss", "info_nce", "l2_regularization", "proto_nce"]
