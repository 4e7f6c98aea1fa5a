"""Id mapping, de-duplication and the random / leave-one-out / fixed splits.

The hand-made tables below have their expected counts worked out in the
comments; the real-data figures come from /work/shared/data/README.md and
lastfm/split-80-20/README.md.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from ssgraphrec.data import FOLLOWS, INTERACTS, ITEM, USER, build_dataset, load_dataset
from ssgraphrec.data.readers import Interactions, RawDataset
from ssgraphrec.data.schema import SPLIT_KEYS, summary
from ssgraphrec.errors import ConfigError


def raw_pairs(data, key="edge_index"):
    users, items = data[USER].raw_id, data[ITEM].raw_id
    return [(users[u], items[i]) for u, i in data[INTERACTS][key].t().tolist()]


def per_user(pairs):
    return Counter(u for u, _ in pairs)


def table(rows, time=None, name="hand"):
    users = [u for u, _ in rows]
    items = [i for _, i in rows]
    t = None if time is None else np.asarray(time, dtype=np.float64)
    return RawDataset(name, interactions=Interactions(users, items, None, t))


# Users and their distinct items; "h" has duplicates (2 distinct items, 5 rows).
ROWS = ([("a", f"i{k}") for k in range(10)]          # n=10: floor(2.0) = 2 held out
        + [("b", f"i{k}") for k in range(4)]         # n=4: floor(0.8) = 0 -> 1
        + [("c", "i3"), ("c", "i7")]                 # n=2: floor(0.4) = 0 -> 1
        + [("d", "i5")]                              # n=1: none
        + [("e", f"i{k}") for k in range(5)]         # n=5: floor(1.0) = 1
        + [("g", f"j{k}") for k in range(15)]        # n=15: floor(3.0) = 3
        + [("h", "i1"), ("h", "i1"), ("h", "i2"), ("h", "i2"), ("h", "i2")])  # n=2 -> 1
EXPECTED_TEST = {"a": 2, "b": 1, "c": 1, "e": 1, "g": 3, "h": 1}


def test_random_split_holds_out_max_1_floor_ratio_n_per_user():
    data = build_dataset(table(ROWS), split="random", test_ratio=0.2, val_ratio=0.0, seed=0)
    test = raw_pairs(data, "test_edge_index")
    assert dict(per_user(test)) == EXPECTED_TEST
    assert data[INTERACTS].val_edge_index.size(1) == 0
    assert data.duplicates_merged == 3


def test_random_validation_is_carved_out_of_the_training_rows():
    data = build_dataset(table(ROWS), split="random", test_ratio=0.2, val_ratio=0.1, seed=0)
    assert dict(per_user(raw_pairs(data, "test_edge_index"))) == EXPECTED_TEST
    # Training rows left after test: a 8, b 3, c 1, d 1, e 4, g 12, h 1;
    # validation takes max(1, floor(0.1 m)) of users with m >= 2: a 1, b 1, e 1, g 1.
    assert dict(per_user(raw_pairs(data, "val_edge_index"))) == {"a": 1, "b": 1, "e": 1, "g": 1}
    assert dict(per_user(raw_pairs(data))) == {"a": 7, "b": 2, "c": 1, "d": 1, "e": 3,
                                               "g": 11, "h": 1}


def test_splits_are_disjoint_and_cover_the_deduplicated_input():
    data = build_dataset(table(ROWS), split="random", test_ratio=0.2, val_ratio=0.1, seed=5)
    parts = [raw_pairs(data, key) for key in SPLIT_KEYS]
    for part in parts:
        assert len(part) == len(set(part))  # no duplicate inside a split
    train, val, test = (set(p) for p in parts)
    assert not train & val and not train & test and not val & test
    assert train | val | test == set(ROWS)
    assert sum(len(p) for p in parts) == len(set(ROWS)) == len(ROWS) - 3
    # Every split is sorted by (user, item), as the schema promises.
    for key in SPLIT_KEYS:
        e = data[INTERACTS][key]
        flat = e[0] * data[ITEM].num_nodes + e[1]
        assert torch.equal(flat, flat.sort().values)


def big_table(n_users=40, n_items=60, per_user=12, seed=0):
    rng = np.random.default_rng(seed)
    return [(f"u{u}", f"i{i}") for u in range(n_users)
            for i in rng.choice(n_items, per_user, replace=False)]


def split_of(seed, **kw):
    data = build_dataset(table(big_table()), split="random", test_ratio=0.2, val_ratio=0.1,
                         seed=seed, **kw)
    return [data[INTERACTS][k] for k in SPLIT_KEYS]


def test_same_seed_same_split_different_seed_different_split():
    first, again, other = split_of(1), split_of(1), split_of(2)
    for a, b in zip(first, again, strict=True):
        assert torch.equal(a, b)
    assert not torch.equal(first[2], other[2])
    assert not torch.equal(first[1], other[1])
    # Per-user counts do not depend on the seed.
    assert torch.equal(torch.bincount(first[2][0]), torch.bincount(other[2][0]))


def test_test_ratio_zero_holds_out_nothing():
    data = build_dataset(table(ROWS), split="random", test_ratio=0.0, val_ratio=0.0)
    assert data[INTERACTS].test_edge_index.size(1) == 0
    assert set(raw_pairs(data)) == set(ROWS)


@pytest.mark.parametrize("kw, name", [({"test_ratio": 1.0}, "test_ratio"),
                                      ({"val_ratio": -0.1}, "val_ratio"),
                                      ({"split": "temporal"}, "unknown split")])
def test_bad_split_settings_are_config_errors(kw, name):
    with pytest.raises(ConfigError, match=name):
        build_dataset(table(ROWS), **kw)


# -- leave-one-out by time ------------------------------------------------------------

LOO_ROWS = [("a", "x"), ("a", "y"), ("a", "z"), ("a", "w"),
            ("b", "x"), ("b", "y"),
            ("c", "z"),
            ("d", "p"), ("d", "q"), ("d", "p")]   # d: p again, later
LOO_TIME = [5, 1, 9, 3,
            20, 10,
            7,
            1, 2, 100]


def test_loo_holds_out_exactly_each_users_latest_row():
    data = build_dataset(table(LOO_ROWS, LOO_TIME), split="loo", val_ratio=0.0)
    # a: z (t=9); b: x (t=20); c has one row; d: p, whose repeat at t=100 is the latest.
    assert sorted(raw_pairs(data, "test_edge_index")) == [("a", "z"), ("b", "x"), ("d", "p")]
    assert sorted(raw_pairs(data)) == [("a", "w"), ("a", "x"), ("a", "y"), ("b", "y"),
                                       ("c", "z"), ("d", "q")]
    assert data.duplicates_merged == 1


def test_loo_validation_is_the_latest_training_row():
    data = build_dataset(table(LOO_ROWS, LOO_TIME), split="loo", val_ratio=0.1)
    assert sorted(raw_pairs(data, "test_edge_index")) == [("a", "z"), ("b", "x"), ("d", "p")]
    # a's training rows left: x (5), y (1), w (3) -> x; b and d have one row left.
    assert raw_pairs(data, "val_edge_index") == [("a", "x")]


def test_loo_without_timestamps_is_a_clear_config_error(write):
    with pytest.raises(ConfigError, match="leave-one-out split needs timestamps") as exc:
        build_dataset(table(ROWS, name="no-time"), split="loo")
    assert "'no-time'" in str(exc.value) and "--split random" in str(exc.value)
    path = write("t.txt", "a x\na y\n")
    with pytest.raises(ConfigError, match="needs timestamps"):
        load_dataset(str(path), split="loo")


# -- fixed splits -------------------------------------------------------------------------


def test_fixed_split_drops_and_counts_unseen_test_items(write, tmp_path):
    write("f/train.txt", "u1 a 1\nu1 b 1\nu2 a 1\nu2 a 1\n")
    write("f/test.txt", "u1 c 1\nu2 b 1\nu3 a 1\nu1 d 1\nu2 b 1\n")
    data = load_dataset(str(tmp_path / "f"), val_ratio=0)
    assert data.split == "fixed"
    assert data[USER].raw_id == ["u1", "u2"] and data[ITEM].raw_id == ["a", "b"]
    # c and d never occur in training: 2 rows dropped; u3 is unknown: 1 row dropped.
    assert data.test_dropped_unseen == 2
    assert data.test_dropped_unknown_user == 1
    assert raw_pairs(data, "test_edge_index") == [("u2", "b")]
    assert raw_pairs(data) == [("u1", "a"), ("u1", "b"), ("u2", "a")]
    assert data.duplicates_merged == 1


def test_fixed_line_format_counts_unseen_items_but_keeps_their_ids(write, tmp_path):
    # (A line longer than 3 columns tells this format from triples.)
    write("g/train.txt", "0 0 1 4\n1 1\n")
    write("g/test.txt", "0 2\n1 0 3\n")
    data = load_dataset(str(tmp_path / "g"), val_ratio=0)
    # The id spaces span both files (items 0..4), but items 2 and 3 are unseen in training.
    assert data[ITEM].num_nodes == 5
    assert data.test_dropped_unseen == 2
    assert data[INTERACTS].test_edge_index.tolist() == [[1], [0]]


def test_fixed_split_with_validation_keeps_test_as_given(write, tmp_path):
    # u2 has items i10 and i11 too, so that u0's and u1's test items are known items.
    write("f/train.txt", "".join(f"u{u} i{k} 1\n" for u in range(3)
                                 for k in range(12 if u == 2 else 10)))
    write("f/test.txt", "u0 i10 1\nu1 i11 1\n")
    data = load_dataset(str(tmp_path / "f"), val_ratio=0.2)
    assert raw_pairs(data, "test_edge_index") == [("u0", "i10"), ("u1", "i11")]
    # floor(0.2 * 10) = 2 validation rows per user (floor(0.2 * 12) = 2), out of training.
    assert dict(per_user(raw_pairs(data, "val_edge_index"))) == {"u0": 2, "u1": 2, "u2": 2}
    assert data[INTERACTS].edge_index.size(1) == 26


def test_fixed_split_test_pairs_that_are_training_pairs_are_removed_and_counted(write,
                                                                                 tmp_path):
    write("g/train.txt", "".join(f"u{u} i{k} 1\n" for u in range(3)
                                 for k in range(12 if u == 2 else 10)))
    write("g/test.txt", "u0 i3 1\nu1 i11 1\nu2 i9 1\n")  # u0-i3 and u2-i9 are training pairs
    data = load_dataset(str(tmp_path / "g"), val_ratio=0.0)
    assert raw_pairs(data, "test_edge_index") == [("u1", "i11")]
    assert summary(data)["test_dropped_in_train"] == 2


def test_fixed_split_of_a_dataset_without_one(write):
    with pytest.raises(ConfigError, match="no fixed train/test"):
        build_dataset(table(ROWS), split="fixed")


# -- social links ---------------------------------------------------------------------


def test_social_users_absent_from_ratings_are_extra_users(write, tmp_path):
    write("s/ratings.txt", "a x 3\nb y 1\na y 2\n")
    write("s/trusts.txt", "a b\nb a\na z\nz q\na b\nb b\n")
    data = load_dataset(str(tmp_path / "s"), val_ratio=0, test_ratio=0.0)
    assert data[USER].raw_id == ["a", "b", "z", "q"]
    assert data[USER].num_nodes == 4
    users = data[USER].raw_id
    links = [(users[s], users[d]) for s, d in data[FOLLOWS].edge_index.t().tolist()]
    # Duplicates merged, the self-loop b-b dropped, sorted by (source, target).
    assert links == [("a", "b"), ("a", "z"), ("b", "a"), ("z", "q")]
    # The extra users have no interactions; ratings are untouched.
    assert sorted(raw_pairs(data)) == [("a", "x"), ("a", "y"), ("b", "y")]


# -- real data -------------------------------------------------------------------------


@pytest.mark.realdata
def test_lastfm_80_20_fixed_split(real_dataset, data_root):
    real_dataset("lastfm/split-80-20")
    data = load_dataset("lastfm-80-20", root=data_root, val_ratio=0)
    store = data[INTERACTS]
    assert data[USER].num_nodes == 1892
    assert data[ITEM].num_nodes == 15425
    assert store.edge_index.size(1) == 74287
    assert store.test_edge_index.size(1) == 16239
    assert data.test_dropped_unseen == 2308
    assert data.test_dropped_unknown_user == 0
    assert torch.unique(store.test_edge_index[0]).numel() == 1873


@pytest.mark.realdata
def test_gowalla_fixed_split(real_dataset, data_root):
    real_dataset("gowalla")
    data = load_dataset("gowalla", root=data_root, val_ratio=0)
    store = data[INTERACTS]
    assert data[USER].num_nodes == 29858
    assert data[ITEM].num_nodes == 40981
    assert store.edge_index.size(1) == 810128
    assert store.test_edge_index.size(1) == 217242
    assert data.test_dropped_unseen == 0 and data.duplicates_merged == 0


@pytest.mark.realdata
def test_ml_100k_counts_split_and_genres(real_dataset, data_root):
    folder = real_dataset("ml-100k")
    data = load_dataset("ml-100k", root=data_root, val_ratio=0, seed=0)
    store = data[INTERACTS]
    assert data[USER].num_nodes == 943
    assert data[ITEM].num_nodes == 1682
    assert store.edge_index.size(1) + store.test_edge_index.size(1) == 100000
    assert data.duplicates_merged == 0
    # Test share per user, counted from the file itself: max(1, n // 5) for n >= 2.
    rows = Path(folder, "ml-100k.inter").read_text().splitlines()[1:]
    counts = Counter(line.split("\t")[0] for line in rows if line.strip())
    expected = sum(max(1, n // 5) for n in counts.values() if n >= 2)
    assert store.test_edge_index.size(1) == expected
    # 19 genres (class) and 73 release years; the title is not an attribute.
    assert data.attr_fields == ["class", "release_year"]
    fields = Counter(data.attr_fields[f] for f in data["attr"].field.tolist())
    assert fields == {"class": 19, "release_year": 73}


@pytest.mark.realdata
def test_lastfm_social_links_and_totals(real_dataset, data_root):
    real_dataset("lastfm")
    data = load_dataset("lastfm", root=data_root)
    store = data[INTERACTS]
    assert data[FOLLOWS].edge_index.size(1) == 25434
    assert data[USER].num_nodes == 1892
    assert data[ITEM].num_nodes == 17632
    assert sum(store[k].size(1) for k in SPLIT_KEYS) == 92834
