"""The nvidia-gpu target end to end with a fake pynvml (a 250 W GPU whose energy counter follows the clock) and a CPU
stand-in for CUDA: the product path is the real one, only the device and the driver are not."""

import os
import time
import types

import numpy as np
import pytest
import torch

import edgewise
from edgewise.bench import gpu
from edgewise.bench.target_bench import BenchConfig
from edgewise.board.errors import UserError
from edgewise.zoo.models import build_model

WATTS = 250.0
GPU_BYTES = 512 << 20
QUICK = BenchConfig(iterations=20, duration_s=0.1, energy_window_s=0.3, energy_repeats=2)


class NVMLError(Exception):
    pass


@pytest.fixture
def fake_gpu(monkeypatch):
    """pynvml for one GPU drawing 250 W, holding 512 MiB for this process; CUDA replaced by the CPU."""
    module = types.SimpleNamespace(
        NVMLError=NVMLError, nvmlInit=lambda: None, nvmlDeviceGetCount=lambda: 1,
        nvmlDeviceGetHandleByIndex=lambda i: f"gpu{i}",
        nvmlDeviceGetTotalEnergyConsumption=lambda handle: round(WATTS * time.monotonic() * 1000),  # mJ
        nvmlDeviceGetPowerUsage=lambda handle: round(WATTS * 1000),  # mW
        nvmlDeviceGetComputeRunningProcesses=lambda handle: [types.SimpleNamespace(pid=os.getpid(),
                                                                                  usedGpuMemory=GPU_BYTES)])
    monkeypatch.setitem(__import__("sys").modules, "pynvml", module)

    def wall(run):
        start = time.perf_counter()
        run()
        return time.perf_counter() - start

    stand_in = gpu.TorchDevice("cpu", wall, lambda: None, lambda: 4096, lambda: None, "CPU stand-in for CUDA events")
    monkeypatch.setattr(gpu, "DEVICE", lambda: stand_in)
    return module


def test_torch_model_on_the_gpu_is_measured_with_nvml_energy_and_memory(fake_gpu):
    model = build_model("lenet", (1, 8, 8), 10)
    record = edgewise.bench(model, target="nvidia-gpu", config=QUICK, inputs=["image:1x1x8x8"])
    latency, memory, energy = record["latency"], record["memory"], record["energy"]
    # the loop's contract: at least the configured number of timed runs (and the duration), never fewer
    assert latency["kind"] == "measured" and latency["iterations"] >= QUICK.iterations
    assert latency["backend"] == "torch on cpu (CPU stand-in for CUDA events)"
    assert memory == {"kind": "measured", "gpu_peak_allocated_bytes": 4096, "gpu_process_bytes": GPU_BYTES,
                      "method": "torch's peak allocation on the device"}
    assert energy["kind"] == "measured" and energy["source"] == "nvml"
    for window in energy["windows"]:
        assert window["method"] == "energy counter"
        assert window["joules"] == pytest.approx(WATTS * window["duration_s"], rel=0.02)
    assert energy["mean_w"] == pytest.approx(WATTS, rel=0.02)
    assert record["inputs"][0]["shape"] == [1, 1, 8, 8] and record["macs"] > 0
    assert next(model.parameters()).device.type == "cpu"  # the caller's model was not moved


@pytest.mark.filterwarnings("ignore:Specified provider")
def test_onnxruntime_gpu_providers_are_preferred_and_named(fake_gpu, monkeypatch, tmp_path):
    import onnxruntime

    monkeypatch.setattr(onnxruntime, "get_available_providers",
                        lambda: ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"])
    path = edgewise.export.to_onnx(build_model("mlp", (1, 8, 8), 10), torch.rand(1, 1, 8, 8), tmp_path / "m.onnx")
    record = edgewise.bench(path.path, target="nvidia-gpu", config=QUICK, batch=1)
    # this CPU-only onnxruntime falls back to the CPU, and the record says what really ran
    assert record["latency"]["backend"] == "onnxruntime (CPUExecutionProvider)"
    assert record["memory"]["gpu_process_bytes"] == GPU_BYTES and record["energy"]["kind"] == "measured"


def test_an_onnx_file_without_onnxruntime_gpu_is_refused_with_the_fix(fake_gpu, tmp_path):
    path = edgewise.export.to_onnx(build_model("mlp", (1, 8, 8), 10), torch.rand(1, 1, 8, 8), tmp_path / "m.onnx")
    with pytest.raises(UserError, match=r"no CUDA or TensorRT provider.*edgewise\[gpu\]"):
        edgewise.bench(path.path, target="nvidia-gpu", batch=1)


def test_no_gpu_no_figures(tmp_path):
    path = edgewise.export.to_onnx(build_model("mlp", (1, 8, 8), 10), torch.rand(1, 1, 8, 8), tmp_path / "m.onnx")
    with pytest.raises(UserError, match="nvidia-gpu is not available here: nvidia-ml-py is not installed"):
        edgewise.bench(path.path, target="nvidia-gpu", batch=1, arrays={"x": np.zeros((1, 1, 8, 8), np.float32)})
