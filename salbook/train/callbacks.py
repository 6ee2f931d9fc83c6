"""Extension points of :func:`salbook.train.fit`: callbacks and regularisers.

A **callback** is an object with any of the hook methods of :class:`Callback`; each gets the
:class:`~salbook.train.loop.Trainer` (model, optimizer, step, epoch, history...). The order of
one epoch::

    on_epoch_start → [hyper-parameters applied] → per batch: on_step_start → forward, loss →
    backward → after_backward → optimizer step → on_step_end → ... → validation →
    on_validation → on_epoch_end → checkpoint

A callback that keeps state across steps (an accumulated pruning signal, a counter) returns it
from ``state_dict()`` (tensors, numbers, strings, lists, dicts only) and takes it back in
``load_state_dict``: the checkpoint stores it, so a resumed run continues exactly.

A **regulariser** is ``callable(model, batch, output) -> scalar tensor`` added to the loss; its
epoch mean appears in the history as ``reg_<name>``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Sequence

import torch
from torch import nn

if TYPE_CHECKING:  # pragma: no cover
    from .loop import Trainer

__all__ = ["Callback", "ReloadBestAndDecay", "Regularizer"]

Regularizer = Callable[[nn.Module, Any, Any], torch.Tensor]


class Callback:
    """Base class of training callbacks: every hook does nothing unless overridden."""

    def on_fit_start(self, trainer: "Trainer") -> None:
        """After setup (and after a resume has restored the state), before the first epoch."""

    def on_epoch_start(self, trainer: "Trainer") -> None:
        """Before the epoch's hyper-parameters are applied (``trainer.epoch`` is 0-based)."""

    def on_step_start(self, trainer: "Trainer", batch: Any) -> None:
        """Before the forward pass of a training batch (already augmented, on the device)."""

    def after_backward(self, trainer: "Trainer", batch: Any, loss: torch.Tensor) -> None:
        """After ``loss.backward()`` and before the optimiser step: gradients are in ``.grad``."""

    def on_step_end(self, trainer: "Trainer", batch: Any, loss: torch.Tensor) -> None:
        """After the optimiser step (``trainer.step`` already counts it)."""

    def on_validation(self, trainer: "Trainer", val_loss: float, metric: float) -> None:
        """After a validation pass (the best-so-far bookkeeping is done)."""

    def on_epoch_end(self, trainer: "Trainer", row: dict[str, Any]) -> None:
        """With the epoch's history row, before it is appended and checkpointed; may add columns."""

    def on_fit_end(self, trainer: "Trainer") -> None:
        """After the last epoch, before the best weights are put back."""

    def state_dict(self) -> dict[str, Any]:
        """State to checkpoint (plain types and tensors only)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""


class ReloadBestAndDecay(Callback):
    """At the given epochs, reload the best validated weights and multiply the lr by ``factor``.

    FastSal's official schedule: at epochs 15, 30 and 60 the best checkpoint so far is put back
    into the student and the learning rate divided by 10. ``milestones`` count finished epochs:
    ``15`` acts before the 16th epoch starts. The optimiser state (momentum) is kept unless
    ``reset_optimizer`` is set. Without a validated best yet, only the lr changes.
    """

    def __init__(self, milestones: Sequence[int], factor: float = 0.1, reset_optimizer: bool = False) -> None:
        if any(int(m) < 1 for m in milestones):
            raise ValueError(f"milestones count finished epochs and must be >= 1, got {list(milestones)}")
        if not 0 < factor:
            raise ValueError(f"factor must be positive, got {factor}")
        self.milestones = sorted({int(m) for m in milestones})
        self.factor = float(factor)
        self.reset_optimizer = reset_optimizer
        self.reloaded_at: list[int] = []

    def on_epoch_start(self, trainer: "Trainer") -> None:
        if trainer.epoch not in self.milestones:
            return
        if trainer.best_state is not None:
            trainer.model.load_state_dict(trainer.best_state)
            self.reloaded_at.append(trainer.epoch)
        if self.reset_optimizer:
            trainer.rebuild_optimizer()
        trainer.lr_scale *= self.factor

    def state_dict(self) -> dict[str, Any]:
        return {"reloaded_at": list(self.reloaded_at)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.reloaded_at = [int(e) for e in state.get("reloaded_at", [])]
