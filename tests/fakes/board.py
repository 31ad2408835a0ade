"""A simulated Jetson under a temporary root: the files and executables the kit reads on a board.

The device tree names the module; the INA power monitors' hwmon files (INA3221 for Orin NX, an
INA238 input rail VIN beside an INA3221 for Thor) hold power that follows a known trace of
time.monotonic(), rewritten every millisecond by a writer process (as the kernel driver would
answer each read); meminfo, the GPU's devfreq and fake `nvpmodel` and `tegrastats` executables
complete the board. `energy_j(t0, t1)` is the trace's exact integral, the truth a measurement
is checked against. Run as a script, this file is the writer: `board.py SENSORS_ROOT BOARD`.
"""

from __future__ import annotations

import math
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

BASE_W, AMPLITUDE_W, PERIOD_S = 6.0, 1.5, 5.0  # the board's input power: BASE + AMPLITUDE sin(2 pi t / PERIOD)
VOLTS = 5.0  # the INA3221 channels' bus voltage (its input rail is 5 V on Orin NX)
BOARDS = {
    "orin-nx": {"model": "NVIDIA Jetson Orin NX Engineering Reference Developer Kit", "input": "VDD_IN",
                "input_sensor": "ina3221", "rails": {"VDD_CPU_GPU_CV": 0.4, "VDD_SOC": 0.25}},
    "thor": {"model": "NVIDIA Jetson AGX Thor Developer Kit", "input": "VIN", "input_sensor": "ina238",
             "rails": {"VDD_GPU": 0.35, "VDD_CPU_SOC_MSS": 0.3}},
}
INA3221 = "bus/i2c/drivers/ina3221/1-0040/hwmon/hwmon3"
INA238 = "bus/i2c/drivers/ina238/2-0044/hwmon/hwmon5"
_NVPMODEL = """#!{python}
import sys
if "-q" in sys.argv:
    print("NV Power Mode: MAXN")
    print(0)
"""
# tegrastats reads the same monitors the kit does and prints its JetPack 5/6 line (JetPack 7's on Thor)
_TEGRASTATS = """#!{python}
import sys, time
from pathlib import Path
root = Path({sensors!r})
interval = int(sys.argv[sys.argv.index("--interval") + 1]) / 1000 if "--interval" in sys.argv else 1.0
def mw(path):
    return int(Path(path).read_text())
while True:
    rails = []
    ina238 = root / {ina238!r} / "power1_input"
    if ina238.exists():
        rails.append(("VIN", mw(ina238) // 1000))
    hwmon = root / {ina3221!r}
    for label in sorted(hwmon.glob("in*_label")):
        n = label.name[2:].split("_")[0]
        if n != "7":
            volts, amps = mw(hwmon / f"in{{n}}_input"), mw(hwmon / f"curr{{n}}_input")
            rails.append((label.read_text().strip(), volts * amps // 1000))
    text = " ".join(f"{{name}} {{now}}mW/{{now}}mW" for name, now in rails)
    print(time.strftime("%m-%d-%Y %H:%M:%S") + " RAM 3224/15388MB (lfb 2x4MB) SWAP 0/7694MB (cached 0MB) "
          "CPU [2%@729,1%@729] EMC_FREQ 0%@2133 GR3D_FREQ 0%@[305] cpu@47.5C " + text, flush=True)
    time.sleep(interval)
"""


def power_w(t: float) -> float:
    """The board's input power at monotonic time `t`, in watts."""
    return BASE_W + AMPLITUDE_W * math.sin(2 * math.pi * t / PERIOD_S)


def energy_j(t0: float, t1: float) -> float:
    """The exact energy of the trace from t0 to t1, in joules."""
    w = 2 * math.pi / PERIOD_S
    return BASE_W * (t1 - t0) - AMPLITUDE_W / w * (math.cos(w * t1) - math.cos(w * t0))


def _write(path: Path, value: object) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(f"{value}\n")
    os.replace(tmp, path)  # a reader sees the old or the new value, never half of one


