"""Every ``ssgraphrec`` command of README.md and docs/getting-started.md parses: its
subcommand exists, ``--help`` succeeds on it, and every option it uses is one of its
options. The docs build with mkdocs in CI (.ci/run)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from ssgraphrec.cli import main

ROOT = Path(__file__).parent.parent
DOCS = [ROOT / "README.md", ROOT / "docs" / "getting-started.md"]


def commands(path: Path) -> list[str]:
    """The ``ssgraphrec ...`` lines of the shell blocks of ``path``, continuations joined."""
    out = []
    for block in re.findall(r"```(?:bash|sh|console)?\n(.*?)```", path.read_text(), re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #")[0].strip()
            found = re.search(r"(?:^|\s)ssgraphrec (.*)$", line)
            if found and not line.startswith(("pip", "python -m pip", "git")):
                out.append(found.group(1))
    return out


CASES = [(path.name, cmd) for path in DOCS for cmd in commands(path)]


def test_the_docs_have_commands_to_check():
    assert len(CASES) >= 30, len(CASES)


@pytest.mark.parametrize("where,command", CASES)
def test_documented_command_parses(where, command):
    tokens = shlex.split(command)
    cmd: click.Command = main
    path = []
    while isinstance(cmd, click.Group) and tokens and tokens[0] in cmd.commands:
        path.append(tokens[0])
        cmd = cmd.commands[tokens.pop(0)]
    assert path, f"{where}: unknown subcommand in 'ssgraphrec {command}'"
    result = CliRunner().invoke(main, [*path, "--help"])
    assert result.exit_code == 0, result.output
    known = {opt for param in cmd.params for opt in (*param.opts, *param.secondary_opts)}
    used = [t.split("=")[0] for t in tokens if t.startswith("-") and not _is_number(t)]
    unknown = [opt for opt in used if opt not in known]
    assert not unknown, f"{where}: 'ssgraphrec {command}' uses unknown option(s) {unknown}"


def _is_number(token: str) -> bool:
    try:
        float(token)
        return True
    except ValueError:
        return False
