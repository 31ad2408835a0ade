"""Jetson power rails, read from sysfs or tegrastats lines, and the board total: the standard library only.

Deploy bundles ship it in the board package, so the board's runner reads power the way the kit
does. Readers:
- INA3221 through the L4T iio driver (JetPack 4: `bus/i2c/drivers/ina3221x/<bus>-<addr>/iio:device*`,
  L4T 28 on TX1/TX2: `.../iio_device`): `rail_name_<n>` and `in_power<n>_input` (mW);
- INA3221 through hwmon (JetPack 5+): `in<n>_label`, `in<n>_input` (mV) x `curr<n>_input` (mA);
  labels NC (unconnected) and channel 7 (a sum of shunt voltages) are skipped;
- INA238 through hwmon (Jetson Thor's input rail): `power1_input` (uW), named by its label file, else VIN.
The board total is the input rail (VIN on Thor, VDD_IN on Orin NX/Nano and Xavier NX, POM_5V_IN on
Nano) and never adds its sub-rails; AGX Orin and AGX Xavier have no input rail, so their module
rails are summed and the result says so. A sub-rail reading above the input rail is a warning
(a carrier board that labels its rails differently).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path

INPUT_RAILS = ("VIN", "VDD_IN", "POM_5V_IN")
NOT_RAILS = {"RAM", "SWAP", "IRAM", "LFB", "EMC_FREQ", "GR3D_FREQ"}
_RAIL = re.compile(r"(?<![\w@])([A-Z][A-Z0-9_]*) (\d+)(?:mW)?/(\d+)(?:mW)?(?:/(\d+)(?:mW)?)?(?=\s|$)")


def _number(path: Path) -> float:
    return float(path.read_text().strip())


def _iio_rails(device: Path) -> dict[str, Callable[[], float]]:
    rails = {}
    for label in sorted(device.glob("rail_name_*")):
        n = label.name.rsplit("_", 1)[1]
        rails[label.read_text().strip()] = lambda p=device / f"in_power{n}_input": _number(p)
    return rails


def _ina3221_hwmon_rails(hwmon: Path) -> dict[str, Callable[[], float]]:
    rails = {}
    for label in sorted(hwmon.glob("in*_label")):
        n = label.name[2:].split("_")[0]
        name = label.read_text().strip()
        if name == "NC" or n == "7":
            continue
        volts, amps = hwmon / f"in{n}_input", hwmon / f"curr{n}_input"
        rails[name] = lambda v=volts, a=amps: _number(v) * _number(a) / 1000.0
    return rails


def _ina238_rails(hwmon: Path) -> dict[str, Callable[[], float]]:
    label = next((hwmon / f for f in ("power1_label", "in1_label", "label") if (hwmon / f).is_file()), None)
    name = label.read_text().strip() if label is not None else "VIN"
    return {name: lambda p=hwmon / "power1_input": _number(p) / 1000.0}  # uW -> mW


def find_rails(sys_root: str | Path = "/sys") -> dict[str, Callable[[], float]]:
    """Every power rail under the sysfs root: name -> a reader of its power in milliwatts."""
    root = Path(sys_root)
    rails: dict[str, Callable[[], float]] = {}
    drivers = root / "bus" / "i2c" / "drivers"
    for device in sorted([*drivers.glob("ina3221x/*/iio:device*"), *drivers.glob("ina3221x/*/iio_device")]):
        rails.update(_iio_rails(device))
    for hwmon in sorted(drivers.glob("ina3221/*/hwmon/hwmon*")):
        rails.update(_ina3221_hwmon_rails(hwmon))
    for hwmon in sorted(drivers.glob("ina238/*/hwmon/hwmon*")):
        rails.update(_ina238_rails(hwmon))
    return rails


def parse_tegrastats(line: str) -> dict[str, float]:
    """Current power of each rail in a tegrastats line, in milliwatts (JetPack 4 to 7 formats)."""
    return {name: float(now) for name, now, _, _ in _RAIL.findall(line) if name not in NOT_RAILS}


def board_total(rails: dict[str, float]) -> tuple[float, str, list[str]]:
    """Total board power in mW, the rail it came from, and warnings about the readings."""
    for name in INPUT_RAILS:
        if name in rails:
            total = rails[name]
            above = [r for r, mw in rails.items() if r != name and mw > total]
            warnings = [f"{r} reads {rails[r]:.0f} mW, above the input rail {name} ({total:.0f} mW): the carrier "
                        "board may label its rails differently" for r in above]
            return total, name, warnings
    return sum(rails.values()), "sum of module rails (no input rail on this board)", []


def trapezoid(times: Sequence[float], watts: Sequence[float]) -> float:
    """Joules from power samples at monotonic timestamps, by the trapezoid rule."""
    return sum((t1 - t0) * (p0 + p1) / 2 for t0, t1, p0, p1 in zip(times, times[1:], watts, watts[1:], strict=False))
