"""Session and sequence data: the schema builder, padding, readers and the registry.

Every expected tensor below is worked out by hand in the comments. The
real-data figures come from /work/shared/data/README.md.
"""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import pytest
import torch

from ssgraphrec.data import CONTAINS, SESSION, load_dataset, summary
from ssgraphrec.data.readers import load_restricted, read_clicklog, read_pickle_sessions, read_s3rec
from ssgraphrec.data.readers.pickle_sessions import read_sequences, read_session_file
from ssgraphrec.data.schema import ATTR, HAS_ATTR, ITEM, USER
from ssgraphrec.data.sessions import (
    carve_validation,
    flatten_sessions,
    prefix_groups,
    prefix_samples,
    session_data,
    session_pointer,
    to_padded,
)
from ssgraphrec.errors import ConfigError, DataFormatError, SSGraphRecError

SESSIONS = [[3, 1, 2], [0], [2, 3, 4, 1]]


def L(t: torch.Tensor) -> list:
    return t.tolist()


# ---------------------------------------------------------------- schema builder


def test_session_data_builds_sorted_incidences_with_positions():
    data = session_data(SESSIONS, 5, targets=[4, -1, 0], split=torch.tensor([0, 1, 2]), name="hand")
    assert L(data[CONTAINS].edge_index) == [[0, 0, 0, 1, 2, 2, 2, 2], [3, 1, 2, 0, 2, 3, 4, 1]]
    assert L(data[CONTAINS].position) == [0, 1, 2, 0, 0, 1, 2, 3]
    assert data[SESSION].num_nodes == 3 and data[ITEM].num_nodes == 5
    assert L(data[SESSION].target) == [4, -1, 0]
    assert L(data[SESSION].train_mask) == [True, False, False]
    assert L(data[SESSION].val_mask) == [False, True, False]
    assert L(data[SESSION].test_mask) == [False, False, True]
    assert L(session_pointer(data)) == [0, 3, 4, 8]
    assert data[ITEM].raw_id == ["0", "1", "2", "3", "4"]
    # the CSR form gives the same data
    again = session_data((torch.tensor([0, 3, 4, 8]), torch.tensor([3, 1, 2, 0, 2, 3, 4, 1])), 5)
    assert torch.equal(again[CONTAINS].edge_index, data[CONTAINS].edge_index)
    assert L(again[SESSION].target) == [-1, -1, -1] and bool(again[SESSION].train_mask.all())


def test_session_data_keeps_empty_sessions_and_users():
    data = session_data([[1], [], [0, 1]], 2, users=[5, 6, 7])
    assert L(data[CONTAINS].edge_index) == [[0, 2, 2], [1, 0, 1]]
    assert L(session_pointer(data)) == [0, 1, 1, 3]
    assert L(data[SESSION].user) == [5, 6, 7]


def test_session_data_rejects_bad_ids_and_lengths():
    with pytest.raises(SSGraphRecError, match="outside"):
        session_data([[0, 5]], 5)
    with pytest.raises(SSGraphRecError, match="targets has 1 entries for 2 sessions"):
        session_data([[0], [1]], 2, targets=[1])
    with pytest.raises(SSGraphRecError, match="split"):
        session_data([[0]], 2, split=torch.tensor([3]))


def test_to_padded_left_pads_shifts_ids_and_keeps_the_last_items():
    data = session_data(SESSIONS, 5)
    ids, lengths = to_padded(data, 3)
    # [3,1,2] -> +1 -> [4,2,3]; [0] -> [0,0,1]; last 3 of [2,3,4,1] = [3,4,1] -> [4,5,2]
    assert L(ids) == [[4, 2, 3], [0, 0, 1], [4, 5, 2]]
    assert L(lengths) == [3, 1, 3]
    ids, lengths = to_padded(data, 5, mask=torch.tensor([True, False, True]))
    assert L(ids) == [[0, 0, 4, 2, 3], [0, 3, 4, 5, 2]]
    assert L(lengths) == [3, 4]
    with pytest.raises(ConfigError):
        to_padded(data, 0)


