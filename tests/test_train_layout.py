"""The trainer stays a short loop: no method discovered by hasattr/getattr in
train/trainer.py, and no function in train/ over 60 lines (the redesign's contract)."""

from __future__ import annotations

import ast
from pathlib import Path

TRAIN = Path(__file__).parent.parent / "ssgraphrec" / "train"


def test_no_function_in_train_is_over_60_lines():
    long = []
    for path in sorted(TRAIN.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > 60:
                    long.append(f"{path.name}:{node.name} ({lines} lines)")
    assert not long, long


def test_the_trainer_never_asks_a_method_what_it_is():
    tree = ast.parse((TRAIN / "trainer.py").read_text())
    calls = [node.func.id for node in ast.walk(tree)
             if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)]
    assert "hasattr" not in calls and "getattr" not in calls
