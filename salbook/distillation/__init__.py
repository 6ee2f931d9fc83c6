"""Knowledge distillation: a student trained on what a teacher network outputs.

The teacher runs inside the loss: :class:`WithTeacher` wraps a loss ``loss(student_output,
teacher_output, batch)`` into the ``loss_fn(output, batch)`` that :func:`salbook.train.fit`
calls, running the frozen teacher (eval mode, no gradients) on the same batch. Where the teacher's
output does not change during training (its saliency maps, FastSal's pseudo-labels), compute it
once with :class:`TeacherTargets` instead: it adds the teacher's map to every sample of a dataset;
train on it with :func:`hflip_with_teacher` as the augmentation (not the plain
:func:`salbook.data.hflip_batch`), which mirrors each teacher map with its image.

Losses (:mod:`salbook.distillation.losses`, FastSal's, read from the official code):

* :func:`hint_loss` — summed MSE between paired feature maps (FitNets' hints; FastSal's pretraining);
* :func:`gt_and_teacher_bce` — the paper's eq. 2: BCE to the ground-truth map plus BCE to the
  teacher's map (either term can be switched off: Table V's rows);
* :func:`pseudo_label_loss` — the official three-loss form on a teacher density:
  ``0.5·KL + 0.3·BCE + 0.2·(1 − cos)``.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import torch
from torch import nn

from .losses import (
    TEACHER_KEYS,
    TeacherTargets,
    gt_and_teacher_bce,
    hflip_with_teacher,
    hint_loss,
    pseudo_label_loss,
    teacher_maps,
)

__all__ = ["WithTeacher", "hint_loss", "gt_and_teacher_bce", "pseudo_label_loss", "TeacherTargets",
           "teacher_maps", "TEACHER_KEYS", "hflip_with_teacher"]


class WithTeacher:
    """``loss_fn(output, batch)`` for :func:`salbook.train.fit` that also sees a teacher's output.

    Args:
        teacher: the frozen teacher; moved to the batch's device on first use, kept in eval mode,
            its parameters never receive gradients.
        loss: ``callable(student_output, teacher_output, batch)`` -> scalar tensor or dict of terms.
        teacher_input: the batch key the teacher reads (``"image"``), or a callable(batch) -> input
            (e.g. a teacher that needs another normalisation).
    """

    def __init__(self, teacher: nn.Module, loss: Callable[[Any, Any, Mapping[str, Any]], Any],
                 teacher_input: str | Callable[[Mapping[str, Any]], torch.Tensor] = "image") -> None:
        self.teacher = teacher.eval()
        for p in self.teacher.parameters():
            p.requires_grad_(False)
        self.loss = loss
        self.teacher_input = teacher_input

    @torch.no_grad()
    def teacher_output(self, batch: Mapping[str, Any]) -> Any:
        x = self.teacher_input(batch) if callable(self.teacher_input) else batch[self.teacher_input]
        self.teacher.to(x.device).eval()
        return self.teacher(x)

    def __call__(self, output: Any, batch: Mapping[str, Any]) -> Any:
        return self.loss(output, self.teacher_output(batch), batch)
