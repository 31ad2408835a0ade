"""A newcomer's first commands, and the refusals a mistyped path or value gets: wall time of `edgewise --version`,
`recipe check`, `zoo list`, `targets`, and of `run`, `prune` and `quantize` refusing what they were given."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.suite import Figure

COMMANDS = (["--version"], ["recipe", "check", "edgewise/recipes/default.yaml"], ["zoo", "list"], ["targets"])
# refused before torch is imported: these answer in well under a second, where they took 3-5 s
REFUSALS = (["run", "no-such-recipe.yaml"], ["prune", "no-such-model.pt", "-o", "p.pt"],
            ["quantize", "digits-mlp", "-o", "q.pt", "--method", "ecq", "--lambda", "nan"])
REPEATS = 5


def _seconds(args: list[str], code: int = 0) -> list[float]:
    """Wall times of `python -m edgewise ARGS` as a new process ending with exit `code`, REPEATS times (the first
    warms the file cache)."""
    root = Path(__file__).resolve().parents[2]
    times = []
    for _ in range(REPEATS + 1):
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "edgewise", *args], cwd=root, capture_output=True)
        times.append(time.perf_counter() - start)
        if done.returncode != code:
            raise RuntimeError(f"edgewise {' '.join(args)} exited {done.returncode}: {done.stderr[-300:]!r}")
    return times[1:]


def run() -> list[Figure]:
    """Each command's median wall time over REPEATS runs, against the 2 s a newcomer should wait at most, and each
    refusal's against 1 s."""
    figures = []
    for args, code, target in [*((a, 0, "< 2 s") for a in COMMANDS), *((a, 2, "< 1 s") for a in REFUSALS)]:
        times = _seconds(args, code)
        figures.append(Figure(f"edgewise {' '.join(args)}", statistics.median(times), "s", target=target,
                              note=f"min {min(times):.2f} s, max {max(times):.2f} s over {len(times)} runs"))
    return figures
