"""Studies: the measurements behind docs/benchmarks.md and the method pages.

Each module here is one study, with an ``argparse`` ``main()``: run it as
``ssgraphrec bench study NAME [OPTIONS]`` (``ssgraphrec bench study NAME --help``
lists its options, ``ssgraphrec bench study --list`` the studies), from the
repository root, where its default output goes to ``benchmarks/results/`` and
the shared data is looked for in ``$SSGRAPHREC_DATA`` or ``../shared/data``.
``benchmarks/NAME.py`` in the repository is the same command as a script.

The leaderboards users run most, ``ssgraphrec bench quality`` and
``ssgraphrec bench speed``, live beside this package (:mod:`ssgraphrec.bench`).
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import platform
import sys
from pathlib import Path

from ...errors import SSGraphRecError

#: The repository root the studies run from: their outputs go to ``REPO/benchmarks/results``
#: and their data defaults to ``REPO/../shared/data``.
REPO = Path.cwd()
#: Where the studies write their results by default.
RESULTS = REPO / "benchmarks" / "results"


#: The environment variable naming the shared data folder, as for ``ssgraphrec train``.
DATA_ENV = "SSGRAPHREC_DATA"


def shared_data(study: str, *folders: str) -> Path:
    """The data folder (``$SSGRAPHREC_DATA``, else ``REPO/../shared/data``); the study
    exits with one line naming what is missing when it lacks one of ``folders``."""
    env = os.environ.get(DATA_ENV)
    root = Path(env).expanduser() if env else REPO.parent / "shared" / "data"
    missing = [f for f in folders if not (root / f).is_dir()]
    if missing:
        sys.exit(f"{study}: the data folder {root} lacks {', '.join(f + '/' for f in missing)}; "
                 f"set {DATA_ENV} to the folder that holds it (default: ../shared/data "
                 "relative to the repository root)")
    return root


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def write_result(out: Path, result: dict) -> None:
    """Write a study's ``result`` as indented JSON to ``out``, its folder made if needed."""
    import json

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")


def study_names() -> list[str]:
    """The studies of this package, by module name."""
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))


def describe(name: str) -> str:
    """The first line of a study's docstring."""
    module = importlib.import_module(f"{__name__}.{name}")
    return (module.__doc__ or "").strip().splitlines()[0] if module.__doc__ else ""


def run_study(name: str, argv: list[str]) -> None:
    """Run study ``name`` with command-line arguments ``argv`` (its ``main()``). A bad
    setting the package names (an unknown method, a setting the method lacks) ends the
    study with that one message and exit status 1, from ``benchmarks/NAME.py`` as from
    ``ssgraphrec bench study``.

    The heap setting of the command line (:func:`ssgraphrec.heap.retain_freed_memory`)
    applies here too, so that ``python benchmarks/NAME.py`` times what
    ``ssgraphrec bench study NAME`` and ``ssgraphrec train`` run; without it a lastfm
    epoch of a contrastive method faulted in 50,000 to 160,000 fresh pages.
    ``SSGRAPHREC_HEAP=system`` leaves ``malloc`` as the system sets it.
    """
    from ... import heap

    names = study_names()
    if name not in names:
        raise SSGraphRecError(f"unknown study {name!r}; studies: {', '.join(names)}")
    try:
        heap.retain_freed_memory()
    except SSGraphRecError as exc:  # a bad SSGRAPHREC_HEAP, as the command line reports it
        raise SystemExit(f"Error: {exc}") from exc
    module = importlib.import_module(f"{__name__}.{name}")
    saved = sys.argv
    sys.argv = [f"ssgraphrec bench study {name}", *argv]
    try:
        module.main()
    except SSGraphRecError as exc:
        raise SystemExit(f"Error: {exc}") from exc
    finally:
        sys.argv = saved
