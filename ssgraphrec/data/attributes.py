"""Side information as graph and tensor keys (DESIGN.md, "Data model").

Categorical features are graphs: a feature value is a node, an entity that
has the value is linked to it. Items: ``data['item','has','attr']`` with
``data['attr'].field`` (index into ``data.attr_fields``) and
``data['attr'].raw_id`` (``"field=value"``); users: ``data['user','has',
'user_attr']`` with ``data['user_attr'].field`` / ``.raw_id`` and
``data.user_attr_fields``. Dense item features are ``data['item'].x`` (float,
``[num_items, F]``) with ``data.item_feature_names``; a value missing in the
file is 0 there and ``data['item'].x_mask`` says which values were present.
Titles are ``data.item_titles`` (one string per item, ``""`` where the file
has none).

Entities of the side file that are not in the id space of the interactions
(an item never rated) are not part of the dataset and are left out; the
readers of files whose ids must all be known (S3-Rec attribute files) check
that themselves and raise a :class:`~ssgraphrec.errors.DataFormatError`.

User fields whose values are nearly unique (more distinct values than
``NEAR_UNIQUE`` of the users that have one, e.g. ml-100k's ``zip_code``: 795
values for 943 users) are an id in disguise, not a feature shared between
users: they are skipped and listed in ``data.user_attr_skipped``.
"""

from __future__ import annotations

import copy

import torch
from torch_geometric.data import HeteroData

from .ids import IdMap
from .schema import ATTR, HAS_ATTR, INTERACTS, ITEM, USER_ATTR, USER_HAS_ATTR, sort_pairs

NEAR_UNIQUE = 0.5


def add_attribute_graph(data: HeteroData, attributes: dict[str, dict[str, list[str]]],
                        ids: IdMap, node: str, edge: tuple[str, str, str],
                        fields_key: str) -> None:
    """Add ``attributes`` (field -> raw entity id -> values) as the graph ``edge``.

    Fields are sorted by name; value nodes are numbered in order of first
    appearance; ``data[node].field`` is the field index of each value node.
    """
    fields = sorted(attributes)
    values = IdMap()
    field_of: list[int] = []
    src: list[int] = []
    dst: list[int] = []
    for f_id, field in enumerate(fields):
        for raw_id, vals in attributes[field].items():
            entity = ids.index.get(raw_id)
            if entity is None:
                continue
            for v in vals:
                key = f"{field}={v}"
                if key not in values.index:
                    field_of.append(f_id)
                src.append(entity)
                dst.append(int(values.add([key])[0]))
    data[node].num_nodes = len(values)
    data[node].field = torch.tensor(field_of, dtype=torch.long)
    data[node].raw_id = values.raw
    data[fields_key] = fields
    edges = torch.tensor([src, dst], dtype=torch.long).view(2, -1)
    data[edge].edge_index = sort_pairs(edges, max(len(values), 1))


def add_item_attributes(data: HeteroData, attributes: dict[str, dict[str, list[str]]],
                        items: IdMap) -> None:
    """The ``('item','has','attr')`` graph with ``data.attr_fields``."""
    add_attribute_graph(data, attributes, items, ATTR, HAS_ATTR, "attr_fields")


def add_user_attributes(data: HeteroData, attributes: dict[str, dict[str, list[str]]],
                        users: IdMap) -> None:
    """The ``('user','has','user_attr')`` graph with ``data.user_attr_fields``.

    Nearly unique fields are skipped (module docstring) and named in
    ``data.user_attr_skipped``.
    """
    keep, skipped = {}, []
    for field, rows in attributes.items():
        known = [v for r, vals in rows.items() if r in users.index for v in vals]
        if known and len(set(known)) > NEAR_UNIQUE * len(known):
            skipped.append(field)
        else:
            keep[field] = rows
    data.user_attr_skipped = sorted(skipped)
    add_attribute_graph(data, keep, users, USER_ATTR, USER_HAS_ATTR, "user_attr_fields")


def add_item_features(data: HeteroData, features: dict[str, dict[str, float]],
                      items: IdMap) -> None:
    """Dense ``data['item'].x`` from float fields (sorted by name), with ``x_mask``."""
    names = sorted(features)
    n = len(items)
    x = torch.zeros(n, len(names))
    present = torch.zeros(n, len(names), dtype=torch.bool)
    for k, name in enumerate(names):
        rows = [(items.index[r], v) for r, v in features[name].items() if r in items.index]
        if rows:
            idx = torch.tensor([r for r, _ in rows], dtype=torch.long)
            x[idx, k] = torch.tensor([v for _, v in rows], dtype=torch.float)
            present[idx, k] = True
    data[ITEM].x = x
    data[ITEM].x_mask = present
    data.item_feature_names = names


def add_item_titles(data: HeteroData, titles: dict[str, str], items: IdMap) -> None:
    """``data.item_titles``: the title of each item, ``""`` where there is none."""
    data.item_titles = [titles.get(r, "") for r in items.raw]


ID_FIELD = "item_id"


def with_id_field(data: HeteroData) -> HeteroData:
    """A shallow copy of ``data`` whose item-attribute graph has one more field, the item ID.

    Yao et al. (CIKM 2021, Sec. 4.1) count the item ID among the features an
    augmentation masks; as a field of the graph (value node ``num_attrs + i``
    for item ``i``, raw id ``"item_id=<raw item id>"``), field masking and
    dropout reach it like any other feature. Data without attributes get the
    ID as their only field.
    """
    out = copy.copy(data)
    n_items = int(data[ITEM].num_nodes)
    device = data[INTERACTS].edge_index.device if INTERACTS in data.edge_types else None
    if HAS_ATTR in data.edge_types:
        n_attr = int(data[ATTR].num_nodes)
        edges, field = data[HAS_ATTR].edge_index, data[ATTR].field
        fields, raw = list(data.attr_fields), list(data[ATTR].raw_id)
        device = edges.device
    else:
        n_attr, fields, raw = 0, [], []
        edges = torch.zeros(2, 0, dtype=torch.long, device=device)
        field = torch.zeros(0, dtype=torch.long, device=device)
    items = torch.arange(n_items, device=device)
    id_edges = torch.stack([items, items + n_attr])
    out[ATTR].num_nodes = n_attr + n_items
    out[ATTR].field = torch.cat([field, torch.full((n_items,), len(fields), device=device)])
    out[ATTR].raw_id = raw + [f"{ID_FIELD}={r}" for r in data[ITEM].raw_id]
    out.attr_fields = fields + [ID_FIELD]
    out[HAS_ATTR].edge_index = sort_pairs(torch.cat([edges, id_edges], dim=1), n_attr + n_items)
    return out


__all__ = ["ID_FIELD", "NEAR_UNIQUE", "with_id_field", "USER_ATTR", "USER_HAS_ATTR", "add_attribute_graph",
           "add_item_attributes", "add_item_features", "add_item_titles", "add_user_attributes"]
