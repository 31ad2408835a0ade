"""Energy measurement over a window (begin, end, a result) for every source: RAPL, NVML, Jetson INA3221, emulated."""

from bench.energy.jetson import InaMeter, TegrastatsMeter, parse_tegrastats
from bench.energy.nvml import NvmlMeter
from bench.energy.rapl import RaplMeter
from bench.energy.window import EnergyMeter, EnergyResult, unavailable

__all__ = ["EnergyMeter", "EnergyResult", "InaMeter", "NvmlMeter", "RaplMeter", "TegrastatsMeter",
           "parse_tegrastats", "unavailable"]
