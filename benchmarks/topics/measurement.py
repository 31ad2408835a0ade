"""Measurement harness: repeatability of the latency median over five runs, and the harness's own overhead."""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path

import numpy as np
import torch

from benchmarks.suite import Figure
from edgewise.bench.latency import LatencyConfig, measure_latency, onnx_runner


def run() -> list[Figure]:
    """Five identical latency benchmarks of the digits CNN (ONNX Runtime), and the per-iteration overhead."""
    from edgewise import export
    from edgewise.zoo.models import build_model

    torch.manual_seed(0)
    model = build_model("lenet", (1, 8, 8), 10).eval()
    x = np.random.default_rng(0).random((1, 1, 8, 8)).astype(np.float32)
    config = LatencyConfig(warmup_s=1.0, warmup_iterations=100, iterations=1000, duration_s=3.0)
    with tempfile.TemporaryDirectory() as scratch:
        path = export.to_onnx(model, torch.rand(2, 1, 8, 8), Path(scratch) / "cnn.onnx").path
        medians = [measure_latency(onnx_runner(path, {"x": x}, threads=1), config)["median_ms"] for _ in range(5)]
    spread = (max(medians) - min(medians)) / statistics.median(medians)
    empty = measure_latency(lambda: (lambda: None), LatencyConfig(warmup_s=0.1, iterations=100_000, duration_s=1.0))
    return [
        Figure("latency median over 5 runs (digits CNN, ORT 1 thread, batch 1)", statistics.median(medians) * 1e3, "us",
               note=", ".join(f"{m * 1e3:.2f}" for m in medians)),
        Figure("spread of the 5 medians (max - min) / median", spread * 100, "%", target="<= 3%"),
        Figure("harness overhead per timed iteration (empty model)", empty["median_ms"] * 1e3, "us",
               target="< 5 us", note=f"mean {empty['mean_ms'] * 1e3:.3f} us over {empty['iterations']:,} runs"),
    ]
