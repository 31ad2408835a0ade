"""Weight magnitude (Li et al. 2016): the L1 or L2 norm of each filter; needs no data."""

from __future__ import annotations

import torch
from torch import nn

from edgewise.compress.criteria.base import Criterion
from edgewise.compress.layers import output_axis
from edgewise.compress.reference import ReferenceSamples


def filter_weights(module: nn.Module) -> torch.Tensor:
    """The weight as (output channels, everything else), for plain and transposed convolutions and linear layers."""
    return module.weight.detach().transpose(0, output_axis(module)).flatten(1)


class MagnitudeCriterion(Criterion):
    """Channel score = ||W[c]||_p over the filter's weights (p = 1 or 2)."""

    normalization = "sum"
    needs_data = False
    class_specific = False

    def __init__(self, p: int = 1) -> None:
        self.p = p
        self.name = f"l{p}"  # type: ignore[misc]

    def scores(self, model: nn.Module, names: set[str], ref: ReferenceSamples) -> dict[str, torch.Tensor]:
        modules = dict(model.named_modules())
        return {name: filter_weights(modules[name]).norm(p=self.p, dim=1) for name in names}


def l1() -> MagnitudeCriterion:
    """The L1 norm of each filter (the registered `l1`)."""
    return MagnitudeCriterion(p=1)


def l2() -> MagnitudeCriterion:
    """The L2 norm of each filter (the registered `l2`)."""
    return MagnitudeCriterion(p=2)
