"""Knowledge distillation: a student trained on what a teacher network outputs.

The teacher runs inside the loss: :class:`WithTeacher` wraps a loss ``loss(student_output,
teacher_output, batch)`` into the ``loss_fn(output, batch)`` that :func:`salbook.train.fit`
calls, running the frozen teacher (eval mode, no gradients) on the same batch. Hint losses on
intermediate features and pseudo-label losses (FastSal, chapter 4; the gaze models of chapter 5)
build on it.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import torch
from torch import nn

__all__ = ["WithTeacher", "hint_loss"]


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


def hint_loss(student: Sequence[torch.Tensor], teacher: Sequence[torch.Tensor]) -> torch.Tensor:
    """Summed mean squared error between paired feature maps (FitNets' hints; FastSal's pretraining).

    Each pair must have the same shape (adapters bring the student's maps to the teacher's width
    and resolution).
    """
    if len(student) != len(teacher) or not student:
        raise ValueError(f"hint_loss needs as many student as teacher maps (≥ 1), got {len(student)} and {len(teacher)}")
    total = student[0].new_zeros(())
    for i, (s, t) in enumerate(zip(student, teacher)):
        if s.shape != t.shape:
            raise ValueError(f"hint {i}: student {tuple(s.shape)} and teacher {tuple(t.shape)} differ; add an adapter")
        total = total + nn.functional.mse_loss(s, t.detach())
    return total
