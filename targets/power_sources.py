"""Power sources by name: what a target profile's `power_source` says, and the energy meter that reads it there.

Built-in sources are the board package's meters; another package adds its own with an entry point
of the group `edgewise.power_sources` (`name = "mypackage.board:MyMeter"`, an EnergyMeter class or a
function returning one) or with `register_power_source`, so a new board's meter needs no edit to
the kit.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from edgewise.base.registry import Registry, registrar
from edgewise.board.energy.meters import first_available
from edgewise.board.energy.window import EnergyMeter

POWER_SOURCES: Registry[Callable[[], EnergyMeter]] = Registry("power source", "edgewise.power_sources", {
    "rapl": "edgewise.board.energy.rapl:RaplMeter",
    "nvml": "edgewise.board.energy.nvml:NvmlMeter",
    "ina3221": "edgewise.board.energy.meters:jetson_meter",
    "ina238": "edgewise.board.energy.meters:jetson_meter",
    "tegrastats": "edgewise.board.energy.jetson:TegrastatsMeter",
}, product="edgewise.board.energy.window:EnergyMeter")
register_power_source = registrar(POWER_SOURCES)


def meter_for(profile: dict[str, Any]) -> tuple[EnergyMeter | None, str]:
    """The energy meter of a target profile and whether it reads here: (meter, '') or (None, why not, with the fix).
    A profile whose `power_source` is no registered source (an emulated target's cost model) has no meter."""
    source = profile.get("power_source")
    if not isinstance(source, str) or source not in POWER_SOURCES:
        return None, f"target {profile['name']} has no measured energy source ({source})"
    meter, reason = first_available(POWER_SOURCES.build(source))
    return meter, "" if meter else f"no energy source here: {reason}"
