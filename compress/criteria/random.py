"""Random scores: the baseline every comparison of criteria needs."""

from __future__ import annotations

import torch
from torch import nn

from edgewise.compress.criteria.base import Criterion
from edgewise.compress.layers import output_axis
from edgewise.compress.reference import ReferenceSamples


class RandomCriterion(Criterion):
    """Uniform random channel scores from a seeded generator (layer order fixes the stream)."""

    name = "random"
    needs_data = False
    class_specific = False

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def scores(self, model: nn.Module, names: set[str], ref: ReferenceSamples) -> dict[str, torch.Tensor]:
        generator = torch.Generator().manual_seed(self.seed)
        out = {}
        for name, module in model.named_modules():
            if name in names:
                channels = module.weight.shape[output_axis(module)]
                out[name] = torch.rand(channels, generator=generator)
        return out
