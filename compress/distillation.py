"""Distillation: a student's outputs pulled towards a float teacher's on the same inputs, for every task, no labels.

Class tasks (a class axis: 1 for classification and segmentation, the last for a sequence's steps) compare the
teacher's and the student's class distributions at a temperature, KL(teacher || student) x T^2 (Hinton et al.,
2015), so the student learns how sure the teacher is of every class and not only its top one. An output that is
already a distribution (a softmax head, as PP-OCR's files end) or its logarithm is taken as one; anything else is
logits. Tasks without classes (embedding, regression, boxes, a detector's raw outputs) use their own training
loss against the teacher's output (edgewise.compress.tasks), which is what their source-labelled data holds anyway.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from edgewise.compress.tasks import loss_for

Distillation = Callable[[torch.Tensor | Sequence[torch.Tensor], torch.Tensor | Sequence[torch.Tensor]], torch.Tensor]
"""(student outputs, teacher outputs) -> a scalar loss."""

CLASS_AXES = {"classification": 1, "segmentation": 1, "sequence": -1}
"""Each class task's class axis."""


def log_distribution(out: torch.Tensor, axis: int, temperature: float = 1.0) -> torch.Tensor:
    """Log class probabilities along `axis` at `temperature`: of `out` itself where it already holds probabilities
    (non-negative, summing to 1) or log-probabilities, of softmax(out) where it holds logits."""
    with torch.no_grad():
        sums = out.sum(axis)
        probabilities = bool((out >= 0).all()) and bool(((sums - 1).abs() < 1e-3).all())
        log_probabilities = not probabilities and bool(((out.exp().sum(axis) - 1).abs() < 1e-3).all())
    logits = out.clamp_min(1e-12).log() if probabilities else out
    if log_probabilities and temperature == 1.0:
        return out
    return F.log_softmax(logits / temperature, dim=axis)


def class_distillation(student: torch.Tensor, teacher: torch.Tensor, axis: int, temperature: float = 1.0
                       ) -> torch.Tensor:
    """KL(teacher || student) of the class distributions along `axis`, averaged over every other position (samples,
    pixels, steps), times temperature^2 so the gradient's scale does not shrink with the temperature."""
    target = log_distribution(teacher.detach(), axis, temperature)
    log_student = log_distribution(student, axis, temperature)
    kl = (target.exp() * (target - log_student)).sum(axis)
    return kl.mean() * temperature ** 2


def distillation_loss(task: str, temperature: float = 1.0) -> Distillation:
    """The distillation loss of `task` at `temperature` (class tasks only; the others have no classes to soften):
    several outputs (a tuple) add their losses."""
    axis = CLASS_AXES.get(task)

    def one(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        if axis is not None and student.dim() > max(axis, 0) and student.shape[axis] > 1:
            return class_distillation(student, teacher, axis, temperature)
        return loss_for("regression" if task not in ("embedding", "boxes") else task)(student, teacher.detach())

    def loss(student: torch.Tensor | Sequence[torch.Tensor], teacher: torch.Tensor | Sequence[torch.Tensor]
             ) -> torch.Tensor:
        if isinstance(student, torch.Tensor):
            return one(student, teacher)
        return torch.stack([one(s, t) for s, t in zip(student, teacher, strict=True)]).sum()

    return loss
