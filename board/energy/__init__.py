"""Energy measurement over a window (begin, end, a result) for every source: RAPL, NVML, Jetson INA rails, tegrastats.

Relative imports only: part of the board package (edgewise.board), which deploy bundles ship whole.
"""

from .jetson import InaMeter, TegrastatsMeter
from .measure import energy_per_inference, marginal_energy, measure_energy
from .meters import detect_meter, first_available, jetson_meter
from .nvml import NvmlMeter
from .rails import board_total, find_rails, parse_tegrastats
from .rapl import RaplMeter
from .tegra import RamPeak, board_state
from .window import EnergyMeter, EnergyResult, MeterError, unavailable

__all__ = ["EnergyMeter", "EnergyResult", "InaMeter", "MeterError", "NvmlMeter", "RamPeak", "RaplMeter",
           "TegrastatsMeter", "board_state", "board_total", "detect_meter", "energy_per_inference", "find_rails",
           "first_available", "jetson_meter", "marginal_energy", "measure_energy", "parse_tegrastats", "unavailable"]
