"""Energy measurement over a window (begin, end, a result) for every source: RAPL, NVML, Jetson INA3221, emulated."""

from edgewise.bench.energy.jetson import InaMeter, TegrastatsMeter, parse_tegrastats
from edgewise.bench.energy.nvml import NvmlMeter
from edgewise.bench.energy.rapl import RaplMeter
from edgewise.bench.energy.window import EnergyMeter, EnergyResult, unavailable

__all__ = ["EnergyMeter", "EnergyResult", "InaMeter", "NvmlMeter", "RaplMeter", "TegrastatsMeter",
           "parse_tegrastats", "unavailable"]
