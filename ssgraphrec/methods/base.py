"""The method contract (DESIGN.md, "Methods") and the method registry."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

import torch
from torch import Tensor, nn
from torch_geometric.data import HeteroData

from ..data.schema import INTERACTS, SESSION, TASKS, num_items, num_users
from ..errors import ConfigError
from ..eval.ranking import dot_scores
from ..registry import Registry
from ..sparse import BipartiteGraph, resolve_backend
from ..typed import check_fields

METHODS: Registry[type[Method]] = Registry("method")


#: How a method scores users against items on ranking data (:attr:`Method.scoring`).
SCORINGS = ("embeddings", "pair_scores")


def register_method(name: str):
    """Class decorator: register a :class:`Method` subclass under ``name``, after
    :func:`check_contract` has checked what it declares."""

    def deco(cls):
        cls.name = name
        check_contract(cls)
        return METHODS.register(name)(cls)

    return deco


def _overrides(cls: type, attr: str, base: type) -> bool:
    return getattr(cls, attr) is not getattr(base, attr)


def check_contract(cls: type[Method]) -> None:
    """:class:`TypeError` unless ``cls`` implements what it declares (docs/architecture.md).

    * ``tasks`` is a non-empty tuple of known tasks (``ranking``, ``next_item``,
      ``sequential``); ``config_class`` a dataclass derived from :class:`MethodConfig`;
    * a trainable method implements :meth:`Method.loss`;
    * on ranking data, ``scoring = "embeddings"`` needs :meth:`Method.embeddings`
      (scores are their dot products) and ``"pair_scores"`` needs
      :meth:`Method.ranking_scores`;
    * on session or sequence data, the method implements :meth:`Method.score`.
    """
    where = f"method {cls.__name__} ({cls.name!r})"
    if not cls.tasks or not isinstance(cls.tasks, tuple) or not set(cls.tasks) <= set(TASKS):
        raise TypeError(f"{where}: tasks must be a non-empty tuple of {TASKS}, got {cls.tasks!r}")
    if not (dataclasses.is_dataclass(cls.config_class)
            and issubclass(cls.config_class, MethodConfig)):
        raise TypeError(f"{where}: config_class must be a MethodConfig dataclass")
    if cls.trainable and not _overrides(cls, "loss", Method):
        raise TypeError(f"{where}: a trainable method implements loss()")
    if "ranking" in cls.tasks:
        if cls.scoring not in SCORINGS:
            raise TypeError(f"{where}: scoring must be one of {SCORINGS}, got {cls.scoring!r}")
        needed = "embeddings" if cls.scoring == "embeddings" else "ranking_scores"
        if not _overrides(cls, needed, Method):
            raise TypeError(f"{where}: scoring {cls.scoring!r} needs {needed}()")
    if set(cls.tasks) & {"next_item", "sequential"} and not _overrides(cls, "score", Method):
        raise TypeError(f"{where}: a method on session or sequence data implements score()")


@dataclass
class MethodConfig:
    """Hyper-parameters every method has; subclasses hold the paper's defaults."""

    lr: float = 1e-3
    batch_size: int = 2048

    def __post_init__(self) -> None:
        check_fields(self)  # every setting against its annotation (ssgraphrec.typed)


def check_minimums(cfg: MethodConfig, **minimums: float) -> None:
    """:class:`ConfigError` unless every named setting of ``cfg`` is at least its minimum
    (NaN fails too): ``check_minimums(cfg, num_layers=0, emb_dim=1)``."""
    for name, low in minimums.items():
        value = getattr(cfg, name)
        if not value >= low:
            raise ConfigError(f"{name} must be >= {low}, got {value}")


class BPRBatch(NamedTuple):
    """A batch of BPR triples."""

    users: Tensor
    pos_items: Tensor
    neg_items: Tensor


