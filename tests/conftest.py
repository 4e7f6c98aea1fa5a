"""Shared fixtures: the real-data folder, small data files and CLI helpers."""

from __future__ import annotations

import os
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
