"""LRP relevance (Yeom et al., Pattern Recognition 2021): sum of |R| at each channel's output, via zennit."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from edgewise.compress.criteria.base import Criterion
from edgewise.compress.reference import ReferenceSamples
from edgewise.compress.relevance import DEFAULT_RULES, layer_relevance, lrp_composite


class LRPCriterion(Criterion):
    """Channel score = sum over samples and positions of |R| at the layer's output (zennit rules configurable)."""

    name = "lrp"
    normalization = "sum"

    def __init__(self, rules: Mapping[str, str] | None = None) -> None:
        self.rules = {**DEFAULT_RULES, **(rules or {})}
        lrp_composite(self.rules)  # validate the rule names now, not after the first batch

    def scores(self, model: nn.Module, names: set[str], ref: ReferenceSamples) -> dict[str, torch.Tensor]:
        relevance, _ = layer_relevance(model, ref, names, self.rules, absolute=True)
        return relevance

    def describe(self) -> str:
        return "lrp(" + ", ".join(f"{k}={v}" for k, v in self.rules.items()) + ")"
