"""Shared fixtures: the real-data folder, small data files and CLI helpers."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

DATA_ENV = "SSGRAPHREC_DATA"


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The folder of the public datasets (``$SSGRAPHREC_DATA``); skips when absent."""
    env = os.environ.get(DATA_ENV)
    if not env:
        pytest.skip(f"real data: set {DATA_ENV} to the folder of the public datasets "
                    "(e.g. SSGRAPHREC_DATA=../shared/data) to run this test")
    root = Path(env).expanduser()
    if not root.is_dir():
        pytest.skip(f"real data: {DATA_ENV}={env} is not a folder")
    return root


@pytest.fixture
def real_dataset(data_root: Path) -> Callable[[str], Path]:
    """``real_dataset("gowalla")`` is ``data_root/gowalla``, or a skip naming what is missing."""

    def _get(sub: str) -> Path:
        path = data_root / sub
        if not path.exists():
            pytest.skip(f"real data: {path} is absent")
        return path

    return _get


@pytest.fixture
def write(tmp_path: Path) -> Callable[[str, str], Path]:
    """``write("a/b.txt", text)`` writes ``text`` under ``tmp_path`` and returns the path."""

    def _write(name: str, text: str) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return path

    return _write


#: How much more data memory a bad-input case may allocate (RLIMIT_DATA headroom).
MEMORY_CAP_BYTES = 2 * 2**30


def data_memory_bytes() -> int:
    """This process's data memory now (``VmData`` of /proc/self/status), in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmData:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmData in /proc/self/status")


@pytest.fixture
def memory_cap():
    """No bad-input case may allocate more than 2 GiB beyond what the process held
    before it: ``RLIMIT_DATA`` is set to that for the case (processes it starts inherit
    the limit), so a blow-up fails the case with an allocation error instead of
    swamping the machine (an id of 10**12 once grew a run to 23.8 GB). Linux only."""
    if not sys.platform.startswith("linux"):
        yield None
        return
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
    limit = data_memory_bytes() + MEMORY_CAP_BYTES
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_DATA, (limit, hard))
    try:
        yield limit
    finally:
        resource.setrlimit(resource.RLIMIT_DATA, (soft, hard))


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """Run a module's tiny workloads on one thread.

    On a busy 2-core machine a 2-thread pool spends more time waiting for its
    other thread than computing (10x slower epochs were seen); the workloads of
    these tests are far too small to gain from it.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """Say what the registry-wide contract tests covered, when they ran."""
    ran = any("test_contract.py" in getattr(report, "nodeid", "")
              and getattr(report, "when", None) == "call"
              for reports in terminalreporter.stats.values() for report in reports)
    if ran:
        from test_contract import coverage_line

        terminalreporter.write_line(coverage_line())
