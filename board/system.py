"""Where the kit reads the machine: the sysfs and procfs roots, taken from EDGEWISE_SYSFS and EDGEWISE_PROCFS.

Every reader of hardware state (power sensors, board detection, CPU settings) asks here, so a
container that mounts the host's /sys elsewhere (as node_exporter's --path.sysfs does) and a test
with a fake tree both work by setting one variable.
"""

from __future__ import annotations

import os
from pathlib import Path


def sysfs() -> Path:
    """The sysfs root: $EDGEWISE_SYSFS, else /sys."""
    return Path(os.environ.get("EDGEWISE_SYSFS") or "/sys")


def procfs() -> Path:
    """The procfs root: $EDGEWISE_PROCFS, else /proc."""
    return Path(os.environ.get("EDGEWISE_PROCFS") or "/proc")


def available_memory() -> int:
    """Bytes of memory this machine can give a new allocation: MemAvailable of meminfo under the procfs root, else
    (no such file, as on macOS or an injected empty root) the physical memory."""
    try:
        for line in (procfs() / "meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
