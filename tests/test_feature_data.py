"""Feature data keys: user attributes, dense item features, titles, the ID field, and the
ranking view of S3-Rec sequences."""

import json

import pytest
import torch

from ssgraphrec.data import build_dataset, load_dataset
from ssgraphrec.data.attributes import USER_ATTR, USER_HAS_ATTR, with_id_field
from ssgraphrec.data.readers import read_recbole
from ssgraphrec.data.readers.s3rec_ranking import read_s3rec_interactions
from ssgraphrec.data.schema import ATTR, HAS_ATTR, INTERACTS, ITEM, USER
from ssgraphrec.errors import DataFormatError
from ssgraphrec.train.run import _view_for

INTER = ("user_id:token\titem_id:token\ttimestamp:float\n"
         "u1\t10\t1\nu1\t20\t2\nu2\t20\t3\nu3\t30\t4\nu3\t10\t5\nu4\t10\t6\n")
ITEMS = ("item_id:token\tmovie_title:token_seq\tclass:token_seq\tprice:float\n"
         "10\tToy Story\tAnimation Comedy\t1.5\n20\tHeat\tAction\t\n30\tUp\tAnimation\t3\n")
USERS = ("user_id:token\tgender:token\toccupation:token\tzip_code:token\n"
         "u1\tF\tnurse\t111\nu2\tM\tnurse\t222\nu3\tF\tartist\t333\nu4\tM\tnurse\t444\n"
         "u9\tF\tpoet\t999\n")


@pytest.fixture
def recbole(write, tmp_path):
    write("ml/ml.inter", INTER)
    write("ml/ml.item", ITEMS)
    write("ml/ml.user", USERS)
    return build_dataset(read_recbole(tmp_path / "ml"), test_ratio=0.0, val_ratio=0.0)


def test_user_attributes_become_the_user_attribute_graph(recbole):
    data = recbole
    # zip_code: 4 distinct values for 4 users, an id in disguise, skipped; u9 never
    # interacts, so is not a user of the dataset.
    assert data.user_attr_fields == ["gender", "occupation"]
    assert data.user_attr_skipped == ["zip_code"]
    users, attrs = data[USER].raw_id, data[USER_ATTR].raw_id
    links = {(users[u], attrs[a]) for u, a in data[USER_HAS_ATTR].edge_index.t().tolist()}
    assert links == {("u1", "gender=F"), ("u1", "occupation=nurse"), ("u2", "gender=M"),
                     ("u2", "occupation=nurse"), ("u3", "gender=F"), ("u3", "occupation=artist"),
                     ("u4", "gender=M"), ("u4", "occupation=nurse")}
    fields = [data.user_attr_fields[f] for f in data[USER_ATTR].field.tolist()]
    assert fields == [a.split("=")[0] for a in attrs]


def test_float_fields_become_item_x_and_titles_are_kept(recbole):
    data = recbole
    items = data[ITEM].raw_id
    assert data.item_feature_names == ["price"]
    x = {items[i]: data[ITEM].x[i].tolist() for i in range(len(items))}
    present = {items[i]: data[ITEM].x_mask[i].tolist() for i in range(len(items))}
    assert x == {"10": [1.5], "20": [0.0], "30": [3.0]}
    assert present == {"10": [True], "20": [False], "30": [True]}
    assert [data.item_titles[i] for i in range(3)] == [{"10": "Toy Story", "20": "Heat",
                                                        "30": "Up"}[r] for r in items]


def test_id_field_adds_one_value_per_item(recbole):
    data = with_id_field(recbole)
    n_attr, n_items = int(recbole[ATTR].num_nodes), int(recbole[ITEM].num_nodes)
    assert data.attr_fields == recbole.attr_fields + ["item_id"]
    assert int(data[ATTR].num_nodes) == n_attr + n_items
    assert data[ATTR].field[n_attr:].tolist() == [len(recbole.attr_fields)] * n_items
    new = set(map(tuple, data[HAS_ATTR].edge_index.t().tolist())) - \
        set(map(tuple, recbole[HAS_ATTR].edge_index.t().tolist()))
    assert new == {(i, n_attr + i) for i in range(n_items)}
    assert int(recbole[ATTR].num_nodes) == n_attr  # the input keeps its graph


SEQ = "1 1 2 3 4\n2 5 6\n3 7\n"


def test_s3rec_ranking_view_holds_out_the_sequential_targets(write, tmp_path):
    write("b/Beauty.txt", SEQ)
    write("b/Beauty_item2attributes.json", json.dumps({"1": [9], "5": [8, 9]}))
    raw = read_s3rec_interactions(tmp_path / "b", stem="Beauty")
    data = build_dataset(raw, split="loo", val_ratio=0.1)
    users, items = data[USER].raw_id, data[ITEM].raw_id
    pairs = lambda key: {(users[u], items[i]) for u, i in data[INTERACTS][key].t().tolist()}  # noqa: E731
    assert pairs("test_edge_index") == {("1", "4"), ("2", "6")}     # last items
    assert pairs("val_edge_index") == {("1", "3")}                   # second to last (>= 3 items)
    assert pairs("edge_index") == {("1", "1"), ("1", "2"), ("2", "5"), ("3", "7")}
    attrs = data[ATTR].raw_id
    assert {(items[i], attrs[a]) for i, a in data[HAS_ATTR].edge_index.t().tolist()} == \
        {("1", "attr=9"), ("5", "attr=8"), ("5", "attr=9")}


def test_s3rec_ranking_view_rejects_attributes_of_unknown_items(write, tmp_path):
    write("b/Beauty.txt", SEQ)
    path = write("b/Beauty_item2attributes.json", json.dumps({"1": [9], "42": [8]}))
    with pytest.raises(DataFormatError) as exc:
        read_s3rec_interactions(tmp_path / "b", stem="Beauty")
    assert str(path) in str(exc.value) and "'42' is not an item of Beauty.txt" in str(exc.value)


def test_a_ranking_method_on_sequence_data_runs_on_its_ranking_view():
    assert _view_for("amazon-beauty", ("ranking",)) == "amazon-beauty-ranking"
    assert _view_for("amazon-beauty", ("sequential",)) == "amazon-beauty"
    assert _view_for("ml-100k", ("sequential",)) == "ml-100k"


@pytest.mark.realdata
def test_ml_100k_user_attributes_and_titles(real_dataset, data_root):
    real_dataset("ml-100k")
    data = load_dataset("ml-100k", root=data_root)
    assert data.user_attr_fields == ["age", "gender", "occupation"]
    assert data.user_attr_skipped == ["zip_code"]
    counts = torch.bincount(data[USER_ATTR].field).tolist()
    assert counts == [61, 2, 21]
    assert data[USER_HAS_ATTR].edge_index.size(1) == 3 * 943
    assert len(data.item_titles) == 1682 and all(data.item_titles)


@pytest.mark.realdata
def test_amazon_beauty_ranking_view_matches_the_sequential_split(real_dataset, data_root):
    real_dataset("amazon-beauty")
    data = load_dataset("amazon-beauty-ranking", root=data_root)
    store = data[INTERACTS]
    assert (int(data[USER].num_nodes), int(data[ITEM].num_nodes)) == (22363, 12101)
    assert store.edge_index.size(1) + store.val_edge_index.size(1) + \
        store.test_edge_index.size(1) == 198502
    assert store.test_edge_index.size(1) == 22363 == store.val_edge_index.size(1)
    assert int(data[ATTR].num_nodes) == 637
