"""Published figures on the bundled datasets, and how (or whether) ours compare to them.

The figures live in ``references.csv`` beside this module, one value per row
("Recall@20 / NDCG@20 = 0.1824 / 0.1547" is two rows), each with its protocol and
``source``. They are transcribed from the "Published figures on these files
(reproduction targets)" table of the shared data folder's ``README.md``
(``$SSGRAPHREC_DATA/README.md``), which names where each figure was reported.

A figure is *comparable* with one of ours only when the method, the data, the
metric, the cut-off K and the protocol (split, validation hold-out, epoch
budget where the source states one) all agree. :func:`lookup` returns every
published figure on the same method, data and metric, each with the reasons it
is not comparable, so that a table can show it beside ours with a label and
never as if it were a like-for-like number.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

#: Where the rows below come from.
TRANSCRIBED_FROM = ("shared data folder README.md, table 'Published figures on these files "
                    "(reproduction targets)'")

#: Our dataset names that are another split of a dataset a source reports on.
DATASET_FAMILY = {"lastfm-80-20": "lastfm", "bigi-ml-100k": "ml-100k"}

#: Metric names as sources write them -> ours.
METRIC_ALIASES = {"hr": "hit", "p": "precision"}

#: Two hold-out shares closer than this count as the same split.
SHARE_TOLERANCE = 0.005


@dataclass(frozen=True)
class Protocol:
    """How the numbers were obtained: the split, the validation hold-out, the budget.

    Attributes:
        split: ``random`` (per-user random hold-out), ``fixed`` (the dataset's
            own train/test files), ``loo`` (leave the latest item out) or
            ``session`` (the session datasets' own next-item samples).
        test: share of each user's interactions held out for test (``random``).
        val: share of the remaining training interactions held out for
            validation; 0 means no validation split; ``None``: not stated.
        epochs: the training budget in epochs, where known (compared, not
            printed: say it in ``detail``).
        detail: anything else that matters (budget, filters, ranking), in words.
    """

    split: str
    test: float | None = None
    val: float | None = None
    epochs: int | None = None
    detail: str = ""

    def describe(self) -> str:
        """The split in words, then ``detail``: ``random per-user split 80:10:10 (train:val:test), ...``."""
        text = self.describe_split()
        return f"{text}, {self.detail}" if self.detail else text

    def differences(self, ours: Protocol) -> list[str]:
        """Why ``ours`` is not this protocol (empty when it is)."""
        out: list[str] = []
        same_split = self.split == ours.split and (
            self.split != "random" or _close(self.test, ours.test) and _close(self.val, ours.val))
        if self.split == "fixed" and ours.split == "fixed" and self.val is not None:
            same_split = same_split and _close(self.val, ours.val)
        if not same_split:
            out.append(f"split: published {self.describe_split()}, ours {ours.describe_split()}")
        if self.epochs is not None and ours.epochs is not None and self.epochs != ours.epochs:
            out.append(f"budget: published about {self.epochs:,} epochs, ours {ours.epochs}")
        return out

    def describe_split(self) -> str:
        """The split and the validation hold-out in words."""
        if self.split == "random" and self.test is not None:
            val = self.val or 0.0
            return (f"random per-user split {_pct((1 - self.test) * (1 - val))}:"
                    f"{_pct((1 - self.test) * val)}:{_pct(self.test)} (train:val:test)")
        if self.split == "fixed":
            text = "the dataset's fixed train/test files"
            if self.val is not None:
                text += (f" with {_pct(self.val)}% of train held out for validation" if self.val
                         else ", no validation split")
            return text
        if self.split == "loo":
            return "leave-one-out (latest item for test, the one before for validation)"
        if self.split == "session":
            return "the dataset's own session prefixes and next-item labels"
        return self.split


def _pct(x: float) -> str:
    return f"{100 * x:.0f}"


def _close(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return abs(a - b) <= SHARE_TOLERANCE


@dataclass(frozen=True)
class Reference:
    """One published figure.

    Attributes:
        method: our registry name of the method (``lightgcn``), even where
            ssgraphrec does not implement it (``sept``, ``sasrec``).
        method_label: the method as the source names it.
        dataset: the data (our dataset name, or the source's where we lack it).
        protocol: how it was obtained.
        metric: our metric name with its cut-off, e.g. ``recall@10``.
        value: as a fraction (percentages are divided by 100).
        source: where it was reported.
        approximate: the source gives it as "about", or as recalled.
        note: caveats.
    """

    method: str
    method_label: str
    dataset: str
    protocol: Protocol
    metric: str
    value: float
    source: str
    approximate: bool = False
    note: str = ""

    @property
    def metric_name(self) -> str:
        return normalize_metric(self.metric)[0]

    @property
    def k(self) -> int:
        return normalize_metric(self.metric)[1]

    @property
    def metric_label(self) -> str:
        return metric_label(self.metric)

    def describe(self) -> str:
        """``LightGCN, lastfm, Recall@10 = 0.2064 (random ...; RecBole-GNN ...)``."""
        about = "about " if self.approximate else ""
        text = (f"{self.method_label}, {self.dataset}, {self.metric_label} = {about}"
                f"{self.value:g} ({self.protocol.describe()}; {self.source})")
        return text + (f"; {self.note}" if self.note else "")


@dataclass(frozen=True)
class Match:
    """A published figure on our method, data and metric, with why it may not compare."""

    reference: Reference
    reasons: tuple[str, ...] = field(default=())

    @property
    def comparable(self) -> bool:
        return not self.reasons

    @property
    def tags(self) -> list[str]:
        """Short labels for a table cell: ``@10``, ``other split``, ``other budget``, ``approx.``."""
        out = []
        for r in self.reasons:
            if r.startswith("K:"):
                out.append(f"@{self.reference.k}")
            elif r.startswith("split:"):
                out.append("other split")
            elif r.startswith("budget:"):
                out.append("other budget")
        if self.reference.approximate:
            out.append("approx.")
        return out

    @property
    def label(self) -> str:
        """Empty when comparable, else ``not comparable: <reason>; <reason>``."""
        if self.comparable:
            return ""
        return "not comparable: " + "; ".join(self.reasons)


def normalize_metric(metric: str) -> tuple[str, int]:
    """``"Recall@20"`` -> ``("recall", 20)``; ``"HR@10"`` -> ``("hit", 10)``."""
    name, sep, k = metric.strip().lower().partition("@")
    if not sep or not k.isdigit():
        raise ValueError(f"metric {metric!r}: expected NAME@K such as recall@20")
    return METRIC_ALIASES.get(name, name), int(k)


_LABELS = {"recall": "Recall", "ndcg": "NDCG", "hit": "HR", "precision": "P", "mrr": "MRR"}


def metric_label(metric: str) -> str:
    """``"ndcg@20"`` -> ``"NDCG@20"``."""
    name, k = normalize_metric(metric)
    return f"{_LABELS.get(name, name)}@{k}"


def dataset_family(dataset: str) -> str:
    """The data a dataset name stands for: ``lastfm-80-20`` -> ``lastfm``; paths -> folder name."""
    name = Path(dataset).name if ("/" in dataset or "\\" in dataset) else dataset
    return DATASET_FAMILY.get(name, name)


# ---------------------------------------------------------------- the table
#: The published figures, one per row, with their source (a cited data file).
REFERENCES_CSV = Path(__file__).with_name("references.csv")


def _share(text: str) -> float | None:
    return float(text) if text.strip() else None


def load_references(path: str | Path = REFERENCES_CSV) -> tuple[Reference, ...]:
    """The rows of ``references.csv``: one published figure each (lines starting with
    ``#`` are comments)."""
    with open(path, encoding="utf-8", newline="") as handle:
        rows = csv.DictReader(line for line in handle if not line.startswith("#"))
        return tuple(
            Reference(row["method"], row["method_label"], row["dataset"],
                      Protocol(row["split"], test=_share(row["test_share"]),
                               val=_share(row["val_share"]),
                               epochs=int(row["epochs"]) if row["epochs"].strip() else None,
                               detail=row["protocol_detail"]),
                      row["metric"], float(row["value"]), row["source"],
                      approximate=row["approximate"].strip().lower() == "yes", note=row["note"])
            for row in rows)


REFERENCES: tuple[Reference, ...] = load_references()


def lookup(method: str, dataset: str, metric: str, protocol: Protocol,
           references: Iterable[Reference] = REFERENCES) -> list[Match]:
    """Published figures on ``method`` and ``dataset`` for the metric of ``metric`` (any K).

    Each :class:`Match` lists why it does not compare with ours (``metric`` at
    ``protocol``): a different K, a different split, a different epoch budget.
    """
    name, k = normalize_metric(metric)
    family = dataset_family(dataset)
    out = []
    for ref in references:
        if ref.method != method or ref.dataset != family or ref.metric_name != name:
            continue
        reasons = []
        if ref.k != k:
            reasons.append(f"K: published {ref.metric_label}, ours {metric_label(metric)}")
        reasons += ref.protocol.differences(protocol)
        out.append(Match(ref, tuple(reasons)))
    return out


def other_data(methods: Iterable[str], datasets: Iterable[str],
               references: Iterable[Reference] = REFERENCES) -> list[Reference]:
    """Published figures on ``methods`` on data other than ``datasets`` (never comparable)."""
    families = {dataset_family(d) for d in datasets}
    wanted = set(methods)
    return [r for r in references if r.method in wanted and r.dataset not in families]
