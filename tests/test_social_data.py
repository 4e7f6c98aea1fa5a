"""Social links as read from disk: cleaning counts, extra users, empty files, RecBole ``.net``."""

from __future__ import annotations

import pytest

from ssgraphrec.data import FOLLOWS, INTERACTS, USER, load_dataset, summary
from ssgraphrec.data.readers.recbole import read_recbole
from ssgraphrec.data.schema import SPLIT_KEYS
from ssgraphrec.errors import ConfigError, DataFormatError, SSGraphRecError
from ssgraphrec.methods import MHCN, MHCNConfig


def links(data) -> list[tuple[str, str]]:
    users = data[USER].raw_id
    return [(users[s], users[d]) for s, d in data[FOLLOWS].edge_index.t().tolist()]


def interactions(data) -> int:
    return sum(data[INTERACTS][k].size(1) for k in SPLIT_KEYS)


def test_self_loops_and_repeated_links_are_counted(write, tmp_path):
    write("s/ratings.txt", "a x 1\nb y 1\nc x 1\n")
    # 7 lines: self-loops "b b" and "c c"; "a b" three times (two repeats);
    # "b a" is the reverse link, not a repeat.
    write("s/trusts.txt", "a b\nb b\na b\nb a\nc c\na b 0.5\nc a\n")
    data = load_dataset(str(tmp_path / "s"), test_ratio=0.0, val_ratio=0.0)
    assert links(data) == [("a", "b"), ("b", "a"), ("c", "a")]
    assert data.social_self_loops_removed == 2
    assert data.social_duplicates_merged == 2
    info = summary(data)
    assert info["social_links"] == 3
    assert info["social_self_loops_removed"] == 2 and info["social_duplicates_merged"] == 2


def test_clean_social_file_reports_no_cleaning(write, tmp_path):
    write("s/ratings.txt", "a x\nb x\n")
    write("s/trusts.txt", "a b\nb a\n")
    data = load_dataset(str(tmp_path / "s"), test_ratio=0.0, val_ratio=0.0)
    assert data.social_self_loops_removed == 0 and data.social_duplicates_merged == 0
    info = summary(data)
    assert "social_self_loops_removed" not in info and "social_duplicates_merged" not in info


def test_users_only_in_the_social_file_are_added_never_dropped(write, tmp_path):
    rating_users = ["u1", "u2", "u3"]
    write("s/ratings.txt", "u1 i1 1\nu2 i1 1\nu3 i2 1\nu1 i2 1\n")
    # v1, v2 and v3 follow or are followed but rated nothing.
    write("s/trusts.txt", "u1 v1\nv2 u2\nv1 v3\nu3 u1\n")
    data = load_dataset(str(tmp_path / "s"), test_ratio=0.0, val_ratio=0.0)
    social_only = {"v1", "v2", "v3"}
    assert data[USER].num_nodes == len(rating_users) + len(social_only)
    # new ids in order of first appearance among the sources, then the targets
    assert data[USER].raw_id == rating_users + ["v2", "v1", "v3"]
    assert interactions(data) == 4  # ratings untouched
    assert data.social_only_users == 3 and summary(data)["social_only_users"] == 3
    extra = [data[USER].raw_id.index(v) for v in sorted(social_only)]
    assert not set(extra) & set(data[INTERACTS].edge_index[0].tolist())
    assert links(data) == [("u1", "v1"), ("u3", "u1"), ("v2", "u2"), ("v1", "v3")]


def test_a_social_file_in_another_id_space_is_an_error(write, tmp_path):
    write("s/ratings.txt", "u1 i1 1\nu2 i1 1\nu3 i2 1\n")
    write("s/trusts.txt", "100 101\n101 102\n")  # not one rating user: another id space
    with pytest.raises(SSGraphRecError, match=r"trusts.txt: none of its 3 user ids is a user of the "
                       r"rating file \(3 users\)"):
        load_dataset(str(tmp_path / "s"), test_ratio=0.0, val_ratio=0.0)


def test_an_empty_social_file_gives_no_links_and_mhcn_says_so(write, tmp_path):
    write("s/ratings.txt", "a x\nb x\nb y\n")
    write("s/trusts.txt", "\n")
    data = load_dataset(str(tmp_path / "s"), test_ratio=0.0, val_ratio=0.0)
    assert FOLLOWS in data.edge_types and data[FOLLOWS].edge_index.shape == (2, 0)
    assert summary(data)["social_links"] == 0
    with pytest.raises(ConfigError, match="social graph of 's' is empty"):
        MHCN(data, MHCNConfig())


# -- RecBole-GNN .net files ------------------------------------------------------------

INTER = ("user_id:token\titem_id:token\trating:float\n"
         "u1\t10\t4\n"
         "u2\t20\t3\n"
         "u3\t10\t5\n")


def test_recbole_net_file_is_read_as_social_links(write, tmp_path):
    write("rb/rb.inter", INTER)
    write("rb/rb.net", "source_id:token\ttarget_id:token\tweight:float\n"
                       "u1\tu2\t1\nu2\tu1\t1\nu3\tu9\t1\nu3\tu3\t1\n")
    raw = read_recbole(tmp_path / "rb")
    assert raw.social == (["u1", "u2", "u3", "u3"], ["u2", "u1", "u9", "u3"])
    assert raw.social_source.endswith("rb.net")
    data = load_dataset(str(tmp_path / "rb"), test_ratio=0.0, val_ratio=0.0)
    assert data[USER].raw_id == ["u1", "u2", "u3", "u9"]  # u9 only follows: an extra user
    assert links(data) == [("u1", "u2"), ("u2", "u1"), ("u3", "u9")]
    assert data.social_self_loops_removed == 1


def test_recbole_without_net_file_has_no_social_links(write, tmp_path):
    write("rb/rb.inter", INTER)
    assert read_recbole(tmp_path / "rb").social is None


@pytest.mark.parametrize("text, line, problem", [
    ("source_id:token\tfriend:token\nu1\tu2\n", 1, "no column 'target_id'"),
    ("source_id:token\ttarget_id:token\nu1\tu2\nu1\n", 3, "1 tab-separated columns"),
    ("source_id:token\ttarget_id:token\nu1\t\n", 2, "empty target_id"),
])
def test_recbole_malformed_net_file(write, tmp_path, text, line, problem):
    write("rb/rb.inter", INTER)
    path = write("rb/rb.net", text)
    with pytest.raises(DataFormatError) as exc:
        read_recbole(tmp_path / "rb")
    assert exc.value.path == str(path) and exc.value.line == line
    assert problem in str(exc.value)


# -- real data ------------------------------------------------------------------------


@pytest.mark.realdata
def test_lastfm_social_graph_and_an_exact_8_1_1_split(real_dataset, data_root):
    real_dataset("lastfm")
    data = load_dataset("lastfm", root=data_root, val_ratio=0.1112)
    store = data[INTERACTS]
    # trusts.txt: 25,434 links, all users also rate, no self-loop or repeat.
    assert data[USER].num_nodes == 1892 and data[FOLLOWS].edge_index.size(1) == 25434
    assert data.social_self_loops_removed == 0 and data.social_duplicates_merged == 0
    # --val-ratio 0.1112 (not 0.111: see docs/social.md) makes 8:1:1 of the 92,834 rows.
    sizes = [store[k].size(1) for k in SPLIT_KEYS]
    assert sizes == [74293, 9271, 9270]
    default = load_dataset("lastfm", root=data_root)  # val 0.1 of training rows: 82:8:10
    assert [default[INTERACTS][k].size(1) for k in SPLIT_KEYS] == [76134, 7430, 9270]
