"""Training schemes: the phases of a run (docs/training-schemes.md).

A :class:`Scheme` owns what happens around the trainer's epochs of joint
training: a pre-training phase before them, the optimizer reset and the
freezing between the phases, and where a resumed run re-enters:

* :class:`JointScheme`: the method's ``loss`` from the first step;
* :class:`PretrainFinetuneScheme`: ``pretrain_epochs`` epochs of the method's
  ``pretrain_loss`` (``encoder.pt`` saved), then ``on_finetune_start()`` and a
  fresh optimizer at ``finetune_lr``, then joint training;
* :class:`InitialisedScheme`: a run whose encoder was loaded from another run's
  ``encoder.pt`` (``--init``): fine-tuning only, entered as after pre-training.

:func:`make_scheme` picks one; :func:`resolve_scheme` reads it from a
:class:`~ssgraphrec.config.RunConfig` and the method's ``default_scheme``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..config import RunConfig
from ..data.schema import INTERACTS, num_items, num_users, task_of
from ..errors import ConfigError
from ..eval.slices import build_slices
from ..methods.base import Method
from . import run_dir as rd

if TYPE_CHECKING:
    from .trainer import Trainer

SCHEMES = ("joint", "pretrain_finetune")
#: The file of the pre-trained encoder in a run directory (``--init`` reads it).
ENCODER = "encoder.pt"


class Scheme:
    """The phases of a run around its joint (fine-tuning) epochs."""

    #: The scheme's name in ``results.json``.
    name = "joint"
    #: Epochs of the pre-training phase this run trains itself.
    pretrain_epochs = 0

    def __init__(self, finetune_lr: float | None = None):
        if finetune_lr is not None and not finetune_lr > 0:
            raise ConfigError(f"finetune_lr must be > 0, got {finetune_lr}")
        self.finetune_lr = finetune_lr

    def first_lr(self, method: Method) -> float:
        """The learning rate of the optimizer the run starts with."""
        return method.cfg.lr

    def joint_lr(self, method: Method) -> float:
        """The learning rate of the joint (fine-tuning) phase."""
        return method.cfg.lr

    def begin(self, trainer: Trainer) -> dict[str, Any]:
        """Run what comes before the joint epochs; return the phase records
        (``results.json`` -> ``phases``; empty: a single-phase run)."""
        return {}

    def resume_at(self, trainer: Trainer, phase: str, epoch: int) -> None:
        """Set where a run resumed from a checkpoint of ``phase`` after ``epoch`` re-enters."""
        if phase == "pretrain":
            raise ConfigError(f"{trainer.run_dir / rd.LAST} was saved during pre-training, "
                              f"but this run does not pre-train (scheme {self.name!r})")
        trainer.start_epoch = epoch + 1
        trainer.resumed_joint = True

    def enter_finetune(self, trainer: Trainer) -> None:
        """Between the phases: ``on_finetune_start()`` (freeze layers, check the pretext
        state), then a fresh optimizer over what stays trainable, at ``finetune_lr``."""
        method = trainer.method
        method.on_finetune_start()
        if not any(p.requires_grad for p in method.parameters()):
            raise ConfigError(f"method {method.name!r} has no trainable parameter left "
                              "after on_finetune_start (every layer frozen?): nothing to "
                              "fine-tune")
        trainer.reset_optimizer(self.joint_lr(method))


class JointScheme(Scheme):
    """The method's ``loss`` from the first step: one phase."""


class PretrainFinetuneScheme(Scheme):
    """Pre-training on the method's pretext tasks, then fine-tuning (docs/training-schemes.md)."""

    name = "pretrain_finetune"

    def __init__(self, method: Method, pretrain_epochs: int, finetune_lr: float | None = None):
        super().__init__(finetune_lr)
        if pretrain_epochs < 0:
            raise ConfigError(f"pretrain_epochs must be >= 0, got {pretrain_epochs}")
        if pretrain_epochs > 0 and not method.has_pretrain_task():
            raise ConfigError(f"method {method.name!r} has no pre-training task; scheme "
                              "pretrain_finetune needs one (e.g. gptgnn), or --init RUN_DIR")
        self.pretrain_epochs = pretrain_epochs

    def joint_lr(self, method: Method) -> float:
        return self.finetune_lr or method.cfg.lr

    def begin(self, trainer: Trainer) -> dict[str, Any]:
        if not trainer.method.trainable:
            return {}
        if trainer.resumed_joint:  # resumed after pre-training: encoder.pt holds its record
            saved = trainer.load_main(trainer.run_dir / ENCODER) or {}
            return {"pretrain": saved.get("phase", {})}
        record = trainer.pretrain()
        self.enter_finetune(trainer)
        return {"pretrain": record}

    def resume_at(self, trainer: Trainer, phase: str, epoch: int) -> None:
        if phase == "pretrain":
            trainer.start_pretrain_epoch = epoch + 1
            return
        super().resume_at(trainer, phase, epoch)
        if trainer.method.trainable:
            self.enter_finetune(trainer)


