"""RAPL through Linux powercap: package and DRAM energy counters, wraparound, and the permission rule."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from .window import EnergyMeter, EnergyResult, MeterError, sysfs


class RaplMeter(EnergyMeter):
    """Package + DRAM energy from `<root>/intel-rapl:N[:M]/energy_uj` (the same paths on AMD Zen).

    Core and uncore are inside the package and never added; psys (the whole platform) and the
    intel-rapl-mmio duplicates are not added either. A counter that went down wrapped once: its
    `max_energy_range_uj` is added. Call `sample()` about every second in long windows so that two
    wraps cannot happen between readings.
    """

    source = "rapl"
    label = "RAPL"

    def __init__(self, root: str | Path | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(clock)
        self.root = Path(root) if root is not None else sysfs() / "class" / "powercap"
        self.zones: dict[str, Path] = {}
        self._last: dict[str, int] = {}
        self._total: dict[str, int] = {}
        self._start = 0.0

    def _discover(self) -> dict[str, Path]:
        zones = {}
        for zone in sorted(self.root.glob("intel-rapl:*")):
            name_file = zone / "name"
            if not name_file.is_file():
                continue
            name = name_file.read_text().strip()
            if name.startswith("package") or name == "dram":
                # a dram subzone is named per package: keep them apart
                key = name if name.startswith("package") else f"dram@{zone.name}"
                zones[key] = zone
        return zones

    def available(self) -> tuple[bool, str]:
        """Whether the counters exist and this process may read them (root-only since Linux 5.10), and if not why,
        with the fix."""
        if not self.root.is_dir():
            return False, f"no powercap interface at {self.root} (virtual machines usually have none)"
        zones = self._discover()
        if not zones:
            return False, f"no RAPL package zones under {self.root}"
        try:
            for zone in zones.values():
                self._read(zone)
        except MeterError as exc:
            return False, f"{exc.problem}; fix: {exc.fix}"
        return True, "RAPL package and DRAM counters"

    def _read(self, zone: Path) -> int:
        try:
            with open(zone / "energy_uj", encoding="ascii") as fh:
                return int(fh.read())
        except PermissionError as exc:
            raise MeterError(
                f"permission denied reading {zone / 'energy_uj'} (root-only since Linux 5.10, CVE-2020-8694)",
                "run as root, or `sudo chmod a+r /sys/class/powercap/intel-rapl:*/energy_uj` (this re-opens a "
                "power side channel)") from exc

    def begin(self) -> None:
        for zone in self._discover().values():
            self._read(zone)  # a counter this process may not read says so, with the fix
        ok, reason = self.available()
        if not ok:
            raise MeterError(f"RAPL is unavailable: {reason}", "measure on a machine with powercap RAPL")
        self.zones = self._discover()
        self._last = {k: self._read(z) for k, z in self.zones.items()}
        self._total = dict.fromkeys(self.zones, 0)
        self._start = self.clock()

    def sample(self) -> None:
        for key, zone in self.zones.items():
            now = self._read(zone)
            delta = now - self._last[key]
            if delta < 0:
                delta += int((zone / "max_energy_range_uj").read_text())
            self._total[key] += delta
            self._last[key] = now

    def end(self) -> EnergyResult:
        self.sample()
        duration = self.clock() - self._start
        joules = sum(self._total.values()) / 1e6
        return EnergyResult(joules, duration, self.source, "measured",
                            details={"zones_j": {k: v / 1e6 for k, v in self._total.items()},
                                     "summed": sorted(self.zones)})
