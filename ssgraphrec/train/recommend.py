"""Top-K recommendations of a saved run, in raw ids: for one user, or for every user
written to a CSV (or Parquet) file in batches of users, with bounded memory."""

from __future__ import annotations

import csv
import os
import sys
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ..data.schema import INTERACTS, ITEM, USER, task_of, user_pointer
from ..errors import SSGraphRecError
from ..eval.ranking import ScoreFn, top_k
from .run import Run
from .tasks import auto_eval_batch_size


@torch.no_grad()
def recommend_for_user(run: Run, raw_user: str, k: int = 20) -> list[tuple[str, float]]:
    """The ``k`` best items for ``raw_user`` that are not in its training or validation data."""
    task = task_of(run.data)
    if task != "ranking":
        raise SSGraphRecError(f"recommend works on user-item runs; this run holds {task} data, "
                              "whose test samples are ranked by 'ssgraphrec evaluate'")
    raw_users = run.data[USER].raw_id
    try:
        user = raw_users.index(str(raw_user))
    except ValueError:
        raise SSGraphRecError(f"user {raw_user!r} is not in the dataset of this run") from None
    n_items = run.data[ITEM].num_nodes
    if not 1 <= k <= n_items:
        raise SSGraphRecError(f"-k must be between 1 and the number of items ({n_items})")
    run.method.eval()
    device = run.data[INTERACTS].edge_index.device
    items, scores = _masked_top(run.method.ranking_scores(), _known_pairs(run),
                                torch.tensor([user], device=device), k)
    raw_items = run.data[ITEM].raw_id
    return [(raw_items[i], float(s)) for i, s in zip(items[0].tolist(), scores[0].tolist(),
                                                     strict=True) if s != -float("inf")]


#: Columns of an export (``recommend --all``): one row per (user, rank).
EXPORT_COLUMNS = ("user", "rank", "item", "score")


def _known_pairs(run: Run) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The pairs a recommendation leaves out (training, validation and hidden items), with
    their user pointers, as :func:`~ssgraphrec.eval.ranking.top_k` takes them."""
    store = run.data[INTERACTS]
    known = [store.edge_index, store.val_edge_index]
    if "hidden_edge_index" in store:
        known.append(store.hidden_edge_index)
    n_users = run.data[USER].num_nodes
    return [(edges, user_pointer(edges, n_users)) for edges in known]


def _masked_top(score: ScoreFn, known: list[tuple[torch.Tensor, torch.Tensor]],
                users: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``[B, k]`` best items and scores of ``users`` by ``score`` (the model's
    ``ranking_scores()``, computed once per call of the caller), the ``known`` pairs left
    out (score ``-inf`` where a user has fewer than ``k`` items left). NaN scores would
    rank arbitrarily: they raise one clear error instead."""
    values, indices = top_k(score, users, known, k, "recommend")
    return indices, values


@torch.no_grad()
def recommend_all(run: Run, out: str | Path, k: int = 20, batch_size: int = 0,
                  progress: bool = True) -> dict[str, int | str]:
    """Write the top ``k`` items of every user to ``out`` in raw ids, with scores.

    ``.csv`` (default) or ``.parquet`` (needs pyarrow). Users are scored ``batch_size``
    at a time (0: about 2**23 scores per batch) and each batch is written before the
    next is scored, so memory holds one batch of scores whatever the number of users.
    The file is written to a temporary name and renamed when complete. Returns the
    rows written, the users and the format.
    """
    if task_of(run.data) != "ranking":
        raise SSGraphRecError("recommend --all works on user-item runs; this run holds "
                              f"{task_of(run.data)} data")
    n_items = run.data[ITEM].num_nodes
    if not 1 <= k <= n_items:
        raise SSGraphRecError(f"-k must be between 1 and the number of items ({n_items})")
    if batch_size < 0:
        raise SSGraphRecError(f"--batch-size must be >= 1 (0: automatic), got {batch_size}")
    out = Path(out)
    fmt = "parquet" if out.suffix == ".parquet" else "csv"
    try:
        writer = _ParquetRows(out) if fmt == "parquet" else _CsvRows(out)
    except OSError as exc:
        raise SSGraphRecError(f"cannot write {out}: {exc.strerror or exc}") from None
    run.method.eval()
    device = run.data[INTERACTS].edge_index.device
    n_users = run.data[USER].num_nodes
    size = batch_size or auto_eval_batch_size(n_items)
    # Raw ids as arrays: a batch's ids are looked up by index, not one by one.
    raw_users = np.asarray(run.data[USER].raw_id, dtype=object)
    raw_items = np.asarray(run.data[ITEM].raw_id, dtype=object)
    rows = 0
    score, known = run.method.ranking_scores(), _known_pairs(run)  # once, not per batch
    bar = tqdm(total=n_users, desc="recommend", unit="user", disable=not progress,
               file=sys.stderr, leave=False)
    try:
        for start in range(0, n_users, size):
            users = torch.arange(start, min(start + size, n_users), device=device)
            items, scores = _masked_top(score, known, users, k)
            keep = torch.isfinite(scores)
            u_idx = users[:, None].expand_as(items)[keep].cpu().numpy()
            ranks = torch.arange(1, k + 1, device=device).expand_as(items)[keep].tolist()
            batch = (raw_users[u_idx].tolist(), ranks,
                     raw_items[items[keep].cpu().numpy()].tolist(), scores[keep].tolist())
            writer.write(batch)
            rows += len(u_idx)
            bar.update(users.numel())
        writer.close()
    except BaseException:
        writer.abort()
        raise
    finally:
        bar.close()
    return {"rows": rows, "users": n_users, "k": k, "format": fmt, "path": str(out)}


class _CsvRows:
    """Rows to a CSV file, through a temporary file renamed on :meth:`close`."""

    def __init__(self, path: Path):
        self.path, self.tmp = path, path.with_name(path.name + ".tmp")
        self.handle = open(self.tmp, "w", newline="", encoding="utf-8")  # noqa: SIM115
        self.writer = csv.writer(self.handle)
        self.writer.writerow(EXPORT_COLUMNS)

    def write(self, columns: tuple[list, ...]) -> None:
        self.writer.writerows(zip(*columns[:3], (f"{s:.6g}" for s in columns[3]),
                                  strict=True))

    def close(self) -> None:
        self.handle.close()
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        self.handle.close()
        self.tmp.unlink(missing_ok=True)


class _ParquetRows:
    """Rows to a Parquet file, one row group per batch of users."""

    def __init__(self, path: Path):
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError:
            raise SSGraphRecError("writing .parquet needs pyarrow (pip install pyarrow); "
                                  "or write .csv") from None
        self.pa, self.path = pa, path
        self.tmp = path.with_name(path.name + ".tmp")
        self.schema = pa.schema([("user", pa.string()), ("rank", pa.int32()),
                                 ("item", pa.string()), ("score", pa.float32())])
        self.writer = pq.ParquetWriter(self.tmp, self.schema)

    def write(self, columns: tuple[list, ...]) -> None:
        self.writer.write_table(self.pa.table(dict(zip(EXPORT_COLUMNS, columns, strict=True)),
                                              schema=self.schema))

    def close(self) -> None:
        self.writer.close()
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        self.writer.close()
        self.tmp.unlink(missing_ok=True)
