"""A model's train/eval mode kept as its caller had it while the kit runs it in eval mode."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn


@contextmanager
def evaluating(model: nn.Module) -> Iterator[nn.Module]:
    """`model` in eval mode within the block, and every module's own train/eval flag as it was afterwards, also when
    the block fails (`model.train(was_training)` would set one flag on all of them, undoing a frozen BatchNorm)."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, training in modes:
            module.training = training
