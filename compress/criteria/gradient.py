"""Gradient saliency (seed 002, after Simonyan et al.): |dJ/dX| at each layer's output, min-max scaled per sample."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from edgewise.base.device import device_of
from edgewise.board.errors import UserError
from edgewise.compress.criteria.base import Criterion
from edgewise.compress.reference import ReferenceSamples
from edgewise.compress.taps import capture_outputs
from edgewise.compress.tasks import OUTPUT_TASKS, loss_for

OBJECTIVES = ("loss", "output")


def check_objective(kind: str, criterion: str) -> str:
    """`kind` if it names an objective J, else a UserError for `criterion`."""
    if kind not in OBJECTIVES:
        raise UserError(f"unknown {criterion} objective {kind!r}", f"use one of {', '.join(OBJECTIVES)}")
    return kind


def objective(logits: torch.Tensor, y: torch.Tensor, ref: ReferenceSamples, kind: str) -> torch.Tensor:
    """J: the training loss over the chosen classes' samples/pixels (`loss`), or their true-class output (`output`);
    a detector's J is always its strongest detections' scores (it has no per-image label to take a loss on)."""
    if kind == "output" or ref.task == "detection":
        return (logits * ref.output_seed(logits, y)).sum()
    if ref.task in ("sequence", *OUTPUT_TASKS):  # every sample counts: these tasks have no classes to restrict to
        return loss_for(ref.task)(logits, y)
    mask = ref.label_mask(y)
    loss = F.cross_entropy(logits, y, reduction="none")
    return (loss * mask).sum() / mask.sum().clamp(min=1)


def backward_with_outputs(model: nn.Module, names: set[str], ref: ReferenceSamples, kind: str):
    """Yield, per batch, the captured layer outputs (with gradients of J) and the labels."""
    model = model.eval()
    size = ref.batch_for(model, backward=True)
    with capture_outputs(model, names, retain_grad=True) as out:
        for x, y in ref.batches(device_of(model), size):
            model.zero_grad(set_to_none=True)
            logits = model(x.clone().requires_grad_(x.is_floating_point()))
            objective(logits, y, ref, kind).backward()
            # a layer with no path to the scored output (a detector's box branch) gets no gradient and no score
            yield {name: t for name, t in out.items() if t.grad is not None}, y


class GradientCriterion(Criterion):
    """Channel score: per sample, |dJ/da| summed over positions, min-max scaled within the layer, summed over samples.

    This is the seed's input importance of the next layer (the cumulated importance CI); J is the
    training loss (`objective="loss"`) or the true class's raw output (`objective="output"`,
    the seed's pruning loss), restricted to the chosen classes when the samples name some.
    Gradients are taken at the layer's (batch-normalised) output, before its activation.
    """

    name = "gradient"
    normalization = "l2"

    def __init__(self, objective: str = "output") -> None:
        self.objective = check_objective(objective, "gradient")

    def scores(self, model: nn.Module, names: set[str], ref: ReferenceSamples) -> dict[str, torch.Tensor]:
        sums: dict[str, torch.Tensor] = {}
        for out, _ in backward_with_outputs(model, names, ref, self.objective):
            for name, tensor in out.items():
                saliency = tensor.grad.abs().flatten(2).sum(2) if tensor.dim() > 2 else tensor.grad.abs()
                low, high = saliency.min(1, keepdim=True).values, saliency.max(1, keepdim=True).values
                scaled = (saliency - low) / (high - low).clamp(min=1e-12)
                sums[name] = sums.get(name, 0) + scaled.sum(0).detach()
        return sums

    def describe(self) -> str:
        return f"gradient(J={self.objective})"


class TaylorCriterion(Criterion):
    """Taylor (Molchanov et al., ICLR 2017): |mean over n, h, w of a * dC/da| per batch, averaged over batches.

    At the pre-activation of a ReLU the product a * dC/da equals the post-activation one exactly
    (the gradient is zero wherever the ReLU output is), so the batch-normalised output is used.
    """

    name = "taylor"
    normalization = "l2"

    def __init__(self, objective: str = "loss") -> None:
        self.objective = check_objective(objective, "Taylor")

    def scores(self, model: nn.Module, names: set[str], ref: ReferenceSamples) -> dict[str, torch.Tensor]:
        sums: dict[str, torch.Tensor] = {}
        batches = 0
        for out, _ in backward_with_outputs(model, names, ref, self.objective):
            batches += 1
            for name, tensor in out.items():
                product = (tensor * tensor.grad).detach()
                per_channel = product.transpose(0, 1).reshape(product.shape[1], -1).mean(1).abs()
                sums[name] = sums.get(name, 0) + per_channel
        return {name: s / batches for name, s in sums.items()}

    def describe(self) -> str:
        return f"taylor(C={self.objective})"
