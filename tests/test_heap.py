"""The heap policy (ssgraphrec/heap.py): what it asks of glibc, when it stands aside, that
the command line applies it (or reports a bad policy in one line), and that a 20 MiB
block then comes from the heap instead of a fresh mapping."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest
from click.testing import CliRunner

from ssgraphrec import heap
from ssgraphrec.cli import main
from ssgraphrec.errors import ConfigError

ON_GLIBC = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"


class FakeLibc:
    """Records ``mallopt`` calls and answers success."""

    def __init__(self):
        self.calls: list[tuple[int, int]] = []

    def mallopt(self, param: int, value: int) -> int:
        self.calls.append((param, value))
        return 1


@pytest.fixture
def fake_libc(monkeypatch):
    libc = FakeLibc()
    monkeypatch.setattr(heap, "_glibc", lambda: libc)
    for name in (heap.HEAP_ENV, "GLIBC_TUNABLES", *heap.GLIBC_SETTINGS):
        monkeypatch.delenv(name, raising=False)
    return libc


def test_retain_sets_glibc_mmap_and_trim_thresholds(fake_libc):
    assert heap.retain_freed_memory() is True
    # malloc.h: M_MMAP_THRESHOLD is -3, M_TRIM_THRESHOLD -1; mallopt takes an int
    assert fake_libc.calls == [(-3, 32 * 2**20), (-1, 2**31 - 1)]
    assert all(value < 2**31 for _, value in fake_libc.calls)


@pytest.mark.parametrize("name, value", [
    ("SSGRAPHREC_HEAP", "system"),
    ("SSGRAPHREC_HEAP", " System "),
    ("MALLOC_TRIM_THRESHOLD_", "1000000"),
    ("MALLOC_MMAP_THRESHOLD_", "1000000"),
    ("GLIBC_TUNABLES", "glibc.malloc.trim_threshold=1000000"),
])
def test_user_choice_leaves_malloc_alone(fake_libc, monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    assert heap.retain_freed_memory() is False
    assert fake_libc.calls == []


def test_unrelated_glibc_tunables_do_not_count(fake_libc, monkeypatch):
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.cpu.hwcaps=-AVX2")
    assert heap.retain_freed_memory() is True


def test_without_glibc_nothing_is_called(monkeypatch):
    monkeypatch.setattr(heap, "_glibc", lambda: None)
    monkeypatch.delenv(heap.HEAP_ENV, raising=False)
    assert heap.retain_freed_memory() is False


def test_bad_policy_is_a_config_error(monkeypatch):
    monkeypatch.setenv(heap.HEAP_ENV, "keep")
    with pytest.raises(ConfigError, match="SSGRAPHREC_HEAP must be 'retain' or 'system'"):
        heap.retain_freed_memory()


def test_command_line_applies_it_and_reports_a_bad_policy(monkeypatch):
    calls = []
    monkeypatch.setattr(heap, "retain_freed_memory", lambda: calls.append(1) or True)
    result = CliRunner().invoke(main, ["methods"])
    assert result.exit_code == 0 and calls == [1]

    monkeypatch.undo()
    monkeypatch.setenv(heap.HEAP_ENV, "keep")
    result = CliRunner().invoke(main, ["methods"])
    assert result.exit_code == 1
    assert "SSGRAPHREC_HEAP must be 'retain' or 'system'" in result.output
    assert "Traceback" not in result.output


MAPPED_SCRIPT = """
import ctypes, sys, torch
from ssgraphrec.heap import retain_freed_memory

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
        "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = MallInfo2
applied = retain_freed_memory() if sys.argv[1] == "retain" else False
mapped = libc.mallinfo2().hblkhd                  # bytes in mmap-ed blocks
block = torch.empty(5 * 2**20)                    # 20 MiB
print(applied, (libc.mallinfo2().hblkhd - mapped) // 2**20)
"""


def has_mallinfo2() -> bool:
    import ctypes

    try:
        return hasattr(ctypes.CDLL("libc.so.6"), "mallinfo2")   # glibc >= 2.33
    except OSError:
        return False


@pytest.mark.skipif(not ON_GLIBC or not has_mallinfo2(),
                    reason="the heap policy applies to glibc's malloc (mallinfo2: glibc >= 2.33)")
def test_a_20_mib_block_comes_from_the_heap_not_a_fresh_mapping():
    env = {k: v for k, v in os.environ.items()
           if k not in (heap.HEAP_ENV, "GLIBC_TUNABLES", *heap.GLIBC_SETTINGS)}
    out = {}
    for policy in ("system", "retain"):
        done = subprocess.run([sys.executable, "-c", MAPPED_SCRIPT, policy], env=env,
                              capture_output=True, text=True, check=True)
        applied, mapped_mib = done.stdout.split()
        out[policy] = (applied, int(mapped_mib))
    # a fresh process's malloc maps a 20 MiB block on its own (its dynamic threshold
    # starts at 128 KiB); retained, the block comes from the heap, where it is reused
    assert out == {"system": ("False", 20), "retain": ("True", 0)}
