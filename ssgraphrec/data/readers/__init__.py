"""Readers: one module per published file format, each returning a RawDataset."""

from .base import Interactions, RawDataset
from .line_format import read_line_format
from .recbole import read_recbole
from .triples import read_triple_dataset, read_triple_split

__all__ = ["Interactions", "RawDataset", "read_line_format", "read_recbole",
           "read_triple_dataset", "read_triple_split"]
