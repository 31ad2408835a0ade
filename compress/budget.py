"""Pruning budgets in the units users count: the share of MACs, parameters or latency to remove, met by the ranking.

The criteria rank channels; a budget says how many of them go. A channel's cost differs by
layer (a channel of a 7x7 map at 512 inputs costs little, one of a 112x112 map a great deal),
so a channel rate means something different on every network. `Budget` converts: it estimates
the MACs and parameters after any candidate removal from the measured per-layer costs (the
layers whose output channels go, and the layers that read them), and finds by bisection the
smallest channel rate of the ranking whose estimate meets the goal. What the cut achieved is
measured afterwards, not taken from the estimate.

Latency has no estimate worth trusting (a kernel's speed follows its widths in steps, and the
runtime fuses layers), so a latency budget is met by measurement: trial cuts at MAC budgets,
each exported and timed by a `LatencyMeter`, bisected to the smallest cut whose measured
latency meets the goal (NetAdapt measures per proposal the same way).
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

Unit = Literal["channels", "macs", "params", "latency"]
UNITS: tuple[Unit, ...] = ("channels", "macs", "params", "latency")

SHORTFALL = 0.02
"""How far (a share of the unpruned model's cost) the achieved cut may fall short of the goal before it is reported as
a shortfall: the ranking's floors, rounding and groups left whole can stop a cut early."""
LATENCY_SHORTFALL = 0.05
"""The same for latency, wider: two timings of one file on a quiet CPU differ by a few percent, so a cut measured at
its goal while searching can time a little above it afterwards."""
PROBES = 6
"""Timed trial cuts per latency step after the first: bisection to 1/64 of the MAC range (under 1.5% of the MACs)."""


@dataclass(frozen=True)
class Target:
    """What to cut, as `--target` says it: a share of `unit` to remove, or for latency a goal in milliseconds."""

    unit: Unit
    remove: float | None
    goal_ms: float | None = None


def parse_target(text: str) -> Target:
    """`UNIT=KEEP` (e.g. macs=0.7: keep 70% of the MACs; the share to remove is 0.3), or `latency=2.5ms` (a latency
    goal in milliseconds)."""
    unit, _, keep = text.partition("=")
    if unit not in UNITS or not keep:
        raise UserError(f"target {text!r} is not UNIT=SHARE with UNIT one of {', '.join(UNITS)}",
                        "give e.g. --target macs=0.7 (keep 70% of the multiply-accumulates) or latency=2.5ms")
    absolute = unit == "latency" and keep.endswith("ms")
    try:
        value = float(keep.removesuffix("ms") if absolute else keep)
    except ValueError:
        raise UserError(f"target {text!r}: {keep!r} is not a number",
                        "give the share to keep, e.g. macs=0.7, or a latency in milliseconds, e.g. latency=2.5ms"
                        ) from None
    if absolute:
        if not 0.0 < value < float("inf"):
            raise UserError(f"target {text!r}: a latency goal must be a positive number of milliseconds",
                            "give e.g. latency=2.5ms")
        return Target(unit, None, value)
    if not 0.0 < value <= 1.0:
        raise UserError(f"target {text!r}: the share to keep must be in (0, 1]", f"give e.g. {unit}=0.7")
    return Target(unit, round(1.0 - value, 12))


@dataclass(frozen=True)
class LatencyMeter:
    """How a latency budget times a model: `measure(model)` is its latency in milliseconds, and `how` says where and
    how (printed and recorded with every figure it gives, e.g. "measured: ONNX Runtime on this CPU, batch 1")."""

    measure: Callable[[nn.Module], float]
    how: str


def latency_share(goal_ms: float, before_ms: float, how: str) -> float:
    """The share of the latency `before_ms` (the unpruned model's, measured as `how` says) that a goal of `goal_ms`
    removes: refused where the model meets the goal already, or where it would have to lose 95% or more."""
    if goal_ms >= before_ms:
        raise UserError(f"the model runs in {before_ms:.3g} ms already ({how}), within the goal of {goal_ms:g} ms",
                        f"give a goal below {before_ms:.3g} ms, or ship it unpruned")
    share = 1.0 - goal_ms / before_ms
    if share >= 0.95:
        raise UserError(f"a goal of {goal_ms:g} ms is {share:.0%} below the model's {before_ms:.3g} ms ({how}): "
                        "pruning channels cannot take that much", "give a goal above "
                        f"{before_ms * 0.05:.3g} ms, or a smaller network")
    return share


def latency_search(goal_ms: float, latency_at: Callable[[float], float], low: float, high: float, current_ms: float,
                   probes: int = PROBES) -> tuple[float, list[dict[str, float]]]:
    """The smallest share of the MACs to remove, between `low` (what is removed already, timed at `current_ms`) and
    `high`, whose measured latency `latency_at(share)` meets `goal_ms`, by bisection over `probes` timed trial cuts
    after the first (at `high`); `low`, untimed, where the model meets the goal already. Returns the share and
    every probe (share, ms).

    Where even the deepest cut misses the goal, the runtime will not go faster by cutting channels
    (fixed costs dominate, or its kernels do not follow the widths): the goal becomes the deepest
    cut's latency within LATENCY_SHORTFALL, so the search finds the smallest cut that is as fast,
    and cuts nothing where the model is that fast already. Latency falls with MACs in steps and with
    noise, not smoothly, so the search only assumes that a deeper cut is not slower; each probe is
    a real measurement, never interpolated.
    """
    if current_ms <= goal_ms:
        return low, []
    tried = [{"macs_removed": high, "latency_ms": latency_at(high)}]
    goal_ms = max(goal_ms, tried[0]["latency_ms"] * (1.0 + LATENCY_SHORTFALL))
    if current_ms <= goal_ms:
        return low, tried
    for _ in range(probes):
        middle = (low + high) / 2
        ms = latency_at(middle)
        tried.append({"macs_removed": middle, "latency_ms": ms})
        if ms <= goal_ms:
            high = middle
        else:
            low = middle
    return high, tried


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
