"""Feature augmentations: exact effects on the item-attribute graph and on item.x."""

import math

import pytest
import torch
import torch_geometric.transforms as T
from torch_geometric.data import HeteroData

from ssgraphrec.data.schema import ATTR, HAS_ATTR, ITEM
from ssgraphrec.errors import ConfigError
from ssgraphrec.transforms import (
    CategoricalDropout,
    CorrelatedFieldMask,
    FeatureDropout,
    FeatureMix,
    FeatureShuffle,
    FieldMask,
    field_mutual_information,
    make_augmentation,
)


def graph(edges, fields, field_names, num_items, x=None):
    data = HeteroData()
    data[ITEM].num_nodes = num_items
    data[ATTR].num_nodes = len(fields)
    data[ATTR].field = torch.tensor(fields)
    data.attr_fields = field_names
    data[HAS_ATTR].edge_index = torch.tensor(edges).t().contiguous()
    if x is not None:
        data[ITEM].x = x
    data.name = "toy"
    return data


@pytest.fixture
def toy():
    # Values 0-2: genre (field 0); 3-4: year (field 1); 5: brand (field 2).
    # Item 0: genres 0, 1, year 3, brand 5; item 1: genre 2, year 4; item 2: genre 0.
    edges = [(0, 0), (0, 1), (0, 3), (0, 5), (1, 2), (1, 4), (2, 0)]
    return graph(edges, [0, 0, 0, 1, 1, 2], ["genre", "year", "brand"], 3,
                 x=torch.arange(6, dtype=torch.float).view(3, 2) + 1)


def pairs(data):
    return set(map(tuple, data[HAS_ATTR].edge_index.t().tolist()))


def test_named_field_mask_drops_exactly_that_fields_edges(toy):
    before = toy[HAS_ATTR].edge_index.clone()
    view = FieldMask(["genre", "brand"])(toy)
    assert pairs(view) == {(0, 3), (1, 4)}
    assert torch.equal(toy[HAS_ATTR].edge_index, before)  # the input is not mutated


def test_random_field_mask_pair_is_complementary_per_item(toy):
    masks = FieldMask(p=0.5, generator=torch.Generator().manual_seed(0)).masks(toy)
    assert masks.sum(1).tolist() == [2, 2, 2]  # round(0.5 * 3) = 2 of 3 fields per item
    a, b = FieldMask(p=0.5, generator=torch.Generator().manual_seed(0)).pair(toy)  # same draw
    assert pairs(a) | pairs(b) == pairs(toy) and not pairs(a) & pairs(b)
    field = toy[ATTR].field
    for i, v in pairs(a):
        assert not masks[i, field[v]]


def test_field_mask_errors(toy):
    with pytest.raises(ConfigError, match="no attribute field 'colour'.*genre, year, brand"):
        FieldMask(["colour"])(toy)
    for bad in (1.0, -0.1):
        with pytest.raises(ConfigError, match=r"\[0, 1\)"):
            FieldMask(p=bad)
    with pytest.raises(ConfigError, match="needs item attributes"):
        FieldMask().masks(HeteroData(item={"num_nodes": 2}))


def correlated():
    # Fields a, b copy each other (b = a), fields c, d copy each other and are
    # independent of a: over 4 items, a = (0, 0, 1, 1), c = (0, 1, 0, 1).
    a, c = [0, 0, 1, 1], [0, 1, 0, 1]
    edges = [(i, a[i]) for i in range(4)] + [(i, 2 + a[i]) for i in range(4)] + \
        [(i, 4 + c[i]) for i in range(4)] + [(i, 6 + c[i]) for i in range(4)]
    return graph(edges, [0, 0, 1, 1, 2, 2, 3, 3], ["a", "b", "c", "d"], 4)


def test_mutual_information_hand_computed():
    mi = field_mutual_information(correlated())
    assert mi[0, 1].item() == pytest.approx(math.log(2), abs=1e-6)
    assert mi[2, 3].item() == pytest.approx(math.log(2), abs=1e-6)
    assert mi[0, 2].item() == pytest.approx(0.0, abs=1e-6)
    assert torch.allclose(mi, mi.t())


