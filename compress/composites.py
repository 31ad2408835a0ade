"""LRP rule composites for pruning by name, and the choice among them by measurement on the network at hand.

Which rules make relevance a good pruning score depends on the network (Hatefi et al., Pruning
by eXplaining revisited, 2024, fit them per network and layer group). `select_composite` makes
the choice the kit can afford without labels: a trial cut scored by each candidate composite,
repaired as the real cut will be, and compared by its output error against the unpruned network
on calibration inputs the repair did not fit.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from edgewise.board.errors import UserError

if TYPE_CHECKING:
    import torch
    from torch import nn

COMPOSITES: dict[str, dict[str, str]] = {
    # zennit's EpsilonPlusFlat: z+ on convolutions as Yeom et al. prune with it
    "epsilon-plus-flat": {"first": "flat", "conv": "zplus", "linear": "epsilon"},
    # zennit's EpsilonAlpha2Beta1Flat: inhibitory contributions count too
    "epsilon-alpha2beta1-flat": {"first": "flat", "conv": "alpha2beta1", "linear": "epsilon"},
    # gamma on convolutions, the rule PXP revisited settles on for most layers of its CNNs
    "epsilon-gamma-flat": {"first": "flat", "conv": "gamma", "linear": "epsilon"},
    # epsilon everywhere: close to gradient x input, conservative
    "epsilon": {"first": "epsilon", "conv": "epsilon", "linear": "epsilon"},
}
AUTO = "auto"
"""The composite name that asks select_composite to choose one."""


def composite_rules(name: str) -> dict[str, str]:
    """The rule per layer kind of the composite called `name` (COMPOSITES)."""
    if name not in COMPOSITES:
        raise UserError(f"unknown LRP composite {name!r}", f"use one of {', '.join(COMPOSITES)} or {AUTO}")
    return dict(COMPOSITES[name])


@dataclass
class Selection:
    """The composite chosen, and per candidate its rules, the trial cut's held-out output error and its time."""

    chosen: str
    rules: dict[str, str]
    rate: float
    trials: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """JSON-able record of the choice."""
        return {"chosen": self.chosen, "rules": self.rules, "trial_rate": self.rate, "trials": self.trials}


def selection_line(record: dict[str, Any]) -> str:
    """One sentence from a Selection's record: what was chosen, on what evidence."""
    errors = ", ".join(f"{t['composite']} {t['error']:.3g}" if "error" in t else f"{t['composite']} failed"
                       for t in record["trials"])
    return (f"LRP composite {record['chosen']} chosen by a trial cut of {record['trial_rate']:.0%}, repaired "
            f"(held-out output error against the unpruned network: {errors})")


def select_composite(model: nn.Module, ref: Any, rate: float, calibration: torch.Tensor,
                     candidates: tuple[str, ...] = tuple(COMPOSITES), held_out: float = 0.25, seed: int = 0,
                     **prune_settings: Any) -> Selection:
    """Cut `model` once per candidate composite, scored by LRP with its rules at `rate` (one-shot, repaired on the
    fitting share of `calibration` as compress.prune repairs), and choose the one whose cut's outputs stay closest
    to the unpruned model's on the `held_out` share: the relative squared error of its outputs
    (compress.repair.output_error). `prune_settings` go to compress.prune as given (ranking, ignore, output, unit,
    repair); a candidate whose cut fails is recorded with why and not chosen."""
    from edgewise.compress.criteria.lrp import LRPCriterion
    from edgewise.compress.modes import evaluating
    from edgewise.compress.pruning import prune
    from edgewise.compress.reference import held_out_split
    from edgewise.compress.repair import output_error

    if len(calibration) < 4:
        raise UserError(f"choosing an LRP composite needs at least 4 calibration inputs, got {len(calibration)}",
                        "give more inputs, or name a composite")
    fit, check = held_out_split(len(calibration), held_out, seed)
    trials: list[dict[str, Any]] = []
    for name in candidates:
        rules = composite_rules(name)
        start = time.perf_counter()
        try:
            result = prune(model, ref, LRPCriterion(rules), rate, "oneshot", calibration=calibration[fit],
                           **prune_settings)
        except UserError as exc:
            trials.append({"composite": name, "rules": rules, "failed": exc.problem})
            continue
        with evaluating(model), evaluating(result.model):
            error = output_error(model, result.model, calibration[check])
        trials.append({"composite": name, "rules": rules, "error": error,
                       "seconds": time.perf_counter() - start})
    measured = [t for t in trials if "error" in t]
    if not measured:
        raise UserError(f"no LRP composite could cut this model at {rate:.0%}: {trials[0]['failed']}",
                        "prune with another criterion (l1), or leave the failing layers whole (--ignore)")
    best = min(measured, key=lambda t: (t["error"], candidates.index(t["composite"])))
    return Selection(best["composite"], best["rules"], rate, trials)
