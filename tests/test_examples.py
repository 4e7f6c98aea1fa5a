"""The scripts of examples/ run as a user would run them, and their methods beat MostPop."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = sorted((Path(__file__).parent.parent / "examples").glob("*.py"))


def test_there_are_the_three_examples():
    assert {p.name for p in EXAMPLES} >= {"compose_transforms.py", "add_a_method.py",
                                          "own_csv.py"}


@pytest.mark.slow
@pytest.mark.parametrize("script", EXAMPLES, ids=lambda p: p.name)
def test_example_runs_and_beats_popularity(script, tmp_path):
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    found = re.search(r"test recall@20 ([0-9.]+) \(MostPop ([0-9.]+)\)", proc.stdout)
    assert found, proc.stdout
    assert float(found.group(1)) > 1.5 * float(found.group(2)), proc.stdout
