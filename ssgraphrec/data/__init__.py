"""Data: readers for real formats, splits, samplers, the synthetic default, the registry."""

from .build import build_dataset
from .registry import DATASETS, data_dir, load_dataset, register_dataset
from .sampler import NegativeSampler, bpr_batches
from .schema import ATTR, FOLLOWS, HAS_ATTR, INTERACTS, ITEM, USER, interaction_data, summary
from .synthetic import SyntheticConfig, make_synthetic, social_from_networkx

__all__ = ["ATTR", "DATASETS", "FOLLOWS", "HAS_ATTR", "INTERACTS", "ITEM", "USER",
           "NegativeSampler", "SyntheticConfig", "bpr_batches", "build_dataset", "data_dir",
           "interaction_data", "load_dataset", "make_synthetic", "register_dataset",
           "social_from_networkx", "summary"]
