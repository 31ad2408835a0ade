"""NVIDIA GPUs through NVML: the total-energy counter (Volta and newer), else integrated power readings."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from .rails import trapezoid
from .window import EnergyMeter, EnergyResult, MeterError


def _pynvml() -> Any:
    import pynvml

    return pynvml


class NvmlMeter(EnergyMeter):
    """GPU `index` energy: difference of nvmlDeviceGetTotalEnergyConsumption (mJ), or, where that is not
    supported (before Volta), the trapezoid integral of nvmlDeviceGetPowerUsage (mW) over `sample()` calls."""

    source = "nvml"
    label = "NVML"

    def __init__(self, index: int = 0, clock: Callable[[], float] = time.monotonic,
                 module: Any | None = None) -> None:
        super().__init__(clock)
        self.index = index
        self._module = module
        self._handle: Any = None
        self._counter = True
        self._start_mj = 0
        self._times: list[float] = []
        self._watts: list[float] = []
        self._start = 0.0

    @property
    def nvml(self) -> Any:
        """The pynvml module (injectable for tests)."""
        if self._module is None:
            self._module = _pynvml()
        return self._module

    def available(self) -> tuple[bool, str]:
        try:
            nvml = self.nvml
            nvml.nvmlInit()
            count = nvml.nvmlDeviceGetCount()
        except ImportError:
            return False, "nvidia-ml-py is not installed (pip install 'edgewise[nvidia]')"
        except Exception as exc:  # pynvml raises NVMLError subclasses when no driver is loaded
            return False, f"NVML cannot start: {exc}"
        if self.index >= count:
            return False, f"no GPU {self.index} (NVML sees {count})"
        return True, f"NVML GPU {self.index}"

    def process_memory(self, pid: int) -> int | None:
        """GPU memory (bytes) NVML counts for process `pid` on this GPU, or None where it cannot say (no driver, the
        process holds no context, or a container that hides the host's process ids)."""
        try:
            handle = self.nvml.nvmlDeviceGetHandleByIndex(self.index)
            processes = self.nvml.nvmlDeviceGetComputeRunningProcesses(handle)
        except Exception:  # pynvml's NVMLError subclasses, or no pynvml at all
            return None
        used = [p.usedGpuMemory for p in processes if p.pid == pid and p.usedGpuMemory is not None]
        return sum(used) if used else None

    def _power_w(self) -> float:
        return self.nvml.nvmlDeviceGetPowerUsage(self._handle) / 1000.0

    def begin(self) -> None:
        ok, reason = self.available()
        if not ok:
            raise MeterError(f"NVML is unavailable: {reason}", "measure on a machine with an NVIDIA GPU and driver")
        self._handle = self.nvml.nvmlDeviceGetHandleByIndex(self.index)
        self._start = self.clock()
        try:
            self._start_mj = self.nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle)
            self._counter = True
        except self.nvml.NVMLError:
            self._counter = False
            self._times, self._watts = [self._start], [self._power_w()]

    def sample(self) -> None:
        if not self._counter:
            self._times.append(self.clock())
            self._watts.append(self._power_w())

    def end(self) -> EnergyResult:
        if self._counter:
            joules = (self.nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle) - self._start_mj) / 1000.0
            duration = self.clock() - self._start
            return EnergyResult(joules, duration, self.source, "measured", details={"method": "energy counter"})
        self.sample()
        return EnergyResult(trapezoid(self._times, self._watts), self._times[-1] - self._times[0], self.source,
                            "measured", details={"method": "power integration (no energy counter before Volta)",
                                                 "samples": len(self._times)})
