"""Evaluation slices: cold-start users and items, head and tail items.

A slice is a subset of the test interactions, ranked exactly as the whole
test split is (all items, training and validation items masked), so that a
slice's Recall@K is the share of *its* held-out items in the top K:

* ``cold_users``: every test interaction of the users with 1 to ``N``
  training interactions;
* ``cold_items``: the test interactions whose item has 1 to ``N`` training
  interactions (the item cold-start setting of e.g. Hao et al., "Pre-Training
  Graph Neural Networks for Cold-Start Users and Items Representation",
  WSDM 2021, Sec. 5.1, who evaluate on items with few interactions);
* ``head_items`` / ``tail_items``: the test interactions whose item is among
  the top ``s`` share of items by training count, or among the rest (the
  popularity split of e.g. Yu et al., "Are Graph Augmentations Necessary?",
  SIGIR 2022, Sec. 4.3, and Wu et al., SGL, SIGIR 2021, Sec. 4.3.2).

* ``simulated_cold_users``: every test interaction of the users that the
  cold-start simulation cut down to ``K`` training interactions
  (:mod:`ssgraphrec.data.cold_simulation`, Hao et al. 2021, Sec. 5.1).

A user or item with *no* training interaction is left out of the cold slices:
its embedding was never trained by any transductive model, so its test
interactions measure nothing but chance. Their number is reported beside the
slice (``excluded``) and in its rule, so that nothing is dropped silently
(docs/cold-start.md).

Counts are of the training graph (``data[INTERACTS].edge_index``) only.
Everything here is vectorised: masks over the interaction list, no loop over
users or items.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from ..errors import ConfigError

SLICE_NAMES = ("cold_users", "cold_items", "head_items", "tail_items", "simulated_cold_users")


@dataclass
class Slice:
    """One evaluation slice: its test pairs and what the slice is."""

    name: str
    target: Tensor
    rule: str
    #: test interactions left out: their user (item) has no training interaction
    excluded: int = 0

    @property
    def size(self) -> dict[str, int]:
        return {"interactions": int(self.target.size(1)),
                "users": int(torch.unique(self.target[0]).numel()),
                "items": int(torch.unique(self.target[1]).numel())}


def training_counts(train: Tensor, num_users: int, num_items: int) -> tuple[Tensor, Tensor]:
    """Training interactions per user and per item."""
    return (torch.bincount(train[0], minlength=num_users),
            torch.bincount(train[1], minlength=num_items))


def head_item_mask(item_counts: Tensor, share: float) -> Tensor:
    """``[num_items]`` True for the ``ceil(share * num_items)`` most frequent items
    (ties broken by the smaller id)."""
    n = item_counts.numel()
    k = math.ceil(share * n)
    ids = torch.arange(n, device=item_counts.device)
    # Stable sort on descending count keeps the smaller id first among equal counts.
    order = torch.sort(-item_counts * (n + 1) + ids).indices
    mask = torch.zeros(n, dtype=torch.bool, device=item_counts.device)
    mask[order[:k]] = True
    return mask


def _cold(name: str, counts_of_test: Tensor, target: Tensor, threshold: int, who: str) -> Slice:
    """Test pairs whose ``who`` has 1 to ``threshold`` training interactions."""
    seen = counts_of_test > 0
    keep = seen & (counts_of_test <= threshold)
    excluded = int((~seen).sum())
    if not bool(keep.any()):
        article = "an" if who == "item" else "a"
        if not bool(seen.any()):
            raise ConfigError(f"the {name} slice is empty: no test interaction has {article} "
                              f"{who} with a training interaction")
        smallest = int(counts_of_test[seen].min())
        raise ConfigError(f"the {name} slice is empty at --cold-threshold {threshold}: no test "
                          f"interaction has {article} {who} with 1 to {threshold} training "
                          f"interactions; the fewest is {smallest}, so --cold-threshold "
                          f"{smallest} is the smallest that gives a non-empty slice")
    rule = f"{who}s with 1 to {threshold} training interactions"
    if excluded:
        rule += (f"; {excluded} test interactions of {who}s with none left out (no trained "
                 "embedding: unrankable)")
    return Slice(name, target[:, keep], rule, excluded)


def build_slices(train: Tensor, test: Tensor, num_users: int, num_items: int, *,
                 cold_threshold: int | None = None, head_share: float | None = None,
                 simulated: Tensor | None = None) -> list[Slice]:
    """The slices asked for, each with its (user-sorted) test pairs.

    Args:
        train: ``[2, E]`` training (user, item) pairs.
        test: ``[2, T]`` test pairs, sorted by user (a subset stays sorted).
        cold_threshold: ``N`` of ``cold_users`` / ``cold_items``.
        head_share: ``s`` of ``head_items`` / ``tail_items``, in (0, 1).
        simulated: ``[num_users]`` bool, the users of the cold-start simulation
            (``simulated_cold_users``).

    Raises:
        ConfigError: a bad threshold or share, or an empty slice (naming it and
            the smallest threshold that would fill it).
    """
    out: list[Slice] = []
    if test.size(1) == 0:
        return out
    users, items = training_counts(train, num_users, num_items)
    if cold_threshold is not None:
        if isinstance(cold_threshold, bool) or not isinstance(cold_threshold, int) \
                or cold_threshold < 0:
            raise ConfigError(f"--cold-threshold must be an integer >= 0, got {cold_threshold!r}")
        if cold_threshold < 1:
            raise ConfigError(f"--cold-threshold must be >= 1 (users and items with no "
                              f"training interaction are left out), got {cold_threshold}")
        out.append(_cold("cold_users", users[test[0]], test, cold_threshold, "user"))
        out.append(_cold("cold_items", items[test[1]], test, cold_threshold, "item"))
    if head_share is not None:
        if not 0.0 < head_share < 1.0:
            raise ConfigError(f"--head-share must lie strictly between 0 and 1, got {head_share}")
        head = head_item_mask(items, head_share)
        in_head = head[test[1]]
        n_head = int(head.sum())
        for name, keep, rule in (
                ("head_items", in_head, f"the {n_head} most frequent items (share {head_share})"),
                ("tail_items", ~in_head, f"the other {num_items - n_head} items")):
            if not bool(keep.any()):
                raise ConfigError(f"the {name} slice is empty at --head-share {head_share}: no "
                                  f"test interaction has an item among {rule}; choose another "
                                  "share")
            out.append(Slice(name, test[:, keep], rule))
    if simulated is not None:
        keep = simulated[test[0]]
        if not bool(keep.any()):
            raise ConfigError("the simulated_cold_users slice is empty: no simulated user has a "
                              "test interaction")
        k = int(users[simulated].max())
        out.append(Slice("simulated_cold_users", test[:, keep],
                         f"the {int(simulated.sum())} test users cut down to <= {k} training "
                         "interactions (cold-start simulation)"))
    return out


def evaluate_slices(slices: list[Slice], evaluate: Callable[[Tensor], dict[str, float]]
                    ) -> dict[str, dict]:
    """``{slice name: {"size": ..., "rule": ..., "metrics": ...}}``.

    ``evaluate`` ranks for the test pairs it is given (as the trainer's test
    evaluation does, with the same masking).
    """
    return {s.name: {"size": s.size, "rule": s.rule, "excluded": s.excluded,
                     "metrics": evaluate(s.target)} for s in slices}


__all__ = ["SLICE_NAMES", "Slice", "build_slices", "evaluate_slices", "head_item_mask",
           "training_counts"]
