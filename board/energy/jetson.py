"""Jetson power as energy meters: the INA rails in sysfs, or tegrastats lines, integrated over a window.

Reading the rails and choosing the board total is edgewise.board.energy.rails (the standard
library only, so a bundle's run.py ships it too); these meters put it behind the window API.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

from .rails import board_total, find_rails, parse_tegrastats, trapezoid
from .window import EnergyMeter, EnergyResult, MeterError, sysfs


class InaMeter(EnergyMeter):
    """The INA3221/INA238 rails in sysfs under `root` (the kit's sysfs root by default), integrated by trapezoids."""

    source = "ina"
    label = "INA rails in sysfs"

    def __init__(self, root: str | Path | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(clock)
        self.root = Path(root) if root is not None else sysfs()
        self._times: list[float] = []
        self._watts: list[float] = []
        self._total_rail = ""
        self._warnings: list[str] = []

    def available(self) -> tuple[bool, str]:
        if not find_rails(self.root):
            return False, f"no INA3221 or INA238 power monitor under {self.root} (not a Jetson board)"
        try:
            self.read_mw()
        except MeterError as exc:
            return False, f"{exc.problem} (fix: {exc.fix})"
        return True, "INA power rails in sysfs"

    def read_mw(self) -> tuple[float, str, dict[str, float]]:
        """Board total (mW), which rail it came from, and every rail's power."""
        try:
            rails = {name: read() for name, read in find_rails(self.root).items()}
        except PermissionError as exc:
            raise MeterError(f"permission denied reading the power rails under {self.root}",
                            "run as root or give your user read access to the hwmon files") from exc
        total, rail, warnings = board_total(rails)
        self._warnings = sorted(set(self._warnings) | set(warnings))
        return total, rail, rails

    def begin(self) -> None:
        ok, reason = self.available()
        if not ok:
            raise MeterError(f"Jetson power rails are unavailable: {reason}", "measure on the board")
        self._times, self._watts, self._warnings = [], [], []
        self.sample()

    def sample(self) -> None:
        total, self._total_rail, _ = self.read_mw()
        self._times.append(self.clock())
        self._watts.append(total / 1000.0)

    def end(self) -> EnergyResult:
        self.sample()
        return EnergyResult(trapezoid(self._times, self._watts), self._times[-1] - self._times[0], self.source,
                            "measured", details={"rail": self._total_rail, "samples": len(self._times),
                                                 "start": self._times[0], "end": self._times[-1],
                                                 "warnings": self._warnings})


class TegrastatsMeter(EnergyMeter):
    """Board power from `tegrastats --interval <ms>` lines, timestamped on arrival, integrated by trapezoids."""

    source = "tegrastats"
    label = "tegrastats"

    def __init__(self, executable: str = "tegrastats", interval_ms: int = 100,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(clock)
        self.executable = executable
        self.interval_ms = interval_ms
        self._process: subprocess.Popen | None = None
        self._samples: list[tuple[float, float, str]] = []
        self._warnings: set[str] = set()
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
                total, rail, warnings = board_total(rails)
                self._samples.append((self.clock(), total / 1000.0, rail))
                self._warnings.update(warnings)

    def begin(self) -> None:
        ok, reason = self.available()
        if not ok:
            raise MeterError(f"tegrastats is unavailable: {reason}", "measure on the board")
        self._samples, self._warnings = [], set()
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
            raise MeterError("tegrastats gave fewer than two power readings in the window",
                            "measure longer, or lower --interval")
        return EnergyResult(trapezoid(times, watts), times[-1] - times[0], self.source, "measured",
                            details={"rail": self._samples[-1][2], "samples": len(times), "start": times[0],
                                     "end": times[-1], "warnings": sorted(self._warnings)})
