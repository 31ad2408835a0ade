"""One energy meter per target: a profile's `power_source` names it in this registry; a board's runner detects it.

A new source is one reader module and one entry. Every meter reads under the kit's sysfs root
(EDGEWISE_SYSFS), so containers and tests point it elsewhere.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

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


def _jetson() -> EnergyMeter:
    """The board's INA rails in sysfs (no process to start, finer sampling), else tegrastats."""
    meter, _ = first_available(InaMeter(), TegrastatsMeter())
    return meter or InaMeter()


# a profile's power_source -> the meter that reads it
POWER_SOURCES: dict[str, Callable[[], EnergyMeter]] = {
    "rapl": RaplMeter,
    "nvml": NvmlMeter,
    "ina3221": _jetson,
    "ina238": _jetson,
    "tegrastats": TegrastatsMeter,
}


def meter_for(profile: dict[str, Any]) -> tuple[EnergyMeter | None, str]:
    """The energy meter of a target profile and whether it reads here: (meter, '') or (None, why not, with the fix)."""
    source = profile.get("power_source")
    if source not in POWER_SOURCES:
        return None, f"target {profile['name']} has no measured energy source ({source})"
    meter, reason = first_available(POWER_SOURCES[source]())
    return meter, "" if meter else f"no energy source here: {reason}"


def detect_meter() -> tuple[EnergyMeter | None, str]:
    """The energy source of the machine this runs on, for a runner that knows no target: a Jetson's INA rails, then
    tegrastats, RAPL, NVML; or (None, why none reads)."""
    meter, reason = first_available(InaMeter(), TegrastatsMeter(), RaplMeter(), NvmlMeter())
    return meter, "" if meter else f"no energy source here: {reason}"