def test_prefix_samples_longest_prefix_first():
    ptr, items = torch.tensor([0, 3, 4, 8]), torch.tensor([3, 1, 2, 0, 2, 3, 4, 1])
    sptr, sitems, target = prefix_samples(ptr, items)
    # s0: ([3,1],2), ([3],1); s1: none; s2: ([2,3,4],1), ([2,3],4), ([2],3)
    assert L(target) == [2, 1, 1, 4, 3]
    assert L(sptr) == [0, 2, 3, 6, 8, 9]
    assert L(sitems) == [3, 1, 3, 2, 3, 4, 2, 3, 2]


def test_carve_validation_is_seeded_and_only_touches_training_samples():
    split = torch.tensor([0] * 10 + [2] * 3)
    a, b = carve_validation(split, 0.3, seed=1), carve_validation(split, 0.3, seed=1)
    assert torch.equal(a, b)
    assert int((a == 1).sum()) == 3 and L(a[10:]) == [2, 2, 2]
    assert torch.equal(carve_validation(split, 0.0, seed=1), split)


# ---------------------------------------------------------------- restricted unpickler


class _Payload:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_restricted_unpickler_refuses_code_without_running_it(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "train.txt"
    path.write_bytes(pickle.dumps(([[1, 2]], [_Payload(marker)]), protocol=3))
    with pytest.raises(DataFormatError, match="train.txt.*import (posix|os|nt)\\.system"):
        load_restricted(path)
    assert not marker.exists()


@pytest.mark.parametrize("obj, bad", [(([[1, 2.5]], [3]), "2.5 of type float"),
                                      (([[1]], ["x"]), "'x' of type str"),
                                      (([[1], 7], [2, 3]), "is a int, not a list"),
                                      (([[1]], [2, 3]), "1 sessions but 2 labels")])
def test_session_pickle_with_wrong_leaves_is_refused(tmp_path, obj, bad):
    (tmp_path / "train.txt").write_bytes(pickle.dumps(obj, protocol=3))
    (tmp_path / "test.txt").write_bytes(pickle.dumps(([[1]], [2]), protocol=3))
    with pytest.raises(DataFormatError, match=bad) as err:
        read_pickle_sessions(tmp_path)
    assert "train.txt" in str(err.value)


def test_corrupt_pickle_names_the_file(tmp_path):
    (tmp_path / "train.txt").write_bytes(pickle.dumps(([[1]], [2]), protocol=3)[:-3])
    with pytest.raises(DataFormatError, match="train.txt: not a readable pickle"):
        load_restricted(tmp_path / "train.txt")


def write_dhcn(folder: Path, train, test) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train.txt").write_bytes(pickle.dumps(train, protocol=3))
    (folder / "test.txt").write_bytes(pickle.dumps(test, protocol=3))
    return folder


def test_read_dhcn_pickles_maps_raw_id_r_to_item_r_minus_1(tmp_path):
    folder = write_dhcn(tmp_path / "tmall", ([[1], [1, 2], [3]], [2, 3, 4]), ([[2], [5]], [1, 2]))
    data = read_pickle_sessions(folder, val_ratio=0.0)
    assert data[ITEM].num_nodes == 5 and data[ITEM].raw_id == ["1", "2", "3", "4", "5"]
    assert L(data[CONTAINS].edge_index) == [[0, 1, 1, 2, 3, 4], [0, 0, 1, 2, 1, 4]]
    assert L(data[SESSION].target) == [1, 2, 3, 0, 1]
    assert L(data[SESSION].train_mask) == [True, True, True, False, False]
    assert L(data[SESSION].test_mask) == [False, False, False, True, True]
    assert data.items_seen == 5 and data.test_only_items == 1   # raw 5 only in test
    # validation: floor(0.34 * 3) = 1 training sample moves to val, seeded
    data = read_pickle_sessions(folder, val_ratio=0.34, seed=3)
    assert int(data[SESSION].val_mask.sum()) == 1 and int(data[SESSION].train_mask.sum()) == 2
    assert not bool((data[SESSION].val_mask & data[SESSION].test_mask).any())
    # the registry reaches the same reader, and the path is recognised as pickles
    by_name = load_dataset("tmall", root=tmp_path, val_ratio=0.0)
    by_path = load_dataset(str(folder), val_ratio=0.0)
    assert torch.equal(by_name[CONTAINS].edge_index, by_path[CONTAINS].edge_index)
    assert summary(by_name)["test"] == 2
    with pytest.raises(ConfigError, match="fixed split"):
        load_dataset("tmall", root=tmp_path, split="random")


def test_dhcn_pickle_with_id_zero_is_refused(tmp_path):
    folder = write_dhcn(tmp_path / "x", ([[1, 2], [0, 1]], [2, 3]), ([[1]], [2]))
    with pytest.raises(DataFormatError, match=r"train.txt.*session 1 holds item id 0.*1-based"):
        read_pickle_sessions(folder)
    folder = write_dhcn(tmp_path / "y", ([[1, 2]], [2]), ([[1], [2]], [2, 0]))
    with pytest.raises(DataFormatError, match=r"test.txt.*the label of session 1 is 0"):
        read_pickle_sessions(folder)


def test_dhcn_pickle_with_an_empty_session_is_refused(tmp_path):
    folder = write_dhcn(tmp_path / "x", ([[1, 2], [], [3]], [2, 3, 1]), ([[1]], [2]))
    with pytest.raises(DataFormatError, match=r"train.txt.*session 1 is empty"):
        read_pickle_sessions(folder)


# ---------------------------------------------------------------- S3-Rec sequences


def test_s3rec_reader_leave_one_out_and_attributes(tmp_path):
    (tmp_path / "Toy.txt").write_text("1 1 2 3 4\n2 2 3\n3 5\n7 3 1 2\n")
    (tmp_path / "Toy_item2attributes.json").write_text(json.dumps(
        {"1": [1, 2], "2": [2], "3": [3], "4": [1], "5": [4]}))
    data = read_s3rec(tmp_path)
    # u1 [1,2,3,4]: train [0,1], val 2, test 3; u2 [2,3]: train [1], test 2;
    # u3 [5]: train [4]; u7 [3,1,2]: train [2], val 0, test 1.
    assert data[ITEM].num_nodes == 5 and data[USER].num_nodes == 4
    assert data[USER].raw_id == ["1", "2", "3", "7"]
    assert L(data[CONTAINS].edge_index) == [[0, 0, 1, 2, 3], [0, 1, 1, 4, 2]]
    assert L(data[CONTAINS].position) == [0, 1, 0, 0, 0]
    assert L(data[SESSION].user) == [0, 1, 2, 3]
    assert L(data[SESSION].val_target) == [2, -1, -1, 0]
    assert L(data[SESSION].test_target) == [3, 2, -1, 1]
    assert L(data[SESSION].target) == [-1, -1, -1, -1]
    assert L(data[SESSION].val_mask) == [True, False, False, True]
    assert L(data[SESSION].test_mask) == [True, True, False, True]
    assert bool(data[SESSION].train_mask.all())
    assert data.short_sequences == 2 and data.interactions == 10
    # attribute values in order of first appearance: attr=1, attr=2, attr=3, attr=4
    assert data[ATTR].raw_id == ["attr=1", "attr=2", "attr=3", "attr=4"]
    assert L(data[HAS_ATTR].edge_index) == [[0, 0, 1, 2, 3, 4], [0, 1, 1, 2, 0, 3]]
    # a folder with *_item2attributes.json is recognised as S3-Rec data
    assert torch.equal(load_dataset(str(tmp_path))[CONTAINS].edge_index, data[CONTAINS].edge_index)
    # an attribute record of an item the sequences do not know is an error naming it
    (tmp_path / "Toy_item2attributes.json").write_text(json.dumps({"1": [1], "9": [1]}))
    with pytest.raises(DataFormatError, match=r"Toy_item2attributes.json.*record '9' is not an item"):
        read_s3rec(tmp_path)


def test_s3rec_reader_errors_name_file_and_line(tmp_path):
    (tmp_path / "Bad.txt").write_text("1 1 2\n1 3 4\n")
    with pytest.raises(DataFormatError, match="Bad.txt, line 2: user 1 already has a line"):
        read_s3rec(tmp_path)
    (tmp_path / "Bad.txt").write_text("1 1 x\n")
    with pytest.raises(DataFormatError, match="Bad.txt, line 1: item id 'x'"):
        read_s3rec(tmp_path)
    (tmp_path / "Bad.txt").write_text("1 1 2\n")
    (tmp_path / "Bad_item2attributes.json").write_text('{"1": ["a"]}')
    with pytest.raises(DataFormatError, match="integer attribute ids"):
        read_s3rec(tmp_path)


# ---------------------------------------------------------------- click logs

D = 86400
CLICKS = f"""session_id,item_id,timestamp
1,a,10
1,b,5
1,c,20
2,a,100
3,b,200
3,r,210
4,c,300
4,a,310
5,a,{2 * D + 10}
5,e,{2 * D + 20}
5,b,{2 * D + 30}
6,e,{2 * D + 40}
6,e,{2 * D + 50}
7,b,{D + 40}
7,c,{D + 50}
"""


def test_clicklog_sr_gnn_preprocessing(tmp_path):
    path = tmp_path / "clicks.csv"
    path.write_text(CLICKS)
    data = read_clicklog(path, test_days=1, min_item_count=2, val_ratio=0.0)
    # session 2 is a single click; r is seen once -> session 3 is left with one click.
    # maxdate = 2D+50 (session 6), split date D+50: sessions 1, 4 train; 5, 6 test;
    # session 7 is dated exactly on the split date (in neither, as in SR-GNN).
    # Session 1 sorted by time is b, a, c -> item ids b=0, a=1, c=2; session 4 = c, a.
    # Test: e unseen in training (3 clicks) -> session 5 = a, b; session 6 empty.
    assert data[ITEM].raw_id == ["b", "a", "c"]
    assert L(data[CONTAINS].edge_index) == [[0, 0, 1, 2, 3], [0, 1, 0, 2, 1]]
    assert L(data[SESSION].target) == [2, 1, 1, 0]
    assert L(data[SESSION].train_mask) == [True, True, True, False]
    assert L(data[SESSION].test_mask) == [False, False, False, True]
    assert (data.clicks_read, data.sessions_dropped_single, data.clicks_dropped_rare_items,
            data.sessions_dropped_short, data.sessions_dropped_on_split_date,
            data.test_clicks_dropped_unseen, data.test_sessions_dropped_short) == (15, 1, 1, 1, 1, 3, 1)
    assert (data.train_sessions, data.test_sessions) == (2, 1)


def test_clicklog_diginetica_layout_sorts_by_timeframe(tmp_path):
    path = tmp_path / "train-item-views.csv"
    path.write_text("sessionId;userId;itemId;timeframe;eventdate\n"
                    "1;NA;10;300;2016-01-01\n1;NA;20;100;2016-01-01\n1;NA;30;200;2016-01-01\n"
                    "2;NA;20;5;2016-01-10\n2;NA;10;9;2016-01-10\n")
    data = read_clicklog(path, min_item_count=1, val_ratio=0.0)
    # session 1 by timeframe: 20, 30, 10 -> ids 0, 1, 2; session 2 (test) = 20, 10
    assert data[ITEM].raw_id == ["20", "30", "10"]
    assert L(data[CONTAINS].edge_index) == [[0, 0, 1, 2], [0, 1, 0, 0]]
    assert L(data[SESSION].target) == [2, 1, 2]
    assert L(data[SESSION].test_mask) == [False, False, True]


def test_a_csv_path_is_read_as_a_click_log_with_the_standard_preprocessing(tmp_path):
    rows = ["session_id,item_id,timestamp"]
    for s in range(12):  # 12 sessions of items x, y, z on days 0..11; the last 7 days test
        day = s * 86400
        rows += [f"{s},x,{day + 1}", f"{s},y,{day + 2}", f"{s},z,{day + 3}"]
    path = tmp_path / "clicks.csv"
    path.write_text("\n".join(rows) + "\n")
    data = load_dataset(str(path), val_ratio=0.0)
    expected = read_clicklog(path, val_ratio=0.0)
    assert data.task == "next_item" and data[ITEM].raw_id == ["x", "y", "z"]
    assert torch.equal(data[CONTAINS].edge_index, expected[CONTAINS].edge_index)
    # maxdate is day 11 (+3 s), the split date day 4 (+3 s): sessions 0-3 train, 5-11 test,
    # session 4 (dated exactly on the split date) in neither; 2 prefix samples per session
    assert int(data[SESSION].train_mask.sum()) == 2 * 4
    assert int(data[SESSION].test_mask.sum()) == 2 * 7


def test_clicklog_errors(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text("a,b,c\n1,2,3\n")
    with pytest.raises(DataFormatError, match="c.csv, line 1: cannot tell the layout"):
        read_clicklog(path)
    path.write_text("session_id,item_id,timestamp\n1,2,yesterday\n")
    with pytest.raises(DataFormatError, match="c.csv, line 2: timestamp 'yesterday'"):
        read_clicklog(path)
    path.write_text("s,i,t\n1,2,3\n")
    with pytest.raises(ConfigError, match="unknown column roles"):
        read_clicklog(path, columns={"sess": "s"})


# ---------------------------------------------------------------- real data


@pytest.mark.parametrize("name, train, test, items", [("tmall", 351_268, 25_898, 40_727),
                                                      ("diginetica", 719_470, 60_858, 43_097)])
def test_real_session_pickles(real_dataset, data_root, name, train, test, items):
    real_dataset(name)
    data = load_dataset(name, root=data_root, val_ratio=0.1, seed=0)
    s = data[SESSION]
    assert int(s.train_mask.sum()) + int(s.val_mask.sum()) == train
    assert int(0.1 * train) - 100 < int(s.val_mask.sum()) <= int(0.1 * train)  # whole sessions
    assert int(s.test_mask.sum()) == test
    # the prefix samples group back into exactly the raw training sessions of the folder
    seqs, labels = read_session_file(data_root / name / "train.txt")
    ptr, flat = flatten_sessions(seqs)
    groups = prefix_groups(ptr, flat, torch.tensor(labels))
    assert int(groups.max()) + 1 == len(read_sequences(data_root / name / "all_train_seq.txt"))
    assert data[ITEM].num_nodes == items
    assert bool((s.target >= 0).all())


@pytest.mark.parametrize("name, users, items, inters, attrs", [
    ("amazon-beauty", 22_363, 12_101, 198_502, 637),
    ("amazon-sports", 35_598, 18_357, 296_337, 2_277)])
def test_real_s3rec_sequences(real_dataset, data_root, name, users, items, inters, attrs):
    real_dataset(name)
    data = load_dataset(name, root=data_root)
    assert data[USER].num_nodes == users and data[ITEM].num_nodes == items
    assert data.interactions == inters and data[ATTR].num_nodes == attrs
    # leave-one-out: every user has >= 3 items (5-core), two held out each
    assert data[CONTAINS].edge_index.size(1) == inters - 2 * users
    assert bool(data[SESSION].val_mask.all()) and bool(data[SESSION].test_mask.all())


def test_clicklog_column_mapping(tmp_path):
    path = tmp_path / "c.tsv"
    path.write_text("sid\titem\twhen\n1\tx\t1\n1\ty\t2\n2\tx\t900000\n2\ty\t900001\n")
    data = read_clicklog(path, columns={"session": "sid", "item": "item", "time": "when"},
                         min_item_count=1, val_ratio=0.0)
    assert data[ITEM].raw_id == ["x", "y"]
    assert L(data[SESSION].target) == [1, 1] and L(data[SESSION].test_mask) == [False, True]


def test_prefix_groups_find_the_sessions_of_prefix_samples():
    # sessions [1,2,3,4] and [4,5,6] prefix-augmented (longest first), then a lone [1] -> 2
    # that looks like a continuation by length but whose items differ from [4]
    ptr, items, targets = prefix_samples(torch.tensor([0, 4, 7]), torch.tensor([1, 2, 3, 4, 4, 5, 6]))
    assert L(targets) == [4, 3, 2, 6, 5]
    assert L(prefix_groups(ptr, items, targets)) == [0, 0, 0, 1, 1]
    ptr2 = torch.tensor([0, 2, 3, 4])          # [4, 5] -> 6, [4] -> 5, [1] -> 5: the last is new
    assert L(prefix_groups(ptr2, torch.tensor([4, 5, 4, 1]), torch.tensor([6, 5, 5]))) == [0, 0, 1]


def test_validation_takes_whole_sessions():
    ptr, items, targets = prefix_samples(torch.tensor([0, 5, 9, 12, 16, 19]),
                                         torch.arange(19))
    groups = prefix_groups(ptr, items, targets)
    split = torch.zeros(groups.numel(), dtype=torch.long)
    for seed in range(5):
        out = carve_validation(split, 0.4, seed=seed, groups=groups)
        val_groups = set(groups[out == 1].tolist())
        train_groups = set(groups[out == 0].tolist())
        assert val_groups and not val_groups & train_groups
        assert int((out == 1).sum()) <= int(0.4 * groups.numel())
