"""Pruning budgets in the units users count: the share of MACs or parameters to remove, met by the channel ranking.

The criteria rank channels; a budget says how many of them go. A channel's cost differs by
layer (a channel of a 7x7 map at 512 inputs costs little, one of a 112x112 map a great deal),
so a channel rate means something different on every network. `Budget` converts: it estimates
the MACs and parameters after any candidate removal from the measured per-layer costs (the
layers whose output channels go, and the layers that read them), and finds by bisection the
smallest channel rate of the ranking whose estimate meets the goal. What the cut achieved is
measured afterwards, not taken from the estimate.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from edgewise.board.errors import UserError

if TYPE_CHECKING:
    from torch import nn

    from edgewise.compress.graph import ChannelGraph
    from edgewise.compress.model_stats import ModelCost

Unit = Literal["channels", "macs", "params"]
UNITS: tuple[Unit, ...] = ("channels", "macs", "params")

SHORTFALL = 0.02
"""How far (a share of the unpruned model's cost) the achieved cut may fall short of the goal before it is reported as
a shortfall: the ranking's floors, rounding and groups left whole can stop a cut early."""


def parse_target(text: str) -> tuple[Unit, float]:
    """`UNIT=KEEP` (e.g. macs=0.7: keep 70% of the MACs) as the unit and the share to remove (0.3)."""
    unit, _, keep = text.partition("=")
    if unit not in UNITS or not keep:
        raise UserError(f"target {text!r} is not UNIT=SHARE with UNIT one of {', '.join(UNITS)}",
                        "give e.g. --target macs=0.7 (keep 70% of the multiply-accumulates)")
    try:
        share = float(keep)
    except ValueError:
        raise UserError(f"target {text!r}: {keep!r} is not a number", "give the share to keep, e.g. macs=0.7") from None
    if not 0.0 < share <= 1.0:
        raise UserError(f"target {text!r}: the share to keep must be in (0, 1]", "give e.g. macs=0.7")
    return unit, round(1.0 - share, 12)


def _width(module: nn.Module, inputs: bool) -> int:
    """A conv, transposed conv or linear layer's output (or input) channel count."""
    if hasattr(module, "in_features"):
        return module.in_features if inputs else module.out_features
    return module.in_channels if inputs else module.out_channels


def _depthwise(module: nn.Module) -> bool:
    groups = getattr(module, "groups", 1)
    return groups > 1 and groups == module.in_channels


@dataclass
class Budget:
    """A goal in `unit` (MACs or parameters) for the model `graph` holds, whose measured cost is `cost`.

    `estimate(removal)` is the cost after removing `removal` (channel indices per group, in the
    current numbering): each weight layer's MACs and parameters scale with the share of its output
    channels and of its input channels that remain (a depthwise layer's are the same channels,
    counted once); other parameters (normalisation, embeddings) are taken as unchanged, so the
    estimate of a parameter budget errs towards cutting a little more.
    """

    unit: Unit
    graph: ChannelGraph
    cost: ModelCost

    def estimate(self, removal: dict[str, list[int]]) -> float:
        """The model's MACs or parameters (per `unit`) after `removal`."""
        outputs = self.graph.layer_channels(removal)
        inputs = self.graph.layer_channels(removal, inputs=True)
        total = self.cost.macs if self.unit == "macs" else self.cost.params
        for layer in self.cost.layers:
            if layer.name not in outputs and layer.name not in inputs:
                continue
            module = self.graph.model.get_submodule(layer.name)
            out_share = 1.0 - len(set(outputs.get(layer.name, ()))) / _width(module, False)
            in_share = 1.0 - len(set(inputs.get(layer.name, ()))) / _width(module, True)
            kept = min(out_share, in_share) if _depthwise(module) else out_share * in_share
            total -= (layer.macs if self.unit == "macs" else layer.params) * (1.0 - kept)
        return total

    def channel_rate(self, goal: float, removal_at: Callable[[float], dict[str, list[int]]],
                     ceiling: float = 0.999) -> float:
        """The smallest channel rate at which `removal_at(rate)` (channel indices per group) is estimated to bring
        the cost to `goal` or below; `ceiling` when even that does not (the ranking's floors stop it)."""
        if self.estimate(removal_at(0.0)) <= goal:
            return 0.0
        if self.estimate(removal_at(ceiling)) > goal:
            return ceiling
        low, high = 0.0, ceiling
        for _ in range(30):  # 1e-9 of the channels: below one channel of any network
            middle = (low + high) / 2
            if self.estimate(removal_at(middle)) <= goal:
                high = middle
            else:
                low = middle
        return high
