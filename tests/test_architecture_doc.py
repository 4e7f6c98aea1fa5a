"""The worked example of docs/architecture.md ("Adding a method in one file") works as
the page says: registered, through every contract test, and trained by the package."""

from __future__ import annotations

import json
import re
import sys
import types
from pathlib import Path

import pytest
import test_contract as contract

from ssgraphrec.config import RunConfig
from ssgraphrec.methods import METHODS

DOC = Path(__file__).parent.parent / "docs" / "architecture.md"


def example_source() -> str:
    text = DOC.read_text(encoding="utf-8")
    section = text[text.index("## Adding a method in one file"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.fixture
def mfcl():
    """The example, loaded as the module ``ssgraphrec.methods.mfcl`` would be."""
    module = types.ModuleType("mfcl_example")
    sys.modules[module.__name__] = module
    try:
        exec(compile(example_source(), str(DOC), "exec"), module.__dict__)
        yield METHODS.get("mfcl")
    finally:
        METHODS._items.pop("mfcl", None)   # leave the registry as the package has it
        sys.modules.pop(module.__name__, None)


def test_the_example_method_passes_the_contract_and_trains(mfcl, tmp_path):
    assert mfcl.__name__ == "MFCL" and "mfcl" in METHODS
    data = contract.data_for.__wrapped__("mfcl", "ranking")
    first = contract.loss_terms(contract.construct(mfcl, data), data)
    again = contract.loss_terms(contract.construct(mfcl, data), data)
    assert set(first) == {"bpr", "reg", "ssl"} and all(v.isfinite() for v in first.values())
    assert all(first[k] == again[k] for k in first)
    assert contract.leaked(contract.construct(mfcl, data), data) == 0

    from ssgraphrec.train import train

    run_dir, results = train(RunConfig(method="mfcl", epochs=2, params={"emb_dim": 8}),
                             str(tmp_path / "run"), progress=False, log=lambda msg: None)
    assert results["test"]["recall@20"] > 0
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert set(lines[-1]["loss"]) == {"bpr", "reg", "ssl"}
