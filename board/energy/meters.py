"""Choosing a meter: the first of several that reads here, a Jetson's, and the one a runner knowing no target finds.

The names target profiles give their power sources are the kit's registry (edgewise.targets.power_sources). Every
meter reads under the kit's sysfs root (EDGEWISE_SYSFS), so containers and tests point it elsewhere.
"""

from __future__ import annotations

from .jetson import InaMeter, TegrastatsMeter
from .nvml import NvmlMeter
from .rapl import RaplMeter
from .window import EnergyMeter


def first_available(*meters: EnergyMeter) -> tuple[EnergyMeter | None, str]:
    """The first meter that reads here, or (None, every reason joined)."""
    reasons = []
    for meter in meters:
        ok, reason = meter.available()
        if ok:
            return meter, ""
        reasons.append(reason)
    return None, "; ".join(reasons)


def jetson_meter() -> EnergyMeter:
    """The board's INA rails in sysfs (no process to start, finer sampling), else tegrastats."""
    meter, _ = first_available(InaMeter(), TegrastatsMeter())
    return meter or InaMeter()


def detect_meter() -> tuple[EnergyMeter | None, str]:
    """The energy source of the machine this runs on, for a runner that knows no target: a Jetson's INA rails, then
    tegrastats, RAPL, NVML; or (None, why none reads)."""
    meter, reason = first_available(InaMeter(), TegrastatsMeter(), RaplMeter(), NvmlMeter())
    return meter, "" if meter else f"no energy source here: {reason}"
