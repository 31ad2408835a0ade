"""One model on one target: latency, memory and energy, each measured, emulated, estimated or unavailable."""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgewise.base.errors import UserError
from edgewise.bench.availability import availability
from edgewise.bench.counts import Counts
from edgewise.bench.energy import RaplMeter
from edgewise.bench.energy.measure import energy_per_inference
from edgewise.bench.estimate import estimate
from edgewise.bench.inputs import Inputs
from edgewise.bench.latency import LatencyConfig, machine_settings, measure_latency, onnx_runner
from edgewise.bench.memory import onnx_peak_memory
from edgewise.targets import load_target

# upper bounds that keep a mistyped setting from running for days
MAX_ITERATIONS = 10_000_000
MAX_SECONDS = 3600.0


@dataclass(frozen=True)
class BenchConfig:
    """How hard to measure: latency iterations and seconds, threads, and the energy windows.

    Timing runs at least `iterations` runs AND at least `duration_s` seconds; settings that
    would time nothing, or run for hours by mistake, are refused when the config is made.
    """

    iterations: int = 100
    duration_s: float = 1.0
    threads: int | None = None
    energy_window_s: float = 2.0
    energy_repeats: int = 3
    memory_runs: int = 10
    cpus: tuple[int, ...] | None = None  # pin the measuring process to these CPUs (recorded in the settings)

    def __post_init__(self) -> None:
        checks = (
            ("iterations", self.iterations, 1, MAX_ITERATIONS, "at least one timed run"),
            ("duration", self.duration_s, 0.0, MAX_SECONDS, "seconds of timed runs (0: the iterations alone)"),
            ("energy window", self.energy_window_s, 1e-3, MAX_SECONDS, "seconds per energy window"),
            ("energy repeats", self.energy_repeats, 1, 1000, "windows to take the median of"),
            ("memory runs", self.memory_runs, 1, 100_000, "runs in the memory probe"),
        )
        for name, value, low, high, meaning in checks:
            if not isinstance(value, int | float) or not math.isfinite(value) or not low <= value <= high:
                raise UserError(f"{name} {value!r} is outside {low:g}..{high:g}",
                                f"give {meaning}, e.g. {name.replace(' ', '-')} {max(low, 1):g}")
        if self.threads is not None and not 1 <= self.threads <= 1024:
            raise UserError(f"threads {self.threads!r} is not a thread count", "give --threads 1 or more, or leave it "
                            "out for ONNX Runtime's own choice")


def _unavailable(reason: str) -> dict[str, Any]:
    return {"kind": "unavailable", "reason": reason}


def _host(onnx_path: Path, inputs: Inputs, config: BenchConfig, powercap: Path | None) -> dict[str, Any]:
    if config.cpus:
        try:
            os.sched_setaffinity(0, config.cpus)
        except (OSError, ValueError) as exc:
            raise UserError(f"cannot pin to CPUs {list(config.cpus)}: {exc}",
                            f"choose CPUs among {sorted(os.sched_getaffinity(0))}") from None
    latency = measure_latency(onnx_runner(onnx_path, inputs.feeds, config.threads),
                              LatencyConfig(iterations=config.iterations, duration_s=config.duration_s))
    latency.update(settings=machine_settings(config.threads), batch=inputs.batch)
    with tempfile.TemporaryDirectory() as scratch:
        memory = onnx_peak_memory(onnx_path, inputs.save(Path(scratch) / "inputs.npz"), config.memory_runs,
                                  threads=config.threads)
    meter = RaplMeter(powercap)
    ok, reason = meter.available()
    if ok:
        from edgewise.export.session import open_session

        session = open_session(onnx_path, threads=config.threads)
        energy = energy_per_inference(meter, lambda: session.run(None, inputs.feeds), config.energy_window_s,
                                      config.energy_repeats)
    else:
        energy = _unavailable(f"no energy source here: {reason}")
    return {"latency": latency, "memory": memory, "energy": energy}


