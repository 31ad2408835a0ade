"""A Jetson board's state while it is measured: power mode, GPU clocks (jetson_clocks), and unified-memory use.

The standard library only: deploy bundles ship it with the rest of the energy package. The GPU on
a Jetson allocates from the same LPDDR as the CPU and outside the process's resident set, so the
memory a model needs there is the system RAM in use above its idle level, sampled while it runs.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from .window import procfs, sysfs

# devfreq names of Jetson GPUs (Nano gm20b/57000000.gpu, TX2 gp10b, Xavier gv11b, Orin ga10b, JetPack 6+ *.gpu)
_GPU_DEVFREQ = re.compile(r"gpu|gm20b|gp10b|gv11b|ga10b|gb10b")


def power_mode(executable: str = "nvpmodel") -> dict[str, Any]:
    """The nvpmodel power mode (`nvpmodel -q`: 'NV Power Mode: MAXN' and its id), or why it is unknown."""
    path = shutil.which(executable)
    if path is None:
        return {"name": None, "reason": f"{executable} is not on PATH (it ships with JetPack)"}
    try:
        out = subprocess.run([path, "-q"], capture_output=True, text=True, timeout=10, check=False).stdout
    except (OSError, subprocess.TimeoutExpired) as exc:
        return {"name": None, "reason": f"{executable} -q failed: {exc}"}
    name = re.search(r"NV Power Mode:\s*(\S+)", out)
    number = re.search(r"^\s*(\d+)\s*$", out, re.MULTILINE)
    return {"name": name.group(1) if name else None, "id": int(number.group(1)) if number else None,
            **({} if name else {"reason": f"no 'NV Power Mode' in {executable} -q output"})}


def gpu_clocks(sys_root: str | Path | None = None) -> dict[str, Any]:
    """The GPU's devfreq minimum, maximum and current clock (Hz) under the sysfs root; jetson_clocks pins the minimum
    to the maximum."""
    sys_root = Path(sys_root) if sys_root is not None else sysfs()
    for device in sorted(sys_root.glob("class/devfreq/*")):
        if not _GPU_DEVFREQ.search(device.name):
            continue
        try:
            low, high, now = (int((device / f).read_text()) for f in ("min_freq", "max_freq", "cur_freq"))
        except (OSError, ValueError):
            continue
        return {"device": device.name, "min_hz": low, "max_hz": high, "cur_hz": now, "jetson_clocks": low == high}
    return {"jetson_clocks": None, "reason": f"no GPU devfreq under {sys_root / 'class/devfreq'}"}


def board_state() -> dict[str, Any]:
    """What a Jetson measurement depends on and is recorded with (never changed): the power mode and GPU clocks."""
    return {"power_mode": power_mode(), "gpu_clocks": gpu_clocks()}


def ram_in_use(proc_root: str | Path | None = None) -> int:
    """System RAM in use, in bytes: MemTotal - MemAvailable from meminfo under the procfs root."""
    fields = {}
    for line in ((Path(proc_root) if proc_root is not None else procfs()) / "meminfo").read_text().splitlines():
        name, _, rest = line.partition(":")
        fields[name] = int(rest.split()[0]) * 1024 if rest.split() else 0
    return fields["MemTotal"] - fields["MemAvailable"]


class RamPeak:
    """The peak system RAM in use while a block runs, above the level just before it (sampled every `interval_s`).

    Where meminfo cannot be read, `record()` says so instead of giving a number.
    """

    def __init__(self, proc_root: str | Path | None = None, interval_s: float = 0.005) -> None:
        self.proc_root, self.interval_s = proc_root, interval_s
        self.idle = self.peak = 0
        self.reason = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        while not self._stop.is_set():
            # a read that catches meminfo mid-rewrite (a fake tree; a FUSE-mounted /proc) skips one sample, it does
            # not end the sampling
            with contextlib.suppress(OSError, KeyError, ValueError, IndexError):
                self.peak = max(self.peak, ram_in_use(self.proc_root))
            time.sleep(self.interval_s)

    def __enter__(self) -> RamPeak:
        try:
            self.idle = self.peak = ram_in_use(self.proc_root)
        except (OSError, KeyError, ValueError) as exc:
            self.reason = f"cannot read meminfo: {exc}"
            return self
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self.peak = max(self.peak, ram_in_use(self.proc_root))

    @property
    def above_idle(self) -> int:
        """Bytes of system RAM the block added at its peak."""
        return max(self.peak - self.idle, 0)

    def record(self) -> dict[str, Any]:
        """The system-RAM part of a memory record: idle, peak and the difference in bytes, or why there is none."""
        if self.reason:
            return {"system_ram": "unavailable", "system_ram_reason": self.reason}
        return {"system_ram_idle_bytes": self.idle, "system_ram_peak_bytes": self.peak,
                "system_ram_above_idle_bytes": self.above_idle}
