"""Pruning schedules as plug-ins: one-shot, iterative (Yeom et al.'s fixed steps) and seed 002's adaptive
threshold with its predicted limit.

A schedule says which units go at each step given that step's scores; `prune` scores, removes,
fine-tunes and re-traces between steps. `SCHEDULES` names them without importing torch, and
`register_schedule` (or an entry point of the group `edgewise.schedules`) adds one.
"""

from __future__ import annotations

import abc
import inspect
import math
from typing import TYPE_CHECKING, Any, ClassVar

from edgewise.base.registry import Registry, registrar
from edgewise.board.errors import UserError

if TYPE_CHECKING:
    import torch

    from edgewise.compress.ranking import Ranking

MAX_STEPS = 50
"""The most steps a schedule takes unless told otherwise: each step scores the whole network again."""

Units = dict[str, list[int]]
"""Per channel group, unit indices in the group's current numbering."""


class Schedule(abc.ABC):
    """How pruning proceeds: at most `steps` steps, each removing the units `removal` picks from that step's scores.

    `removal` gets each group's current unit scores, the groups' original unit counts, the
    ranking, the criterion's own normalisation and each unit's width in channels; it returns the
    units to remove, or None to stop before the step (nothing more to remove).
    """

    name: ClassVar[str]

    @property
    @abc.abstractmethod
    def steps(self) -> int:
        """The most steps this schedule takes."""

    @abc.abstractmethod
    def removal(self, step: int, scores: dict[str, torch.Tensor], original: dict[str, int], ranking: Ranking,
                normalization: str, width: dict[str, int]) -> Units | None:
        """The units to remove at `step` (1-based), or None to stop."""

    def prediction(self, original: dict[str, int], kept: dict[str, list[int]]) -> dict[str, Any] | None:
        """What the schedule predicted of the result, beside what happened (None when it predicts nothing)."""
        return None


class OneShot(Schedule):
    """`rate` of the prunable units removed at once."""

    name = "oneshot"

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.rates = [rate]  # the cumulative rate reached at each step

    @property
    def steps(self) -> int:
        return len(self.rates)

    def removal(self, step: int, scores: dict[str, torch.Tensor], original: dict[str, int], ranking: Ranking,
                normalization: str, width: dict[str, int]) -> Units:
        from edgewise.compress.ranking import plan_removal  # torch: imported when pruning runs, not when named

        return plan_removal(scores, {g: original[g] for g in scores}, self.rates[step - 1], ranking, normalization,
                            width)


class Iterative(OneShot):
    """`step` of the original units removed per step up to `rate`, re-scored (and fine-tuned) between steps."""

    name = "iterative"

    def __init__(self, rate: float, step: float = 0.05, max_steps: int = MAX_STEPS) -> None:
        super().__init__(rate)
        self.rates = iterative_rates(rate, step, max_steps)


class Adaptive(Schedule):
    """Seed 002's threshold median x SF^(C0/Ct) per group, applied until nothing more falls below it (at most
    `max_steps`), with the Lambert-W prediction of where it stops beside the observed counts."""

    name = "adaptive"

    def __init__(self, sf: float = 0.5, max_steps: int = MAX_STEPS) -> None:
        if not 0.0 < sf < 1.0:
            raise UserError(f"sparsification factor SF must be in (0, 1), got {sf}", "use e.g. 0.3 to 0.9")
        self.sf, self.max_steps = sf, max_steps

    @property
    def steps(self) -> int:
        return self.max_steps

    def removal(self, step: int, scores: dict[str, torch.Tensor], original: dict[str, int], ranking: Ranking,
                normalization: str, width: dict[str, int]) -> Units | None:
        from edgewise.compress.ranking import adaptive_removal

        units = adaptive_removal(scores, original, self.sf, ranking)
        return units if any(units.values()) else None

    def prediction(self, original: dict[str, int], kept: dict[str, list[int]]) -> dict[str, Any]:
        groups = [{"group": g, "c0": c0, "predicted": predicted_remaining(c0, self.sf),
                   "simulated": simulated_remaining(c0, self.sf), "observed": len(kept[g])}
                  for g, c0 in original.items()]
        return {"sf": self.sf, "m": 0.5, "groups": groups,
                "predicted_total": sum(p["predicted"] for p in groups),
                "observed_total": sum(p["observed"] for p in groups)}


SCHEDULES: Registry[type[Schedule]] = Registry("pruning schedule", "edgewise.schedules", {
    "oneshot": OneShot, "iterative": Iterative, "adaptive": Adaptive}, product=f"{__name__}:Schedule")
register_schedule = registrar(SCHEDULES)


def get_schedule(schedule: str | Schedule, **settings: Any) -> Schedule:
    """`schedule` itself when built, else the registered one built with those of `settings` (rate, step, sf,
    max_steps: prune's parameters) its constructor takes."""
    if isinstance(schedule, Schedule):
        return schedule
    factory = SCHEDULES.get(schedule)
    taken = inspect.signature(factory).parameters
    return SCHEDULES.build(schedule, **{k: v for k, v in settings.items() if k in taken})


def iterative_rates(target: float, step: float = 0.05, max_steps: int = MAX_STEPS) -> list[float]:
    """Cumulative rates of Yeom et al.'s fixed steps: step, 2 x step, ... up to `target` (the last one exact); more
    than `max_steps` of them is refused before any is made (a step of 1e-9 would be 5e8 re-scorings)."""
    if not 0.0 < step < 1.0:
        raise UserError(f"iterative step must be in (0, 1), got {step}", "use e.g. 0.05 (5% of the channels per step)")
    count = math.ceil(round(target / step, 9))
    if count > max_steps:
        raise UserError(f"an iterative step of {step:g} takes {count:,} steps to reach the rate {target:g}, more than "
                        f"the {max_steps} allowed", f"take a step of at least {target / max_steps:.3g}, or allow "
                        f"more steps (max_steps in the Python API)")
    return [min(target, round((k + 1) * step, 9)) for k in range(count)]


def predicted_remaining(c0: int, sf: float, m: float = 0.5) -> float:
    """Seed 002's closed form for where the adaptive threshold stops: Ct = -C0 ln(SF) / W(-C0 m ln(SF)).

    It assumes every step removes the fraction m x SF^(C0/Ct) of the remaining units (m = 0.5:
    the median splits them in half); the real distribution of scores moves the observed limit.
    """
    from scipy.special import lambertw

    if not 0.0 < sf < 1.0:
        raise UserError(f"sparsification factor SF must be in (0, 1), got {sf}", "use e.g. 0.3 to 0.9")
    log_sf = math.log(sf)
    return float(-c0 * log_sf / lambertw(-c0 * m * log_sf).real)


def simulated_remaining(c0: int, sf: float, m: float = 0.5, max_steps: int = 10_000) -> int:
    """The seed's integer recursion C_t = C_(t-1) - floor(C_(t-1) m SF^(C0/C_(t-1))), run to its fixed point."""
    c = c0
    for _ in range(max_steps):
        removed = math.floor(c * m * sf ** (c0 / c))
        if removed == 0:
            return c
        c -= removed
    return c
