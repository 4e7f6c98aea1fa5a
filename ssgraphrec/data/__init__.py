"""Data: readers for real formats, splits, samplers, the synthetic default, the registry."""

from .build import build_dataset
from .registry import DATASETS, data_dir, load_dataset, register_dataset
from .sampler import NegativeSampler, bpr_batches
from .schema import (
    ATTR,
    CONTAINS,
    FOLLOWS,
    HAS_ATTR,
    INTERACTS,
    ITEM,
    SESSION,
    USER,
    interaction_data,
    summary,
)
from .sessions import carve_validation, prefix_samples, session_data, session_pointer, to_padded
from .synthetic import SyntheticConfig, make_synthetic, social_from_networkx

__all__ = ["ATTR", "CONTAINS", "DATASETS", "FOLLOWS", "HAS_ATTR", "INTERACTS", "ITEM", "SESSION",
           "USER", "NegativeSampler", "SyntheticConfig", "bpr_batches", "build_dataset",
           "carve_validation", "data_dir", "interaction_data", "load_dataset", "make_synthetic",
           "prefix_samples", "register_dataset", "session_data", "session_pointer",
           "social_from_networkx", "summary", "to_padded"]
