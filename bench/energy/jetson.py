"""Jetson power: INA3221 rails from sysfs (JetPack 4 iio, JetPack 5+ hwmon) and tegrastats lines, integrated.

The board's total is the input rail, VDD_IN (Xavier NX, Orin NX, Orin Nano) or POM_5V_IN (Nano);
sub-rails are never added to it. AGX boards have no input rail: their module rails are summed and
the result says so.
"""

from __future__ import annotations

import re
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

from edgewise.base.errors import UserError
from edgewise.base.system import sysfs
from edgewise.bench.energy.window import EnergyMeter, EnergyResult, trapezoid

INPUT_RAILS = ("VDD_IN", "POM_5V_IN")
NOT_RAILS = {"RAM", "SWAP", "IRAM", "LFB"}
_RAIL = re.compile(r"(?<![\w@])([A-Z][A-Z0-9_]*) (\d+)(?:mW)?/(\d+)(?:mW)?(?:/(\d+)(?:mW)?)?(?=\s|$)")


def parse_tegrastats(line: str) -> dict[str, float]:
    """Current power of each rail in a tegrastats line, in milliwatts (JetPack 4, 5 and 6 formats)."""
    return {name: float(now) for name, now, _, _ in _RAIL.findall(line) if name not in NOT_RAILS}


def board_total(rails: dict[str, float]) -> tuple[float, str]:
    """Total board power in mW from the input rail, or the sum of module rails where a board has none."""
    for name in INPUT_RAILS:
        if name in rails:
            return rails[name], name
    return sum(rails.values()), "sum of module rails (no input rail on this board)"


class InaMeter(EnergyMeter):
    """INA3221 rails read from sysfs under `root` (normally /sys), integrated with the trapezoid rule."""

    source = "ina3221"

    def __init__(self, root: str | Path | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(clock)
        self.root = Path(root) if root is not None else sysfs()
        self._times: list[float] = []
        self._watts: list[float] = []
        self._total_rail = ""

    def _rails(self) -> dict[str, Callable[[], float]]:
        """Readers of each rail's power in mW."""
        rails: dict[str, Callable[[], float]] = {}
        for device in sorted(self.root.glob("bus/i2c/drivers/ina3221x/*/iio:device*")):  # JetPack 4
            for label in sorted(device.glob("rail_name_*")):
                n = label.name.rsplit("_", 1)[1]
                power = device / f"in_power{n}_input"
                rails[label.read_text().strip()] = lambda p=power: float(p.read_text())
        for hwmon in sorted(self.root.glob("bus/i2c/drivers/ina3221/*/hwmon/hwmon*")):  # JetPack 5+
            for label in sorted(hwmon.glob("in*_label")):
                n = label.name[2:].split("_")[0]
                name = label.read_text().strip()
                if name == "NC" or n == "7":  # unconnected, and channel 7 is a sum of shunt voltages
                    continue
                volts, amps = hwmon / f"in{n}_input", hwmon / f"curr{n}_input"
                rails[name] = lambda v=volts, a=amps: float(v.read_text()) * float(a.read_text()) / 1000.0
        return rails

    def available(self) -> tuple[bool, str]:
        if not self._rails():
            return False, f"no INA3221 power monitor under {self.root} (not a Jetson board)"
        return True, "INA3221 rails in sysfs"

    def read_mw(self) -> tuple[float, str, dict[str, float]]:
        """Board total (mW), which rail it came from, and every rail's power."""
        try:
            rails = {name: read() for name, read in self._rails().items()}
        except PermissionError as exc:
            raise UserError(f"permission denied reading the INA3221 rails under {self.root}",
                            "run as root or give your user read access to the hwmon files") from exc
        total, rail = board_total(rails)
        return total, rail, rails

    def begin(self) -> None:
        ok, reason = self.available()
        if not ok:
            raise UserError(f"Jetson power rails are unavailable: {reason}", "measure on the board")
        self._times, self._watts = [], []
        self.sample()

    def sample(self) -> None:
        total, self._total_rail, _ = self.read_mw()
        self._times.append(self.clock())
        self._watts.append(total / 1000.0)

    def end(self) -> EnergyResult:
        self.sample()
        return EnergyResult(trapezoid(self._times, self._watts), self._times[-1] - self._times[0], self.source,
                            "measured", details={"rail": self._total_rail, "samples": len(self._times)})


class TegrastatsMeter(EnergyMeter):
    """Board power from `tegrastats --interval <ms>` lines, timestamped on arrival, integrated by trapezoids."""

    source = "tegrastats"

    def __init__(self, executable: str = "tegrastats", interval_ms: int = 100,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(clock)
        self.executable = executable
        self.interval_ms = interval_ms
        self._process: subprocess.Popen | None = None
        self._samples: list[tuple[float, float, str]] = []
        self._reader: threading.Thread | None = None

    def available(self) -> tuple[bool, str]:
        import shutil

        if shutil.which(self.executable) is None:
            return False, f"{self.executable} is not on PATH (it ships with JetPack)"
        return True, "tegrastats"

    def _read(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        for line in self._process.stdout:
            rails = parse_tegrastats(line)
            if rails:
                total, rail = board_total(rails)
                self._samples.append((self.clock(), total / 1000.0, rail))

    def begin(self) -> None:
        ok, reason = self.available()
        if not ok:
            raise UserError(f"tegrastats is unavailable: {reason}", "measure on the board")
        self._samples = []
        self._process = subprocess.Popen([self.executable, "--interval", str(self.interval_ms)],
                                         stdout=subprocess.PIPE, text=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def end(self) -> EnergyResult:
        assert self._process is not None and self._reader is not None
        if self._process.poll() is None:
            self._process.terminate()
        self._process.wait(timeout=5)
        self._reader.join(timeout=5)
        times = [t for t, _, _ in self._samples]
        watts = [w for _, w, _ in self._samples]
        if len(times) < 2:
            raise UserError("tegrastats gave fewer than two power readings in the window",
                            "measure longer, or lower --interval")
        return EnergyResult(trapezoid(times, watts), times[-1] - times[0], self.source, "measured",
                            details={"rail": self._samples[-1][2], "samples": len(times)})
