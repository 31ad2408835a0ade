"""A newcomer's first commands: wall time of `edgewise --version`, `recipe check`, `zoo list` and `targets`."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.suite import Figure

COMMANDS = (["--version"], ["recipe", "check", "edgewise/recipes/default.yaml"], ["zoo", "list"], ["targets"])
REPEATS = 5


def _seconds(args: list[str]) -> list[float]:
    """Wall times of `python -m edgewise ARGS` as a new process, REPEATS times (the first warms the file cache)."""
    root = Path(__file__).resolve().parents[2]
    times = []
    for _ in range(REPEATS + 1):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "edgewise", *args], cwd=root, capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    return times[1:]


def run() -> list[Figure]:
    """Each command's median wall time over REPEATS runs, against the 2 s a newcomer should wait at most."""
    figures = []
    for args in COMMANDS:
        times = _seconds(args)
        figures.append(Figure(f"edgewise {' '.join(args)}", statistics.median(times), "s", target="< 2 s",
                              note=f"min {min(times):.2f} s, max {max(times):.2f} s over {len(times)} runs"))
    return figures
