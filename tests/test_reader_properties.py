"""Property-based tests of the readers (hypothesis): well-formed files round-trip, and
corrupted ones fail only with the package's own error, never a crash."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ssgraphrec.data import load_dataset
from ssgraphrec.data.readers.line_format import read_line_file
from ssgraphrec.data.readers.triples import read_triples
from ssgraphrec.errors import SSGraphRecError

#: Random corruptions run under a 2 GiB allocation cap (conftest.memory_cap).
pytestmark = pytest.mark.usefixtures("memory_cap")

FAST = settings(max_examples=40, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])
ID = st.text(alphabet="abcxyz0123456789_", min_size=1, max_size=6)
WEIGHT = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)
ROWS = st.lists(st.tuples(ID, ID, WEIGHT), min_size=1, max_size=30)


def write(text: str | bytes, name: str = "data.txt") -> Path:
    folder = Path(tempfile.mkdtemp(prefix="ssgraphrec-prop-"))
    path = folder / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


@FAST
@given(ROWS, st.sampled_from([" ", "\t"]))
def test_triples_round_trip(rows, sep):
    path = write("".join(f"{u}{sep}{i}{sep}{w!r}\n" for u, i, w in rows))
    got = read_triples(path)
    assert list(got.user) == [u for u, _, _ in rows]
    assert list(got.item) == [i for _, i, _ in rows]
    assert np.allclose(got.weight, np.asarray([w for _, _, w in rows], dtype=np.float32))


@FAST
@given(st.dictionaries(st.integers(0, 500), st.lists(st.integers(0, 500), max_size=8),
                       min_size=1, max_size=20))
def test_line_format_round_trip(lines):
    path = write("".join(f"{u} " + " ".join(map(str, items)) + "\n"
                         for u, items in lines.items()))
    got = read_line_file(path)
    pairs = [(str(u), str(i)) for u, items in lines.items() for i in items]
    assert list(zip(got.user, got.item, strict=True)) == pairs


VALID = "".join(f"u{u} i{(u * 5 + k * 3) % 40} {1 + k % 3}\n" for u in range(30) for k in range(6))


@FAST
@given(st.lists(st.tuples(st.integers(0, len(VALID) - 1), st.binary(min_size=0, max_size=3)),
                min_size=1, max_size=6))
def test_corrupted_triples_fail_only_with_the_packages_error(edits):
    data = bytearray(VALID.encode())
    for pos, new in edits:  # replace one byte by 0-3 arbitrary bytes
        data[pos:pos + 1] = new
    path = write(bytes(data))
    try:
        load_dataset(str(path), val_ratio=0.1, seed=0)
    except SSGraphRecError:
        pass  # a clear error is fine; any other exception fails the test


LINES = "".join(f"{u} " + " ".join(str((u * 3 + k) % 25) for k in range(5)) + "\n"
                for u in range(20))


@FAST
@given(st.lists(st.tuples(st.integers(0, len(LINES) - 1), st.binary(min_size=0, max_size=3)),
                min_size=1, max_size=6))
def test_corrupted_line_format_splits_fail_only_with_the_packages_error(edits):
    data = bytearray(LINES.encode())
    for pos, new in edits:
        data[pos:pos + 1] = new
    train = write(bytes(data), "train.txt")
    (train.parent / "test.txt").write_text("".join(f"{u} {(u * 7) % 25}\n" for u in range(20)))
    try:
        load_dataset(str(train.parent), val_ratio=0.1, seed=0)
    except SSGraphRecError:
        pass
