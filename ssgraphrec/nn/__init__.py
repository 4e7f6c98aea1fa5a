"""Encoders and heads."""

from .lightgcn import LightGCNEncoder

__all__ = ["LightGCNEncoder"]
