"""Pruning schedules: the rates of one-shot and iterative pruning, and seed 002's adaptive-threshold limit."""

from __future__ import annotations

import math

from scipy.special import lambertw

from edgewise.base.errors import UserError

SCHEDULES = ("oneshot", "iterative", "adaptive")


def iterative_rates(target: float, step: float = 0.05) -> list[float]:
    """Cumulative rates of Yeom et al.'s fixed steps: step, 2 x step, ... up to `target` (the last one exact)."""
    if not 0.0 < step < 1.0:
        raise UserError(f"iterative step must be in (0, 1), got {step}", "use e.g. 0.05 (5% of the channels per step)")
    count = math.ceil(round(target / step, 9))
    return [min(target, round((k + 1) * step, 9)) for k in range(count)]


def predicted_remaining(c0: int, sf: float, m: float = 0.5) -> float:
    """Seed 002's closed form for where the adaptive threshold stops: Ct = -C0 ln(SF) / W(-C0 m ln(SF)).

    It assumes every step removes the fraction m x SF^(C0/Ct) of the remaining units (m = 0.5:
    the median splits them in half); the real distribution of scores moves the observed limit.
    """
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
