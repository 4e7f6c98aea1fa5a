"""``ssgraphrec data download``: fetch a dataset's files, verified by SHA-256.

Every folder of the data root comes from one upstream repository at a pinned commit,
with the SHA-256 and size of each file (``sources.yaml`` beside this module). A file is
fetched into ``<file>.part`` (resumed with an HTTP range request when a partial one is
there, restarted when the server ignores the range), checked against its SHA-256, and
only then renamed into place: a folder never holds a file that is not the pinned one.

``mirror`` (or ``$SSGRAPHREC_MIRROR``) fetches ``MIRROR/<folder>/<file>`` instead, the
layout of the data root itself, so any static HTTP server over a copy of a data root
serves a cluster without internet; the checksums are the same.
"""

from __future__ import annotations

import functools
import hashlib
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from tqdm.auto import tqdm

from ..errors import SSGraphRecError

SOURCES = Path(__file__).with_name("sources.yaml")
MIRROR_ENV = "SSGRAPHREC_MIRROR"
RAW_URL = "https://raw.githubusercontent.com/{repository}/{ref}/{path}/{file}"
CHUNK = 1 << 16


class ChecksumError(SSGraphRecError):
    """A fetched file is not the pinned one."""


@dataclass(frozen=True)
class RemoteFile:
    """One file of a data folder: where it lies upstream and what it must hash to."""

    folder: str
    name: str
    sha256: str
    size: int
    url: str | None   # None: derived locally (lastfm/split-80-20)

    def target(self, root: Path) -> Path:
        return root / self.folder / self.name


@functools.cache
def sources() -> dict[str, Any]:
    return yaml.safe_load(SOURCES.read_text(encoding="utf-8"))


def folder_files(folder: str) -> list[RemoteFile]:
    """The pinned files of one data folder."""
    entry = sources()[folder]
    out = []
    for name, meta in entry["files"].items():
        url = None
        if "repository" in entry:
            url = RAW_URL.format(repository=entry["repository"], ref=meta.get("ref", entry["ref"]),
                                 path=entry["path"], file=name)
        out.append(RemoteFile(folder, name, meta["sha256"], int(meta["size"]), url))
    return out


def folders_of(dataset: str) -> list[str]:
    """The data folders a registered dataset reads, the ones it derives from first."""
    from .registry import DATASETS

    spec = DATASETS.get(dataset)
    if spec.path is None:
        raise SSGraphRecError(f"dataset {dataset!r} is built in: nothing to download")
    if spec.path not in sources():
        raise SSGraphRecError(f"no pinned source for dataset {dataset!r} (folder {spec.path})")
    base = sources()[spec.path].get("derived_from")
    return ([base] if base else []) + [spec.path]


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def status(folder: str, root: Path) -> str:
    """``present`` (every file there with its pinned SHA-256), ``absent`` (no file),
    ``partial`` (some files missing) or ``corrupt: FILE`` (a checksum differs)."""
    files = folder_files(folder)
    there = [f for f in files if f.target(root).is_file()]
    for f in there:
        if f.target(root).stat().st_size != f.size or sha256_of(f.target(root)) != f.sha256:
            return f"corrupt: {f.folder}/{f.name} (checksum differs)"
    if not there:
        return "absent"
    return "present" if len(there) == len(files) else "partial"


def download(dataset: str, root: Path, *, mirror: str | None = None, timeout: float = 30.0,
             progress: bool = True, log: Callable[[str], None] = print) -> list[Path]:
    """Fetch (or derive) every file of ``dataset`` into ``root`` that is not there with
    its pinned SHA-256; returns the files written."""
    mirror = mirror or os.environ.get(MIRROR_ENV) or None
    written = []
    for folder in folders_of(dataset):
        entry = sources()[folder]
        for remote in folder_files(folder):
            target = remote.target(root)
            if target.is_file() and target.stat().st_size == remote.size \
                    and sha256_of(target) == remote.sha256:
                continue
            if remote.url is None and not mirror:
                DERIVATIONS[entry["derive"]](root)
                verify(target, remote)
            else:
                url = (f"{mirror.rstrip('/')}/{folder}/{remote.name}" if mirror else remote.url)
                fetch(url, remote, root, timeout=timeout, progress=progress)
            written.append(target)
            log(f"{folder}/{remote.name}: {remote.size:,} bytes, SHA-256 verified")
    return written


