"""Energy per inference over repeated windows, with an idle baseline for net energy."""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable
from typing import Any

from .window import EnergyMeter, EnergyResult, MeterError


def _window(meter: EnergyMeter, work: Callable[[], int], seconds: float, interval_s: float,
            clock: Callable[[], float]) -> tuple[EnergyResult, int]:
    meter.begin()
    start = last = clock()
    runs = 0
    while clock() - start < seconds:
        runs += work()
        if clock() - last >= interval_s:
            meter.sample()
            last = clock()
    return meter.end(), runs


def _idle(meter: EnergyMeter, seconds: float, interval_s: float, clock: Callable[[], float],
          sleep: Callable[[float], None]) -> EnergyResult:
    return _window(meter, lambda: (sleep(interval_s / 2), 0)[1], seconds, interval_s, clock)[0]


def _window_record(result: EnergyResult, runs: int) -> dict[str, Any]:
    return {"joules": result.joules, "duration_s": result.duration_s, "inferences": runs, **result.details}


def _summary(meter: EnergyMeter, gross: list[float], net: list[float | None], watts: list[float | None],
             idle: EnergyResult, windows: list[dict[str, Any]]) -> dict[str, Any]:
    median = statistics.median(gross)
    nets = [n for n in net if n is not None]
    details = windows[-1] if windows else {}
    return {
        "kind": "measured", "source": meter.source, "gross_j_per_inference": median,
        "net_j_per_inference": statistics.median(nets) if nets else None,
        "spread": (max(gross) - min(gross)) / median if median else 0.0,
        "mean_w": statistics.median([w for w in watts if w is not None] or [0.0]), "idle_w": idle.mean_w,
        "inferences_per_j": 1 / median if median else None, "rail": details.get("rail"),
        "warnings": sorted({w for record in windows for w in record.get("warnings", [])}), "windows": windows,
    }


def energy_per_inference(meter: EnergyMeter, run: Callable[[], Any], window_s: float = 2.0, repeats: int = 5,
                         idle_s: float = 1.0, interval_s: float = 0.1,
                         clock: Callable[[], float] = time.monotonic,
                         sleep: Callable[[float], None] = time.sleep) -> dict[str, Any]:
    """Gross and net joules per inference: the median over `repeats` windows of `window_s`, and their spread.

    The idle baseline is a window of `idle_s` with nothing running; net = gross - P_idle x t. Each
    window's joules, duration, inferences and source details (the rail that gave the total, its
    timestamps) are in `windows`. Energy windows of 60 s or more are what a careful energy study
    uses; the defaults are for quick runs.
    """
    idle = _idle(meter, idle_s, interval_s, clock, sleep)
    gross, net, watts, windows = [], [], [], []
    for _ in range(repeats):
        result, runs = _window(meter, lambda: (run(), 1)[1], window_s, interval_s, clock)
        gross.append(result.per_inference(runs))
        net.append(result.net(idle.mean_w) / runs if runs and idle.mean_w is not None else None)
        watts.append(result.mean_w)
        windows.append(_window_record(result, runs))
    return {**_summary(meter, gross, net, watts, idle, windows), "window_s": window_s, "method": "windows of runs"}


def _sampled(meter: EnergyMeter, work: Callable[[], int], interval_s: float) -> tuple[EnergyResult, int]:
    """A window around one blocking call (a process), sampled from a thread beside it."""
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(interval_s):
            meter.sample()

    meter.begin()
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        runs = work()
    finally:
        stop.set()
        sampler.join()
    return meter.end(), runs


def marginal_energy(meter: EnergyMeter, run_for: Callable[[float], int], seconds: float = 2.0, repeats: int = 3,
                    idle_s: float = 1.0, interval_s: float = 0.1,
                    clock: Callable[[], float] = time.monotonic,
                    sleep: Callable[[float], None] = time.sleep) -> dict[str, Any]:
    """Joules per inference of a runner that is a whole process (trtexec): `run_for(s)` infers for about s seconds
    and returns how many inferences it ran.

    Each repeat takes a window around run_for(seconds) and one around run_for(2 x seconds); the
    difference in energy over the difference in inferences cancels what a run costs besides its
    inferences (process start, engine load, teardown). Gross, net (above the idle baseline) and
    the median over repeats, as energy_per_inference.
    """
    idle = _idle(meter, idle_s, interval_s, clock, sleep)
    gross, net, watts, windows = [], [], [], []
    for _ in range(repeats):
        (short, n1), (long, n2) = (_sampled(meter, lambda s=s: run_for(s), interval_s) for s in (seconds, 2 * seconds))
        if n2 <= n1 or short.joules is None or long.joules is None:
            continue
        gross.append((long.joules - short.joules) / (n2 - n1))
        if idle.mean_w is not None:
            net.append((long.net(idle.mean_w) - short.net(idle.mean_w)) / (n2 - n1))
        watts.append(long.mean_w)
        windows += [_window_record(short, n1), _window_record(long, n2)]
    if not gross:
        return {"kind": "unavailable", "source": meter.source,
                "reason": "the longer runs did not infer more than the shorter ones; measure with a longer duration"}
    return {**_summary(meter, gross, net, watts, idle, windows), "window_s": seconds,
            "method": "difference of runs of s and 2s (start-up and load cancel)"}


def measure_energy(meter: EnergyMeter | None, why: str, run: Callable[..., Any], window_s: float, repeats: int,
                   whole_runs: bool = False) -> dict[str, Any]:
    """energy_per_inference of `run` where `meter` reads (marginal_energy when `whole_runs`: `run(s)` is a process
    that infers for s seconds), else unavailable with `why`. A meter that fails inside a window (a sensor gone,
    permission refused) gives unavailable with its reason and fix: energy never aborts a benchmark."""
    if meter is None:
        return {"kind": "unavailable", "reason": why}
    try:
        return (marginal_energy if whole_runs else energy_per_inference)(meter, run, window_s, repeats)
    except MeterError as exc:
        return {"kind": "unavailable", "reason": str(exc)}