def test_correlated_field_mask_keeps_correlated_fields_together():
    data = correlated()
    cfm = CorrelatedFieldMask(p=0.5, generator=torch.Generator().manual_seed(0))
    groups = cfm.groups(data)
    assert groups.tolist() == [[True, True, False, False], [True, True, False, False],
                               [False, False, True, True], [False, False, True, True]]
    masks = cfm.masks(data)
    assert all(row in ([True, True, False, False], [False, False, True, True])
               for row in masks.tolist())
    a, b = cfm.pair(data)
    assert pairs(a) | pairs(b) == pairs(data) and not pairs(a) & pairs(b)


def test_categorical_dropout_thins_only_multi_valued_fields(toy):
    view = CategoricalDropout(0.99, generator=torch.Generator().manual_seed(0))(toy)
    kept = pairs(view)
    # Single-valued (item, field) pairs stay; of item 0's two genres exactly one stays.
    assert {(0, 3), (0, 5), (1, 2), (1, 4), (2, 0)} <= kept
    assert len(kept & {(0, 0), (0, 1)}) == 1
    assert pairs(CategoricalDropout(0.0)(toy)) == pairs(toy)


def test_feature_dropout_drops_edges_and_zeroes_entries(toy):
    gen = torch.Generator().manual_seed(0)
    view = FeatureDropout(0.5, generator=gen)(toy)
    assert pairs(view) < pairs(toy)
    x, x0 = view[ITEM].x, toy[ITEM].x
    assert ((x == 0) | (x == x0)).all() and (x == 0).any()
    same = FeatureDropout(0.0)(toy)
    assert pairs(same) == pairs(toy) and torch.equal(same[ITEM].x, x0)


def test_feature_shuffle_rows_gives_each_item_another_items_features(toy):
    view = FeatureShuffle(rows=True, cols=False, generator=torch.Generator().manual_seed(1))(toy)
    sets = lambda d: [frozenset(v for i, v in pairs(d) if i == k) for k in range(3)]  # noqa: E731
    before, after = sets(toy), sets(view)
    rows_x = [toy[ITEM].x.tolist().index(r) for r in view[ITEM].x.tolist()]
    assert sorted(rows_x) == [0, 1, 2]
    assert after == [before[j] for j in rows_x]  # edges and x follow the same permutation


def test_feature_shuffle_cols_keeps_values_in_their_field(toy):
    view = FeatureShuffle(rows=False, cols=True, generator=torch.Generator().manual_seed(2))(toy)
    field = toy[ATTR].field
    before = sorted((i, int(field[v])) for i, v in pairs(toy))
    assert sorted((i, int(field[v])) for i, v in pairs(view)) == before
    assert sorted(view[ITEM].x.view(-1).tolist()) == sorted(toy[ITEM].x.view(-1).tolist())


def test_feature_mix_interpolates_with_a_partner(toy):
    mix = FeatureMix(alpha=0.4, generator=torch.Generator().manual_seed(3))
    view = mix(toy)
    lam = mix.last_lambda
    x, x0 = view[ITEM].x, toy[ITEM].x
    # Each row is lam * own + (1 - lam) * another row: solve for the partner and check.
    for i in range(3):
        ok = [torch.allclose(x[i], lam[i] * x0[i] + (1 - lam[i]) * x0[j], atol=1e-5) for j in range(3)]
        assert any(ok)
    assert pairs(view) <= {(i, v) for i in range(3) for _, v in pairs(toy)}


def test_feature_augmentations_compose_and_are_registered(toy):
    gen = torch.Generator().manual_seed(0)
    pipe = T.Compose([make_augmentation("field_mask", fields=["brand"]),
                      make_augmentation("categorical_dropout", p=0.5, generator=gen)])
    view = pipe(toy)
    assert not any(v == 5 for _, v in pairs(view))
    for name in ("feature_dropout", "correlated_field_mask", "feature_shuffle", "feature_mix"):
        assert make_augmentation(name, generator=gen).name == name
