"""Energy measurement over a window (begin, end, a result) for every source: RAPL, NVML, Jetson INA rails, tegrastats.

Relative imports only: part of the board package (edgewise.board), which deploy bundles ship whole.
"""

from .jetson import InaMeter, TegrastatsMeter
from .measure import energy_per_inference, marginal_energy, measure_energy
from .meters import POWER_SOURCES, detect_meter, meter_for
from .nvml import NvmlMeter
from .rails import board_total, find_rails, parse_tegrastats
from .rapl import RaplMeter
from .tegra import RamPeak, board_state
from .window import EnergyMeter, EnergyResult, MeterError, unavailable

__all__ = ["POWER_SOURCES", "EnergyMeter", "EnergyResult", "InaMeter", "MeterError", "NvmlMeter", "RamPeak",
           "RaplMeter", "TegrastatsMeter", "board_state", "board_total", "detect_meter", "energy_per_inference",
           "find_rails", "marginal_energy", "measure_energy", "meter_for", "parse_tegrastats", "unavailable"]