def _executable(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


class SimulatedJetson:
    """A board's sysfs, procfs and executables under `root`; a context that runs the sensor writer.

    With `rails_in_sysfs` False the monitors live outside sysfs, where only tegrastats reads them
    (a container that does not mount the host's /sys, or a driver the kit does not know).
    """

    def __init__(self, root: Path, board: str = "orin-nx", trtexec: Path | None = None,
                 rails_in_sysfs: bool = True) -> None:
        self.root, self.board, self.spec = Path(root), board, BOARDS[board]
        self.sensors = self.root / ("sys" if rails_in_sysfs else "sensors")
        self._writer: subprocess.Popen | None = None
        (self.root / "proc/device-tree").mkdir(parents=True, exist_ok=True)
        (self.root / "proc/device-tree/model").write_text(self.spec["model"] + "\x00")
        (self.root / "proc/meminfo").write_text("MemTotal:       15772648 kB\nMemFree:        11011808 kB\n"
                                                "MemAvailable:   12860112 kB\nBuffers:           26528 kB\n")
        gpu = self.root / "sys/class/devfreq/17000000.gpu"
        gpu.mkdir(parents=True)
        for name in ("min_freq", "max_freq", "cur_freq"):
            (gpu / name).write_text("918000000\n")  # jetson_clocks pins the minimum to the maximum
        hwmon = self.sensors / INA3221
        hwmon.mkdir(parents=True)
        channels = ([self.spec["input"]] if self.spec["input_sensor"] == "ina3221" else []) + list(self.spec["rails"])
        for n, name in enumerate(channels, start=1):
            (hwmon / f"in{n}_label").write_text(name + "\n")
        (hwmon / "in7_label").write_text("sum of shunt voltages\n")
        if self.spec["input_sensor"] == "ina238":
            (self.sensors / INA238).mkdir(parents=True)
        self.write_once(time.monotonic())
        bin_dir = self.root / "bin"
        bin_dir.mkdir()
        _executable(bin_dir / "nvpmodel", _NVPMODEL.format(python=sys.executable))
        _executable(bin_dir / "tegrastats", _TEGRASTATS.format(python=sys.executable, sensors=str(self.sensors),
                                                               ina238=INA238, ina3221=INA3221))
        if trtexec is not None:
            _executable(bin_dir / "trtexec", trtexec.read_text().replace("#!/usr/bin/env python3",
                                                                         f"#!{sys.executable}", 1))

    def write_once(self, t: float) -> None:
        """Every monitor's files at time `t`: the input rail at the trace's power, sub-rails at their shares."""
        total = power_w(t)
        hwmon = self.sensors / INA3221
        channels = [(self.spec["input"], 1.0)] if self.spec["input_sensor"] == "ina3221" else []
        channels += list(self.spec["rails"].items())
        for n, (_, share) in enumerate(channels, start=1):
            _write(hwmon / f"in{n}_input", int(VOLTS * 1000))
            _write(hwmon / f"curr{n}_input", round(total * share / VOLTS * 1000))  # mA
        if self.spec["input_sensor"] == "ina238":
            _write(self.sensors / INA238 / "in1_input", 48000)  # mV: Thor's input is up to 48 V
            _write(self.sensors / INA238 / "power1_input", round(total * 1e6))  # uW

    @property
    def env(self) -> dict[str, str]:
        """The environment a process on this board sees: the kit's roots and the board's executables first on PATH."""
        return {"EDGEWISE_SYSFS": str(self.root / "sys"), "EDGEWISE_PROCFS": str(self.root / "proc"),
                "PATH": f"{self.root / 'bin'}{os.pathsep}{os.environ['PATH']}"}

    def __enter__(self) -> SimulatedJetson:
        self._writer = subprocess.Popen([sys.executable, __file__, str(self.sensors), self.board])
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._writer is not None
        self._writer.terminate()
        self._writer.wait(timeout=10)



if __name__ == "__main__":
    board = SimulatedJetson.__new__(SimulatedJetson)
    board.sensors, board.board, board.spec = Path(sys.argv[1]), sys.argv[2], BOARDS[sys.argv[2]]
    while True:
        board.write_once(time.monotonic())
        time.sleep(0.001)