class Method(nn.Module):
    """Base class of a recommendation method.

    Subclasses set ``config_class`` and implement :meth:`loss` and
    :meth:`embeddings`; stochastic views are resampled in
    :meth:`on_epoch_start`. ``loss`` returns named terms, summed by the trainer
    and logged one by one.

    Args:
        data: the dataset (training graph plus held-out splits) on the device.
        cfg: the method's config.
        backend: sparse backend (``auto``, ``torch``, ``torch_sparse``).
        generator: the seeded generator for the method's randomness (views).
    """

    name = "method"
    config_class: type[MethodConfig] = MethodConfig
    description = ""
    paper = ""
    #: False for methods with nothing to train (e.g. popularity).
    trainable = True
    #: The data tasks the method can run on (:func:`ssgraphrec.data.schema.task_of`).
    tasks: tuple[str, ...] = ("ranking",)
    #: The loss terms that are self-supervised: the trainer's ``ssl_warmup`` ramps
    #: their weight from 0 to 1 over the first optimizer steps (docs/tuning.md).
    ssl_terms: tuple[str, ...] = ("ssl",)
    #: Run or method settings this method gets unless ``--paper-defaults``, each a remedy
    #: measured on several datasets (docs/tuning.md); a tuned file or the user wins over them.
    remedies: dict = {}
    #: The search space of ``ssgraphrec tune`` (:mod:`ssgraphrec.tuning.space`): what
    #: self-supervision adds plus the optimiser, L2 and depth; empty: nothing to tune.
    space: dict = {}
    #: Ranking data: ``"embeddings"`` (scores are dot products of :meth:`embeddings`, so
    #: an inner-product index can retrieve the top-K) or ``"pair_scores"`` (a learned
    #: scorer; :meth:`ranking_scores` is overridden, e.g. BiGI's MLP).
    scoring: ClassVar[str] = "embeddings"
    #: The cut-offs the method's paper reports, when not the task's usual ones (MicRec:
    #: HIT@50 ... 500), and the monitor that goes with them; None: the task's.
    default_cutoffs: ClassVar[tuple[int, ...] | None] = None
    default_monitor: ClassVar[str | None] = None

    def __init__(self, data: HeteroData, cfg: MethodConfig, *, backend: str = "auto",
                 generator: torch.Generator | None = None):
        super().__init__()
        self.cfg = cfg
        self.num_users = num_users(data)
        self.num_items = num_items(data)
        self.backend = resolve_backend(backend)
        self.generator = generator
        #: What the method chose at run time (MicRec's positives), for ``results.json``.
        self.info: dict[str, Any] = {}

    def on_epoch_start(self, epoch: int) -> None:
        """Called before each training epoch (resample views here)."""

    def loss(self, batch: BPRBatch) -> dict[str, Tensor]:
        raise NotImplementedError

    def embeddings(self) -> tuple[Tensor, Tensor]:
        """Final (user, item) embeddings; ``score(u, i) = <user[u], item[i]>``."""
        raise NotImplementedError

    def ranking_scores(self) -> Callable[[Tensor], Tensor]:
        """Ranking data: ``users -> [B, num_items]`` scores of every item; by default
        the dot products of :meth:`embeddings` (``scoring = "embeddings"``)."""
        return dot_scores(*self.embeddings())

    def score(self, samples: Tensor, split: str) -> Tensor:
        """Session and sequence data: ``[B, num_items]`` scores of every item for the
        input of each sample of ``split``."""
        raise NotImplementedError

    # -- the pretrain -> finetune scheme (docs/training-schemes.md) --------
    #: The scheme a run uses when the config does not choose one:
    #: ``"joint"`` or ``"pretrain_finetune"``.
    default_scheme: str = "joint"

    def paper_pretrain_epochs(self) -> int:
        """The pre-training epochs of the method's paper (its config's ``pretrain_epochs``
        setting where it has one, else 0); a run's ``--pretrain-epochs`` overrides it."""
        return int(getattr(self.cfg, "pretrain_epochs", 0))

    def has_pretrain_task(self) -> bool:
        """Whether the method overrides :meth:`pretrain_loss`."""
        return type(self).pretrain_loss is not Method.pretrain_loss

    def pretrain_loss(self, batch) -> dict[str, Tensor]:
        """Named pretext-task loss terms of one pre-training batch."""
        raise ConfigError(f"method {self.name!r} has no pre-training task")

    def pretrain_batches(self, generator: torch.Generator) -> tuple[Iterable, int] | None:
        """(batches, count) of one pre-training epoch; ``None``: the trainer feeds
        the batches of fine-tuning (BPR triples on ranking data)."""
        return None

    def on_pretrain_epoch_start(self, epoch: int) -> None:
        """Called before each pre-training epoch."""

    def on_finetune_start(self) -> None:
        """Called once between pre-training and fine-tuning (freeze layers, reset heads)."""

    def encoder_state_dict(self) -> dict[str, Tensor]:
        """What a pre-training run saves for ``--init``: the ``encoder.*`` entries
        of :meth:`state_dict`."""
        return {k: v.detach() for k, v in self.state_dict().items() if k.startswith("encoder.")}

    def load_encoder_state_dict(self, state: dict[str, Tensor], source: str) -> None:
        """Load the entries :meth:`encoder_state_dict` names from ``state``.

        Entries of ``state`` this method does not have are ignored. A missing
        entry or a shape that differs is a :class:`ConfigError` naming the
        parameter, both shapes and ``source``.
        """
        own = self.encoder_state_dict()
        if not own:
            raise ConfigError(f"method {self.name!r} has no encoder to initialise from {source}")
        for key, value in own.items():
            if key not in state:
                have = ", ".join(sorted(state)[:8]) or "nothing"
                raise ConfigError(f"{source} has no parameter {key!r} for method {self.name!r} "
                                  f"(it holds: {have})")
            if tuple(state[key].shape) != tuple(value.shape):
                raise ConfigError(f"{source}: parameter {key!r} has shape {tuple(state[key].shape)}, "
                                  f"method {self.name!r} needs {tuple(value.shape)} (another "
                                  "embedding size or id space?)")
        params = dict(self.state_dict())
        self.load_state_dict({k: state[k].to(params[k].device) for k in own if k in params},
                             strict=False)


