"""Compose augmentations in a PyG pipeline, then train SGL on the views they draw.

    python examples/compose_transforms.py

Every augmentation is a ``torch_geometric.transforms.BaseTransform``: ``T.Compose``
chains them, each returns a new HeteroData and never changes its input, and a seeded
``torch.Generator`` makes a view repeatable. ``ssgraphrec augs`` lists them all.
"""

from __future__ import annotations

import tempfile

import torch
import torch_geometric.transforms as T

from ssgraphrec.data import load_dataset
from ssgraphrec.data.schema import INTERACTS
from ssgraphrec.train import train
from ssgraphrec.transforms import EdgeDrop, NodeDrop, make_augmentation
from ssgraphrec.tuning.tuned import resolve_run_config

data = load_dataset("synthetic", seed=0)          # 2,000 users x 1,000 items, planted
edges = data[INTERACTS].edge_index.size(1)

generator = torch.Generator().manual_seed(0)
view = T.Compose([EdgeDrop(0.1, generator=generator), NodeDrop(0.05, generator=generator)])
augmented = view(data)
kept = augmented[INTERACTS].edge_index.size(1)
print(f"edge_drop(0.1) then node_drop(0.05): {kept:,} of {edges:,} training edges kept")
assert data[INTERACTS].edge_index.size(1) == edges            # the input is unchanged

# The same pipeline by name, as --aug edge_drop,node_drop builds it:
by_name = T.Compose([make_augmentation("edge_drop", p=0.1, generator=torch.Generator().manual_seed(0)),
                     make_augmentation("node_drop", p=0.05, generator=torch.Generator().manual_seed(0))])
print("by name:", by_name)

# SGL draws two such views per epoch and contrasts them. resolve_run_config gives the
# settings `ssgraphrec train` would use: the paper's, the small-data remedies, a tuned file.
with tempfile.TemporaryDirectory() as out:
    cfg, provenance = resolve_run_config([{"method": "sgl", "aug": "edge_drop,node_drop",
                                           "epochs": 15}])
    _, results = train(cfg, out, progress=False, provenance=provenance)
print(f"SGL with edge_drop,node_drop: test recall@20 {results['test']['recall@20']:.4f} "
      f"(MostPop {results['baseline']['test']['recall@20']:.4f})")
