"""NVIDIA GPUs measured: ONNX Runtime on its CUDA or TensorRT provider, else the torch model timed with CUDA events.

Energy is NVML's (the total-energy counter from Volta on, else integrated power readings); GPU
memory is NVML's count for this process, and, on the torch path, torch's peak allocation. Where
the device is and how a run is timed is a `TorchDevice`, so the torch path runs in tests on a
CPU stand-in with the same code.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgewise.bench.inputs import Inputs
from edgewise.bench.latency import LatencyConfig, measure_latency
from edgewise.board.energy import NvmlMeter, measure_energy
from edgewise.targets.power_sources import meter_for

CPU = "CPUExecutionProvider"


@dataclass(frozen=True)
class TorchDevice:
    """Where the torch path runs and how: the torch device, a timer of one run (seconds), a synchronize, and the
    peak bytes allocated since the last reset."""

    name: str
    timer: Callable[[Callable[[], Any]], float]
    synchronize: Callable[[], None]
    peak_allocated: Callable[[], int]
    reset_peak: Callable[[], None]
    method: str


def cuda_device(index: int = 0) -> TorchDevice:
    """CUDA device `index`, each run timed by a pair of CUDA events around it (the GPU's own clock, not the host's)."""
    import torch

    device = torch.device("cuda", index)

    def timer(run: Callable[[], Any]) -> float:
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        run()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3

    return TorchDevice(str(device), timer, lambda: torch.cuda.synchronize(device),
                       lambda: torch.cuda.max_memory_allocated(device),
                       lambda: torch.cuda.reset_peak_memory_stats(device), "CUDA events around each run")


# how the torch path finds its device: CUDA on a GPU machine; tests put a CPU stand-in here
DEVICE: Callable[[], TorchDevice] = cuda_device


def _unavailable(reason: str) -> dict[str, Any]:
    return {"kind": "unavailable", "reason": reason}


def _nvml_memory(meter: Any) -> dict[str, Any]:
    used = meter.process_memory(os.getpid()) if isinstance(meter, NvmlMeter) else None
    return {} if used is None else {"gpu_process_bytes": used}


def _onnxruntime(path: Path, inputs: Inputs, config: Any, providers: list[str]) -> tuple[Callable[[], Any], dict]:
    from edgewise.board.session import open_session

    session = open_session(path, threads=config.threads, providers=[*providers, CPU])
    run = lambda: session.run(None, inputs.feeds)  # noqa: E731 (outputs come back to the host: run is synchronous)
    latency = measure_latency(lambda: run, LatencyConfig(iterations=config.iterations, duration_s=config.duration_s))
    return run, {**latency, "backend": f"onnxruntime ({session.get_providers()[0]})"}


def _torch(model: Any, inputs: Inputs, config: Any, device: TorchDevice) -> tuple[Callable[[], Any], dict, dict]:
    import copy

    import torch

    module = copy.deepcopy(model).to(device.name).eval()  # the caller's model stays where it is
    tensors = [torch.from_numpy(a).to(device.name) for a in inputs.feeds.values()]

    def run() -> None:
        with torch.inference_mode():
            module(*tensors)

    def synced() -> None:
        run()
        device.synchronize()

    device.reset_peak()
    latency = measure_latency(lambda: synced, LatencyConfig(iterations=config.iterations,
                                                             duration_s=config.duration_s), timer=device.timer)
    memory = {"gpu_peak_allocated_bytes": device.peak_allocated(), "method": "torch's peak allocation on the device"}
    return synced, {**latency, "backend": f"torch on {device.name} ({device.method})"}, memory


def measure_gpu(path: str | os.PathLike[str], inputs: Inputs, profile: dict[str, Any], config: Any,
                torch_model: Any | None = None) -> dict[str, Any]:
    """Latency, GPU memory and NVML energy of a model on this machine's NVIDIA GPU; every part says its backend.

    ONNX Runtime runs the ONNX file where onnxruntime-gpu provides the TensorRT or CUDA provider;
    otherwise `torch_model` (the same network as a torch module) runs on the device, timed by
    CUDA events. Neither: every part unavailable, with the fix. Energy per inference comes from
    the target's meter (NVML) over repeated windows, with an idle baseline.
    """
    from edgewise.board.session import device_providers

    meter, why = meter_for(profile)
    gpu = [p for p in device_providers("auto") if p != CPU]
    if gpu:
        run, latency = _onnxruntime(Path(path), inputs, config, gpu)
        memory = {"method": "NVML's memory count of this process"}
    elif torch_model is not None:
        run, latency, memory = _torch(torch_model, inputs, config, DEVICE())
    else:
        reason = ("this onnxruntime has no CUDA or TensorRT provider (pip install 'edgewise[gpu]' after removing "
                  "onnxruntime: onnxruntime-gpu replaces it), and no torch model was given to run on CUDA "
                  "(edgewise.bench(module, target='nvidia-gpu'))")
        return {"latency": _unavailable(reason), "memory": _unavailable(reason), "energy": _unavailable(reason)}
    memory = {**memory, **_nvml_memory(meter)}
    counted = "gpu_process_bytes" in memory or "gpu_peak_allocated_bytes" in memory
    memory.update({"kind": "measured"} if counted else
                  {"kind": "unavailable", "reason": f"NVML counts no GPU memory for this process {why}".strip()})
    energy = measure_energy(meter, why, run, config.energy_window_s, config.energy_repeats)
    return {"latency": latency, "memory": memory, "energy": energy}