class GraphMethod(Method):
    """A method on the training user-item graph, with its normalized adjacency."""

    def __init__(self, data: HeteroData, cfg: MethodConfig, *, backend: str = "auto",
                 generator: torch.Generator | None = None):
        super().__init__(data, cfg, backend=backend, generator=generator)
        self.graph = BipartiteGraph(data[INTERACTS].edge_index, self.num_users, self.num_items)
        self.adj = self.graph.normalized_adjacency(backend=self.backend)


class SessionMethod(Method):
    """A method on session samples (``next_item``) or user sequences (``sequential``).

    The trainer feeds :meth:`loss` batches of training sample ids from
    :meth:`train_batches` and evaluates with :meth:`score`, which ranks every
    item for the input of each sample of a split (see
    :mod:`ssgraphrec.eval.next_item`).
    """

    tasks = ("next_item", "sequential")

    def __init__(self, data: HeteroData, cfg: MethodConfig, *, backend: str = "auto",
                 generator: torch.Generator | None = None):
        super().__init__(data, cfg, backend=backend, generator=generator)
        self.data = data
        self.train_samples = data[SESSION].train_mask.nonzero().view(-1)

    def restrict_training(self, fraction: float, generator: torch.Generator) -> None:
        """Train on a seeded random ``fraction`` of the training samples only.

        For bounded runs on large session datasets; structures built from the
        training data (a hypergraph, a co-occurrence graph) keep every sample.
        """
        if not 0.0 < fraction <= 1.0:
            raise ConfigError(f"train_fraction must lie in (0, 1], got {fraction}")
        n = self.train_samples.numel()
        keep = max(1, round(fraction * n))
        pick = torch.randperm(n, generator=generator, device=generator.device)[:keep]
        self.train_samples = self.train_samples[pick.to(self.train_samples.device).sort().values]

    def num_train_batches(self) -> int:
        return -(-self.train_samples.numel() // self.cfg.batch_size)

    def train_batches(self, generator: torch.Generator) -> Iterator[Tensor]:
        """Training sample ids in a fresh random order, ``batch_size`` at a time."""
        n = self.train_samples.numel()
        gen_device = generator.device
        order = torch.randperm(n, generator=generator, device=gen_device).to(self.train_samples.device)
        for start in range(0, n, self.cfg.batch_size):
            yield self.train_samples[order[start:start + self.cfg.batch_size]]

    def loss(self, batch: Tensor) -> dict[str, Tensor]:  # type: ignore[override]
        raise NotImplementedError

    def embeddings(self) -> tuple[Tensor, Tensor]:
        raise NotImplementedError(f"{self.name} ranks items per session sample; use score()")
