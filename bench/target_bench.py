"""One model on one target: latency, memory and energy, each measured, emulated, estimated or unavailable.

The kind of the target (edgewise.bench.target_kinds) says where its figures come from; the ways of
obtaining them (measured here, on this board, from a bundle's result, estimated, emulated) are here.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgewise.bench.counts import Counts
from edgewise.bench.estimate import estimate
from edgewise.bench.inputs import Inputs
from edgewise.bench.latency import LatencyConfig, machine_settings, measure_latency, onnx_runner
from edgewise.bench.memory import onnx_peak_memory
from edgewise.bench.target_kinds import TARGET_KINDS, Job, availability
from edgewise.bench.this_machine import board_model, this_board
from edgewise.board.energy import RamPeak, board_state, measure_energy
from edgewise.board.errors import UserError
from edgewise.board.runner import RESULT_FORMAT, trtexec_measurement, trtexec_path
from edgewise.board.trtexec_report import TrtexecError
from edgewise.export.tensorrt import trtexec_command
from edgewise.targets import load_target
from edgewise.targets.power_sources import meter_for

# upper bounds that keep a mistyped setting from running for days
MAX_ITERATIONS = 10_000_000
MAX_SECONDS = 3600.0
BACKENDS = ("auto", "onnxruntime", "trtexec")


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
    backend: str = "auto"  # on a board: auto (ONNX Runtime on the best providers installed), onnxruntime, trtexec

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
        if self.backend not in BACKENDS:
            raise UserError(f"backend {self.backend!r} is not one of {', '.join(BACKENDS)}",
                            "give --backend auto, onnxruntime or trtexec")
        if self.threads is not None and not 1 <= self.threads <= 1024:
            raise UserError(f"threads {self.threads!r} is not a thread count", "give --threads 1 or more, or leave it "
                            "out for ONNX Runtime's own choice")


def unavailable_part(reason: str) -> dict[str, Any]:
    """A latency, memory or energy figure that does not exist here, with why."""
    return {"kind": "unavailable", "reason": reason}


def unavailable_parts(reason: str) -> dict[str, Any]:
    """Latency, memory and energy all unavailable, for one reason."""
    return {part: unavailable_part(reason) for part in ("latency", "memory", "energy")}


def pin_cpus(cpus: tuple[int, ...] | None) -> None:
    if cpus:
        try:
            os.sched_setaffinity(0, cpus)
        except (OSError, ValueError) as exc:
            raise UserError(f"cannot pin to CPUs {list(cpus)}: {exc}",
                            f"choose CPUs among {sorted(os.sched_getaffinity(0))}") from None


def measured_here(onnx_path: Path, inputs: Inputs, profile: dict[str, Any], config: BenchConfig,
          providers: list[str] | None = None, unified_memory: bool = False) -> dict[str, Any]:
    """Latency, memory and energy measured on this machine with ONNX Runtime on `providers` (the CPU by default).

    Memory is a fresh child's VmHWM; with `unified_memory` (a Jetson, whose GPU allocates from
    system RAM outside any process's resident set) also the system RAM in use above idle while
    the child runs. Energy comes from the target's meter, or is unavailable with why.
    """
    from edgewise.board.session import open_session

    pin_cpus(config.cpus)
    latency = measure_latency(onnx_runner(onnx_path, inputs.feeds, config.threads, providers),
                              LatencyConfig(iterations=config.iterations, duration_s=config.duration_s))
    providers = providers or ["CPUExecutionProvider"]
    latency.update(settings=machine_settings(config.threads), batch=inputs.batch, providers=providers,
                   backend=f"onnxruntime ({providers[0]})")
    with tempfile.TemporaryDirectory() as scratch, RamPeak() if unified_memory else nullcontext() as ram:
        memory = onnx_peak_memory(onnx_path, inputs.save(Path(scratch) / "inputs.npz"), config.memory_runs,
                                  threads=config.threads, providers=providers)
    if ram is not None:
        memory.update(ram.record())
    meter, why = meter_for(profile)
    session = open_session(onnx_path, threads=config.threads, providers=providers) if meter else None
    energy = measure_energy(meter, why, lambda: session.run(None, inputs.feeds), config.energy_window_s,
                            config.energy_repeats)
    return {"latency": latency, "memory": memory, "energy": energy}


def _trtexec_here(onnx_path: Path, inputs: Inputs, profile: dict[str, Any], config: BenchConfig,
                  precision: str | None) -> dict[str, Any]:
    """Latency, memory and energy of a TensorRT engine built and timed by trtexec on this board, as run.py does."""
    executable = trtexec_path()
    if executable is None:
        raise UserError("trtexec is not on PATH or in /usr/src/tensorrt/bin",
                        "install TensorRT (JetPack ships it), or measure with --backend onnxruntime")
    with tempfile.TemporaryDirectory() as scratch:
        command = trtexec_command(str(Path(onnx_path).resolve()), str(Path(scratch) / "model.engine"),
                                  precision=precision or "fp16", iterations=config.iterations,
                                  duration_s=config.duration_s,
                                  shapes=inputs.dynamic_shapes())
        meter, why = meter_for(profile)
        try:
            measured = trtexec_measurement([executable, *command[1:]], Path(scratch), meter, why,
                                           config.energy_window_s, config.energy_repeats)
        except TrtexecError as exc:
            raise UserError(f"{exc}", "run the trtexec command by hand to read its whole output") from None
    measured["latency"].update(backend="tensorrt", trtexec=measured["trtexec"], batch=inputs.batch)
    return {part: measured[part] for part in ("latency", "memory", "energy")}


def measured_on_board(onnx_path: Path, inputs: Inputs, profile: dict[str, Any], config: BenchConfig,
              precision: str | None) -> dict[str, Any]:
    """This Jetson measured: ONNX Runtime on the best providers installed (TensorRT, CUDA, else CPU), or trtexec when
    asked for; with the power mode and GPU clocks the figures hold for."""
    from edgewise.board.session import device_providers

    if config.backend == "trtexec":
        parts = _trtexec_here(onnx_path, inputs, profile, config, precision)
    else:
        parts = measured_here(onnx_path, inputs, profile, config, device_providers("auto"), unified_memory=True)
    return {**parts, "board": board_state()}


def emulated_parts(total: dict[str, Any] | None) -> dict[str, Any]:
    if total is None:
        reason = ("not emulated: the accelerator runs chains of 4-bit convolutions and linear layers (this model has "
                  "float weights or branches, or the recipe has no emulate section)")
        return unavailable_parts(reason)
    return {"latency": {"kind": "emulated", "median_ms": total["latency_s"] * 1e3, "p90_ms": total["latency_s"] * 1e3,
                        "throughput_per_s": total["throughput_per_s"]},
            "memory": {"kind": "emulated", "weight_bytes": total["weight_bytes"]},
            "energy": {"kind": "emulated", "gross_j_per_inference": total["energy_per_inference_j"],
                       "inferences_per_j": total["inferences_per_j"], "source": "FantastIC4 cost model"}}


def from_board_result(path: Path, estimated: dict[str, Any]) -> dict[str, Any]:
    """A bundle's result.json as measured parts, each beside the estimate it replaces (when there is one)."""
    try:
        result = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read {path} as JSON: {exc}",
                        "give the result.json the bundle's run.py wrote") from None
    if not isinstance(result, dict) or result.get("format") != RESULT_FORMAT:
        raise UserError(f"{path} is not a result JSON written by a bundle's run.py",
                        "run the bundle on the board and give its result.json")
    latency = result.get("latency") or (result.get("trtexec") or {}).get("latency") or {}
    if "median_ms" not in latency:
        raise UserError(f"{path} holds no latency figures", "run the bundle again on the board; its run failed")
    older = "this result.json comes from an older run.py that did not measure it; rebuild the bundle and run it again"
    parts = {"latency": {**latency, "kind": "measured", "backend": result.get("backend")},
             "memory": result.get("memory") or unavailable_part(older),
             "energy": result.get("energy") or unavailable_part(older)}
    for part, figure in parts.items():
        if estimated[part]["kind"] == "estimated":
            figure["replaces"] = estimated[part]
    return {**parts, "board": result.get("board", {}), "device": result.get("device", {})}


