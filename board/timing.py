"""The timing loop every latency figure comes from, on a board and on the host alike, and the named statistics of it.

The standard library only: a board's run.py and the kit's benchmark time with the same loop.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def latency_stats(seconds: list[float], wall: float) -> dict:
    """Named statistics of per-iteration latencies (milliseconds) and throughput over the timed wall time."""
    ms = sorted(s * 1e3 for s in seconds)

    def pct(p: float) -> float:
        k = (len(ms) - 1) * p / 100
        lo, hi = math.floor(k), math.ceil(k)
        return ms[lo] + (ms[hi] - ms[lo]) * (k - lo)

    mean = statistics.fmean(ms)
    std = statistics.pstdev(ms)
    median = pct(50)
    half = len(seconds) // 2
    # the medians of the first and the second half of the runs, in the order they ran: a machine whose speed
    # changed while timing (a throttled clock, a job that started) moves one against the other
    drift = abs(statistics.median(seconds[:half]) - statistics.median(seconds[half:])) * 1e3 / median \
        if half and median else 0.0
    return {"iterations": len(ms), "min_ms": ms[0], "mean_ms": mean, "std_ms": std, "p10_ms": pct(10),
            "median_ms": median, "p90_ms": pct(90), "p95_ms": pct(95), "p99_ms": pct(99), "max_ms": ms[-1],
            "cv": std / mean if mean else 0.0, "spread": (pct(90) - pct(10)) / median if median else 0.0,
            "drift": drift, "throughput_per_s": len(ms) / wall if wall else 0.0}


def time_runs(run: Callable[[], Any], warmup_s: float, warmup_iterations: int, iterations: int, duration_s: float,
              timer: Callable[[Callable[[], Any]], float] | None = None,
              clock: Callable[[], float] = time.perf_counter) -> dict:
    """Warm up (at least `warmup_iterations` runs and `warmup_s`), then time at least `iterations` runs and
    `duration_s` seconds; latency_stats of the timed runs plus the warm-up count.

    `timer(run)` times one run in seconds (default: the wall clock around it; a GPU passes one
    that reads device events).
    """
    def wall(fn: Callable[[], Any]) -> float:
        start = clock()
        fn()
        return clock() - start

    timer = timer or wall
    warm_start, warm = clock(), 0
    while warm < warmup_iterations or clock() - warm_start < warmup_s:
        run()
        warm += 1
    times: list[float] = []
    wall_start = clock()
    while len(times) < iterations or clock() - wall_start < duration_s:
        times.append(timer(run))
    return {**latency_stats(times, clock() - wall_start), "warmup_iterations": warm}


def process_memory() -> dict[str, int]:
    """This process's resident set now and at its peak (VmRSS, VmHWM) in bytes; empty where /proc is missing."""
    try:
        lines = Path("/proc/self/status").read_text().splitlines()
    except OSError:
        return {}
    fields = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in lines if line.startswith(("VmRSS", "VmHWM"))}
    return {"rss_bytes": fields.get("VmRSS", 0), "peak_rss_bytes": fields.get("VmHWM", 0)}
