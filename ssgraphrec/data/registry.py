"""Named datasets, resolved against a data directory, and ``load_dataset``.

A name is looked up in :data:`DATASETS` and read from
``$SSGRAPHREC_DATA/<path>`` (default: the user cache directory,
``~/.cache/ssgraphrec``). Anything else is taken as a path to a folder or file
whose format is recognised from the files it holds.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from torch_geometric.data import HeteroData

from ..errors import ConfigError, DataFormatError, SSGraphRecError
from ..registry import Registry
from .build import build_dataset
from .link_negatives import LINK_PREDICTION, add_link_negatives
from .readers import (
    RawDataset,
    read_line_format,
    read_recbole,
    read_triple_dataset,
    read_triple_split,
)
from .readers.bigi import read_bigi_split
from .readers.clicklog import read_clicklog
from .readers.interaction_csv import is_interaction_csv, read_interaction_csv
from .readers.pickle_sessions import read_pickle_sessions
from .readers.s3rec import read_s3rec
from .readers.s3rec_ranking import read_s3rec_interactions
from .readers.triples import diffnet_files, read_diffnet_split, read_triples
from .synthetic import make_synthetic

DATA_ENV = "SSGRAPHREC_DATA"


TASKS = ("ranking", "next_item", "sequential")


@dataclass(frozen=True)
class DatasetSpec:
    """How to read one named dataset and which split it uses by default.

    ``task`` says what the data are: ``"ranking"`` (user-item interactions;
    ``read`` returns a RawDataset that :func:`build_dataset` maps and splits),
    ``"next_item"`` (session samples with next-item labels) or
    ``"sequential"`` (one sequence per user, leave-one-out). For the last two
    ``load(folder, name, val_ratio=, seed=)`` returns the session HeteroData
    itself (see :mod:`ssgraphrec.data.sessions`), with its own fixed split.
    """

    description: str
    path: str | None
    read: Callable[[Path, str], RawDataset] | None
    split: str = "random"
    test_ratio: float = 0.2
    source: str = ""
    task: str = "ranking"
    load: Callable[..., HeteroData] | None = None
    #: Registered names of the same files read for another task (``{"ranking":
    #: "amazon-beauty-ranking"}``): a method of that task given this name runs on the view.
    views: dict[str, str] | None = None
    #: ``"link_prediction"``: evaluated by AUC-ROC / AUC-PR on held-out edges against
    #: seeded sampled non-edges (:mod:`ssgraphrec.data.link_negatives`), not by ranking.
    protocol: str = "ranking"


DATASETS: Registry[DatasetSpec] = Registry("dataset")


def register_dataset(name: str, spec: DatasetSpec) -> None:
    DATASETS.register(name)(spec)


register_dataset("synthetic", DatasetSpec(
    "built-in seeded synthetic data with planted communities and social links (default)",
    None, lambda path, name: make_synthetic(), split="random", test_ratio=0.2,
    source="ssgraphrec.data.synthetic"))
register_dataset("gowalla", DatasetSpec(
    "Gowalla check-ins, the fixed LightGCN/SGL train/test split",
    "gowalla", read_line_format, split="fixed", source="LightGCN line format"))
register_dataset("lastfm", DatasetSpec(
    "LastFM artists with social links (MHCN/SEPT data); 10% test per user "
    "(--val-ratio 0.1112 for 8:1:1, see docs/social.md)",
    "lastfm", read_triple_dataset, split="random", test_ratio=0.1,
    source="QRec/SELFRec triples"))
register_dataset("lastfm-80-20", DatasetSpec(
    "LastFM, the fixed seeded per-user 80/20 split in lastfm/split-80-20",
    "lastfm/split-80-20", read_triple_split, split="fixed", source="SELFRec triples"))
register_dataset("ml-100k", DatasetSpec(
    "MovieLens 100K ratings with genres and user features (RecBole atomic files)",
    "ml-100k", read_recbole, split="random", test_ratio=0.2, source="RecBole atomic files"))
register_dataset("tmall", DatasetSpec(
    "Tmall sessions, next-item samples of DHCN / GCE-GNN (fixed train/test pickles)",
    "tmall", None, split="fixed", source="DHCN/GCE-GNN pickles", task="next_item",
    load=read_pickle_sessions))
register_dataset("diginetica", DatasetSpec(
    "Diginetica sessions, next-item samples of DHCN / GCE-GNN (fixed train/test pickles)",
    "diginetica", None, split="fixed", source="DHCN/GCE-GNN pickles", task="next_item",
    load=read_pickle_sessions))
register_dataset("amazon-beauty", DatasetSpec(
    "Amazon Beauty user sequences with item attributes (S3-Rec/CL4SRec), leave-one-out",
    "amazon-beauty", None, split="loo", source="S3-Rec sequences", task="sequential",
    load=lambda folder, name, **kw: read_s3rec(folder, name, stem="Beauty"),
    views={"ranking": "amazon-beauty-ranking"}))
register_dataset("amazon-sports", DatasetSpec(
    "Amazon Sports and Outdoors user sequences with item attributes (S3-Rec), leave-one-out",
    "amazon-sports", None, split="loo", source="S3-Rec sequences", task="sequential",
    load=lambda folder, name, **kw: read_s3rec(folder, name, stem="Sports_and_Outdoors"),
    views={"ranking": "amazon-sports-ranking"}))
register_dataset("amazon-beauty-ranking", DatasetSpec(
    "Amazon Beauty as user-item interactions with item attributes; leave-one-out by "
    "position (the sequential protocol's validation and test items)",
    "amazon-beauty", lambda folder, name: read_s3rec_interactions(folder, name, stem="Beauty"),
    split="loo", source="S3-Rec sequences"))
register_dataset("amazon-sports-ranking", DatasetSpec(
    "Amazon Sports and Outdoors as user-item interactions with item attributes; "
    "leave-one-out by position",
    "amazon-sports",
    lambda folder, name: read_s3rec_interactions(folder, name, stem="Sports_and_Outdoors"),
    split="loo", source="S3-Rec sequences"))
register_dataset("bigi-ml-100k", DatasetSpec(
    "MovieLens 100K, BiGI's fixed split 1 (u i rating); top-K recommendation",
    "bigi-ml-100k", read_bigi_split, split="fixed", source="BiGI u i w triples"))
register_dataset("bigi-dblp", DatasetSpec(
    "DBLP author-venue graph, BiGI's fixed split; link prediction (AUC-ROC, AUC-PR) "
    "against seeded sampled non-edges",
    "bigi-dblp", read_bigi_split, split="fixed", source="BiGI u i w triples",
    protocol=LINK_PREDICTION))


def data_dir() -> Path:
    """The directory that dataset names are resolved against."""
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "ssgraphrec"


def detect_format(path: Path) -> DatasetSpec:
    """Recognise the format of a folder or file given as ``--dataset PATH``."""
    if path.is_file() and path.suffix.lower() == ".csv" and is_interaction_csv(path):
        return DatasetSpec(f"interactions CSV {path}", str(path), read_interaction_csv)
    if path.is_file() and path.suffix.lower() == ".csv":
        return DatasetSpec(f"click log {path} (SR-GNN preprocessing)", str(path), None,
                           split="fixed", task="next_item",
                           load=lambda p, name, val_ratio=0.1, seed=0:
                           read_clicklog(p, val_ratio=val_ratio, seed=seed, name=name))
    if path.is_file():
        return DatasetSpec(f"triples file {path}", str(path),
                           lambda p, name: RawDataset(name, interactions=read_triples(p)))
    if not path.is_dir():
        raise SSGraphRecError(f"dataset path not found: {path}")
    if any(path.glob("*_item2attributes.json")):
        return DatasetSpec(f"S3-Rec user sequences in {path}", str(path), None, split="loo",
                           task="sequential", load=lambda folder, name, **kw: read_s3rec(folder, name))
    if any(path.glob("*.inter")):
        return DatasetSpec(f"RecBole atomic files in {path}", str(path), read_recbole)
    if (path / "train.txt").is_file() and (path / "test.txt").is_file():
        if _is_pickle(path / "train.txt"):
            return DatasetSpec(f"session pickles (DHCN format) in {path}", str(path), None,
                               split="fixed", task="next_item", load=read_pickle_sessions)
        lines = _is_line_format(path / "train.txt")
        if lines and _looks_like_triples(path / "test.txt"):
            raise DataFormatError(path / "test.txt", None, "every line has 3 columns, like "
                                  "'user item weight' triples, while train.txt is in the "
                                  "LightGCN line format ('user item item ...'): the weights "
                                  "would be read as items", "train.txt and test.txt in one format")
        reader = read_line_format if lines else read_triple_split
        return DatasetSpec(f"fixed split in {path}", str(path), reader, split="fixed")
    if diffnet_files(path) is not None:
        return DatasetSpec(f"DiffNet-style split (*.train/val/test.rating, *.links) in {path}",
                           str(path), read_diffnet_split, split="fixed")
    if (path / "rating_train.dat").is_file() and (path / "rating_test.dat").is_file():
        return DatasetSpec(f"BiGI prefixed split (u0 i0 w) in {path}", str(path),
                           lambda p, name: read_bigi_split(p, name, prefixed=True), split="fixed")
    if (path / "ratings.txt").is_file():
        return DatasetSpec(f"ratings (and trusts) in {path}", str(path), read_triple_dataset)
    raise SSGraphRecError(
        f"cannot tell the format of {path}: expected a RecBole .inter file, train.txt + "
        "test.txt (LightGCN lines or 'user item weight' triples), NAME.train.rating + "
        "NAME.test.rating (DiffNet), or ratings.txt")


def _is_pickle(path: Path) -> bool:
    """Pickles of protocol 2 and later start with the PROTO opcode, byte 0x80."""
    with open(path, "rb") as f:
        return f.read(1) == b"\x80"


def _is_line_format(path: Path, sample: int = 2000) -> bool:
    """LightGCN lines vary in length; triples always have 2-3 columns with a numeric weight."""
    with open(path, encoding="utf-8-sig") as f:
        for k, line in enumerate(f):
            if k >= sample:
                break
            if len(line.split()) > 3:
                return True
    return False


def _looks_like_triples(path: Path, sample: int = 2000, at_least: int = 20) -> bool:
    """Whether at least ``at_least`` sampled lines all have exactly 3 columns (triples)."""
    counts = []
    with open(path, encoding="utf-8-sig") as f:
        for k, line in enumerate(f):
            if k >= sample:
                break
            if line.strip():
                counts.append(len(line.split()))
    return len(counts) >= at_least and all(c == 3 for c in counts)


def resolve(name_or_path: str, root: Path | None = None) -> tuple[str, DatasetSpec, Path | None]:
    """Return (name, spec, folder) for a registered name or a path."""
    if name_or_path in DATASETS:
        spec = DATASETS.get(name_or_path)
        if spec.path is None:
            return name_or_path, spec, None
        folder = (root or data_dir()) / spec.path
        if not folder.exists():
            raise SSGraphRecError(
                f"dataset {name_or_path!r} not found at {folder}; fetch it with 'ssgraphrec "
                f"data download {name_or_path}', or set {DATA_ENV} to the folder that holds "
                f"{spec.path}/")
        return name_or_path, spec, folder
    path = Path(name_or_path).expanduser()
    if not path.exists() and root is None and (data_dir() / name_or_path).exists():
        path = data_dir() / name_or_path
    if not path.exists():
        known = ", ".join(DATASETS)
        raise SSGraphRecError(f"unknown dataset {name_or_path!r}: not a registered name "
                              f"({known}) and not an existing path")
    spec = detect_format(path)
    return path.name, spec, path


@contextlib.contextmanager
def readable_text(where: str | Path) -> Iterator[None]:
    """Turn a ``UnicodeDecodeError`` of a reader into one message naming the data."""
    try:
        yield
    except UnicodeDecodeError as exc:
        byte = exc.object[exc.start:exc.start + 1]
        raise DataFormatError(where, None, f"not UTF-8 text (byte 0x{byte.hex()} at offset "
                              f"{exc.start} of a file)", "UTF-8 text: save the data as UTF-8, or "
                              "check that it is a text file") from None


def load_dataset(name_or_path: str = "synthetic", *, split: str | None = None,
                 test_ratio: float | None = None, val_ratio: float = 0.1, seed: int = 0,
                 root: str | Path | None = None) -> HeteroData:
    """Read, map and split a dataset into the HeteroData of DESIGN.md.

    Args:
        name_or_path: a registered name (``ssgraphrec data list``) or a path.
        split: ``random``, ``loo`` or ``fixed``; default: the dataset's own.
            Session and sequence datasets (``task`` other than ``ranking``)
            only have their own split and return the session HeteroData.
        test_ratio: per-user test share for ``random``; default: the dataset's.
        val_ratio: share of each user's training rows held out for
            validation (session samples: share of the training samples;
            sequences: unused, the second to last item validates); 0 turns
            validation (and early stopping) off.
        seed: split seed.
        root: data directory (default ``$SSGRAPHREC_DATA``).
    """
    with readable_text(name_or_path):  # recognising the format reads the files too
        name, spec, folder = resolve(name_or_path, Path(root) if root is not None else None)
    if spec.load is not None:
        # Session / sequence data carry their own fixed split (DHCN files, leave-one-out).
        if split not in (None, spec.split):
            raise ConfigError(f"dataset {name!r} ({spec.task}) has the fixed split {spec.split!r}; "
                              f"--split {split} does not apply")
        assert folder is not None
        with readable_text(folder):
            data = spec.load(folder, name, val_ratio=val_ratio, seed=seed)
        data.name = name
        return data
    assert spec.read is not None
    with readable_text(folder if folder is not None else name_or_path):
        raw = spec.read(folder, name) if folder is not None else spec.read(Path("."), name)
    raw.name = name
    data = build_dataset(raw, split=split or spec.split,
                         test_ratio=spec.test_ratio if test_ratio is None else test_ratio,
                         val_ratio=val_ratio, seed=seed)
    if spec.protocol == LINK_PREDICTION:
        add_link_negatives(data, seed)
    return data
