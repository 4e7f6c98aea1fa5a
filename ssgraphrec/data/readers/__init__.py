"""Readers: one module per published file format, each returning a RawDataset."""

from .base import Interactions, RawDataset
from .clicklog import read_clicklog
from .line_format import read_line_format
from .pickle_sessions import RestrictedUnpickler, load_restricted, read_pickle_sessions
from .recbole import read_recbole
from .s3rec import read_s3rec
from .triples import read_triple_dataset, read_triple_split

__all__ = ["Interactions", "RawDataset", "RestrictedUnpickler", "load_restricted", "read_clicklog",
           "read_line_format", "read_pickle_sessions", "read_recbole", "read_s3rec",
           "read_triple_dataset", "read_triple_split"]
