"""Which targets can be measured on this machine, which only estimated or emulated, and why.

The machine is read under the kit's sysfs and procfs roots (EDGEWISE_SYSFS, EDGEWISE_PROCFS):
the board from the device tree's model string (each board profile says what it holds), energy
sources through each target's meter.
"""

from __future__ import annotations

import platform
from typing import Any

from edgewise.board.energy import NvmlMeter
from edgewise.board.system import procfs
from edgewise.targets import load_target, target_names
from edgewise.targets.power_sources import meter_for


def board_model() -> str:
    """The device tree's model string ('' on a machine without one)."""
    try:
        return (procfs() / "device-tree/model").read_text().strip("\x00\n ")
    except OSError:
        return ""


def this_board() -> str | None:
    """The name of the board target this runs on, or None: the board profile whose `device_tree_model` the device
    tree's model string holds (e.g. "NVIDIA Jetson Orin NX Engineering Reference Developer Kit"), the longest
    such match where several do ('Jetson Orin Nano' over a profile's 'Orin')."""
    model = board_model()
    found = [(len(profile["device_tree_model"]), name) for name in target_names("board")
             if (profile := load_target(name))["device_tree_model"] in model]
    return max(found)[1] if found else None


def _energy(profile: dict[str, Any]) -> str:
    meter, why = meter_for(profile)
    return f"measured ({meter.label})" if meter else f"unavailable: {why}"


def availability(name: str) -> dict[str, Any]:
    """For target `name`: can it run here, how figures are obtained (measured/emulated/estimated), the energy source."""
    profile = load_target(name)
    kind = profile["kind"]
    if kind == "emulated":
        return {"target": name, "runs_here": True, "figures": "emulated", "energy": "emulated (cost model)",
                "why": "the FantastIC4 emulator runs anywhere"}
    if kind == "host":
        ok = platform.machine() in ("x86_64", "AMD64")
        return {"target": name, "runs_here": ok, "figures": "measured" if ok else "unavailable",
                "energy": _energy(profile),
                "why": f"this CPU ({platform.machine()})" if ok else f"not an x86-64 machine ({platform.machine()})"}
    if kind == "gpu":
        ok, why = NvmlMeter().available()  # the GPU is found through NVML, its energy source too
        return {"target": name, "runs_here": ok, "figures": "measured" if ok else "unavailable",
                "energy": "measured (NVML)" if ok else f"unavailable: {why}", "why": why}
    if this_board() == name:
        return {"target": name, "runs_here": True, "figures": "measured", "energy": _energy(profile),
                "why": f"this board ({board_model()})"}
    return {"target": name, "runs_here": False, "figures": "estimated",
            "energy": "estimated (power mode x estimated latency)",
            "why": "not this machine: a per-layer estimate calibrated on published measurements, or a result JSON from "
                   "the bundle's run.py"}


def all_targets() -> list[dict[str, Any]]:
    """Availability of every shipped target."""
    return [availability(name) for name in target_names()]
