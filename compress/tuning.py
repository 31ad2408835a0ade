"""Short fine-tuning after a cut, labels or not: a few optimiser steps pulling the pruned model's outputs towards its
source model's (distillation), or towards real labels where there are some; kept only where the held-out loss falls.

Batch-norm statistics stay frozen while it trains: a few small batches would replace statistics the whole data set
made (or that repair just re-estimated) with noisy ones.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from edgewise.base.device import device_of
from edgewise.compress.distillation import distillation_loss
from edgewise.compress.modes import evaluating
from edgewise.compress.outputs import pick, tensors_of
from edgewise.compress.reference import held_out_split
from edgewise.compress.tasks import loss_for


@dataclass(frozen=True)
class Tuning:
    """`steps` Adam steps at learning rate `lr` on batches of `batch` samples, distilling at `temperature`; the
    weights of the step (checked every `check_every` steps, and before the first) with the lowest loss on the
    `held_out` share of the inputs are kept."""

    steps: int = 200
    lr: float = 1e-4
    batch: int = 16
    temperature: float = 1.0
    held_out: float = 0.25
    check_every: int = 25
    seed: int = 0


def _frozen_norms(model: nn.Module) -> None:
    """Training mode for every module but batch norm, whose statistics stay as they are."""
    model.train()
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.eval()


def tune(model: nn.Module, x: torch.Tensor, task: str, settings: Tuning | None = None, *,
         teacher: nn.Module | None = None, y: torch.Tensor | None = None) -> dict[str, Any]:
    """Fine-tune `model` in place on inputs `x`: towards `teacher`'s outputs (distillation, edgewise.compress
    .distillation, every output tensor) when a teacher is given, else towards labels `y` with `task`'s loss.

    The inputs are split at random: a `held_out` share only scores. The model keeps the weights whose held-out loss was
    lowest, its own where no step lowered it. Returns a record: steps, loss before and after, whether it was kept.
    """
    if (teacher is None) == (y is None):
        raise ValueError("tune needs either a teacher (distillation) or labels y, not both")
    settings = settings or Tuning()
    device = device_of(model)
    distill = distillation_loss(task, settings.temperature) if teacher is not None else None
    label_loss = loss_for(task)

    def loss_on(indices: torch.Tensor) -> torch.Tensor:
        batch = x[indices].to(device)
        out = model(batch)
        if distill is not None:
            with torch.no_grad():
                target = teacher(batch)
            return distill(tensors_of(out), tensors_of(target))
        return label_loss(pick(out), y[indices].to(device))

    train, check = held_out_split(len(x), settings.held_out, settings.seed)

    def held_out() -> float:
        with evaluating(model), torch.no_grad():
            return float(sum(loss_on(i) * len(i) for i in check.split(settings.batch)) / len(check))

    if teacher is not None:
        teacher.eval()
    start = held_out()
    best = (start, copy.deepcopy(model.state_dict()), 0)
    optimiser = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=settings.lr)
    generator = torch.Generator().manual_seed(settings.seed)
    with evaluating(model):
        _frozen_norms(model)
        for step in range(1, settings.steps + 1):
            optimiser.zero_grad(set_to_none=True)
            loss_on(train[torch.randint(0, len(train), (min(settings.batch, len(train)),), generator=generator)]
                    ).backward()
            optimiser.step()
            if step % settings.check_every == 0 or step == settings.steps:
                score = held_out()
                _frozen_norms(model)
                if score < best[0]:
                    best = (score, copy.deepcopy(model.state_dict()), step)
    model.load_state_dict(best[1])
    return {"steps": settings.steps, "targets": "distill" if teacher is not None else "labels",
            "held_out_loss_before": start, "held_out_loss_after": best[0], "kept_step": best[2]}
