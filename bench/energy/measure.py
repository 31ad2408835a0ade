"""Energy per inference over repeated windows, with an idle baseline for net energy."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

from edgewise.bench.energy.window import EnergyMeter


def _window(meter: EnergyMeter, work: Callable[[], int], seconds: float, interval_s: float,
            clock: Callable[[], float]) -> tuple[Any, int]:
    meter.begin()
    start = last = clock()
    runs = 0
    while clock() - start < seconds:
        runs += work()
        if clock() - last >= interval_s:
            meter.sample()
            last = clock()
    return meter.end(), runs


def energy_per_inference(meter: EnergyMeter, run: Callable[[], Any], window_s: float = 2.0, repeats: int = 5,
                         idle_s: float = 1.0, interval_s: float = 0.1,
                         clock: Callable[[], float] = time.monotonic,
                         sleep: Callable[[float], None] = time.sleep) -> dict[str, Any]:
    """Gross and net joules per inference: the median over `repeats` windows of `window_s`, and their spread.

    The idle baseline is a window of `idle_s` with nothing running; net = gross - P_idle x t. Energy
    windows of 60 s or more are what a careful energy study uses; the defaults are for quick runs.
    """
    idle, _ = _window(meter, lambda: (sleep(interval_s / 2), 0)[1], idle_s, interval_s, clock)
    gross, net, watts, counts = [], [], [], []
    for _ in range(repeats):
        result, runs = _window(meter, lambda: (run(), 1)[1], window_s, interval_s, clock)
        gross.append(result.per_inference(runs))
        net.append(result.net(idle.mean_w) / runs if runs else None)
        watts.append(result.mean_w)
        counts.append(runs)
    median = statistics.median(gross)
    return {
        "kind": "measured", "source": meter.source, "gross_j_per_inference": median,
        "net_j_per_inference": statistics.median(net), "spread": (max(gross) - min(gross)) / median if median else 0,
        "mean_w": statistics.median(watts), "idle_w": idle.mean_w, "inferences_per_j": 1 / median if median else None,
        "windows": repeats, "window_s": window_s, "inferences": counts,
    }