def verify(path: Path, remote: RemoteFile) -> None:
    """Remove ``path`` and raise :class:`ChecksumError` unless it hashes to the pinned value."""
    got = sha256_of(path)
    if got != remote.sha256:
        path.unlink(missing_ok=True)
        raise ChecksumError(f"{remote.folder}/{remote.name}: SHA-256 {got}, expected "
                            f"{remote.sha256}; the file was removed (a changed upstream or a "
                            "tampered mirror)")


def fetch(url: str, remote: RemoteFile, root: Path, *, timeout: float = 30.0,
          progress: bool = True) -> Path:
    """Download ``url`` into ``remote``'s place: ``.part`` first (resumed when there),
    checked, then renamed."""
    target = remote.target(root)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SSGraphRecError(f"cannot write the data folder {target.parent}: "
                              f"{exc.strerror or exc}; pick another --root") from None
    part = target.with_name(target.name + ".part")
    have = part.stat().st_size if part.is_file() else 0
    if have > remote.size:
        part.unlink()
        have = 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            if have and response.status != 206:   # the server ignored the range: restart
                have = 0
            _stream(response, part, have, remote, progress)
    except urllib.error.HTTPError as exc:
        raise SSGraphRecError(_unreachable(url, target, f"HTTP {exc.code} {exc.reason}")) from None
    except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise SSGraphRecError(_unreachable(url, target, str(reason))) from None
    got = part.stat().st_size
    if got != remote.size:
        raise SSGraphRecError(f"{remote.folder}/{remote.name}: the transfer ended at {got:,} of "
                              f"{remote.size:,} bytes; run the command again to resume it "
                              f"({part} is kept)")
    verify(part, remote)
    os.replace(part, target)
    return target


def _stream(response, part: Path, have: int, remote: RemoteFile, progress: bool) -> None:
    mode = "ab" if have else "wb"
    bar = tqdm(total=remote.size, initial=have, unit="B", unit_scale=True, leave=False,
               desc=f"{remote.folder}/{remote.name}", disable=not progress, file=sys.stderr)
    with open(part, mode) as handle, bar:
        while True:
            chunk = response.read(CHUNK)
            if not chunk:
                break
            handle.write(chunk)
            bar.update(len(chunk))


def _unreachable(url: str, target: Path, reason: str) -> str:
    return (f"could not fetch {url} ({reason}); place the file by hand at {target} (its "
            f"SHA-256 is in ssgraphrec/data/sources.yaml), or fetch from a mirror with "
            f"--mirror URL (or ${MIRROR_ENV})")


# -- folders made here, not fetched --------------------------------------------------

def derive_lastfm_80_20(root: Path) -> None:
    """``lastfm/split-80-20/{train,test}.txt`` from ``lastfm/ratings.txt``, by the rule of
    the folder's ``make_split.py``: numpy ``RandomState(0)``; users in ascending id; a
    user with ``n >= 2`` rows sends ``max(1, floor(0.2 n))`` of them, chosen by
    ``rng.permutation(n)`` over the user's rows in file order, to test; rows written in
    file order as ``user item 1``."""
    rows = np.asarray([tuple(int(x) for x in line.split("\t")[:2])
                       for line in (root / "lastfm" / "ratings.txt").read_text().splitlines()
                       if line.strip()], dtype=np.int64)
    is_test = np.zeros(len(rows), dtype=bool)
    rng = np.random.RandomState(0)
    order = np.argsort(rows[:, 0], kind="stable")
    _, starts, counts = np.unique(rows[order, 0], return_index=True, return_counts=True)
    for start, n in zip(starts, counts, strict=True):
        if n < 2:
            continue
        idx = order[start:start + n]
        is_test[idx[rng.permutation(n)[:max(1, int(np.floor(0.2 * n)))]]] = True
    out = root / "lastfm" / "split-80-20"
    out.mkdir(parents=True, exist_ok=True)
    for name, keep in (("train.txt", ~is_test), ("test.txt", is_test)):
        part = out / f"{name}.part"
        part.write_text("".join(f"{u} {i} 1\n" for u, i in rows[keep]))
        os.replace(part, out / name)


DERIVATIONS: dict[str, Callable[[Path], None]] = {"lastfm_80_20": derive_lastfm_80_20}