def _emulated(total: dict[str, Any] | None) -> dict[str, Any]:
    if total is None:
        reason = ("not emulated: the accelerator runs 4-bit fully-connected networks (this model is not one, or the "
                  "recipe has no emulate section)")
        return {"latency": _unavailable(reason), "memory": _unavailable(reason), "energy": _unavailable(reason)}
    return {"latency": {"kind": "emulated", "median_ms": total["latency_s"] * 1e3, "p90_ms": total["latency_s"] * 1e3,
                        "throughput_per_s": total["throughput_per_s"]},
            "memory": {"kind": "emulated", "weight_bytes": total["weight_bytes"]},
            "energy": {"kind": "emulated", "gross_j_per_inference": total["energy_per_inference_j"],
                       "inferences_per_j": total["inferences_per_j"], "source": "FantastIC4 cost model"}}


def _board_result(path: Path) -> dict[str, Any]:
    result = json.loads(Path(path).read_text())
    if result.get("format") != "edgewise-bundle-result/1":
        raise UserError(f"{path} is not a result JSON written by a bundle's run.py",
                        "run the bundle on the board and give its result.json")
    latency = result.get("latency") or (result.get("trtexec") or {}).get("latency") or {}
    return {"latency": {"kind": "measured", **latency, "backend": result.get("backend")},
            "memory": _unavailable("the board runner does not record memory"),
            "energy": _unavailable("the board runner records no energy; use tegrastats on the board")}


def _estimated(profile: dict[str, Any], counts: Counts | None, precision: str | None) -> dict[str, Any]:
    if counts is None or not counts.layers:
        reason = "no counted layers to estimate from" + (f" ({'; '.join(counts.unknown)})" if counts else "")
        return {"latency": _unavailable(reason), "memory": _unavailable(reason), "energy": _unavailable(reason)}
    e = estimate(profile, counts, precision)
    ms, (low, high) = e["latency_s"] * 1e3, e["range_s"]
    method = e["method"] + ("" if e["calibrated"] else "; not calibrated for this GPU architecture")
    return {"latency": {"kind": "estimated", "median_ms": ms, "p90_ms": ms, "low_ms": low * 1e3, "high_ms": high * 1e3,
                        "throughput_per_s": 1e3 / ms, "method": method, "precisions": e["precisions"],
                        "power_mode": e["power_mode"], "gpu_mhz": e["gpu_mhz"], "source": e["source"]},
            "memory": {"kind": "estimated", "weight_bytes": counts.weight_bytes,
                       "method": "weights as stored in the ONNX file"},
            "energy": {"kind": "estimated", "gross_j_per_inference": e["energy_j"], "power_mode": e["power_mode"],
                       "method": "module power of the power mode x estimated latency"}}


def bench_model(onnx_path: str | os.PathLike[str], inputs: Inputs, target: str, config: BenchConfig = BenchConfig(),
                *, counts: Counts | None = None, emulated: dict[str, Any] | None = None, precision: str | None = None,
                board_result: str | os.PathLike[str] | None = None,
                powercap: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Latency, memory and energy of one model fed `inputs` on `target`; every part says how it was obtained.

    x86-host: measured here (latency, peak memory of a child; energy from RAPL or unavailable);
    emulated accelerators: `emulated`, the model's total costs on that target from its cost model,
    else unavailable; Jetson boards: the board's result JSON (measured) when given, else the
    calibrated per-layer estimate from `counts` at the engine `precision`; nvidia-gpu: unavailable
    without a GPU. The record names the inputs it holds for.
    """
    profile = load_target(target)
    status = availability(target)
    if profile["kind"] == "host":
        if not status["runs_here"]:
            raise UserError(f"target {target} is not this machine: {status['why']}", "pick a target that runs here")
        parts = _host(Path(onnx_path), inputs, config, None if powercap is None else Path(powercap))
    elif profile["kind"] == "emulated":
        parts = _emulated(emulated)
    elif profile["kind"] == "board":
        parts = _board_result(Path(board_result)) if board_result else _estimated(profile, counts, precision)
    else:
        parts = {k: _unavailable(status["why"]) for k in ("latency", "memory", "energy")}
    return {"target": target, "model_file": str(onnx_path), "inputs": inputs.spec, **parts}
