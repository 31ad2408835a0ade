"""One model on one target: latency, memory and energy, each measured, emulated, estimated or unavailable."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgewise.base.errors import UserError
from edgewise.bench.availability import availability
from edgewise.bench.energy import RaplMeter
from edgewise.bench.energy.measure import energy_per_inference
from edgewise.bench.estimate import roofline
from edgewise.bench.latency import LatencyConfig, machine_settings, measure_latency, onnx_runner
from edgewise.bench.memory import onnx_peak_memory
from edgewise.targets import load_target


@dataclass(frozen=True)
class BenchConfig:
    """How hard to measure: latency iterations and seconds, threads, and the energy windows."""

    iterations: int = 100
    duration_s: float = 1.0
    threads: int | None = None
    energy_window_s: float = 2.0
    energy_repeats: int = 3
    memory_runs: int = 10
    cpus: tuple[int, ...] | None = None  # pin the measuring process to these CPUs (recorded in the settings)


def _unavailable(reason: str) -> dict[str, Any]:
    return {"kind": "unavailable", "reason": reason}


def _host(onnx_path: Path, probe: np.ndarray, config: BenchConfig, powercap: Path | None) -> dict[str, Any]:
    if config.cpus:
        try:
            os.sched_setaffinity(0, config.cpus)
        except (OSError, ValueError) as exc:
            raise UserError(f"cannot pin to CPUs {list(config.cpus)}: {exc}",
                            f"choose CPUs among {sorted(os.sched_getaffinity(0))}") from None
    latency = measure_latency(onnx_runner(onnx_path, probe, config.threads),
                              LatencyConfig(iterations=config.iterations, duration_s=config.duration_s))
    latency.update(settings=machine_settings(config.threads), batch=int(probe.shape[0]))
    with tempfile.TemporaryDirectory() as scratch:
        np.save(Path(scratch) / "x.npy", probe)
        memory = onnx_peak_memory(onnx_path, Path(scratch) / "x.npy", config.memory_runs, threads=config.threads)
    meter = RaplMeter(powercap)
    ok, reason = meter.available()
    if ok:
        from edgewise.export.session import open_session

        session = open_session(onnx_path, threads=config.threads)
        name = session.get_inputs()[0].name
        energy = energy_per_inference(meter, lambda: session.run(None, {name: probe}), config.energy_window_s,
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


def _board(profile: dict[str, Any], macs: int | None, weight_bytes: int | None, board_result: Path | None
           ) -> dict[str, Any]:
    if board_result is not None:
        result = json.loads(Path(board_result).read_text())
        if result.get("format") != "edgewise-bundle-result/1":
            raise UserError(f"{board_result} is not a result JSON written by a bundle's run.py",
                            "run the bundle on the board and give its result.json")
        latency = result.get("latency") or (result.get("trtexec") or {}).get("latency") or {}
        return {"latency": {"kind": "measured", **latency, "backend": result.get("backend")},
                "memory": _unavailable("the board runner does not record memory"),
                "energy": _unavailable("the board runner records no energy; use tegrastats on the board")}
    if macs is None or weight_bytes is None:
        reason = "no MAC count and size to estimate from"
        return {"latency": _unavailable(reason), "memory": _unavailable(reason), "energy": _unavailable(reason)}
    estimate = roofline(profile, macs, weight_bytes)
    latency_ms = estimate["latency_s"] * 1e3
    return {"latency": {"kind": "estimated", "median_ms": latency_ms, "p90_ms": latency_ms,
                        "throughput_per_s": 1 / estimate["latency_s"], "method": estimate["method"],
                        "bound": estimate["bound"], "source": estimate["source"]},
            "memory": {"kind": "estimated", "weight_bytes": weight_bytes},
            "energy": {"kind": "estimated", "gross_j_per_inference": estimate["energy_j"],
                       "power_mode": estimate["power_mode"], "method": "power mode x roofline latency"}}


def bench_model(onnx_path: str | os.PathLike[str], probe: np.ndarray, target: str, config: BenchConfig = BenchConfig(),
                *, macs: int | None = None, weight_bytes: int | None = None, emulated: dict[str, Any] | None = None,
                board_result: str | os.PathLike[str] | None = None,
                powercap: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Latency, memory and energy of one model on `target`; every part says how it was obtained.

    x86-host: measured here (latency, peak memory of a child; energy from RAPL or unavailable);
    emulated accelerators: `emulated`, the total costs of the model on that target from its cost
    model (an IntegerMLP's costs(target)["total"]), else unavailable; Jetson boards: the board's result JSON
    (measured) when given, else a roofline estimate from `macs` and `weight_bytes`; nvidia-gpu:
    unavailable without a GPU.
    """
    profile = load_target(target)
    status = availability(target)
    if profile["kind"] == "host":
        if not status["runs_here"]:
            raise UserError(f"target {target} is not this machine: {status['why']}", "pick a target that runs here")
        parts = _host(Path(onnx_path), probe, config, None if powercap is None else Path(powercap))
    elif profile["kind"] == "emulated":
        parts = _emulated(emulated)
    elif profile["kind"] == "board":
        parts = _board(profile, macs, weight_bytes, Path(board_result) if board_result else None)
    else:
        parts = {k: _unavailable(status["why"]) for k in ("latency", "memory", "energy")}
    return {"target": target, "model_file": str(onnx_path), **parts}
