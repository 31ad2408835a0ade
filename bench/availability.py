"""Which targets can be measured on this machine, which only estimated or emulated, and why."""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any

from edgewise.base.system import procfs, sysfs
from edgewise.bench.energy import InaMeter, NvmlMeter, RaplMeter
from edgewise.targets import load_target, target_names

_JETSON_MODELS = {"jetson-nano": "Nano", "jetson-xavier-nx": "Xavier NX", "jetson-orin-nano": "Orin Nano",
                  "jetson-orin-nx": "Orin NX", "jetson-agx-orin": "AGX Orin"}


def _board_model(proc: Path) -> str:
    try:
        return (proc / "device-tree/model").read_text().strip("\x00\n ")
    except OSError:
        return ""


def availability(name: str, root: str | Path | None = None) -> dict[str, Any]:
    """For target `name`: can it run here, how figures are obtained (measured/emulated/estimated), the energy source.

    The machine is read under `root` (its sys/ and proc/ folders) when given, else under the kit's
    sysfs and procfs roots (EDGEWISE_SYSFS, EDGEWISE_PROCFS).
    """
    profile = load_target(name)
    sys_root, proc_root = (Path(root) / "sys", Path(root) / "proc") if root is not None else (sysfs(), procfs())
    kind = profile["kind"]
    if kind == "emulated":
        return {"target": name, "runs_here": True, "figures": "emulated", "energy": "emulated (cost model)",
                "why": "the FantastIC4 emulator runs anywhere"}
    if kind == "host":
        ok = platform.machine() in ("x86_64", "AMD64")
        energy_ok, energy_reason = RaplMeter(sys_root / "class" / "powercap").available()
        return {"target": name, "runs_here": ok, "figures": "measured" if ok else "unavailable",
                "energy": "measured (RAPL)" if energy_ok else f"unavailable: {energy_reason}",
                "why": f"this CPU ({platform.machine()})" if ok else f"not an x86-64 machine ({platform.machine()})"}
    if kind == "gpu":
        ok, reason = NvmlMeter().available()
        return {"target": name, "runs_here": ok, "figures": "measured" if ok else "unavailable",
                "energy": "measured (NVML)" if ok else f"unavailable: {reason}", "why": reason}
    board = _board_model(proc_root)
    here = _JETSON_MODELS.get(name, "") in board and bool(board)
    ina_ok, ina_reason = InaMeter(sys_root).available()
    return {"target": name, "runs_here": here, "figures": "measured" if here else "estimated",
            "energy": "measured (INA3221)" if here and ina_ok else
            ("estimated (power mode x estimated latency)" if not here else f"unavailable: {ina_reason}"),
            "why": f"this board ({board})" if here else
            "not this machine: a per-layer estimate calibrated on published measurements, or a result JSON from the "
            "bundle's run.py"}


def all_targets(root: str | Path | None = None) -> list[dict[str, Any]]:
    """Availability of every shipped target."""
    return [availability(name, root) for name in target_names()]