class InitialisedScheme(Scheme):
    """Fine-tuning of an encoder loaded from another run (``--init``): no pre-training
    here; layers are frozen and the optimizer starts at ``finetune_lr`` as after
    pre-training, and ``phases`` records the run it came from."""

    def __init__(self, name: str, pretrained: dict[str, Any], finetune_lr: float | None = None):
        super().__init__(finetune_lr)
        self.name = name
        self.pretrained = pretrained

    def first_lr(self, method: Method) -> float:
        return self.joint_lr(method)

    def joint_lr(self, method: Method) -> float:
        return self.finetune_lr or method.cfg.lr

    def begin(self, trainer: Trainer) -> dict[str, Any]:
        if trainer.method.trainable and not trainer.resumed_joint:
            self.enter_finetune(trainer)  # an --init run freezes layers as a pre-training one
        return {"pretrain": self.pretrained}

    def resume_at(self, trainer: Trainer, phase: str, epoch: int) -> None:
        super().resume_at(trainer, phase, epoch)
        if trainer.method.trainable:
            self.enter_finetune(trainer)


def make_scheme(name: str, method: Method, *, pretrain_epochs: int = 0,
                finetune_lr: float | None = None,
                pretrained: dict[str, Any] | None = None) -> Scheme:
    """The scheme ``name`` (``joint`` or ``pretrain_finetune``) for ``method``;
    ``pretrained`` (the record of an ``--init`` run) makes it an :class:`InitialisedScheme`."""
    if name not in SCHEMES:
        raise ConfigError(f"unknown scheme {name!r}; expected one of {', '.join(SCHEMES)}")
    if pretrained is not None:
        return InitialisedScheme(name, pretrained, finetune_lr)
    if name == "pretrain_finetune":
        return PretrainFinetuneScheme(method, pretrain_epochs, finetune_lr)
    if pretrain_epochs < 0:
        raise ConfigError(f"pretrain_epochs must be >= 0, got {pretrain_epochs}")
    return JointScheme(finetune_lr)


def resolve_scheme(cfg: RunConfig, method: Method) -> tuple[str, int]:
    """(scheme, pre-training epochs) of a run.

    The scheme is ``cfg.scheme`` or the method's ``default_scheme``; the
    epochs are ``cfg.pretrain_epochs``, or, when that is 0, the method's own
    ``pretrain_epochs`` setting (its paper's default) where it has one.
    """
    scheme = cfg.scheme or method.default_scheme
    if scheme not in SCHEMES:
        raise ConfigError(f"unknown scheme {scheme!r}; expected one of {', '.join(SCHEMES)}")
    epochs = cfg.pretrain_epochs
    if epochs < 0:
        raise ConfigError(f"--pretrain-epochs must be >= 0, got {epochs}")
    if epochs == 0:
        epochs = method.paper_pretrain_epochs()
    if cfg.finetune_lr is not None and scheme != "pretrain_finetune" and not cfg.init:
        raise ConfigError("--finetune-lr applies to scheme pretrain_finetune or to a run "
                          "initialised with --init")
    return scheme, epochs


def check_run(cfg: RunConfig, method: Method, data, scheme: str, pretrain_epochs: int) -> None:
    """The checks the trainer makes, early: a pre-training scheme needs a pretext
    task (or ``--init``), and the evaluation slices asked for must be non-empty."""
    if scheme == "pretrain_finetune" and pretrain_epochs > 0 and not cfg.init \
            and not method.has_pretrain_task():
        raise ConfigError(f"method {method.name!r} has no pre-training task; scheme "
                          "pretrain_finetune needs one (e.g. gptgnn), or --init RUN_DIR")
    if (cfg.cold_threshold is not None or cfg.head_share is not None) \
            and task_of(data) == "ranking":
        store = data[INTERACTS]
        build_slices(store.edge_index, store.test_edge_index, num_users(data), num_items(data),
                     cold_threshold=cfg.cold_threshold, head_share=cfg.head_share)
