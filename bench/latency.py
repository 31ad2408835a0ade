"""Latency measurement with trtexec/MLPerf conventions: warm-up by time and count, N iterations and T seconds."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edgewise.bench.inputs import declared_inputs
from edgewise.board.errors import UserError
from edgewise.board.system import procfs, sysfs
from edgewise.board.timing import time_runs


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


UNSTABLE_DRIFT = 0.1
"""How far the medians of the first and the second half of the runs may differ (relative to the median) before the
machine is taken to have changed speed while timing (trtexec warns on its coefficient of variance; a wide but steady
distribution, as a microsecond model's tail of interrupts, still has a well-defined median)."""
BUSY_MACHINE = 0.25
"""The share of the machine's CPUs other processes may use while timing before the figure is called unstable."""


def cpu_busy_seconds() -> float | None:
    """CPU seconds the whole machine has spent busy since boot (user, nice, system, irq, softirq, steal of the
    procfs root's `stat`), or None where there is no such file."""
    try:
        fields = (procfs() / "stat").read_text().splitlines()[0].split()
        user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[1:9])
    except (OSError, ValueError, IndexError):
        return None
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


@dataclass
class LoadWindow:
    """A measurement window over the machine's other work: `begin()`, then `end()` gives the share of its CPUs that
    processes other than this one kept busy in between (None where the machine's counters cannot be read)."""

    machine: Callable[[], float | None] = cpu_busy_seconds
    own: Callable[[], float] = time.process_time
    clock: Callable[[], float] = time.perf_counter
    cpus: int = field(default_factory=lambda: os.cpu_count() or 1)

    def begin(self) -> None:
        """Read the counters at the window's start."""
        self._start = (self.machine(), self.own(), self.clock())

    def end(self) -> float | None:
        """The other processes' share of the CPUs since `begin` (0 to 1)."""
        busy, own, wall = self._start
        busy_now = self.machine()
        elapsed = self.clock() - wall
        if busy is None or busy_now is None or elapsed <= 0:
            return None
        other = (busy_now - busy) - (self.own() - own)
        return min(1.0, max(0.0, other / (elapsed * self.cpus)))


def stability(stats: dict[str, Any], other_share: float | None) -> list[str]:
    """Why a timing is unstable (empty when it is not): the first and the second half of its runs disagree, or other
    processes were busy on the machine while it ran. An unstable figure is reported, never ranked."""
    reasons = []
    if stats.get("drift", 0.0) > UNSTABLE_DRIFT:
        reasons.append(f"the medians of its first and second half differ by {stats['drift']:.0%} (more than "
                       f"{UNSTABLE_DRIFT:.0%})")
    if other_share is not None and other_share > BUSY_MACHINE:
        reasons.append(f"other processes kept {other_share:.0%} of the CPUs busy (more than {BUSY_MACHINE:.0%})")
    return reasons


def measure_latency(make_runner: Callable[[], Callable[[], Any]], config: LatencyConfig = LatencyConfig(),
                    clock: Callable[[], float] = time.perf_counter,
                    timer: Callable[[Callable[[], Any]], float] | None = None,
                    load: LoadWindow | None = None) -> dict[str, Any]:
    """Create the runner (timed as session creation), run once (first inference), warm up, then time each run.

    Returns latency_stats (min/mean/std/p10/median/p90/p95/p99/max in ms, cv, spread, drift, throughput) plus
    the session-creation and first-inference times, the warm-up done, the config, the share of the
    CPUs other processes used while timing (`load`'s window) and why the figure is unstable (empty
    when it is not); kind "measured".
    `timer(run)` times one run in seconds (default: `clock` around it; CUDA passes device events).
    The timing loop is the bundle runner's (edgewise.board.timing.time_runs), so a board and this
    machine time alike.
    """
    start = clock()
    run = make_runner()
    created = clock() - start
    start = clock()
    run()
    first = clock() - start
    load = load or LoadWindow()
    load.begin()
    timed = time_runs(run, config.warmup_s, config.warmup_iterations, config.iterations, config.duration_s, timer,
                      clock)
    other = load.end()
    return {**timed, "session_create_s": created, "first_inference_s": first, "config": asdict(config),
            "other_cpu_share": other, "unstable": stability(timed, other), "kind": "measured"}


def onnx_runner(path: str | os.PathLike[str], feeds: dict[str, Any], threads: int | None = None,
                providers: list[str] | None = None) -> Callable[[], Callable[[], Any]]:
    """A runner factory for an ONNX file fed `feeds` (input name -> array), in the session the kit ships (on the
    CPU unless `providers` names others).

    The first run is checked: ONNX Runtime's failure there (a wrong shape or dtype for the
    model) is a UserError naming the inputs and the fix, not a traceback.
    """
    def make() -> Callable[[], Any]:
        from edgewise.board.session import open_session

        session = open_session(path, threads=threads, providers=providers)
        try:
            session.run(None, feeds)
        except Exception as exc:  # onnxruntime's own exception types
            given = ", ".join(f"{k}:{'x'.join(map(str, v.shape)) or 'scalar'}:{v.dtype}" for k, v in feeds.items())
            raise UserError(f"ONNX Runtime cannot run {Path(path).name} on {given}: {str(exc).splitlines()[0]}",
                            "give each input the shape and dtype the model takes (--input NAME:SHAPE:DTYPE)") from None
        return lambda: session.run(None, feeds)

    return make


SHORT = LatencyConfig(iterations=50, duration_s=0.5)
"""A quick measurement, for a command's before-and-after line rather than a benchmark."""


def file_latency(path: str | os.PathLike[str], example: Any, config: LatencyConfig = SHORT,
                 threads: int | None = None) -> dict[str, Any]:
    """The latency of an ONNX file with one input, fed `example` (a tensor or array), in ONNX Runtime on this
    machine's CPU (measure_latency's record, with the backend and batch named)."""
    import onnx

    array = example.cpu().numpy() if hasattr(example, "cpu") else example
    name = declared_inputs(onnx.load(str(path), load_external_data=False).graph)[0].name
    record = measure_latency(onnx_runner(path, {name: array}, threads), config)
    return {**record, "backend": "onnxruntime (CPUExecutionProvider)", "batch": int(array.shape[0])}


def module_latency(module: Any, example: Any, config: LatencyConfig = SHORT, threads: int | None = None,
                   timings: int = 1) -> dict[str, Any]:
    """The latency of a torch module as the kit ships it: exported to ONNX (in a scratch folder) and timed as
    file_latency times a file, `timings` times, the timing with the lowest median kept: interference only slows a
    run, and a whole timing can run slow with nothing to show it (googlenet on this VM, six timings in a row: 4.7 to
    4.9 ms, and one 8.0 ms that neither drift nor other processes explained)."""
    import tempfile

    from edgewise.export.onnx_export import to_onnx  # torch: only when a module is timed

    with tempfile.TemporaryDirectory(prefix="edgewise-latency-") as scratch:
        path = to_onnx(module, example, Path(scratch) / "model.onnx").path
        records = [file_latency(path, example, config, threads) for _ in range(timings)]
    return {**min(records, key=lambda r: r["median_ms"]), "timings": timings}
