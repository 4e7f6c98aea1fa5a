"""Readers of the published formats, on small files written by hand.

Every malformed file must raise a :class:`DataFormatError` whose message names
the file, the 1-based line (counting blank lines) and what was expected.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ssgraphrec.data import ATTR, HAS_ATTR, INTERACTS, ITEM, USER, build_dataset, load_dataset
from ssgraphrec.data.readers import (
    read_line_format,
    read_recbole,
    read_triple_dataset,
    read_triple_split,
)
from ssgraphrec.data.readers.line_format import read_line_file
from ssgraphrec.data.readers.triples import read_triples
from ssgraphrec.errors import DataFormatError, SSGraphRecError


def raw_pairs(data, key="edge_index"):
    """The (raw user, raw item) pairs of one split."""
    users, items = data[USER].raw_id, data[ITEM].raw_id
    return {(users[u], items[i]) for u, i in data[INTERACTS][key].t().tolist()}


def check_error(exc_info, path, line, *expected):
    """The error names the file, the line and what was expected."""
    err = exc_info.value
    msg = str(err)
    assert str(path) in msg
    assert err.path == str(path)
    assert err.line == line
    assert f"line {line}:" in msg
    assert "expected" in msg
    for text in expected:
        assert text in msg, msg


# -- LightGCN line format ------------------------------------------------------


def test_line_file_reads_every_pair_and_allows_a_user_without_items(write):
    path = write("train.txt", "0 1 2 3\n2 5\n3\n\n4 007 1\n")
    inter = read_line_file(path)
    assert inter.user == ["0", "0", "0", "2", "4", "4"]  # user 3 has a line but no items
    assert inter.item == ["1", "2", "3", "5", "7", "1"]
    assert inter.source == str(path)


def test_line_format_keeps_integer_ids_as_they_are(write, tmp_path):
    write("lg/train.txt", "0 1 2\n2 0\n3\n")
    write("lg/test.txt", "0 0\n2 2\n")
    raw = read_line_format(tmp_path / "lg")
    assert raw.integer_ids and raw.name == "lg"
    data = build_dataset(raw, split="fixed", val_ratio=0)
    # Contiguous id == file id: user 2 stays 2 although user 1 has no line.
    assert data[USER].raw_id[:3] == ["0", "1", "2"]
    assert data[ITEM].raw_id == ["0", "1", "2"]
    assert data[INTERACTS].edge_index.tolist() == [[0, 0, 2], [1, 2, 0]]
    assert data[INTERACTS].test_edge_index.tolist() == [[0, 2], [0, 2]]


def test_line_format_duplicate_user_line(write):
    path = write("train.txt", "0 1 2\n1 3\n\n0 4\n")
    with pytest.raises(DataFormatError) as exc:
        read_line_file(path)
    check_error(exc, path, 4, "user 0 already has a line (line 1)", "one line per user")


@pytest.mark.parametrize("text, line, token", [
    ("0 1 2\n1 2 x\n", 2, "item id 'x'"),
    ("0 1\nu1 2\n", 2, "user id 'u1'"),
    ("\n\n0 1.5\n", 3, "item id '1.5'"),
    ("0 1\n1 -3\n", 2, "item id -3 is negative"),
])
def test_line_format_non_integer_id(write, text, line, token):
    path = write("train.txt", text)
    with pytest.raises(DataFormatError) as exc:
        read_line_file(path)
    check_error(exc, path, line, token, "non-negative integer")


def test_line_format_missing_test_file(write, tmp_path):
    write("lg/train.txt", "0 1\n")
    with pytest.raises(SSGraphRecError, match="not found") as exc:
        read_line_format(tmp_path / "lg")
    assert str(tmp_path / "lg" / "test.txt") in str(exc.value)


# -- user item [weight] triples ------------------------------------------------


def test_triples_with_weights(write):
    path = write("r.txt", "alice\tsong1\t3.5\nbob song2 12\n\nalice\tsong2\t1e2\n")
    inter = read_triples(path)
    assert inter.user == ["alice", "bob", "alice"]
    assert inter.item == ["song1", "song2", "song2"]
    np.testing.assert_allclose(inter.weight, [3.5, 12.0, 100.0])


def test_triples_without_weights_get_weight_one(write):
    inter = read_triples(write("r.txt", "u1 i1\nu2 i1\nu2 i9\n"))
    assert inter.user == ["u1", "u2", "u2"] and inter.item == ["i1", "i1", "i9"]
    np.testing.assert_array_equal(inter.weight, [1.0, 1.0, 1.0])


def test_triples_raw_ids_map_in_order_of_first_appearance(write, tmp_path):
    write("d/ratings.txt", "zed x\namy y\nzed y\namy z\n")
    raw = read_triple_dataset(tmp_path / "d")
    assert raw.social is None and not raw.integer_ids
    data = build_dataset(raw, test_ratio=0.0, val_ratio=0.0)
    assert data[USER].raw_id == ["zed", "amy"]
    assert data[ITEM].raw_id == ["x", "y", "z"]
    assert raw_pairs(data) == {("zed", "x"), ("amy", "y"), ("zed", "y"), ("amy", "z")}


@pytest.mark.parametrize("text, line, count", [
    ("u1 i1 1\nu2\n", 2, "1 columns"),
    ("u1 i1\n\nu2 i2 1 extra\n", 3, "4 columns"),
])
def test_triples_wrong_column_count(write, text, line, count):
    path = write("r.txt", text)
    with pytest.raises(DataFormatError) as exc:
        read_triples(path)
    check_error(exc, path, line, count, "2 or 3 white-space separated columns")


def test_triples_non_numeric_weight(write):
    path = write("r.txt", "u1 i1 4\nu1 i2 five\n")
    with pytest.raises(DataFormatError) as exc:
        read_triples(path)
    check_error(exc, path, 2, "weight 'five' is not a number", "a numeric weight")


def test_triples_missing_file(tmp_path):
    path = tmp_path / "absent.txt"
    with pytest.raises(SSGraphRecError) as exc:
        read_triples(path)
    assert str(path) in str(exc.value) and "not found" in str(exc.value)


def test_triple_split_missing_test_file(write, tmp_path):
    write("s/train.txt", "u i 1\n")
    with pytest.raises(SSGraphRecError) as exc:
        read_triple_split(tmp_path / "s")
    assert str(tmp_path / "s" / "test.txt") in str(exc.value)


def test_social_file_with_a_malformed_line(write, tmp_path):
    write("d/ratings.txt", "a x\n")
    path = write("d/trusts.txt", "a b\na\n")
    with pytest.raises(DataFormatError) as exc:
        read_triple_dataset(tmp_path / "d")
    check_error(exc, path, 2, "user user [weight]")


# -- RecBole atomic files --------------------------------------------------------

INTER = ("user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
         "u1\t10\t4\t100\n"
         "u1\t20\t3\t200\n"
         "u2\t20\t5\t150\n"
         "\n"
         "u2\t30\t1\t50\n")
ITEMS = ("item_id:token\tmovie_title:token_seq\tclass:token_seq\tyear:token\tprice:float\n"
         "10\tToy Story\tAnimation Comedy\t1995\t1.5\n"
         "20\tHeat\tAction Thriller\t1995\t2\n"
         "30\tUnrated\tDrama\t\t3\n"
         "99\tNever Rated\tDrama\t2000\t4\n")


def test_recbole_inter_reads_typed_columns(write, tmp_path):
    write("ml/ml.inter", INTER)
    raw = read_recbole(tmp_path / "ml")
    inter = raw.interactions
    assert raw.name == "ml"
    assert inter.user == ["u1", "u1", "u2", "u2"]
    assert inter.item == ["10", "20", "20", "30"]
    np.testing.assert_allclose(inter.weight, [4, 3, 5, 1])
    np.testing.assert_allclose(inter.time, [100, 200, 150, 50])
    assert not raw.item_attributes


def test_recbole_token_seq_attributes_become_the_item_attr_graph(write, tmp_path):
    write("ml/ml.inter", INTER)
    write("ml/ml.item", ITEMS)
    raw = read_recbole(tmp_path / "ml")
    assert raw.item_titles == {"10": "Toy Story", "20": "Heat", "30": "Unrated",
                               "99": "Never Rated"}
    assert set(raw.item_attributes) == {"class", "year"}
    assert raw.item_attributes["class"]["10"] == ["Animation", "Comedy"]
    assert "30" not in raw.item_attributes["year"]  # an empty token is no attribute
    assert raw.item_features["price"] == {"10": 1.5, "20": 2.0, "30": 3.0, "99": 4.0}

    data = build_dataset(raw, test_ratio=0.0, val_ratio=0.0)
    assert data.attr_fields == ["class", "year"]
    attrs = data[ATTR].raw_id
    # 5 genres and one year among the rated items; item 99 is not rated, so 2000 is absent.
    assert sorted(attrs) == sorted(["class=Animation", "class=Comedy", "class=Action",
                                    "class=Thriller", "class=Drama", "year=1995"])
    assert data[ATTR].num_nodes == 6
    field = data[ATTR].field.tolist()
    assert [data.attr_fields[f] for f in field] == [a.split("=")[0] for a in attrs]
    items = data[ITEM].raw_id
    links = {(items[i], attrs[a]) for i, a in data[HAS_ATTR].edge_index.t().tolist()}
    assert links == {("10", "class=Animation"), ("10", "class=Comedy"), ("10", "year=1995"),
                     ("20", "class=Action"), ("20", "class=Thriller"), ("20", "year=1995"),
                     ("30", "class=Drama")}
    # Titles are not attributes.
    assert not any(a.startswith("movie_title") for a in attrs)


def test_recbole_user_file_is_read(write, tmp_path):
    write("ml/ml.inter", INTER)
    write("ml/ml.user", "user_id:token\tage:float\tgender:token\nu1\t20\tF\nu2\t31\tM\n")
    raw = read_recbole(tmp_path / "ml")
    assert raw.user_attributes == {"gender": {"u1": ["F"], "u2": ["M"]}}


@pytest.mark.parametrize("header, column", [
    ("user_id:token\titem_id:tok", "item_id:tok"),
    ("user_id:token\titem_id", "item_id"),
    ("user_id token item_id token", "user_id token item_id token"),
])
def test_recbole_bad_header_type(write, tmp_path, header, column):
    path = write("ml/ml.inter", header + "\nu1\t1\n")
    with pytest.raises(DataFormatError) as exc:
        read_recbole(tmp_path / "ml")
    check_error(exc, path, 1, repr(column), "'name:type'", "token_seq")


def test_recbole_wrong_column_count(write, tmp_path):
    path = write("ml/ml.inter", "user_id:token\titem_id:token\trating:float\n"
                                "u1\t1\t3\n\nu2\t2\n")
    with pytest.raises(DataFormatError) as exc:
        read_recbole(tmp_path / "ml")
    check_error(exc, path, 4, "2 tab-separated columns", "3 columns")


def test_recbole_non_numeric_rating(write, tmp_path):
    path = write("ml/ml.inter", "user_id:token\titem_id:token\trating:float\n"
                                "u1\t1\t3\nu2\t2\tgood\n")
    with pytest.raises(DataFormatError) as exc:
        read_recbole(tmp_path / "ml")
    check_error(exc, path, 3, "rating 'good' is not a number")


def test_recbole_missing_user_column(write, tmp_path):
    path = write("ml/ml.inter", "uid:token\titem_id:token\nu1\t1\n")
    with pytest.raises(DataFormatError) as exc:
        read_recbole(tmp_path / "ml")
    check_error(exc, path, 1, "'user_id'")


def test_recbole_malformed_item_file(write, tmp_path):
    write("ml/ml.inter", INTER)
    path = write("ml/ml.item", "item_id:token\tclass:token_seq\n10\tDrama\n20\n")
    with pytest.raises(DataFormatError) as exc:
        read_recbole(tmp_path / "ml")
    check_error(exc, path, 3, "1 tab-separated columns")


def test_recbole_folder_without_inter_file(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(SSGraphRecError, match="no RecBole .inter file") as exc:
        read_recbole(tmp_path / "empty")
    assert str(tmp_path / "empty") in str(exc.value)


# -- format detection of a path -----------------------------------------------------


def test_load_dataset_detects_each_format_from_a_path(write, tmp_path):
    write("t.txt", "a x 1\nb y 2\n")
    write("rb/x.inter", INTER)
    write("lg/train.txt", "0 0 1 2\n1 1\n")
    write("lg/test.txt", "0 3\n1 2\n")
    write("tr/train.txt", "a x 1\nb y 1\n")
    write("tr/test.txt", "a y 1\n")
    write("so/ratings.txt", "a x\nb x\n")
    write("so/trusts.txt", "a b\n")

    triples = load_dataset(str(tmp_path / "t.txt"), val_ratio=0, test_ratio=0.0)
    assert triples.name == "t.txt" and triples[USER].raw_id == ["a", "b"]
    recbole = load_dataset(str(tmp_path / "rb"), val_ratio=0)
    assert recbole[USER].raw_id == ["u1", "u2"]
    lines = load_dataset(str(tmp_path / "lg"), val_ratio=0)
    assert lines.split == "fixed" and lines[INTERACTS].edge_index.size(1) == 4
    assert lines.test_dropped_unseen == 1  # item 3 never occurs in train.txt
    split = load_dataset(str(tmp_path / "tr"), val_ratio=0)
    assert split.split == "fixed" and raw_pairs(split, "test_edge_index") == {("a", "y")}
    social = load_dataset(str(tmp_path / "so"), val_ratio=0, test_ratio=0.0)
    assert social[("user", "follows", "user")].edge_index.tolist() == [[0], [1]]


def test_load_dataset_unknown_folder_layout(tmp_path):
    (tmp_path / "odd").mkdir()
    (tmp_path / "odd" / "notes.md").write_text("hi")
    with pytest.raises(SSGraphRecError, match="cannot tell the format"):
        load_dataset(str(tmp_path / "odd"))


def test_raw_ids_of_all_users_survive_a_split(write, tmp_path):
    path = write("t.txt", "".join(f"user{u} item{(u * 7 + k) % 13}\n"
                                  for u in range(6) for k in range(5)))
    data = load_dataset(str(path), val_ratio=0.1, test_ratio=0.2, seed=3)
    assert data[USER].raw_id == [f"user{u}" for u in range(6)]
    every = (raw_pairs(data) | raw_pairs(data, "val_edge_index")
             | raw_pairs(data, "test_edge_index"))
    assert every == {(f"user{u}", f"item{(u * 7 + k) % 13}") for u in range(6) for k in range(5)}
    assert torch.equal(data[INTERACTS].edge_index[0].sort().values,
                       data[INTERACTS].edge_index[0])


# -- a CSV of interactions with a header ---------------------------------------------

def test_interaction_csv_is_read_by_its_column_names(tmp_path):
    from ssgraphrec.data.readers.interaction_csv import read_interaction_csv
    from ssgraphrec.data.registry import detect_format

    path = tmp_path / "mine.csv"
    path.write_text("\ufeffUserId;Movie_ID;genre;Rating;timestamp\n"
                    "alice;matrix;sf;5;1000\nalice;alien;sf;4;2024-01-02\n\nbob;matrix;sf;3.5;2000\n")
    raw = read_interaction_csv(path)
    assert raw.interactions.user == ["alice", "alice", "bob"]
    assert raw.interactions.item == ["matrix", "alien", "matrix"]
    assert raw.interactions.weight.tolist() == [5.0, 4.0, 3.5]
    assert raw.interactions.time[0] == 1000.0 and raw.interactions.time[1] > 1.7e9
    assert "interactions CSV" in str(detect_format(path))
    clicks = tmp_path / "clicks.csv"
    clicks.write_text("session_id,item_id,timestamp\n1,5,100\n1,6,101\n")
    assert "click log" in str(detect_format(clicks))       # a session column: a click log


@pytest.mark.parametrize("text, needle", [
    ("user_id,genre\nu1,x\n", "names no user or no item column"),
    ("user_id,item_id,rating\nu1,i1\n", "2 columns"),
    ("user_id,item_id,rating\nu1,i1,nan\n", "not finite"),
    ("user_id,item_id\n", "no interaction after the header"),
])
def test_a_bad_interaction_csv_names_file_line_and_problem(tmp_path, text, needle):
    from ssgraphrec.data.readers.interaction_csv import read_interaction_csv
    from ssgraphrec.errors import DataFormatError

    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(DataFormatError, match=needle):
        read_interaction_csv(path)


def test_a_diffnet_style_folder_brings_its_validation_split_and_social_links(tmp_path):
    from ssgraphrec.data import load_dataset
    from ssgraphrec.data.schema import FOLLOWS, INTERACTS, summary

    rows = {k: [(u, (u * 5 + k * 3) % 40) for u in range(30)] for k in range(8)}
    parts = {"train": sum((rows[k] for k in range(6)), []), "val": rows[6], "test": rows[7]}
    for split, part in parts.items():
        (tmp_path / f"epinions.{split}.rating").write_text(
            "".join(f"{u}\t{i}\t1\n" for u, i in part))
    (tmp_path / "epinions.links").write_text("".join(f"{u}\t{(u + 1) % 30}\t1\n" for u in range(30)))
    data = load_dataset(str(tmp_path))
    info = summary(data)
    assert (info["train"], info["val"], info["test"]) == (180, 30, 30)
    assert info["val_source"] == "file" and info["social_links"] == 30
    assert data[FOLLOWS].edge_index.size(1) == 30
    assert data[INTERACTS].val_edge_index.size(1) == 30       # the file's, not carved
    (tmp_path / "epinions.val.rating").unlink()
    carved = summary(load_dataset(str(tmp_path)))              # no val file: 10 % carved
    assert carved["val"] > 0 and carved.get("val_source") != "file"
