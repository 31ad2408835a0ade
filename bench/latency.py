"""Latency measurement with trtexec/MLPerf conventions: warm-up by time and count, N iterations and T seconds."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from edgewise.base.system import sysfs
from edgewise.export.runner import time_runs


@dataclass(frozen=True)
class LatencyConfig:
    """How long to warm up and to time: at least `iterations` runs AND `duration_s` seconds."""

    warmup_s: float = 0.2
    warmup_iterations: int = 10
    iterations: int = 100
    duration_s: float = 1.0


def _read(path: Path) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def machine_settings(threads: int | None = None) -> dict[str, Any]:
    """What affects timings and is recorded (never changed): threads, affinity, governor, boost."""
    return {
        "threads": threads, "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "cpu_affinity": sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "governor": _read(sysfs() / "devices/system/cpu/cpu0/cpufreq/scaling_governor"),
        "boost": _read(sysfs() / "devices/system/cpu/cpufreq/boost"),
    }


def measure_latency(make_runner: Callable[[], Callable[[], Any]], config: LatencyConfig = LatencyConfig(),
                    clock: Callable[[], float] = time.perf_counter,
                    timer: Callable[[Callable[[], Any]], float] | None = None) -> dict[str, Any]:
    """Create the runner (timed as session creation), run once (first inference), warm up, then time each run.

    Returns latency_stats (min/mean/std/median/p90/p95/p99/max in ms, cv, throughput) plus the
    session-creation and first-inference times, the warm-up done and the config; kind "measured".
    `timer(run)` times one run in seconds (default: `clock` around it; CUDA passes device events).
    The timing loop is the bundle runner's (edgewise.export.runner.time_runs), so a board and this
    machine time alike.
    """
    start = clock()
    run = make_runner()
    created = clock() - start
    start = clock()
    run()
    first = clock() - start
    timed = time_runs(run, config.warmup_s, config.warmup_iterations, config.iterations, config.duration_s, timer,
                      clock)
    return {**timed, "session_create_s": created, "first_inference_s": first, "config": asdict(config),
            "kind": "measured"}


def onnx_runner(path: str | os.PathLike[str], feeds: dict[str, Any], threads: int | None = None,
                providers: list[str] | None = None) -> Callable[[], Callable[[], Any]]:
    """A runner factory for an ONNX file fed `feeds` (input name -> array), in the session the kit ships (on the
    CPU unless `providers` names others).

    The first run is checked: ONNX Runtime's failure there (a wrong shape or dtype for the
    model) is a UserError naming the inputs and the fix, not a traceback.
    """
    def make() -> Callable[[], Any]:
        from edgewise.base.errors import UserError
        from edgewise.export.session import open_session

        session = open_session(path, threads=threads, providers=providers)
        try:
            session.run(None, feeds)
        except Exception as exc:  # onnxruntime's own exception types
            given = ", ".join(f"{k}:{'x'.join(map(str, v.shape)) or 'scalar'}:{v.dtype}" for k, v in feeds.items())
            raise UserError(f"ONNX Runtime cannot run {Path(path).name} on {given}: {str(exc).splitlines()[0]}",
                            "give each input the shape and dtype the model takes (--input NAME:SHAPE:DTYPE)") from None
        return lambda: session.run(None, feeds)

    return make
