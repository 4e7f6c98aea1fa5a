"""Tasks: what a run trains on and how it is evaluated (docs/architecture.md, "Tasks").

A :class:`Task` owns everything about a run that depends on the kind of data
and not on the method: the batches of an epoch, the evaluation of a split, the
cut-offs reported by default and the metric that selects the best epoch. The
trainer asks its task and never the method what kind of data it holds:

* :class:`RankingTask`: user-item data, BPR triples, full ranking per user
  (LightGCN, SGL ...);
* :class:`LinkPredictionTask`: user-item data scored by AUC over held-out edges
  and sampled non-edges (BiGI's DBLP protocol);
* :class:`SampleTask`: session samples (``next_item``) and user sequences
  (``sequential``), the method's own batches of sample ids, evaluated by the rank of
  each sample's held-out item.

The method reaches a task only through its declared contract
(:class:`~ssgraphrec.methods.base.Method`): ``tasks``, ``scoring``,
``ranking_scores()``, ``embeddings()``, ``score()`` and ``train_batches()``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor
from torch_geometric.data import HeteroData

from ..data.cold_simulation import HIDDEN, SIMULATED
from ..data.link_negatives import is_link_prediction
from ..data.sampler import NegativeSampler, bpr_batches, num_batches
from ..data.schema import INTERACTS, SESSION, num_items, num_users, task_of
from ..distributed import SINGLE, DistContext, shard
from ..errors import ConfigError
from ..eval.link_prediction import LINK_METRICS, evaluate_link_prediction
from ..eval.metrics import METRICS
from ..eval.next_item import NEXT_ITEM_METRICS, evaluate_next_item
from ..eval.ranking import evaluate_ranking
from ..eval.retrieval import check_backend, evaluate_retrieval
from ..eval.slices import build_slices
from ..methods.base import BPRBatch, Method

#: Scores per full-ranking block when ``eval_batch_size`` is 0 (automatic).
EVAL_BLOCK_SCORES = 2**23


def auto_eval_batch_size(num_items: int) -> int:
    """Users per evaluation block: about :data:`EVAL_BLOCK_SCORES` scores (32 MB), 64 to 1024.

    Measured with one thread: 1,024 users per block is 1.2-1.3x slower than
    200-500 on Gowalla (40,981 items) and lastfm-80-20 (17,632): a block that
    stays in the cache is written by the product and read by the top-K without
    a trip to memory (docs/benchmarks.md, "Evaluation").
    """
    return max(64, min(1024, EVAL_BLOCK_SCORES // max(num_items, 1)))


def _rows(batch) -> int:
    """Rows of a batch: a tensor of sample ids, or a tuple of tensors (BPR triples)."""
    return int(batch.size(0) if isinstance(batch, torch.Tensor) else batch[0].size(0))


class Task:
    """The data side of a run: batches, evaluation, cut-offs and the monitor metric.

    Args:
        data: the whole dataset (training graph and held-out splits) on the device.
        ks: the cut-offs to report (default: the task's ``default_cutoffs``).
        monitor: the validation metric that selects the best epoch.
        eval_batch_size: users or samples per evaluation block (0: automatic).
        ctx: the ranks of a distributed run (default: one process).
    """

    #: The cut-offs the task's papers report (LightGCN/SGL: 10, 20; DHCN: P@10/20,
    #: MRR@10/20; S3-Rec/CL4SRec: HR and NDCG@5/10/20).
    default_cutoffs: ClassVar[tuple[int, ...]] = (10, 20)
    #: The validation metric when ``monitor`` is left at the run default.
    default_monitor: ClassVar[str] = "ndcg@20"
    #: The metric an epoch line shows beside the monitor (``{k}``: the last cut-off).
    headline_metric: ClassVar[str] = "recall@{k}"

    def __init__(self, data: HeteroData, *, ks: list[int] | None = None,
                 monitor: str = "ndcg@20", eval_batch_size: int = 0, ctx: DistContext = SINGLE):
        self.data = data
        #: the ranks sharing this run: each trains on its share of every global batch
        #: and evaluates its share of the users (:mod:`ssgraphrec.distributed`)
        self.ctx = ctx
        self.kind = task_of(data)
        self.ks = list(ks or self.default_cutoffs)
        if eval_batch_size < 0:
            raise ConfigError(f"eval_batch_size must be >= 1 (0: automatic), got {eval_batch_size}")
        self.eval_batch_size = eval_batch_size or auto_eval_batch_size(num_items(data))
        if monitor not in self.metric_names():
            raise ConfigError(f"monitor {monitor!r} is not a computed metric; eval_ks={self.ks}")
        self.monitor = monitor
        #: test slices (ranking data only): cold-start users and items, head and tail
        self.slices: list = []

    def metric_names(self) -> set[str]:
        """Every metric :meth:`evaluate` returns (a monitor must be one of them)."""
        return {f"{m}@{k}" for m in METRICS for k in self.ks}

    @property
    def headline(self) -> str:
        return self.headline_metric.format(k=self.ks[-1])

    @property
    def has_val(self) -> bool:
        raise NotImplementedError

    def check_method(self, method: Method) -> None:
        """:class:`ConfigError` unless ``method`` declares this task's kind of data."""
        if self.kind not in method.tasks:
            raise ConfigError(f"method {method.name!r} runs on {'/'.join(method.tasks)} data; "
                              f"dataset {self.data.name!r} holds {self.kind} data")

    def batches(self, method: Method, generator: torch.Generator) -> tuple[Any, int]:
        """(batches, count) of one training epoch of ``method``: this rank's share of
        every global batch (all ranks draw the same global batches from one seed)."""
        raise NotImplementedError

    def _shard(self, batches, count: int) -> tuple[Any, int]:
        """This rank's contiguous share of each global batch; a last global batch with fewer
        rows than ranks is dropped, so that every rank steps on every batch."""
        ctx = self.ctx
        if not ctx.distributed:
            return batches, count
        return (shard(b, ctx) for b in batches if _rows(b) >= ctx.world_size), count

    def evaluate(self, method: Method, split: str, target: Tensor | None = None
                 ) -> dict[str, float]:
        """Metrics of ``method`` on ``split`` (``val`` or ``test``)."""
        raise NotImplementedError


class RankingTask(Task):
    """User-item data: BPR triples; full ranking of every item per user.

    Validation masks the training items; test masks the training and validation
    items, and what a cold-start simulation hid. ``retrieval`` ``"faiss"`` finds
    the top-K of dot-product methods with a faiss index (same results).
    ``cold_threshold`` / ``head_share`` add test slices (:mod:`ssgraphrec.eval.slices`).
    """

    def __init__(self, data: HeteroData, *, retrieval: str = "exact",
                 cold_threshold: int | None = None, head_share: float | None = None, **kw):
        super().__init__(data, **kw)
        self.retrieval = check_backend(retrieval)
        self.store = data[INTERACTS]
        self.sampler = NegativeSampler(self.store.edge_index, num_items(data))
        simulated = data["user"][SIMULATED] if SIMULATED in data["user"] else None
        if cold_threshold is not None or head_share is not None or simulated is not None:
            self.slices = build_slices(self.store.edge_index, self.store.test_edge_index,
                                       num_users(data), num_items(data),
                                       cold_threshold=cold_threshold, head_share=head_share,
                                       simulated=simulated)

    @property
    def has_val(self) -> bool:
        return self.store.val_edge_index.size(1) > 0

    def batches(self, method: Method, generator: torch.Generator) -> tuple[Any, int]:
        batch_size = method.cfg.batch_size
        edges = self.store.edge_index
        triples = bpr_batches(edges, self.sampler, batch_size, generator)
        return self._shard((BPRBatch(*t) for t in triples), num_batches(edges.size(1), batch_size))

    def evaluate(self, method: Method, split: str, target: Tensor | None = None
                 ) -> dict[str, float]:
        store = self.store
        exclude = [store.edge_index] + ([store.val_edge_index] if split == "test" else [])
        if HIDDEN in store:  # what the cold-start simulation took away: neither hit nor miss
            exclude.append(store[HIDDEN])
        if target is None:
            target = store.val_edge_index if split == "val" else store.test_edge_index
        sizes = num_users(self.data), num_items(self.data)
        if self.retrieval != "exact" and method.scoring == "embeddings":
            users, items = method.embeddings()
            return evaluate_retrieval(users, items, target, exclude, *sizes, self.ks,
                                      backend=self.retrieval, batch_size=self.eval_batch_size,
                                      split_name=split)
        return evaluate_ranking(method.ranking_scores(), target, exclude, *sizes, self.ks,
                                self.eval_batch_size, split_name=split, ctx=self.ctx)


class LinkPredictionTask(RankingTask):
    """User-item data scored by AUC-ROC / AUC-PR over held-out edges and sampled
    non-edges (:mod:`ssgraphrec.eval.link_prediction`; BiGI's protocol)."""

    default_monitor = "auc_roc"
    headline_metric = "auc_pr"

    def metric_names(self) -> set[str]:
        return set(LINK_METRICS)

    def evaluate(self, method: Method, split: str, target: Tensor | None = None
                 ) -> dict[str, float]:
        return evaluate_link_prediction(*method.embeddings(), self.data, split)


class SampleTask(Task):
    """Session samples and user sequences: the method's batches of sample ids; the
    rank of each sample's held-out item among all items (:mod:`ssgraphrec.eval.next_item`).

    ``mask_history`` excludes the items of a sample's input from its ranking.
    """

    headline_metric = "hit@{k}"

    def __init__(self, data: HeteroData, *, mask_history: bool = False, **kw):
        self.mask_history = mask_history
        super().__init__(data, **kw)

    def metric_names(self) -> set[str]:
        return {f"{m}@{k}" for m in NEXT_ITEM_METRICS for k in self.ks}

    @property
    def has_val(self) -> bool:
        return bool(self.data[SESSION].val_mask.any())

    def batches(self, method: Method, generator: torch.Generator) -> tuple[Any, int]:
        return self._shard(method.train_batches(generator), method.num_train_batches())

    def evaluate(self, method: Method, split: str, target: Tensor | None = None
                 ) -> dict[str, float]:
        return evaluate_next_item(method.score, self.data, split, num_items(self.data), self.ks,
                                  self.eval_batch_size, mask_history=self.mask_history,
                                  ctx=self.ctx)


#: The cut-offs of each kind of data when ``eval_ks`` is not set.
DEFAULT_CUTOFFS = {"ranking": RankingTask.default_cutoffs, "next_item": (10, 20),
                   "sequential": (5, 10, 20)}


def task_class(data: HeteroData) -> type[Task]:
    """The :class:`Task` class of ``data``."""
    if is_link_prediction(data):
        return LinkPredictionTask
    return RankingTask if task_of(data) == "ranking" else SampleTask


def make_task(data: HeteroData, method: Method, *, ks: list[int] | None = None,
              monitor: str = "ndcg@20", eval_batch_size: int = 0, mask_history: bool = False,
              retrieval: str = "exact", cold_threshold: int | None = None,
              head_share: float | None = None, ctx: DistContext = SINGLE) -> Task:
    """The task of ``data``, checked against what ``method`` declares it runs on.

    Slices and ``retrieval`` apply to ranking data, ``mask_history`` to samples;
    asking for slices on other data is a :class:`ConfigError`.
    """
    cls = task_class(data)
    common = {"ks": ks or list(DEFAULT_CUTOFFS[task_of(data)]), "monitor": monitor,
              "eval_batch_size": eval_batch_size, "ctx": ctx}
    if cls is SampleTask:
        if cold_threshold is not None or head_share is not None:
            raise ConfigError("cold-start and head/tail slices (--cold-threshold, "
                              f"--head-share) apply to ranking data, not {task_of(data)} data")
        check_backend(retrieval)
        task: Task = SampleTask(data, mask_history=mask_history, **common)
    else:
        task = cls(data, retrieval=retrieval, cold_threshold=cold_threshold,
                   head_share=head_share, **common)
    task.check_method(method)
    return task