def estimated_parts(profile: dict[str, Any], counts: Counts | None, precision: str | None) -> dict[str, Any]:
    if counts is None or not counts.layers:
        reason = "no counted layers to estimate from" + (f" ({'; '.join(counts.unknown)})" if counts else "")
        return unavailable_parts(reason)
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


def refuse_another_board(target: str) -> None:
    here = this_board()
    if here is not None and here != target:
        raise UserError(f"this machine is a {board_model()} ({here}), not {target}",
                        f"measure it with --target {here}; for {target}, run the bundle there and give its result.json "
                        "(--result)")


def bench_model(onnx_path: str | os.PathLike[str], inputs: Inputs, target: str, config: BenchConfig = BenchConfig(),
                *, counts: Counts | None = None, emulated: dict[str, Any] | None = None, precision: str | None = None,
                board_result: str | os.PathLike[str] | None = None, torch_model: Any | None = None
                ) -> dict[str, Any]:
    """Latency, memory and energy of one model fed `inputs` on `target`; every part says how it was obtained.

    x86-host: measured here (latency, peak memory of a child, energy from the target's meter or
    unavailable with why); emulated accelerators: `emulated`, the model's total costs on that
    target from its cost model, else unavailable; a Jetson: measured when this is that board
    (ONNX Runtime on its best providers, or trtexec with config.backend), else its result JSON
    from a bundle's run.py (measured, beside the estimate it replaces), else the calibrated
    per-layer estimate from `counts` at the engine `precision`; nvidia-gpu: measured where NVML
    sees a GPU (ONNX Runtime's CUDA/TensorRT provider, else `torch_model` on CUDA), else
    unavailable. The record names the inputs it holds for.
    """
    profile = load_target(target)
    job = Job(Path(onnx_path), inputs, config, counts, emulated, precision, board_result, torch_model)
    parts = TARGET_KINDS[profile["kind"]].parts(profile, availability(target), job)
    return {"target": target, "model_file": str(onnx_path), "inputs": inputs.spec, **parts}
